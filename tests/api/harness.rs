//! Starts a real server on 127.0.0.1:0 over SQLite or PostgreSQL and calls
//! it over REST (reqwest) or gRPC (the generated tonic clients), turning
//! either reply into the same JSON so that one assertion serves both.

use std::sync::Arc;
use std::time::Duration;

use authmux::api::grpc_code;
use authmux::config::Settings;
use authmux::domain::{Domain, ErrorCode};
use authmux::pb::DESCRIPTOR_SET;
use authmux::pb::v1 as pb;
use authmux::transcode::routes::{HttpRoute, pool, routes};
use prost::Message;
use prost_reflect::DynamicMessage;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tonic::transport::Channel;

/// Which database a test runs on.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Which transport a call uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Rest,
    Grpc,
}

/// An error reply, from either transport.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: String,
    pub message: String,
    /// REST: the HTTP status. gRPC: the canonical code as a number.
    pub status: u16,
    pub request_id: Option<String>,
    /// The Retry-After header (REST) or `retry-after` metadata (gRPC).
    pub retry_after: Option<u64>,
}

/// A running server.
pub struct Server {
    pub base: String,
    pub key: String,
    pub domain: Arc<Domain>,
    pub http: reqwest::Client,
    pub channel: Channel,
    pub database_url: String,
    data_dir: std::path::PathBuf,
    /// The vendor new users go to when a test names none.
    pub vendor: &'static str,
    /// The vendor's emulator, when one runs.
    pub emulator: Option<crate::emulators::Running>,
    /// Emulators of the other configured vendors.
    pub other_emulators: Vec<(&'static str, crate::emulators::Running)>,
    /// The Clerk emulator's signing keys, when it runs.
    pub clerk_keys: Option<crate::emulators::clerk::Keys>,
    /// The Supabase emulator's keys and sessions, when it runs.
    pub supabase: Option<crate::emulators::supabase::Handle>,
    /// The WorkOS emulator's sessions, when it runs.
    pub workos: Option<crate::emulators::workos::Handle>,
    routes: Vec<HttpRoute>,
    shutdown: Option<oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if self.database_url.starts_with("postgres") {
            drop_postgres_database(self.database_url.clone());
        }
    }
}

/// Drops a per-test database (closing its connections) from a thread of
/// its own, since `Drop` can't await.
pub fn drop_postgres_database(url: String) {
    let Ok(admin_url) = std::env::var("AUTHMUX_TEST_DATABASE_URL") else {
        return;
    };
    let Some((_, name)) = url.rsplit_once('/') else {
        return;
    };
    let name = name.to_owned();
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            use sea_orm::{ConnectionTrait, Database};
            if let Ok(admin) = Database::connect(&admin_url).await {
                let _ = admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
                let _ = admin.close().await;
            }
        });
    })
    .join();
}

/// A fresh PostgreSQL database for one test, or `None` (with the reason
/// printed) when `AUTHMUX_TEST_DATABASE_URL` is unset.
pub async fn postgres_database() -> Option<String> {
    let Ok(admin_url) = std::env::var("AUTHMUX_TEST_DATABASE_URL") else {
        eprintln!("skipped: AUTHMUX_TEST_DATABASE_URL is unset, so the PostgreSQL run is skipped");
        return None;
    };
    use sea_orm::{ConnectionTrait, Database};
    let admin = Database::connect(&admin_url)
        .await
        .expect("connect to AUTHMUX_TEST_DATABASE_URL");
    let name = format!("amx_t_{}", uuid::Uuid::now_v7().simple());
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create a test database");
    let _ = admin.close().await;
    let (base, _) = admin_url.rsplit_once('/').expect("URL ends with /database");
    Some(format!("{base}/{name}"))
}

impl Server {
    /// Starts a server, or `None` when the backend is not available here.
    pub async fn start(backend: Backend) -> Option<Server> {
        Self::start_with(backend, |_| {}).await
    }

