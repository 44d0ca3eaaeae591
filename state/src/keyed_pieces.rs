//! Keyed state as pieces for incremental checkpoints: which groups of keys changed since the
//! last snapshot, and the encoded piece of every group that did not.
//!
//! A [`KeyedStateStore`](crate::KeyedStateStore) snapshot is, per registered state, a list of
//! `(key group, encoded (key, value))` entries whose order does not matter. Cut by *piece
//! group*, the entries of one state and one group are one piece: the concatenation of their
//! MessagePack encodings, exactly what they are inside a whole
//! [`StateSnapshot`](crate::StateSnapshot). A piece gets a new id whenever it is encoded, and it
//! is encoded only when its group changed (any write through a handle while a key of the group
//! was current, a restore, or whole-table access), so an incremental checkpoint writes the
//! changed groups and refers to the others by id.
//!
//! Pieces are per `(state, group)`, not one per group with every state in it: the snapshot
//! format (kept byte for byte, so full snapshots and old checkpoints are read as before) holds
//! each state's entries together, and a write through one state's handle leaves the pieces of
//! the other states of its group untouched.
//!
//! The piece groups are the snapshot's key groups on the heap backend. On the spilling
//! backends they are the backend's *internal* key groups when those refine the key groups
//! (`state.backend.key-groups` a multiple of the maximum parallelism, as by default: then an
//! internal group lies within one key group): a cold group whose piece is kept is then never
//! read back from disk to be snapshotted, and spilling or loading a group changes nothing.
//! Otherwise they are the key groups, and a changed group reads every cold group to find its
//! entries (as a full snapshot does).
//!
//! The kept pieces are encoded bytes held in memory (shared with the snapshots that hand them
//! in, never copied): the price of not reading cold state back at each checkpoint.

use std::sync::Arc;

use crate::keyed::{StateError, StateSnapshot};

/// One state's entries of one piece group, encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatePiece {
    /// Stable while the group does not change; unique within the store.
    pub id: u64,
    /// Number of entries in it.
    pub entries: u32,
    /// The entries' MessagePack encodings (`(key group, encoded (key, value))` each), one
    /// after the other.
    pub bytes: Arc<Vec<u8>>,
}

/// One registered state's snapshot as pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatePieces {
    /// The state's name.
    pub name: String,
    /// Entries over all its pieces (the length of the entry list a full snapshot holds).
    pub entries: usize,
    /// Its non-empty pieces, in group order.
    pub pieces: Vec<StatePiece>,
}

/// A store's snapshot as pieces: registered states in pieces, and restored states not
/// registered again whole (they are rare and never change until registered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedPieces {
    /// Registered states, in registration order (as [`KeyedStateStore::snapshot`](crate::KeyedStateStore::snapshot) lists them).
    pub states: Vec<StatePieces>,
    /// Restored states not registered again, after the registered ones.
    pub unregistered: Vec<StateSnapshot>,
}

impl KeyedPieces {
    /// Number of pieces over all states.
    pub fn piece_count(&self) -> usize {
        self.states.iter().map(|s| s.pieces.len()).sum()
    }
}

/// How keys map to piece groups for a given maximum parallelism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    /// The snapshot's key groups (maximum parallelism).
    pub(crate) max_parallelism: u32,
    /// Number of piece groups.
    pub(crate) groups: u32,
    /// Whether piece groups are the backend's internal groups (which refine the key groups).
    pub(crate) internal: bool,
}

