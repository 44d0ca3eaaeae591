//! DataStream, KeyedStream, WindowedStream, ConnectedStreams: the typed builders users chain.
//!
//! Each call adds an operator node (and an edge) to the environment's graph; nothing runs
//! until the graph is built and submitted. Streams are cheap handles: consuming one twice
//! fans its records out to both consumers.

use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use riffle_state::{key_hash, StateKey};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::environment::{edge, SharedBuilder};
use crate::functions::{
    CoProcessFunction, KeyedProcessFunction, MultiInputFunction, OutputTag, RichMapFunction, RuntimeContext,
    SideOutputs,
};
use crate::graph::{BuiltTyped, Node, NodeId, NodeKind};
use crate::link::Collector;
use crate::metrics::LocalCounter;
use crate::operators::basic::{FilterOp, FlatMapFn, FlatMapOp, IdentityOp, MapOp};
use crate::operators::keyed::{ProcessOp, ReduceOp};
use crate::operators::multi::{CoProcessOp, MultiInputOp};
use crate::operators::rich::MapWithStateOp;
use crate::operators::sinks::{
    write_debug, write_display, CollectBatch, CollectSink, DiscardSink, PrintSink, TextFileSink,
};
use crate::operators::watermarks::TimestampsAndWatermarksOp;
use crate::operators::window::{
    AggregateWindow, AllElements, ProcessWindow, ReduceWindow, RichWindow, WindowFn, WindowOp, WithWindow,
};
use crate::partition::PartitionKind;
use crate::record::{Data, Key};
use crate::sink::{ExactlyOnceTextFileSink, SinkContext, TwoPhaseCommitOperator, TwoPhaseCommitSink};
use crate::watermark::WatermarkStrategy;
use crate::window::{AggregateFunction, ProcessWindowFunction, RichProcessWindowFunction, TimeWindow, WindowAssigner};

type KeyFn<T, K> = Arc<dyn Fn(&T) -> K + Send + Sync>;

/// The node of a process function, keyed or (with `K = ()`) per subtask.
fn process_node<K: StateKey, T: Data, O: Data, F: KeyedProcessFunction<K, T, O>>(
    f: F,
    key_of: KeyFn<T, K>,
) -> Node<T, O> {
    Node::new(move |ctx, next| {
        let side = SideOutputs::new(ctx.side_outputs);
        let op = ProcessOp::new(f.clone(), key_of.clone(), next, side, ctx.id, &ctx.state_backend)?;
        Ok(BuiltTyped::Link(Box::new(op)))
    })
}
type HashFn<T> = Arc<dyn Fn(&T) -> u64 + Send + Sync>;

/// A stream of `T`.
pub struct DataStream<T> {
    pub(crate) builder: SharedBuilder,
    pub(crate) node: NodeId,
    pub(crate) partition: Option<PartitionKind>,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for DataStream<T> {
    fn clone(&self) -> Self {
        Self { builder: self.builder.clone(), node: self.node, partition: self.partition, _t: PhantomData }
    }
}

/// A handle on a sink, to name it or set its parallelism.
pub struct SinkHandle {
    builder: SharedBuilder,
    node: NodeId,
}

/// Changes node `node` of the graph being built.
fn update_node(builder: &SharedBuilder, node: NodeId, f: impl FnOnce(&mut crate::graph::StreamNode)) {
    if let Some(n) = builder.borrow_mut().nodes.get_mut(node) {
        f(n);
    }
}

impl SinkHandle {
    /// Sets the sink's parallelism.
    pub fn set_parallelism(self, parallelism: u32) -> Self {
        update_node(&self.builder, self.node, |n| n.parallelism = Some(parallelism));
        self
    }

    /// Names the sink.
    pub fn name(self, name: &str) -> Self {
        update_node(&self.builder, self.node, |n| n.name = name.to_string());
        self
    }
}

/// Records a job sends back to its caller (`DataStream::collect`). Iterating blocks until
/// the next record or until the job ended and every sink subtask is gone.
pub struct CollectStream<T> {
    rx: Receiver<CollectBatch<T>>,
    buf: std::vec::IntoIter<T>,
}

impl<T> Iterator for CollectStream<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        loop {
            if let Some(v) = self.buf.next() {
                return Some(v);
            }
            match self.rx.recv() {
                Ok(b) => self.buf = b.into_iter(),
                Err(_) => return None,
            }
        }
    }
}

