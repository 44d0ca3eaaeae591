//! Partitioned output: which Hive-style directory (`dt=2026-12-03/hour=07`) each row goes to,
//! computed from the values of the partition columns, and a batch split into one batch per
//! directory without those columns (Hive and Flink keep them in the path only).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, UInt32Array};
use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use serde::{Deserialize, Serialize};

use crate::error::{ConnectorError, Result};

/// Characters Hive percent-escapes in partition names and values (`FileUtils.escapePathName`),
/// besides control characters: nothing in a value can add a path separator or a `key=value`
/// boundary, so no value leaves its directory (`../x` becomes `..%2Fx`).
fn must_escape(c: char) -> bool {
    matches!(c, '"' | '#' | '%' | '\'' | '*' | '/' | ':' | '=' | '?' | '\\' | '{' | '[' | ']' | '^')
        || (c as u32) < 0x20
        || c as u32 == 0x7f
}

/// `s` with Hive's escapes: `%` and two upper-case hex digits per escaped byte.
pub fn escape_path_name(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if must_escape(c) {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// One partition: the values of the partition columns, in order, as strings (nulls and empty
/// strings are the default partition name).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PartitionSpec {
    /// `(column, value)` pairs, unescaped.
    pub values: Vec<(String, String)>,
}

impl PartitionSpec {
    /// The relative directory: `col=value` per column, escaped, joined by `/`; empty for the
    /// unpartitioned table.
    pub fn path(&self) -> String {
        self.values
            .iter()
            .map(|(k, v)| format!("{}={}", escape_path_name(k), escape_path_name(v)))
            .collect::<Vec<_>>()
            .join("/")
    }
}

/// Splits batches of one schema by partition.
#[derive(Debug)]
pub struct Partitioner {
    schema: SchemaRef,
    columns: Vec<(String, usize)>,
    data_indices: Vec<usize>,
    data_schema: SchemaRef,
    default_name: String,
}

impl Partitioner {
    /// A partitioner of batches of `schema` by `columns` (none: everything in one partition,
    /// the base directory). Errors for unknown or repeated columns, or when no data column
    /// would be left.
    pub fn new(schema: SchemaRef, columns: &[String], default_name: &str) -> Result<Self> {
        let mut cols = Vec::with_capacity(columns.len());
        for c in columns {
            let i = schema.index_of(c).map_err(|_| {
                ConnectorError::schema("sink", format!("partition column '{c}' is not a column of the rows"))
            })?;
            if cols.iter().any(|(_, j)| *j == i) {
                return Err(ConnectorError::schema("sink", format!("partition column '{c}' is named twice")));
            }
            cols.push((c.clone(), i));
        }
        let data_indices: Vec<usize> =
            (0..schema.fields().len()).filter(|i| !cols.iter().any(|(_, j)| j == i)).collect();
        if data_indices.is_empty() {
            return Err(ConnectorError::schema("sink", "every column is a partition column: no data would be written"));
        }
        let data_schema =
            Arc::new(Schema::new(data_indices.iter().map(|i| schema.field(*i).clone()).collect::<Vec<_>>()));
        Ok(Self { schema, columns: cols, data_indices, data_schema, default_name: default_name.to_string() })
    }

    /// The schema of the batches this partitioner takes.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The schema of the files: the rows' schema without the partition columns.
    pub fn data_schema(&self) -> &SchemaRef {
        &self.data_schema
    }

    /// `batch` split into one batch per partition, in the order of each partition's first
    /// row, rows in their order, the partition columns removed.
    pub fn split(&self, batch: &RecordBatch) -> Result<Vec<(PartitionSpec, RecordBatch)>> {
        if batch.schema().fields() != self.schema.fields() {
            return Err(ConnectorError::schema(
                "sink",
                format!("rows of schema {} arrived at a sink writing {}", batch.schema(), self.schema),
            ));
        }
        let data = batch.project(&self.data_indices).map_err(|e| ConnectorError::schema("sink", e))?;
        if self.columns.is_empty() {
            return Ok(vec![(PartitionSpec { values: Vec::new() }, data)]);
        }
        let options = FormatOptions::default();
        let formatters = self
            .columns
            .iter()
            .map(|(_, i)| ArrayFormatter::try_new(batch.column(*i).as_ref(), &options))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| ConnectorError::schema("sink", e))?;
        let mut order: Vec<(PartitionSpec, Vec<u32>)> = Vec::new();
        let mut index: HashMap<Vec<String>, usize> = HashMap::new();
        for row in 0..batch.num_rows() {
            let mut key = Vec::with_capacity(self.columns.len());
            for ((_, c), f) in self.columns.iter().zip(&formatters) {
                let v = if batch.column(*c).is_null(row) { String::new() } else { f.value(row).to_string() };
                key.push(if v.is_empty() { self.default_name.clone() } else { v });
            }
            let slot = match index.get(&key) {
                Some(s) => *s,
                None => {
                    let values = self.columns.iter().map(|(n, _)| n.clone()).zip(key.iter().cloned()).collect();
                    order.push((PartitionSpec { values }, Vec::new()));
                    index.insert(key, order.len() - 1);
                    order.len() - 1
                }
            };
            order[slot].1.push(row as u32);
        }
        if order.len() == 1 {
            return Ok(order.into_iter().map(|(spec, _)| (spec, data.clone())).collect());
        }
        order
            .into_iter()
            .map(|(spec, rows)| {
                let idx = UInt32Array::from(rows);
                let cols = data
                    .columns()
                    .iter()
                    .map(|c| arrow::compute::take(c.as_ref(), &idx, None))
                    .collect::<std::result::Result<Vec<ArrayRef>, _>>()
                    .map_err(|e| ConnectorError::schema("sink", e))?;
                let part = RecordBatch::try_new(data.schema(), cols).map_err(|e| ConnectorError::schema("sink", e))?;
                Ok((spec, part))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field};

    #[test]
    fn hive_escapes() {
        assert_eq!(escape_path_name("2026-12-03"), "2026-12-03");
        assert_eq!(escape_path_name("../x"), "..%2Fx");
        assert_eq!(escape_path_name("/"), "%2F");
        assert_eq!(escape_path_name("a=b"), "a%3Db");
        assert_eq!(escape_path_name("10:30"), "10%3A30");
        assert_eq!(escape_path_name("100%"), "100%25");
        assert_eq!(escape_path_name("a\\b\nc"), "a%5Cb%0Ac");
        assert_eq!(escape_path_name("héllo wörld"), "héllo wörld");
    }

    #[test]
    fn no_value_leaves_its_directory() {
        for hostile in ["..", "../x", "/", "/etc/passwd", "a/../../b", "=", "x=y/z", "\\..\\"] {
            let spec = PartitionSpec { values: vec![("dt".into(), hostile.into()), ("h".into(), hostile.into())] };
            let path = spec.path();
            let parts: Vec<&str> = path.split('/').collect();
            assert_eq!(parts.len(), 2, "{hostile:?} -> {path}");
            assert!(parts[0].starts_with("dt=") && parts[1].starts_with("h="), "{path}");
            assert!(parts.iter().all(|p| *p != ".." && *p != "." && !p.contains('\\')), "{path}");
            assert_eq!(parts[0].matches('=').count(), 1, "{path}");
        }
    }

    fn rows() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("dt", DataType::Utf8, true),
            Field::new("hour", DataType::Int32, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5])),
                Arc::new(StringArray::from(vec![
                    Some("2026-12-03"),
                    Some("2026-12-04"),
                    Some("2026-12-03"),
                    None,
                    Some(""),
                ])),
                Arc::new(Int32Array::from(vec![Some(7), Some(7), Some(7), Some(1), None])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn rows_split_by_partition_in_order_without_the_partition_columns() {
        let b = rows();
        let p = Partitioner::new(b.schema(), &["dt".into(), "hour".into()], "__DEFAULT_PARTITION__").unwrap();
        assert_eq!(p.data_schema().fields().len(), 1);
        let parts = p.split(&b).unwrap();
        let got: Vec<(String, Vec<i64>)> = parts
            .iter()
            .map(|(s, b)| {
                let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec();
                (s.path(), ids)
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("dt=2026-12-03/hour=7".to_string(), vec![1, 3]),
                ("dt=2026-12-04/hour=7".to_string(), vec![2]),
                ("dt=__DEFAULT_PARTITION__/hour=1".to_string(), vec![4]),
                ("dt=__DEFAULT_PARTITION__/hour=__DEFAULT_PARTITION__".to_string(), vec![5]),
            ]
        );
        assert!(parts.iter().all(|(_, b)| b.schema().fields().len() == 1 && b.schema().field(0).name() == "id"));
    }

    #[test]
    fn unpartitioned_is_one_group_and_bad_columns_are_refused() {
        let b = rows();
        let p = Partitioner::new(b.schema(), &[], "d").unwrap();
        let parts = p.split(&b).unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!((parts[0].0.path(), parts[0].1.num_rows()), (String::new(), 5));
        assert!(Partitioner::new(b.schema(), &["nope".into()], "d").is_err());
        assert!(Partitioner::new(b.schema(), &["dt".into(), "dt".into()], "d").is_err());
        assert!(Partitioner::new(b.schema(), &["id".into(), "dt".into(), "hour".into()], "d").is_err());
        let other = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)])),
            vec![Arc::new(Int64Array::from(vec![1]))],
        )
        .unwrap();
        assert!(p.split(&other).is_err(), "a batch of another schema");
    }
}
