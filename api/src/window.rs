//! Windows: which time windows a record belongs to, and the functions that turn a window's
//! contents into results.

use std::hash::{Hash, Hasher};
use std::time::Duration;

use riffle_state::{KeyedStateStore, StateKey};
use serde::{Deserialize, Serialize};

use crate::error::{TaskError, UserError};
use crate::functions::{OutputTag, SideOutputs};

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

/// The key of per-window state: a key and one of its windows. Hashed by the key alone, so
/// that its key group is the key's and a rescaled restore sends it where the key's windows go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowKey<K> {
    /// The record key.
    pub key: K,
    /// The window.
    pub window: TimeWindow,
}

impl<K: Hash> Hash for WindowKey<K> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key.hash(state)
    }
}

/// A process window function with the whole context (Flink's `ProcessWindowFunction` with
/// `Context.windowState()`, `globalState()`, side outputs and `clear`). Cloned once per
/// subtask; its state is checkpointed with the window operator's.
///
/// Used by [`crate::WindowedStream::process_with_state`] (all the window's records) and
/// [`crate::WindowedStream::aggregate_process`] / [`crate::WindowedStream::reduce_process`]
/// (the one incremental result).
pub trait RichProcessWindowFunction<K, T, O>: Clone + Send + Sync + 'static {
    /// Called once per subtask before any window fires.
    fn open(&mut self) -> Result<(), UserError> {
        Ok(())
    }
    /// A window fires: emit its results with `ctx.collect` (any number).
    fn process(&mut self, elements: &[T], ctx: &mut ProcessWindowContext<'_, K, O>) -> Result<(), UserError>;
    /// The window is purged (its end plus the allowed lateness passed): clean up what
    /// [`ProcessWindowContext::global_state`] keeps for it. Its per-window state is cleared
    /// after this call anyway.
    fn clear(&mut self, _ctx: &mut ProcessWindowContext<'_, K, O>) -> Result<(), UserError> {
        Ok(())
    }
}

/// What a [`RichProcessWindowFunction`] sees of the window it runs for.
pub struct ProcessWindowContext<'a, K, O> {
    pub(crate) key: &'a K,
    pub(crate) window: TimeWindow,
    pub(crate) watermark: i64,
    pub(crate) merging: bool,
    pub(crate) window_state: &'a mut KeyedStateStore<WindowKey<K>>,
    pub(crate) window_key_set: bool,
    pub(crate) global_state: &'a mut KeyedStateStore<K>,
    pub(crate) global_key_set: bool,
    pub(crate) out: &'a mut dyn FnMut(O),
    pub(crate) side: &'a mut SideOutputs,
    pub(crate) error: Option<TaskError>,
}

impl<K: StateKey, O> ProcessWindowContext<'_, K, O> {
    /// The key.
    pub fn key(&self) -> &K {
        self.key
    }

    /// The window.
    pub fn window(&self) -> TimeWindow {
        self.window
    }

    /// The operator's current event time.
    pub fn current_watermark(&self) -> i64 {
        self.watermark
    }

    /// The wall clock, epoch ms.
    pub fn current_processing_time(&self) -> i64 {
        crate::time::now_ms()
    }

    /// Keyed state scoped to this key and window, cleared when the window is purged. Not
    /// available with merging (session) windows, as in Flink.
    pub fn window_state(&mut self) -> Result<&mut KeyedStateStore<WindowKey<K>>, UserError> {
        if self.merging {
            return Err("per-window state is not available with merging (session) windows".into());
        }
        if !self.window_key_set {
            self.window_state.set_current_key(WindowKey { key: self.key.clone(), window: self.window });
            self.window_key_set = true;
        }
        Ok(&mut *self.window_state)
    }

    /// Keyed state scoped to this key, shared by all its windows (never cleared by the
    /// operator).
    pub fn global_state(&mut self) -> &mut KeyedStateStore<K> {
        if !self.global_key_set {
            self.global_state.set_current_key(self.key.clone());
            self.global_key_set = true;
        }
        &mut *self.global_state
    }

    /// Emits a result (its timestamp is the window's max timestamp).
    pub fn collect(&mut self, value: O) {
        (self.out)(value)
    }

    /// Emits to a side output (with the window's max timestamp).
    pub fn output<X: 'static>(&mut self, tag: &OutputTag<X>, value: X) {
        if self.error.is_none() {
            if let Err(e) = self.side.emit(tag.name(), value, self.window.max_timestamp()) {
                self.error = Some(e);
            }
        }
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