impl<T: Data> DataStream<T> {
    pub(crate) fn new(builder: SharedBuilder, node: NodeId) -> Self {
        Self { builder, node, partition: None, _t: PhantomData }
    }

    fn add<O: Data>(
        &self,
        name: &str,
        kind: NodeKind,
        node: Node<T, O>,
        part: Option<PartitionKind>,
        hash: Option<HashFn<T>>,
    ) -> DataStream<O> {
        let mut b = self.builder.borrow_mut();
        let id = b.add_node(name.to_string(), kind, Arc::new(node));
        let mut e = edge(self.node, id, 0, part.or(self.partition));
        e.hash = hash.map(|h| Arc::new(h) as Arc<dyn std::any::Any + Send + Sync>);
        b.add_edge(e);
        drop(b);
        DataStream::new(self.builder.clone(), id)
    }

    fn with_partition(&self, p: PartitionKind) -> Self {
        let mut s = self.clone();
        s.partition = Some(p);
        s
    }

    /// Sets this operator's parallelism.
    pub fn set_parallelism(self, parallelism: u32) -> Self {
        update_node(&self.builder, self.node, |n| n.parallelism = Some(parallelism));
        self
    }

    /// Names this operator (shown in errors, logs and the vertex name).
    pub fn name(self, name: &str) -> Self {
        update_node(&self.builder, self.node, |n| n.name = name.to_string());
        self
    }

    /// Starts a new chain at this operator (it will not be fused with its predecessor).
    pub fn disable_chaining(self) -> Self {
        update_node(&self.builder, self.node, |n| n.chainable = false);
        self
    }

    /// The next operator reads round-robin from all of this one's subtasks.
    pub fn rebalance(&self) -> Self {
        self.with_partition(PartitionKind::Rebalance)
    }

    /// The next operator reads round-robin from a local subset of subtasks.
    pub fn rescale(&self) -> Self {
        self.with_partition(PartitionKind::Rescale)
    }

    /// Every record goes to every subtask of the next operator.
    pub fn broadcast(&self) -> Self {
        self.with_partition(PartitionKind::Broadcast)
    }

    /// Subtask i feeds subtask i of the next operator (equal parallelism required).
    pub fn forward(&self) -> Self {
        self.with_partition(PartitionKind::Forward)
    }

