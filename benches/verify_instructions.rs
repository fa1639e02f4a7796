//! Instructions per request of `session.verify`, counted by callgrind: a
//! figure that, unlike req/s on two shared cores, does not move with what
//! else the machine is doing, so one change can be judged by one run.
//!
//! Starts `authmux serve` (release, SQLite) under `valgrind
//! --tool=callgrind`, mints sessions with the instrumentation off, then
//! for each scenario sends requests one after another over one connection
//! and prints the instructions the server executed per request, its own
//! and its libraries' (user space: the kernel's TCP work is not counted),
//! and the difference from the transport's floor:
//!
//! - the floor: `/healthz` and the gRPC health check;
//! - one JWT verified again and again (a verified-token cache hit), over
//!   REST both in the path (GET) and in a JSON body (POST);
//! - JWTs never seen before (a signature check each);
//! - session ids, each once (a read from SQLite each).
//!
//! The server's background tasks (revocation polling, the outbox worker)
//! run during the counts too, and under valgrind a request takes long
//! enough for them to weigh: their rate, counted while the server is
//! idle, times each scenario's duration is taken out of its count and
//! printed beside it. Under valgrind, SHA-256 runs without the CPU's SHA
//! extensions, so hashing the token and the API key counts for more than
//! it costs natively.
//!
//! Run: `cargo bench --bench verify_instructions` (AUTHMUX_INSTR_REQUESTS
//! sets the requests per scenario, default 1,000; `AUTHMUX_SIGNING_ALG`
//! reaches the server; AUTHMUX_INSTR_DUMPS names a directory to keep the
//! dumps in, one per scenario, for `callgrind_annotate`). Without valgrind
//! it says so and stops.
//!
//! Two knobs look at what the load bench's 64 connections cost the
//! caches. `AUTHMUX_INSTR_CONNECTIONS` (default 1) sends each scenario's
//! requests over that many connections per transport in turn, so that
//! each request finds its connection's state as cold as under load.
//! `AUTHMUX_INSTR_CACHE=1` has callgrind simulate a core's caches as this
//! machine's are (L1d 32 KiB and L2 512 KiB, 8-way, 64-byte lines; the
//! L2 stands as callgrind's last level) and prints each row's data misses
//! per request at both levels.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use authmux::pb::v1::session_service_client::SessionServiceClient;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tonic_health::pb::health_client::HealthClient;

/// Requests sent before a scenario is counted, so that first-use costs
/// (lazily built tables, connection set-up) are left out; at least two
/// per connection.
const WARM_UP: usize = 50;

/// The caches callgrind simulates with `AUTHMUX_INSTR_CACHE=1`: one core
/// of this machine (`lscpu`: L1d 32 KiB and L2 512 KiB per core).
const CACHES: [&str; 4] = [
    "--cache-sim=yes",
    "--I1=32768,8,64",
    "--D1=32768,8,64",
    "--LL=524288,8,64",
];

/// Runs `callgrind_control <args> <pid>`; it returns once the tool has
/// done what was asked.
fn control(pid: u32, args: &[&str]) {
    let status = Command::new("callgrind_control")
        .args(args)
        .arg(pid.to_string())
        .output()
        .expect("run callgrind_control");
    assert!(
        status.status.success(),
        "callgrind_control {args:?}: {}",
        String::from_utf8_lossy(&status.stderr)
    );
}

