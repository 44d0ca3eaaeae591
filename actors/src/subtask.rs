//! The Subtask actor and the loop that runs one chain of operators.
//!
//! The actor lives on its Slot's thread (an actix Arbiter) and owns the control side: it is
//! cancelled through it and reports its end to the Slot. The data side is a local future
//! that pulls input (a source reader or an input gate), pushes it through the fused chain by
//! plain calls, and drains the outbox into bounded channels, awaiting free capacity: that
//! await is where backpressure stops a fast producer. How the run ended is a [`TaskOutcome`]:
//! the loop's functions end it early with `Err(outcome)` (cancelled, failed), and a panic in
//! user code is caught at the future's boundary and fails it in the operator that was running.
//! The Subtask sends the outcome to its Slot.
//!
//! Sources and operators share that loop ([`run_task`]): their input ([`TaskInput`]) takes one
//! step at a time, after which one policy ([`AfterStep`]) drains, fires due timers, ends the
//! input ([`end_of_input`], the one end sequence) or flushes on the buffer timeout, and lets
//! the slot's other subtasks run.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures::FutureExt;
use riffle_api::head::VertexHead;
use riffle_api::link::OperatorMarker;
use riffle_api::metrics::JobCounters;
use riffle_api::partition::{FlushRegistry, SharedOutbox};
use riffle_api::snapshot::{
    ChannelState, OperatorRestore, OperatorSnapshots, PendingSnapshot, SourceSnapshot, SubtaskSnapshot,
};
use riffle_api::source::{ReadStatus, SourceHead};
use riffle_api::{CheckpointBarrier, Element, HeadKind, JobGraph, TaskEnv, TaskError};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::mpsc::{Sender, UnboundedSender};
use tokio::sync::{mpsc, watch};

use crate::exchange::ChannelId;
use crate::gateway::{ConfirmEnd, DeclineCheckpoint, RestoreState, SplitRequest, TaskOutcome, TaskRestore};
use crate::ids::ExecutionId;
use crate::input_gate::{BatchEncoder, Delivery, GateEvent, InputGate, Interrupt};
use crate::local_recovery::{LocalSnapshots, LOCAL_RECOVERY};
use crate::peers::JobMasterGateway;
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
    /// The TaskExecutor's local snapshot copies (used if the job enables local recovery).
    pub local: Option<Arc<LocalSnapshots>>,
    /// By subtask index: the data address of the TaskManager holding that slot when it is
    /// another process (None: this one). Empty when the whole job is in this process.
    pub remote_slots: Arc<Vec<Option<String>>>,
}

/// Sent by a Subtask to its Slot when it stopped: the child-exit message of this level.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct SubtaskExited {
    /// Which execution.
    pub execution: ExecutionId,
    /// How it ended.
    pub outcome: TaskOutcome,
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
    /// How it ended (cancelled, if it stops before its run does: its slot went away).
    outcome: TaskOutcome,
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
            outcome: TaskOutcome::Canceled,
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
            act.outcome = outcome_of(res, || running_operator(&graph, &marker, vertex));
            ctx.stop();
        }));
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.parent.do_send(SubtaskExited { execution: self.execution, outcome: self.outcome.clone() });
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

/// How a run ended, from what its future gave: the loop's own end (`Err` when it ended early),
/// or a panic that escaped the loop. Panics fail the subtask in the operator that was running
/// (`running`): an escaped one, and one the chain's own guard caught, which names no operator.
fn outcome_of(res: std::thread::Result<Result<(), TaskOutcome>>, running: impl FnOnce() -> String) -> TaskOutcome {
    match res {
        Ok(Ok(())) => TaskOutcome::Finished,
        Ok(Err(TaskOutcome::Failed(mut e))) => {
            if e.operator == riffle_api::panic_guard::PANICKED_IN_CHAIN {
                e.operator = running();
            }
            TaskOutcome::Failed(e)
        }
        Ok(Err(ended)) => ended,
        Err(panic) => {
            TaskOutcome::Failed(TaskError::msg(running(), format!("panicked: {}", panic_message(panic.as_ref()))))
        }
    }
}

/// The operator that ran last in the subtask (the vertex's name if unknown).
fn running_operator(graph: &JobGraph, marker: &OperatorMarker, vertex: usize) -> String {
    graph
        .operator_name(marker.current())
        .or_else(|| graph.vertices().get(vertex).map(|v| v.name.as_str()))
        .unwrap_or("unknown operator")
        .to_string()
}

fn name_of(graph: &JobGraph, e: &ExecutionId) -> String {
    let v = graph.vertices().get(e.vertex as usize);
    let (name, p) = v.map(|v| (v.name.as_str(), v.parallelism)).unwrap_or(("?", 0));
    format!("{name} ({}/{p})", e.subtask + 1)
}

async fn run(
    spec: SubtaskSpec,
    mut cancel: watch::Receiver<bool>,
    control: mpsc::UnboundedReceiver<SubtaskControl>,
    marker: OperatorMarker,
) -> Result<(), TaskOutcome> {
    let e = spec.execution;
    let graph = spec.graph.clone();
    let task_name = name_of(&graph, &e);
    let counters = spec.shared.counters(e.job);
    // The job's own options over the cluster's.
    let mut conf = spec.shared.config.clone();
    conf.merge(&graph.config);
    let state_backend = crate::state_backend::backend_config(&conf).map_err(|e| TaskError::new(&task_name, &e))?;
    let local_recovery = conf
        .get(&LOCAL_RECOVERY)
        .map_err(|err| TaskError::msg(&task_name, err.to_string()))?
        .unwrap_or(state_backend.kind == riffle_state::BackendKind::Sled);
    let local = spec.local.clone().filter(|_| local_recovery);
    let env = TaskEnv {
        outbox: SharedOutbox::default(),
        flush: FlushRegistry::default(),
        marker,
        counters: counters.clone(),
        batch_size: spec.batch_size,
        state_backend,
    };
    let mut instance = graph.instantiate(e.vertex as usize, e.subtask, &env)?;
    let mut replay = Vec::new();
    if let Some(r) = &spec.restore {
        let parallelism = graph.vertices().get(e.vertex as usize).map(|v| v.parallelism).unwrap_or(1);
        let range = riffle_state::key_group_range_for_subtask(graph.max_parallelism, parallelism, e.subtask);
        let local = local.as_deref().map(|l| (l, e));
        replay = restore_head(&mut instance.head, r, range, graph.max_parallelism, local).await?;
    }
    let mut senders = Vec::with_capacity(instance.output_channels.len());
    let mut priority = Vec::with_capacity(instance.output_channels.len());
    for key in &instance.output_channels {
        let id = ChannelId { job: e.job, attempt: e.attempt, key: *key };
        let tx = spec
            .shared
            .exchange
            .take_sender(id, spec.channel_capacity)
            .ok_or_else(|| TaskError::msg(&task_name, format!("output channel {key:?} was already taken")))?;
        if let Some(Some(address)) = spec.remote_slots.get(key.consumer as usize) {
            let plane = spec.shared.data_plane().ok_or_else(|| {
                TaskError::msg(&task_name, "a consumer runs in another process, but this one has no data plane")
            })?;
            plane.open_outbound(id, address, spec.graph.clone());
        }
        senders.push(tx.0);
        priority.push(tx.1);
    }
    let mut out = Outputs {
        name: task_name.clone(),
        channels: OutputChannels {
            outbox: env.outbox.clone(),
            stalled: vec![false; senders.len()],
            senders,
            priority,
            io: spec.shared.view(e.job).and_then(|v| v.io(e.vertex, e.subtask)).unwrap_or_default(),
        },
        flush: FlushTimer::new(env.flush.clone(), spec.buffer_timeout_ms, riffle_api::time::now_ms()),
        snapshots: Snapshots {
            execution: e,
            shared: spec.shared.clone(),
            max_parallelism: graph.max_parallelism,
            in_flight: InFlightSnapshots::default(),
            unaligned: None,
            local,
        },
        control,
        stop: SavepointStop::default(),
    };
    let mut input = match instance.head {
        HeadKind::Source(head) => TaskInput::Source(SourceInput::new(head, counters)),
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
            TaskInput::Gate(GateInput::new(head, InputGate::new(rxs, input_of, num_inputs)))
        }
    };
    let result = run_task(&mut input, replay, &mut out, &mut cancel).await;
    out.settle_checkpoints();
    result
}

