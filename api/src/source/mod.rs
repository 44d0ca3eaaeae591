//! Sources shaped as FLIP-27: a [`SplitEnumerator`] decides which reader reads which split
//! (it runs once per source, in the JobMaster's SourceCoordinator), and [`SourceReader`]s read
//! the splits they were given (one per source subtask). Bounded and unbounded sources share
//! this one API; a reader never has to lock anything, it is polled by its subtask.

pub mod builtin;
pub mod file_enumerator;
pub mod text;

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{TaskError, UserError};
use crate::link::Input;
use crate::snapshot::{OperatorRestore, OperatorSnapshots, SourceSnapshot};

/// Whether a source ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum Boundedness {
    /// The source ends; the job can finish.
    Bounded,
    /// The source runs until cancelled.
    Unbounded,
}

/// A unit of work a reader reads (a file, a range of numbers, a partition).
pub trait Split: Serialize + DeserializeOwned + Send + Clone + 'static {
    /// A stable id: the same for the split however far it was read, so a restore can tell
    /// which splits readers already hold.
    fn split_id(&self) -> String;
}

macro_rules! split_by_value {
    ($($t:ty),*) => {$(
        impl Split for $t {
            fn split_id(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
split_by_value!(u8, u16, u32, u64, i32, i64, String);

/// A reader's state at a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderState<S> {
    /// Splits assigned and not finished, with their progress (restored into the reader).
    pub unfinished: Vec<S>,
    /// Ids of splits read to the end (never handed out again).
    pub finished: Vec<String>,
}

/// What the enumerator answers to a reader's request for work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment<S> {
    /// Splits for the requesting reader (may be empty).
    pub splits: Vec<S>,
    /// No split will ever come for this reader again.
    pub no_more_splits: bool,
}

/// Lives in the SourceCoordinator (on the JobMaster) and hands out splits.
pub trait SplitEnumerator<S>: Send {
    /// A reader subtask registered.
    fn add_reader(&mut self, _subtask: u32) {}
    /// Reader `subtask` asks for work.
    fn handle_split_request(&mut self, subtask: u32) -> Result<Assignment<S>, UserError>;
    /// Splits given to a reader that failed before finishing them come back.
    fn add_splits_back(&mut self, splits: Vec<S>, subtask: u32);
    /// Restoring from a checkpoint: readers already hold (or finished) the splits with these
    /// ids; never hand them out again. Called after [`Self::restore_state`]: a split handed
    /// out between the enumerator's snapshot and a reader's is in both, so an enumerator with
    /// state must drop these from what it still has to hand out. (Readers must report the
    /// splits they finished, as the built-in ones do: there is no event valve between the
    /// enumerator and its readers yet.)
    fn restore(&mut self, consumed: &[String]);
    /// The enumerator's own state for a checkpoint (splits not assigned yet, what it
    /// discovered so far), encoded with [`encode_enumerator_state`]; taken before any reader
    /// takes its part of the same checkpoint. `None` (the default): the enumerator is rebuilt
    /// from the splits readers hold or finished ([`Self::restore`]) alone.
    fn snapshot_state(&mut self) -> Result<Option<Vec<u8>>, UserError> {
        Ok(None)
    }
    /// Restores what [`Self::snapshot_state`] gave (decode it with
    /// [`decode_enumerator_state`]); [`Self::restore`] follows with what readers hold.
    fn restore_state(&mut self, _state: &[u8]) -> Result<(), UserError> {
        Ok(())
    }
}

/// Encodes an enumerator's state (MessagePack) for [`SplitEnumerator::snapshot_state`].
pub fn encode_enumerator_state<T: Serialize>(state: &T) -> Result<Vec<u8>, UserError> {
    rmp_serde::to_vec(state).map_err(|e| format!("cannot encode the enumerator's state: {e}").into())
}

/// Decodes what [`encode_enumerator_state`] encoded, for [`SplitEnumerator::restore_state`].
pub fn decode_enumerator_state<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, UserError> {
    rmp_serde::from_slice(bytes).map_err(|e| format!("corrupt enumerator state in the checkpoint: {e}").into())
}

/// What a reader's poll says about what comes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadStatus {
    /// Call again at once.
    MoreAvailable,
    /// Nothing right now (an unbounded source waiting for data); call again later.
    NothingAvailable,
    /// The reader finished its splits and wants more from the enumerator.
    NeedSplits,
    /// Everything was read: no more splits and nothing left.
    EndOfInput,
}

/// Where a reader puts records.
pub trait SourceOutput<T> {
    /// Emits a record without a timestamp.
    fn collect(&mut self, value: T);
    /// Emits a record with an event timestamp.
    fn collect_with_timestamp(&mut self, value: T, timestamp: i64);
}

/// Reads splits inside a source subtask.
pub trait SourceReader<T, S> {
    /// New splits from the enumerator.
    fn add_splits(&mut self, splits: Vec<S>);
    /// The enumerator has nothing more for this reader.
    fn notify_no_more_splits(&mut self);
    /// Emits up to a batch of records. Should return promptly (emit a few thousand records
    /// at most) so the subtask can react to control messages.
    fn poll_next(&mut self, output: &mut dyn SourceOutput<T>) -> Result<ReadStatus, UserError>;
    /// The reader's position for a checkpoint: taken between two polls.
    fn snapshot_state(&mut self) -> ReaderState<S>;
    /// Checkpoint `id` completed (Flink's `CheckpointListener`): e.g. acknowledge messages
    /// up to its position to an external system.
    fn notify_checkpoint_complete(&mut self, _id: u64) -> Result<(), UserError> {
        Ok(())
    }
    /// Checkpoint `id` was aborted (FLINK-8871).
    fn notify_checkpoint_aborted(&mut self, _id: u64) -> Result<(), UserError> {
        Ok(())
    }
    /// Malformed records this reader skipped so far instead of failing (a format's
    /// `*.ignore-parse-errors`): counted in the job's `records_skipped`, so skipping is never
    /// silent.
    fn records_skipped(&self) -> u64 {
        0
    }
}

/// A FLIP-27 source of `T`.
pub trait Source<T>: Send + Sync + 'static {
    /// The split type.
    type Split: Split;
    /// Whether the source ends.
    fn boundedness(&self) -> Boundedness;
    /// Creates the enumerator for a source of `parallelism` readers.
    fn create_enumerator(&self, parallelism: u32) -> Result<Box<dyn SplitEnumerator<Self::Split>>, UserError>;
    /// Creates the reader of subtask `subtask`.
    fn create_reader(&self, subtask: u32) -> Result<Box<dyn SourceReader<T, Self::Split>>, UserError>;
}

/// A split serialized for the trip between coordinator and reader (actor messages carry
/// bytes so that the same messages work across processes).
pub type SplitBytes = Vec<u8>;

/// A source's enumerator with splits as bytes: what the SourceCoordinator drives.
pub trait ErasedEnumerator: Send {
    /// See [`SplitEnumerator::add_reader`].
    fn add_reader(&mut self, subtask: u32);
    /// See [`SplitEnumerator::handle_split_request`]; splits serialized.
    fn handle_split_request(&mut self, subtask: u32) -> crate::error::Result<(Vec<SplitBytes>, bool)>;
    /// See [`SplitEnumerator::add_splits_back`].
    fn add_splits_back(&mut self, splits: Vec<SplitBytes>, subtask: u32) -> crate::error::Result<()>;
    /// See [`SplitEnumerator::restore`].
    fn restore(&mut self, consumed: &[String]);
    /// See [`SplitEnumerator::snapshot_state`].
    fn snapshot_state(&mut self) -> crate::error::Result<Option<Vec<u8>>>;
    /// See [`SplitEnumerator::restore_state`].
    fn restore_state(&mut self, state: &[u8]) -> crate::error::Result<()>;
}

struct EnumeratorAdapter<S> {
    inner: Box<dyn SplitEnumerator<S>>,
}

impl<S: Split> ErasedEnumerator for EnumeratorAdapter<S> {
    fn add_reader(&mut self, subtask: u32) {
        self.inner.add_reader(subtask)
    }
    fn handle_split_request(&mut self, subtask: u32) -> crate::error::Result<(Vec<SplitBytes>, bool)> {
        let a = self.inner.handle_split_request(subtask).map_err(crate::error::ApiError::User)?;
        let mut out = Vec::with_capacity(a.splits.len());
        for s in &a.splits {
            out.push(rmp_serde::to_vec(s).map_err(|e| crate::error::ApiError::SplitEncode(e.to_string()))?);
        }
        Ok((out, a.no_more_splits))
    }
    fn add_splits_back(&mut self, splits: Vec<SplitBytes>, subtask: u32) -> crate::error::Result<()> {
        let mut back = Vec::with_capacity(splits.len());
        for b in splits {
            back.push(rmp_serde::from_slice::<S>(&b).map_err(|e| crate::error::ApiError::SplitDecode(e.to_string()))?);
        }
        self.inner.add_splits_back(back, subtask);
        Ok(())
    }
    fn restore(&mut self, consumed: &[String]) {
        self.inner.restore(consumed)
    }
    fn snapshot_state(&mut self) -> crate::error::Result<Option<Vec<u8>>> {
        self.inner.snapshot_state().map_err(crate::error::ApiError::User)
    }
    fn restore_state(&mut self, state: &[u8]) -> crate::error::Result<()> {
        self.inner.restore_state(state).map_err(crate::error::ApiError::User)
    }
}

/// The type-erased source of a job graph: makes enumerators for the coordinator.
pub trait ErasedSource: Send + Sync {
    /// See [`Source::boundedness`].
    fn boundedness(&self) -> Boundedness;
    /// A byte-level enumerator.
    fn create_enumerator(&self, parallelism: u32) -> crate::error::Result<Box<dyn ErasedEnumerator>>;
}

pub(crate) struct SourceHolder<T, S: Source<T>> {
    pub(crate) source: Arc<S>,
    pub(crate) _t: std::marker::PhantomData<fn() -> T>,
}

impl<T: 'static, S: Source<T>> ErasedSource for SourceHolder<T, S> {
    fn boundedness(&self) -> Boundedness {
        self.source.boundedness()
    }
    fn create_enumerator(&self, parallelism: u32) -> crate::error::Result<Box<dyn ErasedEnumerator>> {
        let inner = self.source.create_enumerator(parallelism).map_err(crate::error::ApiError::User)?;
        Ok(Box::new(EnumeratorAdapter { inner }))
    }
}

