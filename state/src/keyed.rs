//! Keyed state: per-key (and per-namespace) values that user functions and operators keep.
//!
//! A [`KeyedStateStore`] belongs to one keyed operator instance. State is registered by name
//! and handed back as a typed handle ([`ValueState`], [`ListState`], [`MapState`]); reads and
//! writes go through the handle with the store's *current key*, which the operator sets before
//! it calls user code. The heap layout is a hash map per registered state, which keeps the
//! per-record path to one hash lookup.

use std::any::Any;
use std::collections::HashMap;
use std::hash::Hash;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use rustc_hash::FxHashMap;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::backend::tiered::{self, Tiered};
use crate::backend::{BackendConfig, BackendKind};
use crate::error::ErrorDomain;
use crate::key_group::{assign_to_key_group, key_hash, KeyGroupRange};
use crate::keyed_pieces::{KeyedPieces, Layout, PieceCache, StatePieces};

/// What a key must be to index state: hashable, comparable, clonable, movable across threads,
/// and serializable (state is snapshotted by key group).
pub trait StateKey: Hash + Eq + Clone + Send + Serialize + DeserializeOwned + 'static {}
impl<T: Hash + Eq + Clone + Send + Serialize + DeserializeOwned + 'static> StateKey for T {}

/// What a state value must be: movable across threads and serializable for snapshots.
pub trait StateValue: Clone + Send + Serialize + DeserializeOwned + 'static {}
impl<T: Clone + Send + Serialize + DeserializeOwned + 'static> StateValue for T {}

/// The state crate's error. All but [`StateError::Io`] and [`StateError::Metadata`] are
/// programming or configuration errors of the caller (user domain): retrying does not help.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StateError {
    /// A state name was registered twice with different kinds or types.
    #[error("state '{name}' is already registered with another type")]
    TypeMismatch {
        /// The state's name.
        name: String,
    },
    /// State was read or written while no key was set (outside a keyed context).
    #[error("keyed state '{name}' was accessed outside of a keyed context (no current key)")]
    NoCurrentKey {
        /// The state's name.
        name: String,
    },
    /// A handle was used with a store that did not create it.
    #[error("state handle #{index} does not belong to this state store")]
    ForeignHandle {
        /// The handle's index.
        index: usize,
    },
    /// State could not be encoded or decoded (a snapshot of another type, or corrupt bytes).
    #[error("state '{name}' cannot be {action}: {reason}")]
    Serde {
        /// The state's name.
        name: String,
        /// "snapshotted", "restored", "spilled" or "loaded".
        action: &'static str,
        /// Why.
        reason: String,
    },
    /// A backend setting has an invalid value.
    #[error("invalid value '{value}' for '{key}': {reason}")]
    Config {
        /// The configuration key.
        key: String,
        /// The value given.
        value: String,
        /// What is valid.
        reason: String,
    },
    /// A non-heap backend could not read or write its files (external: the disk may be full
    /// or gone; a restart from the last checkpoint may help).
    #[error("state backend I/O error at '{}': {reason}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        reason: String,
    },
    /// Checkpoint metadata could not be read or written (shared: the error is cloned with
    /// a failed store).
    #[error(transparent)]
    Metadata(#[from] std::sync::Arc<crate::checkpoint_metadata::MetadataError>),
}

impl PartialEq for StateError {
    fn eq(&self, other: &Self) -> bool {
        use StateError::*;
        match (self, other) {
            (TypeMismatch { name: a }, TypeMismatch { name: b })
            | (NoCurrentKey { name: a }, NoCurrentKey { name: b }) => a == b,
            (ForeignHandle { index: a }, ForeignHandle { index: b }) => a == b,
            (Serde { name: a, action: x, reason: r }, Serde { name: b, action: y, reason: s }) => {
                (a, x, r) == (b, y, s)
            }
            (Config { key: a, value: x, reason: r }, Config { key: b, value: y, reason: s }) => (a, x, r) == (b, y, s),
            (Io { path: a, reason: r }, Io { path: b, reason: s }) => (a, r) == (b, s),
            // Metadata errors hold an I/O error, which has no equality: the same one, or the same message.
            (Metadata(a), Metadata(b)) => std::sync::Arc::ptr_eq(a, b) || a.to_string() == b.to_string(),
            _ => false,
        }
    }
}

impl Eq for StateError {}

impl From<crate::checkpoint_metadata::MetadataError> for StateError {
    fn from(e: crate::checkpoint_metadata::MetadataError) -> Self {
        StateError::Metadata(std::sync::Arc::new(e))
    }
}

impl StateError {
    /// Who is to blame: the disk (external) for I/O, the caller (user) for the rest.
    pub fn domain(&self) -> ErrorDomain {
        match self {
            StateError::Io { .. } => ErrorDomain::External,
            StateError::Metadata(e) => e.domain(),
            _ => ErrorDomain::User,
        }
    }

