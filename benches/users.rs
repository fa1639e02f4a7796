//! user.list (first page vs. a page deep in the list) and user.get over
//! REST and gRPC, against a real server on loopback with 100,000 users in
//! SQLite.
//!
//! Run: `cargo bench --bench users`

use std::sync::Arc;
use std::time::Duration;

use authmux::config::Settings;
use authmux::domain::{Domain, Project};
use authmux::pb::v1 as pb;
use authmux_testkit::Server;
use criterion::{Criterion, criterion_group, criterion_main};
use tonic::transport::Channel;

const USERS: usize = 100_000;
const PAGE: i32 = 50;

struct Bench {
    base: String,
    key: String,
    http: reqwest::Client,
    channel: Channel,
    deep_cursor: String,
    user_id: String,
    _server: Server,
}

async fn seed(domain: &Arc<Domain>, project: &Project) -> Vec<String> {
    let now = domain.clock().now_millis();
    let mut ids = Vec::with_capacity(USERS);
    let rows = (0..USERS)
        .map(|i| {
            let email = format!("user{i}@bench.example");
            let (user, pin) =
                authmux_testkit::native_user(&project.id, &email, r#"{"plan":"free"}"#, now);
            ids.push(user.id.clone());
            (user, pin)
        })
        .collect();
    domain.store().insert_users_bulk(rows).await.unwrap();
    ids
}

async fn setup() -> Bench {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::new(dir.path());
    // Sequential calls run faster than the default per-project limit.
    settings.rate_limit.rate_limit_per_second = 1_000_000;
    settings.rate_limit.rate_limit_burst = 1_000_000;
    let server = Server::start_on(dir, settings).await;
    let domain = server.domain.clone();
    let project = domain
        .authenticate(Some(&format!("Bearer {}", server.key)))
        .await
        .unwrap();
    let ids = seed(&domain, &project).await;

    // Walk to a cursor 90% of the way down the list.
    let mut cursor: Option<String> = None;
    for _ in 0..(USERS * 9 / 10) / 200 {
        let page = domain
            .list_users(&project, cursor.as_deref(), Some(200))
            .await
            .unwrap();
        cursor = page.next_cursor;
    }
    Bench {
        base: server.base.clone(),
        key: server.key.clone(),
        http: reqwest::Client::new(),
        channel: server.channel.clone(),
        deep_cursor: cursor.expect("a deep cursor"),
        user_id: ids[USERS / 2].clone(),
        _server: server,
    }
}

fn authed<T>(msg: T, key: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    r
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let b = rt.block_on(setup());
    let mut g = c.benchmark_group("user");
    g.measurement_time(Duration::from_secs(5));

    let list_rest = |cursor: Option<String>| {
        let b = &b;
        move || {
            let cursor = cursor.clone();
            async move {
                let mut url = format!("{}/v1/auth/user/list?limit={PAGE}", b.base);
                if let Some(c) = cursor {
                    url.push_str(&format!("&cursor={c}"));
                }
                let r = b.http.get(url).bearer_auth(&b.key).send().await.unwrap();
                assert!(r.status().is_success(), "{}", r.status());
                r.bytes().await.unwrap()
            }
        }
    };
    g.bench_function("list_first_page_rest", |bn| {
        bn.to_async(&rt).iter(list_rest(None))
    });
    g.bench_function("list_deep_page_rest", |bn| {
        bn.to_async(&rt)
            .iter(list_rest(Some(b.deep_cursor.clone())))
    });

    let list_grpc = |cursor: Option<String>| {
        let b = &b;
        move || {
            let cursor = cursor.clone();
            async move {
                let mut c = pb::user_service_client::UserServiceClient::new(b.channel.clone());
                c.list_users(authed(
                    pb::ListUsersRequest {
                        cursor,
                        limit: Some(PAGE),
                    },
                    &b.key,
                ))
                .await
                .unwrap()
            }
        }
    };
    g.bench_function("list_first_page_grpc", |bn| {
        bn.to_async(&rt).iter(list_grpc(None))
    });
    g.bench_function("list_deep_page_grpc", |bn| {
        bn.to_async(&rt)
            .iter(list_grpc(Some(b.deep_cursor.clone())))
    });

    g.bench_function("get_rest", |bn| {
        bn.to_async(&rt).iter(|| async {
            let r = b
                .http
                .get(format!("{}/v1/auth/user/get/{}", b.base, b.user_id))
                .bearer_auth(&b.key)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{}", r.status());
            r.bytes().await.unwrap()
        })
    });
    g.bench_function("get_grpc", |bn| {
        bn.to_async(&rt).iter(|| async {
            let mut c = pb::user_service_client::UserServiceClient::new(b.channel.clone());
            c.get_user(authed(
                pb::GetUserRequest {
                    user_id: b.user_id.clone(),
                },
                &b.key,
            ))
            .await
            .unwrap()
        })
    });
    g.finish();
}

criterion_group!(users_bench, benches);
criterion_main!(users_bench);
