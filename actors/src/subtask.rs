//! The Subtask actor and the loop that runs one chain of operators.
//!
//! The actor lives on its Slot's thread (an actix Arbiter) and owns the control side: it is
//! cancelled through it and reports its end to the Slot. The data side is a local future
//! that pulls input (a source reader or an input gate), pushes it through the fused chain by
//! plain calls, and drains the outbox into bounded channels, awaiting free capacity: that
//! await is where backpressure stops a fast producer. A panic in user code is caught at the
//! future's boundary and reported with the operator that was running.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures::FutureExt;
use riffle_api::config::Configuration;
use riffle_api::head::VertexHead;
use riffle_api::link::OperatorMarker;
use riffle_api::metrics::JobCounters;
use riffle_api::partition::{FlushRegistry, SharedOutbox};
use riffle_api::snapshot::{OperatorRestore, OperatorSnapshots, PendingSnapshot, SourceSnapshot, SubtaskSnapshot};
use riffle_api::source::{ReadStatus, SourceHead};
use riffle_api::{CheckpointBarrier, Element, HeadKind, JobGraph, TaskEnv, TaskError};
use riffle_state::BackendConfig;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::mpsc::Sender;
use tokio::sync::{mpsc, watch};

use crate::checkpoint_storage;
use crate::exchange::ChannelId;
use crate::gateway::{RestoreState, SplitRequest, TaskRestore, TaskState};
use crate::ids::ExecutionId;
use crate::input_gate::{GateEvent, InputGate};
use crate::registry::RuntimeShared;
use crate::snapshot_writer::{InFlightSnapshots, SnapshotWriter};
use crate::supervision::panic_message;

/// Everything a subtask needs to run.
pub struct SubtaskSpec {
    /// Which execution.
    pub execution: ExecutionId,
    /// The job's graph.
    pub graph: Arc<JobGraph>,
    /// Process-wide registries.
    pub shared: Arc<RuntimeShared>,
    /// Records per batch.
    pub batch_size: usize,
    /// Batches per channel.
    pub channel_capacity: usize,
    /// Flush partially filled batches after this long (Flink's buffer timeout).
    pub buffer_timeout_ms: i64,
    /// The subtask's state from the checkpoint or savepoint the job resumes from, if any.
    pub restore: Option<TaskRestore>,
}

/// How a run ended, when not normally.
enum Stop {
    Cancelled,
    Failed(TaskError),
}

impl From<TaskError> for Stop {
    fn from(e: TaskError) -> Self {
        Stop::Failed(e)
    }
}

/// Sent by a Subtask to its Slot when it stopped: the child-exit message of this level.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct SubtaskExited {
    /// Which execution.
    pub execution: ExecutionId,
    /// Its final state.
    pub state: TaskState,
}

/// Control messages a running subtask reacts to between records.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub enum SubtaskControl {
    /// (Sources) start checkpoint `id`: emit its barrier.
    TriggerCheckpoint {
        /// The checkpoint's barrier.
        barrier: CheckpointBarrier,
        /// Stop-with-savepoint: emit nothing after the barrier; end once it completed.
        stop_source: bool,
    },
    /// Checkpoint `id` completed or was aborted.
    CheckpointDone {
        /// The checkpoint.
        id: u64,
        /// Completed (`true`) or aborted.
        completed: bool,
    },
}

/// Asks a subtask to stop.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct CancelSubtask;

/// The Subtask actor.
pub struct Subtask {
    spec: Option<SubtaskSpec>,
    execution: ExecutionId,
    parent: Recipient<SubtaskExited>,
    cancel: watch::Sender<bool>,
    control: mpsc::UnboundedSender<SubtaskControl>,
    control_rx: Option<mpsc::UnboundedReceiver<SubtaskControl>>,
    state: TaskState,
}

impl Subtask {
    /// A subtask reporting to `parent` when it ends.
    pub fn new(spec: SubtaskSpec, parent: Recipient<SubtaskExited>) -> Self {
        let (cancel, _) = watch::channel(false);
        let (control, control_rx) = mpsc::unbounded_channel();
        Self {
            execution: spec.execution,
            spec: Some(spec),
            parent,
            cancel,
            control,
            control_rx: Some(control_rx),
            state: TaskState::Canceled,
        }
    }
}