    /// Whether the same call may succeed later: only I/O trouble.
    pub fn is_retryable(&self) -> bool {
        match self {
            StateError::Metadata(e) => e.is_retryable(),
            _ => self.domain() == ErrorDomain::External,
        }
    }
}

/// The state crate's result.
pub type Result<T, E = StateError> = std::result::Result<T, E>;

/// One snapshotted entry: its key group and the encoded `(key, value)` pair.
pub type SnapshotEntry = (u32, Vec<u8>);

/// A snapshot of one named state, entry by entry with key groups, so that a restore can take
/// just the key groups a (possibly rescaled) subtask owns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateSnapshot {
    /// The state's name.
    pub name: String,
    /// Its entries.
    pub entries: Vec<SnapshotEntry>,
}

type SnapshotFn = fn(&dyn Any, &str, u32) -> Result<Vec<SnapshotEntry>, StateError>;
type RestoreFn = fn(&mut dyn Any, &str, &[SnapshotEntry], KeyGroupRange) -> Result<(), StateError>;
/// Removes one key (given as `&K`) from a table.
type RemoveFn = fn(&mut dyn Any, &dyn Any);
/// Encodes the entries of the wanted piece groups of a table into `out` (indexed by group:
/// entry count, concatenated `(key group, encoded (key, value))` encodings).
pub(crate) type EncodePiecesFn = fn(&dyn Any, &str, Layout, &[bool], &mut [(u32, Vec<u8>)]) -> Result<(), StateError>;

/// The type-erased operations on one table (`FxHashMap<K, X>`), instantiated at registration.
pub(crate) struct TableOps {
    snapshot: SnapshotFn,
    encode_pieces: EncodePiecesFn,
    pub(crate) restore: RestoreFn,
    remove: RemoveFn,
    pub(crate) len: tiered::LenFn,
    pub(crate) spill: tiered::SpillFn,
    pub(crate) retain: tiered::RetainFn,
    pub(crate) load: tiered::LoadFn,
    pub(crate) sample: tiered::SampleFn,
    bucket: tiered::BucketFn,
    /// In-memory bytes of an entry besides its encoded size (the map slot).
    pub(crate) entry_overhead: usize,
}

impl TableOps {
    fn of<K: StateKey, X: Serialize + DeserializeOwned + Send + 'static>() -> Self {
        Self {
            snapshot: snapshot_map::<K, X>,
            encode_pieces: encode_pieces_map::<K, X>,
            restore: restore_map::<K, X>,
            remove: remove_from_map::<K, X>,
            len: tiered::len_map::<K, X>,
            spill: tiered::spill_map::<K, X>,
            retain: tiered::retain_map::<K, X>,
            load: tiered::load_map::<K, X>,
            sample: tiered::sample_map::<K, X>,
            bucket: tiered::bucket_map::<K, X>,
            entry_overhead: std::mem::size_of::<(K, X)>() + 1,
        }
    }
}

pub(crate) struct Table {
    pub(crate) name: String,
    pub(crate) data: Box<dyn Any + Send>,
    pub(crate) ops: TableOps,
}

/// Encodes every entry of a `FxHashMap<K, X>` with its key group.
fn snapshot_map<K: StateKey, X: Serialize + 'static>(
    data: &dyn Any,
    name: &str,
    max_parallelism: u32,
) -> Result<Vec<SnapshotEntry>, StateError> {
    let err = |reason: String| StateError::Serde { name: name.to_string(), action: "snapshotted", reason };
    let map = data.downcast_ref::<FxHashMap<K, X>>().ok_or_else(|| err("unexpected table type".into()))?;
    let mut out = Vec::with_capacity(map.len());
    for (k, x) in map {
        let kg = assign_to_key_group(key_hash(k), max_parallelism);
        out.push((kg, rmp_serde::to_vec(&(k, x)).map_err(|e| err(e.to_string()))?));
    }
    Ok(out)
}

/// Encodes the entries of a `FxHashMap<K, X>` whose piece group is wanted, each as a
/// [`SnapshotEntry`] is encoded inside a snapshot.
fn encode_pieces_map<K: StateKey, X: Serialize + 'static>(
    data: &dyn Any,
    name: &str,
    layout: Layout,
    wanted: &[bool],
    out: &mut [(u32, Vec<u8>)],
) -> Result<(), StateError> {
    let err = |reason: String| StateError::Serde { name: name.to_string(), action: "snapshotted", reason };
    let map = data.downcast_ref::<FxHashMap<K, X>>().ok_or_else(|| err("unexpected table type".into()))?;
    for (k, x) in map {
        let h = key_hash(k);
        let g = assign_to_key_group(h, layout.groups) as usize;
        if !wanted.get(g).copied().unwrap_or(false) {
            continue;
        }
        let kg = assign_to_key_group(h, layout.max_parallelism);
        let entry = rmp_serde::to_vec(&(k, x)).map_err(|e| err(e.to_string()))?;
        let (n, buf) = &mut out[g];
        *n += 1;
        rmp_serde::encode::write(buf, &(kg, &entry)).map_err(|e| err(e.to_string()))?;
    }
    Ok(())
}

