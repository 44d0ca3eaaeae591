//! The window operator: assigns keyed records to time windows, keeps a per-(key, window)
//! accumulator, and fires windows when event time (or the clock) passes their end.
//!
//! Semantics follow Flink's `WindowOperator` with the default triggers: a window fires once
//! when the watermark reaches its max timestamp; with allowed lateness its state lives on
//! until `max_timestamp + lateness`, and every late record re-fires it; records later than
//! that are dropped or sent to the late-data side output. Session windows merge.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rustc_hash::FxHashMap;

use riffle_state::{
    BackendConfig, KeyGroupRange, KeyedStateStore, StateError, StateKey, StateSnapshot, TimeDomain, TimerService,
};

use super::OpId;
use crate::error::{TaskError, TaskResult, UserError};
use crate::functions::{min_time, SideOutputs};
use crate::link::Input;
use crate::metrics::LocalCounter;
use crate::record::NO_TIMESTAMP;
use crate::snapshot::{
    encode_state, encode_state_sized, msgpack_array_header, KeyGroupedState, KeyGroupedWriter, OperatorRestore,
    OperatorSnapshots, Segment,
};
use crate::window::{
    AggregateFunction, ProcessWindowContext, ProcessWindowFunction, RichProcessWindowFunction, TimeWindow,
    WindowAssigner, WindowContext, WindowKey, WindowTime,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Where a window function's `emit` writes: the results (timestamped by the operator), the
/// side outputs, and the operator's identity and watermark.
pub struct Emit<'a, O> {
    pub(crate) out: &'a mut dyn FnMut(O),
    pub(crate) side: &'a mut SideOutputs,
    pub(crate) id: &'a OpId,
    pub(crate) watermark: i64,
}

impl<O> Emit<'_, O> {
    #[inline]
    fn collect(&mut self, value: O) {
        (self.out)(value)
    }
}

/// How a window's records become results: incremental (reduce, aggregate) or all at once
/// (process), plain or rich (with state and a purge hook).
pub trait WindowFn<K, T, O>: Send + Sync + 'static {
    /// What is kept per (key, window); serializable because it is checkpointed.
    type Acc: Clone + Send + Serialize + DeserializeOwned + 'static;
    /// What a subtask keeps besides the accumulators: `()` for plain functions; a rich
    /// function's own copy and its state stores.
    type Local: WindowLocal<K>;
    /// Whether [`WindowFn::purge`] does anything (a constant: plain functions pay nothing).
    const PURGES: bool = false;
    /// The subtask's [`WindowFn::Local`] (opens a rich function).
    fn local(&self, backend: &BackendConfig, id: &OpId, merging: bool) -> Result<Self::Local, TaskError>;
    /// Adds a record to a window's accumulator (`None` for a new window).
    fn add(&self, acc: Option<Self::Acc>, value: T) -> Result<Self::Acc, UserError>;
    /// Combines the accumulators of merging windows.
    fn merge(&self, a: Self::Acc, b: Self::Acc) -> Result<Self::Acc, UserError>;
    /// Emits the results of a firing window.
    fn emit(
        &self,
        local: &mut Self::Local,
        key: &K,
        window: TimeWindow,
        acc: &Self::Acc,
        out: &mut Emit<'_, O>,
    ) -> TaskResult;
    /// Window `window` of `key` is purged (end plus allowed lateness): clean up its state.
    fn purge(&self, _local: &mut Self::Local, _key: &K, _window: TimeWindow, _out: &mut Emit<'_, O>) -> TaskResult {
        Ok(())
    }
}

/// The part of a window function's subtask state that is not accumulators.
pub trait WindowLocal<K> {
    /// Its snapshot (`None` when it has none); `live` tells which (key, window) still exist.
    fn snapshot(
        &mut self,
        max_parallelism: u32,
        live: &mut dyn FnMut(&K, &TimeWindow) -> bool,
    ) -> Result<Option<RichWindowState>, StateError>;
    /// Restores the key groups in `range` of what [`WindowLocal::snapshot`] took.
    fn restore(&mut self, state: RichWindowState, range: KeyGroupRange) -> Result<(), StateError>;
}

impl<K> WindowLocal<K> for () {
    fn snapshot(
        &mut self,
        _: u32,
        _: &mut dyn FnMut(&K, &TimeWindow) -> bool,
    ) -> Result<Option<RichWindowState>, StateError> {
        Ok(None)
    }
    fn restore(&mut self, _: RichWindowState, _: KeyGroupRange) -> Result<(), StateError> {
        Ok(())
    }
}

/// A rich window function's keyed state in a snapshot: per (key, window) and per key.
#[derive(Serialize, Deserialize)]
pub struct RichWindowState {
    window: Vec<StateSnapshot>,
    global: Vec<StateSnapshot>,
}

/// `reduce` over a window.
pub struct ReduceWindow<T>(pub(crate) Arc<dyn Fn(T, T) -> T + Send + Sync>);

impl<K, T: Clone + Send + Serialize + DeserializeOwned + 'static> WindowFn<K, T, T> for ReduceWindow<T> {
    type Acc = T;
    type Local = ();
    fn local(&self, _: &BackendConfig, _: &OpId, _: bool) -> Result<(), TaskError> {
        Ok(())
    }
    fn add(&self, acc: Option<T>, value: T) -> Result<T, UserError> {
        Ok(match acc {
            Some(a) => (self.0)(a, value),
            None => value,
        })
    }
    fn merge(&self, a: T, b: T) -> Result<T, UserError> {
        Ok((self.0)(a, b))
    }
    fn emit(&self, _: &mut (), _: &K, _: TimeWindow, acc: &T, out: &mut Emit<'_, T>) -> TaskResult {
        out.collect(acc.clone());
        Ok(())
    }
}

