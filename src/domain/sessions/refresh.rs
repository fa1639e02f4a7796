//! Refresh: rotation with reuse detection and a cooldown. Two refreshes
//! racing with one token get one new pair; the loser is told so rather
//! than taken for a thief.

use super::{SessionTokens, credential_context, new_refresh_token, session_invalid};
use crate::crypto::sha256_hex;
use serde_json::json;

use crate::domain::events::RevokeReason;
use crate::domain::{Domain, Error, ErrorCode, EventKind, Project, Result};
use crate::store::entity::refresh_tokens;
use crate::store::sessions::Rotation;

/// How long after a rotation a repeat of the rotated token is taken for a
/// concurrent double-submit (409) rather than a reuse (session revoked).
pub const ROTATION_GRACE_MS: i64 = 5_000;

fn refresh_conflict(session_id: &str) -> Error {
    Error::new(
        ErrorCode::AuthRefreshConflict,
        format!(
            "session {session_id} was refreshed with this token moments ago by another request; use the tokens it returned"
        ),
    )
}

impl Domain {
    /// Trades a refresh token for a new pair.
    pub async fn refresh_session(
        &self,
        project: &Project,
        refresh_token: &str,
        idempotency_key: Option<&str>,
    ) -> Result<SessionTokens> {
        if refresh_token.is_empty() {
            return Err(Error::invalid("refresh_token is required"));
        }
        let hash = sha256_hex(refresh_token.as_bytes());
        let hash = &hash;
        self.idempotent(
            project,
            "session.refresh",
            idempotency_key,
            hash,
            move || async move {
                let row = self
                    .store
                    .refresh_token(hash)
                    .await?
                    .filter(|r| r.project_id == project.id)
                    .ok_or_else(session_invalid)?;
                let session = self
                    .store
                    .session(&project.id, &row.session_id)
                    .await?
                    .ok_or_else(session_invalid)?;
                let now = self.now();
                if session.revoked_at.is_some() || session.expires_at <= now {
                    return Err(session_invalid());
                }
                if let Some(rotated_at) = row.rotated_at {
                    if now - rotated_at < ROTATION_GRACE_MS {
                        return Err(refresh_conflict(&session.id));
                    }
                    return Err(self.revoke_for_reuse(project, &session.id, now).await);
                }
                // The user (and its pin) must still be there: a session of a
                // deleted user is never refreshed.
                if self
                    .store
                    .user(&project.id, &session.user_id)
                    .await?
                    .is_none()
                {
                    return Err(session_invalid());
                }
                self.user_pin(project, &session.user_id).await?;
                let cooldown = self.sessions.refresh_cooldown.as_millis() as i64;
                let since = now - session.last_issued_at;
                if since < cooldown {
                    return Err(Error::new(
                        ErrorCode::AuthRefreshTooFrequent,
                        format!(
                            "session {} was issued tokens {}s ago; refresh at most every {}s",
                            session.id,
                            since / 1000,
                            cooldown / 1000
                        ),
                    )
                    .retry_after(((cooldown - since) as u64).div_ceil(1000)));
                }
                // A vendor session gets its new token first, so that a vendor
                // outage leaves the refresh token unspent.
                let vendor_tokens = match self.store.pin(&project.id, &session.id).await? {
                    Some(pin) => {
                        let vendor = self.pinned_vendor(project, &pin).await?;
                        let credential = self.vendor_credential(&session)?;
                        Some(
                            vendor
                                .refresh_session(
                                    &project.id,
                                    &pin.vendor_resource_id,
                                    credential.as_deref(),
                                )
                                .await?,
                        )
                    }
                    None => None,
                };
                let refresh = new_refresh_token();
                let new_row = refresh_tokens::Model {
                    token_hash: sha256_hex(refresh.as_bytes()),
                    project_id: project.id.clone(),
                    session_id: session.id.clone(),
                    created_at: now,
                    rotated_at: None,
                };
                let announce = self.event(
                    project,
                    EventKind::SessionRefreshed,
                    &session.user_id,
                    json!({"session_id": session.id}),
                );
                match self
                    .store
                    .rotate_refresh_token(
                        hash,
                        new_row,
                        session.last_issued_at,
                        now,
                        vec![announce],
                    )
                    .await?
                {
                    Rotation::Rotated => match vendor_tokens {
                        None => self.tokens_for(&session, refresh, now),
                        Some(vs) => {
                            if let Some(c) = &vs.credential {
                                let sealed = self
                                    .master
                                    .seal(c.as_bytes(), &credential_context(&session.id));
                                self.store
                                    .set_vendor_credential(&session.id, Some(sealed))
                                    .await?;
                            }
                            Ok(SessionTokens {
                                session_id: session.id.clone(),
                                access_token: vs.access_token,
                                refresh_token: refresh,
                                expires_at: vs.expires_at,
                            })
                        }
                    },
                    // Another request rotated it between our read and our
                    // write: a double-submit, not a theft.
                    Rotation::Lost => Err(refresh_conflict(&session.id)),
                    // Revoked (or its user deleted) while we refreshed.
                    Rotation::SessionEnded => Err(session_invalid()),
                }
            },
        )
        .await
    }

    /// Revokes a session whose rotated refresh token came back, here and at
    /// its vendor (whose session, refresh token and tokens would otherwise
    /// stay live).
    async fn revoke_for_reuse(&self, project: &Project, session_id: &str, now: i64) -> Error {
        tracing::warn!(session_id, "refresh token reuse; revoking the session");
        if let Err(e) = self
            .store
            .revoke_session(&project.id, session_id, now, |s| {
                self.revoked_events(
                    project,
                    &s.user_id,
                    std::slice::from_ref(&s.id),
                    RevokeReason::ReuseDetected,
                )
            })
            .await
        {
            return e.into();
        }
        self.revocations.add([session_id.to_owned()]);
        if let Err(e) = self.revoke_at_vendor(project, session_id).await {
            // authmux's revocation stands; the caller hears of the reuse.
            tracing::warn!(session_id, error = %e.message, "could not end the vendor session after reuse");
        }
        Error::new(
            ErrorCode::AuthRefreshTokenReused,
            format!("this refresh token was already used; session {session_id} is now revoked"),
        )
    }
}
