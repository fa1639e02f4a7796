//! `SessionService`.

use tonic::Request;

use super::convert::timestamp;
use super::{Api, ApiResult, idempotency_key, project, reply};
use crate::domain::{CreateSession, SessionTokens};
use crate::pb::v1 as pb;
use crate::pb::v1::session_service_server::SessionService;

impl From<SessionTokens> for pb::Session {
    fn from(s: SessionTokens) -> Self {
        pb::Session {
            session_id: s.session_id,
            access_token: s.access_token,
            refresh_token: s.refresh_token,
            expires_at: Some(timestamp(s.expires_at)),
        }
    }
}

#[tonic::async_trait]
impl SessionService for Api {
    async fn create_session(
        &self,
        req: Request<pb::CreateSessionRequest>,
    ) -> ApiResult<pb::Session> {
        let project = project(&req)?;
        let key = idempotency_key(&req, req.get_ref().idempotency_key.as_deref())?;
        let r = req.into_inner();
        let input = CreateSession {
            user_id: r.user_id,
            method: r.method,
            password: r.password,
            mfa_factor: r.mfa_factor,
            require_mfa: r.require_mfa,
            client_ip: r.client_ip,
        };
        reply(
            self.domain
                .create_session(&project, input, key.as_deref())
                .await
                .map(Into::into),
        )
    }

    async fn verify_session(
        &self,
        req: Request<pb::VerifySessionRequest>,
    ) -> ApiResult<pb::VerifySessionReply> {
        let project = project(&req)?;
        reply(
            self.domain
                .verify_session(&project, &req.get_ref().session_id)
                .await
                .map(|v| pb::VerifySessionReply {
                    valid: v.valid,
                    user_id: v.user_id,
                    expires_at: v.expires_at.map(timestamp),
                    reason: v.reason.map(|r| r.as_str().to_owned()),
                }),
        )
    }

    async fn refresh_session(
        &self,
        req: Request<pb::RefreshSessionRequest>,
    ) -> ApiResult<pb::Session> {
        let project = project(&req)?;
        let key = idempotency_key(&req, req.get_ref().idempotency_key.as_deref())?;
        reply(
            self.domain
                .refresh_session(&project, &req.get_ref().refresh_token, key.as_deref())
                .await
                .map(Into::into),
        )
    }

    async fn revoke_session(
        &self,
        req: Request<pb::RevokeSessionRequest>,
    ) -> ApiResult<pb::OkReply> {
        let project = project(&req)?;
        let key = idempotency_key(&req, req.get_ref().idempotency_key.as_deref())?;
        reply(
            self.domain
                .revoke_session(&project, &req.get_ref().session_id, key.as_deref())
                .await
                .map(|()| pb::OkReply { ok: true }),
        )
    }

    async fn revoke_all_for_user(
        &self,
        req: Request<pb::RevokeAllForUserRequest>,
    ) -> ApiResult<pb::RevokeAllForUserReply> {
        let project = project(&req)?;
        let key = idempotency_key(&req, req.get_ref().idempotency_key.as_deref())?;
        let r = req.get_ref();
        reply(
            self.domain
                .revoke_all_sessions(
                    &project,
                    &r.user_id,
                    r.except_session_id.as_deref(),
                    key.as_deref(),
                )
                .await
                .map(|n| pb::RevokeAllForUserReply {
                    revoked: i32::try_from(n).unwrap_or(i32::MAX),
                }),
        )
    }

    async fn list_sessions_for_user(
        &self,
        req: Request<pb::ListSessionsForUserRequest>,
    ) -> ApiResult<pb::ListSessionsForUserReply> {
        let project = project(&req)?;
        reply(
            self.domain
                .list_sessions(&project, &req.get_ref().user_id)
                .await
                .map(|items| pb::ListSessionsForUserReply {
                    items: items
                        .into_iter()
                        .map(|s| pb::SessionSummary {
                            session_id: s.session_id,
                            expires_at: Some(timestamp(s.expires_at)),
                            created_at: Some(timestamp(s.created_at)),
                            method: s.method,
                        })
                        .collect(),
                }),
        )
    }
}
