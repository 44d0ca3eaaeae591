//! Rows keyed by columns: how a batch holding many keys is partitioned like keyed records.
//!
//! The engine partitions a keyed stream by the key group of each record's key
//! (`key_hash(key) % max_parallelism`), and keyed state lives under the current key in that
//! key group, so rescaling moves key groups whole. A batch holds rows of many keys, so
//! [`KeySplitter`] cuts it into one sub-batch per key group of its rows: each row's key
//! columns are encoded into bytes (arrow-row, the same bytes for equal values in every
//! batch and process), the bytes hash to the row's key group, and the rows of one key group
//! are taken into a sub-batch. A sub-batch is keyed by the *representative* of its key
//! group: a small `u32` whose own hash lands in that key group ([`representatives`]). So the
//! sub-batch goes where its rows' keys belong, and state kept under the representative (for
//! example a `MapState` keyed by [`KeyedRows::row_keys`]) is snapshotted and rescaled with the
//! rows' key group.

use std::sync::Arc;

use arrow::array::{ArrayRef, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::SchemaRef;
use arrow::row::{RowConverter, SortField};
use riffle_state::{assign_to_key_group, key_hash};
use serde::{Deserialize, Serialize};

use crate::rows::{Rows, RowsError};

/// For every key group `g` of `max_parallelism`, the smallest `u32` whose key hash lands in
/// `g`: the key a sub-batch of key group `g` travels and keeps its state under.
pub fn representatives(max_parallelism: u32) -> Vec<u32> {
    let groups = max_parallelism.max(1);
    let mut table = vec![u32::MAX; groups as usize];
    let mut missing = groups;
    let mut candidate = 0u32;
    // Terminates: the hash spreads u32s over every key group (a coupon collector, about
    // `groups * ln(groups)` candidates: ~350,000 for the largest max parallelism, 32768).
    while missing > 0 {
        let g = assign_to_key_group(key_hash(&candidate), groups) as usize;
        if table[g] == u32::MAX {
            table[g] = candidate;
            missing -= 1;
        }
        candidate = candidate.wrapping_add(1);
    }
    table
}

/// The key group of an encoded row key (the bytes [`KeyEncoder::encode`] gives a row).
pub fn key_group_of(encoded_key: &[u8], max_parallelism: u32) -> u32 {
    assign_to_key_group(key_hash(encoded_key), max_parallelism)
}

/// Rows of one key group, keyed by the key group's representative: the record of a stream
/// keyed by columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyedRows {
    /// The representative of the rows' key group (the stream's key: keyed state lives under it).
    pub key: u32,
    /// The key columns' names, in key order.
    pub columns: Vec<String>,
    /// The rows, all of one key group.
    pub rows: Rows,
}

impl KeyedRows {
    /// Each row's key as bytes (arrow-row encoding of the key columns): equal keys give equal
    /// bytes, so they key a `MapState` of per-key values under the representative key.
    pub fn row_keys(&self) -> Result<Vec<Vec<u8>>, RowsError> {
        let names: Vec<&str> = self.columns.iter().map(String::as_str).collect();
        let mut enc = KeyEncoder::new(&names);
        let encoded = enc.encode(&self.rows)?;
        Ok((0..encoded.num_rows()).map(|i| encoded.row(i).as_ref().to_vec()).collect())
    }
}

/// Encodes the key columns of batches into row keys (bytes), rebuilding its converter when
/// the schema changes.
#[derive(Debug)]
pub struct KeyEncoder {
    columns: Vec<String>,
    cached: Option<(SchemaRef, Vec<usize>, RowConverter)>,
}

impl Clone for KeyEncoder {
    fn clone(&self) -> Self {
        // The converter is rebuilt on first use (arrow-row's converter is not `Clone`).
        Self { columns: self.columns.clone(), cached: None }
    }
}

impl KeyEncoder {
    /// An encoder of the columns named `columns`, in this order.
    pub fn new(columns: &[&str]) -> Self {
        Self { columns: columns.iter().map(|c| c.to_string()).collect(), cached: None }
    }

