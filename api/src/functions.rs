//! User function traits that need more than a closure: process functions with state,
//! timers and side outputs, and the contexts they see.

use std::any::Any;
use std::marker::PhantomData;

use riffle_state::{KeyedStateStore, StateKey, TimeDomain, TimerService};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{TaskError, TaskResult, UserError};
use crate::link::Input;
use crate::snapshot::{OperatorRestore, OperatorSnapshots};

/// Names a side output of type `T` (e.g. late data of a window).
pub struct OutputTag<T> {
    name: String,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for OutputTag<T> {
    fn clone(&self) -> Self {
        Self { name: self.name.clone(), _t: PhantomData }
    }
}

impl<T> OutputTag<T> {
    /// A tag; two tags with the same name and type are the same side output.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), _t: PhantomData }
    }

    /// The tag's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A side output's chain with its record type hidden, so an operator can forward watermarks,
/// idleness, end of input and timers to it like to its main output.
pub trait SideOut {
    /// The typed chain, for [`SideOutputs::emit`].
    fn as_any(&mut self) -> &mut dyn Any;
    /// See [`Input::watermark`].
    fn watermark(&mut self, watermark: i64) -> TaskResult;
    /// See [`Input::idle`].
    fn idle(&mut self, idle: bool) -> TaskResult;
    /// See [`Input::end_input`].
    fn end_input(&mut self) -> TaskResult;
    /// See [`Input::processing_time`].
    fn processing_time(&mut self, now: i64) -> TaskResult;
    /// See [`Input::next_processing_time`].
    fn next_processing_time(&self) -> Option<i64>;
    /// See [`Input::snapshot`].
    fn snapshot(&mut self, out: &mut OperatorSnapshots) -> TaskResult;
    /// See [`Input::restore`].
    fn restore(&mut self, from: &OperatorRestore) -> TaskResult;
    /// See [`Input::notify_checkpoint`].
    fn notify_checkpoint(&mut self, id: u64, completed: bool) -> TaskResult;
}

/// The typed side of a [`SideOut`].
pub struct TypedSide<T>(pub Box<dyn Input<T>>);

impl<T: 'static> SideOut for TypedSide<T> {
    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
    fn watermark(&mut self, watermark: i64) -> TaskResult {
        self.0.watermark(watermark)
    }
    fn idle(&mut self, idle: bool) -> TaskResult {
        self.0.idle(idle)
    }
    fn end_input(&mut self) -> TaskResult {
        self.0.end_input()
    }
    fn processing_time(&mut self, now: i64) -> TaskResult {
        self.0.processing_time(now)
    }
    fn next_processing_time(&self) -> Option<i64> {
        self.0.next_processing_time()
    }
    fn snapshot(&mut self, out: &mut OperatorSnapshots) -> TaskResult {
        self.0.snapshot(out)
    }
    fn restore(&mut self, from: &OperatorRestore) -> TaskResult {
        self.0.restore(from)
    }
    fn notify_checkpoint(&mut self, id: u64, completed: bool) -> TaskResult {
        self.0.notify_checkpoint(id, completed)
    }
}

/// The side outputs an operator instance writes to, by tag name.
#[derive(Default)]
pub struct SideOutputs {
    outputs: Vec<(String, Box<dyn SideOut>)>,
}

impl SideOutputs {
    /// Side outputs from `(tag, chain)` pairs.
    pub fn new(outputs: Vec<(String, Box<dyn SideOut>)>) -> Self {
        Self { outputs }
    }