/// `aggregate` over a window.
pub struct AggregateWindow<F, A> {
    pub(crate) f: Arc<F>,
    pub(crate) _a: std::marker::PhantomData<fn() -> A>,
}

impl<K, T, A: Clone + Send + Serialize + DeserializeOwned + 'static, O, F: AggregateFunction<T, A, O>> WindowFn<K, T, O>
    for AggregateWindow<F, A>
{
    type Acc = A;
    type Local = ();
    fn local(&self, _: &BackendConfig, _: &OpId, _: bool) -> Result<(), TaskError> {
        Ok(())
    }
    #[inline]
    fn add(&self, acc: Option<A>, value: T) -> Result<A, UserError> {
        let acc = match acc {
            Some(a) => a,
            None => self.f.create_accumulator(),
        };
        Ok(self.f.add(value, acc))
    }
    fn merge(&self, a: A, b: A) -> Result<A, UserError> {
        Ok(self.f.merge(a, b))
    }
    fn emit(&self, _: &mut (), _: &K, _: TimeWindow, acc: &A, out: &mut Emit<'_, O>) -> TaskResult {
        out.collect(self.f.get_result(acc));
        Ok(())
    }
}

/// An incremental window function whose result is shaped with the key and the window
/// (Flink's `aggregate(AggregateFunction, WindowFunction)`, and `reduce` likewise).
pub struct WithWindow<Inner, F, R> {
    pub(crate) inner: Inner,
    pub(crate) shape: Arc<F>,
    pub(crate) _r: std::marker::PhantomData<fn() -> R>,
}

impl<K, T, R, O, Inner, F> WindowFn<K, T, O> for WithWindow<Inner, F, R>
where
    Inner: WindowFn<K, T, R>,
    F: Fn(&K, &TimeWindow, R) -> O + Send + Sync + 'static,
    R: 'static,
    O: 'static,
    K: 'static,
    T: 'static,
{
    type Acc = Inner::Acc;
    type Local = Inner::Local;
    fn local(&self, backend: &BackendConfig, id: &OpId, merging: bool) -> Result<Self::Local, TaskError> {
        self.inner.local(backend, id, merging)
    }
    #[inline]
    fn add(&self, acc: Option<Self::Acc>, value: T) -> Result<Self::Acc, UserError> {
        self.inner.add(acc, value)
    }
    fn merge(&self, a: Self::Acc, b: Self::Acc) -> Result<Self::Acc, UserError> {
        self.inner.merge(a, b)
    }
    fn emit(
        &self,
        local: &mut Self::Local,
        key: &K,
        window: TimeWindow,
        acc: &Self::Acc,
        out: &mut Emit<'_, O>,
    ) -> TaskResult {
        let shape = &self.shape;
        let Emit { out: sink, side, id, watermark } = out;
        let mut shaped = |r: R| (**sink)(shape(key, &window, r));
        let mut inner = Emit { out: &mut shaped, side, id, watermark: *watermark };
        self.inner.emit(local, key, window, acc, &mut inner)
    }
}

/// `process` over a window: all records are kept until it fires.
pub struct ProcessWindow<P>(pub(crate) Arc<P>);

impl<K, T: Clone + Send + Serialize + DeserializeOwned + 'static, O, P: ProcessWindowFunction<K, T, O>>
    WindowFn<K, T, O> for ProcessWindow<P>
{
    type Acc = Vec<T>;
    type Local = ();
    fn local(&self, _: &BackendConfig, _: &OpId, _: bool) -> Result<(), TaskError> {
        Ok(())
    }
    fn add(&self, acc: Option<Vec<T>>, value: T) -> Result<Vec<T>, UserError> {
        Ok(append(acc, value))
    }
    fn merge(&self, a: Vec<T>, b: Vec<T>) -> Result<Vec<T>, UserError> {
        Ok(concat(a, b))
    }
    fn emit(&self, _: &mut (), key: &K, window: TimeWindow, acc: &Vec<T>, out: &mut Emit<'_, O>) -> TaskResult {
        let ctx = WindowContext { key, window, current_watermark: out.watermark };
        self.0.process(&ctx, acc, &mut *out.out).map_err(|e| out.id.err(e))
    }
}

/// What a [`RichProcessWindowFunction`] gets of a window: all its records, or the one
/// result of an incremental function.
pub trait WindowContents<T, R>: Send + Sync + 'static {
    /// What is kept per (key, window).
    type Acc: Clone + Send + Serialize + DeserializeOwned + 'static;
    /// Adds a record (`None` for a new window).
    fn add(&self, acc: Option<Self::Acc>, value: T) -> Result<Self::Acc, UserError>;
    /// Combines the accumulators of merging windows.
    fn merge(&self, a: Self::Acc, b: Self::Acc) -> Result<Self::Acc, UserError>;
    /// Calls `f` with the window's elements.
    fn with_elements<X>(&self, acc: &Self::Acc, f: impl FnOnce(&[R]) -> X) -> X;
}

/// A window that keeps all its records gets one more.
fn append<T>(acc: Option<Vec<T>>, value: T) -> Vec<T> {
    let mut v = acc.unwrap_or_default();
    v.push(value);
    v
}

/// The records of two merging windows.
fn concat<T>(mut a: Vec<T>, mut b: Vec<T>) -> Vec<T> {
    a.append(&mut b);
    a
}

/// All of a window's records.
pub struct AllElements;

impl<T: Clone + Send + Serialize + DeserializeOwned + 'static> WindowContents<T, T> for AllElements {
    type Acc = Vec<T>;
    fn add(&self, acc: Option<Vec<T>>, value: T) -> Result<Vec<T>, UserError> {
        Ok(append(acc, value))
    }
    fn merge(&self, a: Vec<T>, b: Vec<T>) -> Result<Vec<T>, UserError> {
        Ok(concat(a, b))
    }
    fn with_elements<X>(&self, acc: &Vec<T>, f: impl FnOnce(&[T]) -> X) -> X {
        f(acc)
    }
}

