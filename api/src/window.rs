//! Windows: which time windows a record belongs to, and the functions that turn a window's
//! contents into results.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::UserError;

/// A time window `[start, end)` in epoch ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TimeWindow {
    /// First millisecond in the window.
    pub start: i64,
    /// First millisecond after the window (exclusive).
    pub end: i64,
}

impl TimeWindow {
    /// The last timestamp in the window; its timer fires when the watermark reaches it.
    #[inline]
    pub fn max_timestamp(&self) -> i64 {
        self.end - 1
    }

    /// Whether two windows overlap or touch (session windows merge then).
    pub fn intersects(&self, other: &TimeWindow) -> bool {
        self.start <= other.end && self.end >= other.start
    }

    /// The smallest window covering both.
    pub fn cover(&self, other: &TimeWindow) -> TimeWindow {
        TimeWindow { start: self.start.min(other.start), end: self.end.max(other.end) }
    }
}

/// Event time or processing time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowTime {
    /// Windows by the records' timestamps, fired by watermarks.
    Event,
    /// Windows by the wall clock when a record arrives, fired by the clock.
    Processing,
}

/// Assigns records to windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowAssigner {
    /// Fixed-size, non-overlapping windows aligned to the epoch (+ offset).
    Tumbling {
        /// Window length (ms).
        size: i64,
        /// Shift of the window boundaries (ms).
        offset: i64,
        /// Which clock.
        time: WindowTime,
    },
    /// Fixed-size windows starting every `slide`.
    Sliding {
        /// Window length (ms).
        size: i64,
        /// Distance between window starts (ms).
        slide: i64,
        /// Shift of the window boundaries (ms).
        offset: i64,
        /// Which clock.
        time: WindowTime,
    },
    /// Windows that close after a gap without records, per key.
    Session {
        /// The inactivity gap (ms).
        gap: i64,
        /// Which clock.
        time: WindowTime,
    },
}

fn ms(d: Duration) -> i64 {
    d.as_millis().clamp(1, i64::MAX as u128 / 4) as i64
}

/// Flink's `TimeWindow.getWindowStartWithOffset`.
#[inline]
fn window_start(ts: i64, offset: i64, size: i64) -> i64 {
    let rem = (ts - offset).rem_euclid(size);
    ts - rem
}

impl WindowAssigner {
    /// Tumbling event-time windows of `size`.
    pub fn tumbling_event_time(size: Duration) -> Self {
        WindowAssigner::Tumbling { size: ms(size), offset: 0, time: WindowTime::Event }
    }
    /// Tumbling processing-time windows of `size`.
    pub fn tumbling_processing_time(size: Duration) -> Self {
        WindowAssigner::Tumbling { size: ms(size), offset: 0, time: WindowTime::Processing }
    }
    /// Sliding event-time windows.
    pub fn sliding_event_time(size: Duration, slide: Duration) -> Self {
        WindowAssigner::Sliding { size: ms(size), slide: ms(slide), offset: 0, time: WindowTime::Event }
    }
    /// Sliding processing-time windows.
    pub fn sliding_processing_time(size: Duration, slide: Duration) -> Self {
        WindowAssigner::Sliding { size: ms(size), slide: ms(slide), offset: 0, time: WindowTime::Processing }
    }
    /// Event-time session windows.
    pub fn event_time_session(gap: Duration) -> Self {
        WindowAssigner::Session { gap: ms(gap), time: WindowTime::Event }
    }
    /// Processing-time session windows.
    pub fn processing_time_session(gap: Duration) -> Self {
        WindowAssigner::Session { gap: ms(gap), time: WindowTime::Processing }
    }

    /// Shifts window boundaries by `offset` (tumbling and sliding only).
    pub fn with_offset(self, offset: Duration) -> Self {
        let o = offset.as_millis().min(i64::MAX as u128 / 4) as i64;
        match self {
            WindowAssigner::Tumbling { size, time, .. } => WindowAssigner::Tumbling { size, offset: o, time },
            WindowAssigner::Sliding { size, slide, time, .. } => {
                WindowAssigner::Sliding { size, slide, offset: o, time }
            }
            s => s,
        }
    }

    /// The clock the windows follow.
    pub fn time(&self) -> WindowTime {
        match self {
            WindowAssigner::Tumbling { time, .. }
            | WindowAssigner::Sliding { time, .. }
            | WindowAssigner::Session { time, .. } => *time,
        }
    }

    /// Whether windows merge (sessions).
    pub fn is_merging(&self) -> bool {
        matches!(self, WindowAssigner::Session { .. })
    }

    /// The windows of a record at `ts`, appended to `out`.
    #[inline]
    pub fn assign(&self, ts: i64, out: &mut Vec<TimeWindow>) {
        match *self {
            WindowAssigner::Tumbling { size, offset, .. } => {
                let start = window_start(ts, offset, size);
                out.push(TimeWindow { start, end: start + size });
            }
            WindowAssigner::Sliding { size, slide, offset, .. } => {
                let last_start = window_start(ts, offset, slide);
                let mut start = last_start;
                while start > ts - size {
                    out.push(TimeWindow { start, end: start + size });
                    start -= slide;
                }
            }
            WindowAssigner::Session { gap, .. } => out.push(TimeWindow { start: ts, end: ts + gap }),
        }
    }
}

/// Incremental aggregation of a window (Flink's `AggregateFunction`).
pub trait AggregateFunction<T, A, O>: Send + Sync + 'static {
    /// A fresh accumulator.
    fn create_accumulator(&self) -> A;
    /// Adds a record.
    fn add(&self, value: T, acc: A) -> A;
    /// The window's result.
    fn get_result(&self, acc: &A) -> O;
    /// Combines two accumulators (session windows merging).
    fn merge(&self, a: A, b: A) -> A;
}

/// What a [`ProcessWindowFunction`] knows about the window it runs for.
pub struct WindowContext<'a, K> {
    /// The key.
    pub key: &'a K,
    /// The window.
    pub window: TimeWindow,
    /// The operator's current watermark.
    pub current_watermark: i64,
}

/// Sees all records of a window at once.
pub trait ProcessWindowFunction<K, T, O>: Send + Sync + 'static {
    /// Emits results for a window's records.
    fn process(&self, ctx: &WindowContext<'_, K>, elements: &[T], out: &mut dyn FnMut(O)) -> Result<(), UserError>;
}

impl<K, T, O, F> ProcessWindowFunction<K, T, O> for F
where
    F: Fn(&WindowContext<'_, K>, &[T], &mut dyn FnMut(O)) -> Result<(), UserError> + Send + Sync + 'static,
{
    fn process(&self, ctx: &WindowContext<'_, K>, elements: &[T], out: &mut dyn FnMut(O)) -> Result<(), UserError> {
        self(ctx, elements, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assigners() {
        let mut v = Vec::new();
        WindowAssigner::tumbling_event_time(Duration::from_secs(10)).assign(1_700_000_001_234, &mut v);
        assert_eq!(v, vec![TimeWindow { start: 1_700_000_000_000, end: 1_700_000_010_000 }]);
        v.clear();
        WindowAssigner::tumbling_event_time(Duration::from_millis(10)).assign(-3, &mut v);
        assert_eq!(v, vec![TimeWindow { start: -10, end: 0 }]);
        v.clear();
        WindowAssigner::sliding_event_time(Duration::from_millis(10), Duration::from_millis(5)).assign(12, &mut v);
        assert_eq!(v, vec![TimeWindow { start: 10, end: 20 }, TimeWindow { start: 5, end: 15 }]);
    }
}
