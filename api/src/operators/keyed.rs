//! Keyed operators: running reduce and process functions with keyed state and timers.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use riffle_state::{
    assign_to_key_group, key_hash, BackendConfig, KeyedPieces, KeyedStateStore, StateKey, StateSnapshot, TimeDomain,
    TimerService,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::key_group_pieces::{timer_segments, KeyGroupPieces, TIMER_IDS};
use super::OpId;
use crate::error::{TaskError, TaskResult, UserError};
use crate::functions::{min_time, KeyedProcessFunction, ProcessContext, SideOutputs};
use crate::link::Input;
use crate::snapshot::{
    encode_state, msgpack_array_header, KeyGroupedState, OperatorRestore, OperatorSnapshots, Segment,
};

/// Running `reduce` per key: emits the updated value for every record (Flink's
/// `StreamGroupedReduceOperator`). Also serves `sum`, `min`, `max`, `min_by`, `max_by`.
/// Its state is one map owned by the operator: the per-record path is one hash lookup. Once
/// an incremental checkpoint kept pieces (one per key group, see [`KeyGroupPieces`]), a
/// record also notes its key group as changed (a second hash of the key); without
/// checkpoints, or with full ones, that costs nothing.
pub struct ReduceOp<K, T> {
    pub(crate) f: Arc<dyn Fn(T, T) -> T + Send + Sync>,
    pub(crate) key_of: Arc<dyn Fn(&T) -> K + Send + Sync>,
    pub(crate) state: FxHashMap<K, T>,
    pub(crate) next: Box<dyn Input<T>>,
    pub(crate) id: OpId,
    /// The encoded accumulators of key groups that did not change.
    pieces: KeyGroupPieces,
}

impl<K: StateKey, T: Clone + Send + 'static> ReduceOp<K, T> {
    pub(crate) fn new(
        f: Arc<dyn Fn(T, T) -> T + Send + Sync>,
        key_of: Arc<dyn Fn(&T) -> K + Send + Sync>,
        next: Box<dyn Input<T>>,
        id: OpId,
        incremental: bool,
    ) -> Result<Self, TaskError> {
        Ok(Self { f, key_of, state: FxHashMap::default(), next, id, pieces: KeyGroupPieces::new(0, incremental) })
    }
}

impl<K: StateKey, T: Clone + Send + Serialize + DeserializeOwned + 'static> Input<T> for ReduceOp<K, T> {
    #[inline]
    fn push(&mut self, value: T, timestamp: i64) -> TaskResult {
        self.id.enter();
        let key = (self.key_of)(&value);
        match self.state.get_mut(&key) {
            Some(acc) => {
                let new = (self.f)(acc.clone(), value);
                acc.clone_from(&new);
                self.pieces.changed(&key);
                self.next.push(new, timestamp)
            }
            None => {
                self.pieces.changed(&key);
                self.state.insert(key, value.clone());
                self.next.push(value, timestamp)
            }
        }
    }
    fn watermark(&mut self, watermark: i64) -> TaskResult {
        self.next.watermark(watermark)
    }
    fn idle(&mut self, idle: bool) -> TaskResult {
        self.next.idle(idle)
    }
    fn end_input(&mut self) -> TaskResult {
        self.next.end_input()
    }
    fn processing_time(&mut self, now: i64) -> TaskResult {
        self.next.processing_time(now)
    }
    fn next_processing_time(&self) -> Option<i64> {
        self.next.next_processing_time()
    }
    fn snapshot(&mut self, out: &mut OperatorSnapshots) -> TaskResult {
        // Synchronous part: encoding the key groups that changed since the last snapshot (a
        // `KeyGroupedState`, in pieces); the others are handed in as they were.
        let mp = out.max_parallelism.max(1);
        let (state, name) = (&self.state, &self.id.name);
        let (head, pieces) = self.pieces.segments(mp, name, &mut |wanted, groups| {
            for (k, acc) in state {
                let kg = assign_to_key_group(key_hash(k), mp) as usize;
                if wanted[kg] {
                    let (n, buf) = &mut groups[kg];
                    *n += 1;
                    rmp_serde::encode::write(buf, &(k, acc))
                        .map_err(|e| TaskError::msg(name, format!("cannot snapshot state: {e}")))?;
                }
            }
            Ok(())
        })?;
        let mut segments = Vec::with_capacity(pieces.len() + 1);
        segments.push(Segment::fresh(head));
        segments.extend(pieces);
        out.put_deferred_segments(self.id.index, Box::new(move || Ok(segments)));
        self.next.snapshot(out)
    }
    fn restore(&mut self, from: &OperatorRestore) -> TaskResult {
        self.pieces.reset();
        for st in from.get::<KeyGroupedState>(self.id.index, &self.id.name)? {
            st.decode::<(K, T), _>(from.range, &self.id.name, |(k, v)| {
                self.state.insert(k, v);
            })?;
        }
        self.next.restore(from)
    }
    fn notify_checkpoint(&mut self, id: u64, completed: bool) -> TaskResult {
        self.next.notify_checkpoint(id, completed)
    }
}