/// Where a subtask's output goes and what it keeps track of while it runs.
struct Outputs {
    /// The subtask's name, for errors.
    name: String,
    /// The outbox and the output channels it is drained into.
    channels: OutputChannels,
    /// When partially filled batches go (`execution.buffer-timeout`).
    flush: FlushTimer,
    /// Checkpoint bookkeeping: snapshots being written, the unaligned one waiting.
    snapshots: Snapshots,
    /// Control messages from the subtask's actor.
    control: mpsc::UnboundedReceiver<SubtaskControl>,
    /// Stop-with-savepoint (sources).
    stop: SavepointStop,
}

/// The outbox the chain fills and the output channels it is drained into.
struct OutputChannels {
    /// Where the chain's writers leave batches (and the subtask its barriers).
    outbox: SharedOutbox,
    senders: Vec<Sender<Element>>,
    /// Each output channel's priority lane (unaligned checkpoint barriers).
    priority: Vec<UnboundedSender<CheckpointBarrier>>,
    /// Channels found full in the current pass of a drain.
    stalled: Vec<bool>,
    /// Records in and out and time blocked on full outputs, for the REST API and the UI.
    io: Arc<crate::job_view::SubtaskIo>,
}

/// When partially filled batches go: after `execution.buffer-timeout` (besides before every
/// wait for input and every in-band event, which the loop and the writers see to).
struct FlushTimer {
    registry: FlushRegistry,
    /// When partial batches last went, epoch ms.
    last: i64,
    timeout: i64,
}

impl FlushTimer {
    fn new(registry: FlushRegistry, timeout: i64, now: i64) -> Self {
        Self { registry, last: now, timeout }
    }

    /// Whether the buffer timeout says partial batches should go now.
    #[inline]
    fn due(&self, now: i64) -> bool {
        now - self.last >= self.timeout
    }

    /// Moves partially filled batches to the outbox (they are sent by the next drain).
    #[inline]
    fn flush(&mut self, now: i64) {
        self.registry.flush_all();
        self.last = now;
    }
}

/// Stop-with-savepoint, as far as a source got with it.
#[derive(Default)]
struct SavepointStop {
    /// The source emits nothing until this checkpoint is done.
    after: Option<u64>,
    /// The savepoint completed: the source ends its input.
    now: bool,
}

/// A subtask's checkpoint bookkeeping.
struct Snapshots {
    execution: ExecutionId,
    shared: Arc<RuntimeShared>,
    max_parallelism: u32,
    /// Snapshots handed to their writers and not settled yet.
    in_flight: InFlightSnapshots,
    /// An unaligned snapshot waiting for its channel state (every input's position marker).
    unaligned: Option<UnalignedSnapshot>,
    /// Local recovery: where snapshot copies are kept.
    local: Option<Arc<LocalSnapshots>>,
}

/// Records in an element (0 for anything but a batch).
#[inline]
fn records_in(el: &Element) -> u64 {
    match el {
        Element::Records { count, .. } => *count as u64,
        _ => 0,
    }
}

/// The synchronous part of an unaligned snapshot, kept until its channel state is known.
struct UnalignedSnapshot {
    barrier: CheckpointBarrier,
    pending: PendingSnapshot,
    sync_ms: u64,
}

/// Why [`OutputChannels::drain_until`] stopped before everything was sent.
enum DrainInterrupt {
    /// A control message arrived (sources: a checkpoint trigger must not wait for room).
    Control(SubtaskControl),
    /// The input gate needs attention (unaligned checkpoints).
    Gate(Interrupt),
}

impl OutputChannels {
    /// Sends everything the chain produced. A full channel holds back only its own elements
    /// (order within a channel is kept): what goes to other channels — a checkpoint barrier
    /// among them — leaves at once. The subtask then waits (backpressure) for the full one;
    /// while it waits, a control message (with `control`) or an input-gate interrupt (with
    /// `gate`) ends the wait: what is unsent goes back to the outbox, in order, and the
    /// interrupt is returned for the caller to act on before draining again.
    async fn drain_until(
        &mut self,
        name: &str,
        control_rx: &mut mpsc::UnboundedReceiver<SubtaskControl>,
        cancel: &mut watch::Receiver<bool>,
        control: bool,
        mut gate: Option<(&mut InputGate, &dyn BatchEncoder)>,
    ) -> Result<Option<DrainInterrupt>, TaskOutcome> {
        loop {
            let mut queue = {
                let mut ob = self.outbox.borrow_mut();
                if ob.queue.is_empty() {
                    return Ok(None);
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
                let tx = self.senders.get(ch).ok_or_else(|| TaskError::msg(name, format!("no output channel {ch}")))?;
                let n = records_in(&el);
                match tx.try_send(el) {
                    Ok(()) => self.io.wrote(n),
                    Err(TrySendError::Full(el)) => {
                        self.stalled[ch] = true;
                        any_stalled = true;
                        deferred.push_back((ch, el));
                    }
                    Err(TrySendError::Closed(_)) => {
                        return Err(peer_lost(name, "a downstream subtask stopped", cancel).await)
                    }
                }
            }
            if deferred.is_empty() {
                // Give the (now empty) buffer back so the next batch does not reallocate it.
                let mut ob = self.outbox.borrow_mut();
                if ob.queue.is_empty() {
                    ob.queue = queue;
                }
                return Ok(None);
            }
            self.stalled.iter_mut().for_each(|s| *s = false);
            let Some((ch, el)) = deferred.pop_front() else { continue };
            let tx = self.senders[ch].clone();
            let gate_event = async {
                match gate.as_mut() {
                    Some((g, enc)) => std::future::poll_fn(|cx| g.poll_interrupt(cx, *enc)).await,
                    None => futures::future::pending().await,
                }
            };
            let waiting = std::time::Instant::now();
            self.io.set_backpressured(true, 0);
            let io = self.io.clone();
            let interrupt = tokio::select! {
                permit = tx.reserve() => match permit {
                    Ok(permit) => {
                        io.wrote(records_in(&el));
                        permit.send(el);
                        None
                    }
                    Err(_) => return Err(peer_lost(name, "a downstream subtask stopped", cancel).await),
                },
                c = control_rx.recv(), if control => match c {
                    Some(c) => Some((DrainInterrupt::Control(c), el)),
                    None => return Err(TaskOutcome::Canceled),
                },
                ev = gate_event => Some((DrainInterrupt::Gate(ev), el)),
                _ = cancel.changed() => return Err(TaskOutcome::Canceled),
            };
            self.io.set_backpressured(false, waiting.elapsed().as_nanos() as u64);
            let mut ob = self.outbox.borrow_mut();
            let result = match interrupt {
                Some((why, el)) => {
                    deferred.push_front((ch, el));
                    Some(why)
                }
                None => None,
            };
            deferred.append(&mut ob.queue);
            ob.queue = deferred;
            if result.is_some() {
                return Ok(result);
            }
        }
    }

    /// Queues checkpoint barrier `barrier` after every element produced so far on every
    /// output channel (the next drain sends it); an unaligned barrier also goes out at once on
    /// every priority lane.
    fn queue_barrier(&self, barrier: &CheckpointBarrier) {
        if barrier.unaligned {
            for lane in &self.priority {
                // A closed lane is a consumer that stopped: the data path reports that.
                let _ = lane.send(barrier.clone());
            }
        }
        let mut ob = self.outbox.borrow_mut();
        for ch in 0..self.senders.len() {
            ob.queue.push_back((ch, Element::Barrier(barrier.clone())));
        }
    }
}

impl Snapshots {
    /// Hands a snapshot to a child that encodes, writes and acknowledges it.
    fn write(
        &mut self,
        barrier: CheckpointBarrier,
        pending: PendingSnapshot,
        source: Option<SourceSnapshot>,
        sync_ms: u64,
    ) {
        let task = self.in_flight.start(barrier.id);
        let writer = SnapshotWriter {
            execution: self.execution,
            shared: self.shared.clone(),
            barrier,
            task,
            sync_ms,
            local: self.local.clone(),
        };
        actix::spawn(writer.run(pending, source));
    }