/// Decodes the entries of the key groups in `range` into a `FxHashMap<K, X>`.
fn restore_map<K: StateKey, X: DeserializeOwned + 'static>(
    data: &mut dyn Any,
    name: &str,
    entries: &[SnapshotEntry],
    range: KeyGroupRange,
) -> Result<(), StateError> {
    let err = |reason: String| StateError::Serde { name: name.to_string(), action: "restored", reason };
    let map = data.downcast_mut::<FxHashMap<K, X>>().ok_or_else(|| err("unexpected table type".into()))?;
    for (kg, bytes) in entries.iter().filter(|(kg, _)| range.contains(*kg)) {
        let (k, x): (K, X) = rmp_serde::from_slice(bytes).map_err(|e| err(format!("key group {kg}: {e}")))?;
        map.insert(k, x);
    }
    Ok(())
}

/// Removes key `key` (a `&K`) from a `FxHashMap<K, X>`.
fn remove_from_map<K: StateKey, X: 'static>(data: &mut dyn Any, key: &dyn Any) {
    if let (Some(map), Some(key)) = (data.downcast_mut::<FxHashMap<K, X>>(), key.downcast_ref::<K>()) {
        map.remove(key);
    }
}

/// The keyed state of one operator instance.
///
/// Whatever the backend, the state of the current key is in memory while it is current
/// (reads hand out references); with a non-heap backend ([`KeyedStateStore::with_backend`])
/// other key groups may live in files or sled, and [`KeyedStateStore::set_current_key`]
/// loads the new key's group when it is cold.
pub struct KeyedStateStore<K> {
    tables: Vec<Table>,
    current: Option<K>,
    /// Restored snapshots of states not registered yet (functions often register state on
    /// first use): applied when they are.
    pending: Vec<(StateSnapshot, KeyGroupRange)>,
    /// The working-set bookkeeping of a non-heap backend; `None` for the heap, whose path
    /// then pays one branch per key switch and nothing per access.
    tiered: Option<Box<Tiered>>,
    /// States written through a handle while the current key was current, not yet recorded
    /// as changed in `pieces` (recorded at the next key switch or snapshot, so a write costs
    /// a push and no hashing).
    pub(crate) dirty: Vec<usize>,
    /// The encoded pieces of groups that did not change (incremental checkpoints).
    pub(crate) pieces: PieceCache,
}

impl<K: StateKey> Default for KeyedStateStore<K> {
    fn default() -> Self {
        Self {
            tables: Vec::new(),
            current: None,
            pending: Vec::new(),
            tiered: None,
            dirty: Vec::new(),
            pieces: PieceCache::new(true),
        }
    }
}

impl<K: StateKey> KeyedStateStore<K> {
    /// An empty store on the heap backend.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store on the backend `config` selects. A non-heap backend creates its own
    /// directory under [`BackendConfig::dir`] now (so that a bad directory fails the operator
    /// at start, not at the first spill) and removes it when the store is dropped.
    pub fn with_backend(config: BackendConfig) -> Result<Self, StateError> {
        let tiered = match config.kind {
            BackendKind::Heap => None,
            BackendKind::SpillableHeap | BackendKind::Sled => Some(Box::new(Tiered::open(&config)?)),
        };
        Ok(Self { tiered, pieces: PieceCache::new(config.incremental), ..Self::default() })
    }

    /// Which backend keeps this store's state.
    pub fn backend_kind(&self) -> BackendKind {
        self.tiered.as_ref().map_or(BackendKind::Heap, |t| t.kind())
    }

    /// The directory this store keeps its files in (`None` on the heap backend); removed
    /// when the store is dropped.
    pub fn backend_dir(&self) -> Option<&Path> {
        self.tiered.as_deref().map(Tiered::dir)
    }

    /// How many internal key groups are currently out of memory (in spill files or sled)
    /// with state in them: 0 on the heap backend, and while everything fits the budget.
    pub fn spilled_key_groups(&self) -> usize {
        self.tiered.as_ref().map_or(0, |t| t.spilled_groups())
    }

    /// Sets the key that handle reads and writes refer to.
    ///
    /// With a non-heap backend this loads the key's group if it is cold and may move other
    /// groups out of memory. If that fails, no key is current and handles report the I/O
    /// error; [`KeyedStateStore::try_set_current_key`] returns it directly.
    #[inline]
    pub fn set_current_key(&mut self, key: K) {
        if !self.dirty.is_empty() {
            self.record_dirty();
        }
        if self.tiered.is_some() {
            let _ = self.try_set_current_key(key);
            return;
        }
        self.current = Some(key);
    }