    /// One record in, one out.
    pub fn map<O: Data, F>(&self, f: F) -> DataStream<O>
    where
        F: Fn(T) -> O + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        self.add(
            "Map",
            NodeKind::OneInput,
            Node::new(move |ctx, next| Ok(BuiltTyped::Link(Box::new(MapOp { f: f.clone(), next, id: ctx.id })))),
            None,
            None,
        )
    }

    /// One record in, one out, with operator state that is checkpointed and restored (see
    /// [`RichMapFunction`]: per-subtask list state, dealt round-robin on rescale).
    pub fn map_with_state<O: Data, F: RichMapFunction<T, O>>(&self, f: F) -> DataStream<O> {
        self.add(
            "Map",
            NodeKind::OneInput,
            Node::new(move |ctx, next| {
                let mut f = f.clone();
                let rc = RuntimeContext {
                    subtask: ctx.subtask,
                    parallelism: ctx.parallelism,
                    max_parallelism: ctx.max_parallelism,
                    name: ctx.id.name.clone(),
                };
                ctx.id.enter();
                f.open(&rc).map_err(|e| ctx.id.err(e))?;
                let (subtask, parallelism) = (ctx.subtask, ctx.parallelism);
                Ok(BuiltTyped::Link(Box::new(MapWithStateOp { f, next, id: ctx.id, subtask, parallelism })))
            }),
            None,
            None,
        )
    }

    /// Keeps the records `f` accepts.
    pub fn filter<F>(&self, f: F) -> DataStream<T>
    where
        F: Fn(&T) -> bool + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        self.add(
            "Filter",
            NodeKind::OneInput,
            Node::new(move |ctx, next| Ok(BuiltTyped::Link(Box::new(FilterOp { f: f.clone(), next, id: ctx.id })))),
            None,
            None,
        )
    }

    /// One record in, any number out.
    pub fn flat_map<O: Data, F>(&self, f: F) -> DataStream<O>
    where
        F: Fn(T, &mut Collector<'_, O>) + Send + Sync + 'static,
    {
        let f: FlatMapFn<T, O> = Arc::new(f);
        self.add(
            "FlatMap",
            NodeKind::OneInput,
            Node::new(move |ctx, next| Ok(BuiltTyped::Link(Box::new(FlatMapOp { f: f.clone(), next, id: ctx.id })))),
            None,
            None,
        )
    }

    /// Runs a process function per subtask (its state and timers are per subtask: the key is `()`).
    pub fn process<O: Data, F: KeyedProcessFunction<(), T, O>>(&self, f: F) -> DataStream<O> {
        let key_of: KeyFn<T, ()> = Arc::new(|_| ());
        self.add("Process", NodeKind::OneInput, process_node(f, key_of), None, None)
    }

    /// Assigns event timestamps and generates watermarks.
    pub fn assign_timestamps_and_watermarks(&self, strategy: WatermarkStrategy<T>) -> DataStream<T> {
        self.add(
            "Timestamps/Watermarks",
            NodeKind::OneInput,
            Node::new(move |ctx, next| {
                Ok(BuiltTyped::Link(Box::new(TimestampsAndWatermarksOp {
                    generator: strategy.create_generator(),
                    assigner: strategy.assigner.clone(),
                    interval_ms: ctx.watermark_interval_ms,
                    next_emit: crate::time::now_ms() + ctx.watermark_interval_ms,
                    last_watermark: i64::MIN,
                    idle: false,
                    next,
                })))
            }),
            None,
            None,
        )
    }

    /// Partitions by key: records with equal keys go to the same subtask.
    pub fn key_by<K: Key, F>(&self, f: F) -> KeyedStream<K, T>
    where
        F: Fn(&T) -> K + Send + Sync + 'static,
    {
        // Both closures call the user's concrete `F`, so the per-record hash is one dynamic
        // call with the key function inlined.
        let f = Arc::new(f);
        let f2 = f.clone();
        let key_of: KeyFn<T, K> = Arc::new(move |t| f(t));
        let hash: HashFn<T> = Arc::new(move |t| key_hash(&f2(t)));
        KeyedStream { stream: self.clone(), key_of, hash }
    }

    /// Merges streams of the same type.
    pub fn union(&self, others: &[DataStream<T>]) -> DataStream<T> {
        let mut b = self.builder.borrow_mut();
        let node = Node::<T, T>::new(|_, next| Ok(BuiltTyped::Link(Box::new(IdentityOp { next }))));
        let id = b.add_node("Union".into(), NodeKind::OneInput, Arc::new(node));
        if let Some(n) = b.nodes.get_mut(id) {
            n.chainable = others.is_empty();
        }
        b.add_edge(edge(self.node, id, 0, self.partition));
        for o in others {
            b.add_edge(edge(o.node, id, 0, o.partition));
        }
        drop(b);
        DataStream::new(self.builder.clone(), id)
    }

    /// Connects two streams (possibly of different types) for a co-process function.
    pub fn connect<B: Data>(&self, other: &DataStream<B>) -> ConnectedStreams<(), T, B> {
        ConnectedStreams {
            a: self.clone(),
            b: other.clone(),
            key_a: Arc::new(|_| ()),
            key_b: Arc::new(|_| ()),
            hashes: None,
        }
    }

    /// The side output `tag` of this operator (late data of a window, or what a process
    /// function emitted with `ctx.output`).
    pub fn get_side_output<X: Data>(&self, tag: &OutputTag<X>) -> DataStream<X> {
        let mut b = self.builder.borrow_mut();
        let node = Node::<X, X>::new(|_, next| Ok(BuiltTyped::Link(Box::new(IdentityOp { next }))));
        let id = b.add_node(format!("Side Output ({})", tag.name()), NodeKind::SideOutput, Arc::new(node));
        let mut e = edge(self.node, id, 0, Some(PartitionKind::Forward));
        e.side_tag = Some(tag.name().to_string());
        b.add_edge(e);
        drop(b);
        DataStream::new(self.builder.clone(), id)
    }

    fn add_sink(&self, name: &str, node: Node<T, ()>) -> SinkHandle {
        let s = self.add::<()>(name, NodeKind::OneInput, node, None, None);
        SinkHandle { builder: s.builder, node: s.node }
    }

    /// Prints every record's `Debug` form to stdout (`<subtask>> record` when parallel).
    pub fn print(&self) -> SinkHandle
    where
        T: std::fmt::Debug,
    {
        self.print_with(write_debug::<T>)
    }

    /// Prints every record's `Display` form to stdout, one per line.
    pub fn print_text(&self) -> SinkHandle
    where
        T: std::fmt::Display,
    {
        self.print_with(write_display::<T>)
    }

    fn print_with(&self, format: fn(&T, &mut dyn std::io::Write) -> std::io::Result<()>) -> SinkHandle {
        self.add_sink(
            "Print Sink",
            Node::new(move |ctx, _| {
                let prefix = if ctx.parallelism > 1 { format!("{}> ", ctx.subtask + 1) } else { String::new() };
                let counter = LocalCounter::new(ctx.counters.clone(), |c| &c.sink_records);
                Ok(BuiltTyped::Link(Box::new(PrintSink { prefix, counter, format })))
            }),
        )
    }

    /// Drops every record.
    pub fn discard(&self) -> SinkHandle {
        self.add_sink(
            "Discard Sink",
            Node::new(|ctx, _| {
                let counter = LocalCounter::new(ctx.counters.clone(), |c| &c.sink_records);
                Ok(BuiltTyped::Link(Box::new(DiscardSink { counter })))
            }),
        )
    }

    /// Writes one line per record (`format(record)`) to `path` (a file at parallelism 1,
    /// a directory of `part-<i>` files otherwise).
    pub fn write_as_text<F>(&self, path: impl Into<PathBuf>, format: F) -> SinkHandle
    where
        F: Fn(&T) -> String + Send + Sync + 'static,
    {
        let path = path.into();
        let format: Arc<dyn Fn(&T) -> String + Send + Sync> = Arc::new(format);
        let name = format!("Text File Sink ({})", path.display());
        let n2 = name.clone();
        self.add_sink(
            &name,
            Node::new(move |ctx, _| {
                let counter = LocalCounter::new(ctx.counters.clone(), |c| &c.sink_records);
                Ok(BuiltTyped::Link(Box::new(TextFileSink::open(
                    &path,
                    ctx.subtask,
                    ctx.parallelism,
                    format.clone(),
                    &n2,
                    counter,
                )?)))
            }),
        )
    }

    /// Writes one line per record (`format(record)`) into the directory `path`, exactly
    /// once: each subtask writes hidden `.part-<subtask>-<n>.inprogress` files that are
    /// renamed to `part-<subtask>-<n>` only when the checkpoint covering their records has
    /// completed (or at the end of a bounded input). After a failover the output is that of
    /// a run without failure: no record lost, none twice (see [`ExactlyOnceTextFileSink`]).
    ///
    /// Records become visible with checkpoints, so an unbounded job needs checkpointing
    /// enabled for any output to appear. Give each job its own directory: a fresh start
    /// numbers parts from 0 again. Unlike [`DataStream::write_as_text`], `path` is always a
    /// directory, also at parallelism 1.
    pub fn write_as_text_exactly_once<F>(&self, path: impl Into<PathBuf>, format: F) -> SinkHandle
    where
        F: Fn(&T) -> String + Send + Sync + 'static,
    {
        let path = path.into();
        let format: Arc<dyn Fn(&T) -> String + Send + Sync> = Arc::new(format);
        let name = format!("Exactly-Once Text File Sink ({})", path.display());
        self.add_two_phase_commit_sink(&name, move |_| ExactlyOnceTextFileSink::new(path.clone(), format.clone()))
    }

    /// Ends the stream in a transactional sink driven by checkpoints (two-phase commit,
    /// [`TwoPhaseCommitOperator`]): records become visible when the checkpoint covering them
    /// completes, for exactly-once output across failovers. `factory` makes the sink of each
    /// subtask.
    pub fn add_two_phase_commit_sink<S, F>(&self, name: &str, factory: F) -> SinkHandle
    where
        S: TwoPhaseCommitSink<T>,
        F: Fn(&SinkContext) -> Result<S, crate::error::UserError> + Send + Sync + 'static,
    {
        self.add_sink(
            name,
            Node::new(move |ctx, _| {
                let sink_ctx =
                    SinkContext { subtask: ctx.subtask, parallelism: ctx.parallelism, name: ctx.id.name.clone() };
                let sink = factory(&sink_ctx).map_err(|e| ctx.id.err(e))?;
                let counter = LocalCounter::new(ctx.counters.clone(), |c| &c.sink_records);
                let op = TwoPhaseCommitOperator::new(sink, sink_ctx, ctx.id, Some(counter))
                    .with_final_checkpoint(ctx.final_checkpoint);
                Ok(BuiltTyped::Link(Box::new(op)))
            }),
        )
    }

    /// Sends the records back to the caller: iterate the returned stream after submitting
    /// the job. A slow reader backpressures the job.
    pub fn collect(&self) -> CollectStream<T> {
        let (tx, rx) = sync_channel::<CollectBatch<T>>(64);
        let shared = Arc::new(Mutex::new(Some(tx)));
        let for_build = shared.clone();
        self.add_sink(
            "Collect Sink",
            Node::new(move |ctx, _| {
                let tx = for_build.lock().ok().and_then(|g| g.clone());
                let counter = LocalCounter::new(ctx.counters.clone(), |c| &c.sink_records);
                Ok(BuiltTyped::Link(Box::new(CollectSink { tx, buf: Vec::new(), first_buffered_at: None, counter })))
            }),
        );
        self.builder.borrow_mut().on_terminate.push(Box::new(move || {
            if let Ok(mut g) = shared.lock() {
                g.take();
            }
        }));
        CollectStream { rx, buf: Vec::new().into_iter() }
    }
}