    /// Keeps an unaligned snapshot until its channel state is complete; an older one still
    /// waiting is declined.
    fn hold(&mut self, snapshot: UnalignedSnapshot) {
        if let Some(old) = self.unaligned.replace(snapshot) {
            self.decline(old.barrier.id, "a newer unaligned checkpoint started before its channel state was complete");
        }
    }

    /// The channel state of unaligned checkpoint `id` is complete (or failed): the snapshot
    /// goes to its writer (or the checkpoint is declined).
    fn channel_state_complete(&mut self, id: u64, channels: Result<Vec<ChannelState>, String>) {
        let Some(u) = self.unaligned.take_if(|u| u.barrier.id == id) else { return };
        match channels {
            Ok(channels) => {
                let mut pending = u.pending;
                pending.set_channels(channels);
                self.write(u.barrier, pending, None, u.sync_ms);
            }
            Err(reason) => self.decline(id, &format!("cannot record its channel state: {reason}")),
        }
    }

    /// Tells the JobMaster this subtask cannot contribute to checkpoint `id`.
    fn decline(&self, id: u64, reason: &str) {
        if let Some(jm) = self.shared.job_master(self.execution.job) {
            jm.do_send(DeclineCheckpoint { execution: self.execution, checkpoint_id: id, reason: reason.to_string() });
        }
    }

    /// Checkpoint `id` completed or was aborted: its in-flight snapshot work is settled (an
    /// aborted one's files deleted, its waiting unaligned snapshot dropped).
    fn settle(&mut self, id: u64, completed: bool) {
        if completed {
            self.in_flight.completed(id);
        } else {
            self.in_flight.abort(id);
            if self.unaligned.as_ref().is_some_and(|u| u.barrier.id == id) {
                self.unaligned = None;
            }
        }
    }
}

impl Outputs {
    /// See [`OutputChannels::drain_until`]; `control`: whether a control message ends a wait.
    async fn drain_until(
        &mut self,
        cancel: &mut watch::Receiver<bool>,
        control: bool,
        gate: Option<(&mut InputGate, &dyn BatchEncoder)>,
    ) -> Result<Option<DrainInterrupt>, TaskOutcome> {
        self.channels.drain_until(&self.name, &mut self.control, cancel, control, gate).await
    }

    /// A checkpoint reached this subtask's consistent point: everything before it is
    /// processed. Takes the synchronous part of the snapshot (a copy) and queues the barrier
    /// after every record produced so far on every output channel (the caller's next drain
    /// sends it); an unaligned barrier also goes out at once on every priority lane.
    /// Encoding, writing and acknowledging are left to a child task while processing goes
    /// on — for an unaligned snapshot of a subtask with inputs (`await_channels`), once the
    /// channel state is complete ([`Snapshots::channel_state_complete`]).
    fn checkpoint(
        &mut self,
        barrier: CheckpointBarrier,
        head: &mut dyn Checkpointable,
        await_channels: bool,
    ) -> Result<(), TaskOutcome> {
        let started = std::time::Instant::now();
        let (pending, source) = head.take_snapshot(self.snapshots.max_parallelism, barrier.id)?;
        let sync_ms = started.elapsed().as_millis() as u64;
        // Partial batches go before the barrier (the buffer timeout's clock is not reset).
        self.flush.registry.flush_all();
        self.channels.queue_barrier(&barrier);
        if barrier.unaligned && await_channels {
            self.snapshots.hold(UnalignedSnapshot { barrier, pending, sync_ms });
            return Ok(());
        }
        self.snapshots.write(barrier, pending, source, sync_ms);
        Ok(())
    }

    /// The subtask is ending: checkpoint outcomes that arrived but were not handled still
    /// decide which snapshot files go (an aborted checkpoint's files are deleted even if
    /// acknowledged; the rest is decided when the in-flight snapshots are dropped).
    fn settle_checkpoints(&mut self) {
        while let Ok(c) = self.control.try_recv() {
            if let SubtaskControl::CheckpointDone { id, completed } = c {
                self.snapshots.settle(id, completed);
            }
        }
    }

    /// Handles control messages that arrived, without waiting.
    fn poll_control(&mut self, head: &mut dyn Checkpointable) -> Result<(), TaskOutcome> {
        while let Ok(c) = self.control.try_recv() {
            self.on_control(c, head)?;
        }
        Ok(())
    }

    /// Acts on a control message; what it queues is sent by the caller's next drain.
    fn on_control(&mut self, c: SubtaskControl, head: &mut dyn Checkpointable) -> Result<(), TaskOutcome> {
        match c {
            SubtaskControl::TriggerCheckpoint { barrier, stop_source } => {
                if stop_source {
                    self.stop.after = Some(barrier.id);
                }
                self.checkpoint(barrier, head, false)
            }
            SubtaskControl::CheckpointDone { id, completed } => {
                if self.stop.after == Some(id) {
                    self.stop.after = None;
                    self.stop.now = completed;
                }
                self.snapshots.settle(id, completed);
                head.notify(id, completed)?;
                Ok(())
            }
        }
    }

