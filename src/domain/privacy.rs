//! Data-subject requests: the export of everything held on a user (GDPR
//! Art. 15, CCPA's right to know). Erasure is `Domain::delete_user`, whose
//! `user.deleted` event records when it happened.

use super::Error;
use super::{AuditEvent, ConsentEvent, ConsentState, Domain, Project, Result, User};
use crate::store::entity::identities;
use crate::vendors::{VendorError, scrub_secrets};

/// A session as stored, without its tokens.
#[derive(Clone, Debug)]
pub struct ExportedSession {
    /// `ses_…`
    pub id: String,
    /// How it was opened (`password`, `oauth`, …).
    pub method: String,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub expires_at: i64,
    /// Unix ms, when revoked.
    pub revoked_at: Option<i64>,
}

/// Everything held on one user.
#[derive(Clone, Debug)]
pub struct UserExport {
    /// When the export was made, Unix ms.
    pub exported_at: i64,
    /// The profile, as the vendor of record reports it now.
    pub user: User,
    /// The vendor of record.
    pub vendor: String,
    /// The user's id at that vendor.
    pub vendor_user_id: String,
    /// Everything the vendor holds on the user, as its API returned it
    /// (credentials dropped); `None` for the built-in provider, whose
    /// record is authmux's own rows, all of them here.
    pub vendor_record: Option<serde_json::Map<String, serde_json::Value>>,
    /// Linked outside identities.
    pub identities: Vec<identities::Model>,
    /// Sessions, oldest first.
    pub sessions: Vec<ExportedSession>,
    /// Current consent per category.
    pub consent: Vec<ConsentState>,
    /// The whole consent ledger, oldest first.
    pub consent_ledger: Vec<ConsentEvent>,
    /// Every event about the user, oldest first.
    pub events: Vec<AuditEvent>,
}

impl Domain {
    /// Everything authmux and the user's vendor hold on a user.
    pub async fn export_user(&self, project: &Project, user_id: &str) -> Result<UserExport> {
        let user = self.get_user(project, user_id).await?;
        let pin = self.user_pin(project, user_id).await?;
        let vendor = self.pinned_vendor(project, &pin).await?;
        let vendor_record = match vendor
            .export_user(&project.id, &pin.vendor_resource_id)
            .await
        {
            Ok(record) => record.map(|mut r| {
                scrub_secrets(&mut r);
                r
            }),
            // Gone at the vendor since `get_user` read it: deleted meanwhile.
            Err(VendorError::NotFound(_)) => return Err(Error::user_not_found(user_id)),
            Err(e) => return Err(e.into()),
        };
        // What authmux stores, as it stood at one moment: a session opened
        // or revoked, or a consent entry, is in both its part and the
        // events, or in neither; the current consent is worked out from
        // the ledger read, so the document never contradicts itself.
        let records = self.store.user_records(&project.id, user_id).await?;
        let (consent, consent_ledger) = super::consent::consent_from_ledger(records.consent_ledger);
        let export = UserExport {
            exported_at: self.now(),
            vendor: pin.vendor,
            vendor_user_id: pin.vendor_resource_id,
            vendor_record,
            identities: records.identities,
            sessions: records
                .sessions
                .into_iter()
                .map(|s| ExportedSession {
                    id: s.id,
                    method: s.method,
                    created_at: s.created_at,
                    expires_at: s.expires_at,
                    revoked_at: s.revoked_at,
                })
                .collect(),
            consent,
            consent_ledger,
            events: records.events.into_iter().map(Into::into).collect(),
            user,
        };
        // A deletion commits all its rows at once. Still there now, the
        // user was there when the rows were read, so the document is
        // whole; gone, the answer is what it would be a moment later.
        self.user_pin(project, user_id).await?;
        Ok(export)
    }
}
