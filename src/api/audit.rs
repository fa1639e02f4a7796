//! `AuditService` and `PrivacyService`.

use tonic::Request;

use super::convert::{json_to_struct, timestamp};
use super::{Api, ApiResult, project, reply};
use crate::pb::v1 as pb;
use crate::pb::v1::audit_service_server::AuditService;
use crate::pb::v1::privacy_service_server::PrivacyService;

#[tonic::async_trait]
impl AuditService for Api {
    async fn list_audit_events(
        &self,
        req: Request<pb::ListAuditEventsRequest>,
    ) -> ApiResult<pb::ListAuditEventsReply> {
        let project = project(&req)?;
        let r = req.get_ref();
        reply(
            self.domain
                .audit(
                    &project,
                    r.user_id.as_deref(),
                    r.r#type.as_deref(),
                    r.cursor.as_deref(),
                    r.limit,
                )
                .await
                .map(|page| pb::ListAuditEventsReply {
                    items: page.items.into_iter().map(pb::AuditEvent::from).collect(),
                    next_cursor: page.next_cursor,
                }),
        )
    }
}

#[tonic::async_trait]
impl PrivacyService for Api {
    async fn export_user(&self, req: Request<pb::ExportUserRequest>) -> ApiResult<pb::UserExport> {
        let project = project(&req)?;
        reply(
            self.domain
                .export_user(&project, &req.get_ref().user_id)
                .await
                .map(|x| pb::UserExport {
                    exported_at: Some(timestamp(x.exported_at)),
                    user: Some(x.user.into()),
                    vendor: x.vendor,
                    vendor_user_id: x.vendor_user_id,
                    vendor_record: x.vendor_record.map(json_to_struct),
                    identities: x.identities.into_iter().map(Into::into).collect(),
                    sessions: x
                        .sessions
                        .into_iter()
                        .map(|s| pb::ExportedSession {
                            session_id: s.id,
                            method: s.method,
                            created_at: Some(timestamp(s.created_at)),
                            expires_at: Some(timestamp(s.expires_at)),
                            revoked_at: s.revoked_at.map(timestamp),
                        })
                        .collect(),
                    consent: x.consent.into_iter().map(Into::into).collect(),
                    consent_ledger: x.consent_ledger.into_iter().map(Into::into).collect(),
                    events: x.events.into_iter().map(Into::into).collect(),
                }),
        )
    }
}
