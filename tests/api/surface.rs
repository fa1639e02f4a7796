//! The transports themselves: REST parsing and errors, probes, OpenAPI,
//! gRPC health and reflection, discovery, the not-yet-served session RPCs,
//! and the CLI.

use std::process::Command;

use serde_json::{Value, json};

use crate::harness::{Backend, Server, Transport, create_user, expect_err, rest_result};
use authmux_testkit::contract;

async fn rest(
    s: &Server,
    method: reqwest::Method,
    path: &str,
    body: Option<&str>,
) -> Result<Value, crate::harness::ApiError> {
    let mut rb = s
        .http
        .request(method, format!("{}{path}", s.base))
        .bearer_auth(&s.key);
    if let Some(b) = body {
        rb = rb
            .header("content-type", "application/json")
            .body(b.to_owned());
    }
    rest_result(rb.send().await.unwrap()).await
}

#[tokio::test]
async fn rest_rejects_bad_json_naming_the_field() {
    let s = Server::start(Backend::Sqlite).await.unwrap();
    let post = reqwest::Method::POST;
    let e = expect_err(
        rest(
            &s,
            post.clone(),
            "/v1/auth/user/create",
            Some(r#"{"email":"a@b.co","colour":1}"#),
        )
        .await,
        "INVALID_ARGUMENT",
    );
    assert!(e.message.contains("colour"), "{e:?}");
    let e = expect_err(
        rest(
            &s,
            post.clone(),
            "/v1/auth/user/create",
            Some(r#"{"email":42}"#),
        )
        .await,
        "INVALID_ARGUMENT",
    );
    assert!(e.message.contains("email"), "{e:?}");
    let e = expect_err(
        rest(
            &s,
            post.clone(),
            "/v1/auth/user/create",
            Some(r#"{"email":"a@b.co","metadata":[1]}"#),
        )
        .await,
        "INVALID_ARGUMENT",
    );
    assert!(e.message.contains("metadata"), "{e:?}");
    let e = expect_err(
        rest(
            &s,
            post.clone(),
            "/v1/auth/user/create",
            Some(r#"{"email":"#),
        )
        .await,
        "INVALID_ARGUMENT",
    );
    assert!(e.message.contains("malformed JSON"), "{e:?}");
    expect_err(
        rest(&s, post.clone(), "/v1/auth/user/create", Some("[1,2]")).await,
        "INVALID_ARGUMENT",
    );
    // Whitespace alone is not JSON; an empty body is no body (and here
    // misses its email).
    let e = expect_err(
        rest(&s, post.clone(), "/v1/auth/user/create", Some(" \n")).await,
        "INVALID_ARGUMENT",
    );
    assert!(e.message.contains("malformed JSON"), "{e:?}");
    let e = expect_err(
        rest(&s, post.clone(), "/v1/auth/user/create", Some("")).await,
        "INVALID_ARGUMENT",
    );
    assert!(e.message.contains("email"), "{e:?}");
    let e = expect_err(
        rest(
            &s,
            reqwest::Method::GET,
            "/v1/auth/user/list?limit=ten",
            None,
        )
        .await,
        "INVALID_ARGUMENT",
    );
    assert!(e.message.contains("limit"), "{e:?}");
    let e = expect_err(
        rest(
            &s,
            reqwest::Method::GET,
            "/v1/auth/user/list?colour=red",
            None,
        )
        .await,
        "INVALID_ARGUMENT",
    );
    assert!(e.message.contains("colour"), "{e:?}");
    // Escapes that are not UTF-8 (here an overlong NUL) are refused, not
    // replaced with U+FFFD and looked up.
    let e = expect_err(
        rest(
            &s,
            reqwest::Method::GET,
            "/v1/auth/user/get_by_email?email=%C0%80@x.io",
            None,
        )
        .await,
        "INVALID_ARGUMENT",
    );
    assert_eq!(e.message, "query parameter email is not UTF-8", "{e:?}");
    let list = rest(&s, reqwest::Method::GET, "/v1/auth/user/list", None)
        .await
        .unwrap();
    assert_eq!(list, json!({"items": []}), "nothing was stored");
}

/// A path parameter comes from the path only: repeated in the body (equal
/// or not) it is refused, as the OpenAPI body schema (no such property,
/// no others allowed) says. So is an idempotency key outside its header.
#[tokio::test]
async fn rest_path_fields_and_header_fields_have_one_place() {
    let s = Server::start(Backend::Sqlite).await.unwrap();
    let u = create_user(&s, Transport::Rest, "p@example.com").await;
    let id = u["user_id"].as_str().unwrap();
    let path = format!("/v1/auth/consent/grant/{id}");
    for other in [id, "usr_someone_else"] {
        let body = json!({"user_id": other, "category": "x"}).to_string();
        let e = expect_err(
            rest(&s, reqwest::Method::POST, &path, Some(&body)).await,
            "INVALID_ARGUMENT",
        );
        assert!(
            e.message.contains("user_id") && e.message.contains("path"),
            "{e:?}"
        );
    }
    let body = json!({"category": "x", "idempotency_key": "k1"}).to_string();
    let e = expect_err(
        rest(&s, reqwest::Method::POST, &path, Some(&body)).await,
        "INVALID_ARGUMENT",
    );
    assert!(e.message.contains("Idempotency-Key header"), "{e:?}");
    let e = expect_err(
        rest(
            &s,
            reqwest::Method::DELETE,
            &format!("/v1/auth/user/delete/{id}?idempotency_key=k2"),
            None,
        )
        .await,
        "INVALID_ARGUMENT",
    );
    assert!(e.message.contains("Idempotency-Key header"), "{e:?}");
    let consents = rest(
        &s,
        reqwest::Method::GET,
        &format!("/v1/auth/consent/list_for_user/{id}"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(consents, json!({"items": []}), "nothing was stored");
    let body = json!({"category": "x"}).to_string();
    rest(&s, reqwest::Method::POST, &path, Some(&body))
        .await
        .unwrap();
}

#[tokio::test]
async fn rest_limits_and_unknown_routes() {
    let s = Server::start(Backend::Sqlite).await.unwrap();
    let big =
        json!({"email": "big@example.com", "metadata": {"x": "y".repeat(70 * 1024)}}).to_string();
    let e = expect_err(
        rest(
            &s,
            reqwest::Method::POST,
            "/v1/auth/user/create",
            Some(&big),
        )
        .await,
        "PAYLOAD_TOO_LARGE",
    );
    assert_eq!(e.status, 413);
    let e = expect_err(
        rest(&s, reqwest::Method::GET, "/v1/auth/nothing/here", None).await,
        "NOT_FOUND",
    );
    assert_eq!(e.status, 404);
    let e = expect_err(
        rest(&s, reqwest::Method::DELETE, "/v1/auth/user/create", None).await,
        "METHOD_NOT_ALLOWED",
    );
    assert_eq!(e.status, 405);
    // A caller's request id is echoed in the header and the error body.
    let resp = s
        .http
        .get(format!("{}/v1/auth/user/get/usr_x", s.base))
        .bearer_auth(&s.key)
        .header("x-request-id", "trace-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "trace-123");
    let e = expect_err(rest_result(resp).await, "AUTH_USER_NOT_FOUND");
    assert_eq!(e.request_id.as_deref(), Some("trace-123"));
}

/// How a REST path is matched and read: a parameter's percent-escapes are
/// decoded (and refused when they don't make UTF-8), a GET binding also
/// answers HEAD, another method is 405 with the path's methods in `Allow`,
/// and a path no binding has is 404 to a caller with a key and 401 to one
/// without (which paths exist is not told to strangers).
#[tokio::test]
async fn rest_paths_are_matched_and_decoded() {
    let s = Server::start(Backend::Sqlite).await.unwrap();
    let u = create_user(&s, Transport::Rest, "path@example.com").await;
    let id = u["user_id"].as_str().unwrap();
    let escaped = id.replace('_', "%5F");
    assert_ne!(escaped, id);
    let got = rest(
        &s,
        reqwest::Method::GET,
        &format!("/v1/auth/user/get/{escaped}"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(got["user_id"], id, "{got}");
    let e = expect_err(
        rest(
            &s,
            reqwest::Method::GET,
            "/v1/auth/user/get/usr%C0%80",
            None,
        )
        .await,
        "INVALID_ARGUMENT",
    );
    assert_eq!(e.message, "path parameter user_id is not UTF-8", "{e:?}");

    let head = s
        .http
        .head(format!("{}/v1/auth/user/get/{id}", s.base))
        .bearer_auth(&s.key)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert!(head.bytes().await.unwrap().is_empty());

    let resp = s
        .http
        .delete(format!("{}/v1/auth/user/create", s.base))
        .bearer_auth(&s.key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["allow"], "POST");
    expect_err(rest_result(resp).await, "METHOD_NOT_ALLOWED");

    let e = expect_err(
        rest(&s, reqwest::Method::GET, "/v1/auth/nothing/here", None).await,
        "NOT_FOUND",
    );
    assert_eq!(e.status, 404);
    let resp = s
        .http
        .get(format!("{}/v1/auth/nothing/here", s.base))
        .send()
        .await
        .unwrap();
    let e = expect_err(rest_result(resp).await, "AUTH_INVALID_API_KEY");
    assert_eq!(e.status, 401);
}

#[tokio::test]
async fn probes_and_openapi() {
    let s = Server::start(Backend::Sqlite).await.unwrap();
    for path in ["/healthz", "/readyz"] {
        let r = s
            .http
            .get(format!("{}{path}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let doc = s.openapi().await;
    assert_eq!(doc["openapi"], "3.1.0");
    for (path, method) in [
        ("/v1/auth/user/create", "post"),
        ("/v1/auth/user/update/{user_id}", "patch"),
        ("/v1/auth/user/delete/{user_id}", "delete"),
        ("/v1/auth/consent/check/{user_id}/{category}", "get"),
        ("/v1/auth/consent/history/{user_id}", "get"),
        ("/v1/auth/session/verify/{session_id}", "get"),
        ("/v1/discovery/{capability}", "get"),
        ("/v1/auth/oauth/start", "post"),
        ("/v1/auth/oauth/complete", "post"),
        ("/v1/auth/oauth/providers", "get"),
        ("/v1/auth/user/identities/{user_id}", "get"),
        ("/v1/auth/user/identities/{user_id}/{provider}", "delete"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
}

#[tokio::test]
async fn grpc_health_and_reflection() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let s = Server::start(Backend::Sqlite).await.unwrap();
    let mut health = HealthClient::new(s.channel.clone());
    for service in [
        "authmux.v1.UserService",
        "authmux.v1.SessionService",
        "authmux.v1.ConsentService",
        "authmux.v1.DiscoveryService",
        "authmux.v1.OAuthService",
    ] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.status(), ServingStatus::Serving, "{service}");
    }
    let mut refl = ServerReflectionClient::new(s.channel.clone());
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = refl
        .server_reflection_info(futures::stream::iter([req]))
        .await
        .unwrap()
        .into_inner();
    let resp = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("unexpected reflection reply");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for service in [
        "authmux.v1.UserService",
        "authmux.v1.ConsentService",
        "authmux.v1.OAuthService",
        "grpc.health.v1.Health",
    ] {
        assert!(names.iter().any(|n| n == service), "{names:?}");
    }
    // `grpcurl describe grpc.health.v1.Health` works: its file is known.
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(
            "grpc.health.v1.Health".into(),
        )),
    };
    let mut stream = refl
        .server_reflection_info(futures::stream::iter([req]))
        .await
        .unwrap()
        .into_inner();
    let resp = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::FileDescriptorResponse(files)) = resp.message_response else {
        panic!("grpc.health.v1.Health is not described: {resp:?}");
    };
    assert!(!files.file_descriptor_proto.is_empty());
}

async fn discovery(s: &Server, t: Transport) {
    let d = s
        .call(t, "discovery", json!({"capability": "auth.user.create"}))
        .await
        .unwrap();
    assert_eq!(d["capability"], "auth.user.create");
    let vendors = d["vendors"].as_array().unwrap();
    let names: Vec<&str> = vendors
        .iter()
        .map(|v| v["vendor"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["native", "clerk", "workos", "supabase"]);
    assert_eq!(vendors[0]["status"], "live");
    assert_eq!(vendors[0]["supports"], true);
    assert!(vendors.iter().all(|v| v["mode"] == "managed"), "{d}");
    // Whether an adapter can serve it, configured here or not.
    for v in &vendors[1..] {
        assert_eq!(v["status"], "not_configured", "{v}");
        assert_eq!(v["supports"], true, "{v}");
        assert!(v.get("p50_latency_ms").is_none(), "{v}");
    }
    for capability in [
        "auth.oauth.start",
        "auth.oauth.complete",
        "auth.oauth.providers",
        "auth.user.identities",
    ] {
        let d = s
            .call(t, "discovery", json!({"capability": capability}))
            .await
            .unwrap();
        assert_eq!(d["vendors"][0]["supports"], true, "{d}");
    }
    expect_err(
        s.call(t, "discovery", json!({"capability": "auth.user.teleport"}))
            .await,
        "NOT_FOUND",
    );
}

contract!(discovery);

fn authmux(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_authmux"))
        .args(args)
        .env("AUTHMUX_DATA_DIR", dir)
        .env_remove("AUTHMUX_DATABASE_URL")
        .env_remove("AUTHMUX_MASTER_KEY")
        .output()
        .unwrap()
}

#[tokio::test]
async fn cli_keys_and_first_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = authmux(dir.path(), &["keys", "create", "--project", "acme"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let key = stdout.lines().last().unwrap().to_owned();
    assert!(key.starts_with("amx_") && key.len() > 40, "{stdout}");
    let key_id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("key id: "))
        .unwrap()
        .to_owned();

    let listed = authmux(dir.path(), &["keys", "list"]);
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert!(listed.contains(&key_id) && listed.contains("acme") && listed.contains("active"));
    assert!(!listed.contains(&key[8..]), "the secret is never listed");

    // The database holds only a hash of the key.
    let db = std::fs::read(dir.path().join("authmux.db")).unwrap();
    let wal = std::fs::read(dir.path().join("authmux.db-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(!bytes.windows(key.len()).any(|w| w == key.as_bytes()));
    }

    let out = authmux(dir.path(), &["keys", "revoke", &key_id]);
    assert!(out.status.success());
    let listed = String::from_utf8(authmux(dir.path(), &["keys", "list"]).stdout).unwrap();
    assert!(listed.contains("revoked"));
    let again = authmux(dir.path(), &["keys", "revoke", &key_id]);
    assert!(!again.status.success(), "a second revoke fails");

    let out = authmux(dir.path(), &["migrate"]);
    assert!(out.status.success());
}

#[tokio::test]
async fn first_serve_prints_a_default_key_once() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_authmux"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("AUTHMUX_DATA_DIR", dir.path())
            .env_remove("AUTHMUX_DATABASE_URL")
            .env_remove("AUTHMUX_MASTER_KEY")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Reads stderr until the listening line, then stops the process and
    // returns what it printed on stdout.
    let run = |mut child: std::process::Child| {
        let stderr = BufReader::new(child.stderr.take().unwrap());
        for line in stderr.lines() {
            if line.unwrap().contains("listening") {
                break;
            }
        }
        child.kill().unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let first = run(spawn());
    let key = first
        .lines()
        .find(|l| l.starts_with("amx_"))
        .expect("a key on first start");
    let second = run(spawn());
    assert!(
        !second.contains("amx_"),
        "the key is printed once: {second}"
    );

    // The printed key works.
    let settings = authmux::config::Settings::new(dir.path());
    let domain = settings.domain().await.unwrap();
    let project = domain
        .authenticate(Some(&format!("Bearer {key}")))
        .await
        .unwrap();
    assert_eq!(project.name, "default");
}

// Multi-threaded: the CLI runs as a blocking child process while this
// process's server must keep serving (and finishing its transactions).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_rotation_reaches_a_running_server() {
    let s = Server::start(Backend::Sqlite).await.unwrap();
    let jwks = || async {
        let v: Value = s
            .http
            .get(format!("{}/.well-known/jwks.json", s.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["keys"].as_array().unwrap().len()
    };
    assert_eq!(jwks().await, 1);
    let out = Command::new(env!("CARGO_BIN_EXE_authmux"))
        .args(["signing-keys", "rotate"])
        .env("AUTHMUX_DATA_DIR", s.data_dir())
        .env("AUTHMUX_DATABASE_URL", &s.database_url)
        .env_remove("AUTHMUX_MASTER_KEY")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let kid = stdout.split_whitespace().nth(3).unwrap().to_owned();
    crate::harness::eventually(
        std::time::Duration::from_secs(3),
        std::time::Duration::from_millis(100),
        "rotation not picked up",
        || async { jwks().await >= 2 },
    )
    .await;
    assert_eq!(
        s.domain.keyring().signer().kid,
        kid,
        "the server signs with the new key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_then_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = crate::harness::spawn_serve(
        dir.path(),
        &[
            ("AUTHMUX_SHUTDOWN_DRAIN_SECS", "2"),
            ("AUTHMUX_SHUTDOWN_GRACE_SECS", "5"),
        ],
    );
    let http = reqwest::Client::new();
    let ready = || http.get(format!("{}/readyz", p.base)).send();
    assert_eq!(ready().await.unwrap().status(), 200);
    let killed = Command::new("kill")
        .args(["-TERM", &p.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // Still serving during the drain, but not ready.
    assert_eq!(ready().await.unwrap().status(), 503);
    let status = tokio::task::block_in_place(|| p.child.wait().unwrap());
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test]
async fn config_files_sit_between_defaults_and_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("from-file");
    let toml_file = dir.path().join("authmux.toml");
    std::fs::write(
        &toml_file,
        format!(
            "data_dir = {:?}\nsigning_alg = \"RS256\"\naccess_ttl_secs = 600\n",
            data.display().to_string()
        ),
    )
    .unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_authmux"));
        c.args(args)
            .env_remove("AUTHMUX_DATA_DIR")
            .env_remove("AUTHMUX_DATABASE_URL")
            .env_remove("AUTHMUX_MASTER_KEY")
            .env_remove("AUTHMUX_CONFIG")
            .current_dir(dir.path());
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let cfg = toml_file.to_str().unwrap();
    let out = run(&["keys", "create", "--project", "p", "--config", cfg], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        data.join("authmux.db").exists(),
        "data_dir came from the file"
    );

    // The environment beats the file, and YAML works the same way.
    let env_data = dir.path().join("from-env");
    let yaml_file = dir.path().join("authmux.yaml");
    std::fs::write(&yaml_file, format!("data_dir: {}\n", data.display())).unwrap();
    let out = run(
        &["keys", "create", "--project", "p"],
        &[
            ("AUTHMUX_CONFIG", yaml_file.to_str().unwrap()),
            ("AUTHMUX_DATA_DIR", env_data.to_str().unwrap()),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(env_data.join("authmux.db").exists());

    // Secrets can come from files, as Kubernetes mounts them.
    let key_file = dir.path().join("master.key.secret");
    std::fs::write(&key_file, "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=\n").unwrap();
    let file_data = dir.path().join("with-key-file");
    let out = run(
        &["keys", "create", "--project", "p"],
        &[
            ("AUTHMUX_DATA_DIR", file_data.to_str().unwrap()),
            ("AUTHMUX_MASTER_KEY_FILE", key_file.to_str().unwrap()),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!file_data.join("master.key").exists(), "no key generated");
    let out = run(
        &["keys", "list"],
        &[
            ("AUTHMUX_DATA_DIR", file_data.to_str().unwrap()),
            ("AUTHMUX_MASTER_KEY_FILE", "/nonexistent"),
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("AUTHMUX_MASTER_KEY_FILE"));

    // Mistakes fail at start-up, naming the setting.
    std::fs::write(&toml_file, "data_dri = \"x\"\n").unwrap();
    let out = run(&["migrate", "--config", cfg], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("data_dri"));
    std::fs::write(&toml_file, "signing_alg = \"HS256\"\n").unwrap();
    let out = run(&["migrate", "--config", cfg], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("HS256") && err.contains("signing"), "{err}");
}

#[tokio::test]
async fn serve_leaves_migrations_to_the_hook_when_told() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_authmux"))
            .args(args)
            .env("AUTHMUX_DATA_DIR", dir.path())
            .env("AUTHMUX_MIGRATE_ON_START", "false")
            .env("AUTHMUX_SHUTDOWN_DRAIN_SECS", "0")
            .env_remove("AUTHMUX_DATABASE_URL")
            .env_remove("AUTHMUX_MASTER_KEY")
            .output()
            .unwrap()
    };
    // Without the hook's migration there is no schema, and serve says so.
    let out = run(&["serve", "--listen", "127.0.0.1:0"]);
    assert!(!out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).is_empty());
    // After `authmux migrate`, the other commands find the schema in place.
    assert!(run(&["migrate"]).status.success());
    let out = run(&["keys", "create", "--project", "p"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
