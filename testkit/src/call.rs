//! Calls over either transport: REST through reqwest, gRPC through the
//! generated tonic clients, each reply turned into the same JSON so that
//! one assertion serves both.

use authmux::pb::v1 as pb;
use authmux::transcode::routes::HttpRoute;
use prost::Message;
use prost_reflect::DynamicMessage;
use serde_json::{Value, json};
use tonic::transport::Channel;

use crate::errors::{ApiError, grpc_error, rest_result};
use crate::server::Server;

/// Which transport a call uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Rest,
    Grpc,
}

impl Server {
    /// Calls a capability (e.g. `auth.user.create`) with the server's key.
    pub async fn call(
        &self,
        t: Transport,
        capability: &str,
        req: Value,
    ) -> Result<Value, ApiError> {
        self.call_as(t, &self.key, capability, req, &[]).await
    }

    /// Calls a capability with a given key and extra headers / metadata.
    pub async fn call_as(
        &self,
        t: Transport,
        key: &str,
        capability: &str,
        req: Value,
        headers: &[(&str, &str)],
    ) -> Result<Value, ApiError> {
        // `capability@method` picks one of several routes of a capability
        // (e.g. `auth.user.identities@delete`).
        let (capability, method) = capability
            .split_once('@')
            .map_or((capability, None), |(c, m)| (c, Some(m)));
        let route = self
            .routes
            .iter()
            .find(|r| {
                r.capability() == capability
                    && method.is_none_or(|m| r.method.as_str().eq_ignore_ascii_case(m))
            })
            .unwrap_or_else(|| panic!("no route for {capability}"))
            .clone();
        let mut req = req;
        if capability == "auth.user.create"
            && self.vendor != authmux::vendors::VendorKind::Native
            && req.get("vendor").is_none()
            && req.get("mode").is_none()
        {
            req["vendor"] = json!(self.vendor.as_str());
        }
        match t {
            Transport::Rest => self.call_rest(&route, key, req, headers).await,
            Transport::Grpc => self.call_grpc(&route, key, req, headers).await,
        }
    }

