//! What authmux adds in front of a vendor: `user.get` of a Clerk-held user
//! (one vendor round trip to refresh the index) against calling the Clerk
//! emulator directly, and `session.verify` of Clerk's RS256 JWT against a
//! native token (neither needs a vendor round trip once the key is known).
//!
//! Run: `cargo bench --bench vendors`

use authmux_testkit::{Server, emulators};

use std::time::Duration;

use authmux::config::Settings;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};

struct Bench {
    base: String,
    key: String,
    http: reqwest::Client,
    clerk: emulators::Running,
    clerk_user: String,
    vendor_user_id: String,
    clerk_jwt: String,
    native_jwt: String,
    _server: Server,
}

async fn post(b: &reqwest::Client, url: String, key: &str, body: Value) -> Value {
    b.post(url)
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn setup() -> Bench {
    let (clerk, _) = emulators::clerk::start_with_keys().await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::new(dir.path());
    settings.clerk.clerk_secret_key = Some(emulators::clerk::SECRET_KEY.into());
    settings.clerk.clerk_base_url = clerk.base_url.clone();
    let server = Server::start_on(dir, settings).await;
    let (base, key) = (server.base.clone(), server.key.clone());
    let http = reqwest::Client::new();

    let u = post(
        &http,
        format!("{base}/v1/auth/user/create"),
        &key,
        json!({"email": "c@example.com", "vendor": "clerk"}),
    )
    .await;
    let clerk_user = u["user_id"].as_str().unwrap().to_owned();
    let s = post(
        &http,
        format!("{base}/v1/auth/session/create"),
        &key,
        json!({"user_id": clerk_user}),
    )
    .await;
    let clerk_jwt = s["access_token"].as_str().unwrap().to_owned();
    let n = post(
        &http,
        format!("{base}/v1/auth/user/create"),
        &key,
        json!({"email": "n@example.com"}),
    )
    .await;
    let s = post(
        &http,
        format!("{base}/v1/auth/session/create"),
        &key,
        json!({"user_id": n["user_id"]}),
    )
    .await;
    let native_jwt = s["access_token"].as_str().unwrap().to_owned();
    // The vendor's own id, as the emulator knows it.
    let claims: Value = {
        use base64::Engine;
        let seg = clerk_jwt.split('.').nth(1).unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(seg)
                .unwrap(),
        )
        .unwrap()
    };
    Bench {
        base,
        key,
        http,
        clerk,
        clerk_user,
        vendor_user_id: claims["sub"].as_str().unwrap().to_owned(),
        clerk_jwt,
        native_jwt,
        _server: server,
    }
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let b = rt.block_on(setup());
    let mut g = c.benchmark_group("vendor");
    g.measurement_time(Duration::from_secs(5));

    g.bench_function("clerk_get_user_direct", |bn| {
        bn.to_async(&rt).iter(|| async {
            let r = b
                .http
                .get(format!("{}/users/{}", b.clerk.base_url, b.vendor_user_id))
                .bearer_auth(emulators::clerk::SECRET_KEY)
                .header("Clerk-API-Version", "2026-05-12")
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
            r.bytes().await.unwrap()
        })
    });
    g.bench_function("clerk_get_user_via_authmux", |bn| {
        bn.to_async(&rt).iter(|| async {
            let r = b
                .http
                .get(format!("{}/v1/auth/user/get/{}", b.base, b.clerk_user))
                .bearer_auth(&b.key)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
            r.bytes().await.unwrap()
        })
    });
    for (name, token) in [
        ("verify_clerk_jwt", &b.clerk_jwt),
        ("verify_native_jwt", &b.native_jwt),
    ] {
        g.bench_function(name, |bn| {
            bn.to_async(&rt).iter(|| async {
                let r = b
                    .http
                    .get(format!("{}/v1/auth/session/verify/{token}", b.base))
                    .bearer_auth(&b.key)
                    .send()
                    .await
                    .unwrap();
                let body = r.bytes().await.unwrap();
                assert!(body.windows(12).any(|w| w == b"\"valid\":true"));
                body
            })
        });
    }
    g.finish();
}

criterion_group!(vendors_bench, benches);
criterion_main!(vendors_bench);
