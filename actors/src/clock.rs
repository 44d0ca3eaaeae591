//! Time as the pure cores see it: passed in with each event, never read by them, so their
//! tests choose it.

use std::time::Instant;

/// When an event happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    /// Monotonic time, for intervals (restart strategies, `min-pause`).
    pub now: Instant,
    /// Wall-clock epoch milliseconds, for timestamps (exception history, checkpoint metadata).
    pub epoch_ms: i64,
}

impl Clock {
    /// The time now: read at the edge, by the actors.
    pub fn system() -> Self {
        Self { now: Instant::now(), epoch_ms: riffle_api::time::now_ms() }
    }
}
