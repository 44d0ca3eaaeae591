//! Group keys of a batch as group indices: the arrow-row bytes of the key columns looked up in
//! a hash table, one lookup per row, new keys appended.

use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::DataType;
use arrow::row::{RowConverter, SortField};
use rustc_hash::FxHashMap;

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

/// Keys to dense group indices, in insertion order.
#[derive(Debug, Default, Clone)]
pub struct KeyTable {
    index: FxHashMap<Box<[u8]>, u32>,
    keys: Vec<Box<[u8]>>,
}

impl KeyTable {
    /// The number of groups.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// The group of `key`, added if new.
    #[inline]
    pub fn group_of(&mut self, key: &[u8]) -> usize {
        if let Some(g) = self.index.get(key) {
            return *g as usize;
        }
        let g = self.keys.len();
        let boxed: Box<[u8]> = key.into();
        self.index.insert(boxed.clone(), g as u32);
        self.keys.push(boxed);
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
        out.extend(other.keys.iter().map(|k| self.group_of(k)));
    }

    /// The keys' bytes, by group.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.keys.iter().map(|k| &**k)
    }

    /// A table of these keys, in this order.
    pub fn from_keys(keys: impl Iterator<Item = Box<[u8]>>) -> Self {
        let mut t = KeyTable::default();
        for k in keys {
            t.group_of(&k);
        }
        t
    }
}
