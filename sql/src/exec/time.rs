//! Event times of rows: a time attribute column read as epoch milliseconds.

use arrow::array::{Array, ArrayRef, Int64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimeUnit};

use super::error::{ExecError, Result};

/// Whether `data_type` can be a time attribute: a timestamp of any unit and zone
/// (`TIMESTAMP(3)`, `TIMESTAMP_LTZ(3)`), or epoch milliseconds as `BIGINT`.
pub fn is_time_type(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Timestamp(_, _) | DataType::Int64)
}

/// The column's values as epoch milliseconds (nulls stay null). A `TIMESTAMP_LTZ` holds an
/// instant, a `TIMESTAMP` a wall-clock time: both are the same milliseconds here, as Flink
/// computes windows on the wall clock of the session zone (UTC for the benchmark).
pub fn millis(column: &ArrayRef) -> Result<Int64Array> {
    let as_millis = match column.data_type() {
        DataType::Int64 => column.clone(),
        DataType::Timestamp(TimeUnit::Millisecond, _) => cast(column, &DataType::Int64)?,
        DataType::Timestamp(_, tz) => {
            let ms = cast(column, &DataType::Timestamp(TimeUnit::Millisecond, tz.clone()))?;
            cast(&ms, &DataType::Int64)?
        }
        other => return Err(ExecError::Input(format!("a time attribute must be a TIMESTAMP or BIGINT, not {other}"))),
    };
    as_millis
        .as_any()
        .downcast_ref::<Int64Array>()
        .cloned()
        .ok_or_else(|| ExecError::Input("a time column did not convert to milliseconds".into()))
}

/// The largest non-null time of the column, if any.
pub fn max_millis(column: &ArrayRef) -> Result<Option<i64>> {
    Ok(arrow::compute::max(&millis(column)?))
}

/// The smallest non-null time of the column, if any.
pub fn min_millis(column: &ArrayRef) -> Result<Option<i64>> {
    Ok(arrow::compute::min(&millis(column)?))
}

/// `a` rounded down to a multiple of `b` (`b > 0`), also for negative `a`: windows are
/// aligned to the epoch.
pub fn floor_to(a: i64, b: i64) -> i64 {
    a - a.rem_euclid(b)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{TimestampMicrosecondArray, TimestampMillisecondArray};

    use super::*;

    #[test]
    fn every_time_type_reads_as_milliseconds_and_others_are_refused() {
        let ms: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![Some(5), None]).with_timezone("UTC"));
        assert_eq!(millis(&ms).unwrap(), Int64Array::from(vec![Some(5), None]));
        let us: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![7_000, 9_999]));
        assert_eq!(millis(&us).unwrap(), Int64Array::from(vec![7, 9]));
        let raw: ArrayRef = Arc::new(Int64Array::from(vec![3, 1]));
        assert_eq!(max_millis(&raw).unwrap(), Some(3));
        let s: ArrayRef = Arc::new(arrow::array::StringArray::from(vec!["x"]));
        assert_eq!(
            millis(&s).unwrap_err().to_string(),
            "unexpected input: a time attribute must be a TIMESTAMP or BIGINT, not Utf8"
        );
        assert_eq!((floor_to(-1, 10), floor_to(10, 10), floor_to(19, 10)), (-10, 10, 10));
    }
}
