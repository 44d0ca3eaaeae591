//! Event time (FLIP-126): a [`WatermarkStrategy`] says how to read a record's timestamp and
//! how to generate watermarks, periodic or punctuated, optionally marking an input idle.

use std::sync::Arc;
use std::time::Duration;

/// Where a generator emits watermarks and idleness.
#[derive(Debug, Default)]
pub struct WatermarkOutput {
    pub(crate) watermark: Option<i64>,
    pub(crate) idle: Option<bool>,
}

impl WatermarkOutput {
    /// Emits a watermark (ignored downstream unless it advances event time).
    pub fn emit_watermark(&mut self, watermark: i64) {
        self.watermark = Some(self.watermark.map_or(watermark, |w| w.max(watermark)));
        self.idle = Some(false);
    }

    /// Marks this input idle: it holds back no downstream watermark until it emits again.
    pub fn mark_idle(&mut self) {
        self.idle = Some(true);
    }
}

/// Generates watermarks from the records it sees (punctuated) and/or on a timer (periodic).
pub trait WatermarkGenerator<T>: Send {
    /// Called for every record with its timestamp.
    fn on_event(&mut self, value: &T, timestamp: i64, output: &mut WatermarkOutput);
    /// Called every `pipeline.auto-watermark-interval` (200 ms by default).
    fn on_periodic_emit(&mut self, output: &mut WatermarkOutput);
}

/// Watermark = highest timestamp seen − delay − 1 (Flink's `BoundedOutOfOrdernessWatermarks`).
pub struct BoundedOutOfOrderness {
    max_timestamp: i64,
    delay: i64,
}

impl BoundedOutOfOrderness {
    /// A generator tolerating `delay` of disorder.
    pub fn new(delay: Duration) -> Self {
        let delay = delay.as_millis().min(i64::MAX as u128 / 2) as i64;
        Self { max_timestamp: i64::MIN + delay + 1, delay }
    }
}

impl<T> WatermarkGenerator<T> for BoundedOutOfOrderness {
    #[inline]
    fn on_event(&mut self, _: &T, timestamp: i64, _: &mut WatermarkOutput) {
        if timestamp > self.max_timestamp {
            self.max_timestamp = timestamp;
        }
    }
    fn on_periodic_emit(&mut self, output: &mut WatermarkOutput) {
        output.emit_watermark(self.max_timestamp - self.delay - 1);
    }
}

/// Wraps a generator and marks the input idle when no record came for `timeout`
/// (Flink's `WatermarksWithIdleness`).
pub struct WithIdleness<T> {
    inner: Box<dyn WatermarkGenerator<T>>,
    timeout_ms: i64,
    last_activity: i64,
    saw_event: bool,
    idle: bool,
    clock: fn() -> i64,
}

impl<T> WatermarkGenerator<T> for WithIdleness<T> {
    fn on_event(&mut self, value: &T, timestamp: i64, output: &mut WatermarkOutput) {
        self.saw_event = true;
        if self.idle {
            self.idle = false;
            output.idle = Some(false);
        }
        self.inner.on_event(value, timestamp, output)
    }
    fn on_periodic_emit(&mut self, output: &mut WatermarkOutput) {
        let now = (self.clock)();
        if self.saw_event {
            self.saw_event = false;
            self.last_activity = now;
        }
        if !self.idle && now - self.last_activity >= self.timeout_ms {
            self.idle = true;
            output.mark_idle();
            return;
        }
        if !self.idle {
            self.inner.on_periodic_emit(output)
        }
    }
}

/// Reads a record's event timestamp (given its previous timestamp, if any).
pub type TimestampAssigner<T> = Arc<dyn Fn(&T, i64) -> i64 + Send + Sync>;

/// How a stream gets event timestamps and watermarks.
pub struct WatermarkStrategy<T> {
    pub(crate) generator: Arc<dyn Fn() -> Box<dyn WatermarkGenerator<T>> + Send + Sync>,
    pub(crate) assigner: Option<TimestampAssigner<T>>,
    pub(crate) idleness: Option<Duration>,
    pub(crate) clock: fn() -> i64,
}

impl<T> Clone for WatermarkStrategy<T> {
    fn clone(&self) -> Self {
        Self {
            generator: self.generator.clone(),
            assigner: self.assigner.clone(),
            idleness: self.idleness,
            clock: self.clock,
        }
    }
}

impl<T: 'static> WatermarkStrategy<T> {
    /// Timestamps never decrease: watermark = highest timestamp − 1.
    pub fn for_monotonous_timestamps() -> Self {
        Self::for_bounded_out_of_orderness(Duration::ZERO)
    }

    /// Timestamps are at most `delay` out of order.
    pub fn for_bounded_out_of_orderness(delay: Duration) -> Self {
        Self::for_generator(move || Box::new(BoundedOutOfOrderness::new(delay)))
    }

    /// A custom (periodic and/or punctuated) generator, made once per subtask.
    pub fn for_generator<F>(make: F) -> Self
    where
        F: Fn() -> Box<dyn WatermarkGenerator<T>> + Send + Sync + 'static,
    {
        Self { generator: Arc::new(make), assigner: None, idleness: None, clock: crate::time::now_ms }
    }

    /// Reads timestamps with `f(record, previous_timestamp)`.
    pub fn with_timestamp_assigner<F>(mut self, f: F) -> Self
    where
        F: Fn(&T, i64) -> i64 + Send + Sync + 'static,
    {
        self.assigner = Some(Arc::new(f));
        self
    }

    /// Marks the input idle after `timeout` without records, so it does not hold back the
    /// watermark of operators downstream.
    pub fn with_idleness(mut self, timeout: Duration) -> Self {
        self.idleness = Some(timeout);
        self
    }

    /// Uses another clock for idleness (tests drive time by hand).
    pub fn with_clock(mut self, clock: fn() -> i64) -> Self {
        self.clock = clock;
        self
    }

    pub(crate) fn create_generator(&self) -> Box<dyn WatermarkGenerator<T>> {
        let g = (self.generator)();
        match self.idleness {
            None => g,
            Some(d) => Box::new(WithIdleness {
                inner: g,
                timeout_ms: d.as_millis().min(i64::MAX as u128) as i64,
                last_activity: (self.clock)(),
                saw_event: false,
                idle: false,
                clock: self.clock,
            }),
        }
    }
}
