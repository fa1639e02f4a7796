//! Prometheus metrics through the `metrics` facade: requests by RPC,
//! transport and result, vendor calls, circuit breakers, JWKS fetches and
//! cache hits, idempotent replays. `GET /metrics` renders them.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder (once per process) and returns its
/// handle; `None` when another recorder was installed first.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets(&BUCKETS)
                .ok()?
                .install_recorder()
                .ok()
        })
        .as_ref()
}

/// The metrics in Prometheus text format.
pub fn render() -> Option<String> {
    let h = handle()?;
    h.run_upkeep();
    Some(h.render())
}

/// Which transport a call came in on, for the `transport` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// HTTP/2 gRPC from a client.
    Grpc,
    /// REST, transcoded.
    Rest,
}

impl Transport {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Grpc => "grpc",
            Transport::Rest => "rest",
        }
    }
}

/// The request metrics of one RPC: its counters (one per transport and
/// status code) and its duration histograms (one per transport). Each
/// handle is registered with the recorder the first time it is used, so
/// only series that happened are exported, and every later call records
/// through the handle without building and hashing the labels again.
pub struct RpcMetrics {
    rpc: metrics::SharedString,
    calls: [[OnceLock<metrics::Counter>; CODES]; 2],
    durations: [OnceLock<metrics::Histogram>; 2],
}

/// gRPC status codes 0 to 16.
const CODES: usize = 17;

impl RpcMetrics {
    /// The metrics of the RPC labelled `rpc`.
    pub fn new(rpc: impl Into<metrics::SharedString>) -> Self {
        RpcMetrics {
            rpc: rpc.into(),
            calls: Default::default(),
            durations: Default::default(),
        }
    }

    /// Records one call.
    pub fn record(&self, transport: Transport, code: tonic::Code, seconds: f64) {
        let code = code_index(code);
        self.calls[transport as usize][code]
            .get_or_init(|| {
                metrics::counter!("authmux_requests_total", "rpc" => self.rpc.clone(), "transport" => transport.as_str(), "code" => CODE_LABELS[code])
            })
            .increment(1);
        self.durations[transport as usize]
            .get_or_init(|| {
                metrics::histogram!("authmux_request_duration_seconds", "rpc" => self.rpc.clone(), "transport" => transport.as_str())
            })
            .record(seconds);
    }
}

/// The `code` label of each status code: its number, as on the wire.
const CODE_LABELS: [&str; CODES] = [
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
];

/// Where `code` is in [`CODE_LABELS`]; a code beyond them counts as
/// UNKNOWN (2).
fn code_index(code: tonic::Code) -> usize {
    let n = code as usize;
    if n < CODES { n } else { 2 }
}

/// Records one vendor call attempt.
pub fn vendor_call(
    vendor: &'static str,
    operation: &'static str,
    outcome: &'static str,
    seconds: f64,
) {
    metrics::counter!("authmux_vendor_calls_total", "vendor" => vendor, "operation" => operation, "outcome" => outcome).increment(1);
    metrics::histogram!("authmux_vendor_call_duration_seconds", "vendor" => vendor, "operation" => operation).record(seconds);
}

/// Records a breaker's state (1 open, 0 closed).
pub fn breaker(vendor: &'static str, open: bool) {
    metrics::gauge!("authmux_vendor_circuit_open", "vendor" => vendor).set(if open {
        1.0
    } else {
        0.0
    });
}

/// Records a JWKS fetch.
pub fn jwks_fetch(ok: bool) {
    metrics::counter!("authmux_jwks_fetches_total", "outcome" => if ok { "ok" } else { "error" })
        .increment(1);
}

/// Records a JWKS key served from cache.
pub fn jwks_cache_hit() {
    metrics::counter!("authmux_jwks_cache_hits_total").increment(1);
}

/// Records an idempotent replay.
pub fn idempotent_replay(operation: &str) {
    metrics::counter!("authmux_idempotent_replays_total", "operation" => operation.to_owned())
        .increment(1);
}
