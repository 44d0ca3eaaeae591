//! `'connector' = 'datagen'`: Flink's data generator, generating whole Arrow batches.
//!
//! Options (Flink's): `rows-per-second` (default 10000, across all subtasks; from 10^9 on it is
//! "unthrottled"), `number-of-rows` (bounded), and per field `fields.<f>.kind` = `sequence`
//! (`start`, `end`, both inclusive) or `random` (`min`, `max` for numbers, `length` for
//! strings). The table is bounded when a field is a sequence or `number-of-rows` is set; it
//! has then `min(number-of-rows, every sequence's length)` rows.
//!
//! Rows are split across subtasks as Flink's `DataGeneratorSource` does: subtask k of p
//! generates rows k, k+p, k+2p, ... (a sequence field's value is `start + row`), each subtask
//! in ascending order. A subtask's split is its stride and the next row; a checkpoint keeps
//! that one number. Random fields come from a generator seeded by subtask and row batch, so a
//! run is repeatable.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array, Int16Array, Int32Array,
    Int64Array, Int8Array, StringArray, TimestampMicrosecondArray, TimestampMillisecondArray, TimestampNanosecondArray,
};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use riffle_api::source::builtin::StaticEnumerator;
use riffle_api::source::{
    Boundedness, ReadStatus, ReaderState, Source, SourceOutput, SourceReader, Split, SplitEnumerator,
};
use riffle_api::{DataStream, UserError};
use riffle_connectors::Rows;
use serde::{Deserialize, Serialize};

use super::options::{error, get, parse};
use super::{SourceContext, TableConnector};
use crate::catalog::TableDef;
use crate::error::Result;

/// Rows per generated batch (unthrottled).
pub const BATCH_ROWS: usize = 8192;
/// A rate at or above this is unthrottled (the bench's `1000000000000`).
const UNTHROTTLED: f64 = 1e9;

/// Flink's datagen connector.
pub struct Datagen;

impl TableConnector for Datagen {
    fn name(&self) -> &str {
        "datagen"
    }

    fn create_source(&self, ctx: &SourceContext<'_>) -> Result<DataStream<Rows>> {
        let source = DatagenSource::from_table(ctx.table)?;
        let name = format!("Source: datagen ({})", ctx.table.name);
        Ok(ctx.env.from_source(source, &name).set_parallelism(ctx.parallelism).name(&name))
    }
}

/// How one field is generated.
#[derive(Debug, Clone, PartialEq)]
enum FieldGen {
    /// `start + row`.
    Sequence { start: i64 },
    /// Uniform in `[min, max]` (numbers), `length` characters (strings).
    Random { min: Option<f64>, max: Option<f64>, length: usize },
}

/// The generator of one table.
#[derive(Debug, Clone)]
pub struct DatagenSource {
    schema: SchemaRef,
    fields: Vec<FieldGen>,
    /// Rows in all; `None`: unbounded.
    rows: Option<u64>,
    /// Rows per second across all subtasks; `None`: unthrottled.
    rate: Option<f64>,
}

impl DatagenSource {
    /// The generator of `table`'s physical columns, from its options.
    pub fn from_table(table: &TableDef) -> Result<DatagenSource> {
        let schema = table.physical_schema();
        let mut fields = Vec::new();
        let mut rows: Option<u64> = parse::<u64>(table, &["number-of-rows"])?;
        for f in schema.fields() {
            let key = |k: &str| format!("fields.{}.{k}", f.name());
            let kind = get(table, &[&key("kind")]).unwrap_or("random");
            match kind {
                "sequence" => {
                    if !(f.data_type().is_integer() || f.data_type() == &DataType::Utf8) {
                        return Err(error(
                            table,
                            format!(
                                "field '{}': a sequence must be an integer or string, not {}",
                                f.name(),
                                f.data_type()
                            ),
                        ));
                    }
                    let start = parse::<i64>(table, &[&key("start")])?
                        .ok_or_else(|| error(table, format!("option '{}' is required for a sequence", key("start"))))?;
                    let end = parse::<i64>(table, &[&key("end")])?
                        .ok_or_else(|| error(table, format!("option '{}' is required for a sequence", key("end"))))?;
                    if end < start {
                        return Err(error(
                            table,
                            format!("field '{}': sequence end {end} is before its start {start}", f.name()),
                        ));
                    }
                    let len = (end as i128 - start as i128 + 1) as u64;
                    rows = Some(rows.map_or(len, |r| r.min(len)));
                    fields.push(FieldGen::Sequence { start });
                }
                "random" => {
                    let min = parse::<f64>(table, &[&key("min")])?;
                    let max = parse::<f64>(table, &[&key("max")])?;
                    if let (Some(lo), Some(hi)) = (min, max) {
                        if hi < lo {
                            return Err(error(table, format!("field '{}': max {hi} is below min {lo}", f.name())));
                        }
                    }
                    let length = parse::<usize>(table, &[&key("length")])?.unwrap_or(100);
                    check_random_type(table, f.name(), f.data_type())?;
                    fields.push(FieldGen::Random { min, max, length });
                }
                other => {
                    return Err(error(
                        table,
                        format!("option '{}' = '{other}': expected 'sequence' or 'random'", key("kind")),
                    ))
                }
            }
        }
        let rate = parse::<f64>(table, &["rows-per-second"])?.unwrap_or(10_000.0);
        if rate <= 0.0 {
            return Err(error(table, "option 'rows-per-second' must be positive"));
        }
        Ok(DatagenSource { schema, fields, rows, rate: (rate < UNTHROTTLED).then_some(rate) })
    }
}

