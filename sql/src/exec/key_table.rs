//! Group keys of a batch as group indices: the arrow-row bytes of the key columns looked up in
//! a hash table, one lookup per row, new keys appended.

use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::DataType;
use arrow::row::{RowConverter, SortField};
use std::hash::Hasher;

use hashbrown::HashTable;
use rustc_hash::FxHasher;

use super::error::Result;

/// Encodes key columns into comparable bytes and back (arrow-row), shared by the subtask's
/// tables. With no key column every row has the empty key.
#[derive(Debug, Clone)]
pub struct KeyCodec {
    converter: Option<Arc<RowConverter>>,
}

impl KeyCodec {
    /// A codec for key columns of these types.
    pub fn new(types: &[DataType]) -> Result<Self> {
        if types.is_empty() {
            return Ok(Self { converter: None });
        }
        let fields = types.iter().map(|t| SortField::new(t.clone())).collect();
        Ok(Self { converter: Some(Arc::new(RowConverter::new(fields)?)) })
    }

    /// Each row's key bytes (`rows` rows long, empty keys without key columns).
    pub fn encode(&self, columns: &[ArrayRef], rows: usize) -> Result<EncodedKeys> {
        Ok(match &self.converter {
            Some(c) => EncodedKeys::Rows(c.convert_columns(columns)?),
            None => EncodedKeys::Empty(rows),
        })
    }

    /// The key columns of `keys` (in order), decoded from their bytes.
    pub fn decode<'a>(&self, keys: impl Iterator<Item = &'a [u8]>) -> Result<Vec<ArrayRef>> {
        match &self.converter {
            Some(c) => {
                let parser = c.parser();
                let rows: Vec<_> = keys.map(|k| parser.parse(k)).collect();
                Ok(c.convert_rows(rows)?)
            }
            None => Ok(Vec::new()),
        }
    }
}

/// The keys of a batch, as bytes.
pub enum EncodedKeys {
    /// arrow-row encodings.
    Rows(arrow::row::Rows),
    /// No key columns: `n` empty keys.
    Empty(usize),
}

impl EncodedKeys {
    /// The key of row `i`.
    pub fn get(&self, i: usize) -> &[u8] {
        match self {
            EncodedKeys::Rows(r) => r.row(i).data(),
            EncodedKeys::Empty(_) => &[],
        }
    }
}

/// Keys to dense group indices, in insertion order. The keys' bytes live in one buffer and
/// the hash table holds only group indices: a new key costs no allocation of its own.
#[derive(Debug, Default, Clone)]
pub struct KeyTable {
    index: HashTable<u32>,
    data: Vec<u8>,
    /// Where each group's key starts in `data` (and, one past the last, where it ends).
    offsets: Vec<usize>,
}

fn hash_of(key: &[u8]) -> u64 {
    let mut h = FxHasher::default();
    h.write(key);
    h.finish()
}

fn key_at<'a>(data: &'a [u8], offsets: &[usize], g: usize) -> &'a [u8] {
    &data[offsets[g]..offsets.get(g + 1).copied().unwrap_or(data.len())]
}

impl KeyTable {
    /// The number of groups.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// The group of `key`, added if new.
    #[inline]
    pub fn group_of(&mut self, key: &[u8]) -> usize {
        let hash = hash_of(key);
        let (data, offsets) = (&self.data, &self.offsets);
        if let Some(g) = self.index.find(hash, |&g| key_at(data, offsets, g as usize) == key) {
            return *g as usize;
        }
        let g = self.offsets.len();
        self.offsets.push(self.data.len());
        self.data.extend_from_slice(key);
        let (data, offsets) = (&self.data, &self.offsets);
        self.index.insert_unique(hash, g as u32, |&g| hash_of(key_at(data, offsets, g as usize)));
        g
    }

    /// The groups of the rows `rows` of `keys` (all rows when `None`).
    pub fn groups_of(&mut self, keys: &EncodedKeys, rows: Option<&[u32]>, out: &mut Vec<usize>) {
        out.clear();
        match rows {
            Some(rows) => out.extend(rows.iter().map(|&i| self.group_of(keys.get(i as usize)))),
            None => {
                let n = match keys {
                    EncodedKeys::Rows(r) => r.num_rows(),
                    EncodedKeys::Empty(n) => *n,
                };
                out.extend((0..n).map(|i| self.group_of(keys.get(i))));
            }
        }
    }

    /// The groups of every key of `other`, in its order.
    pub fn groups_of_keys(&mut self, other: &KeyTable, out: &mut Vec<usize>) {
        out.clear();
        out.extend(other.keys().map(|k| self.group_of(k)));
    }

    /// The keys' bytes, by group.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.offsets.len()).map(|g| key_at(&self.data, &self.offsets, g))
    }

    /// A table of these keys, in this order.
    pub fn from_keys<'a>(keys: impl Iterator<Item = &'a [u8]>) -> Self {
        let mut t = KeyTable::default();
        for k in keys {
            t.group_of(k);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_get_dense_groups_in_insertion_order_and_equal_keys_the_same_group() {
        let mut t = KeyTable::default();
        let keys: Vec<Vec<u8>> = (0..1000u32).map(|i| (i % 300).to_be_bytes()[1..].to_vec()).collect();
        let groups: Vec<usize> = keys.iter().map(|k| t.group_of(k)).collect();
        assert_eq!(t.len(), 300);
        assert_eq!(groups[..300], (0..300).collect::<Vec<_>>()[..]);
        assert!(groups.iter().enumerate().all(|(i, g)| *g == i % 300));
        assert_eq!(t.group_of(&[]), 300, "the empty key is a key too");
        let copy = KeyTable::from_keys(t.keys());
        assert_eq!(copy.keys().collect::<Vec<_>>(), t.keys().collect::<Vec<_>>());
        let mut out = Vec::new();
        let mut other = KeyTable::default();
        other.group_of(&keys[5]);
        other.groups_of_keys(&t, &mut out);
        assert_eq!(out[..3], [1, 2, 3]);
        assert_eq!(out[5], 0);
    }
}
