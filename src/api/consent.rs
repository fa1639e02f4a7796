//! `ConsentService`.

use tonic::Request;

use super::convert::timestamp;
use super::{Api, ApiResult, idempotency_key, project, reply};
use crate::pb::v1 as pb;
use crate::pb::v1::consent_service_server::ConsentService;

#[tonic::async_trait]
impl ConsentService for Api {
    async fn grant_consent(&self, req: Request<pb::GrantConsentRequest>) -> ApiResult<pb::OkReply> {
        let project = project(&req)?;
        let key = idempotency_key(&req, req.get_ref().idempotency_key.as_deref())?;
        let r = req.get_ref();
        reply(
            self.domain
                .record_consent(
                    &project,
                    &r.user_id,
                    &r.category,
                    true,
                    r.source.as_deref(),
                    key.as_deref(),
                )
                .await
                .map(|()| pb::OkReply { ok: true }),
        )
    }

    async fn revoke_consent(
        &self,
        req: Request<pb::RevokeConsentRequest>,
    ) -> ApiResult<pb::OkReply> {
        let project = project(&req)?;
        let key = idempotency_key(&req, req.get_ref().idempotency_key.as_deref())?;
        let r = req.get_ref();
        reply(
            self.domain
                .record_consent(
                    &project,
                    &r.user_id,
                    &r.category,
                    false,
                    None,
                    key.as_deref(),
                )
                .await
                .map(|()| pb::OkReply { ok: true }),
        )
    }

    async fn check_consent(
        &self,
        req: Request<pb::CheckConsentRequest>,
    ) -> ApiResult<pb::CheckConsentReply> {
        let project = project(&req)?;
        let r = req.get_ref();
        reply(
            self.domain
                .check_consent(&project, &r.user_id, &r.category)
                .await
                .map(|s| pb::CheckConsentReply {
                    granted: s.granted,
                    source: s.source,
                    granted_at: s.granted_at.map(timestamp),
                }),
        )
    }

    async fn list_consent_for_user(
        &self,
        req: Request<pb::ListConsentForUserRequest>,
    ) -> ApiResult<pb::ListConsentForUserReply> {
        let project = project(&req)?;
        reply(
            self.domain
                .list_consent(&project, &req.get_ref().user_id)
                .await
                .map(|states| pb::ListConsentForUserReply {
                    items: states.into_iter().map(pb::ConsentState::from).collect(),
                }),
        )
    }

    async fn consent_history(
        &self,
        req: Request<pb::ConsentHistoryRequest>,
    ) -> ApiResult<pb::ConsentHistoryReply> {
        let project = project(&req)?;
        reply(
            self.domain
                .consent_history(&project, &req.get_ref().user_id)
                .await
                .map(|events| pb::ConsentHistoryReply {
                    items: events.into_iter().map(pb::ConsentEvent::from).collect(),
                }),
        )
    }
}