/// A stream partitioned by a key of type `K`.
pub struct KeyedStream<K, T> {
    stream: DataStream<T>,
    key_of: KeyFn<T, K>,
    hash: HashFn<T>,
}

impl<K, T> Clone for KeyedStream<K, T> {
    fn clone(&self) -> Self {
        Self { stream: self.stream.clone(), key_of: self.key_of.clone(), hash: self.hash.clone() }
    }
}

impl<K: Key + StateKey, T: Data> KeyedStream<K, T> {
    fn add_keyed<O: Data>(&self, name: &str, node: Node<T, O>) -> DataStream<O> {
        self.stream.add(name, NodeKind::OneInput, node, Some(PartitionKind::Hash), Some(self.hash.clone()))
    }

    /// A running reduce: emits the combined value of the key after every record.
    pub fn reduce<F>(&self, f: F) -> DataStream<T>
    where
        F: Fn(T, T) -> T + Send + Sync + 'static,
    {
        let f: Arc<dyn Fn(T, T) -> T + Send + Sync> = Arc::new(f);
        let key_of = self.key_of.clone();
        self.add_keyed(
            "Keyed Reduce",
            Node::new(move |ctx, next| {
                let incremental = ctx.state_backend.incremental;
                Ok(BuiltTyped::Link(Box::new(ReduceOp::new(f.clone(), key_of.clone(), next, ctx.id, incremental)?)))
            }),
        )
    }