/// What a process-function operator snapshots.
#[derive(serde::Serialize, serde::Deserialize)]
struct ProcessState {
    tables: Vec<StateSnapshot>,
    timers: KeyGroupedState,
}

impl ProcessState {
    fn has_entries(&self) -> bool {
        self.tables.iter().any(|t| !t.entries.is_empty()) || !self.timers.is_empty()
    }
}

/// Whether a process operator keyed by `K` keeps per-subtask state: `K = ()`, the key of
/// non-keyed `process`, `connect` and `multi_input` operators.
fn per_subtask<K: 'static>() -> bool {
    std::any::TypeId::of::<K>() == std::any::TypeId::of::<()>()
}

/// [`ProcessState`] in MessagePack, as pieces: an array of its two fields, the first an array
/// of [`StateSnapshot`]s (each an array of the name and the entries, the entries of a
/// registered state being its pieces), the second the timers (`timers`: their headers and
/// pieces, see [`KeyGroupPieces`]). Headers and restored states not registered again are fresh
/// pieces; keyed and timer pieces keep their ids.
fn process_state_segments(
    pieces: KeyedPieces,
    timers: (Vec<u8>, Vec<Segment>),
    name: &str,
) -> Result<Vec<Segment>, TaskError> {
    let mut segments = Vec::with_capacity(pieces.piece_count() + 2 * pieces.states.len() + 2);
    let mut head = msgpack_array_header(2);
    head.extend(msgpack_array_header(pieces.states.len() + pieces.unregistered.len()));
    for state in pieces.states {
        head.extend(msgpack_array_header(2));
        head.extend(encode_state(&state.name, name)?);
        head.extend(msgpack_array_header(state.entries));
        segments.push(Segment::fresh(std::mem::take(&mut head)));
        segments.extend(state.pieces.into_iter().map(|p| Segment { id: Some(p.id), bytes: p.bytes }));
    }
    for state in &pieces.unregistered {
        head.extend(encode_state(state, name)?);
    }
    let (timer_head, timer_pieces) = timers;
    head.extend(timer_head);
    segments.push(Segment::fresh(head));
    segments.extend(timer_pieces);
    Ok(segments)
}

/// State, timers and outputs shared by every process-function operator (one-input, two-input,
/// N-input): runs user callbacks in a [`ProcessContext`] and fires timers.
pub struct ProcessCore<K, O> {
    pub(crate) store: KeyedStateStore<K>,
    pub(crate) timers: TimerService<K, ()>,
    pub(crate) watermark: i64,
    pub(crate) next: Box<dyn Input<O>>,
    pub(crate) side: SideOutputs,
    pub(crate) id: OpId,
    /// The timers' pieces of groups whose timers did not change (incremental checkpoints).
    timer_pieces: KeyGroupPieces,
}

impl<K: StateKey, O> ProcessCore<K, O> {
    /// A core whose keyed state lives in `backend` (a non-heap backend creates its directory
    /// now, so that a bad `state.backend.dir` fails the task at start).
    pub(crate) fn new(
        next: Box<dyn Input<O>>,
        side: SideOutputs,
        id: OpId,
        backend: &BackendConfig,
    ) -> Result<Self, TaskError> {
        let store = KeyedStateStore::with_backend(backend.clone()).map_err(|e| TaskError::new(&id.name, &e))?;
        Ok(Self {
            store,
            timers: TimerService::new(),
            watermark: i64::MIN,
            next,
            side,
            id,
            timer_pieces: KeyGroupPieces::new(TIMER_IDS, backend.incremental),
        })
    }

