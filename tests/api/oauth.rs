//! OAuth / OpenID Connect sign-in, against a certified OpenID provider
//! (panva/node-oidc-provider from npm, run with Node from `tests/oidc/`)
//! and a GitHub-shaped OAuth 2.0 emulator. Each security rule of the
//! relying party is tried on its own.

use authmux::vendors::VendorKind;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use authmux::domain::SetProvider;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::emulators::github;
use crate::harness::{Backend, Server, Transport, expect_err};

const REDIRECT: &str = "http://127.0.0.1:9/callback";
const CLIENT_SECRET: &str = "oidc-test-secret";

/// A running OpenID provider; killed on drop.
struct OpenIdProvider {
    issuer: String,
    port: u16,
    config: PathBuf,
    child: Option<tokio::process::Child>,
    _dir: tempfile::TempDir,
}

fn oidc_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc")
}

/// Installs the provider from the lock file once per test run; `None`
/// (with the reason printed) when Node is not on this machine.
async fn node_ready() -> Option<()> {
    static READY: tokio::sync::OnceCell<bool> = tokio::sync::OnceCell::const_new();
    let ok = *READY
        .get_or_init(|| async {
            if std::process::Command::new("node")
                .arg("--version")
                .output()
                .is_err()
            {
                assert!(
                    std::env::var_os("AUTHMUX_REQUIRE_NODE").is_none(),
                    "AUTHMUX_REQUIRE_NODE is set but node is not installed"
                );
                eprintln!("skipping: node is not installed, so the OpenID provider can't run");
                return false;
            }
            if !oidc_dir().join("node_modules/oidc-provider").exists() {
                let out = tokio::process::Command::new("npm")
                    .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                    .current_dir(oidc_dir())
                    .output()
                    .await
                    .expect("npm runs");
                assert!(
                    out.status.success(),
                    "npm ci in tests/oidc: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            true
        })
        .await;
    ok.then_some(())
}

impl OpenIdProvider {
    /// Starts a provider with one client per `(client_id, alg)` and these
    /// accounts: `(id, email, email_verified)`.
    async fn start(clients: &[(&str, &str)], accounts: &[(&str, &str, bool)]) -> Option<Self> {
        node_ready().await?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("provider.json");
        let accounts: serde_json::Map<String, Value> = accounts
            .iter()
            .map(|(id, email, verified)| {
                (
                    id.to_string(),
                    json!({"email": email, "email_verified": verified}),
                )
            })
            .collect();
        let clients: Vec<Value> = clients
            .iter()
            .map(|(id, alg)| {
                json!({
                    "client_id": id,
                    "client_secret": CLIENT_SECRET,
                    "redirect_uris": [REDIRECT],
                    "id_token_signed_response_alg": alg,
                })
            })
            .collect();
        std::fs::write(
            &config,
            json!({"port": port, "clients": clients, "accounts": accounts}).to_string(),
        )
        .unwrap();
        let mut p = OpenIdProvider {
            issuer: format!("http://127.0.0.1:{port}"),
            port,
            config,
            child: None,
            _dir: dir,
        };
        p.run().await;
        Some(p)
    }

    /// A provider with the client `app` (RS256) and one account `id`
    /// whose email, `id@example.com`, is verified.
    async fn for_app(id: &str) -> Option<Self> {
        let email = format!("{id}@example.com");
        Self::start(&[("app", "RS256")], &[(id, &email, true)]).await
    }

    async fn run(&mut self) {
        let mut child = tokio::process::Command::new("node")
            .arg(oidc_dir().join("server.mjs"))
            .arg(&self.config)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("node starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if line.starts_with("listening") {
                    return;
                }
            }
            panic!("the OpenID provider exited");
        });
        ready.await.expect("the OpenID provider starts");
        // Keep reading: a closed pipe would end the provider at its next
        // line of output.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.child = Some(child);
    }

    /// Stops the provider (its keys and grants go with it).
    async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().await.ok();
            c.wait().await.ok();
        }
        // Wait until the port is really closed.
        for _ in 0..50 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Restarts it with fresh signing keys: a key rotation.
    async fn rotate(&mut self) {
        self.stop().await;
        self.run().await;
    }

    async fn tamper_id_tokens(&self) {
        reqwest::Client::new()
            .post(format!("{}/__tamper", self.issuer))
            .send()
            .await
            .unwrap();
    }
}

/// What the provider sent the browser back with.
#[derive(Debug)]
struct Callback {
    params: std::collections::HashMap<String, String>,
}

impl Callback {
    fn get(&self, k: &str) -> Option<&str> {
        self.params.get(k).map(String::as_str)
    }