    /// Emits to the side output named `tag`; dropped if nobody consumes that side output.
    pub fn emit<T: 'static>(&mut self, tag: &str, value: T, timestamp: i64) -> TaskResult {
        for (name, out) in self.outputs.iter_mut() {
            if name == tag {
                if let Some(o) = out.as_any().downcast_mut::<TypedSide<T>>() {
                    o.0.push(value, timestamp)?;
                }
                return Ok(());
            }
        }
        Ok(())
    }

    /// Forwards a watermark to every side output.
    pub fn watermark(&mut self, watermark: i64) -> TaskResult {
        self.outputs.iter_mut().try_for_each(|(_, o)| o.watermark(watermark))
    }

    /// Forwards idleness to every side output.
    pub fn idle(&mut self, idle: bool) -> TaskResult {
        self.outputs.iter_mut().try_for_each(|(_, o)| o.idle(idle))
    }

    /// Forwards end of input to every side output.
    pub fn end_input(&mut self) -> TaskResult {
        self.outputs.iter_mut().try_for_each(|(_, o)| o.end_input())
    }

    /// Forwards processing time to every side output.
    pub fn processing_time(&mut self, now: i64) -> TaskResult {
        self.outputs.iter_mut().try_for_each(|(_, o)| o.processing_time(now))
    }

    /// Snapshots every side output's chain.
    pub fn snapshot(&mut self, out: &mut OperatorSnapshots) -> TaskResult {
        self.outputs.iter_mut().try_for_each(|(_, o)| o.snapshot(out))
    }

    /// Restores every side output's chain.
    pub fn restore(&mut self, from: &OperatorRestore) -> TaskResult {
        self.outputs.iter_mut().try_for_each(|(_, o)| o.restore(from))
    }

    /// Forwards a checkpoint notification to every side output.
    pub fn notify_checkpoint(&mut self, id: u64, completed: bool) -> TaskResult {
        self.outputs.iter_mut().try_for_each(|(_, o)| o.notify_checkpoint(id, completed))
    }

    /// The earliest processing-time callback any side output wants.
    pub fn next_processing_time(&self) -> Option<i64> {
        self.outputs.iter().filter_map(|(_, o)| o.next_processing_time()).min()
    }
}

/// The earlier of two optional times.
pub(crate) fn min_time(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What a keyed (or per-subtask) process function sees for one record or timer.
pub struct ProcessContext<'a, K, O> {
    pub(crate) key: &'a K,
    pub(crate) timestamp: i64,
    pub(crate) watermark: i64,
    pub(crate) state: &'a mut KeyedStateStore<K>,
    pub(crate) timers: &'a mut TimerService<K, ()>,
    pub(crate) out: &'a mut dyn Input<O>,
    pub(crate) side: &'a mut SideOutputs,
    pub(crate) error: Option<TaskError>,
}

impl<K: StateKey, O> ProcessContext<'_, K, O> {
    /// The current key (`()` for non-keyed streams).
    pub fn key(&self) -> &K {
        self.key
    }

    /// The record's (or firing timer's) timestamp.
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// The operator's current event time.
    pub fn current_watermark(&self) -> i64 {
        self.watermark
    }

    /// The wall clock, epoch ms.
    pub fn current_processing_time(&self) -> i64 {
        crate::time::now_ms()
    }

    /// Keyed state, scoped to the current key.
    pub fn state(&mut self) -> &mut KeyedStateStore<K> {
        self.state
    }

    /// Calls `on_timer` when the watermark passes `timestamp`.
    pub fn register_event_time_timer(&mut self, timestamp: i64) {
        self.timers.register(TimeDomain::EventTime, timestamp, self.key.clone(), ());
    }

    /// Calls `on_timer` when the wall clock passes `timestamp`.
    pub fn register_processing_time_timer(&mut self, timestamp: i64) {
        self.timers.register(TimeDomain::ProcessingTime, timestamp, self.key.clone(), ());
    }

    /// Deletes an event-time timer of the current key.
    pub fn delete_event_time_timer(&mut self, timestamp: i64) {
        self.timers.delete(TimeDomain::EventTime, timestamp, self.key, &());
    }

    /// Deletes a processing-time timer of the current key.
    pub fn delete_processing_time_timer(&mut self, timestamp: i64) {
        self.timers.delete(TimeDomain::ProcessingTime, timestamp, self.key, &());
    }

    /// Emits a result with the current timestamp.
    pub fn collect(&mut self, value: O) {
        let ts = self.timestamp;
        self.collect_with_timestamp(value, ts)
    }

    /// Emits a result with an explicit timestamp.
    pub fn collect_with_timestamp(&mut self, value: O, timestamp: i64) {
        if self.error.is_none() {
            if let Err(e) = self.out.push(value, timestamp) {
                self.error = Some(e);
            }
        }
    }

    /// Emits to a side output.
    pub fn output<T: 'static>(&mut self, tag: &OutputTag<T>, value: T) {
        if self.error.is_none() {
            if let Err(e) = self.side.emit(tag.name(), value, self.timestamp) {
                self.error = Some(e);
            }
        }
    }
}

