//! State backends: where keyed state lives when it is not in memory.
//!
//! Every backend keeps the same in-memory working set, the typed hash maps of
//! [`KeyedStateStore`](crate::KeyedStateStore), so that reads can hand out references and the
//! per-record path stays one hash lookup. A backend only decides what happens to the key
//! groups that do not fit into the memory budget:
//!
//! * [`BackendKind::Heap`] keeps everything in memory (the default, and the fast path: no
//!   accounting at all);
//! * [`BackendKind::SpillableHeap`] writes cold key groups (least recently accessed first) to
//!   one file per (state, key group) in a directory and reads them back when a key of theirs
//!   becomes current (FLINK-12692);
//! * [`BackendKind::Sled`] keeps cold key groups in an embedded [sled](https://docs.rs/sled)
//!   database, one tree per state; the in-memory maps act as a bounded cache in front of it.
//!
//! The unit of moving data between memory and the cold store is an *internal* key group (see
//! [`BackendConfig::key_groups`]), so that loading is one sequential read per state.

mod sled_store;
mod spill_files;
pub(crate) mod tiered;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::keyed::StateError;

pub(crate) use sled_store::SledStore;
pub(crate) use spill_files::SpillFiles;

/// The configuration key that selects the backend.
pub const BACKEND_KEY: &str = "state.backend";
/// The configuration key of the memory budget of the non-heap backends (bytes, or with a
/// `kb`/`mb`/`gb` suffix, powers of 1024).
pub const MEMORY_BUDGET_KEY: &str = "state.backend.memory-budget";
/// The configuration key of the directory under which non-heap backends keep their files.
pub const DIR_KEY: &str = "state.backend.dir";
/// The configuration key of the number of internal key groups (the spilling granularity).
pub const KEY_GROUPS_KEY: &str = "state.backend.key-groups";
/// The configuration key of incremental checkpoints (read here only to know whether keeping
/// the encoded pieces of unchanged key groups pays off; declared with the checkpoint options).
pub const INCREMENTAL_KEY: &str = "state.backend.incremental";

/// The memory budget of a spilling backend when none is configured: large enough that a
/// small job never touches the disk, small enough to leave room for several operators.
pub const DEFAULT_MEMORY_BUDGET_BYTES: usize = 128 << 20;
/// The number of internal key groups when none is configured: fine enough that one group is
/// a small fraction of a subtask's state, coarse enough that per-group bookkeeping is noise.
pub const DEFAULT_KEY_GROUPS: u32 = 1024;

/// Which backend keeps a store's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BackendKind {
    /// Everything in memory (Flink's `hashmap`): fastest, bounded by the heap.
    #[default]
    Heap,
    /// In memory, with cold key groups spilled to files when over the memory budget.
    SpillableHeap,
    /// In memory up to the budget, the rest in an embedded sled database.
    Sled,
}

impl BackendKind {
    /// The canonical configuration value.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Heap => "heap",
            BackendKind::SpillableHeap => "spillable-heap",
            BackendKind::Sled => "sled",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BackendKind {
    type Err = StateError;

    /// Parses a `state.backend` value, case-insensitively; `hashmap` is Flink's name for the
    /// heap backend and accepted as such.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "heap" | "hashmap" => Ok(BackendKind::Heap),
            "spillable-heap" => Ok(BackendKind::SpillableHeap),
            "sled" => Ok(BackendKind::Sled),
            _ => Err(StateError::Config {
                key: BACKEND_KEY.to_string(),
                value: s.to_string(),
                reason: "valid values are 'heap' (or 'hashmap'), 'spillable-heap' and 'sled'".to_string(),
            }),
        }
    }
}

/// How a [`KeyedStateStore`](crate::KeyedStateStore) keeps its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendConfig {
    /// Which backend.
    pub kind: BackendKind,
    /// Roughly how many bytes of state the in-memory maps may hold before cold key groups
    /// are moved out (an estimate from sampled encoded sizes; ignored by the heap backend).
    /// The key group of the current key always stays in memory, whatever its size.
    pub memory_budget_bytes: usize,
    /// The directory under which the store creates its own, uniquely named subdirectory for
    /// spill files or the sled database (created if missing; the system temporary directory
    /// if `None`). The subdirectory belongs to the store and is removed when it is dropped,
    /// so several stores may share one configured directory. Ignored by the heap backend.
    pub dir: Option<PathBuf>,
    /// Into how many internal key groups the key space is cut for moving state between
    /// memory and the cold store (at least 1). More groups make each load smaller; the
    /// granularity is independent of the job's maximum parallelism.
    pub key_groups: u32,
    /// Whether checkpoints are incremental: then stores keep the encoded pieces of key
    /// groups that did not change, to hand them in again (see
    /// [`crate::keyed_pieces`]); otherwise every snapshot encodes everything and keeps nothing.
    pub incremental: bool,
}