fn check_random_type(table: &TableDef, name: &str, t: &DataType) -> Result<()> {
    match t {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::Float32
        | DataType::Float64
        | DataType::Boolean
        | DataType::Utf8
        | DataType::Decimal128(_, _)
        | DataType::Date32
        | DataType::Timestamp(_, _) => Ok(()),
        other => Err(error(table, format!("field '{name}': datagen cannot generate {other} yet"))),
    }
}

/// One subtask's rows: `subtask, subtask + stride, ...`, from `next` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatagenSplit {
    /// The subtask it was made for (its first row).
    pub subtask: u32,
    /// The number of subtasks (the stride).
    pub stride: u32,
    /// The next row to generate.
    pub next: u64,
}

impl Split for DatagenSplit {
    fn split_id(&self) -> String {
        format!("datagen-{}-of-{}", self.subtask, self.stride)
    }
}

impl Source<Rows> for DatagenSource {
    type Split = DatagenSplit;

    fn boundedness(&self) -> Boundedness {
        if self.rows.is_some() {
            Boundedness::Bounded
        } else {
            Boundedness::Unbounded
        }
    }

    fn create_enumerator(&self, parallelism: u32) -> Result<Box<dyn SplitEnumerator<DatagenSplit>>, UserError> {
        let p = parallelism.max(1);
        let splits = (0..p).map(|k| DatagenSplit { subtask: k, stride: p, next: u64::from(k) }).collect();
        Ok(Box::new(StaticEnumerator::new(splits)))
    }

    fn create_reader(&self, subtask: u32) -> Result<Box<dyn SourceReader<Rows, DatagenSplit>>, UserError> {
        Ok(Box::new(DatagenReader {
            source: Arc::new(self.clone()),
            subtask,
            splits: Vec::new(),
            finished: Vec::new(),
            no_more: false,
            requested: false,
            started: None,
            emitted: 0,
        }))
    }
}

struct DatagenReader {
    source: Arc<DatagenSource>,
    subtask: u32,
    splits: Vec<DatagenSplit>,
    finished: Vec<String>,
    no_more: bool,
    requested: bool,
    started: Option<Instant>,
    emitted: u64,
}

impl SourceReader<Rows, DatagenSplit> for DatagenReader {
    fn add_splits(&mut self, splits: Vec<DatagenSplit>) {
        self.requested = false;
        self.splits.extend(splits);
    }

    fn notify_no_more_splits(&mut self) {
        self.requested = false;
        self.no_more = true;
    }