    /// The key columns' names.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Each row's key of `rows`, encoded.
    pub fn encode(&mut self, rows: &Rows) -> Result<arrow::row::Rows, RowsError> {
        let schema = rows.schema();
        let fresh = match &self.cached {
            Some((s, _, _)) => !(Arc::ptr_eq(s, &schema) || **s == *schema),
            None => true,
        };
        if fresh {
            let mut indices = Vec::with_capacity(self.columns.len());
            let mut fields = Vec::with_capacity(self.columns.len());
            for c in &self.columns {
                let i = schema.index_of(c).map_err(|_| RowsError::MissingColumn {
                    column: c.clone(),
                    available: schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", "),
                })?;
                indices.push(i);
                fields.push(SortField::new(schema.field(i).data_type().clone()));
            }
            if indices.is_empty() {
                return Err(RowsError::Convert("no key column given".into()));
            }
            let converter = RowConverter::new(fields)
                .map_err(|e| RowsError::Convert(format!("key columns {:?} cannot be encoded: {e}", self.columns)))?;
            self.cached = Some((schema.clone(), indices, converter));
        }
        let Some((_, indices, converter)) = &self.cached else {
            return Err(RowsError::Convert("no key encoder".into()));
        };
        let cols: Vec<ArrayRef> = indices.iter().map(|&i| rows.batch().column(i).clone()).collect();
        converter.convert_columns(&cols).map_err(|e| RowsError::Convert(format!("key columns: {e}")))
    }
}

/// Cuts batches into sub-batches per key group of their rows' keys.
#[derive(Debug, Clone)]
pub struct KeySplitter {
    encoder: KeyEncoder,
    max_parallelism: u32,
    representatives: Arc<[u32]>,
}

impl KeySplitter {
    /// A splitter on the key `columns` for a job of `max_parallelism` key groups.
    pub fn new(columns: &[&str], max_parallelism: u32) -> Self {
        let max_parallelism = max_parallelism.max(1);
        Self {
            encoder: KeyEncoder::new(columns),
            max_parallelism,
            representatives: representatives(max_parallelism).into(),
        }
    }

    /// The key groups this splitter routes to.
    pub fn max_parallelism(&self) -> u32 {
        self.max_parallelism
    }

    /// `rows` as sub-batches, one per key group of its rows (ascending key group; rows in
    /// their order within each), each keyed by its key group's representative. An empty
    /// batch gives none.
    pub fn split(&mut self, rows: Rows) -> Result<Vec<KeyedRows>, RowsError> {
        let n = rows.num_rows();
        if n == 0 {
            return Ok(Vec::new());
        }
        let encoded = self.encoder.encode(&rows)?;
        let groups: Vec<u32> = (0..n).map(|i| key_group_of(encoded.row(i).as_ref(), self.max_parallelism)).collect();
        let columns = self.encoder.columns().to_vec();
        let first = groups[0];
        if groups.iter().all(|&g| g == first) {
            // One key group: the batch moves on whole.
            return Ok(vec![KeyedRows { key: self.representative(first)?, columns, rows }]);
        }
        // Row indices by key group, a stable sort: rows keep their order within a group.
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.sort_by_key(|&i| groups[i as usize]);
        let mut out = Vec::new();
        let mut start = 0;
        while start < n {
            let g = groups[order[start] as usize];
            let mut end = start;
            while end < n && groups[order[end] as usize] == g {
                end += 1;
            }
            let indices = UInt32Array::from(order[start..end].to_vec());
            let batch = take_record_batch(rows.batch(), &indices)
                .map_err(|e| RowsError::Convert(format!("taking the rows of key group {g}: {e}")))?;
            out.push(KeyedRows { key: self.representative(g)?, columns: columns.clone(), rows: Rows(batch) });
            start = end;
        }
        Ok(out)
    }

