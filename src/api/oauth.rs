//! `OAuthService`.

use tonic::Request;

use super::convert::timestamp;
use super::{Api, ApiResult, idempotency_key, project, reply};
use crate::domain::{CompleteOAuth, StartOAuth};
use crate::pb::v1 as pb;
use crate::pb::v1::o_auth_service_server::OAuthService;

#[tonic::async_trait]
impl OAuthService for Api {
    async fn start_o_auth(
        &self,
        req: Request<pb::StartOAuthRequest>,
    ) -> ApiResult<pb::StartOAuthReply> {
        let project = project(&req)?;
        let key = idempotency_key(&req, req.get_ref().idempotency_key.as_deref())?;
        let r = req.into_inner();
        let input = StartOAuth {
            provider: r.provider,
            redirect_uri: r.redirect_uri,
            login_hint: r.login_hint,
            scopes: r.scopes,
            vendor: r.vendor,
            mode: r.mode,
        };
        reply(
            self.domain
                .start_oauth(&project, input, key.as_deref())
                .await
                .map(|s| pb::StartOAuthReply {
                    authorization_url: s.authorization_url,
                    state: s.state,
                    expires_at: Some(timestamp(s.expires_at)),
                }),
        )
    }

    async fn complete_o_auth(
        &self,
        req: Request<pb::CompleteOAuthRequest>,
    ) -> ApiResult<pb::CompleteOAuthReply> {
        let project = project(&req)?;
        let key = idempotency_key(&req, req.get_ref().idempotency_key.as_deref())?;
        let r = req.into_inner();
        let input = CompleteOAuth {
            state: r.state,
            code: r.code,
            iss: r.iss,
            mfa_factor: r.mfa_factor,
            error: r.error,
        };
        reply(
            self.domain
                .complete_oauth(&project, input, key.as_deref())
                .await
                .map(|c| pb::CompleteOAuthReply {
                    user: Some(c.user.into()),
                    session: Some(c.session.into()),
                    created: c.created,
                }),
        )
    }

    async fn list_o_auth_providers(
        &self,
        req: Request<pb::ListOAuthProvidersRequest>,
    ) -> ApiResult<pb::ListOAuthProvidersReply> {
        let project = project(&req)?;
        reply(self.domain.oauth_providers(&project).await.map(|list| {
            pb::ListOAuthProvidersReply {
                providers: list
                    .into_iter()
                    .map(|p| pb::OAuthProvider {
                        provider: p.provider,
                        kind: p.kind.as_str().to_owned(),
                        client_id: p.client_id,
                        issuer: Some(p.issuer),
                        scopes: p.scopes,
                        redirect_uris: p.redirect_uris,
                    })
                    .collect(),
            }
        }))
    }

    async fn list_identities(
        &self,
        req: Request<pb::ListIdentitiesRequest>,
    ) -> ApiResult<pb::ListIdentitiesReply> {
        let project = project(&req)?;
        reply(
            self.domain
                .identities(&project, &req.get_ref().user_id)
                .await
                .map(|list| pb::ListIdentitiesReply {
                    identities: list.into_iter().map(pb::Identity::from).collect(),
                }),
        )
    }

    async fn unlink_identity(
        &self,
        req: Request<pb::UnlinkIdentityRequest>,
    ) -> ApiResult<pb::OkReply> {
        let project = project(&req)?;
        let r = req.get_ref();
        reply(
            self.domain
                .unlink_identity(&project, &r.user_id, &r.provider)
                .await
                .map(|()| pb::OkReply { ok: true }),
        )
    }
}