    /// A running sum of the field `field` selects; other fields are the key's first record's.
    pub fn sum<N, F>(&self, field: F) -> DataStream<T>
    where
        N: std::ops::AddAssign + Copy,
        F: Fn(&mut T) -> &mut N + Send + Sync + 'static,
    {
        self.reduce(move |mut a, mut b| {
            let add = *field(&mut b);
            *field(&mut a) += add;
            a
        })
    }

    /// The running minimum of a field (other fields are the key's first record's).
    pub fn min<N, F>(&self, field: F) -> DataStream<T>
    where
        N: PartialOrd + Copy,
        F: Fn(&mut T) -> &mut N + Send + Sync + 'static,
    {
        self.reduce(move |mut a, mut b| {
            let v = *field(&mut b);
            if v < *field(&mut a) {
                *field(&mut a) = v;
            }
            a
        })
    }

    /// The running maximum of a field (other fields are the key's first record's).
    pub fn max<N, F>(&self, field: F) -> DataStream<T>
    where
        N: PartialOrd + Copy,
        F: Fn(&mut T) -> &mut N + Send + Sync + 'static,
    {
        self.reduce(move |mut a, mut b| {
            let v = *field(&mut b);
            if v > *field(&mut a) {
                *field(&mut a) = v;
            }
            a
        })
    }