    /// The body of `oauth.complete` an app would send.
    fn complete(&self) -> Value {
        let mut b = json!({"state": self.get("state"), "code": self.get("code")});
        if let Some(iss) = self.get("iss") {
            b["iss"] = json!(iss);
        }
        b
    }
}

/// A browser: follows the provider's redirects and signs in as `account`
/// on its login page, until the provider sends it to the redirect URI.
async fn browse(authorization_url: &str, account: &str) -> Callback {
    let c = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut url = url::Url::parse(authorization_url).unwrap();
    for _ in 0..12 {
        let r = c.get(url.clone()).send().await.unwrap();
        let r = if r.status().is_redirection() {
            r
        } else {
            let page = r.text().await.unwrap();
            assert!(page.contains("name=\"login\""), "a login page: {page}");
            c.post(url.clone())
                .form(&[("prompt", "login"), ("login", account), ("password", "x")])
                .send()
                .await
                .unwrap()
        };
        assert!(r.status().is_redirection(), "{}", r.status());
        let next = url.join(r.headers()["location"].to_str().unwrap()).unwrap();
        if next.as_str().starts_with(REDIRECT) {
            return Callback {
                params: next.query_pairs().into_owned().collect(),
            };
        }
        url = next;
    }
    panic!("the provider never sent the browser back");
}

