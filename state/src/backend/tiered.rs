//! The tiered working set of the non-heap backends: which internal key groups are in memory,
//! how much memory they take, and moving groups between memory and the cold store.
//!
//! Invariants (what makes the heap maps usable unchanged as the working set):
//! * a key group is either *resident* (all its entries of every state are in the heap maps)
//!   or *cold* (all of them are in the cold store); never split;
//! * the group of the current key is resident, and never evicted while current;
//! * cold-store content of a resident group is stale and never read (so a failed write or
//!   discard cannot resurrect or duplicate entries).
//!
//! Writes through the handles only touch the current key, so they land in a resident group;
//! every other path that inserts (restore, whole-table access) makes groups resident first.

use std::any::Any;
use std::fs;
use std::hash::Hash;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::keyed_pieces::Layout;

use rustc_hash::FxHashMap;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{BackendConfig, BackendKind, ColdEntry, ColdStore, SledStore, SpillFiles};
use crate::key_group::{assign_to_key_group, key_hash, KeyGroupRange};
use crate::keyed::{SnapshotEntry, StateError, StateKey, Table};

/// The memory estimate is checked every this many key switches (and after every load), so
/// that the per-record cost of accounting is a counter increment.
const CHECK_EVERY: u32 = 32;
/// Average entry sizes are re-sampled every this many checks (values grow: lists, maps).
const SAMPLE_EVERY: u32 = 16;
/// How many entries a size sample encodes.
const SAMPLE_ENTRIES: usize = 16;

/// Every key group: restoring per group bypasses the snapshot range filter.
const ALL_GROUPS: KeyGroupRange = KeyGroupRange { start: 0, end: u32::MAX };

/// The internal key group of a key (the same function as snapshot key groups, with the
/// backend's own group count).
#[inline]
pub(crate) fn internal_group<K: Hash>(key: &K, groups: u32) -> u32 {
    assign_to_key_group(key_hash(key), groups)
}

/// Encodes the entries of the `victims` groups of a `FxHashMap<K, X>`, per group (indexed by
/// group), leaving the map as it is.
pub(crate) type SpillFn = fn(&dyn Any, &str, u32, &[bool]) -> Result<Vec<Vec<ColdEntry>>, StateError>;
/// Removes the entries of the `victims` groups from a `FxHashMap<K, X>`.
pub(crate) type RetainFn = fn(&mut dyn Any, u32, &[bool]);
/// Decodes cold entries into a `FxHashMap<K, X>`.
pub(crate) type LoadFn = fn(&mut dyn Any, &str, Vec<ColdEntry>) -> Result<(), StateError>;
/// Encoded size of up to `n` entries: `(bytes, entries)`.
pub(crate) type SampleFn = fn(&dyn Any, usize) -> (usize, usize);
/// Checks that snapshot entries in a range decode as `(K, X)` and sorts them by internal
/// group (indexed by group).
pub(crate) type BucketFn =
    fn(&str, Vec<SnapshotEntry>, KeyGroupRange, u32) -> Result<Vec<Vec<SnapshotEntry>>, StateError>;
/// Number of entries of a `FxHashMap<K, X>`.
pub(crate) type LenFn = fn(&dyn Any) -> usize;

fn map_ref<'a, K: StateKey, X: 'static>(data: &'a dyn Any, name: &str) -> Result<&'a FxHashMap<K, X>, StateError> {
    data.downcast_ref::<FxHashMap<K, X>>().ok_or_else(|| StateError::Serde {
        name: name.to_string(),
        action: "spilled",
        reason: "unexpected table type".into(),
    })
}

pub(crate) fn len_map<K: StateKey, X: 'static>(data: &dyn Any) -> usize {
    data.downcast_ref::<FxHashMap<K, X>>().map_or(0, |m| m.len())
}