    /// The JobMaster of this subtask's job, if it is still there.
    fn job_master(&self) -> Option<JobMasterGateway> {
        self.snapshots.shared.job_master(self.snapshots.execution.job)
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
/// state (filtered to the key groups this subtask owns) and its reader's position. Returns
/// the channel state of an unaligned checkpoint, to replay before new input.
async fn restore_head(
    head: &mut HeadKind,
    restore: &TaskRestore,
    range: riffle_state::KeyGroupRange,
    max_parallelism: u32,
    local: Option<(&LocalSnapshots, ExecutionId)>,
) -> Result<Vec<ChannelState>, TaskError> {
    let mut snaps = Vec::with_capacity(restore.states.len());
    // Local recovery: the same subtask's own copy of this checkpoint, if this TaskExecutor
    // kept one (never after rescaling, where other subtasks' state is needed).
    let own = match local {
        Some((l, e)) if !restore.rescaled && restore.states.len() == 1 => l.load(&e, restore.checkpoint_id),
        _ => None,
    };
    let remote = if own.is_some() { &[][..] } else { &restore.states[..] };
    if let Some(bytes) = own {
        snaps.push(SubtaskSnapshot::decode(&bytes)?);
    }
    for s in remote {
        let snap = match s {
            RestoreState::Inline(bytes) => SubtaskSnapshot::decode(bytes)?,
            // Full or incremental (with its shared files), checksums verified.
            RestoreState::File(path) => crate::incremental::read_state_file(std::path::Path::new(path)).await?,
        };
        snaps.push(snap);
    }
    let mut channels = Vec::new();
    for snap in &mut snaps {
        channels.append(&mut snap.channels);
    }
    if restore.rescaled && !channels.is_empty() {
        return Err(TaskError::msg(
            "restore",
            format!(
                "checkpoint {} is unaligned and holds in-flight records, which cannot be redistributed to another \
                 parallelism: restore it at the parallelism it was taken with, then take a savepoint (savepoints \
                 are always aligned) and rescale from that",
                restore.checkpoint_id
            ),
        ));
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
            h.restore(&sources, &from)?;
        }
        HeadKind::Operators(h) => h.restore(&from)?,
    }
    Ok(channels)
}

/// How long a subtask whose peer vanished waits to be cancelled before it reports the loss
/// as its own failure.
const PEER_LOST_GRACE: Duration = Duration::from_secs(30);

/// How long a subtask waits for its JobMaster to confirm its end.
const CONFIRM_END_TIMEOUT: Duration = Duration::from_secs(60);

/// Before a subtask's operators see the end of their input — where a two-phase-commit sink
/// commits its last transaction on its own, with no checkpoint after it — its JobMaster
/// confirms that this attempt still counts ([`crate::gateway::ConfirmEnd`]). A TaskManager
/// frozen past its heartbeat timeout and thawed after its work restarted elsewhere is refused
/// (or finds its link gone), and its task fails without committing.
async fn confirm_end(out: &mut Outputs, cancel: &mut watch::Receiver<bool>) -> Result<(), TaskOutcome> {
    let jm =
        out.job_master().ok_or_else(|| TaskError::msg(&out.name, "the job master is gone: this attempt cannot end"))?;
    let execution = out.snapshots.execution;
    let answer = tokio::select! {
        r = tokio::time::timeout(CONFIRM_END_TIMEOUT, jm.confirm_end(ConfirmEnd { execution })) => r,
        _ = cancel.changed() => return Err(TaskOutcome::Canceled),
    };
    match answer {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(why))) => {
            Err(TaskError::msg(&out.name, format!("the job master refused this attempt's end: {why}")).into())
        }
        Ok(Err(why)) => Err(TaskError::msg(&out.name, format!("cannot reach the job master to end: {why}")).into()),
        Err(_) => Err(TaskError::msg(
            &out.name,
            format!("the job master did not confirm the end within {CONFIRM_END_TIMEOUT:?}"),
        )
        .into()),
    }
}

/// A peer subtask vanished without ending its stream: it failed, and its own report (the
/// root cause) is on its way to the JobMaster, which will cancel this subtask. Reporting the
/// loss now could overtake that report and become the job's root cause, so wait to be
/// cancelled; only if that does not happen, fail with the loss.
async fn peer_lost(name: &str, what: &str, cancel: &mut watch::Receiver<bool>) -> TaskOutcome {
    if *cancel.borrow() {
        return TaskOutcome::Canceled;
    }
    tokio::select! {
        _ = tokio::time::sleep(PEER_LOST_GRACE) => TaskOutcome::Failed(TaskError::msg(name, what)),
        _ = cancel.changed() => TaskOutcome::Canceled,
    }
}

async fn sleep_or_cancel(d: Duration, cancel: &mut watch::Receiver<bool>) -> Result<(), TaskOutcome> {
    tokio::select! {
        _ = tokio::time::sleep(d) => Ok(()),
        _ = cancel.changed() => Err(TaskOutcome::Canceled),
    }
}

/// What one step of a subtask's input came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Input was processed (a reader's poll, an input element): the after-step policy runs.
    Processed,
    /// Nothing to process now: partial batches go, outputs are drained, then the input waits.
    Idle,
    /// Stop-with-savepoint completed: the input ends here, without asking the JobMaster (the
    /// operators downstream ask when their input ends).
    Stop,
}

/// What the loop does once an idle input's wait is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Woken {
    /// Something was handled (input, a due timer, a control message): the after-step policy runs.
    Handled,
    /// Look at the input again first (a source: a trigger may have stopped it meanwhile).
    Retry,
}

/// What the after-step policy does, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct AfterStep {
    /// Fire the chain's due processing-time timers (then drain).
    timers: bool,
    /// The input ended: the end-of-input sequence runs (it flushes and drains itself).
    end: bool,
    /// The buffer timeout passed: flush partial batches (then drain).
    flush: bool,
}

impl AfterStep {
    /// The policy after every step (its output was drained): at `now`, with the chain's next
    /// timer at `next_timer`, whether the input `ended`, and partial batches last flushed as
    /// `flush` says.
    #[inline]
    fn at(now: i64, next_timer: Option<i64>, ended: bool, flush: &FlushTimer) -> Self {
        Self { timers: next_timer.is_some_and(|t| now >= t), end: ended, flush: !ended && flush.due(now) }
    }
}

/// A subtask's input: a source reader or an input gate, with the head it feeds. An enum, not a
/// trait object: its methods are called a few times per batch on the hot path.
// One per subtask, in its future: the gate's size costs nothing, a box would cost a pointer
// chase per call.
#[allow(clippy::large_enum_variant)]
enum TaskInput {
    Source(SourceInput),
    Gate(GateInput),
}