/// Configures provider `name` for project `tests` (the harness key's).
async fn configure(s: &Server, name: &str, client_id: &str, issuer: &str) {
    s.domain
        .set_oauth_provider(
            "tests",
            name,
            SetProvider {
                client_id: client_id.into(),
                client_secret: CLIENT_SECRET.into(),
                issuer: Some(issuer.into()),
                redirect_uris: vec![REDIRECT.into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
}

async fn start(s: &Server, t: Transport, provider: &str) -> Value {
    let mut body = json!({"provider": provider, "redirect_uri": REDIRECT});
    // New users go to the server's vendor, as `user.create` does.
    if s.vendor != VendorKind::Native {
        body["vendor"] = json!(s.vendor);
    }
    s.call(t, "auth.oauth.start", body).await.unwrap()
}

/// Signs `account` in through `provider` from start to complete.
async fn sign_in(s: &Server, t: Transport, provider: &str, account: &str) -> Value {
    let started = start(s, t, provider).await;
    let back = browse(started["authorization_url"].as_str().unwrap(), account).await;
    assert_eq!(back.get("state"), started["state"].as_str());
    s.call(t, "auth.oauth.complete", back.complete())
        .await
        .unwrap()
}

fn claims(token: &str) -> Value {
    crate::sessions::claims(token)
}

/// The happy path on every vendor of record, over both transports: a
/// new user is created at the vendor, signed in with `amr` naming the
/// provider, and the same identity signs in again to the same user.
#[tokio::test]
async fn openid_sign_in_on_every_vendor() {
    let Some(op) = OpenIdProvider::start(
        &[("app", "RS256")],
        &[
            ("alice", "alice@example.com", true),
            ("bob", "bob@example.com", true),
        ],
    )
    .await
    else {
        return;
    };
    for vendor in [
        VendorKind::Native,
        VendorKind::Clerk,
        VendorKind::Workos,
        VendorKind::Supabase,
    ] {
        let s = Server::start_vendor(Backend::Sqlite, vendor).await.unwrap();
        if vendor == VendorKind::Supabase {
            s.supabase.as_ref().unwrap().allow_unverified_sign_ins(true);
        }
        configure(&s, "corp", "app", &op.issuer).await;
        for (t, account) in [(Transport::Rest, "alice"), (Transport::Grpc, "bob")] {
            let first = sign_in(&s, t, "corp", account).await;
            assert_eq!(first["created"], true, "{vendor}: {first}");
            let user = &first["user"];
            assert_eq!(user["email"], format!("{account}@example.com"));
            assert_eq!(user["vendor"], vendor.as_str());
            assert_eq!(user["email_verified"], true, "{vendor}: {user}");
            let token = first["session"]["access_token"].as_str().unwrap();
            let v = s
                .call(t, "auth.session.verify", json!({"session_id": token}))
                .await
                .unwrap();
            assert_eq!(v["valid"], true, "{vendor}: {v}");
            assert_eq!(v["user_id"], user["user_id"]);
            if vendor == VendorKind::Native {
                assert_eq!(claims(token)["amr"], json!(["oauth", "corp"]));
            }
            let again = sign_in(&s, t, "corp", account).await;
            assert_eq!(again["created"], false);
            assert_eq!(again["user"]["user_id"], user["user_id"]);
            let ids = s
                .call(
                    t,
                    "auth.user.identities@get",
                    json!({"user_id": user["user_id"]}),
                )
                .await
                .unwrap();
            let ids = ids["identities"].as_array().unwrap();
            assert_eq!(ids.len(), 1, "{ids:?}");
            assert_eq!(ids[0]["provider"], "corp");
            assert_eq!(ids[0]["subject"], account);
        }
    }
}

/// ES256 ID tokens verify too (the algorithm comes from the key).
#[tokio::test]
async fn es256_id_tokens() {
    let Some(op) =
        OpenIdProvider::start(&[("ec-app", "ES256")], &[("eve", "eve@example.com", true)]).await
    else {
        return;
    };
    let s = Server::start(Backend::Sqlite).await.unwrap();
    configure(&s, "ec", "ec-app", &op.issuer).await;
    let r = sign_in(&s, Transport::Rest, "ec", "eve").await;
    assert_eq!(r["created"], true);
}

/// Linking: a verified email links to the existing user; an unverified
/// one never does; and nothing links across projects.
#[tokio::test]
async fn linking_only_by_a_verified_email_and_never_across_projects() {
    let Some(op) = OpenIdProvider::start(
        &[("app", "RS256")],
        &[
            ("verified", "known@example.com", true),
            ("unverified", "other@example.com", false),
        ],
    )
    .await
    else {
        return;
    };
    let s = Server::start(Backend::Sqlite).await.unwrap();
    configure(&s, "corp", "app", &op.issuer).await;
    let t = Transport::Rest;
    let known = crate::harness::create_user(&s, t, "known@example.com").await["user_id"].clone();
    let other = crate::harness::create_user(&s, t, "other@example.com").await["user_id"].clone();
    // Another project has a user with the verified email too.
    let beta = s.key_for("beta").await;
    let beta_user = s
        .call_as(
            t,
            &beta,
            "auth.user.create",
            json!({"email": "known@example.com"}),
            &[],
        )
        .await
        .unwrap();

    let r = sign_in(&s, t, "corp", "verified").await;
    assert_eq!(r["created"], false);
    assert_eq!(r["user"]["user_id"], known);
    assert_ne!(r["user"]["user_id"], beta_user["user_id"]);

    let started = start(&s, t, "corp").await;
    let back = browse(started["authorization_url"].as_str().unwrap(), "unverified").await;
    let e = expect_err(
        s.call(t, "auth.oauth.complete", back.complete()).await,
        "AUTH_USER_EXISTS",
    );
    assert!(e.message.contains("verified"), "{e:?}");
    let ids = s
        .call(t, "auth.user.identities@get", json!({"user_id": other}))
        .await
        .unwrap();
    assert!(ids["identities"].as_array().unwrap().is_empty(), "{ids}");
    // The other project's user is untouched.
    let ids = s
        .call_as(
            t,
            &beta,
            "auth.user.identities@get",
            json!({"user_id": beta_user["user_id"]}),
            &[],
        )
        .await
        .unwrap();
    assert!(ids["identities"].as_array().unwrap().is_empty(), "{ids}");
}

/// The state: single use, bound to its project and to a registered
/// redirect URI, 10 minutes; and the RFC 9207 `iss` the provider sends.
#[tokio::test]
async fn the_state_is_single_use_bound_and_short_lived() {
    let Some(op) = OpenIdProvider::for_app("alice").await else {
        return;
    };
    let s = Server::start(Backend::Sqlite).await.unwrap();
    configure(&s, "corp", "app", &op.issuer).await;
    for t in [Transport::Rest, Transport::Grpc] {
        // Wrong redirect URI: refused before anything is stored.
        let e = expect_err(
            s.call(
                t,
                "auth.oauth.start",
                json!({"provider": "corp", "redirect_uri": "http://127.0.0.1:9/other"}),
            )
            .await,
            "INVALID_ARGUMENT",
        );
        assert!(e.message.contains("redirect_uri"), "{e:?}");
        for (body, code) in [
            (json!({"provider": "nope"}), "NOT_FOUND"),
            (
                json!({"provider": "corp", "mode": "other"}),
                "INVALID_ARGUMENT",
            ),
            (
                json!({"provider": "corp", "vendor": "okta"}),
                "INVALID_ARGUMENT",
            ),
            (
                json!({"provider": "corp", "mode": "byok"}),
                "AUTH_VENDOR_REQUIRED",
            ),
            (
                json!({"provider": "corp", "scopes": ["a\"b"]}),
                "INVALID_ARGUMENT",
            ),
        ] {
            let mut body = body;
            body["redirect_uri"] = json!(REDIRECT);
            expect_err(s.call(t, "auth.oauth.start", body).await, code);
        }
        // A login hint and extra scopes reach the provider.
        let hinted = s
            .call(
                t,
                "auth.oauth.start",
                json!({"provider": "corp", "redirect_uri": REDIRECT,
                       "login_hint": "alice@example.com", "scopes": ["offline_access"]}),
            )
            .await
            .unwrap();
        let url = url::Url::parse(hinted["authorization_url"].as_str().unwrap()).unwrap();
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["login_hint"], "alice@example.com");
        assert_eq!(q["scope"], "openid email profile offline_access");

        let started = start(&s, t, "corp").await;
        let state = started["state"].as_str().unwrap();
        assert!(state.len() >= 43, "256 bits: {state}");
        let url = url::Url::parse(started["authorization_url"].as_str().unwrap()).unwrap();
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["code_challenge_method"], "S256");
        assert!(q.contains_key("nonce") && q.contains_key("code_challenge"));
        let back = browse(url.as_str(), "alice").await;
        assert!(back.get("iss").is_some(), "the provider sends iss");

        // Another project can't use it.
        let beta = s.key_for("beta-state").await;
        expect_err(
            s.call_as(t, &beta, "auth.oauth.complete", back.complete(), &[])
                .await,
            "AUTH_OAUTH_STATE_INVALID",
        );
        // A missing or foreign iss is refused (mix-up defence).
        let mut no_iss = back.complete();
        no_iss.as_object_mut().unwrap().remove("iss");
        expect_err(
            s.call(t, "auth.oauth.complete", no_iss).await,
            "AUTH_OAUTH_DENIED",
        );
        // That attempt used the state: it never completes again.
        expect_err(
            s.call(t, "auth.oauth.complete", back.complete()).await,
            "AUTH_OAUTH_STATE_INVALID",
        );

        // A fresh one completes once, and its replay is refused.
        let started = start(&s, t, "corp").await;
        let back = browse(started["authorization_url"].as_str().unwrap(), "alice").await;
        let mut foreign = back.complete();
        foreign["iss"] = json!("https://attacker.example");
        // (checked on a copy so the real one still works below)
        let started2 = start(&s, t, "corp").await;
        let back2 = browse(started2["authorization_url"].as_str().unwrap(), "alice").await;
        let mut foreign2 = back2.complete();
        foreign2["iss"] = foreign["iss"].clone();
        expect_err(
            s.call(t, "auth.oauth.complete", foreign2).await,
            "AUTH_OAUTH_DENIED",
        );
        s.call(t, "auth.oauth.complete", back.complete())
            .await
            .unwrap();
        expect_err(
            s.call(t, "auth.oauth.complete", back.complete()).await,
            "AUTH_OAUTH_STATE_INVALID",
        );

        // Ten minutes later a state is dead.
        let started = start(&s, t, "corp").await;
        let back = browse(started["authorization_url"].as_str().unwrap(), "alice").await;
        s.domain.clock().advance(Duration::from_millis(
            authmux::domain::STATE_TTL_MS as u64 + 1,
        ));
        expect_err(
            s.call(t, "auth.oauth.complete", back.complete()).await,
            "AUTH_OAUTH_STATE_INVALID",
        );
        // And the purge removes the dead states.
        let purged = s.domain.purge(s.domain.clock().now_millis()).await.unwrap();
        assert!(purged.oauth_states >= 1, "{purged:?}");
    }
}

/// Two completes of one state at once, on each database: exactly one
/// session. With an idempotency key, the replay of a completed sign-in
/// answers the same session without exchanging the code again.
#[tokio::test]
async fn a_state_raced_completes_once() {
    let Some(op) = OpenIdProvider::for_app("alice").await else {
        return;
    };
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(s) = Server::start(backend).await else {
            continue;
        };
        configure(&s, "corp", "app", &op.issuer).await;
        let t = Transport::Rest;
        let started = start(&s, t, "corp").await;
        let back = browse(started["authorization_url"].as_str().unwrap(), "alice").await;
        let body = back.complete();
        let (a, b) = tokio::join!(
            s.call(t, "auth.oauth.complete", body.clone()),
            s.call(Transport::Grpc, "auth.oauth.complete", body.clone()),
        );
        let ok = [&a, &b].iter().filter(|r| r.is_ok()).count();
        assert_eq!(ok, 1, "{a:?} {b:?}");
        for r in [a, b] {
            if let Err(e) = r {
                assert_eq!(e.code, "AUTH_OAUTH_STATE_INVALID", "{e:?}");
            }
        }

        let started = start(&s, t, "corp").await;
        let back = browse(started["authorization_url"].as_str().unwrap(), "alice").await;
        let mut body = back.complete();
        body["idempotency_key"] = json!("complete-once");
        let first = s
            .call(t, "auth.oauth.complete", body.clone())
            .await
            .unwrap();
        let replay = s
            .call(t, "auth.oauth.complete", body.clone())
            .await
            .unwrap();
        assert_eq!(
            first["session"]["session_id"],
            replay["session"]["session_id"]
        );
        // The same key with another state is refused.
        body["state"] = json!("another-state");
        expect_err(
            s.call(t, "auth.oauth.complete", body).await,
            "IDEMPOTENCY_KEY_REUSED",
        );
    }
}