pub(crate) fn spill_map<K: StateKey, X: Serialize + 'static>(
    data: &dyn Any,
    name: &str,
    groups: u32,
    victims: &[bool],
) -> Result<Vec<Vec<ColdEntry>>, StateError> {
    let map = map_ref::<K, X>(data, name)?;
    let err = |e: rmp_serde::encode::Error| StateError::Serde {
        name: name.to_string(),
        action: "spilled",
        reason: e.to_string(),
    };
    let mut out: Vec<Vec<ColdEntry>> = (0..groups).map(|_| Vec::new()).collect();
    for (k, x) in map {
        let g = internal_group(k, groups) as usize;
        if victims[g] {
            out[g].push((rmp_serde::to_vec(k).map_err(err)?, rmp_serde::to_vec(x).map_err(err)?));
        }
    }
    Ok(out)
}

pub(crate) fn retain_map<K: StateKey, X: 'static>(data: &mut dyn Any, groups: u32, victims: &[bool]) {
    if let Some(map) = data.downcast_mut::<FxHashMap<K, X>>() {
        map.retain(|k, _| !victims[internal_group(k, groups) as usize]);
        // Give memory back once most of it is unused (the map never shrinks by itself).
        if map.len() < map.capacity() / 4 {
            map.shrink_to_fit();
        }
    }
}

pub(crate) fn load_map<K: StateKey, X: DeserializeOwned + 'static>(
    data: &mut dyn Any,
    name: &str,
    entries: Vec<ColdEntry>,
) -> Result<(), StateError> {
    let err = |reason: String| StateError::Serde { name: name.to_string(), action: "loaded", reason };
    let map = data.downcast_mut::<FxHashMap<K, X>>().ok_or_else(|| err("unexpected table type".into()))?;
    map.reserve(entries.len());
    for (kb, vb) in entries {
        let k: K = rmp_serde::from_slice(&kb).map_err(|e| err(e.to_string()))?;
        let x: X = rmp_serde::from_slice(&vb).map_err(|e| err(e.to_string()))?;
        map.insert(k, x);
    }
    Ok(())
}

/// Counts bytes instead of keeping them.
struct ByteCounter(usize);

impl io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub(crate) fn sample_map<K: StateKey, X: Serialize + 'static>(data: &dyn Any, n: usize) -> (usize, usize) {
    let Some(map) = data.downcast_ref::<FxHashMap<K, X>>() else { return (0, 0) };
    let mut counter = ByteCounter(0);
    let mut count = 0;
    for (k, x) in map.iter().take(n) {
        if rmp_serde::encode::write(&mut counter, k).is_ok() && rmp_serde::encode::write(&mut counter, x).is_ok() {
            count += 1;
        }
    }
    (counter.0, count)
}

pub(crate) fn bucket_map<K: StateKey, X: DeserializeOwned + 'static>(
    name: &str,
    entries: Vec<SnapshotEntry>,
    range: KeyGroupRange,
    groups: u32,
) -> Result<Vec<Vec<SnapshotEntry>>, StateError> {
    let mut out: Vec<Vec<SnapshotEntry>> = (0..groups).map(|_| Vec::new()).collect();
    for (kg, bytes) in entries.into_iter().filter(|(kg, _)| range.contains(*kg)) {
        let (k, _): (K, X) = rmp_serde::from_slice(&bytes).map_err(|e| StateError::Serde {
            name: name.to_string(),
            action: "restored",
            reason: format!("key group {kg}: {e}"),
        })?;
        out[internal_group(&k, groups) as usize].push((kg, bytes));
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, Default)]
struct Group {
    /// The clock value of the last time a key of the group was current (or restored).
    last_access: u64,
    /// Entries (of all states) in the cold store; 0 when resident.
    cold_entries: u64,
    /// Whether the group's entries are in the heap maps.
    resident: bool,
    /// Whether the group may hold entries in memory (it was accessed since it was loaded);
    /// untouched groups are empty and not worth evicting.
    touched: bool,
}

/// Names of stores' directories: unique within the process (the counter) and between
/// processes (the pid); a leftover of a crashed run is skipped.
static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

fn io_err(path: &Path, e: impl ToString) -> StateError {
    StateError::Io { path: path.to_path_buf(), reason: e.to_string() }
}

