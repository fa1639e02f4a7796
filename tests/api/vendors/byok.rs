//! Projects' own vendor credentials.

use serde_json::json;

use super::{clerk_server, emulator};
use crate::harness::{Transport, expect_err};

// Multi-threaded: the CLI runs as a blocking child process against this
// process's database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byok_uses_only_the_projects_own_credentials() {
    use authmux::vendors::{ByokConfig, VendorKind};
    let s = clerk_server().await; // the operator's Clerk
    let (alpha_clerk, _) = crate::emulators::clerk::start_with_keys().await;
    let (beta_clerk, _) = crate::emulators::clerk::start_with_keys().await;
    let alpha = s.key_for("alpha").await;
    let beta = s.key_for("beta").await;
    let gamma = s.key_for("gamma").await;
    s.domain
        .set_vendor_credentials(
            "alpha",
            VendorKind::Clerk,
            ByokConfig {
                secret: crate::emulators::clerk::SECRET_KEY.into(),
                url: Some(alpha_clerk.base_url.clone()),
                client_id: None,
                issuer: None,
            },
        )
        .await
        .unwrap();
    // Beta's credentials go in through the CLI, as an operator would.
    let secret_file = s.data_dir().join("beta.secret");
    std::fs::write(&secret_file, crate::emulators::clerk::SECRET_KEY).unwrap();
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_authmux"))
            .args(args)
            .env("AUTHMUX_DATA_DIR", s.data_dir())
            .env("AUTHMUX_DATABASE_URL", &s.database_url)
            .env_remove("AUTHMUX_MASTER_KEY")
            .output()
            .unwrap()
    };
    let out = cli(&[
        "vendors",
        "set",
        "--project",
        "beta",
        "--vendor",
        "clerk",
        "--secret-file",
        secret_file.to_str().unwrap(),
        "--url",
        &beta_clerk.base_url,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = String::from_utf8(cli(&["vendors", "list"]).stdout).unwrap();
    assert!(
        listed.contains("alpha")
            && listed.contains("beta")
            && listed.contains(&beta_clerk.base_url)
    );
    assert!(
        !listed.contains(crate::emulators::clerk::SECRET_KEY),
        "no secret listed"
    );
    let db = std::fs::read(s.data_dir().join("authmux.db")).unwrap_or_default();
    let wal = std::fs::read(s.data_dir().join("authmux.db-wal")).unwrap_or_default();
    let secret = crate::emulators::clerk::SECRET_KEY.as_bytes();
    for bytes in [&db, &wal] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret),
            "secret stored sealed"
        );
    }

    let byok = json!({"email": "b@example.com", "vendor": "clerk", "mode": "byok"});
    let (m0, a0, b0) = (
        emulator(&s).requests(),
        alpha_clerk.requests(),
        beta_clerk.requests(),
    );
    for t in [Transport::Rest, Transport::Grpc] {
        let mut req = byok.clone();
        req["email"] = json!(format!("{t:?}@example.com"));
        let a = s
            .call_as(t, &alpha, "auth.user.create", req.clone(), &[])
            .await
            .unwrap();
        let b = s
            .call_as(t, &beta, "auth.user.create", req.clone(), &[])
            .await
            .unwrap();
        assert_eq!(
            (a["vendor"].clone(), b["vendor"].clone()),
            (json!("clerk"), json!("clerk"))
        );
        // Later calls go to the same project's Clerk.
        s.call_as(
            t,
            &alpha,
            "auth.user.get",
            json!({"user_id": a["user_id"]}),
            &[],
        )
        .await
        .unwrap();
        let session = s
            .call_as(
                t,
                &alpha,
                "auth.session.create",
                json!({"user_id": a["user_id"]}),
                &[],
            )
            .await
            .unwrap();
        let v = s
            .call_as(
                t,
                &alpha,
                "auth.session.verify",
                json!({"session_id": session["access_token"]}),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(v["valid"], true, "{v}");
        // A project without credentials of its own gets none of others'.
        let e = expect_err(
            s.call_as(t, &gamma, "auth.user.create", req.clone(), &[])
                .await,
            "VENDOR_NOT_CONFIGURED",
        );
        assert!(e.message.contains("vendors set"), "{e:?}");
    }
    // At most one request reached the operator's Clerk: the `GET /domains`
    // that tells its tokens' issuer, asked while routing a token by `iss`.
    assert!(
        emulator(&s).requests() <= m0 + 1,
        "the operator's Clerk was never used"
    );
    assert!(alpha_clerk.requests() > a0 && beta_clerk.requests() > b0);
    // Managed mode still uses the operator's.
    s.call_as(
        Transport::Rest,
        &gamma,
        "auth.user.create",
        json!({"email": "m@example.com", "vendor": "clerk"}),
        &[],
    )
    .await
    .unwrap();
    assert!(emulator(&s).requests() > m0);
}
