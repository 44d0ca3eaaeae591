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

use rustc_hash::FxHashMap;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::key_group::{assign_to_key_group, key_hash, KeyGroupRange};

/// What a key must be to index state: hashable, comparable, clonable, movable across threads,
/// and serializable (state is snapshotted by key group).
pub trait StateKey: Hash + Eq + Clone + Send + Serialize + DeserializeOwned + 'static {}
impl<T: Hash + Eq + Clone + Send + Serialize + DeserializeOwned + 'static> StateKey for T {}

/// What a state value must be: movable across threads and serializable for snapshots.
pub trait StateValue: Clone + Send + Serialize + DeserializeOwned + 'static {}
impl<T: Clone + Send + Serialize + DeserializeOwned + 'static> StateValue for T {}

/// Errors of the state layer. All are programming or configuration errors of the caller
/// (user domain): retrying does not help.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
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
        /// "snapshotted" or "restored".
        action: &'static str,
        /// Why.
        reason: String,
    },
}

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

struct Table {
    name: String,
    data: Box<dyn Any + Send>,
    snapshot: SnapshotFn,
    restore: RestoreFn,
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

/// The keyed state of one operator instance.
pub struct KeyedStateStore<K> {
    tables: Vec<Table>,
    current: Option<K>,
    /// Restored snapshots of states not registered yet (functions often register state on
    /// first use): applied when they are.
    pending: Vec<(StateSnapshot, KeyGroupRange)>,
}

impl<K: StateKey> Default for KeyedStateStore<K> {
    fn default() -> Self {
        Self { tables: Vec::new(), current: None, pending: Vec::new() }
    }
}

impl<K: StateKey> KeyedStateStore<K> {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the key that handle reads and writes refer to.
    #[inline]
    pub fn set_current_key(&mut self, key: K) {
        self.current = Some(key);
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
        let mut table = Table {
            name: name.to_string(),
            data: Box::new(FxHashMap::<K, X>::default()),
            snapshot: snapshot_map::<K, X>,
            restore: restore_map::<K, X>,
        };
        if let Some(pos) = self.pending.iter().position(|(s, _)| s.name == name) {
            let (snap, range) = self.pending.swap_remove(pos);
            (table.restore)(table.data.as_mut(), name, &snap.entries, range)?;
        }
        self.tables.push(table);
        Ok(self.tables.len() - 1)
    }

    /// Snapshots every registered state (and restored state not yet registered again), entry
    /// by entry with key groups of `max_parallelism`.
    pub fn snapshot(&self, max_parallelism: u32) -> Result<Vec<StateSnapshot>, StateError> {
        let mut out = Vec::with_capacity(self.tables.len() + self.pending.len());
        for t in &self.tables {
            out.push(StateSnapshot {
                name: t.name.clone(),
                entries: (t.snapshot)(t.data.as_ref(), &t.name, max_parallelism)?,
            });
        }
        for (s, range) in &self.pending {
            let entries = s.entries.iter().filter(|(kg, _)| range.contains(*kg)).cloned().collect();
            out.push(StateSnapshot { name: s.name.clone(), entries });
        }
        Ok(out)
    }

    /// Restores the key groups in `range` from snapshots (of one or, after rescaling, several
    /// former subtasks). States not registered yet are restored when they are.
    pub fn restore(&mut self, snapshots: Vec<StateSnapshot>, range: KeyGroupRange) -> Result<(), StateError> {
        for snap in snapshots {
            match self.tables.iter_mut().find(|t| t.name == snap.name) {
                Some(t) => (t.restore)(t.data.as_mut(), &t.name, &snap.entries, range)?,
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
        let key = match &self.current {
            Some(k) => k,
            None => {
                let name = self.tables.get(index).map(|t| t.name.clone()).unwrap_or_default();
                return Err(StateError::NoCurrentKey { name });
            }
        };
        let t = self
            .tables
            .get_mut(index)
            .and_then(|t| t.data.downcast_mut::<T>())
            .ok_or(StateError::ForeignHandle { index })?;
        Ok((t, key))
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
        let key = store.current.as_ref().ok_or_else(|| StateError::NoCurrentKey {
            name: store.tables.get(self.index).map(|t| t.name.clone()).unwrap_or_default(),
        })?;
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

    /// Number of keys holding a value.
    pub fn len<K: StateKey>(&self, store: &KeyedStateStore<K>) -> Result<usize, StateError> {
        Ok(store.table::<FxHashMap<K, V>>(self.index)?.len())
    }

    /// Direct access to the whole table, for operators that manage keys themselves (the
    /// keyed reduce takes the key from the record, not from the current key).
    pub fn table_mut<'s, K: StateKey>(
        &self,
        store: &'s mut KeyedStateStore<K>,
    ) -> Result<&'s mut FxHashMap<K, V>, StateError> {
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
        let key = store.current.as_ref().ok_or_else(|| StateError::NoCurrentKey {
            name: store.tables.get(self.index).map(|t| t.name.clone()).unwrap_or_default(),
        })?;
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
        let key = store.current.as_ref().ok_or_else(|| StateError::NoCurrentKey {
            name: store.tables.get(self.index).map(|t| t.name.clone()).unwrap_or_default(),
        })?;
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
        let key = store.current.as_ref().ok_or_else(|| StateError::NoCurrentKey {
            name: store.tables.get(self.index).map(|t| t.name.clone()).unwrap_or_default(),
        })?;
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