fn unique_dir(parent: &Path, kind: BackendKind) -> Result<PathBuf, StateError> {
    fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
    let pid = std::process::id();
    loop {
        let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
        let dir = parent.join(format!("riffle-{kind}-{pid}-{n}"));
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err(&dir, e)),
        }
    }
}

/// The working-set bookkeeping of a non-heap store, and its cold store.
pub(crate) struct Tiered {
    kind: BackendKind,
    budget: usize,
    groups: u32,
    group: Vec<Group>,
    clock: u64,
    since_check: u32,
    checks_until_sample: u32,
    /// The group of the current key (never evicted).
    current: Option<u32>,
    /// Per state: entries in the cold store.
    cold_len: Vec<usize>,
    /// Per state and group: entries in the cold store (only those are read, and a read that
    /// finds another number is an error: lost files are not lost state in silence).
    cold_counts: Vec<Vec<usize>>,
    /// Per state: estimated encoded bytes per entry (0: not sampled yet).
    avg_bytes: Vec<usize>,
    /// Cold groups that hold entries.
    spilled: usize,
    /// Why the last key switch failed: reported by handles instead of "no current key".
    pub(crate) failure: Option<StateError>,
    /// How many (state, group) reads of the cold store there were.
    reads: AtomicU64,
    /// `None` only while dropping (sled must close before its directory goes).
    cold: Option<Box<dyn ColdStore>>,
    dir: PathBuf,
}

impl Tiered {
    /// Creates the store's directory and cold store for a spillable-heap or sled `config`.
    pub(crate) fn open(config: &BackendConfig) -> Result<Self, StateError> {
        let parent = config.dir.clone().unwrap_or_else(std::env::temp_dir);
        let dir = unique_dir(&parent, config.kind)?;
        let cold: Box<dyn ColdStore> = if config.kind == BackendKind::Sled {
            match SledStore::open(&dir, config.memory_budget_bytes) {
                Ok(s) => Box::new(s),
                Err(e) => {
                    let _ = fs::remove_dir_all(&dir);
                    return Err(e);
                }
            }
        } else {
            Box::new(SpillFiles::new(dir.clone()))
        };
        let groups = config.key_groups.max(1);
        Ok(Self {
            kind: config.kind,
            budget: config.memory_budget_bytes,
            groups,
            group: vec![Group { resident: true, ..Group::default() }; groups as usize],
            clock: 0,
            since_check: 0,
            checks_until_sample: SAMPLE_EVERY,
            current: None,
            cold_len: Vec::new(),
            cold_counts: Vec::new(),
            avg_bytes: Vec::new(),
            spilled: 0,
            failure: None,
            reads: AtomicU64::new(0),
            cold: Some(cold),
            dir,
        })
    }

    /// The backend kind.
    pub(crate) fn kind(&self) -> BackendKind {
        self.kind
    }

    /// The store's own directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The number of internal key groups.
    pub(crate) fn groups(&self) -> u32 {
        self.groups
    }

    /// The internal group of the current key (the last one entered).
    pub(crate) fn current_group(&self) -> Option<u32> {
        self.current
    }

    /// How many (state, group) reads of the cold store there were.
    pub(crate) fn cold_reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// Cold groups that hold entries.
    pub(crate) fn spilled_groups(&self) -> usize {
        self.spilled
    }

    /// Entries of state `table` in the cold store.
    pub(crate) fn cold_len(&self, table: usize) -> usize {
        self.cold_len.get(table).copied().unwrap_or(0)
    }

    /// Makes room for the bookkeeping of state `table` (just registered).
    pub(crate) fn on_register(&mut self, table: usize) {
        if self.cold_len.len() <= table {
            self.cold_len.resize(table + 1, 0);
            self.cold_counts.resize_with(table + 1, || vec![0; self.groups as usize]);
            self.avg_bytes.resize(table + 1, 0);
        }
    }

