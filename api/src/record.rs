//! What flows through a job: records with event timestamps, and the in-band elements
//! (batches, watermarks, idleness, end of partition) that travel between subtasks.

use std::any::Any;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A record type: anything that can be cloned, moved between threads and serialized
/// (records cross actor, process and checkpoint boundaries as rmp-serde frames).
pub trait Data: Clone + Send + Serialize + DeserializeOwned + 'static {}
impl<T: Clone + Send + Serialize + DeserializeOwned + 'static> Data for T {}

/// A key type: [`Data`] that can be hashed into key groups and compared.
pub trait Key: Data + std::hash::Hash + Eq + std::fmt::Debug {}
impl<T: Data + std::hash::Hash + Eq + std::fmt::Debug> Key for T {}

/// The timestamp of a record that has none (before timestamps are assigned).
pub const NO_TIMESTAMP: i64 = i64::MIN;

/// The watermark that says "no more data": bounded inputs emit it at their end, which fires
/// every remaining event-time window and timer.
pub const MAX_WATERMARK: i64 = i64::MAX;

/// A record with its event timestamp ([`NO_TIMESTAMP`] if it has none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StreamRecord<T> {
    /// The record.
    pub value: T,
    /// Event time in epoch milliseconds, or [`NO_TIMESTAMP`].
    pub timestamp: i64,
}

/// What a data channel between two subtasks carries. Everything but records is an in-band
/// event (a Chandy-Lamport style marker) that keeps its place in the stream.
#[derive(Debug)]
pub enum Element {
    /// A batch of records: a boxed `Vec<StreamRecord<T>>` for the edge's record type.
    Records {
        /// Number of records in the batch (for metrics without a downcast).
        count: u32,
        /// The `Vec<StreamRecord<T>>`.
        batch: Box<dyn Any + Send>,
    },
    /// The producer's event time has reached this point.
    Watermark(i64),
    /// The producer became idle (`true`) or active again (`false`): idle channels do not
    /// hold back the consumer's watermark.
    Idle(bool),
    /// The producer will send nothing more on this channel.
    EndOfPartition,
    /// A Chandy-Lamport marker: everything before it belongs to the checkpoint it names.
    Barrier(CheckpointBarrier),
}

/// What a checkpoint barrier says: which checkpoint, how consumers align on it, and where its
/// state goes (Flink's `CheckpointOptions`, carried in-band so every subtask learns the
/// target without asking).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckpointBarrier {
    /// The checkpoint.
    pub id: u64,
    /// Exactly-once alignment: a consumer holds back each channel that delivered the barrier
    /// until all did (else at-least-once: no channel is held back).
    pub aligned: bool,
    /// Unaligned (FLIP-76): the barrier travels on each channel's priority lane, overtaking
    /// queued data; the copy that keeps its place in the data stream only marks where the
    /// producer's snapshot was taken, so the consumer knows which in-flight records belong to
    /// the checkpoint as channel state.
    pub unaligned: bool,
    /// The directory this checkpoint's state files go to (absolute); `None` keeps state in
    /// memory, inlined in the acknowledgement.
    pub target: Option<std::sync::Arc<str>>,
    /// State below this many bytes is inlined in the metadata instead of written to a file
    /// (`state.storage.fs.memory-threshold`).
    pub inline_threshold: usize,
    /// Incremental (`state.backend.incremental`; never for savepoints): state pieces go to
    /// the job's shared files, and pieces already written for `base` are referred to.
    pub incremental: bool,
    /// The latest completed checkpoint when this one was triggered: the only one whose
    /// pieces an incremental snapshot may refer to (never an aborted one).
    pub base: Option<u64>,
}
