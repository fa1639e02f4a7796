//! Captures every log line of the test process, so tests can check that
//! no secret was ever logged.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

#[derive(Clone)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the capturing subscriber (once per process), at TRACE for
/// authmux and INFO for everything else.
pub fn capture() {
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = Sink(buf.clone());
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                std::env::var("TEST_LOG").unwrap_or_else(|_| "info,authmux=trace".into()),
            ))
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .try_init();
        buf
    });
}

/// Everything logged so far.
pub fn text() -> String {
    LOGS.get()
        .map(|b| String::from_utf8_lossy(&b.lock().unwrap()).into_owned())
        .unwrap_or_default()
}
