//! Assigns event timestamps and generates watermarks from a [`WatermarkStrategy`].

use crate::error::TaskResult;
use crate::link::Input;
use crate::record::MAX_WATERMARK;
use crate::watermark::{TimestampAssigner, WatermarkGenerator, WatermarkOutput};

/// Flink's `TimestampsAndWatermarksOperator`: stamps each record, feeds the generator, emits
/// periodic watermarks every `interval_ms`. Upstream watermarks are dropped except the final
/// one (end of input).
pub struct TimestampsAndWatermarksOp<T> {
    pub(crate) generator: Box<dyn WatermarkGenerator<T>>,
    pub(crate) assigner: Option<TimestampAssigner<T>>,
    pub(crate) interval_ms: i64,
    pub(crate) next_emit: i64,
    pub(crate) last_watermark: i64,
    pub(crate) idle: bool,
    pub(crate) next: Box<dyn Input<T>>,
}

impl<T> TimestampsAndWatermarksOp<T> {
    fn apply(&mut self, out: WatermarkOutput) -> TaskResult {
        if let Some(idle) = out.idle {
            if idle != self.idle {
                self.idle = idle;
                self.next.idle(idle)?;
            }
        }
        if let Some(w) = out.watermark {
            if w > self.last_watermark {
                self.last_watermark = w;
                self.next.watermark(w)?;
            }
        }
        Ok(())
    }
}

impl<T> Input<T> for TimestampsAndWatermarksOp<T> {
    #[inline]
    fn push(&mut self, value: T, timestamp: i64) -> TaskResult {
        let ts = match &self.assigner {
            Some(a) => a(&value, timestamp),
            None => timestamp,
        };
        let mut out = WatermarkOutput::default();
        self.generator.on_event(&value, ts, &mut out);
        self.next.push(value, ts)?;
        if out.watermark.is_some() || out.idle.is_some() {
            self.apply(out)?;
        }
        Ok(())
    }

    fn watermark(&mut self, watermark: i64) -> TaskResult {
        if watermark == MAX_WATERMARK && self.last_watermark != MAX_WATERMARK {
            self.last_watermark = MAX_WATERMARK;
            self.next.watermark(MAX_WATERMARK)?;
        }
        Ok(())
    }

    fn idle(&mut self, _idle: bool) -> TaskResult {
        Ok(())
    }

    fn end_input(&mut self) -> TaskResult {
        self.next.end_input()
    }

    fn processing_time(&mut self, now: i64) -> TaskResult {
        if self.interval_ms > 0 && now >= self.next_emit && self.last_watermark != MAX_WATERMARK {
            let mut out = WatermarkOutput::default();
            self.generator.on_periodic_emit(&mut out);
            self.apply(out)?;
            self.next_emit = now + self.interval_ms;
        }
        self.next.processing_time(now)
    }

    fn snapshot(&mut self, out: &mut crate::snapshot::OperatorSnapshots) -> TaskResult {
        self.next.snapshot(out)
    }

    fn restore(&mut self, from: &crate::snapshot::OperatorRestore) -> TaskResult {
        self.next.restore(from)
    }

    fn notify_checkpoint(&mut self, id: u64, completed: bool) -> TaskResult {
        self.next.notify_checkpoint(id, completed)
    }

    fn next_processing_time(&self) -> Option<i64> {
        // An interval of 0 turns periodic watermarks off (Flink's `pipeline.auto-watermark-interval: 0`).
        let own = (self.interval_ms > 0 && self.last_watermark != MAX_WATERMARK).then_some(self.next_emit);
        match (own, self.next.next_processing_time()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