impl Actor for Subtask {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let (Some(spec), Some(control)) = (self.spec.take(), self.control_rx.take()) else { return };
        let cancel = self.cancel.subscribe();
        let marker = OperatorMarker::default();
        let graph = spec.graph.clone();
        let vertex = spec.execution.vertex as usize;
        let m2 = marker.clone();
        let fut = std::panic::AssertUnwindSafe(run(spec, cancel, control, m2)).catch_unwind();
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            act.state = match res {
                Ok(Ok(())) => TaskState::Finished,
                Ok(Err(Stop::Cancelled)) => TaskState::Canceled,
                Ok(Err(Stop::Failed(e))) => TaskState::Failed(e),
                Err(panic) => {
                    let op = graph
                        .operator_name(marker.current())
                        .or_else(|| graph.vertices().get(vertex).map(|v| v.name.as_str()))
                        .unwrap_or("unknown operator")
                        .to_string();
                    TaskState::Failed(TaskError::msg(op, format!("panicked: {}", panic_message(panic.as_ref()))))
                }
            };
            ctx.stop();
        }));
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.parent.do_send(SubtaskExited { execution: self.execution, state: self.state.clone() });
    }
}

impl Handler<SubtaskControl> for Subtask {
    type Result = ();
    fn handle(&mut self, msg: SubtaskControl, _: &mut Self::Context) {
        let _ = self.control.send(msg);
    }
}

impl Handler<CancelSubtask> for Subtask {
    type Result = ();
    fn handle(&mut self, _: CancelSubtask, _: &mut Self::Context) {
        let _ = self.cancel.send(true);
    }
}

fn name_of(graph: &JobGraph, e: &ExecutionId) -> String {
    let v = graph.vertices().get(e.vertex as usize);
    let (name, p) = v.map(|v| (v.name.as_str(), v.parallelism)).unwrap_or(("?", 0));
    format!("{name} ({}/{p})", e.subtask + 1)
}

/// The state backend of a job: its own `state.backend*` options over the cluster's.
fn state_backend(cluster: &Configuration, job: &Configuration) -> Result<BackendConfig, riffle_state::StateError> {
    BackendConfig::from_options(|k| job.get_str(k).or_else(|| cluster.get_str(k)))
}

async fn run(
    spec: SubtaskSpec,
    mut cancel: watch::Receiver<bool>,
    control: mpsc::UnboundedReceiver<SubtaskControl>,
    marker: OperatorMarker,
) -> Result<(), Stop> {
    let e = spec.execution;
    let graph = spec.graph.clone();
    let task_name = name_of(&graph, &e);
    let counters = spec.shared.counters(e.job);
    let state_backend =
        state_backend(&spec.shared.config, &graph.config).map_err(|e| TaskError::new(&task_name, &e))?;
    let env = TaskEnv {
        outbox: SharedOutbox::default(),
        flush: FlushRegistry::default(),
        marker,
        counters: counters.clone(),
        batch_size: spec.batch_size,
        state_backend,
    };
    let mut instance = graph.instantiate(e.vertex as usize, e.subtask, &env)?;
    if let Some(r) = &spec.restore {
        let parallelism = graph.vertices().get(e.vertex as usize).map(|v| v.parallelism).unwrap_or(1);
        let range = riffle_state::key_group_range_for_subtask(graph.max_parallelism, parallelism, e.subtask);
        restore_head(&mut instance.head, r, range, graph.max_parallelism).await?;
    }
    let mut senders = Vec::with_capacity(instance.output_channels.len());
    for key in &instance.output_channels {
        let id = ChannelId { job: e.job, attempt: e.attempt, key: *key };
        let tx = spec
            .shared
            .exchange
            .take_sender(id, spec.channel_capacity)
            .ok_or_else(|| TaskError::msg(&task_name, format!("output channel {key:?} was already taken")))?;
        senders.push(tx);
    }
    let mut out = Outputs {
        stalled: vec![false; senders.len()],
        env,
        senders,
        last_flush: riffle_api::time::now_ms(),
        timeout: spec.buffer_timeout_ms,
        name: task_name.clone(),
        control,
        execution: e,
        shared: spec.shared.clone(),
        max_parallelism: graph.max_parallelism,
        snapshots: InFlightSnapshots::default(),
        stop_after: None,
        stop_now: false,
    };
    match instance.head {
        HeadKind::Source(head) => run_source(&spec, head, &mut out, &mut cancel, counters).await,
        HeadKind::Operators(head) => {
            let channels = graph.input_channels(e.vertex as usize, e.subtask);
            let mut rxs = Vec::with_capacity(channels.len());
            let mut input_of = Vec::with_capacity(channels.len());
            for c in &channels {
                let id = ChannelId { job: e.job, attempt: e.attempt, key: c.key };
                let rx = spec.shared.exchange.take_receiver(id, spec.channel_capacity).ok_or_else(|| {
                    TaskError::msg(&task_name, format!("input channel {:?} was already taken", c.key))
                })?;
                rxs.push(rx);
                input_of.push(c.input);
            }
            let num_inputs = graph.vertices().get(e.vertex as usize).map(|v| v.num_inputs).unwrap_or(1);
            let gate = InputGate::new(rxs, input_of, num_inputs);
            run_operators(head, gate, &mut out, &mut cancel).await
        }
    }
}