impl<T: Clone + Send + Serialize + DeserializeOwned + 'static> WindowContents<T, T> for ReduceWindow<T> {
    type Acc = T;
    #[inline]
    fn add(&self, acc: Option<T>, value: T) -> Result<T, UserError> {
        <Self as WindowFn<(), T, T>>::add(self, acc, value)
    }
    fn merge(&self, a: T, b: T) -> Result<T, UserError> {
        <Self as WindowFn<(), T, T>>::merge(self, a, b)
    }
    fn with_elements<X>(&self, acc: &T, f: impl FnOnce(&[T]) -> X) -> X {
        f(std::slice::from_ref(acc))
    }
}

impl<
        T: 'static,
        A: Clone + Send + Serialize + DeserializeOwned + 'static,
        O: 'static,
        F: AggregateFunction<T, A, O>,
    > WindowContents<T, O> for AggregateWindow<F, A>
{
    type Acc = A;
    #[inline]
    fn add(&self, acc: Option<A>, value: T) -> Result<A, UserError> {
        <Self as WindowFn<(), T, O>>::add(self, acc, value)
    }
    fn merge(&self, a: A, b: A) -> Result<A, UserError> {
        <Self as WindowFn<(), T, O>>::merge(self, a, b)
    }
    fn with_elements<X>(&self, acc: &A, f: impl FnOnce(&[O]) -> X) -> X {
        let r = self.f.get_result(acc);
        f(std::slice::from_ref(&r))
    }
}

/// A [`RichProcessWindowFunction`] over a window's contents `C` (all records, or an
/// incremental result).
pub struct RichWindow<C, F, R> {
    pub(crate) contents: C,
    pub(crate) f: F,
    pub(crate) _r: std::marker::PhantomData<fn() -> R>,
}

/// A rich window function's subtask part: its own copy, and its state per (key, window) and
/// per key.
pub struct RichLocal<K, F> {
    f: F,
    window_state: KeyedStateStore<WindowKey<K>>,
    global_state: KeyedStateStore<K>,
    merging: bool,
}

