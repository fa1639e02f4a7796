//! The clock the domain reads time from. It is the system clock plus an
//! offset that only tests move, so that expiry, grace periods and throttle
//! windows are tested by moving time rather than sleeping or back-dating
//! rows.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Wall-clock time in Unix milliseconds, with a movable offset.
#[derive(Debug, Default)]
pub struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    /// Now, Unix milliseconds.
    pub fn now_millis(&self) -> i64 {
        crate::store::now_millis() + self.offset_ms.load(Ordering::Relaxed)
    }

    /// Moves this clock forward (tests).
    pub fn advance(&self, by: Duration) {
        self.offset_ms
            .fetch_add(by.as_millis() as i64, Ordering::Relaxed);
    }
}
