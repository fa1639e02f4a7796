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

/// Which transport a call came in on; the transcoder marks its in-process
/// gRPC calls with `Rest`.
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

/// Records one RPC.
/// Labels are shared or static strings, so recording allocates nothing.
pub fn rpc(rpc: metrics::SharedString, transport: Transport, code: tonic::Code, seconds: f64) {
    metrics::counter!("authmux_requests_total", "rpc" => rpc.clone(), "transport" => transport.as_str(), "code" => code_label(code)).increment(1);
    metrics::histogram!("authmux_request_duration_seconds", "rpc" => rpc, "transport" => transport.as_str()).record(seconds);
}

/// The `code` label: the gRPC status number, as on the wire.
fn code_label(code: tonic::Code) -> &'static str {
    const LABELS: [&str; 17] = [
        "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
    ];
    LABELS.get(code as usize).copied().unwrap_or("2")
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
