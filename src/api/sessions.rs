//! `SessionService`: declared by the contract, answered UNIMPLEMENTED until
//! the session machinery lands.

use tonic::{Request, Status};

use super::{Api, ApiResult, project, to_status};
use crate::domain::{Error, ErrorCode};
use crate::pb::v1 as pb;
use crate::pb::v1::session_service_server::SessionService;

fn not_yet<T>(req: &Request<T>, capability: &str) -> Status {
    if let Err(status) = project(req) {
        return status;
    }
    to_status(Error::new(
        ErrorCode::Unimplemented,
        format!("{capability} is not implemented yet"),
    ))
}

#[tonic::async_trait]
impl SessionService for Api {
    async fn create_session(
        &self,
        req: Request<pb::CreateSessionRequest>,
    ) -> ApiResult<pb::Session> {
        Err(not_yet(&req, "auth.session.create"))
    }

    async fn verify_session(
        &self,
        req: Request<pb::VerifySessionRequest>,
    ) -> ApiResult<pb::VerifySessionReply> {
        Err(not_yet(&req, "auth.session.verify"))
    }

    async fn refresh_session(
        &self,
        req: Request<pb::RefreshSessionRequest>,
    ) -> ApiResult<pb::Session> {
        Err(not_yet(&req, "auth.session.refresh"))
    }

    async fn revoke_session(
        &self,
        req: Request<pb::RevokeSessionRequest>,
    ) -> ApiResult<pb::OkReply> {
        Err(not_yet(&req, "auth.session.revoke"))
    }

    async fn revoke_all_for_user(
        &self,
        req: Request<pb::RevokeAllForUserRequest>,
    ) -> ApiResult<pb::RevokeAllForUserReply> {
        Err(not_yet(&req, "auth.session.revoke_all_for_user"))
    }

    async fn list_sessions_for_user(
        &self,
        req: Request<pb::ListSessionsForUserRequest>,
    ) -> ApiResult<pb::ListSessionsForUserReply> {
        Err(not_yet(&req, "auth.session.list_for_user"))
    }
}
