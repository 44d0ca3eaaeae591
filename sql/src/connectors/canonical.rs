//! `'connector' = 'canonical-csv'`, `'path' = FILE`: the result check's collecting sink. The
//! rows come back to the caller's process, changelogs are materialized (`+I`/`+U` add an
//! occurrence of a row, `-U`/`-D` remove one; a row going below zero fails), and at the end
//! FILE gets the header (the sink's column names) and one line per row, sorted bytewise, each
//! value formatted by the sink column's declared type as the Flink SQL harness's "canonical
//! CSV" says (`DECIMAL(p, s)` with exactly s digits, timestamps `YYYY-MM-DD HH:MM:SS.mmm` in
//! UTC, strings quoted when empty or holding `,`/`"`, NULL empty; floating point refused).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Int16Type, Int32Type, Int64Type, Int8Type, SchemaRef, Time32MillisecondType,
    TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use arrow::record_batch::RecordBatch;
use chrono::{Datelike, Timelike};
use riffle_api::DataStream;
use riffle_connectors::Rows;

use super::options::{error, required};
use super::{RowConsumer, SinkContext, SinkOutput, TableConnector};
use crate::changelog::{RowKind, OP_COLUMN};
use crate::error::{Result, SqlError};

/// The canonical-CSV capture sink.
pub struct CanonicalCsv;

impl TableConnector for CanonicalCsv {
    fn name(&self) -> &str {
        "canonical-csv"
    }

    fn create_sink(&self, ctx: &SinkContext<'_>, input: DataStream<Rows>) -> Result<SinkOutput> {
        let path = PathBuf::from(required(ctx.table, &["path"])?);
        let schema = ctx.table.sink_schema();
        for f in schema.fields() {
            if matches!(f.data_type(), DataType::Float32 | DataType::Float64 | DataType::Float16) {
                return Err(error(
                    ctx.table,
                    format!("column '{}': FLOAT/DOUBLE has no canonical form; cast to DECIMAL(p, s)", f.name()),
                ));
            }
        }
        Ok(SinkOutput::Collect { stream: input.collect(), consumer: Box::new(CanonicalWriter::new(path, schema)) })
    }
}

/// Materializes rows into canonical lines and writes them sorted.
pub struct CanonicalWriter {
    path: PathBuf,
    schema: SchemaRef,
    counts: HashMap<String, i64>,
}

impl CanonicalWriter {
    /// A writer of `schema`'s rows to `path`.
    pub fn new(path: PathBuf, schema: SchemaRef) -> Self {
        CanonicalWriter { path, schema, counts: HashMap::new() }
    }

    /// The header and the sorted lines (what `finish` writes).
    pub fn render(&self) -> Result<String> {
        let mut lines = Vec::with_capacity(self.counts.values().map(|c| *c as usize).sum());
        for (line, count) in &self.counts {
            if *count < 0 {
                return Err(SqlError::Job(format!("the changelog retracts a row it never added: {line}")));
            }
            for _ in 0..*count {
                lines.push(line.as_str());
            }
        }
        lines.sort_unstable();
        let header = self.schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(",");
        let mut out = String::with_capacity(header.len() + 1 + lines.iter().map(|l| l.len() + 1).sum::<usize>());
        out.push_str(&header);
        out.push('\n');
        for l in lines {
            out.push_str(l);
            out.push('\n');
        }
        Ok(out)
    }
}