/// A source subtask's head: its reader feeding the operator chain. Driven by the runtime.
pub trait SourceHead {
    /// Splits arrived from the coordinator.
    fn add_splits(&mut self, splits: Vec<SplitBytes>) -> Result<(), TaskError>;
    /// The coordinator has no more splits for this reader.
    fn no_more_splits(&mut self);
    /// Polls the reader once, pushing what it emits through the chain.
    fn poll(&mut self) -> Result<ReadStatus, TaskError>;
    /// The input ended (or the source reached its end): final watermark, end of input.
    fn finish(&mut self) -> Result<(), TaskError>;
    /// Processing-time callbacks of the chain.
    fn processing_time(&mut self, now: i64) -> Result<(), TaskError>;
    /// The earliest processing-time callback the chain wants.
    fn next_processing_time(&self) -> Option<i64>;
    /// Records the reader emitted so far.
    fn records_emitted(&self) -> u64;
    /// Malformed records the reader skipped so far ([`SourceReader::records_skipped`]).
    fn records_skipped(&self) -> u64 {
        0
    }
    /// The reader's position and the chain's operator state, for a checkpoint.
    fn snapshot(&mut self, out: &mut OperatorSnapshots) -> Result<SourceSnapshot, TaskError>;
    /// The reader's position alone (no side effect on the chain): what a finished source
    /// subtask leaves for later checkpoints.
    fn reader_state(&mut self) -> Result<SourceSnapshot, TaskError>;
    /// Restores positions (from one or several former readers) and operator state.
    fn restore(&mut self, sources: &[SourceSnapshot], from: &OperatorRestore) -> Result<(), TaskError>;
    /// A checkpoint completed or was aborted.
    fn notify_checkpoint(&mut self, id: u64, completed: bool) -> Result<(), TaskError>;
}