    /// The record with the smallest `by(record)` so far (the first one on ties).
    pub fn min_by<N: PartialOrd, F>(&self, by: F) -> DataStream<T>
    where
        F: Fn(&T) -> N + Send + Sync + 'static,
    {
        self.reduce(move |a, b| if by(&b) < by(&a) { b } else { a })
    }

    /// The record with the largest `by(record)` so far (the first one on ties).
    pub fn max_by<N: PartialOrd, F>(&self, by: F) -> DataStream<T>
    where
        F: Fn(&T) -> N + Send + Sync + 'static,
    {
        self.reduce(move |a, b| if by(&b) > by(&a) { b } else { a })
    }

    /// Runs a keyed process function (keyed state, timers, side outputs).
    pub fn process<O: Data, F: KeyedProcessFunction<K, T, O>>(&self, f: F) -> DataStream<O> {
        let key_of = self.key_of.clone();
        self.add_keyed("Keyed Process", process_node(f, key_of))
    }

    /// Groups the key's records into windows.
    pub fn window(&self, assigner: WindowAssigner) -> WindowedStream<K, T> {
        WindowedStream { keyed: self.clone(), assigner, lateness: 0, late_tag: None }
    }

    /// Connects two keyed streams with the same key type: a keyed co-process function sees
    /// both inputs' records of a key with shared keyed state.
    pub fn connect<B: Data>(&self, other: &KeyedStream<K, B>) -> ConnectedStreams<K, T, B> {
        ConnectedStreams {
            a: self.stream.clone(),
            b: other.stream.clone(),
            key_a: self.key_of.clone(),
            key_b: other.key_of.clone(),
            hashes: Some((self.hash.clone(), other.hash.clone())),
        }
    }

    /// The underlying stream (keyed partitioning is not kept).
    pub fn into_stream(self) -> DataStream<T> {
        self.stream
    }
}

/// A keyed stream cut into windows.
pub struct WindowedStream<K, T> {
    keyed: KeyedStream<K, T>,
    assigner: WindowAssigner,
    lateness: i64,
    late_tag: Option<String>,
}

impl<K: Key + StateKey, T: Data> WindowedStream<K, T> {
    /// Keeps window state for `lateness` after the window fired; records arriving in that
    /// time re-fire the window with the updated result.
    pub fn allowed_lateness(mut self, lateness: Duration) -> Self {
        self.lateness = lateness.as_millis().min(i64::MAX as u128 / 4) as i64;
        self
    }

    /// Sends records too late for any window to the side output `tag` instead of dropping them.
    pub fn side_output_late_data(mut self, tag: &OutputTag<T>) -> Self {
        self.late_tag = Some(tag.name().to_string());
        self
    }

    fn build<O: Data, W: WindowFn<K, T, O>>(&self, name: &str, wf: W) -> DataStream<O> {
        let wf = Arc::new(wf);
        let key_of = self.keyed.key_of.clone();
        let (assigner, lateness, late_tag) = (self.assigner, self.lateness, self.late_tag.clone());
        self.keyed.add_keyed(
            name,
            Node::new(move |ctx, next| {
                let local = wf.local(&ctx.state_backend, &ctx.id, assigner.is_merging())?;
                let side = SideOutputs::new(ctx.side_outputs);
                let dropped = LocalCounter::new(ctx.counters.clone(), |c| &c.late_records_dropped);
                Ok(BuiltTyped::Link(Box::new(WindowOp::new(
                    wf.clone(),
                    local,
                    assigner,
                    lateness,
                    late_tag.clone(),
                    key_of.clone(),
                    next,
                    side,
                    ctx.id,
                    dropped,
                ))))
            }),
        )
    }