    fn cold(&self) -> Result<&dyn ColdStore, StateError> {
        self.cold.as_deref().ok_or_else(|| io_err(&self.dir, "the cold store is closed"))
    }

    fn cold_mut(&mut self) -> Result<&mut (dyn ColdStore + 'static), StateError> {
        let dir = &self.dir;
        self.cold.as_deref_mut().ok_or_else(|| io_err(dir, "the cold store is closed"))
    }

    fn touch(&mut self, g: u32) {
        self.clock += 1;
        let group = &mut self.group[g as usize];
        group.last_access = self.clock;
        group.touched = true;
    }

    /// Makes `key`'s group current: loads it if it is cold, and keeps memory within the
    /// budget. On error the caller must not make the key current.
    pub(crate) fn enter<K: Hash>(&mut self, tables: &mut [Table], key: &K) -> Result<(), StateError> {
        let g = internal_group(key, self.groups);
        self.touch(g);
        self.current = Some(g);
        self.since_check += 1;
        if !self.group[g as usize].resident {
            self.load_group(tables, g)?;
            self.since_check = CHECK_EVERY;
        }
        if self.since_check >= CHECK_EVERY {
            self.since_check = 0;
            self.enforce_budget(tables)?;
        }
        self.failure = None;
        Ok(())
    }

    /// Moves group `g` from the cold store into the heap maps of every state.
    fn load_group(&mut self, tables: &mut [Table], g: u32) -> Result<(), StateError> {
        let gi = g as usize;
        if self.group[gi].resident {
            return Ok(());
        }
        if self.group[gi].cold_entries > 0 {
            // Read everything first: a failed read leaves the group cold and whole.
            let read = (0..tables.len()).map(|t| self.read_cold(t, g)).collect::<Result<Vec<_>, _>>()?;
            for (t, (table, entries)) in tables.iter_mut().zip(read).enumerate() {
                self.cold_len[t] -= entries.len();
                self.cold_counts[t][gi] = 0;
                (table.ops.load)(table.data.as_mut(), &table.name, entries)?;
            }
            self.spilled -= 1;
            let cold = self.cold_mut()?;
            for t in 0..tables.len() {
                // Best effort: stale content of a resident group is never read.
                let _ = cold.discard_group(t, g);
            }
        }
        let group = &mut self.group[gi];
        group.cold_entries = 0;
        group.resident = true;
        Ok(())
    }

    /// The cold entries of `(table, g)`, checked against the count written.
    fn read_cold(&self, table: usize, g: u32) -> Result<Vec<ColdEntry>, StateError> {
        let expected = self.cold_counts[table][g as usize];
        if expected == 0 {
            return Ok(Vec::new());
        }
        self.reads.fetch_add(1, Ordering::Relaxed);
        let entries = self.cold()?.read_group(table, g)?;
        if entries.len() != expected {
            return Err(io_err(
                &self.dir,
                format!("state #{table}, key group {g}: expected {expected} spilled entries, found {}", entries.len()),
            ));
        }
        Ok(entries)
    }

    /// Loads every cold group (for access to whole tables); all groups count as touched.
    pub(crate) fn load_all(&mut self, tables: &mut [Table]) -> Result<(), StateError> {
        for g in 0..self.groups {
            self.load_group(tables, g)?;
            self.group[g as usize].touched = true;
        }
        Ok(())
    }

    /// The estimated bytes the heap maps hold.
    fn estimate(&mut self, tables: &[Table], resample: bool) -> usize {
        let mut total = 0usize;
        for (t, table) in tables.iter().enumerate() {
            let len = (table.ops.len)(table.data.as_ref());
            if len > 0 && (resample || self.avg_bytes[t] == 0) {
                let (bytes, n) = (table.ops.sample)(table.data.as_ref(), SAMPLE_ENTRIES);
                if n > 0 {
                    self.avg_bytes[t] = bytes.div_ceil(n);
                }
            }
            total = total.saturating_add(len.saturating_mul(self.avg_bytes[t] + table.ops.entry_overhead));
        }
        total
    }