    /// Runs `f` with a context for `key` at `timestamp`.
    pub(crate) fn with_context(
        &mut self,
        key: K,
        timestamp: i64,
        f: impl FnOnce(&mut ProcessContext<'_, K, O>) -> Result<(), UserError>,
    ) -> TaskResult {
        // A spilling backend may have to load the key's state: its failure fails the task.
        self.store.try_set_current_key(key.clone()).map_err(|e| TaskError::new(&self.id.name, &e))?;
        let mut ctx = ProcessContext {
            key: &key,
            timestamp,
            watermark: self.watermark,
            state: &mut self.store,
            timers: &mut self.timers,
            out: self.next.as_mut(),
            side: &mut self.side,
            error: None,
        };
        self.id.enter();
        let timer_changes = ctx.timers.changes();
        let r = f(&mut ctx);
        let error = ctx.error.take();
        // A callback registers and deletes timers of its key only.
        if self.timers.changes() != timer_changes {
            self.timer_pieces.changed(&key);
        }
        if let Some(e) = error {
            return Err(e);
        }
        r.map_err(|e| self.id.err(e))
    }

    /// Advances event time: fires due event-time timers through `on_timer`, then forwards.
    pub(crate) fn advance_watermark(
        &mut self,
        watermark: i64,
        mut on_timer: impl FnMut(i64, TimeDomain, &mut ProcessContext<'_, K, O>) -> Result<(), UserError>,
    ) -> TaskResult {
        if watermark <= self.watermark {
            return Ok(());
        }
        self.watermark = watermark;
        while let Some(t) = self.timers.pop_due(TimeDomain::EventTime, watermark) {
            self.timer_pieces.changed(&t.key);
            self.with_context(t.key, t.timestamp, |ctx| on_timer(t.timestamp, TimeDomain::EventTime, ctx))?;
        }
        self.side.watermark(watermark)?;
        self.next.watermark(watermark)
    }

    /// Fires due processing-time timers, then forwards.
    pub(crate) fn advance_processing_time(
        &mut self,
        now: i64,
        mut on_timer: impl FnMut(i64, TimeDomain, &mut ProcessContext<'_, K, O>) -> Result<(), UserError>,
    ) -> TaskResult {
        while let Some(t) = self.timers.pop_due(TimeDomain::ProcessingTime, now) {
            self.timer_pieces.changed(&t.key);
            self.with_context(t.key, t.timestamp, |ctx| on_timer(t.timestamp, TimeDomain::ProcessingTime, ctx))?;
        }
        self.side.processing_time(now)?;
        self.next.processing_time(now)
    }

    pub(crate) fn next_processing_time(&self) -> Option<i64> {
        let own = min_time(self.timers.next_timer(TimeDomain::ProcessingTime), self.side.next_processing_time());
        min_time(own, self.next.next_processing_time())
    }

    /// Snapshots keyed state and timers, then the side outputs and downstream.
    ///
    /// Keyed state is handed in as pieces, one per (state, key group) with an id that stays
    /// while the group does not change (see `riffle_state::keyed_pieces`), so an incremental
    /// checkpoint writes only the groups that changed; concatenated, the pieces are the
    /// [`ProcessState`] a full snapshot holds, byte for byte in format.
    pub(crate) fn snapshot(&mut self, out: &mut OperatorSnapshots) -> TaskResult {
        let name = &self.id.name;
        let pieces = self.store.snapshot_pieces(out.max_parallelism).map_err(|e| TaskError::new(name, &e))?;
        let timers = timer_segments(&mut self.timer_pieces, &self.timers, out.max_parallelism, name)?;
        let name = name.clone();
        out.put_deferred_segments(self.id.index, Box::new(move || process_state_segments(pieces, timers, &name)));
        self.side.snapshot(out)?;
        self.next.snapshot(out)
    }

    /// Restores keyed state and timers of the owned key groups, then downstream.
    pub(crate) fn restore(&mut self, from: &OperatorRestore) -> TaskResult {
        self.timer_pieces.reset();
        let states = from.get::<ProcessState>(self.id.index, &self.id.name)?;
        let range = if per_subtask::<K>() {
            // Non-keyed (`K = ()`): every subtask's state is under the same key, so it is the
            // subtask's own, not the owner's of that key's group. Restored whole at the same
            // parallelism (each subtask gets its former self's); it has no meaning at another.
            if from.rescaled && states.iter().any(ProcessState::has_entries) {
                return Err(TaskError::msg(
                    &self.id.name,
                    "the state of a non-keyed process function belongs to its subtask and cannot be redistributed \
                     to another parallelism: restore at the parallelism the snapshot was taken with, or key the \
                     stream (key_by) to make the state rescalable",
                ));
            }
            riffle_state::KeyGroupRange { start: 0, end: from.max_parallelism.max(1) - 1 }
        } else {
            from.range
        };
        for st in states {
            self.store.restore(st.tables, range).map_err(|e| TaskError::new(&self.id.name, &e))?;
            st.timers.decode::<(K, (TimeDomain, i64)), _>(range, &self.id.name, |(k, (d, ts))| {
                self.timers.register(d, ts, k, ());
            })?;
        }
        self.side.restore(from)?;
        self.next.restore(from)
    }

    pub(crate) fn notify_checkpoint(&mut self, id: u64, completed: bool) -> TaskResult {
        self.side.notify_checkpoint(id, completed)?;
        self.next.notify_checkpoint(id, completed)
    }

    pub(crate) fn forward_idle(&mut self, idle: bool) -> TaskResult {
        self.side.idle(idle)?;
        self.next.idle(idle)
    }

    pub(crate) fn end_input(&mut self) -> TaskResult {
        self.side.end_input()?;
        self.next.end_input()
    }
}

/// Implements the event methods an operator built on [`ProcessCore`] (fields `core` and a
/// user function `f` with `on_timer`) shares with every other one.
macro_rules! core_events {
    () => {
        fn watermark(&mut self, watermark: i64) -> TaskResult {
            let f = &mut self.f;
            self.core.advance_watermark(watermark, |ts, d, ctx| f.on_timer(ts, d, ctx))
        }
        fn idle(&mut self, idle: bool) -> TaskResult {
            self.core.forward_idle(idle)
        }
        fn end_input(&mut self) -> TaskResult {
            self.core.end_input()
        }
        fn processing_time(&mut self, now: i64) -> TaskResult {
            let f = &mut self.f;
            self.core.advance_processing_time(now, |ts, d, ctx| f.on_timer(ts, d, ctx))
        }
        fn next_processing_time(&self) -> Option<i64> {
            self.core.next_processing_time()
        }
        fn snapshot(&mut self, out: &mut $crate::snapshot::OperatorSnapshots) -> TaskResult {
            // The function's in-memory working set goes into keyed state first.
            self.core.id.enter();
            self.f.snapshot_state(&mut self.core.store).map_err(|e| self.core.id.err(e))?;
            self.core.snapshot(out)
        }
        fn restore(&mut self, from: &$crate::snapshot::OperatorRestore) -> TaskResult {
            self.core.restore(from)
        }
        fn notify_checkpoint(&mut self, id: u64, completed: bool) -> TaskResult {
            let r =
                if completed { self.f.notify_checkpoint_complete(id) } else { self.f.notify_checkpoint_aborted(id) };
            r.map_err(|e| self.core.id.err(e))?;
            self.core.notify_checkpoint(id, completed)
        }
    };
}
pub(crate) use core_events;

/// Runs a [`KeyedProcessFunction`] (or, with `K = ()`, a per-subtask process function).
pub struct ProcessOp<K, I, O, F> {
    pub(crate) f: F,
    pub(crate) key_of: Arc<dyn Fn(&I) -> K + Send + Sync>,
    pub(crate) core: ProcessCore<K, O>,
}

impl<K: StateKey, I, O, F: KeyedProcessFunction<K, I, O>> ProcessOp<K, I, O, F> {
    pub(crate) fn new(
        mut f: F,
        key_of: Arc<dyn Fn(&I) -> K + Send + Sync>,
        next: Box<dyn Input<O>>,
        side: SideOutputs,
        id: OpId,
        backend: &BackendConfig,
    ) -> Result<Self, TaskError> {
        let mut core = ProcessCore::new(next, side, id, backend)?;
        core.id.enter();
        f.open(&mut core.store).map_err(|e| core.id.err(e))?;
        Ok(Self { f, key_of, core })
    }
}

impl<K: StateKey, I, O, F: KeyedProcessFunction<K, I, O>> Input<I> for ProcessOp<K, I, O, F> {
    fn push(&mut self, value: I, timestamp: i64) -> TaskResult {
        let key = (self.key_of)(&value);
        let f = &mut self.f;
        self.core.with_context(key, timestamp, |ctx| f.process_element(value, ctx))
    }
    core_events!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timers() -> KeyGroupedState {
        KeyGroupedState::encode([(&5u64, (TimeDomain::EventTime, 9i64))].into_iter(), 128, "t").unwrap()
    }

    fn timers_as_pieces() -> (Vec<u8>, Vec<Segment>) {
        let mut t = TimerService::<u64, ()>::new();
        t.register(TimeDomain::EventTime, 9, 5, ());
        timer_segments(&mut KeyGroupPieces::new(TIMER_IDS, true), &t, 128, "t").unwrap()
    }

    /// Drops what reaches it.
    struct Discard;

    impl Input<(u64, u64)> for Discard {
        fn push(&mut self, _: (u64, u64), _: i64) -> TaskResult {
            Ok(())
        }
        fn watermark(&mut self, _: i64) -> TaskResult {
            Ok(())
        }
        fn idle(&mut self, _: bool) -> TaskResult {
            Ok(())
        }
        fn end_input(&mut self) -> TaskResult {
            Ok(())
        }
        fn processing_time(&mut self, _: i64) -> TaskResult {
            Ok(())
        }
        fn next_processing_time(&self) -> Option<i64> {
            None
        }
        fn snapshot(&mut self, _: &mut OperatorSnapshots) -> TaskResult {
            Ok(())
        }
        fn restore(&mut self, _: &OperatorRestore) -> TaskResult {
            Ok(())
        }
        fn notify_checkpoint(&mut self, _: u64, _: bool) -> TaskResult {
            Ok(())
        }
    }

    fn reduce_op(incremental: bool) -> ReduceOp<u64, (u64, u64)> {
        let id = OpId { name: "r".into(), index: 1, marker: crate::link::OperatorMarker::default() };
        let f = Arc::new(|a: (u64, u64), b: (u64, u64)| (a.0, a.1 + b.1));
        ReduceOp::new(f, Arc::new(|e| e.0), Box::new(Discard), id, incremental).unwrap()
    }

    fn reduce_segments(op: &mut ReduceOp<u64, (u64, u64)>) -> Vec<Segment> {
        let mut out = OperatorSnapshots::new(128, 1);
        op.snapshot(&mut out).unwrap();
        let snap = out.finish(None).complete_segmented().unwrap();
        snap.operators.into_iter().next().unwrap().1
    }

    #[test]
    fn reduce_state_is_key_grouped_in_pieces_that_change_with_their_group_only() {
        let mut op = reduce_op(true);
        for i in 0..2000u64 {
            op.push((i % 500, i), 0).unwrap();
        }
        let one = reduce_segments(&mut op);
        // The full format, byte for byte (groups in key group order, entries in map order).
        let plain: FxHashMap<u64, (u64, u64)> = op.state.clone();
        let full = encode_state(&KeyGroupedState::encode(plain.iter(), 128, "r").unwrap(), "r").unwrap();
        assert_eq!(concat(&one), full);
        let groups: std::collections::BTreeSet<u32> =
            (0..500u64).map(|k| assign_to_key_group(key_hash(&k), 128)).collect();
        assert_eq!(one.iter().filter(|s| s.id.is_some()).count(), groups.len());

        // One key updated: its group's piece only.
        op.push((7, 1), 0).unwrap();
        let two = reduce_segments(&mut op);
        let old: Vec<_> = one.iter().filter_map(|s| s.id).collect();
        let new: Vec<_> = two.iter().filter_map(|s| s.id).filter(|id| !old.contains(id)).collect();
        assert_eq!(new.len(), 1);
        assert_eq!(two.iter().filter(|s| s.id.is_some()).count(), groups.len());

        // Restores read the pieces back; the restored operator encodes every group anew.
        let restore = |segs: Vec<Segment>| {
            let snap =
                crate::snapshot::SegmentedSnapshot { source: None, operators: vec![(1, segs)], channels: vec![] };
            OperatorRestore::new(riffle_state::KeyGroupRange { start: 0, end: 127 }, 128, vec![snap.into_full()])
        };
        let mut r = reduce_op(true);
        r.restore(&restore(two.clone())).unwrap();
        let back: FxHashMap<u64, (u64, u64)> = r.state.clone();
        let mut expect = plain.clone();
        expect.get_mut(&7).unwrap().1 += 1;
        assert_eq!(back, expect);
        let three = reduce_segments(&mut r);
        let full = encode_state(&KeyGroupedState::encode(back.iter(), 128, "r").unwrap(), "r").unwrap();
        assert_eq!(concat(&three), full);

        // Not incremental: every snapshot encodes everything anew, nothing is kept.
        let mut op = reduce_op(false);
        op.push((1, 1), 0).unwrap();
        let a = reduce_segments(&mut op);
        let b = reduce_segments(&mut op);
        assert_eq!(concat(&a), concat(&b));
        assert!(a.iter().zip(&b).all(|(x, y)| x.id.is_none() || x.id != y.id));
        assert!(op.pieces.is_empty());
    }

    fn concat(segments: &[Segment]) -> Vec<u8> {
        segments.iter().flat_map(|s| s.bytes.iter().copied()).collect()
    }

    /// A non-keyed process function: a sum per subtask under the key `()`.
    #[derive(Clone)]
    struct SubtaskSum;

    impl KeyedProcessFunction<(), u64, (u64, u64)> for SubtaskSum {
        fn process_element(&mut self, v: u64, ctx: &mut ProcessContext<'_, (), (u64, u64)>) -> Result<(), UserError> {
            let sum = ctx.state().value_state::<u64>("sum")?;
            let n = sum.get(ctx.state())?.copied().unwrap_or(0);
            sum.set(ctx.state(), n + v)?;
            Ok(())
        }
    }

    fn subtask_sum() -> ProcessOp<(), u64, (u64, u64), SubtaskSum> {
        let id = OpId { name: "p".into(), index: 1, marker: crate::link::OperatorMarker::default() };
        let side = SideOutputs::new(Vec::new());
        ProcessOp::new(SubtaskSum, Arc::new(|_| ()), Box::new(Discard), side, id, &BackendConfig::heap()).unwrap()
    }

    fn sum_of(op: &mut ProcessOp<(), u64, (u64, u64), SubtaskSum>) -> Option<u64> {
        let sum = op.core.store.value_state::<u64>("sum").unwrap();
        op.core.store.set_current_key(());
        sum.get(&op.core.store).unwrap().copied()
    }

    #[test]
    fn a_non_keyed_process_restores_its_own_state_whatever_key_group_owns_the_unit_key() {
        let half = |i: u32| riffle_state::KeyGroupRange { start: i * 64, end: i * 64 + 63 };
        let snaps: Vec<_> = [3u64, 4]
            .iter()
            .map(|v| {
                let mut op = subtask_sum();
                op.push(*v, 0).unwrap();
                let mut out = OperatorSnapshots::new(128, 1);
                op.snapshot(&mut out).unwrap();
                out.finish(None).complete_segmented().unwrap().into_full()
            })
            .collect();
        // Same parallelism: each subtask gets its former self's snapshot, and all of it.
        for (i, snap) in snaps.iter().enumerate() {
            let mut op = subtask_sum();
            op.restore(&OperatorRestore::new(half(i as u32), 128, vec![snap.clone()])).unwrap();
            assert_eq!(sum_of(&mut op), Some(3 + i as u64), "subtask {i}");
        }
        // Another parallelism: per-subtask state cannot be dealt out; a clear error, not a loss.
        let mut op = subtask_sum();
        let err =
            op.restore(&OperatorRestore::new(half(0), 128, snaps.clone()).with_rescaled(true)).unwrap_err().to_string();
        assert!(err.contains("cannot be redistributed to another parallelism"), "{err}");
        // Rescaling without any per-subtask state restores nothing and fails nothing.
        let empty = {
            let mut out = OperatorSnapshots::new(128, 1);
            subtask_sum().snapshot(&mut out).unwrap();
            out.finish(None).complete_segmented().unwrap().into_full()
        };
        let mut op = subtask_sum();
        op.restore(&OperatorRestore::new(half(1), 128, vec![empty]).with_rescaled(true)).unwrap();
        assert_eq!(sum_of(&mut op), None);
    }

    #[test]
    fn pieces_concatenate_into_the_full_process_state_byte_for_byte() {
        // One entry per state: the order is fixed, so the bytes must be identical.
        let mut s = KeyedStateStore::<u64>::new();
        let v = s.value_state::<String>("v").unwrap();
        let l = s.list_state::<u32>("l").unwrap();
        s.set_current_key(5);
        v.set(&mut s, "five".into()).unwrap();
        l.add(&mut s, 1).unwrap();
        let old = encode_state(&ProcessState { tables: s.snapshot(128).unwrap(), timers: timers() }, "t").unwrap();
        let segments = process_state_segments(s.snapshot_pieces(128).unwrap(), timers_as_pieces(), "t").unwrap();
        assert_eq!(segments.iter().filter(|s| s.id.is_some()).count(), 3, "one piece per state, one of timers");
        assert_eq!(concat(&segments), old);

        // Many entries, a restored state never registered again: the same state, in another
        // order, readable by the restore path.
        for k in 0..300u64 {
            s.set_current_key(k);
            v.set(&mut s, format!("v{k}")).unwrap();
        }
        let mut r = KeyedStateStore::<u64>::new();
        r.restore(s.snapshot(128).unwrap(), riffle_state::KeyGroupRange { start: 0, end: 127 }).unwrap();
        let v2 = r.value_state::<String>("v").unwrap();
        r.set_current_key(1);
        v2.set(&mut r, "one".into()).unwrap();
        let old = ProcessState { tables: r.snapshot(128).unwrap(), timers: timers() };
        let bytes = concat(&process_state_segments(r.snapshot_pieces(128).unwrap(), timers_as_pieces(), "t").unwrap());
        assert_eq!(bytes.len(), encode_state(&old, "t").unwrap().len());
        let mut back: ProcessState = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back.timers, old.timers);
        assert_eq!(back.tables.len(), 2);
        for (a, b) in back.tables.iter_mut().zip(old.tables) {
            a.entries.sort();
            let mut e = b.entries;
            e.sort();
            assert_eq!((&a.name, &a.entries), (&b.name, &e));
        }
    }

    /// Sums per key in memory only, written into keyed state by `snapshot_state`.
    #[derive(Clone, Default)]
    struct InMemorySums(std::collections::BTreeMap<u64, u64>);

    impl KeyedProcessFunction<u64, u64, (u64, u64)> for InMemorySums {
        fn process_element(&mut self, v: u64, ctx: &mut ProcessContext<'_, u64, (u64, u64)>) -> Result<(), UserError> {
            *self.0.entry(*ctx.key()).or_insert(0) += v;
            Ok(())
        }
        fn snapshot_state(&mut self, state: &mut KeyedStateStore<u64>) -> Result<(), UserError> {
            let sum = state.value_state::<u64>("sum")?;
            for (k, v) in &self.0 {
                state.try_set_current_key(*k)?;
                sum.set(state, *v)?;
            }
            Ok(())
        }
    }

    #[test]
    fn a_function_writes_its_in_memory_state_into_keyed_state_at_each_snapshot() {
        let op = |backend: &BackendConfig| {
            let id = OpId { name: "m".into(), index: 1, marker: crate::link::OperatorMarker::default() };
            let side = SideOutputs::new(Vec::new());
            ProcessOp::new(InMemorySums::default(), Arc::new(|v: &u64| v % 3), Box::new(Discard), side, id, backend)
                .unwrap()
        };
        let mut a = op(&BackendConfig::heap());
        for v in 0..10u64 {
            a.push(v, 0).unwrap();
        }
        let mut out = OperatorSnapshots::new(128, 1);
        a.snapshot(&mut out).unwrap();
        let snap = out.finish(None).complete_segmented().unwrap().into_full();
        let mut b = op(&BackendConfig::heap());
        b.restore(&OperatorRestore::new(riffle_state::KeyGroupRange { start: 0, end: 127 }, 128, vec![snap])).unwrap();
        let sum = b.core.store.value_state::<u64>("sum").unwrap();
        let got: Vec<Option<u64>> = (0..4u64)
            .map(|k| {
                b.core.store.set_current_key(k);
                sum.get(&b.core.store).unwrap().copied()
            })
            .collect();
        assert_eq!(got, vec![Some(18), Some(12), Some(15), None]);
    }
}