    fn representative(&self, group: u32) -> Result<u32, RowsError> {
        self.representatives
            .get(group as usize)
            .copied()
            .ok_or_else(|| RowsError::Convert(format!("key group {group} out of {}", self.max_parallelism)))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use arrow::array::{Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;

    use super::*;

    fn batch(users: &[Option<&str>], amounts: &[i64]) -> Rows {
        let schema = Arc::new(Schema::new(vec![
            Field::new("user", DataType::Utf8, true),
            Field::new("amount", DataType::Int64, false),
        ]));
        let b = RecordBatch::try_new(
            schema,
            vec![Arc::new(StringArray::from(users.to_vec())), Arc::new(Int64Array::from(amounts.to_vec()))],
        )
        .unwrap();
        Rows(b)
    }

    fn column_values(rows: &Rows) -> Vec<(Option<String>, i64)> {
        let u = rows.batch().column(0).as_any().downcast_ref::<StringArray>().unwrap();
        let a = rows.batch().column(1).as_any().downcast_ref::<Int64Array>().unwrap();
        (0..rows.num_rows()).map(|i| (u.is_valid(i).then(|| u.value(i).to_string()), a.value(i))).collect()
    }

    #[test]
    fn the_representatives_cover_every_key_group_and_land_in_it() {
        for max_p in [1u32, 2, 3, 7, 100, 128, 1000, 32768] {
            let reps = representatives(max_p);
            assert_eq!(reps.len(), max_p as usize);
            for (g, r) in reps.iter().enumerate() {
                assert_eq!(assign_to_key_group(key_hash(r), max_p), g as u32, "max_p {max_p} group {g}");
            }
            let distinct: BTreeSet<_> = reps.iter().collect();
            assert_eq!(distinct.len(), reps.len());
        }
    }

    #[test]
    fn every_row_lands_in_exactly_one_sub_batch_of_its_key_group() {
        let names: Vec<String> = (0..300).map(|i| format!("user-{}", i % 37)).collect();
        let users: Vec<Option<&str>> =
            names.iter().enumerate().map(|(i, n)| (i % 50 != 7).then_some(n.as_str())).collect();
        let amounts: Vec<i64> = (0..300).collect();
        let rows = batch(&users, &amounts);
        for max_p in [1u32, 4, 128] {
            let mut splitter = KeySplitter::new(&["user"], max_p);
            let parts = splitter.split(rows.clone()).unwrap();
            let reps = representatives(max_p);
            // Every row once: the amounts (unique) over all sub-batches are 0..300.
            let mut seen: Vec<i64> = Vec::new();
            let mut group_of_user: BTreeMap<Option<String>, u32> = BTreeMap::new();
            let mut groups = BTreeSet::new();
            for p in &parts {
                let g = reps.iter().position(|r| *r == p.key).unwrap() as u32;
                assert_eq!(assign_to_key_group(key_hash(&p.key), max_p), g);
                assert!(groups.insert(g), "one sub-batch per key group");
                assert!(p.rows.num_rows() > 0);
                for ((user, amount), key) in column_values(&p.rows).into_iter().zip(p.row_keys().unwrap()) {
                    assert_eq!(key_group_of(&key, max_p), g, "the row is in its key's group");
                    // Rows of one key: always one key group, in every batch.
                    assert_eq!(*group_of_user.entry(user).or_insert(g), g);
                    seen.push(amount);
                }
                // Rows keep their order within a sub-batch.
                let a: Vec<i64> = column_values(&p.rows).iter().map(|(_, a)| *a).collect();
                assert!(a.windows(2).all(|w| w[0] < w[1]));
            }
            seen.sort_unstable();
            assert_eq!(seen, amounts, "max_p {max_p}");
            assert_eq!(group_of_user.len(), 38, "37 users and null");
            if max_p == 1 {
                assert_eq!(parts.len(), 1, "one key group: the batch moves on whole");
                assert_eq!(parts[0].rows, rows);
            }
        }
    }

    #[test]
    fn a_key_has_the_same_group_in_every_batch_and_splitter() {
        let mut a = KeySplitter::new(&["user", "amount"], 128);
        let mut b = KeySplitter::new(&["user", "amount"], 128);
        let x = a.split(batch(&[Some("ada"), Some("bob")], &[1, 2])).unwrap();
        let y = b.split(batch(&[Some("zed"), Some("bob"), Some("ada")], &[9, 2, 1])).unwrap();
        let key_of = |parts: &[KeyedRows], user: &str| {
            parts
                .iter()
                .find(|p| column_values(&p.rows).iter().any(|(u, _)| u.as_deref() == Some(user)))
                .map(|p| p.key)
                .unwrap()
        };
        assert_eq!(key_of(&x, "ada"), key_of(&y, "ada"));
        assert_eq!(key_of(&x, "bob"), key_of(&y, "bob"));
    }

    #[test]
    fn keyed_rows_cross_the_network_and_checkpoints_as_they_were() {
        use bincode::Options;
        let mut s = KeySplitter::new(&["user"], 128);
        let parts = s.split(batch(&[Some("ada"), None, Some("bob"), Some("ada")], &[1, 2, 3, 4])).unwrap();
        // The engine's wire options (riffle-api head.rs) and its checkpoint encoding (rmp).
        let wire = bincode::DefaultOptions::new().with_fixint_encoding().with_little_endian();
        let bytes = wire.serialize(&parts).unwrap();
        let back: Vec<KeyedRows> = wire.with_limit(bytes.len() as u64).deserialize(&bytes).unwrap();
        assert_eq!(back, parts);
        let back: Vec<KeyedRows> = rmp_serde::from_slice(&rmp_serde::to_vec(&parts).unwrap()).unwrap();
        assert_eq!(back, parts);
    }

    #[test]
    fn a_missing_key_column_is_an_error_naming_it() {
        let mut s = KeySplitter::new(&["usr"], 128);
        let e = s.split(batch(&[Some("ada")], &[1])).unwrap_err();
        assert_eq!(e.to_string(), "key column 'usr' is not in the rows (columns: user, amount)");
        assert!(s.split(batch(&[], &[])).unwrap().is_empty());
    }
}