    async fn call_rest(
        &self,
        route: &HttpRoute,
        key: &str,
        req: Value,
        headers: &[(&str, &str)],
    ) -> Result<Value, ApiError> {
        let mut fields = req.as_object().cloned().unwrap_or_default();
        let mut path = route.template.clone();
        for p in &route.path_params {
            let v = fields
                .remove(p)
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let encoded: String = url_encode(&v);
            path = path.replace(&format!("{{{p}}}"), &encoded);
        }
        let url = format!("{}{}", self.base, path);
        let mut rb = self.http.request(route.method.clone(), &url);
        // Over REST the idempotency key travels in its header (a test
        // that sends both keeps both, to see them refused).
        let header_given = headers
            .iter()
            .any(|(h, _)| h.eq_ignore_ascii_case("idempotency-key"));
        if !header_given && let Some(Value::String(k)) = fields.remove("idempotency_key") {
            rb = rb.header("Idempotency-Key", k);
        }
        if !key.is_empty() {
            rb = rb.bearer_auth(key);
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        rb = if route.body {
            rb.json(&Value::Object(fields))
        } else {
            let query: Vec<(String, String)> = fields
                .into_iter()
                .map(|(k, v)| (k, v.as_str().map(str::to_owned).unwrap_or(v.to_string())))
                .collect();
            rb.query(&query)
        };
        let resp = rb.send().await.expect("REST request");
        rest_result(resp).await
    }

    async fn call_grpc(
        &self,
        route: &HttpRoute,
        key: &str,
        req: Value,
        headers: &[(&str, &str)],
    ) -> Result<Value, ApiError> {
        let msg =
            DynamicMessage::deserialize(route.input(), req).expect("request JSON fits the message");
        let bytes = msg.encode_to_vec();
        macro_rules! rpc {
            ($client:ty, $method:ident, $req:ty) => {{
                let mut c = <$client>::new(self.channel.clone());
                let r = with_meta(
                    tonic::Request::new(<$req>::decode(&bytes[..]).unwrap()),
                    key,
                    headers,
                );
                match c.$method(r).await {
                    Ok(resp) => Ok(self.to_json(route, &resp.into_inner().encode_to_vec())),
                    Err(status) => Err(grpc_error(status)),
                }
            }};
        }
        type U = pb::user_service_client::UserServiceClient<Channel>;
        type S = pb::session_service_client::SessionServiceClient<Channel>;
        type C = pb::consent_service_client::ConsentServiceClient<Channel>;
        type D = pb::discovery_service_client::DiscoveryServiceClient<Channel>;
        type O = pb::o_auth_service_client::OAuthServiceClient<Channel>;
        type A = pb::audit_service_client::AuditServiceClient<Channel>;
        type P = pb::privacy_service_client::PrivacyServiceClient<Channel>;
        type W = pb::webhook_service_client::WebhookServiceClient<Channel>;
        match route.rpc.name() {
            "CreateUser" => rpc!(U, create_user, pb::CreateUserRequest),
            "GetUser" => rpc!(U, get_user, pb::GetUserRequest),
            "GetUserByEmail" => rpc!(U, get_user_by_email, pb::GetUserByEmailRequest),
            "ListUsers" => rpc!(U, list_users, pb::ListUsersRequest),
            "UpdateUser" => rpc!(U, update_user, pb::UpdateUserRequest),
            "DeleteUser" => rpc!(U, delete_user, pb::DeleteUserRequest),
            "CreateSession" => rpc!(S, create_session, pb::CreateSessionRequest),
            "VerifySession" => rpc!(S, verify_session, pb::VerifySessionRequest),
            "RefreshSession" => rpc!(S, refresh_session, pb::RefreshSessionRequest),
            "RevokeSession" => rpc!(S, revoke_session, pb::RevokeSessionRequest),
            "RevokeAllForUser" => rpc!(S, revoke_all_for_user, pb::RevokeAllForUserRequest),
            "ListSessionsForUser" => {
                rpc!(S, list_sessions_for_user, pb::ListSessionsForUserRequest)
            }
            "GrantConsent" => rpc!(C, grant_consent, pb::GrantConsentRequest),
            "RevokeConsent" => rpc!(C, revoke_consent, pb::RevokeConsentRequest),
            "CheckConsent" => rpc!(C, check_consent, pb::CheckConsentRequest),
            "ListConsentForUser" => rpc!(C, list_consent_for_user, pb::ListConsentForUserRequest),
            "ConsentHistory" => rpc!(C, consent_history, pb::ConsentHistoryRequest),
            "GetCapability" => rpc!(D, get_capability, pb::GetCapabilityRequest),
            "StartOAuth" => rpc!(O, start_o_auth, pb::StartOAuthRequest),
            "CompleteOAuth" => rpc!(O, complete_o_auth, pb::CompleteOAuthRequest),
            "ListOAuthProviders" => rpc!(O, list_o_auth_providers, pb::ListOAuthProvidersRequest),
            "ListIdentities" => rpc!(O, list_identities, pb::ListIdentitiesRequest),
            "UnlinkIdentity" => rpc!(O, unlink_identity, pb::UnlinkIdentityRequest),
            "ListAuditEvents" => rpc!(A, list_audit_events, pb::ListAuditEventsRequest),
            "ExportUser" => rpc!(P, export_user, pb::ExportUserRequest),
            "CreateWebhookEndpoint" => {
                rpc!(W, create_webhook_endpoint, pb::CreateWebhookEndpointRequest)
            }
            "ListWebhookEndpoints" => {
                rpc!(W, list_webhook_endpoints, pb::ListWebhookEndpointsRequest)
            }
            "DeleteWebhookEndpoint" => {
                rpc!(W, delete_webhook_endpoint, pb::DeleteWebhookEndpointRequest)
            }
            "ListWebhookDeliveries" => {
                rpc!(W, list_webhook_deliveries, pb::ListWebhookDeliveriesRequest)
            }
            "ReplayWebhookDelivery" => {
                rpc!(W, replay_webhook_delivery, pb::ReplayWebhookDeliveryRequest)
            }
            other => panic!("no client mapping for {other}"),
        }
    }

    /// The JSON a REST caller would see for this reply.
    fn to_json(&self, route: &HttpRoute, bytes: &[u8]) -> Value {
        let json = authmux::pb::v1::encoded_reply_json(route.grpc_path(), bytes)
            .expect("a unary method")
            .expect("the reply's JSON");
        serde_json::from_slice(&json).unwrap()
    }
}

fn with_meta<T>(
    mut r: tonic::Request<T>,
    key: &str,
    headers: &[(&str, &str)],
) -> tonic::Request<T> {
    if !key.is_empty() {
        r.metadata_mut()
            .insert("authorization", format!("Bearer {key}").parse().unwrap());
    }
    // Added, as over REST: a name already there (the key's
    // `authorization`) is then sent twice.
    for (k, v) in headers {
        r.metadata_mut().append(
            tonic::metadata::MetadataKey::from_bytes(k.to_lowercase().as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    r
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Creates a user and returns its JSON.
pub async fn create_user(s: &Server, t: Transport, email: &str) -> Value {
    s.call(t, "auth.user.create", json!({"email": email}))
        .await
        .unwrap_or_else(|e| panic!("create {email}: {e:?}"))
}

/// Turns MFA on for a user; the reply (with the enrolment, shown once).
pub async fn enable_mfa(s: &Server, t: Transport, user_id: impl serde::Serialize) -> Value {
    let user_id = json!(user_id);
    s.call(
        t,
        "auth.user.update",
        json!({"user_id": user_id, "mfa_enabled": true}),
    )
    .await
    .unwrap_or_else(|e| panic!("enable MFA for {user_id}: {e:?}"))
}

/// Marks a user's email verified, as an app does once the user proved it:
/// Supabase opens sessions by the server path only for confirmed users.
pub async fn confirm_email(s: &Server, t: Transport, user_id: &str) {
    s.call(
        t,
        "auth.user.update",
        json!({"user_id": user_id, "email_verified": true}),
    )
    .await
    .unwrap_or_else(|e| panic!("confirm {user_id}: {e:?}"));
}
