//! The watermark of a SQL table: `WATERMARK FOR ts AS ts - INTERVAL ...` (Flink's
//! `WatermarkAssignerOperator`).
//!
//! Per source subtask the watermark is the largest time seen minus the delay — Flink SQL
//! subtracts no extra millisecond, unlike the DataStream API's bounded out-of-orderness —
//! emitted every `pipeline.auto-watermark-interval` (200 ms by default, the engine's timer),
//! and +∞ when the input ends (the engine forwards the source's final watermark). Each batch
//! gets its largest time as its timestamp.

use arrow::datatypes::SchemaRef;
use riffle_api::{DataStream, WatermarkGenerator, WatermarkOutput, WatermarkStrategy, NO_TIMESTAMP};
use riffle_connectors::Rows;

use super::error::{ExecError, Result};
use super::time::{is_time_type, max_millis};

/// Where a table's watermark comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatermarkSpec {
    /// The time attribute's column index.
    pub time_column: usize,
    /// The declared delay in milliseconds (`ts - INTERVAL '5' SECOND`: 5000; `ts`: 0).
    pub delay_ms: i64,
}

impl WatermarkSpec {
    /// Checks the spec against the rows' schema.
    pub fn validate(&self, schema: &SchemaRef) -> Result<()> {
        let field = schema.fields().get(self.time_column).ok_or_else(|| {
            ExecError::Spec(format!("time column {} of {} columns", self.time_column, schema.fields().len()))
        })?;
        if !is_time_type(field.data_type()) {
            return Err(ExecError::Spec(format!(
                "the watermark column '{}' is {}, not a TIMESTAMP",
                field.name(),
                field.data_type()
            )));
        }
        if self.delay_ms < 0 {
            return Err(ExecError::Spec(format!("a negative watermark delay: {} ms", self.delay_ms)));
        }
        Ok(())
    }
}

/// Largest time seen minus the delay.
pub struct MaxTimeMinusDelay {
    max_time: Option<i64>,
    delay_ms: i64,
}

impl MaxTimeMinusDelay {
    /// A generator holding back `delay_ms` behind the largest time.
    pub fn new(delay_ms: i64) -> Self {
        Self { max_time: None, delay_ms }
    }
}

impl<T> WatermarkGenerator<T> for MaxTimeMinusDelay {
    fn on_event(&mut self, _: &T, timestamp: i64, _: &mut WatermarkOutput) {
        if timestamp != NO_TIMESTAMP && self.max_time.is_none_or(|m| timestamp > m) {
            self.max_time = Some(timestamp);
        }
    }

    fn on_periodic_emit(&mut self, output: &mut WatermarkOutput) {
        if let Some(m) = self.max_time {
            output.emit_watermark(m.saturating_sub(self.delay_ms));
        }
    }
}

/// The rows stamped with their batch's largest time and followed by the table's watermarks.
/// A batch whose time column is all null (or of the wrong type: the operators reading it fail
/// with the reason) keeps its previous timestamp and moves no watermark.
pub fn assign_watermarks(stream: &DataStream<Rows>, spec: &WatermarkSpec) -> DataStream<Rows> {
    let column = spec.time_column;
    let delay = spec.delay_ms;
    let strategy = WatermarkStrategy::<Rows>::for_generator(move || Box::new(MaxTimeMinusDelay::new(delay)))
        .with_timestamp_assigner(move |rows: &Rows, previous| {
            let max = rows.batch().columns().get(column).and_then(|c| max_millis(c).ok().flatten());
            max.unwrap_or(previous)
        });
    stream.assign_timestamps_and_watermarks(strategy).name("WatermarkAssigner")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watermark_is_the_largest_time_minus_the_delay_without_an_extra_millisecond() {
        let mut g = MaxTimeMinusDelay::new(5);
        let mut out = WatermarkOutput::default();
        WatermarkGenerator::<()>::on_periodic_emit(&mut g, &mut out);
        assert_eq!(format!("{out:?}"), format!("{:?}", WatermarkOutput::default()), "nothing before a row");
        for t in [100, 300, 200, NO_TIMESTAMP] {
            g.on_event(&(), t, &mut out);
        }
        let mut out = WatermarkOutput::default();
        WatermarkGenerator::<()>::on_periodic_emit(&mut g, &mut out);
        let mut want = WatermarkOutput::default();
        want.emit_watermark(295);
        assert_eq!(format!("{out:?}"), format!("{want:?}"));
    }
}
