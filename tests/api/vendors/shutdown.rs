//! Graceful shutdown with calls to a vendor in flight.

use std::time::Duration;

use serde_json::json;

/// A server on a Clerk emulator with explicit shutdown timing; returns the
/// base URL, a key, a Clerk-held user, the shutdown trigger and the serve
/// task.
async fn server_with_timing(
    emu: &crate::emulators::Running,
    timing: authmux::server::ShutdownTiming,
) -> (
    String,
    String,
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = authmux::config::Settings::new(dir.path());
    settings.clerk.clerk_secret_key = Some(crate::emulators::clerk::SECRET_KEY.into());
    settings.clerk.clerk_base_url = emu.base_url.clone();
    settings.vendor_policy.vendor_probe_ms = 0;
    let domain = settings.domain().await.unwrap();
    let key = domain.create_api_key("shutdown").await.unwrap().key;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = authmux::server::app(domain).await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(authmux::server::serve_with(
        listener,
        app,
        async {
            let _ = rx.await;
        },
        timing,
    ));
    let user: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/v1/auth/user/create"))
        .bearer_auth(&key)
        .json(&json!({"email": "inflight@example.com", "vendor": "clerk"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = user["user_id"].as_str().unwrap().to_owned();
    (base, key, id, tx, task, dir)
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish_within_the_grace() {
    let (emu, _) = crate::emulators::clerk::start_with_keys().await;
    let timing = authmux::server::ShutdownTiming {
        drain: Duration::ZERO,
        grace: Duration::from_secs(5),
    };
    let (base, key, id, stop, task, _dir) = server_with_timing(&emu, timing).await;
    // A request that spends 800 ms at the vendor is in flight at SIGTERM.
    emu.faults.lock().unwrap().latency = Duration::from_millis(800);
    let slow = tokio::spawn({
        let (base, key, id) = (base.clone(), key.clone(), id.clone());
        async move {
            reqwest::Client::new()
                .get(format!("{base}/v1/auth/user/get/{id}"))
                .bearer_auth(key)
                .send()
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.send(()).unwrap();
    let resp = slow
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(resp.status(), 200);
    task.await.unwrap().unwrap();
    // And the listener is closed.
    assert!(
        reqwest::Client::new()
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn shutdown_does_not_wait_past_the_grace() {
    let (emu, _) = crate::emulators::clerk::start_with_keys().await;
    let timing = authmux::server::ShutdownTiming {
        drain: Duration::ZERO,
        grace: Duration::from_millis(200),
    };
    let (base, key, id, stop, task, _dir) = server_with_timing(&emu, timing).await;
    emu.faults.lock().unwrap().latency = Duration::from_millis(1_800);
    let slow = tokio::spawn(async move {
        reqwest::Client::new()
            .get(format!("{base}/v1/auth/user/get/{id}"))
            .bearer_auth(key)
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(1_000),
        "stopped at the grace, not the request"
    );
    drop(slow);
}
