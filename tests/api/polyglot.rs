//! The polyglot promise: a Python caller, with stubs generated from
//! `proto/` by grpcio-tools, creates a user, mints a session and verifies
//! it over gRPC (`examples/python/client.py`).

use std::path::Path;

use crate::harness::{Backend, Server};

/// A virtualenv with the example's requirements, made once under
/// `target/`; `None` (with the reason printed) without Python.
fn python() -> Option<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    authmux_testkit::python::venv(
        root,
        "python-client-venv",
        &root.join("examples/python/requirements.txt"),
    )
}

#[tokio::test]
async fn a_python_grpc_client_signs_a_user_in() {
    let Some(py) = tokio::task::spawn_blocking(python).await.unwrap() else {
        return;
    };
    let s = Server::start(Backend::Sqlite).await.unwrap();
    let address = s.base.trim_start_matches("http://").to_owned();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/python/client.py");
    let out = tokio::process::Command::new(py)
        .arg(script)
        .args([&address, &s.key, "py@example.com"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["email"], "py@example.com", "{r}");
    assert!(r["user_id"].as_str().unwrap().starts_with("usr_"), "{r}");
    assert!(r["session_id"].as_str().unwrap().starts_with("ses_"), "{r}");
    assert_eq!(r["valid"], true, "{r}");
    assert_eq!(r["verified_user_id"], r["user_id"]);
    assert_eq!(r["wrong_key_unauthenticated"], true, "{r}");
    // The user is really there, for Rust callers too.
    let user = s
        .call(
            crate::harness::Transport::Rest,
            "auth.user.get",
            serde_json::json!({"user_id": r["user_id"]}),
        )
        .await
        .unwrap();
    assert_eq!(user["email"], "py@example.com");
}
