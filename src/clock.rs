//! The clock the domain reads time from. It is the system clock plus an
//! offset that only tests move, so that expiry, grace periods and throttle
//! windows are tested by moving time rather than sleeping or back-dating
//! rows.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Wall-clock time in Unix milliseconds, with a movable offset.
///
/// It is the only reader of the system's wall clock: `clippy.toml`
/// disallows `SystemTime::now` and `chrono::Utc::now` everywhere else, so
/// every timestamp, expiry and window in authmux comes from the one clock
/// the store and the domain share.
#[derive(Debug, Default)]
pub struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    /// Now, Unix milliseconds.
    pub fn now_millis(&self) -> i64 {
        #[allow(clippy::disallowed_methods)] // the one sanctioned read
        let system = chrono::Utc::now().timestamp_millis();
        system + self.offset_ms.load(Ordering::Relaxed)
    }

    /// Now, whole Unix seconds.
    pub fn now_secs(&self) -> i64 {
        self.now_millis().div_euclid(1000)
    }

    /// Moves this clock forward (tests).
    pub fn advance(&self, by: Duration) {
        self.offset_ms
            .fetch_add(by.as_millis() as i64, Ordering::Relaxed);
    }
}