impl<K: StateKey, F> RichLocal<K, F> {
    /// Runs `run` with a context for window `window` of `key`.
    fn call<O>(
        &mut self,
        key: &K,
        window: TimeWindow,
        out: &mut Emit<'_, O>,
        run: impl FnOnce(&mut F, &mut ProcessWindowContext<'_, K, O>) -> Result<(), UserError>,
    ) -> TaskResult {
        let mut ctx = ProcessWindowContext {
            key,
            window,
            watermark: out.watermark,
            merging: self.merging,
            window_state: &mut self.window_state,
            window_key_set: false,
            global_state: &mut self.global_state,
            global_key_set: false,
            out: &mut *out.out,
            side: &mut *out.side,
            error: None,
        };
        let r = run(&mut self.f, &mut ctx);
        if let Some(e) = ctx.error.take() {
            return Err(e);
        }
        r.map_err(|e| out.id.err(e))
    }
}

impl<K: StateKey, F> WindowLocal<K> for RichLocal<K, F> {
    fn snapshot(
        &mut self,
        max_parallelism: u32,
        live: &mut dyn FnMut(&K, &TimeWindow) -> bool,
    ) -> Result<Option<RichWindowState>, StateError> {
        self.window_state.retain_unregistered(|wk| live(&wk.key, &wk.window));
        Ok(Some(RichWindowState {
            window: self.window_state.snapshot(max_parallelism)?,
            global: self.global_state.snapshot(max_parallelism)?,
        }))
    }
    fn restore(&mut self, state: RichWindowState, range: KeyGroupRange) -> Result<(), StateError> {
        self.window_state.restore(state.window, range)?;
        self.global_state.restore(state.global, range)
    }
}

impl<K, T, R, O, C, F> WindowFn<K, T, O> for RichWindow<C, F, R>
where
    K: StateKey,
    T: 'static,
    R: 'static,
    O: 'static,
    C: WindowContents<T, R>,
    F: RichProcessWindowFunction<K, R, O>,
{
    type Acc = C::Acc;
    type Local = RichLocal<K, F>;
    const PURGES: bool = true;
    fn local(&self, backend: &BackendConfig, id: &OpId, merging: bool) -> Result<Self::Local, TaskError> {
        let mut f = self.f.clone();
        id.enter();
        f.open().map_err(|e| id.err(e))?;
        let window_state = KeyedStateStore::with_backend(backend.clone()).map_err(|e| TaskError::new(&id.name, &e))?;
        let global_state = KeyedStateStore::with_backend(backend.clone()).map_err(|e| TaskError::new(&id.name, &e))?;
        Ok(RichLocal { f, window_state, global_state, merging })
    }
    #[inline]
    fn add(&self, acc: Option<Self::Acc>, value: T) -> Result<Self::Acc, UserError> {
        self.contents.add(acc, value)
    }
    fn merge(&self, a: Self::Acc, b: Self::Acc) -> Result<Self::Acc, UserError> {
        self.contents.merge(a, b)
    }
    fn emit(
        &self,
        local: &mut Self::Local,
        key: &K,
        window: TimeWindow,
        acc: &Self::Acc,
        out: &mut Emit<'_, O>,
    ) -> TaskResult {
        self.contents.with_elements(acc, |els| local.call(key, window, out, |f, ctx| f.process(els, ctx)))
    }
    fn purge(&self, local: &mut Self::Local, key: &K, window: TimeWindow, out: &mut Emit<'_, O>) -> TaskResult {
        local.call(key, window, out, |f, ctx| f.clear(ctx))?;
        if !local.merging {
            local.window_state.set_current_key(WindowKey { key: key.clone(), window });
            local.window_state.clear_current_key().map_err(|e| TaskError::new(&out.id.name, &e))?;
        }
        Ok(())
    }
}

/// The window operator.
pub struct WindowOp<K, T, O, W: WindowFn<K, T, O>> {
    pub(crate) wf: Arc<W>,
    /// The function's subtask part (`()` unless it is rich).
    pub(crate) local: W::Local,
    pub(crate) assigner: WindowAssigner,
    pub(crate) lateness: i64,
    pub(crate) late_tag: Option<String>,
    pub(crate) key_of: Arc<dyn Fn(&T) -> K + Send + Sync>,
    /// Accumulators window by window: a checkpoint re-encodes only the windows that changed
    /// since the previous one (the others' encodings are in `encoded`).
    pub(crate) state: FxHashMap<TimeWindow, WindowSlot<K, W::Acc>>,
    /// Snapshots taken so far; a change in a window records the current value.
    pub(crate) epoch: u64,
    /// Each window's latest encoding and the snapshot it was taken for (non-merging only).
    pub(crate) encoded: EncodedWindows,
    pub(crate) sessions: FxHashMap<K, Vec<TimeWindow>>,
    pub(crate) timers: TimerService<K, TimeWindow>,
    pub(crate) watermark: i64,
    pub(crate) next: Box<dyn Input<O>>,
    pub(crate) side: SideOutputs,
    pub(crate) id: OpId,
    pub(crate) scratch: Vec<TimeWindow>,
    /// Records dropped as too late with no side output to take them.
    pub(crate) dropped_late: LocalCounter,
}

impl<K: StateKey, T: Clone + 'static, O: 'static, W: WindowFn<K, T, O>> WindowOp<K, T, O, W> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        wf: Arc<W>,
        local: W::Local,
        assigner: WindowAssigner,
        lateness: i64,
        late_tag: Option<String>,
        key_of: Arc<dyn Fn(&T) -> K + Send + Sync>,
        next: Box<dyn Input<O>>,
        side: SideOutputs,
        id: OpId,
        dropped_late: LocalCounter,
    ) -> Self {
        Self {
            wf,
            local,
            assigner,
            lateness: lateness.max(0),
            late_tag,
            key_of,
            state: FxHashMap::default(),
            epoch: 0,
            encoded: EncodedWindows::default(),
            sessions: FxHashMap::default(),
            // Timers are registered once per new window state (and deleted explicitly when
            // sessions merge), so no deduplication is needed.
            timers: TimerService::without_dedup(),
            watermark: i64::MIN,
            next,
            side,
            id,
            scratch: Vec::with_capacity(4),
            dropped_late,
        }
    }

    fn event_time(&self) -> bool {
        self.assigner.time() == WindowTime::Event
    }

    fn domain(&self) -> TimeDomain {
        if self.event_time() {
            TimeDomain::EventTime
        } else {
            TimeDomain::ProcessingTime
        }
    }

    fn cleanup_time(&self, w: &TimeWindow) -> i64 {
        if self.event_time() {
            w.max_timestamp().saturating_add(self.lateness)
        } else {
            w.max_timestamp()
        }
    }

    fn is_window_late(&self, w: &TimeWindow) -> bool {
        self.event_time() && self.cleanup_time(w) <= self.watermark
    }

    /// A new window's timers: its end (unless the watermark passed it already: such a late
    /// window fires at once and must not fire again at the next watermark, as Flink's
    /// `EventTimeTrigger.onElement`/`onMerge`) and, with allowed lateness, its cleanup.
    fn register_timers(&mut self, key: &K, w: TimeWindow) {
        let d = self.domain();
        if d == TimeDomain::ProcessingTime || w.max_timestamp() > self.watermark {
            self.timers.register(d, w.max_timestamp(), key.clone(), w);
        }
        let c = self.cleanup_time(&w);
        if c != w.max_timestamp() {
            self.timers.register(d, c, key.clone(), w);
        }
    }

    /// The timers window `w` of `key` still has after a snapshot taken at `watermark`: the
    /// ones `register_timers` set that had not fired by then (an event-time timer fires once
    /// the watermark reaches it; processing-time timers past due fire at once on restore).
    fn restore_timers(&mut self, key: K, w: TimeWindow, watermark: i64) {
        let d = self.domain();
        let pending = |ts: i64| d == TimeDomain::ProcessingTime || ts > watermark;
        let end = w.max_timestamp();
        let c = self.cleanup_time(&w);
        if c != end && pending(c) {
            self.timers.register(d, c, key.clone(), w);
        }
        if pending(end) {
            self.timers.register(d, end, key, w);
        }
    }

    fn delete_timers(&mut self, key: &K, w: TimeWindow) {
        let d = self.domain();
        self.timers.delete(d, w.max_timestamp(), key, &w);
        let c = self.cleanup_time(&w);
        self.timers.delete(d, c, key, &w);
    }

    /// Removes `key`'s accumulator of window `w` (and the window once it holds no key).
    fn remove_acc(&mut self, key: &K, w: TimeWindow) -> Option<W::Acc> {
        let slot = self.state.get_mut(&w)?;
        let acc = slot.entries.remove(key).flatten();
        slot.modified = self.epoch;
        if slot.entries.is_empty() {
            self.state.remove(&w);
        }
        acc
    }

    fn insert_acc(&mut self, key: K, w: TimeWindow, acc: W::Acc) {
        let slot = self.state.entry(w).or_default();
        slot.modified = self.epoch;
        slot.entries.insert(key, Some(acc));
    }

    fn fire(&mut self, key: &K, w: TimeWindow) -> TaskResult {
        let Some(Some(acc)) = self.state.get(&w).and_then(|s| s.entries.get(key)) else { return Ok(()) };
        let (wf, local) = (&self.wf, &mut self.local);
        Self::emitting(&mut self.next, &mut self.side, &self.id, self.watermark, w, |out| {
            wf.emit(local, key, w, acc, out)
        })
    }

    fn emit(&mut self, key: &K, w: TimeWindow, acc: &W::Acc) -> TaskResult {
        let (wf, local) = (&self.wf, &mut self.local);
        Self::emitting(&mut self.next, &mut self.side, &self.id, self.watermark, w, |out| {
            wf.emit(local, key, w, acc, out)
        })
    }

    /// Window `w` of `key` is purged: a rich function's `clear` hook runs and its state of
    /// the window goes (nothing for plain functions).
    fn purge(&mut self, key: &K, w: TimeWindow) -> TaskResult {
        if !W::PURGES {
            return Ok(());
        }
        let (wf, local) = (&self.wf, &mut self.local);
        Self::emitting(&mut self.next, &mut self.side, &self.id, self.watermark, w, |out| wf.purge(local, key, w, out))
    }

    /// Runs `f` with an [`Emit`] whose results go downstream stamped with `w`'s max timestamp.
    #[inline]
    fn emitting(
        next: &mut Box<dyn Input<O>>,
        side: &mut SideOutputs,
        id: &OpId,
        watermark: i64,
        w: TimeWindow,
        f: impl FnOnce(&mut Emit<'_, O>) -> TaskResult,
    ) -> TaskResult {
        let mut err = None;
        let ts = w.max_timestamp();
        id.enter();
        let mut push = |o| {
            if err.is_none() {
                if let Err(e) = next.push(o, ts) {
                    err = Some(e);
                }
            }
        };
        let r = f(&mut Emit { out: &mut push, side, id, watermark });
        if let Some(e) = err {
            return Err(e);
        }
        r
    }

    /// Adds `value` to window `w` of `key`; fires at once if the window is already past its
    /// end (a late record within the allowed lateness).
    fn add_to_window(&mut self, key: &K, w: TimeWindow, value: T) -> TaskResult {
        self.id.enter();
        let window = self.state.entry(w).or_default();
        window.modified = self.epoch;
        let slot = window.entries.entry(key.clone()).or_insert(None);
        let is_new = slot.is_none();
        let acc = slot.take();
        match self.wf.add(acc, value) {
            Ok(a) => *slot = Some(a),
            Err(e) => return Err(self.id.err(e)),
        }
        if is_new {
            self.register_timers(key, w);
        }
        if self.event_time() && w.max_timestamp() <= self.watermark {
            self.fire(key, w)?;
        }
        Ok(())
    }

    fn late_record(&mut self, value: T, timestamp: i64) -> TaskResult {
        match &self.late_tag {
            Some(tag) => {
                let tag = tag.clone();
                self.side.emit(&tag, value, timestamp)
            }
            None => {
                self.dropped_late.add(1);
                Ok(())
            }
        }
    }

    fn push_merging(&mut self, key: K, w: TimeWindow, value: T, timestamp: i64) -> TaskResult {
        let actives = self.sessions.get(&key).cloned().unwrap_or_default();
        let mut merged = w;
        let mut absorbed = Vec::new();
        let mut kept = Vec::with_capacity(actives.len() + 1);
        for a in actives {
            if a.intersects(&w) {
                merged = merged.cover(&a);
                absorbed.push(a);
            } else {
                kept.push(a);
            }
        }
        if self.is_window_late(&merged) {
            return if self.event_time() && timestamp.saturating_add(self.lateness) <= self.watermark {
                self.late_record(value, timestamp)
            } else {
                Ok(())
            };
        }
        if !(absorbed.len() == 1 && absorbed[0] == merged) {
            let mut acc: Option<W::Acc> = None;
            for a in &absorbed {
                self.delete_timers(&key, *a);
                if let Some(s) = self.remove_acc(&key, *a) {
                    acc = Some(match acc {
                        None => s,
                        Some(prev) => self.wf.merge(prev, s).map_err(|e| self.id.err(e))?,
                    });
                }
            }
            if let Some(acc) = acc {
                self.insert_acc(key.clone(), merged, acc);
                self.register_timers(&key, merged);
            }
        }
        kept.push(merged);
        self.sessions.insert(key.clone(), kept);
        self.add_to_window(&key, merged, value)
    }

    fn on_timer(&mut self, key: K, w: TimeWindow, ts: i64) -> TaskResult {
        if ts == w.max_timestamp() && ts == self.cleanup_time(&w) && !self.assigner.is_merging() {
            // Fire and purge in one map operation (no allowed lateness).
            if let Some(acc) = self.remove_acc(&key, w) {
                self.emit(&key, w, &acc)?;
                return self.purge(&key, w);
            }
            return Ok(());
        }
        if ts == w.max_timestamp() {
            self.fire(&key, w)?;
        }
        if ts == self.cleanup_time(&w) {
            if self.remove_acc(&key, w).is_some() {
                self.purge(&key, w)?;
            }
            if self.assigner.is_merging() {
                if let Some(v) = self.sessions.get_mut(&key) {
                    v.retain(|a| *a != w);
                    if v.is_empty() {
                        self.sessions.remove(&key);
                    }
                }
            }
        }
        Ok(())
    }
}