    /// Combines each window's records pairwise.
    pub fn reduce<F>(&self, f: F) -> DataStream<T>
    where
        F: Fn(T, T) -> T + Send + Sync + 'static,
    {
        self.build("Window Reduce", ReduceWindow(Arc::new(f)))
    }

    /// Aggregates each window incrementally.
    /// The accumulator is checkpointed, so it must be serializable.
    pub fn aggregate<
        A: Clone + Send + Serialize + DeserializeOwned + 'static,
        O: Data,
        F: AggregateFunction<T, A, O>,
    >(
        &self,
        f: F,
    ) -> DataStream<O> {
        self.build("Window Aggregate", AggregateWindow { f: Arc::new(f), _a: PhantomData })
    }

    /// Aggregates each window incrementally and shapes the result with the key and window
    /// (e.g. to emit the window's end).
    pub fn aggregate_with<A: Clone + Send + Serialize + DeserializeOwned + 'static, R: 'static, O: Data, F, W>(
        &self,
        f: F,
        shape: W,
    ) -> DataStream<O>
    where
        F: AggregateFunction<T, A, R>,
        W: Fn(&K, &TimeWindow, R) -> O + Send + Sync + 'static,
    {
        let inner = AggregateWindow { f: Arc::new(f), _a: PhantomData };
        self.build("Window Aggregate", WithWindow { inner, shape: Arc::new(shape), _r: PhantomData })
    }

    /// Reduces each window and shapes the result with the key and window.
    pub fn reduce_with<O: Data, F, W>(&self, f: F, shape: W) -> DataStream<O>
    where
        F: Fn(T, T) -> T + Send + Sync + 'static,
        W: Fn(&K, &TimeWindow, T) -> O + Send + Sync + 'static,
    {
        self.build(
            "Window Reduce",
            WithWindow { inner: ReduceWindow(Arc::new(f)), shape: Arc::new(shape), _r: PhantomData },
        )
    }

    /// Processes each window's records at once.
    pub fn process<O: Data, F: ProcessWindowFunction<K, T, O>>(&self, f: F) -> DataStream<O> {
        self.build("Window Process", ProcessWindow(Arc::new(f)))
    }

    /// Processes each window's records at once with the whole context (Flink's
    /// `ProcessWindowFunction` with state): state per key and window
    /// (`ctx.window_state()`, cleared when the window is purged) and per key
    /// (`ctx.global_state()`), side outputs, any number of results, and a `clear` hook when
    /// the window is purged. The state is checkpointed with the window's contents.
    pub fn process_with_state<O: Data, F: RichProcessWindowFunction<K, T, O>>(&self, f: F) -> DataStream<O> {
        self.build("Window Process", RichWindow { contents: AllElements, f, _r: PhantomData })
    }

    /// Aggregates each window incrementally and hands the result to a process window
    /// function with the whole context (Flink's `aggregate(AggregateFunction,
    /// ProcessWindowFunction)`): it sees one element, the aggregate's result.
    pub fn aggregate_process<A, R, O, F, P>(&self, agg: F, f: P) -> DataStream<O>
    where
        A: Clone + Send + Serialize + DeserializeOwned + 'static,
        R: 'static,
        O: Data,
        F: AggregateFunction<T, A, R>,
        P: RichProcessWindowFunction<K, R, O>,
    {
        let contents = AggregateWindow { f: Arc::new(agg), _a: PhantomData };
        self.build("Window Aggregate", RichWindow { contents, f, _r: PhantomData })
    }

    /// Reduces each window incrementally and hands the result to a process window function
    /// with the whole context (Flink's `reduce(ReduceFunction, ProcessWindowFunction)`).
    pub fn reduce_process<O: Data, F, P>(&self, reduce: F, f: P) -> DataStream<O>
    where
        F: Fn(T, T) -> T + Send + Sync + 'static,
        P: RichProcessWindowFunction<K, T, O>,
    {
        self.build("Window Reduce", RichWindow { contents: ReduceWindow(Arc::new(reduce)), f, _r: PhantomData })
    }
}

/// Two connected streams.
pub struct ConnectedStreams<K, A, B> {
    a: DataStream<A>,
    b: DataStream<B>,
    key_a: KeyFn<A, K>,
    key_b: KeyFn<B, K>,
    hashes: Option<(HashFn<A>, HashFn<B>)>,
}