/// `authmux oauth set/list/remove`: the secret is read from a file, sealed
/// (never in the database as written), never listed; bad settings are
/// refused with the reason.
#[tokio::test]
async fn cli_configures_providers() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_authmux"))
            .args(args)
            .env("AUTHMUX_DATA_DIR", dir.path())
            .env_remove("AUTHMUX_DATABASE_URL")
            .env_remove("AUTHMUX_MASTER_KEY")
            .output()
            .unwrap()
    };
    assert!(
        run(&["keys", "create", "--project", "acme"])
            .status
            .success()
    );
    let secret = "gh-secret-value-0123456789";
    let secret_file = dir.path().join("github.secret");
    std::fs::write(&secret_file, format!("{secret}\n")).unwrap();
    let secret_path = secret_file.to_str().unwrap();
    let set = |provider: &str, extra: &[&str]| {
        let mut args = vec![
            "oauth",
            "set",
            "--project",
            "acme",
            "--provider",
            provider,
            "--client-id",
            "Iv1.cli",
            "--client-secret-file",
            secret_path,
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    let out = set("github", &["--redirect-uri", "https://app.acme.example/cb"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = String::from_utf8(run(&["oauth", "list"]).stdout).unwrap();
    assert!(listed.contains("acme") && listed.contains("github") && listed.contains("Iv1.cli"));
    assert!(
        listed.contains("https://github.com") && listed.contains("https://app.acme.example/cb")
    );
    assert!(!listed.contains(secret), "{listed}");
    let db = std::fs::read(dir.path().join("authmux.db")).unwrap();
    let wal = std::fs::read(dir.path().join("authmux.db-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()));
    }
    for (provider, extra, why) in [
        (
            "okta",
            vec!["--redirect-uri", "https://a.example/cb"],
            "issuer",
        ),
        (
            "okta",
            vec![
                "--issuer",
                "http://idp.example",
                "--redirect-uri",
                "https://a.example/cb",
            ],
            "https",
        ),
        (
            "google",
            vec!["--redirect-uri", "javascript:alert(1)"],
            "redirect URI",
        ),
        (
            "Bad Name",
            vec!["--redirect-uri", "https://a.example/cb"],
            "provider",
        ),
    ] {
        let out = set(provider, &extra);
        assert!(!out.status.success(), "{provider} {extra:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{why}: {err}");
    }
    assert!(
        run(&[
            "oauth",
            "remove",
            "--project",
            "acme",
            "--provider",
            "github"
        ])
        .status
        .success()
    );
    assert!(
        !run(&[
            "oauth",
            "remove",
            "--project",
            "acme",
            "--provider",
            "github"
        ])
        .status
        .success()
    );
    let listed = String::from_utf8(run(&["oauth", "list"]).stdout).unwrap();
    assert!(!listed.contains("Iv1.cli"), "{listed}");
}

/// The authorization URL of `started` with one parameter changed, as an
/// attacker would change it.
fn with_param(started: &Value, name: &str, value: &str) -> String {
    let mut url = url::Url::parse(started["authorization_url"].as_str().unwrap()).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == name {
                value.to_owned()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(&pairs);
    url.into()
}

/// What the provider sends must check out: a nonce from another request,
/// an altered ID token signature and a wrong PKCE verifier are refused;
/// a provider that rotated its keys is followed.
#[tokio::test]
async fn id_tokens_nonces_pkce_and_key_rotation() {
    let Some(mut op) = OpenIdProvider::for_app("alice").await else {
        return;
    };
    // Keys are fetched again as soon as an unknown kid shows up.
    let s = Server::start_vendors(Backend::Sqlite, &[VendorKind::Native], |c| {
        c.vendor_policy.jwks_refetch_ms = 0
    })
    .await
    .unwrap();
    configure(&s, "corp", "app", &op.issuer).await;
    let t = Transport::Grpc;

    // Nonce mismatch: the code was obtained with another nonce.
    let started = start(&s, t, "corp").await;
    let url = with_param(&started, "nonce", "injected");
    let back = browse(&url, "alice").await;
    let e = expect_err(
        s.call(t, "auth.oauth.complete", back.complete()).await,
        "AUTH_OAUTH_DENIED",
    );
    assert!(e.message.contains("nonce"), "{e:?}");

    // PKCE: a code obtained for another challenge does not exchange.
    let started = start(&s, t, "corp").await;
    let url = with_param(
        &started,
        "code_challenge",
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
    );
    let back = browse(&url, "alice").await;
    let e = expect_err(
        s.call(t, "auth.oauth.complete", back.complete()).await,
        "AUTH_OAUTH_DENIED",
    );
    assert!(e.message.contains("invalid_grant"), "{e:?}");

    // Key rotation: the provider restarts with new keys; the next sign-in
    // fetches them.
    sign_in(&s, t, "corp", "alice").await;
    op.rotate().await;
    sign_in(&s, t, "corp", "alice").await;

    // A tampered ID token signature.
    op.tamper_id_tokens().await;
    let started = start(&s, t, "corp").await;
    let back = browse(started["authorization_url"].as_str().unwrap(), "alice").await;
    let e = expect_err(
        s.call(t, "auth.oauth.complete", back.complete()).await,
        "AUTH_OAUTH_DENIED",
    );
    assert!(e.message.contains("bad_signature"), "{e:?}");
}

/// The provider down: 503 VENDOR_UNAVAILABLE, and the user's denial is
/// AUTH_OAUTH_DENIED.
#[tokio::test]
async fn provider_down_and_user_denial() {
    let Some(mut op) = OpenIdProvider::for_app("alice").await else {
        return;
    };
    let s = Server::start(Backend::Sqlite).await.unwrap();
    configure(&s, "corp", "app", &op.issuer).await;
    let t = Transport::Rest;
    let started = start(&s, t, "corp").await;
    expect_err(
        s.call(
            t,
            "auth.oauth.complete",
            json!({"state": started["state"], "error": "access_denied"}),
        )
        .await,
        "AUTH_OAUTH_DENIED",
    );
    let started = start(&s, t, "corp").await;
    let back = browse(started["authorization_url"].as_str().unwrap(), "alice").await;
    op.stop().await;
    let e = expect_err(
        s.call(t, "auth.oauth.complete", back.complete()).await,
        "VENDOR_UNAVAILABLE",
    );
    assert_eq!(e.status, 503, "{e:?}");
}

/// An MFA-enabled user needs the second factor: the same state completes
/// with `mfa_factor` alone within 5 minutes, once, never exchanging the
/// code twice.
#[tokio::test]
async fn mfa_users_finish_with_their_second_factor() {
    let Some(op) = OpenIdProvider::for_app("mfa").await else {
        return;
    };
    let s = Server::start(Backend::Sqlite).await.unwrap();
    configure(&s, "corp", "app", &op.issuer).await;
    let first = sign_in(&s, Transport::Rest, "corp", "mfa").await;
    let user_id = first["user"]["user_id"].clone();
    let enrolled = s
        .call(
            Transport::Rest,
            "auth.user.update",
            json!({"user_id": user_id, "mfa_enabled": true}),
        )
        .await
        .unwrap();
    let secret = enrolled["mfa_enrollment"]["secret"].as_str().unwrap();
    // Each TOTP step is used once: the second run takes the next one.
    for (t, offset) in [(Transport::Rest, 0), (Transport::Grpc, 30)] {
        let started = start(&s, t, "corp").await;
        let back = browse(started["authorization_url"].as_str().unwrap(), "mfa").await;
        expect_err(
            s.call(t, "auth.oauth.complete", back.complete()).await,
            "AUTH_MFA_REQUIRED",
        );
        let state = back.get("state").unwrap();
        expect_err(
            s.call(
                t,
                "auth.oauth.complete",
                json!({"state": state, "mfa_factor": "000000"}),
            )
            .await,
            "AUTH_MFA_INVALID",
        );
        let code = crate::sessions::totp_at(secret, offset);
        let done = s
            .call(
                t,
                "auth.oauth.complete",
                json!({"state": state, "mfa_factor": code}),
            )
            .await
            .unwrap();
        assert_eq!(done["user"]["user_id"], user_id);
        let amr = claims(done["session"]["access_token"].as_str().unwrap())["amr"].clone();
        assert_eq!(amr, json!(["oauth", "corp", "otp", "mfa"]));
        // Once only.
        expect_err(
            s.call(
                t,
                "auth.oauth.complete",
                json!({"state": state, "mfa_factor": "000000"}),
            )
            .await,
            "AUTH_OAUTH_STATE_INVALID",
        );
    }
}

/// GitHub: no ID token; the user is GitHub's numeric id, linked by the
/// primary verified email only.
#[tokio::test]
async fn github_sign_in_uses_the_primary_verified_email() {
    let (base, gh) = github::start().await;
    let s = Server::start(Backend::Sqlite).await.unwrap();
    s.domain
        .set_oauth_provider(
            "tests",
            "github",
            SetProvider {
                client_id: github::CLIENT_ID.into(),
                client_secret: github::CLIENT_SECRET.into(),
                issuer: Some(base.clone()),
                api_url: Some(base.clone()),
                redirect_uris: vec![REDIRECT.into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let t = Transport::Rest;
    let existing = crate::harness::create_user(&s, t, "octo@example.com").await["user_id"].clone();
    gh.sign_in_as(github::Account {
        id: 583231,
        login: "octocat".into(),
        emails: vec![
            ("old@example.com".into(), false, true),
            ("octo@example.com".into(), true, true),
        ],
    });
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let go = |url: String| {
        let client = client.clone();
        async move {
            let r = client.get(url).send().await.unwrap();
            let loc = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
            let q: std::collections::HashMap<String, String> =
                loc.query_pairs().into_owned().collect();
            q
        }
    };
    let started = start(&s, t, "github").await;
    let q = go(started["authorization_url"].as_str().unwrap().to_owned()).await;
    let r = s
        .call(
            t,
            "auth.oauth.complete",
            json!({"state": q["state"], "code": q["code"]}),
        )
        .await
        .unwrap();
    assert_eq!(r["created"], false);
    assert_eq!(r["user"]["user_id"], existing);
    let ids = s
        .call(t, "auth.user.identities@get", json!({"user_id": existing}))
        .await
        .unwrap();
    assert_eq!(ids["identities"][0]["subject"], "583231");

    // A primary email GitHub has not verified is not used at all.
    gh.sign_in_as(github::Account {
        id: 42,
        login: "unverified".into(),
        emails: vec![("new@example.com".into(), true, false)],
    });
    let started = start(&s, Transport::Grpc, "github").await;
    let q = go(started["authorization_url"].as_str().unwrap().to_owned()).await;
    expect_err(
        s.call(
            Transport::Grpc,
            "auth.oauth.complete",
            json!({"state": q["state"], "code": q["code"]}),
        )
        .await,
        "AUTH_OAUTH_DENIED",
    );
    // A code used once is refused by GitHub the second time (and the
    // state by authmux first).
    expect_err(
        s.call(
            t,
            "auth.oauth.complete",
            json!({"state": q["state"], "code": q["code"]}),
        )
        .await,
        "AUTH_OAUTH_STATE_INVALID",
    );
}

/// Providers list without secrets; identities unlink, but never the
/// last way to sign in.
#[tokio::test]
async fn providers_list_and_the_last_identity_stays() {
    let Some(op) = OpenIdProvider::for_app("solo").await else {
        return;
    };
    let s = Server::start(Backend::Sqlite).await.unwrap();
    configure(&s, "corp", "app", &op.issuer).await;
    for t in [Transport::Rest, Transport::Grpc] {
        let list = s.call(t, "auth.oauth.providers", json!({})).await.unwrap();
        let text = list.to_string();
        assert!(!text.contains(CLIENT_SECRET), "{text}");
        assert_eq!(list["providers"][0]["provider"], "corp");
        assert_eq!(list["providers"][0]["kind"], "oidc");
        assert_eq!(list["providers"][0]["redirect_uris"], json!([REDIRECT]));
    }
    let t = Transport::Rest;
    let r = sign_in(&s, t, "corp", "solo").await;
    let user_id = r["user"]["user_id"].clone();
    let e = expect_err(
        s.call(
            t,
            "auth.user.identities@delete",
            json!({"user_id": user_id, "provider": "corp"}),
        )
        .await,
        "AUTH_LAST_SIGN_IN_METHOD",
    );
    assert_eq!(e.status, 409);
    // With a password set, the identity may go.
    s.call(
        t,
        "auth.user.update",
        json!({"user_id": user_id, "password": "a long enough password"}),
    )
    .await
    .unwrap();
    s.call(
        Transport::Grpc,
        "auth.user.identities@delete",
        json!({"user_id": user_id, "provider": "corp"}),
    )
    .await
    .unwrap();
    expect_err(
        s.call(
            t,
            "auth.user.identities@delete",
            json!({"user_id": user_id, "provider": "corp"}),
        )
        .await,
        "NOT_FOUND",
    );
    // Deleting the user removes what is linked.
    let r = sign_in(&s, t, "corp", "solo").await;
    assert_eq!(r["created"], false, "linked again by verified email");
    s.call(t, "auth.user.delete", json!({"user_id": user_id}))
        .await
        .unwrap();
    let r = sign_in(&s, t, "corp", "solo").await;
    assert_eq!(r["created"], true);
}

/// Sign in with Apple: the code comes back in a form POST, the client
/// secret is a fresh ES256 JWT signed with the team's key, and the ID
/// token's string `email_verified` counts.
#[tokio::test]
async fn apple_sign_in_with_form_post_and_a_signed_client_secret() {
    use crate::emulators::apple;
    let team = apple::TeamKey::new();
    let base = apple::start(&team, ("001234.abcdef", "apple@example.com")).await;
    let s = Server::start(Backend::Sqlite).await.unwrap();
    let set = |apple: Option<authmux::oauth::AppleKey>, secret: &str| {
        s.domain.set_oauth_provider(
            "tests",
            "apple",
            SetProvider {
                client_id: apple::CLIENT_ID.into(),
                client_secret: secret.into(),
                issuer: Some(base.clone()),
                redirect_uris: vec![REDIRECT.into()],
                apple,
                ..Default::default()
            },
        )
    };
    let key = authmux::oauth::AppleKey {
        team_id: apple::TEAM_ID.into(),
        key_id: apple::KEY_ID.into(),
    };
    // Without the team's ids, or with a secret that is not its key: refused.
    let e = set(None, &team.pem).await.unwrap_err();
    assert!(e.message.contains("team id"), "{e:?}");
    let e = set(Some(key.clone()), "not a key").await.unwrap_err();
    assert!(e.message.contains("PEM"), "{e:?}");
    set(Some(key), &team.pem).await.unwrap();

    for t in [Transport::Rest, Transport::Grpc] {
        let started = start(&s, t, "apple").await;
        let url = url::Url::parse(started["authorization_url"].as_str().unwrap()).unwrap();
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["response_mode"], "form_post");
        assert_eq!(q["scope"], "name email");
        let page = reqwest::get(url.as_str())
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let field = |name: &str| {
            let at = page.find(&format!("name=\"{name}\" value=\"")).unwrap();
            let rest = &page[at + name.len() + 15..];
            rest[..rest.find('"').unwrap()].to_owned()
        };
        assert!(page.contains(&format!("action=\"{REDIRECT}\"")), "{page}");
        let r = s
            .call(
                t,
                "auth.oauth.complete",
                json!({"state": field("state"), "code": field("code")}),
            )
            .await
            .unwrap();
        assert_eq!(r["user"]["email"], "apple@example.com");
        assert_eq!(r["user"]["email_verified"], true);
        assert_eq!(r["created"], t == Transport::Rest);
    }
}

/// A sign-in racing the deletion of its user, on each database: no 5xx,
/// and nothing outlives the user (neither its identity nor a session).
#[tokio::test]
async fn a_sign_in_racing_a_delete_leaves_nothing_behind() {
    let Some(op) = OpenIdProvider::for_app("gone").await else {
        return;
    };
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(s) = Server::start(backend).await else {
            continue;
        };
        configure(&s, "corp", "app", &op.issuer).await;
        let t = Transport::Rest;
        for _ in 0..3 {
            let first = sign_in(&s, t, "corp", "gone").await;
            let user_id = first["user"]["user_id"].clone();
            let started = start(&s, t, "corp").await;
            let back = browse(started["authorization_url"].as_str().unwrap(), "gone").await;
            let (done, deleted) = tokio::join!(
                s.call(t, "auth.oauth.complete", back.complete()),
                s.call(
                    Transport::Grpc,
                    "auth.user.delete",
                    json!({"user_id": user_id})
                ),
            );
            deleted.unwrap();
            match done {
                // The sign-in came first: the delete ended its session.
                Ok(r) if r["user"]["user_id"] == user_id => {
                    let v = s
                        .call(
                            t,
                            "auth.session.verify",
                            json!({"session_id": r["session"]["session_id"]}),
                        )
                        .await
                        .unwrap();
                    assert_eq!(v["valid"], false, "{v}");
                }
                // The delete came first: a new user, linked afresh.
                Ok(r) => {
                    assert_eq!(r["created"], true, "{r}");
                    s.call(
                        t,
                        "auth.user.delete",
                        json!({"user_id": r["user"]["user_id"]}),
                    )
                    .await
                    .unwrap();
                }
                Err(e) => assert!(e.code == "AUTH_USER_NOT_FOUND", "{e:?}"),
            }
            let ids = s
                .call(t, "auth.user.identities@get", json!({"user_id": user_id}))
                .await;
            expect_err(ids, "AUTH_USER_NOT_FOUND");
            // The identity is free again: the next sign-in makes a user.
            let again = sign_in(&s, t, "corp", "gone").await;
            assert_eq!(again["created"], true, "{again}");
            s.call(
                t,
                "auth.user.delete",
                json!({"user_id": again["user"]["user_id"]}),
            )
            .await
            .unwrap();
        }
    }
}
