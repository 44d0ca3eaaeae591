//! Test data shared by the connectors' tests: one batch with every kind of value the formats
//! hold (ints, floats, strings with delimiters and quotes, timestamps, decimals) and nulls.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Decimal128Array, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use riffle_api::Configuration;
use riffle_connectors::{format, Format};

/// The first timestamp of the data: 2026-05-28T... in microseconds.
pub const TS0: i64 = 1_780_000_000_000_000;

/// The schema; `decimal`: with the decimal column (ORC writes none).
pub fn schema(decimal: bool) -> SchemaRef {
    let mut fields = vec![
        Field::new("id", DataType::Int64, false),
        Field::new("score", DataType::Float64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
    ];
    if decimal {
        fields.push(Field::new("amount", DataType::Decimal128(10, 2), true));
    }
    Arc::new(Schema::new(fields))
}

/// The string of row `i`: some hold the CSV delimiter, quotes, non-ASCII text.
pub fn name(i: i64) -> Option<String> {
    match i % 5 {
        2 => None,
        3 => Some(format!("a,\"b\" {i}")),
        4 => Some(format!("héllo wörld {i}")),
        _ => Some(format!("name-{i}")),
    }
}

/// Rows `from..to` of the data.
pub fn batch(from: i64, to: i64, decimal: bool) -> RecordBatch {
    let ids: Vec<i64> = (from..to).collect();
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.clone())),
        Arc::new(Float64Array::from(
            ids.iter().map(|i| (i % 4 != 1).then_some(*i as f64 * 1.5 - 0.25)).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(ids.iter().map(|i| name(*i)).collect::<Vec<_>>())),
        Arc::new(TimestampMicrosecondArray::from(
            ids.iter().map(|i| (i % 6 != 3).then_some(TS0 + i * 1_000_123)).collect::<Vec<_>>(),
        )),
    ];
    if decimal {
        let d = Decimal128Array::from(
            ids.iter().map(|i| (i % 7 != 4).then_some(i128::from(*i) * 101 - 5)).collect::<Vec<_>>(),
        )
        .with_precision_and_scale(10, 2)
        .expect("valid precision");
        cols.push(Arc::new(d));
    }
    RecordBatch::try_new(schema(decimal), cols).expect("columns match the schema")
}

/// The format `name` with `options` (`key=value`).
pub fn format(name: &str, options: &[(&str, &str)]) -> Arc<dyn Format> {
    let mut c = Configuration::new();
    for (k, v) in options {
        c.set(*k, *v);
    }
    format::by_name(name, &c).expect("valid options")
}

/// Writes `batches` to `path` in `format`.
pub fn write(format: &dyn Format, path: &Path, batches: &[RecordBatch]) {
    let mut w = format.create(path, batches[0].schema()).expect("writer");
    for b in batches {
        w.write(b).expect("write");
    }
    w.finish().expect("finish");
}

/// Every row of `path` read split by split (`split_size`), in order, as one batch.
pub fn read_all(format: &dyn Format, path: &Path, schema: SchemaRef, split_size: u64) -> RecordBatch {
    let mut out = Vec::new();
    for split in format.splits(path, split_size).expect("splits") {
        let mut r = format.open(&split, schema.clone()).expect("open");
        while let Some(b) = r.next_batch().expect("batch") {
            out.push(b);
        }
    }
    arrow::compute::concat_batches(&schema, &out).expect("same schema")
}