pub(crate) struct ReaderHead<T, S> {
    pub(crate) reader: Box<dyn SourceReader<T, S>>,
    pub(crate) chain: Box<dyn Input<T>>,
    pub(crate) name: String,
    pub(crate) emitted: u64,
}

struct PushOutput<'a, T> {
    chain: &'a mut dyn Input<T>,
    err: Option<TaskError>,
    count: u64,
}

impl<T> SourceOutput<T> for PushOutput<'_, T> {
    #[inline]
    fn collect(&mut self, value: T) {
        self.collect_with_timestamp(value, crate::record::NO_TIMESTAMP)
    }
    #[inline]
    fn collect_with_timestamp(&mut self, value: T, timestamp: i64) {
        if self.err.is_none() {
            self.count += 1;
            if let Err(e) = self.chain.push(value, timestamp) {
                self.err = Some(e);
            }
        }
    }
}

impl<T, S: Split> SourceHead for ReaderHead<T, S> {
    fn add_splits(&mut self, splits: Vec<SplitBytes>) -> Result<(), TaskError> {
        let mut v = Vec::with_capacity(splits.len());
        for b in splits {
            v.push(
                rmp_serde::from_slice::<S>(&b)
                    .map_err(|e| TaskError::msg(&self.name, format!("corrupt split: {e}")))?,
            );
        }
        self.reader.add_splits(v);
        Ok(())
    }
    fn no_more_splits(&mut self) {
        self.reader.notify_no_more_splits()
    }
    fn poll(&mut self) -> Result<ReadStatus, TaskError> {
        let mut out = PushOutput { chain: self.chain.as_mut(), err: None, count: 0 };
        let r = self.reader.poll_next(&mut out);
        self.emitted += out.count;
        if let Some(e) = out.err {
            return Err(e);
        }
        r.map_err(|e| TaskError::new(&self.name, e.as_ref()))
    }
    fn finish(&mut self) -> Result<(), TaskError> {
        self.chain.watermark(crate::record::MAX_WATERMARK)?;
        self.chain.end_input()
    }
    fn processing_time(&mut self, now: i64) -> Result<(), TaskError> {
        self.chain.processing_time(now)
    }
    fn next_processing_time(&self) -> Option<i64> {
        self.chain.next_processing_time()
    }
    fn records_emitted(&self) -> u64 {
        self.emitted
    }
    fn records_skipped(&self) -> u64 {
        self.reader.records_skipped()
    }
    fn snapshot(&mut self, out: &mut OperatorSnapshots) -> Result<SourceSnapshot, TaskError> {
        let reader = self.reader_state()?;
        self.chain.snapshot(out)?;
        Ok(reader)
    }
    fn reader_state(&mut self) -> Result<SourceSnapshot, TaskError> {
        let st = self.reader.snapshot_state();
        let mut unfinished = Vec::with_capacity(st.unfinished.len());
        for s in &st.unfinished {
            unfinished.push(
                rmp_serde::to_vec(s)
                    .map_err(|e| TaskError::msg(&self.name, format!("cannot snapshot a split: {e}")))?,
            );
        }
        let unfinished_ids = st.unfinished.iter().map(Split::split_id).collect();
        Ok(SourceSnapshot { unfinished, unfinished_ids, finished: st.finished })
    }
    fn restore(&mut self, sources: &[SourceSnapshot], from: &OperatorRestore) -> Result<(), TaskError> {
        let mut splits = Vec::new();
        for s in sources {
            for b in &s.unfinished {
                splits.push(
                    rmp_serde::from_slice::<S>(b)
                        .map_err(|e| TaskError::msg(&self.name, format!("corrupt split in checkpoint: {e}")))?,
                );
            }
        }
        if !splits.is_empty() {
            self.reader.add_splits(splits);
        }
        self.chain.restore(from)
    }
    fn notify_checkpoint(&mut self, id: u64, completed: bool) -> Result<(), TaskError> {
        let r = if completed {
            self.reader.notify_checkpoint_complete(id)
        } else {
            self.reader.notify_checkpoint_aborted(id)
        };
        r.map_err(|e| TaskError::new(&self.name, e.as_ref()))?;
        self.chain.notify_checkpoint(id, completed)
    }
}