impl RowConsumer for CanonicalWriter {
    fn accept(&mut self, batch: &RecordBatch) -> Result<()> {
        let kinds = batch.schema().index_of(OP_COLUMN).ok().map(|i| batch.column(i).clone());
        let kinds = kinds.as_ref().and_then(|k| k.as_primitive_opt::<Int8Type>());
        let width = self.schema.fields().len();
        if batch.num_columns() < width {
            return Err(SqlError::Internal(format!(
                "a batch of {} columns for a sink of {width}",
                batch.num_columns()
            )));
        }
        let mut line = String::new();
        for row in 0..batch.num_rows() {
            line.clear();
            for (i, field) in self.schema.fields().iter().enumerate() {
                if i > 0 {
                    line.push(',');
                }
                format_value(batch.column(i).as_ref(), row, field.data_type(), &mut line)?;
            }
            let delta = match kinds.map(|k| RowKind::from_byte(k.value(row))) {
                None => 1,
                Some(Some(kind)) if kind.is_accumulate() => 1,
                Some(Some(_)) => -1,
                Some(None) => return Err(SqlError::Internal("an unknown row kind".into())),
            };
            *self.counts.entry(line.clone()).or_default() += delta;
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<()> {
        let text = self.render()?;
        let tmp = self.path.with_extension("tmp-riffle");
        std::fs::write(&tmp, text).map_err(|source| SqlError::Io { path: tmp.display().to_string(), source })?;
        std::fs::rename(&tmp, &self.path)
            .map_err(|source| SqlError::Io { path: self.path.display().to_string(), source })
    }
}

/// Appends the canonical form of `array[row]` (declared type `t`) to `out`.
pub fn format_value(array: &dyn Array, row: usize, t: &DataType, out: &mut String) -> Result<()> {
    if array.is_null(row) {
        return Ok(());
    }
    let bad = |what: &str| SqlError::Job(format!("a {t} value {what} has no canonical form"));
    match array.data_type() {
        DataType::Int8 => write!(out, "{}", array.as_primitive::<Int8Type>().value(row)),
        DataType::Int16 => write!(out, "{}", array.as_primitive::<Int16Type>().value(row)),
        DataType::Int32 => write!(out, "{}", array.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => write!(out, "{}", array.as_primitive::<Int64Type>().value(row)),
        DataType::Boolean => write!(out, "{}", array.as_boolean().value(row)),
        DataType::Decimal128(_, s) => {
            out.push_str(&format_decimal(array.as_primitive::<Decimal128Type>().value(row), *s));
            Ok(())
        }
        DataType::Utf8 => {
            let v = array.as_string::<i32>().value(row);
            if v.contains(['\n', '\r']) {
                return Err(bad("with a line break"));
            }
            if v.is_empty() || v.contains([',', '"']) {
                write!(out, "\"{}\"", v.replace('"', "\"\""))
            } else {
                out.push_str(v);
                Ok(())
            }
        }
        DataType::Date32 => {
            let d = arrow::temporal_conversions::date32_to_datetime(array.as_primitive::<Date32Type>().value(row))
                .ok_or_else(|| bad("out of range"))?;
            write!(out, "{:04}-{:02}-{:02}", d.year(), d.month(), d.day())
        }
        DataType::Time32(TimeUnit::Millisecond) => {
            let ms = array.as_primitive::<Time32MillisecondType>().value(row);
            write!(out, "{:02}:{:02}:{:02}.{:03}", ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000)
        }
        DataType::Timestamp(unit, _) => {
            let (millis, rest) = match unit {
                TimeUnit::Second => (array.as_primitive::<TimestampSecondType>().value(row) * 1000, 0),
                TimeUnit::Millisecond => (array.as_primitive::<TimestampMillisecondType>().value(row), 0),
                TimeUnit::Microsecond => {
                    let v = array.as_primitive::<TimestampMicrosecondType>().value(row);
                    (v.div_euclid(1000), v.rem_euclid(1000))
                }
                TimeUnit::Nanosecond => {
                    let v = array.as_primitive::<TimestampNanosecondType>().value(row);
                    (v.div_euclid(1_000_000), v.rem_euclid(1_000_000))
                }
            };
            if rest != 0 {
                return Err(bad("with a sub-millisecond part"));
            }
            let d = arrow::temporal_conversions::timestamp_ms_to_datetime(millis).ok_or_else(|| bad("out of range"))?;
            write!(
                out,
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}",
                d.year(),
                d.month(),
                d.day(),
                d.hour(),
                d.minute(),
                d.second(),
                d.nanosecond() / 1_000_000
            )
        }
        _ => return Err(bad("of this type")),
    }
    .map_err(|e| SqlError::Internal(e.to_string()))
}

/// A DECIMAL's unscaled value with exactly `scale` digits after the point.
pub fn format_decimal(unscaled: i128, scale: i8) -> String {
    let negative = unscaled < 0;
    let digits = unscaled.unsigned_abs().to_string();
    let scale = scale.max(0) as usize;
    let mut s = String::with_capacity(digits.len() + 3);
    if negative {
        s.push('-');
    }
    if scale == 0 {
        s.push_str(&digits);
    } else if digits.len() <= scale {
        s.push_str("0.");
        s.extend(std::iter::repeat_n('0', scale - digits.len()));
        s.push_str(&digits);
    } else {
        let (int, frac) = digits.split_at(digits.len() - scale);
        s.push_str(int);
        s.push('.');
        s.push_str(frac);
    }
    s
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Decimal128Array, Int64Array, StringArray, TimestampMillisecondArray};
    use arrow::datatypes::{Field, Schema};

    use super::*;

    #[test]
    fn values_take_the_harness_forms() {
        assert_eq!(format_decimal(908, 3), "0.908");
        assert_eq!(format_decimal(9_080_000, 3), "9080.000");
        assert_eq!(format_decimal(-1500, 3), "-1.500");
        assert_eq!(format_decimal(42, 0), "42");
        assert_eq!(format_decimal(-5, 2), "-0.05");
        let ts = TimestampMillisecondArray::from(vec![1_700_000_000_001]).with_timezone("UTC");
        let mut s = String::new();
        format_value(&ts, 0, ts.data_type(), &mut s).unwrap();
        assert_eq!(s, "2023-11-14 22:13:20.001");
        let strings = StringArray::from(vec![Some("abc"), Some(""), Some("a,b"), Some("say \"hi\""), None]);
        let forms: Vec<String> = (0..5)
            .map(|i| {
                let mut s = String::new();
                format_value(&strings, i, &DataType::Utf8, &mut s).unwrap();
                s
            })
            .collect();
        assert_eq!(forms, ["abc", "\"\"", "\"a,b\"", "\"say \"\"hi\"\"\"", ""]);
    }

    #[test]
    fn a_changelog_is_materialized_and_lines_are_sorted_bytewise() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("v", DataType::Decimal128(5, 1), true),
        ]));
        let mut w = CanonicalWriter::new(PathBuf::from("unused"), schema.clone());
        let with_ops = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("v", DataType::Decimal128(5, 1), true),
            crate::changelog::op_field(),
        ]));
        let batch = RecordBatch::try_new(
            with_ops,
            vec![
                Arc::new(Int64Array::from(vec![10, 10, 10, 9])),
                Arc::new(Decimal128Array::from(vec![15, 15, 25, 5]).with_precision_and_scale(5, 1).unwrap()),
                Arc::new(arrow::array::Int8Array::from(vec![0, 1, 2, 0])),
            ],
        )
        .unwrap();
        w.accept(&batch).unwrap();
        assert_eq!(w.render().unwrap(), "k,v\n10,2.5\n9,0.5\n");
    }
}