    /// Sets the key that handle reads and writes refer to, reporting a failure of the
    /// backend to load its state (never fails on the heap backend).
    pub fn try_set_current_key(&mut self, key: K) -> Result<(), StateError> {
        if !self.dirty.is_empty() {
            self.record_dirty();
        }
        if let Some(t) = self.tiered.as_deref_mut() {
            if let Err(e) = t.enter(&mut self.tables, &key) {
                t.failure = Some(e.clone());
                self.current = None;
                return Err(e);
            }
        }
        self.current = Some(key);
        Ok(())
    }

    /// The error of an access without a current key: the backend's failure to load it, if
    /// that is why there is none.
    fn no_key_error(&self, index: usize) -> StateError {
        if let Some(e) = self.tiered.as_ref().and_then(|t| t.failure.as_ref()) {
            return e.clone();
        }
        StateError::NoCurrentKey { name: self.tables.get(index).map(|t| t.name.clone()).unwrap_or_default() }
    }

    /// Records the states written for the current key as changed in its piece group.
    fn record_dirty(&mut self) {
        // Nothing kept yet (no layout): every group is encoded at the first snapshot.
        if let (Some(layout), Some(key)) = (self.pieces.layout, self.current.as_ref()) {
            let group = match self.tiered.as_deref() {
                Some(t) if layout.internal => t.current_group(),
                _ => Some(assign_to_key_group(key_hash(key), layout.groups)),
            };
            match group {
                Some(g) => self.dirty.iter().for_each(|t| self.pieces.invalidate(*t, g)),
                None => self.pieces.reset(),
            }
        }
        // Cleared, not taken: the buffer is reused at every key switch.
        self.dirty.clear();
    }

    /// Notes a write to state `index` for the current key (each state once: the list stays
    /// as short as the states written, however long a key stays current).
    #[inline]
    fn mark_dirty(&mut self, index: usize) {
        if self.dirty.last() != Some(&index) && !self.dirty.contains(&index) {
            self.dirty.push(index);
        }
    }

    /// How many times a non-heap backend read a (state, group) back from its cold store
    /// (loads and snapshots): lets tests see that unchanged cold groups stay on disk.
    pub fn cold_reads(&self) -> u64 {
        self.tiered.as_ref().map_or(0, |t| t.cold_reads())
    }

    /// Entries of state `index` that are out of memory.
    fn cold_len(&self, index: usize) -> usize {
        self.tiered.as_ref().map_or(0, |t| t.cold_len(index))
    }

    /// The key handle reads and writes refer to, if one is set.
    #[inline]
    pub fn current_key(&self) -> Option<&K> {
        self.current.as_ref()
    }