/// The data loop of every subtask: one step of input at a time, then one drain, timer and
/// flush policy ([`AfterStep`]), and one end-of-input sequence ([`end_of_input`]).
async fn run_task(
    input: &mut TaskInput,
    replay: Vec<ChannelState>,
    out: &mut Outputs,
    cancel: &mut watch::Receiver<bool>,
) -> Result<(), TaskOutcome> {
    input.replay(replay, out, cancel).await?;
    if input.ended() {
        return end_of_input(&mut Ending { input, out, cancel }, true).await;
    }
    loop {
        match input.next_step(out, cancel).await? {
            Step::Processed => {}
            Step::Idle => {
                // About to wait for input: partial batches go now.
                out.flush.flush(riffle_api::time::now_ms());
                input.drain(out, cancel).await?;
                if input.wait(out, cancel).await? == Woken::Retry {
                    continue;
                }
            }
            Step::Stop => return end_of_input(&mut Ending { input, out, cancel }, false).await,
        }
        input.drain(out, cancel).await?;
        let now = riffle_api::time::now_ms();
        let after = AfterStep::at(now, input.next_processing_time(), input.ended(), &out.flush);
        if after.timers {
            input.processing_time(now)?;
            input.drain(out, cancel).await?;
        }
        if after.end {
            return end_of_input(&mut Ending { input, out, cancel }, true).await;
        }
        if after.flush {
            out.flush.flush(now);
            input.drain(out, cancel).await?;
        }
        input.pace(out).await;
    }
}

/// The end of a subtask's input, step by step: a trait so that the order can be tested
/// without actors.
trait EndOfInput {
    /// The JobMaster confirms that this attempt still counts ([`confirm_end`]).
    async fn confirm_end(&mut self) -> Result<(), TaskOutcome>;
    /// The head ends its input: a source's final watermark and end of input, the operators'
    /// end of input (end of partition downstream).
    fn end_input(&mut self) -> Result<(), TaskOutcome>;
    /// Partial batches go.
    fn flush(&mut self);
    /// Everything goes out.
    async fn drain(&mut self) -> Result<(), TaskOutcome>;
}

/// The one end-of-input sequence: confirm the end with the JobMaster (unless `confirm` is
/// false: stop-with-savepoint), end the input, flush, final drain.
async fn end_of_input(task: &mut impl EndOfInput, confirm: bool) -> Result<(), TaskOutcome> {
    if confirm {
        task.confirm_end().await?;
    }
    task.end_input()?;
    task.flush();
    task.drain().await
}

/// A running subtask at its end.
struct Ending<'a> {
    input: &'a mut TaskInput,
    out: &'a mut Outputs,
    cancel: &'a mut watch::Receiver<bool>,
}

impl EndOfInput for Ending<'_> {
    async fn confirm_end(&mut self) -> Result<(), TaskOutcome> {
        confirm_end(self.out, self.cancel).await
    }
    fn end_input(&mut self) -> Result<(), TaskOutcome> {
        match self.input {
            TaskInput::Source(s) => s.head.finish()?,
            TaskInput::Gate(g) => g.head.end_input()?,
        }
        Ok(())
    }
    fn flush(&mut self) {
        self.out.flush.flush(riffle_api::time::now_ms());
    }
    async fn drain(&mut self) -> Result<(), TaskOutcome> {
        self.input.drain(self.out, self.cancel).await
    }
}