    fn poll_next(&mut self, output: &mut dyn SourceOutput<Rows>) -> Result<ReadStatus, UserError> {
        let Some(split) = self.splits.first().copied() else {
            if self.no_more {
                return Ok(ReadStatus::EndOfInput);
            }
            if self.requested {
                return Ok(ReadStatus::NothingAvailable);
            }
            self.requested = true;
            return Ok(ReadStatus::NeedSplits);
        };
        let stride = u64::from(split.stride.max(1));
        let remaining = match self.source.rows {
            Some(total) if split.next >= total => {
                self.finished.push(split.split_id());
                self.splits.remove(0);
                return Ok(ReadStatus::MoreAvailable);
            }
            Some(total) => (total - split.next).div_ceil(stride),
            None => u64::MAX,
        };
        let mut n = remaining.min(BATCH_ROWS as u64);
        if let Some(rate) = self.source.rate {
            let per_subtask = (rate / stride as f64).max(1.0);
            let started = *self.started.get_or_insert_with(Instant::now);
            let allowed = (started.elapsed().as_secs_f64() * per_subtask) as u64 + 1;
            if self.emitted >= allowed {
                return Ok(ReadStatus::NothingAvailable);
            }
            n = n.min(allowed - self.emitted).min((per_subtask / 10.0).ceil() as u64).max(1);
        }
        let batch = generate(&self.source, self.subtask, split.next, stride, n as usize)?;
        output.collect(Rows(batch));
        self.emitted += n;
        if let Some(s) = self.splits.first_mut() {
            s.next += n * stride;
        }
        Ok(ReadStatus::MoreAvailable)
    }

    fn snapshot_state(&mut self) -> ReaderState<DatagenSplit> {
        ReaderState { unfinished: self.splits.clone(), finished: self.finished.clone() }
    }
}

/// Rows `first, first + stride, ...` (`n` of them) of the table.
fn generate(source: &DatagenSource, subtask: u32, first: u64, stride: u64, n: usize) -> Result<RecordBatch, UserError> {
    let mut rng = SmallRng::seed_from_u64(first.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(subtask));
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(source.fields.len());
    for (field, g) in source.schema.fields().iter().zip(&source.fields) {
        let column: ArrayRef = match g {
            FieldGen::Sequence { start } => {
                let values = (0..n as u64).map(|j| start.wrapping_add((first + j * stride) as i64));
                sequence_column(field.data_type(), values)?
            }
            FieldGen::Random { min, max, length } => {
                random_column(field.data_type(), &mut rng, n, *min, *max, *length)?
            }
        };
        columns.push(column);
    }
    let options = arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(n));
    Ok(RecordBatch::try_new_with_options(source.schema.clone(), columns, &options)?)
}

fn sequence_column(t: &DataType, values: impl Iterator<Item = i64>) -> Result<ArrayRef, UserError> {
    Ok(match t {
        DataType::Int64 => Arc::new(Int64Array::from_iter_values(values)),
        DataType::Int32 => Arc::new(Int32Array::from_iter_values(values.map(|v| v as i32))),
        DataType::Int16 => Arc::new(Int16Array::from_iter_values(values.map(|v| v as i16))),
        DataType::Int8 => Arc::new(Int8Array::from_iter_values(values.map(|v| v as i8))),
        DataType::Utf8 => Arc::new(StringArray::from_iter_values(values.map(|v| v.to_string()))),
        other => return Err(format!("datagen: a sequence of {other}").into()),
    })
}