impl<K: StateKey, T: Clone + 'static, O: 'static, W: WindowFn<K, T, O>> Input<T> for WindowOp<K, T, O, W> {
    fn push(&mut self, value: T, timestamp: i64) -> TaskResult {
        let at = if self.event_time() {
            if timestamp == NO_TIMESTAMP {
                return Err(TaskError::msg(
                    &self.id.name,
                    "record has no event timestamp: an event-time window needs timestamps \
                     (use assign_timestamps_and_watermarks before it)",
                ));
            }
            timestamp
        } else {
            crate::time::now_ms()
        };
        self.id.enter();
        let key = (self.key_of)(&value);
        if let WindowAssigner::Tumbling { size, offset, .. } = self.assigner {
            // One window per record: no scratch list.
            let start = at - (at - offset).rem_euclid(size);
            let w = TimeWindow { start, end: start + size };
            if self.is_window_late(&w) {
                return if self.event_time() && timestamp.saturating_add(self.lateness) <= self.watermark {
                    self.late_record(value, timestamp)
                } else {
                    Ok(())
                };
            }
            return self.add_to_window(&key, w, value);
        }
        self.scratch.clear();
        self.assigner.assign(at, &mut self.scratch);
        if self.assigner.is_merging() {
            let w = self.scratch[0];
            return self.push_merging(key, w, value, timestamp);
        }
        let windows = std::mem::take(&mut self.scratch);
        let last_live = windows.iter().rposition(|w| !self.is_window_late(w));
        let result = match last_live {
            None => {
                if self.event_time() && timestamp.saturating_add(self.lateness) <= self.watermark {
                    self.late_record(value, timestamp)
                } else {
                    Ok(())
                }
            }
            Some(last) => {
                let mut value = Some(value);
                let mut r = Ok(());
                for (i, w) in windows.iter().enumerate().take(last + 1) {
                    if self.is_window_late(w) {
                        continue;
                    }
                    let v = if i == last { value.take() } else { value.clone() };
                    if let Some(v) = v {
                        r = self.add_to_window(&key, *w, v);
                        if r.is_err() {
                            break;
                        }
                    }
                }
                r
            }
        };
        self.scratch = windows;
        result
    }