    fn register<X: Serialize + DeserializeOwned + Send + 'static>(&mut self, name: &str) -> Result<usize, StateError> {
        if let Some(i) = self.tables.iter().position(|t| t.name == name) {
            return if self.tables[i].data.is::<FxHashMap<K, X>>() {
                Ok(i)
            } else {
                Err(StateError::TypeMismatch { name: name.to_string() })
            };
        }
        let mut table =
            Table { name: name.to_string(), data: Box::new(FxHashMap::<K, X>::default()), ops: TableOps::of::<K, X>() };
        let pending = self.pending.iter().position(|(s, _)| s.name == name).map(|pos| self.pending.swap_remove(pos));
        let index = self.tables.len();
        if pending.is_some() {
            self.pieces.reset();
        }
        match (self.tiered.as_deref_mut(), pending) {
            (None, Some((snap, range))) => {
                (table.ops.restore)(table.data.as_mut(), name, &snap.entries, range)?;
                self.tables.push(table);
            }
            (None, None) => self.tables.push(table),
            (Some(t), pending) => {
                // Sort (and so check) the restored entries before the state exists.
                let by_group = pending
                    .map(|(snap, range)| (table.ops.bucket)(name, snap.entries, range, t.groups()))
                    .transpose()?;
                self.tables.push(table);
                t.on_register(index);
                if let Some(by_group) = by_group {
                    t.restore_table(&mut self.tables, index, by_group)?;
                }
            }
        }
        Ok(index)
    }

    /// Snapshots every registered state (and restored state not yet registered again), entry
    /// by entry with key groups of `max_parallelism`. Includes what a non-heap backend keeps
    /// out of memory: the logical content is the same for every backend (the order is not).
    pub fn snapshot(&self, max_parallelism: u32) -> Result<Vec<StateSnapshot>, StateError> {
        let mut out = Vec::with_capacity(self.tables.len() + self.pending.len());
        for (i, t) in self.tables.iter().enumerate() {
            let mut entries = (t.ops.snapshot)(t.data.as_ref(), &t.name, max_parallelism)?;
            if let Some(tiered) = &self.tiered {
                tiered.append_cold::<K>(i, &t.name, max_parallelism, &mut entries)?;
            }
            out.push(StateSnapshot { name: t.name.clone(), entries });
        }
        for (s, range) in &self.pending {
            let entries = s.entries.iter().filter(|(kg, _)| range.contains(*kg)).cloned().collect();
            out.push(StateSnapshot { name: s.name.clone(), entries });
        }
        Ok(out)
    }

    /// Snapshots like [`KeyedStateStore::snapshot`], as pieces per `(state, piece group)` (see
    /// [`crate::keyed_pieces`]): a group that did not change since the last call is handed in
    /// as the same piece (same id, same bytes) without being encoded — or, if it is cold,
    /// read back — again. The entries of every state's pieces, concatenated, are its entry
    /// list in a full snapshot (in another order).
    pub fn snapshot_pieces(&mut self, max_parallelism: u32) -> Result<KeyedPieces, StateError> {
        if !self.dirty.is_empty() {
            self.record_dirty();
        }
        let layout = Layout::new(max_parallelism, self.tiered.as_ref().map(|t| t.groups()));
        self.pieces.prepare(layout, self.tables.len());
        let mut states = Vec::with_capacity(self.tables.len());
        for (i, t) in self.tables.iter().enumerate() {
            let wanted = self.pieces.wanted(i);
            let mut encoded: Vec<Option<(u32, Vec<u8>)>> = vec![None; wanted.len()];
            if wanted.iter().any(|w| *w) {
                let mut out: Vec<(u32, Vec<u8>)> = vec![(0, Vec::new()); wanted.len()];
                (t.ops.encode_pieces)(t.data.as_ref(), &t.name, layout, &wanted, &mut out)?;
                if let Some(tiered) = &self.tiered {
                    tiered.cold_pieces::<K>(i, &t.name, layout, &wanted, &mut out)?;
                }
                for ((slot, w), piece) in encoded.iter_mut().zip(&wanted).zip(out) {
                    if *w {
                        *slot = Some(piece);
                    }
                }
            }
            let (entries, pieces) = self.pieces.fill(i, encoded)?;
            states.push(StatePieces { name: t.name.clone(), entries, pieces });
        }
        let unregistered = self
            .pending
            .iter()
            .map(|(s, range)| StateSnapshot {
                name: s.name.clone(),
                entries: s.entries.iter().filter(|(kg, _)| range.contains(*kg)).cloned().collect(),
            })
            .collect();
        self.pieces.after_snapshot();
        Ok(KeyedPieces { states, unregistered })
    }

    /// Restores the key groups in `range` from snapshots (of one or, after rescaling, several
    /// former subtasks). States not registered yet are restored when they are. A non-heap
    /// backend restores key group by key group and keeps to its memory budget as it goes.
    pub fn restore(&mut self, snapshots: Vec<StateSnapshot>, range: KeyGroupRange) -> Result<(), StateError> {
        self.pieces.reset();
        for snap in snapshots {
            match self.tables.iter().position(|t| t.name == snap.name) {
                Some(i) => match self.tiered.as_deref_mut() {
                    None => {
                        let t = &mut self.tables[i];
                        (t.ops.restore)(t.data.as_mut(), &t.name, &snap.entries, range)?
                    }
                    Some(tiered) => {
                        let t = &self.tables[i];
                        let by_group = (t.ops.bucket)(&t.name, snap.entries, range, tiered.groups())?;
                        tiered.restore_table(&mut self.tables, i, by_group)?;
                    }
                },
                None => match self.pending.iter_mut().find(|(p, _)| p.name == snap.name) {
                    Some((p, _)) => p.entries.extend(snap.entries),
                    None => self.pending.push((snap, range)),
                },
            }
        }
        Ok(())
    }

    fn table<T: Any>(&self, index: usize) -> Result<&T, StateError> {
        self.tables.get(index).and_then(|t| t.data.downcast_ref::<T>()).ok_or(StateError::ForeignHandle { index })
    }

    fn table_and_key<T: Any>(&mut self, index: usize) -> Result<(&mut T, &K), StateError> {
        if self.current.is_some() {
            self.mark_dirty(index);
        }
        let key = match &self.current {
            Some(k) => k,
            None => return Err(self.no_key_error(index)),
        };
        let t = self
            .tables
            .get_mut(index)
            .and_then(|t| t.data.downcast_mut::<T>())
            .ok_or(StateError::ForeignHandle { index })?;
        Ok((t, key))
    }

    /// Removes the current key's entries from every registered state (a window operator
    /// purging a window's state). Its state is in memory while it is current, whatever the
    /// backend.
    pub fn clear_current_key(&mut self) -> Result<(), StateError> {
        if self.current.is_none() {
            return Err(self.no_key_error(0));
        }
        for i in 0..self.tables.len() {
            self.mark_dirty(i);
        }
        let Some(key) = self.current.as_ref() else { return Err(self.no_key_error(0)) };
        for t in &mut self.tables {
            (t.ops.remove)(t.data.as_mut(), key);
        }
        Ok(())
    }

    /// Drops restored entries of states not registered again whose key `keep` rejects (their
    /// owner is gone: a window purged before its function registered the state). Decodes
    /// the keys of those entries; free while every restored state is registered.
    pub fn retain_unregistered(&mut self, mut keep: impl FnMut(&K) -> bool) {
        for (snap, _) in &mut self.pending {
            snap.entries.retain(|(_, bytes)| {
                rmp_serde::from_slice::<(K, serde::de::IgnoredAny)>(bytes).map_or(true, |(k, _)| keep(&k))
            });
        }
    }

    /// Registers (or looks up) a single-value state.
    pub fn value_state<V: StateValue>(&mut self, name: &str) -> Result<ValueState<V>, StateError> {
        Ok(ValueState { index: self.register::<V>(name)?, _v: PhantomData })
    }

    /// Registers (or looks up) a list state.
    pub fn list_state<V: StateValue>(&mut self, name: &str) -> Result<ListState<V>, StateError> {
        Ok(ListState { index: self.register::<Vec<V>>(name)?, _v: PhantomData })
    }

    /// Registers (or looks up) a map state.
    pub fn map_state<MK: StateKey, MV: StateValue>(&mut self, name: &str) -> Result<MapState<MK, MV>, StateError> {
        Ok(MapState { index: self.register::<HashMap<MK, MV>>(name)?, _v: PhantomData })
    }

    /// Number of keys that hold a value in any state (for metrics and tests).
    pub fn registered_states(&self) -> Vec<&str> {
        self.tables.iter().map(|t| t.name.as_str()).collect()
    }
}