fn random_column(
    t: &DataType,
    rng: &mut SmallRng,
    n: usize,
    min: Option<f64>,
    max: Option<f64>,
    length: usize,
) -> Result<ArrayRef, UserError> {
    fn ints(rng: &mut SmallRng, n: usize, lo: i64, hi: i64) -> impl Iterator<Item = i64> + '_ {
        (0..n).map(move |_| rng.random_range(lo..=hi))
    }
    let bounds = |lo: i64, hi: i64| (min.map_or(lo, |m| m as i64), max.map_or(hi, |m| m as i64));
    Ok(match t {
        DataType::Int8 => {
            let (lo, hi) = bounds(i8::MIN.into(), i8::MAX.into());
            Arc::new(Int8Array::from_iter_values(ints(rng, n, lo, hi).map(|v| v as i8)))
        }
        DataType::Int16 => {
            let (lo, hi) = bounds(i16::MIN.into(), i16::MAX.into());
            Arc::new(Int16Array::from_iter_values(ints(rng, n, lo, hi).map(|v| v as i16)))
        }
        DataType::Int32 => {
            let (lo, hi) = bounds(i32::MIN.into(), i32::MAX.into());
            Arc::new(Int32Array::from_iter_values(ints(rng, n, lo, hi).map(|v| v as i32)))
        }
        DataType::Int64 => {
            let (lo, hi) = bounds(i64::MIN, i64::MAX);
            Arc::new(Int64Array::from_iter_values(ints(rng, n, lo, hi)))
        }
        DataType::Float32 | DataType::Float64 => {
            let (lo, hi) = (min.unwrap_or(0.0), max.unwrap_or(1.0));
            let values: Vec<f64> = (0..n).map(|_| if hi > lo { rng.random_range(lo..=hi) } else { lo }).collect();
            if t == &DataType::Float32 {
                Arc::new(Float32Array::from_iter_values(values.into_iter().map(|v| v as f32)))
            } else {
                Arc::new(Float64Array::from_iter_values(values))
            }
        }
        DataType::Boolean => Arc::new(BooleanArray::from_iter((0..n).map(|_| Some(rng.random_bool(0.5))))),
        DataType::Utf8 => {
            const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
            Arc::new(StringArray::from_iter_values(
                (0..n)
                    .map(|_| (0..length).map(|_| CHARS[rng.random_range(0..CHARS.len())] as char).collect::<String>()),
            ))
        }
        DataType::Decimal128(p, s) => {
            let scale = 10f64.powi(i32::from(*s));
            let (lo, hi) = (min.unwrap_or(0.0), max.unwrap_or(1000.0));
            let values = (0..n).map(|_| (if hi > lo { rng.random_range(lo..=hi) } else { lo } * scale).round() as i128);
            Arc::new(Decimal128Array::from_iter_values(values).with_precision_and_scale(*p, *s)?)
        }
        DataType::Date32 => {
            let (lo, hi) = bounds(0, 30_000);
            Arc::new(Date32Array::from_iter_values(ints(rng, n, lo, hi).map(|v| v as i32)))
        }
        DataType::Timestamp(unit, zone) => {
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or_default();
            let millis: Vec<i64> = (0..n).map(|_| now_ms - rng.random_range(0..1000)).collect();
            match unit {
                TimeUnit::Millisecond => {
                    Arc::new(TimestampMillisecondArray::from(millis).with_timezone_opt(zone.clone()))
                }
                TimeUnit::Microsecond => Arc::new(
                    TimestampMicrosecondArray::from(millis.into_iter().map(|m| m * 1000).collect::<Vec<_>>())
                        .with_timezone_opt(zone.clone()),
                ),
                _ => Arc::new(
                    TimestampNanosecondArray::from(millis.into_iter().map(|m| m * 1_000_000).collect::<Vec<_>>())
                        .with_timezone_opt(zone.clone()),
                ),
            }
        }
        other => return Err(format!("datagen cannot generate {other}").into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statement::{parse_one, Statement};

    fn table(sql: &str) -> TableDef {
        let Statement::CreateTable(c) = parse_one(sql).unwrap() else { panic!() };
        c.table
    }

    #[test]
    fn subtask_k_of_p_generates_every_pth_row_from_k() {
        let t = table(
            "CREATE TABLE t (id BIGINT, s STRING) WITH ('connector' = 'datagen', 'fields.id.kind' = 'sequence',
             'fields.id.start' = '10', 'fields.id.end' = '19', 'fields.s.kind' = 'sequence', 'fields.s.start' = '0', 'fields.s.end' = '100')",
        );
        let source = DatagenSource::from_table(&t).unwrap();
        assert_eq!(source.rows, Some(10));
        assert_eq!(source.rate, Some(10_000.0));
        let b = generate(&source, 1, 1, 3, 3).unwrap();
        let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(ids.values().to_vec(), [11, 14, 17]);
        let s = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(s.iter().flatten().collect::<Vec<_>>(), ["1", "4", "7"]);
    }

    #[test]
    fn random_fields_stay_in_their_bounds_and_bad_options_are_named() {
        let t = table(
            "CREATE TABLE t (a INT, b STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '5',
             'fields.a.min' = '3', 'fields.a.max' = '4', 'fields.b.length' = '7')",
        );
        let source = DatagenSource::from_table(&t).unwrap();
        let b = generate(&source, 0, 0, 1, 100).unwrap();
        let a = b.column(0).as_any().downcast_ref::<Int32Array>().unwrap();
        assert!(a.values().iter().all(|v| (3..=4).contains(v)));
        let s = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
        assert!(s.iter().flatten().all(|v| v.len() == 7));
        let bad = table("CREATE TABLE t (a INT) WITH ('connector' = 'datagen', 'fields.a.kind' = 'sequence', 'fields.a.start' = '1')");
        let err = DatagenSource::from_table(&bad).unwrap_err().to_string();
        assert!(err.contains("fields.a.end"), "{err}");
    }
}
