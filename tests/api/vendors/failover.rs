//! A create that fails over to the next vendor, and adoption of a user a
//! timed-out create did make, never across projects.

use std::time::Duration;

use authmux::vendors::VendorKind;
use serde_json::json;

use super::faults;
use crate::harness::{Backend, Server, Transport, expect_err};

/// Clerk first, then WorkOS; no built-in provider in the rotation.
async fn failover_pair() -> Server {
    Server::start_vendors(
        Backend::Sqlite,
        &[VendorKind::Clerk, VendorKind::Workos],
        |c| {
            c.vendor_policy.vendor_priority = "clerk,workos".into();
        },
    )
    .await
    .unwrap()
}

fn workos_emulator(s: &Server) -> &crate::emulators::Running {
    &s.other_emulators[0].1
}

/// A create that names no vendor (`mode` stops the harness from naming one).
pub(super) async fn create_anywhere(
    s: &Server,
    email: &str,
) -> Result<serde_json::Value, crate::harness::ApiError> {
    s.call(
        Transport::Rest,
        "auth.user.create",
        json!({"email": email, "mode": "managed"}),
    )
    .await
}

#[tokio::test]
async fn create_fails_over_when_the_first_vendor_is_down() {
    let mut s = failover_pair().await;
    let u = create_anywhere(&s, "first@example.com").await.unwrap();
    assert_eq!(u["vendor"], "clerk", "the first in priority when it is up");
    s.emulator.as_mut().unwrap().stop();
    let u = create_anywhere(&s, "moved@example.com").await.unwrap();
    assert_eq!(u["vendor"], "workos");
    // Read back through WorkOS, where it is pinned.
    let got = s
        .call(
            Transport::Grpc,
            "auth.user.get",
            json!({"user_id": u["user_id"]}),
        )
        .await
        .unwrap();
    assert_eq!(got["vendor"], "workos");
    // A caller who names the vendor gets no failover.
    let e = expect_err(
        s.call(
            Transport::Rest,
            "auth.user.create",
            json!({"email": "pinned@example.com", "vendor": "clerk"}),
        )
        .await,
        "VENDOR_UNAVAILABLE",
    );
    assert!(e.retry_after.is_some());
}

#[tokio::test]
async fn create_fails_over_on_5xx_after_checking_the_failed_vendor() {
    let s = failover_pair().await;
    faults(&s).fail_next = 1;
    let u = create_anywhere(&s, "five@example.com").await.unwrap();
    assert_eq!(u["vendor"], "workos");
    // And on 429 too.
    {
        let mut f = faults(&s);
        f.rate_limit_next = 1;
        f.retry_after = None;
    }
    let u = create_anywhere(&s, "limited@example.com").await.unwrap();
    assert_eq!(u["vendor"], "workos");
}

#[tokio::test]
async fn a_timeout_that_did_create_adopts_instead_of_creating_twice() {
    let s = failover_pair().await;
    // Clerk takes the user but answers after the 2 s timeout.
    {
        let mut f = faults(&s);
        f.latency_after = Duration::from_millis(2_500);
        f.slow_replies = 1;
    }
    let workos_before = workos_emulator(&s).requests();
    let u = create_anywhere(&s, "slow@example.com").await.unwrap();
    assert_eq!(u["vendor"], "clerk", "the user Clerk made is adopted");
    assert_eq!(
        workos_emulator(&s).requests(),
        workos_before,
        "WorkOS was never asked"
    );
    // Exactly one user, readable through Clerk.
    let got = s
        .call(
            Transport::Rest,
            "auth.user.get",
            json!({"user_id": u["user_id"]}),
        )
        .await
        .unwrap();
    assert_eq!(got["email"], "slow@example.com");
    let list = s
        .call(Transport::Rest, "auth.user.list", json!({}))
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

/// Projects share the operator's vendor in managed mode: after a failed
/// create, the user found by email is adopted only when it carries this
/// attempt's own user id (Clerk `external_id`), never another project's.
async fn no_adoption_across_projects(backend: Backend) {
    let Some(s) = Server::start_vendors(backend, &[VendorKind::Clerk, VendorKind::Workos], |c| {
        c.vendor_policy.vendor_priority = "clerk,workos".into();
    })
    .await
    else {
        return;
    };
    let other = s.key_for("other-project").await;
    let theirs = s
        .call_as(
            Transport::Rest,
            &other,
            "auth.user.create",
            json!({"email": "shared@example.com", "vendor": "clerk"}),
            &[],
        )
        .await
        .unwrap();
    // Our create meets a Clerk 500; Clerk has a user with that email, but
    // it is the other project's.
    faults(&s).fail_next = 1;
    let workos_before = workos_emulator(&s).requests();
    for t in [Transport::Rest, Transport::Grpc] {
        let e = expect_err(
            s.call(
                t,
                "auth.user.create",
                json!({"email": "shared@example.com", "mode": "managed"}),
            )
            .await,
            "VENDOR_UNAVAILABLE",
        );
        assert!(e.retry_after.is_some(), "{e:?}");
        faults(&s).fail_next = 1;
    }
    faults(&s).fail_next = 0;
    assert_eq!(
        workos_emulator(&s).requests(),
        workos_before,
        "not re-homed"
    );
    let mine = s
        .call(Transport::Rest, "auth.user.list", json!({}))
        .await
        .unwrap();
    assert_eq!(mine["items"], json!([]), "nothing adopted");
    // The other project's user is untouched and still theirs.
    let got = s
        .call_as(
            Transport::Rest,
            &other,
            "auth.user.get",
            json!({"user_id": theirs["user_id"]}),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(got["email"], "shared@example.com");
}

#[tokio::test]
async fn no_adoption_across_projects_sqlite() {
    no_adoption_across_projects(Backend::Sqlite).await
}

#[tokio::test]
async fn no_adoption_across_projects_postgres() {
    no_adoption_across_projects(Backend::Postgres).await
}

#[tokio::test]
async fn no_failover_when_the_failed_vendor_cannot_be_checked() {
    let s = failover_pair().await;
    // Every Clerk reply comes too late: the create may have happened and
    // the lookup can't tell, so the user is not re-homed.
    {
        let mut f = faults(&s);
        f.latency_after = Duration::from_millis(2_500);
        f.slow_replies = 100;
    }
    let workos_before = workos_emulator(&s).requests();
    let e = expect_err(
        create_anywhere(&s, "unsure@example.com").await,
        "VENDOR_UNAVAILABLE",
    );
    assert!(e.retry_after.is_some());
    assert_eq!(
        workos_emulator(&s).requests(),
        workos_before,
        "not re-homed"
    );
}