impl TaskInput {
    /// An unaligned checkpoint's in-flight records, processed before anything new.
    async fn replay(
        &mut self,
        replay: Vec<ChannelState>,
        out: &mut Outputs,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<(), TaskOutcome> {
        match self {
            // A source has no input channels, hence no channel state.
            TaskInput::Source(_) => Ok(()),
            TaskInput::Gate(g) => g.replay(replay, out, cancel).await,
        }
    }

    /// Takes the next step of input.
    async fn next_step(&mut self, out: &mut Outputs, cancel: &mut watch::Receiver<bool>) -> Result<Step, TaskOutcome> {
        match self {
            TaskInput::Source(s) => s.next_step(out, cancel).await,
            TaskInput::Gate(g) => g.next_step(out, cancel).await,
        }
    }

    /// Waits for input (or a timer, or a control message) after [`Step::Idle`].
    async fn wait(&mut self, out: &mut Outputs, cancel: &mut watch::Receiver<bool>) -> Result<Woken, TaskOutcome> {
        match self {
            TaskInput::Source(s) => s.wait(out, cancel).await,
            TaskInput::Gate(g) => g.wait(out, cancel).await,
        }
    }

    /// Sends everything the chain produced, awaiting room (backpressure); what must not wait
    /// for room meanwhile is handled at once: a source's control messages (checkpoint
    /// triggers), an operator subtask's unaligned barriers and completed channel state.
    async fn drain(&mut self, out: &mut Outputs, cancel: &mut watch::Receiver<bool>) -> Result<(), TaskOutcome> {
        match self {
            TaskInput::Source(s) => drain_source(out, &mut s.head, cancel).await,
            TaskInput::Gate(g) => drain_operators(out, &mut g.head, &mut g.gate, cancel).await,
        }
    }

    /// The chain's earliest processing-time timer.
    #[inline]
    fn next_processing_time(&self) -> Option<i64> {
        match self {
            TaskInput::Source(s) => s.head.next_processing_time(),
            TaskInput::Gate(g) => g.head.next_processing_time(),
        }
    }

    /// Fires the chain's processing-time timers due at `now`.
    fn processing_time(&mut self, now: i64) -> Result<(), TaskError> {
        match self {
            TaskInput::Source(s) => s.head.processing_time(now),
            TaskInput::Gate(g) => g.head.processing_time(now),
        }
    }

    /// Whether the input ended: the reader said so, or every input channel delivered its
    /// end of partition.
    #[inline]
    fn ended(&self) -> bool {
        match self {
            TaskInput::Source(s) => s.status == ReadStatus::EndOfInput,
            TaskInput::Gate(g) => g.gate.remaining() == 0,
        }
    }

    /// Lets the slot's other subtasks and this subtask's own actor (cancellation, control
    /// messages, snapshot writers) run on the shared slot thread.
    async fn pace(&mut self, out: &Outputs) {
        match self {
            TaskInput::Source(s) => {
                if s.status == ReadStatus::MoreAvailable {
                    // A poll is a few thousand records, so this costs well under a
                    // nanosecond per record.
                    tokio::task::yield_now().await;
                }
            }
            TaskInput::Gate(g) => {
                if g.pacer.due(std::time::Instant::now) {
                    // A subtask that always has input would otherwise never let the others on
                    // its thread run.
                    tokio::task::yield_now().await;
                    g.pacer.yielded(std::time::Instant::now());
                    out.channels.io.queued_in.store(g.gate.queued() as u64, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
    }
}

/// A source subtask's input: its reader, polled through the head.
struct SourceInput {
    head: Box<dyn SourceHead>,
    /// What the last poll said (before the first: more available).
    status: ReadStatus,
    /// Records emitted as last added to the job's counters.
    published: u64,
    counters: Arc<JobCounters>,
}

impl SourceInput {
    fn new(head: Box<dyn SourceHead>, counters: Arc<JobCounters>) -> Self {
        Self { head, status: ReadStatus::MoreAvailable, published: 0, counters }
    }

    /// Handles control messages that arrived, then polls the reader once — unless
    /// stop-with-savepoint holds it back or ends it, or the last poll found nothing (or no
    /// split) to read: then the source is idle.
    async fn next_step(&mut self, out: &mut Outputs, cancel: &mut watch::Receiver<bool>) -> Result<Step, TaskOutcome> {
        if *cancel.borrow() {
            return Err(TaskOutcome::Canceled);
        }
        out.poll_control(&mut self.head)?;
        drain_source(out, &mut self.head, cancel).await?;
        if out.stop.now {
            // Stop-with-savepoint completed: end here, nothing after the savepoint's barrier.
            return Ok(Step::Stop);
        }
        if out.stop.after.is_some() || matches!(self.status, ReadStatus::NothingAvailable | ReadStatus::NeedSplits) {
            return Ok(Step::Idle);
        }
        self.status = self.head.poll()?;
        let emitted = self.head.records_emitted();
        self.counters.source_records.fetch_add(emitted - self.published, std::sync::atomic::Ordering::Relaxed);
        self.published = emitted;
        Ok(Step::Processed)
    }

    /// Waits for what the source lacks: the savepoint it stops with to complete (emitting
    /// nothing meanwhile), splits from the enumerator, or data (10 ms at most, less if a
    /// timer is due sooner; a control message ends the wait).
    async fn wait(&mut self, out: &mut Outputs, cancel: &mut watch::Receiver<bool>) -> Result<Woken, TaskOutcome> {
        if out.stop.after.is_some() {
            tokio::select! {
                c = out.control.recv() => if let Some(c) = c {
                    out.on_control(c, &mut self.head)?;
                },
                _ = cancel.changed() => return Err(TaskOutcome::Canceled),
            }
            return Ok(Woken::Retry);
        }
        if out.stop.now {
            // The savepoint completed while the outputs drained.
            return Ok(Woken::Retry);
        }
        match std::mem::replace(&mut self.status, ReadStatus::MoreAvailable) {
            ReadStatus::NeedSplits => {
                let execution = out.snapshots.execution;
                let jm = out.job_master().ok_or_else(|| TaskError::msg(&out.name, "the job master is gone"))?;
                let resp = tokio::select! {
                    r = jm.request_splits(SplitRequest { execution }) => r,
                    _ = cancel.changed() => return Err(TaskOutcome::Canceled),
                };
                let resp = resp
                    .map_err(|err| TaskError::msg(&out.name, format!("cannot reach the source coordinator: {err}")))?
                    .map_err(|err| TaskError::msg(&out.name, format!("split enumerator failed: {err}")))?;
                self.head.add_splits(resp.splits)?;
                if resp.no_more_splits {
                    self.head.no_more_splits();
                }
            }
            ReadStatus::NothingAvailable => {
                let now = riffle_api::time::now_ms();
                let wait = self.head.next_processing_time().map(|t| (t - now).clamp(0, 10)).unwrap_or(10);
                tokio::select! {
                    r = sleep_or_cancel(Duration::from_millis(wait as u64), cancel) => r?,
                    c = out.control.recv() => if let Some(c) = c {
                        out.on_control(c, &mut self.head)?;
                    },
                }
            }
            ReadStatus::MoreAvailable | ReadStatus::EndOfInput => {}
        }
        Ok(Woken::Retry)
    }
}

/// An operator subtask's input: its input gate, feeding the vertex head.
struct GateInput {
    head: Box<dyn VertexHead>,
    gate: InputGate,
    /// What the gate's watermark valve decided, to apply to the head (reused buffer).
    events: Vec<GateEvent>,
    pacer: Pacer,
}

impl GateInput {
    fn new(head: Box<dyn VertexHead>, gate: InputGate) -> Self {
        Self { head, gate, events: Vec::new(), pacer: Pacer::new(std::time::Instant::now()) }
    }

    /// Processes an unaligned checkpoint's in-flight records (restored channel state).
    async fn replay(
        &mut self,
        replay: Vec<ChannelState>,
        out: &mut Outputs,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<(), TaskOutcome> {
        for channel in replay {
            for batch in &channel.batches {
                self.head.push_encoded(channel.input as usize, batch)?;
                drain_operators(out, &mut self.head, &mut self.gate, cancel).await?;
            }
        }
        Ok(())
    }

    /// Processes the next element of any input channel, if one is there.
    async fn next_step(&mut self, out: &mut Outputs, cancel: &mut watch::Receiver<bool>) -> Result<Step, TaskOutcome> {
        // While a capture is incomplete, reading ahead frees room that producers on this
        // thread fill once it yields: pull their data up to the markers before the next
        // (possibly slow) batch, so the checkpoint does not wait for it.
        while self.gate.read_ahead(&self.head) {
            tokio::task::yield_now().await;
        }
        finish_capture(out, &mut self.gate);
        match self.gate.try_next(&self.head) {
            Some(d) => {
                self.deliver(d, out, cancel).await?;
                Ok(Step::Processed)
            }
            None => Ok(Step::Idle),
        }
    }

    /// Waits for input, the chain's next timer or a control message, and processes what
    /// arrived.
    async fn wait(&mut self, out: &mut Outputs, cancel: &mut watch::Receiver<bool>) -> Result<Woken, TaskOutcome> {
        let now = riffle_api::time::now_ms();
        let wait = self.head.next_processing_time().map(|t| (t - now).max(0) as u64);
        let timer = async {
            match wait {
                Some(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                None => futures::future::pending::<()>().await,
            }
        };
        out.channels.io.set_idle(true, 0);
        let io = out.channels.io.clone();
        let woke = tokio::select! {
            d = std::future::poll_fn(|cx| self.gate.poll_next(cx, &self.head)) => Some(d),
            _ = timer => None,
            c = out.control.recv() => {
                if let Some(c) = c {
                    out.on_control(c, &mut self.head)?;
                }
                None
            }
            _ = cancel.changed() => return Err(TaskOutcome::Canceled),
        };
        io.set_idle(false, self.gate.queued());
        if let Some(d) = woke {
            self.deliver(d, out, cancel).await?;
        }
        Ok(Woken::Handled)
    }

    /// Acts on what the gate delivered. A lost channel fails the subtask (after the grace
    /// for its cancellation); a completed capture is handed over by the next step.
    async fn deliver(
        &mut self,
        d: Delivery,
        out: &mut Outputs,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<(), TaskOutcome> {
        match d {
            Delivery::Element { channel, element } => self.on_element(channel, element, out),
            Delivery::ChannelLost { .. } => {
                let why = "an upstream subtask stopped before the end of its partition";
                Err(peer_lost(&out.name, why, cancel).await)
            }
            Delivery::CaptureComplete => Ok(()),
        }
    }

    /// Processes element `element` of channel `ch`.
    #[inline]
    fn on_element(&mut self, ch: usize, element: Element, out: &mut Outputs) -> Result<(), TaskOutcome> {
        let head = &mut self.head;
        let gate = &mut self.gate;
        let events = &mut self.events;
        match element {
            Element::Records { batch, count } => {
                out.channels.io.read(count as u64);
                // Between records, an unaligned barrier or the others on this thread (a
                // source's trigger, snapshot writers) may ask for the rest to wait.
                let input = gate.input_of[ch];
                let pacer = &self.pacer;
                let mut pause = || gate.priority_pending() || pacer.overdue();
                if let Some((count, rest)) = head.push_batch_until(input, batch, &mut pause)? {
                    out.channels.io.read_back(count as u64);
                    gate.push_front(ch, Element::Records { count, batch: rest });
                }
            }
            Element::Watermark(w) => gate.on_watermark(ch, w, events),
            Element::Idle(b) => gate.on_idle(ch, b, events),
            Element::EndOfPartition => {
                if let Some(input) = gate.on_end(ch, events) {
                    for ev in events.drain(..) {
                        apply(head, ev)?;
                    }
                    head.end_of_input(input)?;
                }
            }
            Element::Barrier(b) if b.unaligned => start_unaligned(out, head, gate, b)?,
            Element::Barrier(b) => gate.on_barrier(ch, b),
        }
        if let Some(barrier) = gate.take_completed_barrier() {
            for ev in events.drain(..) {
                apply(head, ev)?;
            }
            out.checkpoint(barrier, head, false)?;
        }
        for ev in events.drain(..) {
            apply(head, ev)?;
        }
        Ok(())
    }
}

/// A busy operator subtask yields its thread at least this often (slow records make 16
/// batches take seconds).
const YIELD_EVERY: Duration = Duration::from_millis(2);

/// A busy operator subtask yields its thread at least every this many input steps.
const YIELD_EVERY_STEPS: u32 = 16;

/// When a busy operator subtask lets the others on its slot's thread run: every
/// [`YIELD_EVERY_STEPS`] steps or [`YIELD_EVERY`], whichever comes first; a head asks
/// [`Pacer::overdue`] every 64 records of a batch.
struct Pacer {
    steps: u32,
    last_yield: std::time::Instant,
}

impl Pacer {
    fn new(now: std::time::Instant) -> Self {
        Self { steps: 0, last_yield: now }
    }

    /// Counts a step; whether the subtask should yield now (`now` is read only if the step
    /// count does not say so already).
    #[inline]
    fn due(&mut self, now: impl FnOnce() -> std::time::Instant) -> bool {
        self.steps = self.steps.wrapping_add(1);
        self.steps.is_multiple_of(YIELD_EVERY_STEPS) || now().duration_since(self.last_yield) >= YIELD_EVERY
    }

    /// The subtask yielded at `now`.
    #[inline]
    fn yielded(&mut self, now: std::time::Instant) {
        self.last_yield = now;
    }

    /// Whether the subtask ran longer than [`YIELD_EVERY`] without yielding.
    #[inline]
    fn overdue(&self) -> bool {
        self.last_yield.elapsed() >= YIELD_EVERY
    }
}

/// Drains a source's outputs; a control message that arrives while it waits for room (a
/// checkpoint trigger, above all) is handled at once instead of after the backlog.
async fn drain_source(
    out: &mut Outputs,
    head: &mut Box<dyn SourceHead>,
    cancel: &mut watch::Receiver<bool>,
) -> Result<(), TaskOutcome> {
    while let Some(interrupt) = out.drain_until(cancel, true, None).await? {
        if let DrainInterrupt::Control(c) = interrupt {
            out.on_control(c, head)?;
        }
    }
    Ok(())
}

/// Drains an operator subtask's outputs. While it waits for room, an unaligned checkpoint's
/// barrier starts the snapshot at once, and channel state that became complete goes to its
/// writer: neither waits for the backlog (FLIP-76).
async fn drain_operators(
    out: &mut Outputs,
    head: &mut Box<dyn VertexHead>,
    gate: &mut InputGate,
    cancel: &mut watch::Receiver<bool>,
) -> Result<(), TaskOutcome> {
    loop {
        match out.drain_until(cancel, false, Some((&mut *gate, &*head))).await? {
            None => return Ok(()),
            Some(DrainInterrupt::Gate(Interrupt::Barrier(_, barrier))) => start_unaligned(out, head, gate, barrier)?,
            Some(DrainInterrupt::Gate(Interrupt::CaptureComplete)) => finish_capture(out, gate),
            Some(DrainInterrupt::Control(c)) => out.on_control(c, head)?,
        }
    }
}

/// The first barrier of an unaligned checkpoint arrived: snapshot now, forward the barrier,
/// and record in-flight input until every channel's position marker.
fn start_unaligned(
    out: &mut Outputs,
    head: &mut Box<dyn VertexHead>,
    gate: &mut InputGate,
    barrier: CheckpointBarrier,
) -> Result<(), TaskOutcome> {
    let id = barrier.id;
    out.checkpoint(barrier, head, true)?;
    gate.start_capture(id, &*head);
    finish_capture(out, gate);
    Ok(())
}

/// Hands complete channel state to the waiting unaligned snapshot.
#[inline]
fn finish_capture(out: &mut Outputs, gate: &mut InputGate) {
    if let Some((id, channels)) = gate.take_completed_capture() {
        out.snapshots.channel_state_complete(id, channels);
    }
}

fn apply(head: &mut Box<dyn VertexHead>, ev: GateEvent) -> Result<(), TaskError> {
    match ev {
        GateEvent::Watermark(w) => head.watermark(w),
        GateEvent::Idle(b) => head.idle(b),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Instant;

    use riffle_api::partition::Outbox;

    use super::*;

    fn flush_timer(last: i64, timeout: i64) -> FlushTimer {
        FlushTimer::new(FlushRegistry::default(), timeout, last)
    }

    #[test]
    fn a_run_ends_finished_canceled_or_failed_and_a_panic_fails_the_running_operator() {
        let running = || "map".to_string();
        assert_eq!(outcome_of(Ok(Ok(())), running), TaskOutcome::Finished);
        assert_eq!(outcome_of(Ok(Err(TaskOutcome::Canceled)), running), TaskOutcome::Canceled);
        let sink = TaskError::msg("sink", "refused");
        assert_eq!(outcome_of(Ok(Err(sink.clone().into())), running), TaskOutcome::Failed(sink), "named: kept");
        let guarded = TaskError::msg(riffle_api::panic_guard::PANICKED_IN_CHAIN, "panicked: boom");
        assert_eq!(
            outcome_of(Ok(Err(guarded.into())), running),
            TaskOutcome::Failed(TaskError::msg("map", "panicked: boom")),
            "caught by the chain's guard"
        );
        let escaped = std::panic::catch_unwind(|| -> Result<(), TaskOutcome> { panic!("bad {}", 7) });
        assert_eq!(outcome_of(escaped, running), TaskOutcome::Failed(TaskError::msg("map", "panicked: bad 7")));
    }

    #[test]
    fn partial_batches_go_when_the_buffer_timeout_passed_and_the_timeout_restarts_with_each_flush() {
        let mut f = flush_timer(1_000, 100);
        assert!(!f.due(1_099));
        assert!(f.due(1_100), "at the timeout");
        f.flush(1_150);
        assert!(!f.due(1_200), "measured from the last flush");
        assert!(f.due(1_250));
        assert!(flush_timer(1_000, 0).due(1_000), "a timeout of 0 flushes after every step");
    }

    #[test]
    fn after_a_step_due_timers_fire_the_end_wins_over_a_due_flush_and_otherwise_nothing_happens() {
        let f = flush_timer(1_000, 100);
        assert_eq!(AfterStep::at(1_050, None, false, &f), AfterStep::default());
        assert_eq!(AfterStep::at(1_050, Some(1_051), false, &f), AfterStep::default(), "a timer not yet due");
        let timers = AfterStep { timers: true, ..AfterStep::default() };
        assert_eq!(AfterStep::at(1_050, Some(1_050), false, &f), timers, "a timer due now");
        let flush = AfterStep { flush: true, ..AfterStep::default() };
        assert_eq!(AfterStep::at(1_100, None, false, &f), flush);
        // The end-of-input sequence flushes and drains itself; timers still fire before it.
        let end = AfterStep { timers: true, end: true, flush: false };
        assert_eq!(AfterStep::at(1_100, Some(900), true, &f), end);
    }

    #[test]
    fn a_busy_operator_subtask_yields_every_16_steps_and_every_2_ms() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0);
        let due: Vec<bool> = (0..32).map(|_| p.due(|| t0)).collect();
        let at: Vec<usize> = due.iter().enumerate().filter(|(_, d)| **d).map(|(i, _)| i + 1).collect();
        assert_eq!(at, vec![16, 32], "by steps, however fast");
        assert!(p.due(|| t0 + YIELD_EVERY), "by time, however few steps");
        p.yielded(t0 + YIELD_EVERY);
        assert!(!p.due(|| t0 + YIELD_EVERY + Duration::from_millis(1)));
        assert!(!Pacer::new(Instant::now()).overdue());
    }

    /// An end of input that writes down what it did.
    #[derive(Default)]
    struct Script {
        calls: Vec<&'static str>,
        refuse: bool,
    }

    impl EndOfInput for Script {
        async fn confirm_end(&mut self) -> Result<(), TaskOutcome> {
            self.calls.push("confirm");
            if self.refuse {
                return Err(TaskError::msg("sink", "the job master refused this attempt's end").into());
            }
            Ok(())
        }
        fn end_input(&mut self) -> Result<(), TaskOutcome> {
            self.calls.push("end input");
            Ok(())
        }
        fn flush(&mut self) {
            self.calls.push("flush");
        }
        async fn drain(&mut self) -> Result<(), TaskOutcome> {
            self.calls.push("drain");
            Ok(())
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_end_is_confirmed_before_the_input_ends_then_partial_batches_go_and_everything_is_drained() {
        let mut s = Script::default();
        assert!(end_of_input(&mut s, true).await.is_ok());
        assert_eq!(s.calls, vec!["confirm", "end input", "flush", "drain"]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_refused_end_ends_nothing() {
        // A two-phase-commit sink commits at its end of input: a superseded attempt must not.
        let mut s = Script { refuse: true, ..Script::default() };
        let r = end_of_input(&mut s, true).await;
        assert!(matches!(r, Err(TaskOutcome::Failed(e)) if e.message.contains("refused")));
        assert_eq!(s.calls, vec!["confirm"]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_source_stopped_with_a_savepoint_ends_without_asking() {
        let mut s = Script::default();
        assert!(end_of_input(&mut s, false).await.is_ok());
        assert_eq!(s.calls, vec!["end input", "flush", "drain"]);
    }

    fn outputs(n: usize, capacity: usize) -> (OutputChannels, Vec<mpsc::Receiver<Element>>) {
        let (senders, rxs): (Vec<_>, Vec<_>) = (0..n).map(|_| mpsc::channel::<Element>(capacity)).unzip();
        let channels = OutputChannels {
            outbox: SharedOutbox::new(std::cell::RefCell::new(Outbox::default())),
            senders,
            priority: (0..n).map(|_| mpsc::unbounded_channel().0).collect(),
            stalled: vec![false; n],
            io: Arc::default(),
        };
        (channels, rxs)
    }

    fn records(count: u32) -> Element {
        Element::Records { count, batch: Box::new(vec![0u32; count as usize]) }
    }

    fn watermark(e: Option<Element>) -> Option<i64> {
        match e {
            Some(Element::Watermark(w)) => Some(w),
            _ => None,
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_full_channel_holds_back_only_its_own_elements_and_a_control_message_ends_the_wait() {
        let (mut out, mut rxs) = outputs(2, 1);
        out.outbox.borrow_mut().queue.extend([
            (0, Element::Watermark(1)),
            (0, Element::Watermark(2)), // channel 0 is full: waits
            (1, records(5)),            // another channel: goes at once
            (0, Element::Watermark(4)), // after 2 on its channel: waits too
        ]);
        let (control_tx, mut control) = mpsc::unbounded_channel();
        let (_cancel_tx, mut cancel) = watch::channel(false);
        control_tx.send(SubtaskControl::CheckpointDone { id: 7, completed: true }).unwrap();
        let r = out.drain_until("op", &mut control, &mut cancel, true, None).await;
        assert!(matches!(r, Ok(Some(DrainInterrupt::Control(SubtaskControl::CheckpointDone { id: 7, .. })))));
        assert_eq!(watermark(rxs[0].try_recv().ok()), Some(1));
        assert!(matches!(rxs[1].try_recv(), Ok(Element::Records { count: 5, .. })));
        let left: Vec<_> = out.outbox.borrow_mut().queue.drain(..).map(|(ch, e)| (ch, watermark(Some(e)))).collect();
        assert_eq!(left, vec![(0, Some(2)), (0, Some(4))], "the unsent back in the outbox, in order");
        assert_eq!(out.io.records_out.load(Ordering::Relaxed), 5);
        assert!(!out.io.backpressured.load(Ordering::Relaxed), "no longer waiting");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_drain_waits_for_room_and_keeps_each_channels_order() {
        let (mut out, mut rxs) = outputs(1, 1);
        out.outbox.borrow_mut().queue.extend((1..=4).map(|w| (0, Element::Watermark(w))));
        let mut rx = rxs.remove(0);
        let consumer = tokio::spawn(async move {
            let mut got = Vec::new();
            while got.len() < 4 {
                got.push(watermark(rx.recv().await).unwrap());
            }
            got
        });
        let (_control_tx, mut control) = mpsc::unbounded_channel();
        let (_cancel_tx, mut cancel) = watch::channel(false);
        let r = out.drain_until("op", &mut control, &mut cancel, false, None).await;
        assert!(matches!(r, Ok(None)));
        assert!(out.outbox.borrow().queue.is_empty());
        assert_eq!(consumer.await.unwrap(), vec![1, 2, 3, 4]);
        assert!(out.io.backpressured_ns.load(Ordering::Relaxed) > 0, "the wait for room is counted");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn cancellation_ends_a_wait_for_room() {
        let (mut out, _rxs) = outputs(1, 1);
        out.outbox.borrow_mut().queue.extend((1..=2).map(|w| (0, Element::Watermark(w))));
        let (_control_tx, mut control) = mpsc::unbounded_channel();
        let (cancel_tx, mut cancel) = watch::channel(false);
        cancel_tx.send(true).unwrap();
        let r = out.drain_until("op", &mut control, &mut cancel, true, None).await;
        assert!(matches!(r, Err(TaskOutcome::Canceled)));
    }
}