/// Processes records of a keyed stream one by one, with keyed state and timers (Flink's
/// `KeyedProcessFunction`). Cloned once per subtask.
pub trait KeyedProcessFunction<K, I, O>: Clone + Send + Sync + 'static {
    /// Called once per subtask before any record: register state here.
    fn open(&mut self, _state: &mut KeyedStateStore<K>) -> Result<(), UserError> {
        Ok(())
    }
    /// One record; the context's key is the record's key.
    fn process_element(&mut self, value: I, ctx: &mut ProcessContext<'_, K, O>) -> Result<(), UserError>;
    /// A timer of the context's key fired.
    fn on_timer(
        &mut self,
        _timestamp: i64,
        _domain: TimeDomain,
        _ctx: &mut ProcessContext<'_, K, O>,
    ) -> Result<(), UserError> {
        Ok(())
    }
    /// A checkpoint or savepoint barrier arrived: a function that keeps a working set in memory
    /// (columnar accumulators, say) writes what changed into keyed state now, before the keyed
    /// state is snapshotted, so it is checkpointed, restored and rescaled with its key group
    /// (Flink's `snapshotState` of an operator over the keyed state backend). Called between
    /// records; the store's current key may be set freely.
    fn snapshot_state(&mut self, _state: &mut KeyedStateStore<K>) -> Result<(), UserError> {
        Ok(())
    }
    /// Checkpoint `id` completed everywhere (Flink's `CheckpointListener`): effects held
    /// back until it was durable can be released now.
    fn notify_checkpoint_complete(&mut self, _id: u64) -> Result<(), UserError> {
        Ok(())
    }
    /// Checkpoint `id` was aborted (FLINK-8871): drop what was prepared for it.
    fn notify_checkpoint_aborted(&mut self, _id: u64) -> Result<(), UserError> {
        Ok(())
    }
}