impl<K: StateKey, A: Data, B: Data> ConnectedStreams<K, A, B> {
    /// Runs a co-process function over both inputs.
    pub fn process<O: Data, F: CoProcessFunction<K, A, B, O>>(&self, f: F) -> DataStream<O> {
        let (ka, kb) = (self.key_a.clone(), self.key_b.clone());
        let node = Node::<(), O>::new(move |ctx, next| {
            let side = SideOutputs::new(ctx.side_outputs);
            Ok(BuiltTyped::Head(Box::new(CoProcessOp::new(
                f.clone(),
                ka.clone(),
                kb.clone(),
                next,
                side,
                ctx.id,
                &ctx.state_backend,
            )?)))
        });
        let mut bld = self.a.builder.borrow_mut();
        let id = bld.add_node("Co-Process".into(), NodeKind::MultiInput, Arc::new(node));
        let (pk, ha, hb) = match &self.hashes {
            Some((ha, hb)) => (
                Some(PartitionKind::Hash),
                Some(Arc::new(ha.clone()) as Arc<dyn std::any::Any + Send + Sync>),
                Some(Arc::new(hb.clone()) as Arc<dyn std::any::Any + Send + Sync>),
            ),
            None => (None, None, None),
        };
        let mut e1 = edge(self.a.node, id, 0, pk.or(self.a.partition));
        e1.hash = ha;
        let mut e2 = edge(self.b.node, id, 1, pk.or(self.b.partition));
        e2.hash = hb;
        bld.add_edge(e1);
        bld.add_edge(e2);
        drop(bld);
        DataStream::new(self.a.builder.clone(), id)
    }
}

/// The node of an N-input process function, keyed or (with `K = ()`) per subtask.
fn multi_input_node<K: StateKey + Default, T: Data, O: Data, F: MultiInputFunction<K, T, O>>(
    f: F,
    key_of: KeyFn<T, K>,
) -> Node<(), O> {
    Node::new(move |ctx, next| {
        let side = SideOutputs::new(ctx.side_outputs);
        let op = MultiInputOp::new(f.clone(), key_of.clone(), next, side, ctx.id, &ctx.state_backend)?;
        Ok(BuiltTyped::Head(Box::new(op)))
    })
}

/// An operator over N inputs of one type (FLIP-92), per subtask (key `()`).
pub fn multi_input<T: Data, O: Data, F: MultiInputFunction<(), T, O>>(
    inputs: &[DataStream<T>],
    f: F,
) -> Option<DataStream<O>> {
    let first = inputs.first()?;
    let key_of: KeyFn<T, ()> = Arc::new(|_| ());
    let node = multi_input_node(f, key_of);
    let mut b = first.builder.borrow_mut();
    let id = b.add_node("Multi-Input".into(), NodeKind::MultiInput, Arc::new(node));
    for (i, s) in inputs.iter().enumerate() {
        b.add_edge(edge(s.node, id, i, s.partition));
    }
    drop(b);
    Some(DataStream::new(first.builder.clone(), id))
}

/// A keyed operator over N keyed inputs of one type and key (FLIP-92): keyed state is shared
/// by all inputs.
pub fn keyed_multi_input<K: Key + StateKey + Default, T: Data, O: Data, F: MultiInputFunction<K, T, O>>(
    inputs: &[KeyedStream<K, T>],
    f: F,
) -> Option<DataStream<O>> {
    let first = inputs.first()?;
    let key_of = first.key_of.clone();
    let node = multi_input_node(f, key_of);
    let mut b = first.stream.builder.borrow_mut();
    let id = b.add_node("Keyed Multi-Input".into(), NodeKind::MultiInput, Arc::new(node));
    for (i, s) in inputs.iter().enumerate() {
        let mut e = edge(s.stream.node, id, i, Some(PartitionKind::Hash));
        e.hash = Some(Arc::new(s.hash.clone()) as Arc<dyn std::any::Any + Send + Sync>);
        b.add_edge(e);
    }
    drop(b);
    Some(DataStream::new(first.stream.builder.clone(), id))
}
