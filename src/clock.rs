//! Time comes from a [`Clock`] so tests can move it instead of sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};

/// Source of "now" for everything that decides on time (token expiry, order deadlines, …).
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// Offset added to the system time, in milliseconds; only tests move it.
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// The real clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// Current time in UTC.
    pub fn now(&self) -> DateTime<Utc> {
        let ms = self.now_ms();
        Utc.timestamp_millis_opt(ms)
            .single()
            .unwrap_or_else(Utc::now)
    }

    /// Current time as Unix milliseconds (what the Lua scripts receive).
    pub fn now_ms(&self) -> i64 {
        Utc::now().timestamp_millis() + self.offset_ms.load(Ordering::Relaxed)
    }

    /// Moves this clock (and its clones) forward; for tests.
    pub fn advance_ms(&self, ms: i64) {
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}