impl Layout {
    /// The layout for a store with `internal_groups` internal groups (`None`: heap).
    pub(crate) fn new(max_parallelism: u32, internal_groups: Option<u32>) -> Self {
        let mp = max_parallelism.max(1);
        match internal_groups {
            Some(g) if g % mp == 0 => Self { max_parallelism: mp, groups: g, internal: true },
            _ => Self { max_parallelism: mp, groups: mp, internal: false },
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Kept {
    pub(crate) id: u64,
    pub(crate) entries: u32,
    pub(crate) bytes: Arc<Vec<u8>>,
}

/// The pieces kept per `(state, group)`; `None`: the group changed since (or was never
/// encoded).
#[derive(Debug)]
pub(crate) struct PieceCache {
    pub(crate) layout: Option<Layout>,
    pub(crate) rows: Vec<Vec<Option<Kept>>>,
    next_id: u64,
    /// Whether pieces are kept between snapshots (checkpoints are incremental); if not,
    /// each snapshot encodes everything and nothing stays in memory.
    keep: bool,
}

impl PieceCache {
    /// An empty cache that keeps pieces between snapshots if `keep`.
    pub(crate) fn new(keep: bool) -> Self {
        Self { layout: None, rows: Vec::new(), next_id: 0, keep }
    }

    /// After a snapshot: forgets everything unless pieces are kept (no layout either, so
    /// writes cost no hashing).
    pub(crate) fn after_snapshot(&mut self) {
        if !self.keep {
            self.rows = Vec::new();
            self.layout = None;
        }
    }

    /// Forgets every kept piece (a restore changed unknown groups).
    pub(crate) fn reset(&mut self) {
        self.rows.clear();
    }

    /// State `table`'s group `group` changed.
    #[inline]
    pub(crate) fn invalidate(&mut self, table: usize, group: u32) {
        if let Some(slot) = self.rows.get_mut(table).and_then(|r| r.get_mut(group as usize)) {
            *slot = None;
        }
    }

    /// Every group of state `table` changed.
    pub(crate) fn invalidate_table(&mut self, table: usize) {
        if let Some(row) = self.rows.get_mut(table) {
            row.iter_mut().for_each(|s| *s = None);
        }
    }

    /// Adopts `layout` (forgetting everything if it is another one) and sizes the rows for
    /// `tables` states.
    pub(crate) fn prepare(&mut self, layout: Layout, tables: usize) {
        if self.layout != Some(layout) {
            self.rows.clear();
            self.layout = Some(layout);
        }
        let groups = layout.groups as usize;
        self.rows.resize_with(tables, || vec![None; groups]);
    }

    /// Which groups of state `table` have no kept piece.
    pub(crate) fn wanted(&self, table: usize) -> Vec<bool> {
        self.rows.get(table).map(|r| r.iter().map(Option::is_none).collect()).unwrap_or_default()
    }

    /// Keeps freshly encoded pieces of state `table` (`encoded[g]`: entries and bytes of group
    /// `g`, for the groups that had none) and lists the state's non-empty pieces.
    pub(crate) fn fill(
        &mut self,
        table: usize,
        encoded: Vec<Option<(u32, Vec<u8>)>>,
    ) -> Result<(usize, Vec<StatePiece>), StateError> {
        let mut next_id = self.next_id;
        let row = self.rows.get_mut(table).ok_or(StateError::ForeignHandle { index: table })?;
        for (slot, fresh) in row.iter_mut().zip(encoded) {
            if let Some((entries, bytes)) = fresh {
                next_id += 1;
                *slot = Some(Kept { id: next_id, entries, bytes: Arc::new(bytes) });
            }
        }
        self.next_id = next_id;
        let mut total = 0usize;
        let mut pieces = Vec::new();
        for kept in row.iter().flatten().filter(|k| k.entries > 0) {
            total += kept.entries as usize;
            pieces.push(StatePiece { id: kept.id, entries: kept.entries, bytes: kept.bytes.clone() });
        }
        Ok((total, pieces))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use super::*;
    use crate::backend::BackendConfig;
    use crate::keyed::SnapshotEntry;
    use crate::{assign_to_key_group, key_hash, KeyGroupRange, KeyedStateStore};

    const MP: u32 = 128;

    /// Piece ids by (state, first key group of the piece's entries).
    fn ids(p: &KeyedPieces) -> BTreeMap<(String, u64), u64> {
        let mut out = BTreeMap::new();
        for s in &p.states {
            for piece in &s.pieces {
                out.insert((s.name.clone(), piece.id), piece.id);
            }
        }
        out
    }

    /// The entries of every state, decoded from the pieces, sorted.
    fn entries(p: &KeyedPieces) -> Vec<(String, Vec<SnapshotEntry>)> {
        p.states
            .iter()
            .map(|s| {
                let mut all = Vec::new();
                for piece in &s.pieces {
                    let mut de = rmp_serde::Deserializer::new(std::io::Cursor::new(piece.bytes.as_slice()));
                    for _ in 0..piece.entries {
                        all.push(<SnapshotEntry as serde::Deserialize>::deserialize(&mut de).unwrap());
                    }
                    assert_eq!(de.position() as usize, piece.bytes.len(), "a piece is exactly its entries");
                }
                assert_eq!(all.len(), s.entries);
                all.sort();
                (s.name.clone(), all)
            })
            .collect()
    }

    fn full_entries<K: crate::StateKey>(s: &KeyedStateStore<K>) -> Vec<(String, Vec<SnapshotEntry>)> {
        s.snapshot(MP)
            .unwrap()
            .into_iter()
            .map(|mut t| {
                t.entries.sort();
                (t.name, t.entries)
            })
            .collect()
    }

    /// The ids that changed between two snapshots: (gone, new).
    fn changed(a: &KeyedPieces, b: &KeyedPieces) -> (usize, usize) {
        let (a, b) = (ids(a), ids(b));
        (a.keys().filter(|k| !b.contains_key(k)).count(), b.keys().filter(|k| !a.contains_key(k)).count())
    }

    fn kg(k: u64) -> u32 {
        assign_to_key_group(key_hash(&k), MP)
    }

    /// Fills value, list and map state for keys 0..n.
    fn fill(s: &mut KeyedStateStore<u64>, n: u64) {
        let v = s.value_state::<String>("v").unwrap();
        let l = s.list_state::<u64>("l").unwrap();
        let m = s.map_state::<u8, u64>("m").unwrap();
        for k in 0..n {
            s.set_current_key(k);
            v.set(s, format!("value {k} {}", "x".repeat(40))).unwrap();
            l.add(s, k).unwrap();
            m.put(s, (k % 7) as u8, k).unwrap();
        }
    }

    #[test]
    fn only_the_written_group_of_the_written_state_gets_a_new_piece() {
        let mut s = KeyedStateStore::<u64>::new();
        fill(&mut s, 1000);
        let one = s.snapshot_pieces(MP).unwrap();
        assert_eq!(one.states.len(), 3);
        assert_eq!(one.piece_count(), 3 * 128, "1000 keys fill every key group of every state");
        assert_eq!(entries(&one), full_entries(&s), "the pieces hold what a full snapshot holds");

        // Reads and key switches change nothing: the same pieces, not encoded again.
        let v = s.value_state::<String>("v").unwrap();
        let l = s.list_state::<u64>("l").unwrap();
        let m = s.map_state::<u8, u64>("m").unwrap();
        for k in 0..1000 {
            s.set_current_key(k);
            assert!(v.get(&s).unwrap().is_some());
            assert_eq!(l.get(&s).unwrap(), &[k]);
            assert!(m.get(&s, &((k % 7) as u8)).unwrap().is_some());
        }
        let two = s.snapshot_pieces(MP).unwrap();
        assert_eq!(changed(&one, &two), (0, 0));
        for (a, b) in one.states.iter().zip(&two.states) {
            for (x, y) in a.pieces.iter().zip(&b.pieces) {
                assert!(Arc::ptr_eq(&x.bytes, &y.bytes), "kept, not re-encoded");
            }
        }

        // Every kind of write dirties exactly the current key's group, of its state only.
        type Write = Box<dyn Fn(&mut KeyedStateStore<u64>)>;
        let writes: Vec<(&str, usize, Write)> = vec![
            ("set", 1, Box::new(move |s| v.set(s, "new".into()).unwrap())),
            ("get_mut", 1, Box::new(move |s| v.get_mut(s).unwrap().unwrap().push('!'))),
            ("clear", 1, Box::new(move |s| drop(v.clear(s).unwrap()))),
            ("add", 1, Box::new(move |s| l.add(s, 9).unwrap())),
            ("update", 1, Box::new(move |s| l.update(s, vec![1, 2]).unwrap())),
            ("list clear", 1, Box::new(move |s| drop(l.clear(s).unwrap()))),
            (
                "put",
                1,
                Box::new(move |s| {
                    let _ = m.put(s, 100, 1).unwrap();
                }),
            ),
            (
                "remove",
                1,
                Box::new(move |s| {
                    let _ = m.remove(s, &100).unwrap();
                }),
            ),
            ("map clear", 1, Box::new(move |s| m.clear(s).unwrap())),
            ("clear_current_key", 3, Box::new(|s| s.clear_current_key().unwrap())),
        ];
        let mut before = two;
        for (i, (what, states, write)) in writes.iter().enumerate() {
            let key = 10 + i as u64;
            s.set_current_key(key);
            write(&mut s);
            s.set_current_key(500); // a switch to a key of (most likely) another group
            let after = s.snapshot_pieces(MP).unwrap();
            let (gone, new) = changed(&before, &after);
            assert_eq!(gone, *states, "{what}: pieces replaced");
            assert!(new <= *states, "{what}: a group emptied has no piece");
            assert_eq!(entries(&after), full_entries(&s), "{what}");
            // The replaced pieces are those of the written key's group.
            let old: HashMap<u64, &StatePiece> =
                before.states.iter().flat_map(|t| &t.pieces).map(|p| (p.id, p)).collect();
            let mut de_kgs = Vec::new();
            for t in &before.states {
                for p in &t.pieces {
                    if !ids(&after).contains_key(&(t.name.clone(), p.id)) {
                        let mut de = rmp_serde::Deserializer::from_read_ref(old[&p.id].bytes.as_slice());
                        let (g, _): SnapshotEntry = serde::Deserialize::deserialize(&mut de).unwrap();
                        de_kgs.push(g);
                    }
                }
            }
            assert!(de_kgs.iter().all(|g| *g == kg(key)), "{what}: {de_kgs:?} vs {}", kg(key));
            before = after;
        }

        // Whole-table access and restores make every group new.
        let all = v.table_mut(&mut s).unwrap().len();
        assert!(all > 900);
        let after = s.snapshot_pieces(MP).unwrap();
        assert_eq!(changed(&before, &after).0, before.states[0].pieces.len());
        let mut r = KeyedStateStore::<u64>::new();
        fill(&mut r, 10);
        let a = r.snapshot_pieces(MP).unwrap();
        r.restore(s.snapshot(MP).unwrap(), KeyGroupRange { start: 0, end: MP - 1 }).unwrap();
        let b = r.snapshot_pieces(MP).unwrap();
        assert_eq!(changed(&a, &b).0, a.piece_count(), "a restore replaces every piece");
        assert_eq!(entries(&b), full_entries(&r));
    }

    #[test]
    fn without_incremental_checkpoints_nothing_is_kept() {
        let config = BackendConfig { incremental: false, ..BackendConfig::heap() };
        let mut s = KeyedStateStore::<u64>::with_backend(config).unwrap();
        fill(&mut s, 300);
        let one = s.snapshot_pieces(MP).unwrap();
        assert!(s.pieces.rows.is_empty() && s.pieces.layout.is_none(), "nothing kept");
        let two = s.snapshot_pieces(MP).unwrap();
        assert_eq!(changed(&one, &two), (one.piece_count(), two.piece_count()), "all encoded anew");
        assert_eq!(entries(&two), full_entries(&s));
        let parsed = BackendConfig::from_options(|k| (k == "state.backend.incremental").then_some(" FALSE")).unwrap();
        assert!(!parsed.incremental);
        assert!(BackendConfig::from_options(|_| None).unwrap().incremental, "on by default");
        assert!(BackendConfig::from_options(|k| (k == "state.backend.incremental").then_some("maybe")).is_err());
    }

    #[test]
    fn writes_under_one_key_keep_one_note_per_state() {
        let mut s = KeyedStateStore::<()>::new();
        let a = s.value_state::<u64>("a").unwrap();
        let b = s.value_state::<u64>("b").unwrap();
        s.set_current_key(());
        let one = s.snapshot_pieces(MP).unwrap();
        for i in 0..1000 {
            a.set(&mut s, i).unwrap();
            b.set(&mut s, i).unwrap();
        }
        assert_eq!(s.dirty.len(), 2, "a key that stays current does not grow the notes");
        let two = s.snapshot_pieces(MP).unwrap();
        assert_eq!(changed(&one, &two), (0, 2), "both states' only group, written");
        assert!(s.dirty.is_empty());
    }

    #[test]
    fn restored_states_not_registered_again_are_handed_in_whole() {
        let mut s = KeyedStateStore::<u64>::new();
        fill(&mut s, 50);
        let mut r = KeyedStateStore::<u64>::new();
        let half = KeyGroupRange { start: 0, end: 63 };
        r.restore(s.snapshot(MP).unwrap(), half).unwrap();
        let p = r.snapshot_pieces(MP).unwrap();
        assert!(p.states.is_empty());
        assert_eq!(p.unregistered.len(), 3);
        assert!(p.unregistered.iter().all(|t| t.entries.iter().all(|(g, _)| half.contains(*g))));
        assert_eq!(p.unregistered, r.snapshot(MP).unwrap());
    }

    /// A spilling backend: groups are spilled and loaded without becoming dirty; an unchanged
    /// cold group is never read back to be snapshotted.
    fn cold_groups_stay_on_disk(config: BackendConfig) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = KeyedStateStore::<u64>::with_backend(config.with_dir(dir.path())).unwrap();
        fill(&mut s, 3000);
        assert!(s.spilled_key_groups() > 100, "tiny budget: most groups are cold ({})", s.spilled_key_groups());
        let one = s.snapshot_pieces(MP).unwrap();
        assert_eq!(entries(&one), full_entries(&s));
        // Pieces are per internal group (1024 refine the 128 key groups).
        assert!(one.states[0].pieces.len() > 128, "{}", one.states[0].pieces.len());
        let reads = s.cold_reads();
        let two = s.snapshot_pieces(MP).unwrap();
        assert_eq!(s.cold_reads(), reads, "no cold group read for an unchanged snapshot");
        assert_eq!(changed(&one, &two), (0, 0));

        // Reading keys loads and spills groups: nothing changes.
        let v = s.value_state::<String>("v").unwrap();
        for k in (0..3000).step_by(3) {
            s.set_current_key(k);
            assert!(v.get(&s).unwrap().is_some());
        }
        assert!(s.cold_reads() > reads, "groups were loaded");
        let three = s.snapshot_pieces(MP).unwrap();
        assert_eq!(changed(&two, &three), (0, 0), "loading and spilling do not dirty a group");

        // One write: one piece replaced; the group may be cold again by the snapshot, and only
        // it is read back.
        s.set_current_key(7);
        v.set(&mut s, "changed".into()).unwrap();
        for k in 1000..1600 {
            s.set_current_key(k);
            assert!(v.get(&s).unwrap().is_some());
        }
        let reads = s.cold_reads();
        let four = s.snapshot_pieces(MP).unwrap();
        assert!(s.cold_reads() - reads <= 1, "at most the written group is read ({})", s.cold_reads() - reads);
        assert_eq!(changed(&three, &four), (1, 1));
        assert_eq!(entries(&four), full_entries(&s));
    }

    #[test]
    fn spillable_heap_cold_groups_stay_on_disk() {
        cold_groups_stay_on_disk(BackendConfig::spillable_heap(16 << 10));
    }

    #[test]
    fn sled_cold_groups_stay_on_disk() {
        cold_groups_stay_on_disk(BackendConfig::sled(16 << 10));
    }

    #[test]
    fn internal_groups_that_do_not_refine_key_groups_fall_back_to_key_groups() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = BackendConfig::spillable_heap(16 << 10).with_dir(dir.path());
        config.key_groups = 100;
        let mut s = KeyedStateStore::<u64>::with_backend(config).unwrap();
        fill(&mut s, 2000);
        assert!(s.spilled_key_groups() > 10);
        let one = s.snapshot_pieces(MP).unwrap();
        assert_eq!(one.states[0].pieces.len(), 128);
        assert_eq!(entries(&one), full_entries(&s));
        let v = s.value_state::<String>("v").unwrap();
        s.set_current_key(3);
        v.set(&mut s, "changed".into()).unwrap();
        s.set_current_key(4);
        let two = s.snapshot_pieces(MP).unwrap();
        assert_eq!(changed(&one, &two), (1, 1));
        assert_eq!(entries(&two), full_entries(&s));
    }
}
