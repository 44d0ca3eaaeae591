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

/// What a key must be to index state: hashable, comparable, clonable, movable across threads.
pub trait StateKey: Hash + Eq + Clone + Send + 'static {}
impl<T: Hash + Eq + Clone + Send + 'static> StateKey for T {}

/// What a state value must be.
pub trait StateValue: Clone + Send + 'static {}
impl<T: Clone + Send + 'static> StateValue for T {}

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
}

struct Table {
    name: String,
    data: Box<dyn Any + Send>,
}

/// The keyed state of one operator instance.
pub struct KeyedStateStore<K> {
    tables: Vec<Table>,
    current: Option<K>,
}

impl<K: StateKey> Default for KeyedStateStore<K> {
    fn default() -> Self {
        Self { tables: Vec::new(), current: None }
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

    fn register<T: Any + Send + Default>(&mut self, name: &str) -> Result<usize, StateError> {
        if let Some(i) = self.tables.iter().position(|t| t.name == name) {
            return if self.tables[i].data.is::<T>() {
                Ok(i)
            } else {
                Err(StateError::TypeMismatch { name: name.to_string() })
            };
        }
        self.tables.push(Table { name: name.to_string(), data: Box::new(T::default()) });
        Ok(self.tables.len() - 1)
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
        Ok(ValueState { index: self.register::<FxHashMap<K, V>>(name)?, _v: PhantomData })
    }

    /// Registers (or looks up) a list state.
    pub fn list_state<V: StateValue>(&mut self, name: &str) -> Result<ListState<V>, StateError> {
        Ok(ListState { index: self.register::<FxHashMap<K, Vec<V>>>(name)?, _v: PhantomData })
    }

    /// Registers (or looks up) a map state.
    pub fn map_state<MK: StateKey, MV: StateValue>(&mut self, name: &str) -> Result<MapState<MK, MV>, StateError> {
        Ok(MapState { index: self.register::<FxHashMap<K, HashMap<MK, MV>>>(name)?, _v: PhantomData })
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
    fn re_registering_with_another_type_is_an_error() {
        let mut s = KeyedStateStore::<u32>::new();
        let _ = s.value_state::<u64>("x").unwrap();
        assert!(s.value_state::<u64>("x").is_ok());
        assert_eq!(s.value_state::<String>("x").err(), Some(StateError::TypeMismatch { name: "x".into() }));
    }
}