    fn watermark(&mut self, watermark: i64) -> TaskResult {
        if watermark <= self.watermark {
            return Ok(());
        }
        self.watermark = watermark;
        if self.event_time() {
            while let Some(t) = self.timers.pop_due(TimeDomain::EventTime, watermark) {
                self.on_timer(t.key, t.namespace, t.timestamp)?;
            }
        }
        self.side.watermark(watermark)?;
        self.next.watermark(watermark)
    }

    fn idle(&mut self, idle: bool) -> TaskResult {
        self.side.idle(idle)?;
        self.next.idle(idle)
    }

    fn end_input(&mut self) -> TaskResult {
        self.dropped_late.publish();
        self.side.end_input()?;
        self.next.end_input()
    }

    fn processing_time(&mut self, now: i64) -> TaskResult {
        if !self.event_time() {
            while let Some(t) = self.timers.pop_due(TimeDomain::ProcessingTime, now) {
                self.on_timer(t.key, t.namespace, t.timestamp)?;
            }
        }
        self.side.processing_time(now)?;
        self.next.processing_time(now)
    }

    fn next_processing_time(&self) -> Option<i64> {
        let own = min_time(self.timers.next_timer(TimeDomain::ProcessingTime), self.side.next_processing_time());
        min_time(own, self.next.next_processing_time())
    }

    fn snapshot(&mut self, out: &mut OperatorSnapshots) -> TaskResult {
        // Synchronous part: a copy of the windows that changed since their last encoding;
        // encoding happens off the subtask's thread.
        let (mp, name) = (out.max_parallelism, self.id.name.clone());
        let merging = self.assigner.is_merging();
        let snapshot = self.epoch + 1;
        self.epoch = snapshot;
        let mut windows: Vec<(TimeWindow, WindowPart<K, W::Acc>)> = Vec::with_capacity(self.state.len());
        {
            let mut encoded = self.encoded.lock();
            encoded.retain(|w, _| self.state.contains_key(w));
            for (w, slot) in &self.state {
                match encoded.get(w) {
                    Some((at, segment)) if !merging && slot.modified < *at => {
                        windows.push((*w, WindowPart::Encoded(segment.clone())));
                    }
                    _ => {
                        // Sized up front: a collected `filter_map` would grow by doubling.
                        let mut live: Vec<(K, W::Acc)> = Vec::with_capacity(slot.entries.len());
                        live.extend(
                            slot.entries.iter().filter_map(|(k, a)| a.as_ref().map(|a| (k.clone(), a.clone()))),
                        );
                        windows.push((*w, WindowPart::Copied(live)));
                    }
                }
            }
        }
        // Windows that never merge have exactly the timers their state implies (see
        // `restore`): only merging windows snapshot theirs.
        let timers = if merging { self.timers.snapshot() } else { Vec::new() };
        let sessions = self.sessions.clone();
        let watermark = self.watermark;
        let cache = self.encoded.clone();
        let live_state = &self.state;
        let rich = self
            .local
            .snapshot(mp, &mut |k, w| live_state.get(w).is_some_and(|s| s.entries.get(k).is_some_and(Option::is_some)))
            .map_err(|e| TaskError::new(&name, &e))?;
        out.put_deferred_segments(
            self.id.index,
            Box::new(move || {
                // The state is `WindowStateOut` in MessagePack: an array of its five fields,
                // the first an array of `(window, entries)` elements. Each element is a piece
                // of its own, kept for the windows that do not change, so an incremental
                // checkpoint writes only the windows that changed.
                let mut head = msgpack_array_header(5);
                head.extend(msgpack_array_header(windows.len()));
                let mut segments = Vec::with_capacity(windows.len() + 2);
                segments.push(Segment::fresh(head));
                let mut fresh = Vec::new();
                let mut writer = KeyGroupedWriter::default();
                for (w, part) in windows {
                    let segment = match part {
                        WindowPart::Encoded(s) => s,
                        WindowPart::Copied(live) => {
                            // `(window, KeyGroupedState)`, written in one buffer.
                            let mut bytes = Vec::with_capacity(32);
                            bytes.extend_from_slice(&msgpack_array_header(2));
                            rmp_serde::encode::write(&mut bytes, &w)
                                .map_err(|e| TaskError::msg(&name, format!("cannot snapshot state: {e}")))?;
                            writer.write(live.iter().map(|(k, a)| (k, a)), mp, &name, &mut bytes)?;
                            drop(live);
                            let s = Segment { id: Some(cache.next_id()), bytes: Arc::new(bytes) };
                            fresh.push((w, s.clone()));
                            s
                        }
                    };
                    segments.push(segment);
                }
                if !merging {
                    let mut encoded = cache.lock();
                    for (w, s) in fresh {
                        let newer = encoded.get(&w).is_some_and(|(at, _)| *at > snapshot);
                        if !newer {
                            encoded.insert(w, (snapshot, s));
                        }
                    }
                }
                let timers = KeyGroupedState::encode(timers.iter().map(|(d, ts, k, w)| (k, (*d, *ts, *w))), mp, &name)?;
                let sessions = KeyGroupedState::encode(sessions.iter(), mp, &name)?;
                let mut tail = encode_state_sized(&timers, &name, timers.byte_len())?;
                tail.extend(encode_state_sized(&sessions, &name, sessions.byte_len())?);
                tail.extend(encode_state(&watermark, &name)?);
                tail.extend(encode_state(&rich, &name)?);
                segments.push(Segment::fresh(tail));
                Ok(segments)
            }),
        );
        self.side.snapshot(out)?;
        self.next.snapshot(out)
    }

