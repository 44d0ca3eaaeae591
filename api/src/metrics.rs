//! Job-wide counters the runtime and the CLI's progress line read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Counters shared by every subtask of a job.
#[derive(Debug, Default)]
pub struct JobCounters {
    /// Records emitted by source readers.
    pub source_records: AtomicU64,
    /// Records that reached a sink.
    pub sink_records: AtomicU64,
    /// Records dropped as too late by windows without a late-data side output.
    pub late_records_dropped: AtomicU64,
    /// Malformed records source readers skipped (a format's ignore-parse-errors option).
    pub source_records_skipped: AtomicU64,
}

impl JobCounters {
    /// Source records so far.
    pub fn records_in(&self) -> u64 {
        self.source_records.load(Ordering::Relaxed)
    }
    /// Sink records so far.
    pub fn records_out(&self) -> u64 {
        self.sink_records.load(Ordering::Relaxed)
    }
    /// Malformed source records skipped so far.
    pub fn records_skipped(&self) -> u64 {
        self.source_records_skipped.load(Ordering::Relaxed)
    }
}

/// A per-subtask counter that publishes to a shared atomic every 1024 increments, so hot
/// paths on different cores do not fight over one cache line.
pub struct LocalCounter {
    local: u64,
    shared: Arc<JobCounters>,
    pick: fn(&JobCounters) -> &AtomicU64,
}

impl LocalCounter {
    /// A counter publishing to the field `pick` selects.
    pub fn new(shared: Arc<JobCounters>, pick: fn(&JobCounters) -> &AtomicU64) -> Self {
        Self { local: 0, shared, pick }
    }

    /// Adds `n`.
    #[inline]
    pub fn add(&mut self, n: u64) {
        self.local += n;
        if self.local >= 1024 {
            self.publish();
        }
    }

    /// Publishes what was counted locally.
    pub fn publish(&mut self) {
        if self.local > 0 {
            (self.pick)(&self.shared).fetch_add(self.local, Ordering::Relaxed);
            self.local = 0;
        }
    }
}

impl Drop for LocalCounter {
    fn drop(&mut self) {
        self.publish()
    }
}