/// The events counted in the newest dump beside `out` (`out.1`, `out.2`,
/// …: callgrind numbers them in order), in the order of its `events:`
/// line: the instructions first, then, with the cache simulation, the
/// reads, writes and misses.
fn newest_dump_totals(out: &Path) -> Events {
    let dir = out.parent().expect("the dump file is in a directory");
    let stem = out.file_name().unwrap().to_string_lossy().into_owned();
    let newest = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_string_lossy().into_owned();
            let n: u32 = name.strip_prefix(&format!("{stem}."))?.parse().ok()?;
            Some((n, dir.join(name)))
        })
        .max_by_key(|(n, _)| *n)
        .expect("callgrind wrote a dump")
        .1;
    let dump = std::fs::read_to_string(newest).unwrap();
    let line = |key: &str| {
        dump.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("a dump's {key} line"))
    };
    let names = line("events: ").split_whitespace();
    let counts = line("summary: ")
        .split_whitespace()
        .map(|v| v.parse::<f64>());
    Events(
        names
            .zip(counts)
            .map(|(name, count)| (name.to_owned(), count.expect("a count")))
            .collect(),
    )
}

/// Callgrind's counts by event name (`Ir`, and with the cache simulation
/// `D1mr`, `DLmw`, …).
#[derive(Clone, Default)]
struct Events(Vec<(String, f64)>);

impl Events {
    fn get(&self, name: &str) -> f64 {
        self.0
            .iter()
            .find_map(|(n, c)| (n == name).then_some(*c))
            .unwrap_or(0.0)
    }

    /// Each count times `k`, less `minus`'s times `m`.
    fn scaled(&self, k: f64, minus: &Events, m: f64) -> Events {
        Events(
            self.0
                .iter()
                .map(|(n, c)| (n.clone(), c * k - minus.get(n) * m))
                .collect(),
        )
    }

    /// Data misses in the first-level cache.
    fn d1_misses(&self) -> f64 {
        self.get("D1mr") + self.get("D1mw")
    }

    /// Data misses in the last level simulated (a core's L2 here).
    fn ll_misses(&self) -> f64 {
        self.get("DLmr") + self.get("DLmw")
    }
}

/// Where the counts are taken: the server's pid, its dump file, and the
/// events per second its background tasks cause when idle.
struct Counter<'a> {
    pid: u32,
    out: &'a Path,
    idle_per_sec: Events,
}

/// A scenario's count.
struct Row {
    name: &'static str,
    /// Events per request, the background's share taken out.
    per_request: Events,
    /// The background's instructions that were taken out, per request.
    background: f64,
}

impl Counter<'_> {
    /// Counts the instructions of `secs` seconds of idleness: the
    /// background tasks' (revocation polling, the outbox worker) rate.
    async fn idle_rate(pid: u32, out: &Path, secs: u64) -> Events {
        control(pid, &["--zero"]);
        let started = Instant::now();
        tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
        control(pid, &["--dump", "idle"]);
        let secs = started.elapsed().as_secs_f64();
        newest_dump_totals(out).scaled(1.0 / secs, &Events::default(), 0.0)
    }

    /// Sends `calls` requests one after another, the first [`WARM_UP`]
    /// uncounted, and counts the rest. Valgrind runs the server many times
    /// slower, so its background tasks run more often per request than
    /// natively: their idle rate times the run's duration is taken out.
    async fn count<F, Fut>(
        &self,
        name: &'static str,
        (warm_up, calls): (usize, usize),
        mut call: F,
    ) -> Row
    where
        F: FnMut(usize) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        for i in 0..warm_up {
            assert!(call(i).await, "{name}: warm-up request {i} failed");
        }
        control(self.pid, &["--zero"]);
        let started = Instant::now();
        for i in warm_up..calls {
            assert!(call(i).await, "{name}: request {i} failed");
        }
        control(self.pid, &["--dump", name]);
        let counted = (calls - warm_up) as f64;
        let idle_share = started.elapsed().as_secs_f64() / counted;
        Row {
            name,
            per_request: newest_dump_totals(self.out).scaled(
                1.0 / counted,
                &self.idle_per_sec,
                idle_share,
            ),
            background: self.idle_per_sec.get("Ir") * idle_share,
        }
    }
}