    fn restore(&mut self, from: &OperatorRestore) -> TaskResult {
        let name = self.id.name.clone();
        let states = from.get::<WindowStateIn>(self.id.index, &name)?;
        for WindowStateIn { windows, timers, sessions, watermark, rich } in states {
            if let Some(rich) = rich {
                self.local.restore(rich, from.range).map_err(|e| TaskError::new(&name, &e))?;
            }
            let derive = !self.assigner.is_merging() && timers.is_empty();
            let mut restored = Vec::new();
            for (w, blob) in &windows {
                blob.decode::<(K, W::Acc), _>(from.range, &name, |(k, acc)| {
                    if derive {
                        restored.push((k.clone(), *w));
                    }
                    self.insert_acc(k, *w, acc);
                })?;
            }
            for (k, w) in restored {
                self.restore_timers(k, w, watermark);
            }
            timers.decode::<(K, (TimeDomain, i64, TimeWindow)), _>(from.range, &name, |(k, (d, ts, w))| {
                self.timers.register(d, ts, k, w);
            })?;
            sessions.decode::<(K, Vec<TimeWindow>), _>(from.range, &name, |(k, ws)| {
                self.sessions.insert(k, ws);
            })?;
        }
        self.side.restore(from)?;
        self.next.restore(from)
    }

    fn notify_checkpoint(&mut self, id: u64, completed: bool) -> TaskResult {
        self.side.notify_checkpoint(id, completed)?;
        self.next.notify_checkpoint(id, completed)
    }
}

/// One window's accumulators, by key, and when they last changed.
pub(crate) struct WindowSlot<K, A> {
    pub(crate) entries: FxHashMap<K, Option<A>>,
    /// The operator's snapshot count (`epoch`) at the latest change.
    pub(crate) modified: u64,
}

impl<K, A> Default for WindowSlot<K, A> {
    fn default() -> Self {
        Self { entries: FxHashMap::default(), modified: 0 }
    }
}

/// Windows' latest encodings, shared by the operator (which reuses them for windows that did
/// not change) and its snapshots' asynchronous encoders (which add them), and the next
/// piece id.
#[derive(Clone, Default)]
pub(crate) struct EncodedWindows(Arc<Mutex<EncodedMap>>, Arc<AtomicU64>);

/// Window → (the snapshot it was encoded for, its `(window, entries by key group)` element).
type EncodedMap = FxHashMap<TimeWindow, (u64, Segment)>;

impl EncodedWindows {
    fn lock(&self) -> std::sync::MutexGuard<'_, EncodedMap> {
        // Every update leaves the map consistent: a panic elsewhere does not spoil it.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A piece id not used before by this operator instance.
    fn next_id(&self) -> u64 {
        self.1.fetch_add(1, Ordering::Relaxed)
    }
}

/// A window in a snapshot: encoded at an earlier one and unchanged since, or copied now.
enum WindowPart<K, A> {
    Encoded(Segment),
    Copied(Vec<(K, A)>),
}

/// What a window operator snapshots, as read back: each window's `(key, accumulator)` entries
/// by key group, timers (merging windows only: the others' follow from their contents and the
/// watermark), session sets, the operator's watermark when the snapshot was taken (which
/// derived timers had fired) and a rich function's keyed state. Written in pieces by
/// `snapshot`, field by field in this order.
#[derive(serde::Deserialize)]
struct WindowStateIn {
    windows: Vec<(TimeWindow, KeyGroupedState)>,
    timers: KeyGroupedState,
    sessions: KeyGroupedState,
    watermark: i64,
    #[serde(default)]
    rich: Option<RichWindowState>,
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::sync::Arc;

    use riffle_state::{assign_to_key_group, key_hash, KeyGroupRange};

    use super::*;
    use crate::link::OperatorMarker;
    use crate::metrics::JobCounters;
    use crate::snapshot::SubtaskSnapshot;

    /// Collects what reaches it.
    struct Sink(Rc<RefCell<Vec<String>>>);