    /// Starts a server with adjusted settings.
    pub async fn start_with(
        backend: Backend,
        adjust: impl FnOnce(&mut Settings),
    ) -> Option<Server> {
        crate::logs::capture();
        let dir = tempfile::tempdir().expect("temp dir");
        let database_url = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("authmux.db").display()),
            Backend::Postgres => postgres_database().await?,
        };
        let mut settings = Settings::new(dir.path());
        settings.store.database_url = Some(database_url.clone().into());
        adjust(&mut settings);
        Some(Self::start_on(dir, settings).await)
    }

    /// Starts a server whose new users go to `vendor`, backed by its
    /// emulator.
    pub async fn start_vendor(backend: Backend, vendor: &'static str) -> Option<Server> {
        Self::start_vendors(backend, &[vendor], |_| {}).await
    }

    /// Starts a server with every vendor in `vendors` configured against
    /// its own emulator; the first is where tests' new users go.
    pub async fn start_vendors(
        backend: Backend,
        vendors: &[&'static str],
        adjust: impl FnOnce(&mut Settings),
    ) -> Option<Server> {
        let mut started = Vec::new();
        let (mut keys, mut supabase, mut workos) = (None, None, None);
        for vendor in vendors {
            match *vendor {
                "native" => {}
                "clerk" => {
                    let (running, k) = crate::emulators::clerk::start_with_keys().await;
                    keys = Some(k);
                    started.push((*vendor, running));
                }
                "supabase" => {
                    let (running, h) = crate::emulators::supabase::start().await;
                    supabase = Some(h);
                    started.push((*vendor, running));
                }
                "workos" => {
                    let (running, h) = crate::emulators::workos::start().await;
                    workos = Some(h);
                    started.push((*vendor, running));
                }
                other => panic!("no emulator for {other}"),
            }
        }
        let bases: Vec<(&str, String)> = started
            .iter()
            .map(|(v, r)| (*v, r.base_url.clone()))
            .collect();
        let mut s = Self::start_with(backend, |c| {
            for (vendor, base) in &bases {
                match *vendor {
                    "clerk" => {
                        c.clerk.clerk_secret_key = Some(crate::emulators::clerk::SECRET_KEY.into());
                        c.clerk.clerk_base_url = base.clone();
                    }
                    "supabase" => {
                        c.supabase.supabase_url = Some(base.clone());
                        c.supabase.supabase_service_role_key =
                            Some(crate::emulators::supabase::SERVICE_ROLE_KEY.into());
                    }
                    "workos" => {
                        c.workos.workos_api_key = Some(crate::emulators::workos::API_KEY.into());
                        c.workos.workos_client_id =
                            Some(crate::emulators::workos::CLIENT_ID.into());
                        c.workos.workos_base_url = base.clone();
                    }
                    _ => {}
                }
            }
            if !bases.is_empty() {
                c.vendor_policy.vendor_timeout_ms = 2_000;
                c.vendor_policy.jwks_refetch_ms = 0;
                c.tokens.refresh_cooldown_secs = 0;
                // Probes would add requests the tests count; one test
                // turns them on.
                c.vendor_policy.vendor_probe_ms = 0;
            }
            adjust(c);
        })
        .await?;
        s.vendor = vendors[0];
        let mut started = started.into_iter();
        s.emulator = started.next().map(|(_, r)| r);
        s.other_emulators = started.collect();
        s.clerk_keys = keys;
        s.supabase = supabase;
        s.workos = workos;
        Some(s)
    }

    /// The vendor new users go to.
    pub fn vendor(&self) -> &'static str {
        self.vendor
    }

    /// Starts a server with the given settings, keeping `dir` alive.
    pub async fn start_on(dir: tempfile::TempDir, settings: Settings) -> Server {
        let database_url = settings.database_url().unwrap();
        let domain = settings.domain().await.expect("domain");
        let key = domain.create_api_key("tests").await.expect("key").key;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = authmux::server::app_with(domain.clone(), settings.limits())
            .await
            .expect("app");
        let (tx, rx) = oneshot::channel();
        tokio::spawn(authmux::server::serve(listener, app, async {
            let _ = rx.await;
        }));
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_timeout(Duration::from_secs(5))
            .connect_lazy();
        let routes = routes(&pool(DESCRIPTOR_SET).unwrap()).unwrap();
        Server {
            base: format!("http://{addr}"),
            key,
            domain,
            http: reqwest::Client::new(),
            channel,
            database_url,
            data_dir: dir.path().to_owned(),
            vendor: "native",
            emulator: None,
            other_emulators: Vec::new(),
            clerk_keys: None,
            supabase: None,
            workos: None,
            routes,
            shutdown: Some(tx),
            _dir: dir,
        }
    }

    /// The server's data directory (SQLite file, master key).
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// A key for another project.
    pub async fn key_for(&self, project: &str) -> String {
        self.domain.create_api_key(project).await.unwrap().key
    }

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
            && self.vendor != "native"
            && req.get("vendor").is_none()
            && req.get("mode").is_none()
        {
            req["vendor"] = json!(self.vendor);
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
            other => panic!("no client mapping for {other}"),
        }
    }

    /// The JSON a REST caller would see for this reply.
    fn to_json(&self, route: &HttpRoute, bytes: &[u8]) -> Value {
        let msg = DynamicMessage::decode(route.output(), bytes).unwrap();
        authmux::transcode::reply_json(&msg).unwrap()
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
    for (k, v) in headers {
        r.metadata_mut().insert(
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

/// Reads a REST reply; on error checks the body shape and that the HTTP
/// status is the one documented for the code.
pub async fn rest_result(resp: reqwest::Response) -> Result<Value, ApiError> {
    let status = resp.status().as_u16();
    let header_id = resp
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let retry_after = resp.headers().get("retry-after").map(|v| {
        v.to_str()
            .unwrap()
            .parse::<u64>()
            .expect("Retry-After in seconds")
    });
    assert!(header_id.is_some(), "every reply carries x-request-id");
    let body: Value = resp.json().await.expect("JSON body");
    if status == 200 {
        return Ok(body);
    }
    let err = &body["error"];
    let code = err["code"].as_str().expect("error.code").to_owned();
    let expected = ErrorCode::parse(&code).map(|c| c.http_status());
    assert_eq!(expected, Some(status), "HTTP status of {code}: {body}");
    let request_id = err["request_id"].as_str().map(str::to_owned);
    assert_eq!(request_id, header_id, "body and header request ids agree");
    Err(ApiError {
        code,
        message: err["message"].as_str().expect("error.message").to_owned(),
        status,
        request_id,
        retry_after,
    })
}

/// Reads a gRPC error; checks the ErrorInfo reason and canonical code.
pub fn grpc_error(status: tonic::Status) -> ApiError {
    use tonic_types::StatusExt;
    let info = status
        .get_error_details()
        .error_info()
        .cloned()
        .unwrap_or_else(|| panic!("status without ErrorInfo: {status:?}"));
    assert_eq!(info.domain, authmux::api::ERROR_DOMAIN);
    let code =
        ErrorCode::parse(&info.reason).unwrap_or_else(|| panic!("unknown reason {}", info.reason));
    assert_eq!(
        status.code(),
        grpc_code(code),
        "gRPC code of {}",
        info.reason
    );
    let retry_after = status.metadata().get("retry-after").map(|v| {
        v.to_str()
            .unwrap()
            .parse::<u64>()
            .expect("retry-after in seconds")
    });
    ApiError {
        code: info.reason,
        message: status.message().to_owned(),
        status: status.code() as u16,
        request_id: None,
        retry_after,
    }
}

/// Unwraps an error reply, failing on success.
pub fn expect_err(r: Result<Value, ApiError>, code: &str) -> ApiError {
    match r {
        Ok(v) => panic!("expected {code}, got {v}"),
        Err(e) => {
            assert_eq!(e.code, code, "{e:?}");
            e
        }
    }
}

/// Creates a user and returns its JSON.
pub async fn create_user(s: &Server, t: Transport, email: &str) -> Value {
    s.call(t, "auth.user.create", json!({"email": email}))
        .await
        .unwrap_or_else(|e| panic!("create {email}: {e:?}"))
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

/// Declares a scenario for SQLite and PostgreSQL over REST and gRPC; with
/// `vendors`, also against each vendor emulator (SQLite, both transports).
#[macro_export]
macro_rules! contract {
    ($name:ident) => {
        $crate::contract!($name, |_| {});
    };
    ($name:ident, vendors) => {
        $crate::contract!($name, vendors[clerk, workos, supabase]);
    };
    ($name:ident, vendors[$($vendor:ident),*]) => {
        $crate::contract!($name, |_| {}, vendors[$($vendor),*]);
    };
    ($name:ident, $adjust:expr, vendors[$($vendor:ident),*]) => {
        mod $name {
            use super::*;
            $crate::contract!(@native $name, $adjust);
            $($crate::contract!(@vendor $name, $vendor);)*
        }
    };
    ($name:ident, $adjust:expr) => {
        mod $name {
            use super::*;
            $crate::contract!(@native $name, $adjust);
        }
    };
    (@native $name:ident, $adjust:expr) => {
        async fn run(b: $crate::harness::Backend, t: $crate::harness::Transport) {
            if let Some(s) = $crate::harness::Server::start_with(b, $adjust).await {
                $name(&s, t).await;
            }
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn sqlite_rest() {
            run($crate::harness::Backend::Sqlite, $crate::harness::Transport::Rest).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn sqlite_grpc() {
            run($crate::harness::Backend::Sqlite, $crate::harness::Transport::Grpc).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn postgres_rest() {
            run($crate::harness::Backend::Postgres, $crate::harness::Transport::Rest).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn postgres_grpc() {
            run($crate::harness::Backend::Postgres, $crate::harness::Transport::Grpc).await
        }
    };
    (@vendor $name:ident, $vendor:ident) => {
        mod $vendor {
            use super::*;
            async fn run(t: $crate::harness::Transport) {
                let s = $crate::harness::Server::start_vendor(
                    $crate::harness::Backend::Sqlite,
                    stringify!($vendor),
                )
                .await
                .unwrap();
                $name(&s, t).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_rest() {
                run($crate::harness::Transport::Rest).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_grpc() {
                run($crate::harness::Transport::Grpc).await
            }
        }
    };
}

/// A running `authmux serve` process, killed when dropped.
pub struct Process {
    pub child: std::process::Child,
    pub base: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `authmux serve` on a free loopback port with data in `data_dir`
/// and the given extra environment; returns once it listens.
pub fn spawn_serve(data_dir: &std::path::Path, env: &[(&str, &str)]) -> Process {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_authmux"));
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .env("AUTHMUX_DATA_DIR", data_dir)
        .env("AUTHMUX_LOG_FORMAT", "json")
        .env_remove("AUTHMUX_DATABASE_URL")
        .env_remove("AUTHMUX_MASTER_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let address = loop {
        let line = lines.next().expect("the server logs").unwrap();
        let v: Value = serde_json::from_str(&line).unwrap_or_default();
        if let Some(a) = v["fields"]["address"].as_str() {
            break a.to_owned();
        }
    };
    // Keep draining the log so the process never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Process {
        child,
        base: format!("http://{address}"),
    }
}

/// Polls `check` every `every` until it holds; fails the test, saying
/// `what`, once `within` has passed.
pub async fn eventually<F, Fut>(within: Duration, every: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while !check().await {
        assert!(start.elapsed() < within, "{what}");
        tokio::time::sleep(every).await;
    }
}