    /// Evicts least recently used groups until the estimate is a quarter under the budget
    /// (so that evictions, each a scan of the maps, are amortized over many records).
    pub(crate) fn enforce_budget(&mut self, tables: &mut [Table]) -> Result<(), StateError> {
        self.checks_until_sample = self.checks_until_sample.saturating_sub(1);
        let resample = self.checks_until_sample == 0;
        if resample {
            self.checks_until_sample = SAMPLE_EVERY;
        }
        let mut estimate = self.estimate(tables, resample);
        if estimate <= self.budget {
            return Ok(());
        }
        let low_water = self.budget - self.budget / 4;
        loop {
            let mut candidates: Vec<u32> = (0..self.groups)
                .filter(|g| {
                    let group = &self.group[*g as usize];
                    group.resident && group.touched && self.current != Some(*g)
                })
                .collect();
            if candidates.is_empty() {
                return Ok(());
            }
            candidates.sort_unstable_by_key(|g| self.group[*g as usize].last_access);
            // Assume groups are alike: evict the share of them that is over the low water.
            let share = (estimate - low_water) as f64 / estimate as f64;
            let n = ((candidates.len() as f64 * share).ceil() as usize).clamp(1, candidates.len());
            self.evict(tables, &candidates[..n])?;
            estimate = self.estimate(tables, false);
            if estimate <= low_water {
                return Ok(());
            }
        }
    }

