//! What the load benches share: an `authmux serve` process of its own
//! (SQLite, defaults), readings of its memory and CPU time, and the
//! clients that call it over REST and gRPC.

// Each bench uses a part of this module.
#![allow(dead_code)]

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use authmux::pb::v1 as pb;
use authmux::pb::v1::session_service_client::SessionServiceClient;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tonic::metadata::{Ascii, MetadataValue};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// A running `authmux serve`, killed when dropped.
pub struct Served {
    /// The process.
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The API key the first start printed.
    pub key: String,
    _dir: tempfile::TempDir,
}

impl Served {
    /// Starts the server with `env` added; returns once it printed its key.
    pub fn start(env: &[(&str, &str)]) -> Served {
        Served::start_under(&[], env)
    }

    /// As [`Served::start`], with the server run by `wrapper` (a program and
    /// its arguments, e.g. a profiler) when that is not empty.
    pub fn start_under(wrapper: &[&str], env: &[(&str, &str)]) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = env!("CARGO_BIN_EXE_authmux");
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(server);
                c
            }
            None => Command::new(server),
        };
        cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("AUTHMUX_DATA_DIR", dir.path())
            .env("AUTHMUX_LOG", "warn")
            .env_remove("AUTHMUX_DATABASE_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start authmux");
        let key = BufReader::new(child.stdout.take().unwrap())
            .lines()
            .map(Result::unwrap)
            .find(|l| l.starts_with("amx_"))
            .expect("the first start prints a key");
        Served {
            child,
            base: format!("http://127.0.0.1:{port}"),
            key,
            _dir: dir,
        }
    }

    /// Waits (up to 5 s) until the server answers `/readyz`.
    pub async fn ready(&self, http: &reqwest::Client) {
        self.ready_within(http, 100).await;
    }

    /// Waits up to `tries` × 50 ms until the server answers `/readyz`.
    pub async fn ready_within(&self, http: &reqwest::Client, tries: u32) {
        for _ in 0..tries {
            if http
                .get(format!("{}/readyz", self.base))
                .send()
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// POSTs `body` to `path` with the server's key; the JSON reply.
    pub async fn post(
        &self,
        http: &reqwest::Client,
        path: &str,
        body: &serde_json::Value,
    ) -> serde_json::Value {
        http.post(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .json(body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// A field of the server's `/proc/PID/status` in KiB (`VmRSS:`,
    /// `VmHWM:`).
    pub fn kib(&self, field: &str) -> u64 {
        status_kib(&self.child.id().to_string(), field)
    }
}

/// A field of `/proc/PID/status` in KiB (`VmRSS:`, `VmHWM:`).
pub fn status_kib(pid: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next().map(str::to_owned))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// CPU time (user + system, every thread) a process has used, in seconds,
/// from `/proc/PID/stat`, whose clock ticks are `USER_HZ` (100 on Linux).
pub fn cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name is in parentheses and may hold spaces: count fields
    // after its closing one (utime and stime are the 12th and 13th there).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / 100.0
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// hyper's HTTP/2 client, for tonic's generated clients (they accept any
/// HTTP service). Each holds one connection; unlike tonic's `Channel`, no
/// buffer task stands between a call and the connection.
pub type Grpc = Client<HttpConnector, tonic::body::Body>;

/// A connector that sends each write at once: a gRPC call is written in
/// more than one piece, and Nagle's algorithm would hold the second back
/// until the first is acknowledged.
pub fn connector() -> HttpConnector {
    let mut c = HttpConnector::new();
    c.set_nodelay(true);
    c
}

/// A new HTTP/2 client over [`connector`].
pub fn grpc_client() -> Grpc {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(connector())
}

/// A gRPC connection on h2 itself, the way gRPC load tools (ghz, h2load)
/// drive a server: no pool, no codec, no tower stack on the client's side.
/// The handshake is done here, before any clock starts.
pub async fn h2_connect(base: &str) -> h2::client::SendRequest<bytes::Bytes> {
    let addr = base.trim_start_matches("http://");
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).expect("TCP_NODELAY");
    let (send, connection) = h2::client::handshake(tcp).await.expect("HTTP/2 handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    send
}

/// A unary call's request message as gRPC frames it: no compression flag,
/// the length in 4 bytes big-endian, the encoded message.
pub fn grpc_frame(message: &impl prost::Message) -> bytes::Bytes {
    let len = message.encoded_len();
    let mut frame = Vec::with_capacity(5 + len);
    frame.push(0);
    frame.extend_from_slice(&u32::try_from(len).expect("a small message").to_be_bytes());
    message.encode(&mut frame).expect("a Vec grows");
    frame.into()
}

/// One unary gRPC call over `send`: `head` (a POST of the method's
/// absolute URI with its headers) and the framed request `frame`. The
/// reply's message, when the status is 200, the reply is one uncompressed
/// frame and the trailers say `grpc-status: 0`.
pub async fn h2_unary(
    send: h2::client::SendRequest<bytes::Bytes>,
    head: http::Request<()>,
    frame: bytes::Bytes,
) -> Option<bytes::Bytes> {
    let mut send = send.ready().await.ok()?;
    let (reply, mut stream) = send.send_request(head, false).ok()?;
    stream.send_data(frame, true).ok()?;
    let reply = reply.await.ok()?;
    if reply.status() != http::StatusCode::OK {
        return None;
    }
    let mut body = reply.into_body();
    let mut data = bytes::BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.ok()?;
        body.flow_control().release_capacity(chunk.len()).ok()?;
        data.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await.ok()??;
    if trailers.get("grpc-status")? != "0" || data.len() < 5 || data[0] != 0 {
        return None;
    }
    let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
    (data.len() == 5 + len).then(|| data.freeze().split_off(5))
}

/// The head of a unary gRPC call of `path` (`/package.Service/Method`) at
/// `base`, with `auth` as its `authorization` header when given.
pub fn grpc_head(base: &str, path: &str, auth: Option<&http::HeaderValue>) -> http::Request<()> {
    let mut head = http::Request::post(format!("{base}{path}"))
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers");
    if let Some(auth) = auth {
        head = head.header(http::header::AUTHORIZATION, auth.clone());
    }
    head.body(()).expect("a valid head")
}

/// One gRPC health check; whether it was answered.
pub fn health_check(client: &HealthClient<Grpc>) -> impl Future<Output = bool> + Send + use<> {
    let mut client = client.clone();
    async move {
        client
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .is_ok()
    }
}

/// One `session.verify` of `token` over gRPC, with `auth` (`Bearer
/// amx_...`) as its API key; whether the token or session is valid.
pub fn grpc_verify(
    client: &SessionServiceClient<Grpc>,
    auth: &MetadataValue<Ascii>,
    token: String,
) -> impl Future<Output = bool> + Send + use<> {
    let mut client = client.clone();
    let mut req = tonic::Request::new(pb::VerifySessionRequest { session_id: token });
    req.metadata_mut().insert("authorization", auth.clone());
    async move {
        client
            .verify_session(req)
            .await
            .is_ok_and(|r| r.get_ref().valid)
    }
}

/// Whether a REST reply is a success whose body holds `expect`.
pub async fn reply_holds(
    reply: hyper_util::client::legacy::ResponseFuture,
    expect: &'static [u8],
) -> bool {
    use http_body_util::BodyExt;
    match reply.await {
        Ok(r) if r.status().is_success() => r
            .into_body()
            .collect()
            .await
            .is_ok_and(|b| b.to_bytes().windows(expect.len()).any(|w| w == expect)),
        _ => false,
    }
}