struct Outputs {
    env: TaskEnv,
    senders: Vec<Sender<Element>>,
    stalled: Vec<bool>,
    last_flush: i64,
    timeout: i64,
    name: String,
    control: mpsc::UnboundedReceiver<SubtaskControl>,
    execution: ExecutionId,
    shared: Arc<RuntimeShared>,
    max_parallelism: u32,
    snapshots: InFlightSnapshots,
    /// Stop-with-savepoint: the source emits nothing until this checkpoint is done.
    stop_after: Option<u64>,
    /// Stop-with-savepoint completed: the source ends its input.
    stop_now: bool,
}

impl Outputs {
    /// Sends everything the chain produced. A full channel holds back only its own elements
    /// (order within a channel is kept): what goes to other channels — a checkpoint barrier
    /// among them — leaves at once. The subtask then waits (backpressure) for the full one.
    async fn drain(&mut self, cancel: &mut watch::Receiver<bool>) -> Result<(), Stop> {
        loop {
            let mut queue = {
                let mut ob = self.env.outbox.borrow_mut();
                if ob.queue.is_empty() {
                    return Ok(());
                }
                std::mem::take(&mut ob.queue)
            };
            let mut deferred = std::collections::VecDeque::new();
            let mut any_stalled = false;
            for (ch, el) in queue.drain(..) {
                if any_stalled && self.stalled[ch] {
                    deferred.push_back((ch, el));
                    continue;
                }
                let tx = self
                    .senders
                    .get(ch)
                    .ok_or_else(|| TaskError::msg(&self.name, format!("no output channel {ch}")))?;
                match tx.try_send(el) {
                    Ok(()) => {}
                    Err(TrySendError::Full(el)) => {
                        self.stalled[ch] = true;
                        any_stalled = true;
                        deferred.push_back((ch, el));
                    }
                    Err(TrySendError::Closed(_)) => {
                        return Err(peer_lost(&self.name, "a downstream subtask stopped", cancel).await)
                    }
                }
            }
            if deferred.is_empty() {
                // Give the (now empty) buffer back so the next batch does not reallocate it.
                let mut ob = self.env.outbox.borrow_mut();
                if ob.queue.is_empty() {
                    ob.queue = queue;
                }
                return Ok(());
            }
            self.stalled.iter_mut().for_each(|s| *s = false);
            let Some((ch, el)) = deferred.pop_front() else { continue };
            let tx = self.senders[ch].clone();
            tokio::select! {
                r = tx.send(el) => if r.is_err() {
                    return Err(peer_lost(&self.name, "a downstream subtask stopped", cancel).await);
                },
                _ = cancel.changed() => return Err(Stop::Cancelled),
            }
            let mut ob = self.env.outbox.borrow_mut();
            deferred.append(&mut ob.queue);
            ob.queue = deferred;
        }
    }

    /// Flushes partial batches and sends them.
    async fn flush(&mut self, cancel: &mut watch::Receiver<bool>, now: i64) -> Result<(), Stop> {
        self.env.flush.flush_all();
        self.last_flush = now;
        self.drain(cancel).await
    }

    async fn maybe_timeout_flush(&mut self, cancel: &mut watch::Receiver<bool>, now: i64) -> Result<(), Stop> {
        if now - self.last_flush >= self.timeout {
            self.flush(cancel, now).await?;
        }
        Ok(())
    }

