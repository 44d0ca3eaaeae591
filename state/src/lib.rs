//! riffle's state layer: where keyed and operator state lives and how it is partitioned.
//!
//! The lowest crate of the workspace: it knows nothing about streams, actors or I/O
//! beyond its own storage. Keys are spread over *key groups* (the unit of rescaling);
//! keyed state is scoped by the current key and a namespace (a window, or `()`), and timers
//! are state too, so that a later snapshot can capture them with everything else.
//!
//! Architecture invariant: nothing here depends on the DataStream API or the runtime. The
//! API crate builds on these types, never the other way round.

pub mod backend;
pub mod checkpoint_metadata;
pub mod error;
pub mod key_group;
pub mod keyed;
pub mod keyed_pieces;
pub mod timers;

pub use backend::{BackendConfig, BackendKind};
pub use checkpoint_metadata::MetadataError;
pub use error::ErrorDomain;
pub use key_group::{
    assign_to_key_group, key_group_range_for_subtask, key_hash, subtask_for_key_group, KeyGroupRange,
    DEFAULT_MAX_PARALLELISM,
};
pub use keyed::{
    KeyedStateStore, ListState, MapState, Result, SnapshotEntry, StateError, StateKey, StateSnapshot, StateValue,
    ValueState,
};
pub use keyed_pieces::{KeyedPieces, StatePiece, StatePieces};
pub use timers::{TimeDomain, Timer, TimerService};
