//! The sled backend's cold store: an embedded sled database, one tree per state.
//!
//! Keys are the internal key group (big-endian `u32`, so that a group is one contiguous
//! prefix range) followed by the encoded key; values are the encoded values. sled brings
//! its own page cache and log-structured storage, so state far larger than memory stays
//! cheap to keep; durability is not needed from it (checkpoints provide that), so it never
//! flushes on a timer and the database is temporary.

use std::path::{Path, PathBuf};

use super::{ColdEntry, ColdStore};
use crate::keyed::StateError;

/// sled's own page cache never gets less than this, whatever the budget.
const MIN_SLED_CACHE_BYTES: u64 = 1 << 20;

/// A sled database in a directory owned by the store.
pub(crate) struct SledStore {
    path: PathBuf,
    db: sled::Db,
    /// Opened trees, by table index.
    trees: Vec<Option<sled::Tree>>,
}

impl SledStore {
    /// Opens a new database in `dir` (which must exist and be empty). sled's page cache is a
    /// quarter of `memory_budget_bytes` (at least 1 MiB), on top of the in-memory maps.
    pub(crate) fn open(dir: &Path, memory_budget_bytes: usize) -> Result<Self, StateError> {
        let cache = (memory_budget_bytes / 4) as u64;
        let db = sled::Config::new()
            .path(dir)
            .temporary(true)
            .flush_every_ms(None)
            .cache_capacity(cache.max(MIN_SLED_CACHE_BYTES))
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(|e| sled_err(dir, e))?;
        Ok(Self { path: dir.to_path_buf(), db, trees: Vec::new() })
    }

    fn tree(&mut self, table: usize) -> Result<&sled::Tree, StateError> {
        if self.trees.len() <= table {
            self.trees.resize(table + 1, None);
        }
        let slot = &mut self.trees[table];
        if slot.is_none() {
            *slot = Some(self.db.open_tree(format!("t{table}")).map_err(|e| sled_err(&self.path, e))?);
        }
        slot.as_ref().ok_or_else(|| sled_err(&self.path, "tree not opened"))
    }

    /// The tree of `table` if it was ever written (nothing to read otherwise).
    fn existing_tree(&self, table: usize) -> Option<&sled::Tree> {
        self.trees.get(table).and_then(Option::as_ref)
    }

    fn group_keys(&self, tree: &sled::Tree, group: u32) -> Result<Vec<sled::IVec>, StateError> {
        tree.scan_prefix(group.to_be_bytes()).keys().collect::<Result<_, _>>().map_err(|e| sled_err(&self.path, e))
    }
}

fn sled_err(path: &Path, e: impl ToString) -> StateError {
    StateError::Io { path: path.to_path_buf(), reason: format!("sled: {}", e.to_string()) }
}

impl ColdStore for SledStore {
    fn put_group(&mut self, table: usize, group: u32, entries: &[ColdEntry]) -> Result<(), StateError> {
        let tree = self.tree(table)?.clone();
        let mut batch = sled::Batch::default();
        // Stale entries of an earlier spill of this group (removed since) must not survive;
        // the batch applies removals and inserts of one key in order, inserts last.
        for k in self.group_keys(&tree, group)? {
            batch.remove(k);
        }
        for (k, v) in entries {
            let mut key = Vec::with_capacity(4 + k.len());
            key.extend_from_slice(&group.to_be_bytes());
            key.extend_from_slice(k);
            batch.insert(key, v.as_slice());
        }
        tree.apply_batch(batch).map_err(|e| sled_err(&self.path, e))
    }

    fn read_group(&self, table: usize, group: u32) -> Result<Vec<ColdEntry>, StateError> {
        let Some(tree) = self.existing_tree(table) else { return Ok(Vec::new()) };
        tree.scan_prefix(group.to_be_bytes())
            .map(|kv| kv.map(|(k, v)| (k[4..].to_vec(), v.to_vec())))
            .collect::<Result<_, _>>()
            .map_err(|e| sled_err(&self.path, e))
    }

    fn discard_group(&mut self, table: usize, group: u32) -> Result<(), StateError> {
        let Some(tree) = self.existing_tree(table).cloned() else { return Ok(()) };
        let mut batch = sled::Batch::default();
        for k in self.group_keys(&tree, group)? {
            batch.remove(k);
        }
        tree.apply_batch(batch).map_err(|e| sled_err(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_replaced_read_and_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SledStore::open(dir.path(), 1 << 20).unwrap();
        assert!(s.read_group(0, 1).unwrap().is_empty(), "no tree yet");
        let a = vec![(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), b"2".to_vec())];
        s.put_group(0, 1, &a).unwrap();
        s.put_group(0, 2, &[(b"c".to_vec(), b"3".to_vec())]).unwrap();
        s.put_group(1, 1, &[(b"z".to_vec(), b"9".to_vec())]).unwrap();
        assert_eq!(s.read_group(0, 1).unwrap(), a);
        // Replacing drops keys that are gone.
        s.put_group(0, 1, &[(b"b".to_vec(), b"22".to_vec())]).unwrap();
        assert_eq!(s.read_group(0, 1).unwrap(), vec![(b"b".to_vec(), b"22".to_vec())]);
        s.discard_group(0, 1).unwrap();
        assert!(s.read_group(0, 1).unwrap().is_empty());
        assert_eq!(s.read_group(0, 2).unwrap().len(), 1, "other groups untouched");
        assert_eq!(s.read_group(1, 1).unwrap().len(), 1, "other tables untouched");
    }
}