/// A handle to a single value per key.
pub struct ValueState<V> {
    index: usize,
    _v: PhantomData<fn() -> V>,
}

impl<V> Clone for ValueState<V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<V> Copy for ValueState<V> {}

impl<V: StateValue> ValueState<V> {
    /// The value for the current key.
    pub fn get<'s, K: StateKey>(&self, store: &'s KeyedStateStore<K>) -> Result<Option<&'s V>, StateError> {
        let key = store.current.as_ref().ok_or_else(|| store.no_key_error(self.index))?;
        Ok(store.table::<FxHashMap<K, V>>(self.index)?.get(key))
    }

    /// The value for the current key, mutable.
    pub fn get_mut<'s, K: StateKey>(&self, store: &'s mut KeyedStateStore<K>) -> Result<Option<&'s mut V>, StateError> {
        let (t, k) = store.table_and_key::<FxHashMap<K, V>>(self.index)?;
        let k = k.clone();
        Ok(t.get_mut(&k))
    }

    /// Sets the value for the current key.
    pub fn set<K: StateKey>(&self, store: &mut KeyedStateStore<K>, value: V) -> Result<(), StateError> {
        let (t, k) = store.table_and_key::<FxHashMap<K, V>>(self.index)?;
        let k = k.clone();
        t.insert(k, value);
        Ok(())
    }

    /// Removes the value for the current key.
    pub fn clear<K: StateKey>(&self, store: &mut KeyedStateStore<K>) -> Result<Option<V>, StateError> {
        let (t, k) = store.table_and_key::<FxHashMap<K, V>>(self.index)?;
        let k = k.clone();
        Ok(t.remove(&k))
    }

    /// Number of keys holding a value (in memory or not).
    pub fn len<K: StateKey>(&self, store: &KeyedStateStore<K>) -> Result<usize, StateError> {
        Ok(store.table::<FxHashMap<K, V>>(self.index)?.len() + store.cold_len(self.index))
    }

    /// Direct access to the whole table, for operators that manage keys themselves (the
    /// keyed reduce takes the key from the record, not from the current key).
    ///
    /// A non-heap backend first loads every key group it keeps out of memory (the table is
    /// then complete, and may exceed the memory budget until the next key switch moves cold
    /// groups out again), so this is meant for small states or rare use.
    pub fn table_mut<'s, K: StateKey>(
        &self,
        store: &'s mut KeyedStateStore<K>,
    ) -> Result<&'s mut FxHashMap<K, V>, StateError> {
        if let Some(t) = store.tiered.as_deref_mut() {
            t.load_all(&mut store.tables)?;
        }
        // Any key may change through the table.
        store.pieces.invalidate_table(self.index);
        store
            .tables
            .get_mut(self.index)
            .and_then(|t| t.data.downcast_mut::<FxHashMap<K, V>>())
            .ok_or(StateError::ForeignHandle { index: self.index })
    }
}