/// Processes two connected streams (Flink's `CoProcessFunction`, keyed when both inputs are
/// keyed). Cloned once per subtask.
pub trait CoProcessFunction<K, A, B, O>: Clone + Send + Sync + 'static {
    /// Called once per subtask before any record.
    fn open(&mut self, _state: &mut KeyedStateStore<K>) -> Result<(), UserError> {
        Ok(())
    }
    /// A record of the first input.
    fn process_element1(&mut self, value: A, ctx: &mut ProcessContext<'_, K, O>) -> Result<(), UserError>;
    /// A record of the second input.
    fn process_element2(&mut self, value: B, ctx: &mut ProcessContext<'_, K, O>) -> Result<(), UserError>;
    /// A timer fired.
    fn on_timer(
        &mut self,
        _timestamp: i64,
        _domain: TimeDomain,
        _ctx: &mut ProcessContext<'_, K, O>,
    ) -> Result<(), UserError> {
        Ok(())
    }
    /// A checkpoint or savepoint barrier arrived: a function that keeps a working set in memory
    /// (columnar accumulators, say) writes what changed into keyed state now, before the keyed
    /// state is snapshotted, so it is checkpointed, restored and rescaled with its key group
    /// (Flink's `snapshotState` of an operator over the keyed state backend). Called between
    /// records; the store's current key may be set freely.
    fn snapshot_state(&mut self, _state: &mut KeyedStateStore<K>) -> Result<(), UserError> {
        Ok(())
    }
    /// Checkpoint `id` completed everywhere (Flink's `CheckpointListener`): effects held
    /// back until it was durable can be released now.
    fn notify_checkpoint_complete(&mut self, _id: u64) -> Result<(), UserError> {
        Ok(())
    }
    /// Checkpoint `id` was aborted (FLINK-8871): drop what was prepared for it.
    fn notify_checkpoint_aborted(&mut self, _id: u64) -> Result<(), UserError> {
        Ok(())
    }
}

/// An operator with N inputs of one type (FLIP-92); it knows which input a record came from.
/// Cloned once per subtask.
pub trait MultiInputFunction<K, T, O>: Clone + Send + Sync + 'static {
    /// Called once per subtask before any record.
    fn open(&mut self, _state: &mut KeyedStateStore<K>) -> Result<(), UserError> {
        Ok(())
    }
    /// A record of input `input` (0-based, in the order the inputs were given).
    fn process_element(&mut self, input: usize, value: T, ctx: &mut ProcessContext<'_, K, O>) -> Result<(), UserError>;
    /// A timer fired.
    fn on_timer(
        &mut self,
        _timestamp: i64,
        _domain: TimeDomain,
        _ctx: &mut ProcessContext<'_, K, O>,
    ) -> Result<(), UserError> {
        Ok(())
    }
    /// Input `input` ended (all of its producers finished).
    fn end_input(&mut self, _input: usize, _ctx: &mut ProcessContext<'_, K, O>) -> Result<(), UserError> {
        Ok(())
    }
    /// A checkpoint or savepoint barrier arrived: a function that keeps a working set in memory
    /// (columnar accumulators, say) writes what changed into keyed state now, before the keyed
    /// state is snapshotted, so it is checkpointed, restored and rescaled with its key group
    /// (Flink's `snapshotState` of an operator over the keyed state backend). Called between
    /// records; the store's current key may be set freely.
    fn snapshot_state(&mut self, _state: &mut KeyedStateStore<K>) -> Result<(), UserError> {
        Ok(())
    }
    /// Checkpoint `id` completed everywhere (Flink's `CheckpointListener`): effects held
    /// back until it was durable can be released now.
    fn notify_checkpoint_complete(&mut self, _id: u64) -> Result<(), UserError> {
        Ok(())
    }
    /// Checkpoint `id` was aborted (FLINK-8871): drop what was prepared for it.
    fn notify_checkpoint_aborted(&mut self, _id: u64) -> Result<(), UserError> {
        Ok(())
    }
}

/// What a function learns about the subtask it runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeContext {
    /// The subtask's index, from 0.
    pub subtask: u32,
    /// The operator's parallelism.
    pub parallelism: u32,
    /// The job's max parallelism (number of key groups): what a function that routes records
    /// by key group itself (the connectors' keyed rows) needs to agree with the partitioner.
    pub max_parallelism: u32,
    /// The operator's name.
    pub name: String,
}

/// A map function with operator state, for any stream, keyed or not (Flink's
/// `RichMapFunction` implementing `CheckpointedFunction` with operator list state). Cloned
/// once per subtask.
///
/// Its state is a list of items per subtask: [`RichMapFunction::snapshot_state`] gives the
/// subtask's items at each checkpoint or savepoint, [`RichMapFunction::restore_state`] gives
/// them back when the job resumes from one. At the parallelism the snapshot was taken with,
/// each subtask gets its own items back; at another one, the items of all former subtasks
/// (in subtask order) are dealt round-robin: item *j* goes to subtask *j mod parallelism*.
pub trait RichMapFunction<I, O>: Clone + Send + Sync + 'static {
    /// One item of the operator's list state.
    type State: Serialize + DeserializeOwned + Send + 'static;
    /// Called once per subtask when it is built, before `restore_state` and any record.
    fn open(&mut self, _ctx: &RuntimeContext) -> Result<(), UserError> {
        Ok(())
    }
    /// One record in, one out.
    fn map(&mut self, value: I) -> Result<O, UserError>;
    /// The subtask's state at checkpoint `checkpoint_id` (called at its barrier, between
    /// records).
    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<Vec<Self::State>, UserError> {
        Ok(Vec::new())
    }
    /// The job resumes from a checkpoint or savepoint: this subtask's share of the state
    /// (called after `open`, before any record; not called on a fresh start).
    fn restore_state(&mut self, _state: Vec<Self::State>) -> Result<(), UserError> {
        Ok(())
    }
    /// Checkpoint `id` completed everywhere (Flink's `CheckpointListener`).
    fn notify_checkpoint_complete(&mut self, _id: u64) -> Result<(), UserError> {
        Ok(())
    }
}
