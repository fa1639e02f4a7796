//! `UserService`.

use tonic::Request;

use super::convert::struct_to_json;
use super::{Api, ApiResult, idempotency_key, project, reply};
use crate::domain::{CreateUser, UpdateUser};
use crate::pb::v1 as pb;
use crate::pb::v1::user_service_server::UserService;

#[tonic::async_trait]
impl UserService for Api {
    async fn create_user(&self, req: Request<pb::CreateUserRequest>) -> ApiResult<pb::AuthUser> {
        let project = project(&req)?;
        let key = idempotency_key(&req, req.get_ref().idempotency_key.as_deref())?;
        let r = req.into_inner();
        let input = CreateUser {
            email: r.email,
            password: r.password,
            metadata: r.metadata.map(struct_to_json),
            vendor: r.vendor,
            mode: r.mode,
        };
        reply(
            self.domain
                .create_user(&project, input, key.as_deref())
                .await
                .map(Into::into),
        )
    }

    async fn get_user(&self, req: Request<pb::GetUserRequest>) -> ApiResult<pb::AuthUser> {
        let project = project(&req)?;
        reply(
            self.domain
                .get_user(&project, &req.get_ref().user_id)
                .await
                .map(Into::into),
        )
    }

    async fn get_user_by_email(
        &self,
        req: Request<pb::GetUserByEmailRequest>,
    ) -> ApiResult<pb::AuthUser> {
        let project = project(&req)?;
        reply(
            self.domain
                .get_user_by_email(&project, &req.get_ref().email)
                .await
                .map(Into::into),
        )
    }

    async fn list_users(
        &self,
        req: Request<pb::ListUsersRequest>,
    ) -> ApiResult<pb::ListUsersReply> {
        let project = project(&req)?;
        let r = req.get_ref();
        reply(
            self.domain
                .list_users(&project, r.cursor.as_deref(), r.limit)
                .await
                .map(|page| pb::ListUsersReply {
                    items: page.items.into_iter().map(Into::into).collect(),
                    next_cursor: page.next_cursor,
                }),
        )
    }

    async fn update_user(&self, req: Request<pb::UpdateUserRequest>) -> ApiResult<pb::AuthUser> {
        let project = project(&req)?;
        let key = idempotency_key(&req, req.get_ref().idempotency_key.as_deref())?;
        let r = req.into_inner();
        let input = UpdateUser {
            metadata: r.metadata.map(struct_to_json),
            email_verified: r.email_verified,
            mfa_enabled: r.mfa_enabled,
            phone_number: r.phone_number,
            password: r.password,
            keep_sessions: r.keep_sessions.unwrap_or(false),
        };
        reply(
            self.domain
                .update_user(&project, &r.user_id, input, key.as_deref())
                .await
                .map(Into::into),
        )
    }

    async fn delete_user(&self, req: Request<pb::DeleteUserRequest>) -> ApiResult<pb::OkReply> {
        let project = project(&req)?;
        let key = idempotency_key(&req, req.get_ref().idempotency_key.as_deref())?;
        reply(
            self.domain
                .delete_user(&project, &req.get_ref().user_id, key.as_deref())
                .await
                .map(|()| pb::OkReply { ok: true }),
        )
    }
}