/// A handle to a list of values per key.
pub struct ListState<V> {
    index: usize,
    _v: PhantomData<fn() -> V>,
}

impl<V> Clone for ListState<V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<V> Copy for ListState<V> {}

impl<V: StateValue> ListState<V> {
    /// Appends a value to the current key's list.
    pub fn add<K: StateKey>(&self, store: &mut KeyedStateStore<K>, value: V) -> Result<(), StateError> {
        let (t, k) = store.table_and_key::<FxHashMap<K, Vec<V>>>(self.index)?;
        if let Some(l) = t.get_mut(k) {
            l.push(value);
        } else {
            let k = k.clone();
            t.insert(k, vec![value]);
        }
        Ok(())
    }

    /// The current key's list (empty if none).
    pub fn get<'s, K: StateKey>(&self, store: &'s KeyedStateStore<K>) -> Result<&'s [V], StateError> {
        let key = store.current.as_ref().ok_or_else(|| store.no_key_error(self.index))?;
        Ok(store.table::<FxHashMap<K, Vec<V>>>(self.index)?.get(key).map(Vec::as_slice).unwrap_or(&[]))
    }

    /// Replaces the current key's list.
    pub fn update<K: StateKey>(&self, store: &mut KeyedStateStore<K>, values: Vec<V>) -> Result<(), StateError> {
        let (t, k) = store.table_and_key::<FxHashMap<K, Vec<V>>>(self.index)?;
        let k = k.clone();
        if values.is_empty() {
            t.remove(&k);
        } else {
            t.insert(k, values);
        }
        Ok(())
    }

    /// Removes and returns the current key's list.
    pub fn clear<K: StateKey>(&self, store: &mut KeyedStateStore<K>) -> Result<Vec<V>, StateError> {
        let (t, k) = store.table_and_key::<FxHashMap<K, Vec<V>>>(self.index)?;
        let k = k.clone();
        Ok(t.remove(&k).unwrap_or_default())
    }
}

/// A handle to a map per key.
pub struct MapState<MK, MV> {
    index: usize,
    _v: PhantomData<fn() -> (MK, MV)>,
}

impl<MK, MV> Clone for MapState<MK, MV> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<MK, MV> Copy for MapState<MK, MV> {}

impl<MK: StateKey, MV: StateValue> MapState<MK, MV> {
    /// Puts an entry into the current key's map.
    pub fn put<K: StateKey>(&self, store: &mut KeyedStateStore<K>, mk: MK, mv: MV) -> Result<Option<MV>, StateError> {
        let (t, k) = store.table_and_key::<FxHashMap<K, HashMap<MK, MV>>>(self.index)?;
        if let Some(m) = t.get_mut(k) {
            return Ok(m.insert(mk, mv));
        }
        let k = k.clone();
        t.entry(k).or_default().insert(mk, mv);
        Ok(None)
    }