    impl Input<String> for Sink {
        fn push(&mut self, value: String, _: i64) -> TaskResult {
            self.0.borrow_mut().push(value);
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

    /// Counts a window's firings in window state and the key's in global state; `clear`
    /// reports the window's count.
    #[derive(Clone)]
    struct Fires;

    impl RichProcessWindowFunction<String, u64, String> for Fires {
        fn process(
            &mut self,
            els: &[u64],
            ctx: &mut ProcessWindowContext<'_, String, String>,
        ) -> Result<(), UserError> {
            let ws = ctx.window_state()?;
            let fires = ws.value_state::<u64>("fires")?;
            let n = fires.get(ws)?.copied().unwrap_or(0) + 1;
            fires.set(ws, n)?;
            let gs = ctx.global_state();
            let total = gs.value_state::<u64>("total")?;
            let t = total.get(gs)?.copied().unwrap_or(0) + 1;
            total.set(gs, t)?;
            let line = format!("{} {} n={} fire={n} total={t}", ctx.key(), ctx.window().start, els.len());
            ctx.collect(line);
            Ok(())
        }
        fn clear(&mut self, ctx: &mut ProcessWindowContext<'_, String, String>) -> Result<(), UserError> {
            let ws = ctx.window_state()?;
            let fires = ws.value_state::<u64>("fires")?;
            let n = fires.get(ws)?.copied();
            let line = format!("clear {} {} fires={n:?}", ctx.key(), ctx.window().start);
            ctx.collect(line);
            Ok(())
        }
    }

    type Op = WindowOp<String, u64, String, RichWindow<AllElements, Fires, u64>>;

    fn op(out: &Rc<RefCell<Vec<String>>>) -> Op {
        let wf = Arc::new(RichWindow { contents: AllElements, f: Fires, _r: std::marker::PhantomData });
        let id = OpId { name: "w".into(), index: 1, marker: OperatorMarker::default() };
        let local = wf.local(&BackendConfig::heap(), &id, false).unwrap();
        let key_of: Arc<dyn Fn(&u64) -> String + Send + Sync> =
            Arc::new(|v: &u64| if v.is_multiple_of(2) { "even" } else { "odd" }.to_string());
        WindowOp::new(
            wf,
            local,
            WindowAssigner::Tumbling { size: 10, offset: 0, time: WindowTime::Event },
            5,
            None,
            key_of,
            Box::new(Sink(out.clone())),
            SideOutputs::default(),
            id,
            LocalCounter::new(Arc::new(JobCounters::default()), |c| &c.late_records_dropped),
        )
    }

    fn take(out: &Rc<RefCell<Vec<String>>>) -> Vec<String> {
        let mut v = std::mem::take(&mut *out.borrow_mut());
        v.sort();
        v
    }

    #[test]
    fn window_and_global_state_survive_a_restore_and_window_state_is_purged() {
        let out = Rc::new(RefCell::new(Vec::new()));
        let mut a = op(&out);
        a.push(2, 1).unwrap();
        a.push(4, 3).unwrap();
        a.push(3, 5).unwrap();
        a.watermark(9).unwrap();
        assert_eq!(take(&out), vec!["even 0 n=2 fire=1 total=1", "odd 0 n=1 fire=1 total=1"]);
        a.push(6, 7).unwrap(); // late, within the lateness: fires again
        assert_eq!(take(&out), vec!["even 0 n=3 fire=2 total=2"]);

        let mut ops = OperatorSnapshots::new(128, 1);
        a.snapshot(&mut ops).unwrap();
        let snap = SubtaskSnapshot::decode(&ops.finish(None).complete().unwrap().encode().unwrap()).unwrap();
        drop(a);
        let mut b = op(&out);
        b.restore(&OperatorRestore::new(KeyGroupRange { start: 0, end: 127 }, 128, vec![snap])).unwrap();

        b.push(8, 12).unwrap();
        b.watermark(14).unwrap(); // [0, 10) purged
        assert_eq!(take(&out), vec!["clear even 0 fires=Some(2)", "clear odd 0 fires=Some(1)"]);
        b.watermark(19).unwrap();
        assert_eq!(take(&out), vec!["even 10 n=1 fire=1 total=3"]);
        b.watermark(24).unwrap();
        assert_eq!(take(&out), vec!["clear even 10 fires=Some(1)"]);

        let ws = &mut b.local.window_state;
        let fires = ws.value_state::<u64>("fires").unwrap();
        assert_eq!(fires.len(ws).unwrap(), 0, "purged windows leave no window state");
        let gs = &mut b.local.global_state;
        let total = gs.value_state::<u64>("total").unwrap();
        assert_eq!(total.len(gs).unwrap(), 2, "global state stays");
    }

    #[test]
    fn unchanged_windows_keep_their_piece_between_snapshots() {
        let out = Rc::new(RefCell::new(Vec::new()));
        let mut a = op(&out);
        a.push(2, 1).unwrap();
        a.push(3, 11).unwrap();
        let index = a.id.index;
        let pieces = |a: &mut WindowOp<_, _, _, _>| {
            let mut ops = OperatorSnapshots::new(128, 1);
            a.snapshot(&mut ops).unwrap();
            let seg = ops.finish(None).complete_segmented().unwrap();
            let (_, segments) = seg.operators.iter().find(|(op, _)| *op == index).cloned().unwrap();
            let ids: Vec<u64> = segments.iter().filter_map(|s| s.id).collect();
            (ids, seg.into_full())
        };
        let (first, _) = pieces(&mut a);
        assert_eq!(first.len(), 2, "one piece per window");
        a.push(5, 13).unwrap(); // changes [10, 20) only
        let (second, full) = pieces(&mut a);
        assert_eq!(second.len(), 2);
        assert_eq!(second.iter().filter(|id| first.contains(id)).count(), 1, "[0, 10) is the same piece");
        let mut b = op(&out);
        b.restore(&OperatorRestore::new(KeyGroupRange { start: 0, end: 127 }, 128, vec![full])).unwrap();
        b.watermark(30).unwrap();
        assert_eq!(take(&out).iter().filter(|l| l.contains(" n=")).count(), 2, "both windows restored and fired");
    }

    #[test]
    fn window_state_lives_in_the_key_group_of_its_key() {
        for k in 0..100u64 {
            let w = TimeWindow { start: k as i64 * 7, end: k as i64 * 7 + 10 };
            let wk = WindowKey { key: k, window: w };
            assert_eq!(assign_to_key_group(key_hash(&wk), 128), assign_to_key_group(key_hash(&k), 128));
        }
    }
}