fn main() {
    if Command::new("valgrind").arg("--version").output().is_err() {
        println!("verify_instructions: skipped, valgrind is not installed (Debian: valgrind)");
        return;
    }
    let requests: usize = std::env::var("AUTHMUX_INSTR_REQUESTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000);
    let connections: usize = std::env::var("AUTHMUX_INSTR_CONNECTIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(1);
    let cache_sim = std::env::var("AUTHMUX_INSTR_CACHE").is_ok_and(|v| v == "1");
    let warm_up = WARM_UP.max(2 * connections);
    let calls = requests + warm_up;
    let run = (warm_up, calls);
    // The dumps are kept in AUTHMUX_INSTR_DUMPS when it is set, for
    // `callgrind_annotate`; else in a directory removed at the end.
    let dumps = tempfile::tempdir().unwrap();
    let dir = std::env::var_os("AUTHMUX_INSTR_DUMPS")
        .map_or_else(|| dumps.path().to_owned(), std::path::PathBuf::from);
    std::fs::create_dir_all(&dir).unwrap();
    let out_file = format!(
        "--callgrind-out-file={}",
        dir.join("callgrind.out.%p").display()
    );
    let mut wrapper = vec![
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        &out_file,
    ];
    if cache_sim {
        wrapper.extend(CACHES);
    }
    let server = common::Served::start_under(
        &wrapper,
        &[
            ("AUTHMUX_RATE_LIMIT_PER_SECOND", "1000000"),
            ("AUTHMUX_RATE_LIMIT_BURST", "1000000"),
        ],
    );
    let pid = server.child.id();
    let out = dir.join(format!("callgrind.out.{pid}"));
    let (base, key) = (server.base.clone(), server.key.clone());

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (idle_per_sec, rows) = rt.block_on(async {
        let http = reqwest::Client::new();
        // Valgrind starts slowly: up to a minute.
        server.ready_within(&http, 1_200).await;
        let user: Value = server
            .post(
                &http,
                "/v1/auth/user/create",
                &json!({"email": "instr@example.com"}),
            )
            .await;
        // A set of sessions for each transport, so that neither finds the
        // other's tokens verified or its sessions cached.
        let started = Instant::now();
        let mut sessions = Vec::with_capacity(2 * calls);
        for _ in 0..2 * calls {
            let s: Value = server
                .post(
                    &http,
                    "/v1/auth/session/create",
                    &json!({"user_id": user["user_id"]}),
                )
                .await;
            sessions.push((
                s["access_token"].as_str().unwrap().to_owned(),
                s["session_id"].as_str().unwrap().to_owned(),
            ));
        }
        eprintln!(
            "minted {} sessions in {:.0} s",
            sessions.len(),
            started.elapsed().as_secs_f64()
        );
        let (rest_set, grpc_set) = sessions.split_at(calls);
        control(pid, &["--instr=on"]);

        let auth = http::HeaderValue::from_str(&format!("Bearer {key}")).unwrap();
        // One client per connection, each keeping its one connection:
        // request `i` goes over connection `i % connections`.
        let rest: Vec<_> = (0..connections)
            .map(|_| {
                Client::builder(TokioExecutor::new())
                    .pool_max_idle_per_host(1)
                    .build::<_, Full<Bytes>>(common::connector())
            })
            .collect();
        // A GET of `path`, or a POST of `json` to it, as request `i`;
        // passes when the reply is a success holding `expect`.
        let send = |i: usize, path: String, json: Option<String>, expect: &'static [u8]| {
            let req = match json {
                None => http::Request::get(format!("{base}{path}")),
                Some(_) => http::Request::post(format!("{base}{path}"))
                    .header(http::header::CONTENT_TYPE, "application/json"),
            }
            .header(http::header::AUTHORIZATION, auth.clone())
            .body(Full::new(json.map(Bytes::from).unwrap_or_default()))
            .unwrap();
            let reply = rest[i % connections].request(req);
            common::reply_holds(reply, expect)
        };
        const VALID: &[u8] = b"\"valid\":true";
        let get = |i: usize, t: &str| send(i, format!("/v1/auth/session/verify/{t}"), None, VALID);
        let post = |i: usize, t: &str| {
            send(
                i,
                "/v1/auth/session/verify".into(),
                Some(json!({ "session_id": t }).to_string()),
                VALID,
            )
        };

        let origin: http::Uri = base.parse().unwrap();
        let grpc: Vec<_> = (0..connections).map(|_| common::grpc_client()).collect();
        let health: Vec<_> = grpc
            .iter()
            .map(|c| HealthClient::with_origin(c.clone(), origin.clone()))
            .collect();
        let sessions_client: Vec<_> = grpc
            .iter()
            .map(|c| SessionServiceClient::with_origin(c.clone(), origin.clone()))
            .collect();
        let bearer: tonic::metadata::MetadataValue<_> = format!("Bearer {key}").parse().unwrap();
        let verify = |i: usize, token: &str| {
            common::grpc_verify(&sessions_client[i % connections], &bearer, token.to_owned())
        };

        let counter = Counter {
            pid,
            out: &out,
            idle_per_sec: Counter::idle_rate(pid, &out, 5).await,
        };
        let rest_one = rest_set[0].0.clone();
        let grpc_one = grpc_set[0].0.clone();
        let rows = vec![
            counter
                .count("REST  floor /healthz", run, |i| {
                    send(i, "/healthz".into(), None, b"ok")
                })
                .await,
            counter
                .count("REST  JWT, one token", run, |i| get(i, &rest_one))
                .await,
            counter
                .count("REST  JWT, one token, POST", run, |i| post(i, &rest_one))
                .await,
            counter
                .count("REST  JWT, each new", run, |i| get(i, &rest_set[i].0))
                .await,
            counter
                .count("REST  session id", run, |i| get(i, &rest_set[i].1))
                .await,
            counter
                .count("gRPC  floor health", run, |i| {
                    common::health_check(&health[i % connections])
                })
                .await,
            counter
                .count("gRPC  JWT, one token", run, |i| verify(i, &grpc_one))
                .await,
            counter
                .count("gRPC  JWT, each new", run, |i| verify(i, &grpc_set[i].0))
                .await,
            counter
                .count("gRPC  session id", run, |i| verify(i, &grpc_set[i].1))
                .await,
        ];
        (counter.idle_per_sec, rows)
    });
    drop(server);

    let alg = std::env::var("AUTHMUX_SIGNING_ALG").unwrap_or_else(|_| "ES256".into());
    println!(
        "session.verify ({alg}): server instructions per request (callgrind), {requests} sequential requests per scenario over {connections} connection(s) per transport"
    );
    let misses = if cache_sim {
        format!(" {:>12} {:>12}", "D1 misses", "L2 misses")
    } else {
        String::new()
    };
    println!(
        "{:<26} {:>14} {:>14} {:>14}{misses}",
        "scenario", "instructions", "over floor", "background"
    );
    for row in &rows {
        // The floor of the row's transport ("REST " or "gRPC ").
        let floor = rows
            .iter()
            .find(|f| f.name[..5] == row.name[..5] && f.name.contains("floor"))
            .map_or(0.0, |f| f.per_request.get("Ir"));
        let ir = row.per_request.get("Ir");
        let misses = if cache_sim {
            format!(
                " {:>12.0} {:>12.0}",
                row.per_request.d1_misses(),
                row.per_request.ll_misses()
            )
        } else {
            String::new()
        };
        println!(
            "{:<26} {ir:>14.0} {:>14.0} {:>14.0}{misses}",
            row.name,
            ir - floor,
            row.background
        );
    }
    println!(
        "background: the server's idle tasks ran {:.0} instructions/s under valgrind; each row's share of that (last column) is taken out of its counts",
        idle_per_sec.get("Ir")
    );
    if cache_sim {
        println!(
            "caches simulated per core as {}; misses are data misses (reads and writes)",
            CACHES[1..].join(" ")
        );
    }
}