impl Default for BackendConfig {
    fn default() -> Self {
        Self::heap()
    }
}

impl BackendConfig {
    /// Everything in memory: what [`KeyedStateStore::new`](crate::KeyedStateStore::new) uses.
    pub fn heap() -> Self {
        Self::new(BackendKind::Heap)
    }

    /// A backend of `kind` with the default budget, directory and key groups.
    pub fn new(kind: BackendKind) -> Self {
        Self {
            kind,
            memory_budget_bytes: DEFAULT_MEMORY_BUDGET_BYTES,
            dir: None,
            key_groups: DEFAULT_KEY_GROUPS,
            incremental: true,
        }
    }

    /// The spillable heap with a memory budget of `memory_budget_bytes`.
    pub fn spillable_heap(memory_budget_bytes: usize) -> Self {
        Self { memory_budget_bytes, ..Self::new(BackendKind::SpillableHeap) }
    }

    /// sled behind an in-memory cache of `memory_budget_bytes`.
    pub fn sled(memory_budget_bytes: usize) -> Self {
        Self { memory_budget_bytes, ..Self::new(BackendKind::Sled) }
    }

    /// The same, with its files under `dir`.
    pub fn with_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// Reads the backend from configuration: [`BACKEND_KEY`] (default `heap`),
    /// [`MEMORY_BUDGET_KEY`], [`DIR_KEY`] (a `file://` prefix is accepted) and
    /// [`KEY_GROUPS_KEY`] and [`INCREMENTAL_KEY`] (default `true`). `get` looks a key up, so any configuration type can be used
    /// without this crate depending on it.
    pub fn from_options<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<Self, StateError> {
        let kind = get(BACKEND_KEY).map(str::parse).transpose()?.unwrap_or_default();
        let mut config = Self::new(kind);
        if let Some(v) = get(MEMORY_BUDGET_KEY) {
            config.memory_budget_bytes = parse_bytes(v).ok_or_else(|| StateError::Config {
                key: MEMORY_BUDGET_KEY.to_string(),
                value: v.to_string(),
                reason: "expected a byte count such as '67108864', '512 kb', '64mb' or '1 gb'".to_string(),
            })?;
        }
        if let Some(v) = get(DIR_KEY) {
            let v = v.trim();
            config.dir = Some(PathBuf::from(v.strip_prefix("file://").unwrap_or(v)));
        }
        if let Some(v) = get(KEY_GROUPS_KEY) {
            config.key_groups = v.trim().parse().ok().filter(|n| *n >= 1).ok_or_else(|| StateError::Config {
                key: KEY_GROUPS_KEY.to_string(),
                value: v.to_string(),
                reason: "expected a positive integer".to_string(),
            })?;
        }
        if let Some(v) = get(INCREMENTAL_KEY) {
            config.incremental = match v.trim().to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                _ => {
                    return Err(StateError::Config {
                        key: INCREMENTAL_KEY.to_string(),
                        value: v.to_string(),
                        reason: "expected 'true' or 'false'".to_string(),
                    })
                }
            };
        }
        Ok(config)
    }
}

/// Parses `123`, `4k`, `4 kb`, `4kib`, `64mb`, `1 GB` (powers of 1024).
fn parse_bytes(s: &str) -> Option<usize> {
    let s = s.trim().to_ascii_lowercase();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: usize = digits.parse().ok()?;
    let shift = match unit.trim() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return None,
    };
    n.checked_mul(1usize << shift)
}

/// One entry as the cold stores keep it: the encoded key and the encoded value, apart, so
/// that sled can index by key. `[0x92] ++ key ++ value` is the rmp encoding of the
/// `(key, value)` pair that snapshots hold.
pub(crate) type ColdEntry = (Vec<u8>, Vec<u8>);

/// Where the key groups that are not in memory live.
///
/// Tables are identified by their registration index (stable for a store's lifetime).
/// Content of a key group that is in memory is stale and never read: the store only reads
/// groups it moved out and has not loaded since, so a failed or partial write leaves no
/// visible trace, and [`ColdStore::discard_group`] may fail harmlessly.
pub(crate) trait ColdStore: Send {
    /// Replaces what is kept for `(table, group)` with `entries`.
    fn put_group(&mut self, table: usize, group: u32, entries: &[ColdEntry]) -> Result<(), StateError>;
    /// What is kept for `(table, group)` (empty if nothing).
    fn read_group(&self, table: usize, group: u32) -> Result<Vec<ColdEntry>, StateError>;
    /// Frees what is kept for `(table, group)` (after it was loaded into memory).
    fn discard_group(&mut self, table: usize, group: u32) -> Result<(), StateError>;
}
