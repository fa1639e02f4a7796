//! Revocation of one session or all of a user's, and the listing of live
//! sessions.

use super::SessionInfo;
use crate::domain::events::RevokeReason;
use crate::domain::{Domain, Error, ErrorCode, Project, Result};

impl Domain {
    /// Revokes one session.
    pub async fn revoke_session(
        &self,
        project: &Project,
        session_id: &str,
        idempotency_key: Option<&str>,
    ) -> Result<()> {
        crate::domain::text::check_id("session_id", session_id)?;
        self.idempotent(
            project,
            "session.revoke",
            idempotency_key,
            &session_id,
            move || async move {
                match self
                    .store
                    .revoke_session(&project.id, session_id, self.now(), |s| {
                        self.revoked_events(
                            project,
                            &s.user_id,
                            std::slice::from_ref(&s.id),
                            RevokeReason::Revoke,
                        )
                    })
                    .await?
                {
                    None => Err(Error::new(
                        ErrorCode::AuthSessionNotFound,
                        format!("no session {session_id} in this project"),
                    )),
                    Some(_) => {
                        self.revocations.add([session_id.to_owned()]);
                        self.revoke_at_vendor(project, session_id).await
                    }
                }
            },
        )
        .await
    }

    /// Revokes every live session of a user but one; returns how many. A
    /// retry under the same idempotency key gets the first count.
    pub async fn revoke_all_sessions(
        &self,
        project: &Project,
        user_id: &str,
        except: Option<&str>,
        idempotency_key: Option<&str>,
    ) -> Result<usize> {
        let except = except.filter(|e| !e.is_empty());
        if let Some(e) = except {
            crate::domain::text::check_id("except_session_id", e)?;
        }
        self.user_row(project, user_id).await?;
        self.idempotent(
            project,
            "session.revoke_all_for_user",
            idempotency_key,
            &(user_id, except),
            move || async move {
                let ids = self
                    .store
                    .revoke_user_sessions(&project.id, user_id, except, self.now(), |ids| {
                        self.revoked_events(project, user_id, ids, RevokeReason::RevokeAll)
                    })
                    .await?;
                let n = ids.len();
                self.revocations.add(ids.iter().cloned());
                // Every session still open at its vendor, these and any an
                // earlier attempt could not end there; one failure does
                // not stop the others, and is reported for a retry.
                let mut failed = None;
                for id in self
                    .store
                    .vendor_pending_sessions(&project.id, user_id)
                    .await?
                {
                    if let Err(e) = self.revoke_at_vendor(project, &id).await {
                        failed.get_or_insert(e);
                    }
                }
                failed.map_or(Ok(n), Err)
            },
        )
        .await
    }

    /// Ends the vendor side of a session pinned to a vendor, and records
    /// it ended. authmux's own revocation is already in force; a vendor
    /// outage is reported so the caller can retry (revoking again is
    /// harmless, an already-ended vendor session counts as done).
    pub(super) async fn revoke_at_vendor(&self, project: &Project, session_id: &str) -> Result<()> {
        let pin = self.store.pin(&project.id, session_id).await?;
        let session = self.store.session(&project.id, session_id).await?;
        if let (Some(pin), Some(session)) = (pin, session) {
            let credential = self.vendor_credential(&session)?;
            self.pinned_vendor(project, &pin)
                .await?
                .revoke_session(&project.id, &pin.vendor_resource_id, credential.as_deref())
                .await?;
        }
        self.store.vendor_ended(&project.id, session_id).await?;
        Ok(())
    }

    /// A user's active sessions, newest first.
    pub async fn list_sessions(
        &self,
        project: &Project,
        user_id: &str,
    ) -> Result<Vec<SessionInfo>> {
        self.user_row(project, user_id).await?;
        Ok(self
            .store
            .active_sessions(&project.id, user_id, self.now())
            .await?
            .into_iter()
            .map(|s| SessionInfo {
                session_id: s.id,
                expires_at: s.expires_at,
                created_at: s.created_at,
                method: s.method,
            })
            .collect())
    }
}