    /// Moves `victims` out of memory into the cold store. A group whose write fails stays
    /// resident (and the error is returned); the groups written before it are evicted.
    fn evict(&mut self, tables: &mut [Table], victims: &[u32]) -> Result<(), StateError> {
        let mut is_victim = vec![false; self.groups as usize];
        for g in victims {
            is_victim[*g as usize] = true;
        }
        let mut encoded = Vec::with_capacity(tables.len());
        for (t, table) in tables.iter().enumerate() {
            let per_group = (table.ops.spill)(table.data.as_ref(), &table.name, self.groups, &is_victim)?;
            let (n, bytes) =
                per_group.iter().flatten().fold((0usize, 0usize), |(n, b), (k, v)| (n + 1, b + k.len() + v.len()));
            if n >= SAMPLE_ENTRIES {
                self.avg_bytes[t] = bytes.div_ceil(n);
            }
            encoded.push(per_group);
        }
        let mut written = vec![false; self.groups as usize];
        let mut result = Ok(());
        'groups: for &g in victims {
            let cold = self.cold_mut()?;
            // Nothing to write for an empty (state, group): only counted entries are read.
            for (t, per_group) in encoded.iter().enumerate().filter(|(_, p)| !p[g as usize].is_empty()) {
                if let Err(e) = cold.put_group(t, g, &per_group[g as usize]) {
                    result = Err(e);
                    break 'groups;
                }
            }
            written[g as usize] = true;
        }
        for table in tables.iter_mut() {
            (table.ops.retain)(table.data.as_mut(), self.groups, &written);
        }
        for &g in victims.iter().filter(|g| written[**g as usize]) {
            let mut entries = 0u64;
            for (t, per_group) in encoded.iter().enumerate() {
                let n = per_group[g as usize].len();
                self.cold_len[t] += n;
                self.cold_counts[t][g as usize] = n;
                entries += n as u64;
            }
            let group = &mut self.group[g as usize];
            group.resident = false;
            group.touched = false;
            group.cold_entries = entries;
            if entries > 0 {
                self.spilled += 1;
            }
        }
        result
    }

    /// Restores snapshot entries of state `table`, sorted by group (see [`bucket_map`]):
    /// group by group, loading it first and evicting others as the budget requires.
    pub(crate) fn restore_table(
        &mut self,
        tables: &mut [Table],
        table: usize,
        by_group: Vec<Vec<SnapshotEntry>>,
    ) -> Result<(), StateError> {
        for (g, entries) in by_group.into_iter().enumerate().filter(|(_, e)| !e.is_empty()) {
            let g = g as u32;
            self.load_group(tables, g)?;
            self.touch(g);
            let t = &mut tables[table];
            (t.ops.restore)(t.data.as_mut(), &t.name, &entries, ALL_GROUPS)?;
            self.enforce_budget(tables)?;
        }
        Ok(())
    }

    /// Adds the cold entries of state `table` in the wanted piece groups to `out` (see
    /// [`crate::keyed::EncodePiecesFn`]). With piece groups that are internal groups, only
    /// the wanted cold groups are read; otherwise every cold group is.
    pub(crate) fn cold_pieces<K: StateKey>(
        &self,
        table: usize,
        name: &str,
        layout: Layout,
        wanted: &[bool],
        out: &mut [(u32, Vec<u8>)],
    ) -> Result<(), StateError> {
        if self.cold_len(table) == 0 {
            return Ok(());
        }
        let err = |reason: String| StateError::Serde { name: name.to_string(), action: "snapshotted", reason };
        for g in 0..self.groups {
            if self.group[g as usize].resident || (layout.internal && !wanted[g as usize]) {
                continue;
            }
            for (kb, vb) in self.read_cold(table, g)? {
                let (piece, kg) = if layout.internal {
                    (g as usize, g % layout.max_parallelism)
                } else {
                    let k: K = rmp_serde::from_slice(&kb).map_err(|e| err(e.to_string()))?;
                    let kg = assign_to_key_group(key_hash(&k), layout.max_parallelism);
                    (kg as usize, kg)
                };
                if !wanted.get(piece).copied().unwrap_or(false) {
                    continue;
                }
                // rmp encodes a pair as a 2-element array header followed by its elements.
                let mut entry = Vec::with_capacity(1 + kb.len() + vb.len());
                entry.push(0x92);
                entry.extend_from_slice(&kb);
                entry.extend_from_slice(&vb);
                let (n, buf) = &mut out[piece];
                *n += 1;
                rmp_serde::encode::write(buf, &(kg, &entry)).map_err(|e| err(e.to_string()))?;
            }
        }
        Ok(())
    }

    /// Appends the cold entries of state `table` to a snapshot of it, as `(key group of
    /// max_parallelism, encoded (key, value))`.
    pub(crate) fn append_cold<K: StateKey>(
        &self,
        table: usize,
        name: &str,
        max_parallelism: u32,
        out: &mut Vec<SnapshotEntry>,
    ) -> Result<(), StateError> {
        if self.cold_len(table) == 0 {
            return Ok(());
        }
        for g in 0..self.groups {
            if self.group[g as usize].resident {
                continue;
            }
            for (kb, vb) in self.read_cold(table, g)? {
                let kg = if max_parallelism.max(1) == self.groups {
                    g
                } else {
                    let k: K = rmp_serde::from_slice(&kb).map_err(|e| StateError::Serde {
                        name: name.to_string(),
                        action: "snapshotted",
                        reason: e.to_string(),
                    })?;
                    assign_to_key_group(key_hash(&k), max_parallelism)
                };
                // rmp encodes a pair as a 2-element array header followed by its elements.
                let mut entry = Vec::with_capacity(1 + kb.len() + vb.len());
                entry.push(0x92);
                entry.extend_from_slice(&kb);
                entry.extend_from_slice(&vb);
                out.push((kg, entry));
            }
        }
        Ok(())
    }
}

impl Drop for Tiered {
    /// Closes the cold store, then removes the store's directory (best effort: a leftover
    /// directory is garbage, not a failure).
    fn drop(&mut self) {
        drop(self.cold.take());
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_pair_encodes_as_array_header_then_elements() {
        let k = ("key".to_string(), 7u64);
        let v = vec![1u32, 2, 3];
        let mut concat = vec![0x92];
        concat.extend(rmp_serde::to_vec(&k).unwrap());
        concat.extend(rmp_serde::to_vec(&v).unwrap());
        assert_eq!(concat, rmp_serde::to_vec(&(&k, &v)).unwrap());
    }
}