    /// A checkpoint reached this subtask's consistent point: everything before it is
    /// processed. Takes the synchronous part of the snapshot (a copy), sends the barrier after
    /// every record produced so far on every output channel, and leaves encoding, writing and
    /// acknowledging to a child task while processing goes on.
    async fn checkpoint(
        &mut self,
        barrier: CheckpointBarrier,
        head: &mut dyn Checkpointable,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<(), Stop> {
        let started = std::time::Instant::now();
        let (pending, source) = head.take_snapshot(self.max_parallelism, barrier.id)?;
        let sync_ms = started.elapsed().as_millis() as u64;
        self.env.flush.flush_all();
        {
            let mut ob = self.env.outbox.borrow_mut();
            for ch in 0..self.senders.len() {
                ob.queue.push_back((ch, Element::Barrier(barrier.clone())));
            }
        }
        self.drain(cancel).await?;
        let task = self.snapshots.start(barrier.id);
        let writer = SnapshotWriter { execution: self.execution, shared: self.shared.clone(), barrier, task, sync_ms };
        actix::spawn(writer.run(pending, source));
        Ok(())
    }

    /// Handles control messages that arrived, without waiting.
    async fn poll_control(
        &mut self,
        head: &mut dyn Checkpointable,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<(), Stop> {
        while let Ok(c) = self.control.try_recv() {
            self.on_control(c, head, cancel).await?;
        }
        Ok(())
    }

    async fn on_control(
        &mut self,
        c: SubtaskControl,
        head: &mut dyn Checkpointable,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<(), Stop> {
        match c {
            SubtaskControl::TriggerCheckpoint { barrier, stop_source } => {
                if stop_source {
                    self.stop_after = Some(barrier.id);
                }
                self.checkpoint(barrier, head, cancel).await
            }
            SubtaskControl::CheckpointDone { id, completed } => {
                if self.stop_after == Some(id) {
                    self.stop_after = None;
                    self.stop_now = completed;
                }
                if completed {
                    self.snapshots.completed(id);
                } else {
                    self.snapshots.abort(id);
                }
                head.notify(id, completed)?;
                self.drain(cancel).await
            }
        }
    }
}

/// The two kinds of subtask heads, as far as checkpoints are concerned.
trait Checkpointable {
    fn take_snapshot(
        &mut self,
        max_parallelism: u32,
        id: u64,
    ) -> Result<(PendingSnapshot, Option<SourceSnapshot>), TaskError>;
    fn notify(&mut self, id: u64, completed: bool) -> Result<(), TaskError>;
}

impl Checkpointable for Box<dyn SourceHead> {
    fn take_snapshot(
        &mut self,
        max_parallelism: u32,
        id: u64,
    ) -> Result<(PendingSnapshot, Option<SourceSnapshot>), TaskError> {
        let mut ops = OperatorSnapshots::new(max_parallelism, id);
        let source = self.snapshot(&mut ops)?;
        Ok((ops.finish(None), Some(source)))
    }
    fn notify(&mut self, id: u64, completed: bool) -> Result<(), TaskError> {
        self.notify_checkpoint(id, completed)
    }
}

impl Checkpointable for Box<dyn VertexHead> {
    fn take_snapshot(
        &mut self,
        max_parallelism: u32,
        id: u64,
    ) -> Result<(PendingSnapshot, Option<SourceSnapshot>), TaskError> {
        let mut ops = OperatorSnapshots::new(max_parallelism, id);
        self.snapshot(&mut ops)?;
        Ok((ops.finish(None), None))
    }
    fn notify(&mut self, id: u64, completed: bool) -> Result<(), TaskError> {
        self.notify_checkpoint(id, completed)
    }
}

/// Restores a freshly built head from its part of a checkpoint: the former subtasks' operator
/// state (filtered to the key groups this subtask owns) and its reader's position.
async fn restore_head(
    head: &mut HeadKind,
    restore: &TaskRestore,
    range: riffle_state::KeyGroupRange,
    max_parallelism: u32,
) -> Result<(), TaskError> {
    let mut snaps = Vec::with_capacity(restore.states.len());
    for s in &restore.states {
        let snap = match s {
            RestoreState::Inline(bytes) => SubtaskSnapshot::decode(bytes)?,
            RestoreState::File(path) => {
                let path = std::path::Path::new(path);
                let bytes = checkpoint_storage::get(path)
                    .await
                    .map_err(|e| TaskError::msg("restore", format!("cannot read checkpoint state: {e}")))?;
                let payload = riffle_state::checkpoint_metadata::decode_state_file(&bytes, path)
                    .map_err(|e| TaskError::msg("restore", e.to_string()))?;
                SubtaskSnapshot::decode(payload)?
            }
        };
        snaps.push(snap);
    }
    let from = OperatorRestore::new(range, max_parallelism, snaps);
    match head {
        HeadKind::Source(h) => {
            let mut sources = Vec::new();
            if let Some(b) = &restore.source {
                sources.push(rmp_serde::from_slice::<SourceSnapshot>(b).map_err(|e| {
                    TaskError::msg("restore", format!("corrupt source reader state in the checkpoint: {e}"))
                })?);
            }
            h.restore(&sources, &from)
        }
        HeadKind::Operators(h) => h.restore(&from),
    }
}

/// How long a subtask whose peer vanished waits to be cancelled before it reports the loss
/// as its own failure.
const PEER_LOST_GRACE: Duration = Duration::from_secs(30);

/// A peer subtask vanished without ending its stream: it failed, and its own report (the
/// root cause) is on its way to the JobMaster, which will cancel this subtask. Reporting the
/// loss now could overtake that report and become the job's root cause, so wait to be
/// cancelled; only if that does not happen, fail with the loss.
async fn peer_lost(name: &str, what: &str, cancel: &mut watch::Receiver<bool>) -> Stop {
    if *cancel.borrow() {
        return Stop::Cancelled;
    }
    tokio::select! {
        _ = tokio::time::sleep(PEER_LOST_GRACE) => Stop::Failed(TaskError::msg(name, what)),
        _ = cancel.changed() => Stop::Cancelled,
    }
}

async fn sleep_or_cancel(d: Duration, cancel: &mut watch::Receiver<bool>) -> Result<(), Stop> {
    tokio::select! {
        _ = tokio::time::sleep(d) => Ok(()),
        _ = cancel.changed() => Err(Stop::Cancelled),
    }
}

async fn run_source(
    spec: &SubtaskSpec,
    mut head: Box<dyn SourceHead>,
    out: &mut Outputs,
    cancel: &mut watch::Receiver<bool>,
    counters: Arc<JobCounters>,
) -> Result<(), Stop> {
    let e = spec.execution;
    let mut published = 0u64;
    loop {
        if *cancel.borrow() {
            return Err(Stop::Cancelled);
        }
        out.poll_control(&mut head, cancel).await?;
        if out.stop_now {
            // Stop-with-savepoint completed: end here, nothing after the savepoint's barrier.
            head.finish()?;
            return out.flush(cancel, riffle_api::time::now_ms()).await;
        }
        if out.stop_after.is_some() {
            // Waiting for the stop-with-savepoint's savepoint: emit nothing meanwhile.
            out.flush(cancel, riffle_api::time::now_ms()).await?;
            tokio::select! {
                c = out.control.recv() => if let Some(c) = c {
                    out.on_control(c, &mut head, cancel).await?;
                },
                _ = cancel.changed() => return Err(Stop::Cancelled),
            }
            continue;
        }
        let status = head.poll()?;
        let emitted = head.records_emitted();
        counters.source_records.fetch_add(emitted - published, std::sync::atomic::Ordering::Relaxed);
        published = emitted;
        out.drain(cancel).await?;
        let now = riffle_api::time::now_ms();
        if head.next_processing_time().is_some_and(|t| now >= t) {
            head.processing_time(now)?;
            out.drain(cancel).await?;
        }
        out.maybe_timeout_flush(cancel, now).await?;
        match status {
            ReadStatus::MoreAvailable => {
                // Let the slot's other subtasks and this subtask's own actor (checkpoint
                // triggers, cancellation) run: a poll is a few thousand records, so this costs
                // well under a nanosecond per record.
                tokio::task::yield_now().await;
            }
            ReadStatus::NeedSplits => {
                out.flush(cancel, now).await?;
                let jm = spec
                    .shared
                    .job_masters
                    .get(&e.job)
                    .map(|a| a.clone())
                    .ok_or_else(|| TaskError::msg(&out.name, "the job master is gone"))?;
                let resp = tokio::select! {
                    r = jm.send(SplitRequest { execution: e }) => r,
                    _ = cancel.changed() => return Err(Stop::Cancelled),
                };
                let resp = resp
                    .map_err(|err| TaskError::msg(&out.name, format!("cannot reach the source coordinator: {err}")))?
                    .map_err(|err| TaskError::msg(&out.name, format!("split enumerator failed: {err}")))?;
                head.add_splits(resp.splits)?;
                if resp.no_more_splits {
                    head.no_more_splits();
                }
            }
            ReadStatus::NothingAvailable => {
                out.flush(cancel, now).await?;
                let wait = head.next_processing_time().map(|t| (t - now).clamp(0, 10)).unwrap_or(10);
                tokio::select! {
                    r = sleep_or_cancel(Duration::from_millis(wait as u64), cancel) => r?,
                    c = out.control.recv() => if let Some(c) = c {
                        out.on_control(c, &mut head, cancel).await?;
                    },
                }
            }
            ReadStatus::EndOfInput => {
                head.finish()?;
                out.flush(cancel, now).await?;
                return Ok(());
            }
        }
    }
}

async fn run_operators(
    mut head: Box<dyn VertexHead>,
    mut gate: InputGate,
    out: &mut Outputs,
    cancel: &mut watch::Receiver<bool>,
) -> Result<(), Stop> {
    let mut events = Vec::new();
    let mut batches = 0u32;
    if gate.remaining() == 0 {
        head.end_input()?;
        return out.flush(cancel, riffle_api::time::now_ms()).await;
    }
    loop {
        batches = batches.wrapping_add(1);
        if batches.is_multiple_of(16) {
            // A subtask that always has input would otherwise never let its actor run.
            tokio::task::yield_now().await;
        }
        let delivery = match gate.try_next() {
            Some(d) => d,
            None => {
                let now = riffle_api::time::now_ms();
                out.flush(cancel, now).await?;
                let wait = head.next_processing_time().map(|t| (t - now).max(0) as u64);
                let timer = async {
                    match wait {
                        Some(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                        None => futures::future::pending::<()>().await,
                    }
                };
                tokio::select! {
                    d = std::future::poll_fn(|cx| gate.poll_next(cx)) => Some(d),
                    _ = timer => None,
                    c = out.control.recv() => {
                        if let Some(c) = c {
                            out.on_control(c, &mut head, cancel).await?;
                        }
                        None
                    }
                    _ = cancel.changed() => return Err(Stop::Cancelled),
                }
                .unwrap_or((usize::MAX, None))
            }
        };
        let (ch, element) = delivery;
        if ch != usize::MAX {
            match element {
                None => {
                    let why = "an upstream subtask stopped before the end of its partition";
                    return Err(peer_lost(&out.name, why, cancel).await);
                }
                Some(Element::Records { batch, .. }) => head.push_batch(gate.input_of[ch], batch)?,
                Some(Element::Watermark(w)) => gate.on_watermark(ch, w, &mut events),
                Some(Element::Idle(b)) => gate.on_idle(ch, b, &mut events),
                Some(Element::EndOfPartition) => {
                    if let Some(input) = gate.on_end(ch, &mut events) {
                        for ev in events.drain(..) {
                            apply(&mut head, ev)?;
                        }
                        head.end_of_input(input)?;
                    }
                }
                Some(Element::Barrier(b)) => gate.on_barrier(ch, b),
            }
            if let Some(barrier) = gate.take_completed_barrier() {
                for ev in events.drain(..) {
                    apply(&mut head, ev)?;
                }
                out.checkpoint(barrier, &mut head, cancel).await?;
            }
            for ev in events.drain(..) {
                apply(&mut head, ev)?;
            }
        }
        out.drain(cancel).await?;
        let now = riffle_api::time::now_ms();
        if head.next_processing_time().is_some_and(|t| now >= t) {
            head.processing_time(now)?;
            out.drain(cancel).await?;
        }
        if gate.remaining() == 0 {
            head.end_input()?;
            return out.flush(cancel, now).await;
        }
        out.maybe_timeout_flush(cancel, now).await?;
    }
}

fn apply(head: &mut Box<dyn VertexHead>, ev: GateEvent) -> Result<(), TaskError> {
    match ev {
        GateEvent::Watermark(w) => head.watermark(w),
        GateEvent::Idle(b) => head.idle(b),
    }
}