    /// Reads an entry of the current key's map.
    pub fn get<'s, K: StateKey>(&self, store: &'s KeyedStateStore<K>, mk: &MK) -> Result<Option<&'s MV>, StateError> {
        let key = store.current.as_ref().ok_or_else(|| store.no_key_error(self.index))?;
        Ok(store.table::<FxHashMap<K, HashMap<MK, MV>>>(self.index)?.get(key).and_then(|m| m.get(mk)))
    }

    /// Removes an entry of the current key's map.
    pub fn remove<K: StateKey>(&self, store: &mut KeyedStateStore<K>, mk: &MK) -> Result<Option<MV>, StateError> {
        let (t, k) = store.table_and_key::<FxHashMap<K, HashMap<MK, MV>>>(self.index)?;
        let k = k.clone();
        let Some(m) = t.get_mut(&k) else { return Ok(None) };
        let old = m.remove(mk);
        if m.is_empty() {
            t.remove(&k);
        }
        Ok(old)
    }

    /// All entries of the current key's map (cloned, in no particular order).
    pub fn entries<K: StateKey>(&self, store: &KeyedStateStore<K>) -> Result<Vec<(MK, MV)>, StateError> {
        let key = store.current.as_ref().ok_or_else(|| store.no_key_error(self.index))?;
        Ok(store
            .table::<FxHashMap<K, HashMap<MK, MV>>>(self.index)?
            .get(key)
            .map(|m| m.iter().map(|(a, b)| (a.clone(), b.clone())).collect())
            .unwrap_or_default())
    }

    /// Removes the current key's whole map.
    pub fn clear<K: StateKey>(&self, store: &mut KeyedStateStore<K>) -> Result<(), StateError> {
        let (t, k) = store.table_and_key::<FxHashMap<K, HashMap<MK, MV>>>(self.index)?;
        let k = k.clone();
        t.remove(&k);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clear_current_key_removes_every_state_of_the_key_only() {
        let mut s = KeyedStateStore::<String>::new();
        let v = s.value_state::<u64>("count").unwrap();
        let l = s.list_state::<i32>("seen").unwrap();
        for k in ["a", "b"] {
            s.set_current_key(k.into());
            v.set(&mut s, 1).unwrap();
            l.add(&mut s, 10).unwrap();
        }
        s.set_current_key("a".into());
        s.clear_current_key().unwrap();
        assert_eq!(v.get(&s).unwrap(), None);
        assert!(l.get(&s).unwrap().is_empty());
        s.set_current_key("b".into());
        assert_eq!(v.get(&s).unwrap(), Some(&1));
        assert_eq!(l.get(&s).unwrap(), &[10]);

        // Restored entries of a state not registered yet: filtered by key.
        let snap = s.snapshot(128).unwrap();
        let mut r = KeyedStateStore::<String>::new();
        r.restore(snap, KeyGroupRange { start: 0, end: 127 }).unwrap();
        r.retain_unregistered(|k| k != "b");
        let v = r.value_state::<u64>("count").unwrap();
        r.set_current_key("b".into());
        assert_eq!(v.get(&r).unwrap(), None, "dropped before registration");
    }

    #[test]
    fn value_list_map_are_scoped_by_key() {
        let mut s = KeyedStateStore::<String>::new();
        let v = s.value_state::<u64>("count").unwrap();
        let l = s.list_state::<i32>("seen").unwrap();
        let m = s.map_state::<u8, String>("names").unwrap();
        assert!(v.get(&s).is_err(), "no current key yet");
        s.set_current_key("a".into());
        v.set(&mut s, 1).unwrap();
        l.add(&mut s, 10).unwrap();
        m.put(&mut s, 1, "one".into()).unwrap();
        s.set_current_key("b".into());
        assert_eq!(v.get(&s).unwrap(), None);
        assert!(l.get(&s).unwrap().is_empty());
        v.set(&mut s, 5).unwrap();
        s.set_current_key("a".into());
        assert_eq!(v.get(&s).unwrap(), Some(&1));
        assert_eq!(l.get(&s).unwrap(), &[10]);
        assert_eq!(m.get(&s, &1).unwrap().map(String::as_str), Some("one"));
        assert_eq!(v.len(&s).unwrap(), 2);
    }

    #[test]
    fn snapshots_restore_by_key_group_range_even_before_registration() {
        let mut s = KeyedStateStore::<u64>::new();
        let v = s.value_state::<String>("name").unwrap();
        let l = s.list_state::<u32>("seen").unwrap();
        for k in 0..100u64 {
            s.set_current_key(k);
            v.set(&mut s, format!("k{k}")).unwrap();
            l.add(&mut s, k as u32).unwrap();
        }
        let snap = s.snapshot(128).unwrap();
        assert_eq!(snap.len(), 2);
        assert_eq!(snap[0].entries.len(), 100);
        // Rescale to 2 subtasks: each restores its half of the key groups, and together
        // they hold every key exactly once.
        let mut total = 0;
        for i in 0..2 {
            let range = crate::key_group_range_for_subtask(128, 2, i);
            let mut r = KeyedStateStore::<u64>::new();
            r.restore(snap.clone(), range).unwrap();
            // Registered after the restore: the pending snapshot is applied then.
            let v2 = r.value_state::<String>("name").unwrap();
            let n = v2.len(&r).unwrap();
            total += n;
            for k in 0..100u64 {
                let kg = crate::assign_to_key_group(crate::key_hash(&k), 128);
                r.set_current_key(k);
                let got = v2.get(&r).unwrap().cloned();
                assert_eq!(got.is_some(), range.contains(kg), "key {k}");
            }
            // The list state was never registered here, but is kept for the next snapshot.
            assert_eq!(r.snapshot(128).unwrap().iter().map(|t| t.entries.len()).sum::<usize>(), 2 * n);
        }
        assert_eq!(total, 100);
        // Restoring into a state of another type is a clear error.
        let mut bad = KeyedStateStore::<u64>::new();
        let _ = bad.value_state::<u32>("name").unwrap();
        let full = KeyGroupRange { start: 0, end: 127 };
        assert!(matches!(bad.restore(snap, full), Err(StateError::Serde { .. })));
    }

    #[test]
    fn re_registering_with_another_type_is_an_error() {
        let mut s = KeyedStateStore::<u32>::new();
        let _ = s.value_state::<u64>("x").unwrap();
        assert!(s.value_state::<u64>("x").is_ok());
        assert_eq!(s.value_state::<String>("x").err(), Some(StateError::TypeMismatch { name: "x".into() }));
    }
}
