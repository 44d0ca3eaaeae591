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

use crate::checkpoint_storage;
use crate::exchange::ChannelId;
use crate::gateway::{ConfirmEnd, DeclineCheckpoint, RestoreState, SplitRequest, TaskRestore, TaskState};
use crate::ids::ExecutionId;
use crate::input_gate::{BatchEncoder, Delivery, GateEvent, InputGate, Interrupt};
use crate::local_recovery::{LocalSnapshots, LOCAL_RECOVERY};
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
                Ok(Err(Stop::Failed(mut e))) => {
                    // A panic caught by the chain's own guard names no operator: the one
                    // that was running did it.
                    if e.operator == riffle_api::panic_guard::PANICKED_IN_CHAIN {
                        e.operator = running_operator(&graph, &marker, vertex);
                    }
                    TaskState::Failed(e)
                }
                Err(panic) => {
                    let op = running_operator(&graph, &marker, vertex);
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
) -> Result<(), Stop> {
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
        stalled: vec![false; senders.len()],
        env,
        senders,
        priority,
        last_flush: riffle_api::time::now_ms(),
        timeout: spec.buffer_timeout_ms,
        name: task_name.clone(),
        control,
        execution: e,
        shared: spec.shared.clone(),
        max_parallelism: graph.max_parallelism,
        snapshots: InFlightSnapshots::default(),
        unaligned: None,
        local,
        stop_after: None,
        stop_now: false,
        io: spec.shared.view(e.job).and_then(|v| v.io(e.vertex, e.subtask)).unwrap_or_default(),
    };
    let result = match instance.head {
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
            run_operators(head, gate, replay, &mut out, &mut cancel).await
        }
    };
    out.settle_checkpoints();
    result
}

struct Outputs {
    env: TaskEnv,
    senders: Vec<Sender<Element>>,
    /// Each output channel's priority lane (unaligned checkpoint barriers).
    priority: Vec<UnboundedSender<CheckpointBarrier>>,
    stalled: Vec<bool>,
    last_flush: i64,
    timeout: i64,
    name: String,
    control: mpsc::UnboundedReceiver<SubtaskControl>,
    execution: ExecutionId,
    shared: Arc<RuntimeShared>,
    max_parallelism: u32,
    snapshots: InFlightSnapshots,
    /// An unaligned snapshot waiting for its channel state (every input's position marker).
    unaligned: Option<UnalignedSnapshot>,
    /// Local recovery: where snapshot copies are kept.
    local: Option<Arc<LocalSnapshots>>,
    /// Stop-with-savepoint: the source emits nothing until this checkpoint is done.
    stop_after: Option<u64>,
    /// Stop-with-savepoint completed: the source ends its input.
    stop_now: bool,
    /// Records in and out and time blocked on full outputs, for the REST API and the UI.
    io: Arc<crate::job_view::SubtaskIo>,
}

/// Records in an element (0 for anything but a batch).
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

/// Why [`Outputs::drain_until`] stopped before everything was sent.
enum DrainInterrupt {
    /// A control message arrived (sources: a checkpoint trigger must not wait for room).
    Control(SubtaskControl),
    /// The input gate needs attention (unaligned checkpoints).
    Gate(Interrupt),
}

impl Outputs {
    /// Sends everything the chain produced. A full channel holds back only its own elements
    /// (order within a channel is kept): what goes to other channels — a checkpoint barrier
    /// among them — leaves at once. The subtask then waits (backpressure) for the full one;
    /// while it waits, a control message (with `control`) or an input-gate interrupt (with
    /// `gate`) ends the wait: what is unsent goes back to the outbox, in order, and the
    /// interrupt is returned for the caller to act on before draining again.
    async fn drain_until(
        &mut self,
        cancel: &mut watch::Receiver<bool>,
        control: bool,
        mut gate: Option<(&mut InputGate, &dyn BatchEncoder)>,
    ) -> Result<Option<DrainInterrupt>, Stop> {
        loop {
            let mut queue = {
                let mut ob = self.env.outbox.borrow_mut();
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
                let tx = self
                    .senders
                    .get(ch)
                    .ok_or_else(|| TaskError::msg(&self.name, format!("no output channel {ch}")))?;
                let n = records_in(&el);
                match tx.try_send(el) {
                    Ok(()) => self.io.wrote(n),
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
                return Ok(None);
            }
            self.stalled.iter_mut().for_each(|s| *s = false);
            let Some((ch, el)) = deferred.pop_front() else { continue };
            let tx = self.senders[ch].clone();
            let control_rx = &mut self.control;
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
                    Err(_) => return Err(peer_lost(&self.name, "a downstream subtask stopped", cancel).await),
                },
                c = control_rx.recv(), if control => match c {
                    Some(c) => Some((DrainInterrupt::Control(c), el)),
                    None => return Err(Stop::Cancelled),
                },
                ev = gate_event => Some((DrainInterrupt::Gate(ev), el)),
                _ = cancel.changed() => return Err(Stop::Cancelled),
            };
            self.io.set_backpressured(false, waiting.elapsed().as_nanos() as u64);
            let mut ob = self.env.outbox.borrow_mut();
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

    /// Moves partially filled batches to the outbox (they are sent by the next drain).
    fn flush_batches(&mut self, now: i64) {
        self.env.flush.flush_all();
        self.last_flush = now;
    }

    /// Whether the buffer timeout says partial batches should go now.
    fn flush_due(&self, now: i64) -> bool {
        now - self.last_flush >= self.timeout
    }

    /// A checkpoint reached this subtask's consistent point: everything before it is
    /// processed. Takes the synchronous part of the snapshot (a copy) and queues the barrier
    /// after every record produced so far on every output channel (the caller's next drain
    /// sends it); an unaligned barrier also goes out at once on every priority lane.
    /// Encoding, writing and acknowledging are left to a child task while processing goes
    /// on — for an unaligned snapshot of a subtask with inputs (`await_channels`), once the
    /// channel state is complete ([`Outputs::channel_state_complete`]).
    fn checkpoint(
        &mut self,
        barrier: CheckpointBarrier,
        head: &mut dyn Checkpointable,
        await_channels: bool,
    ) -> Result<(), Stop> {
        let started = std::time::Instant::now();
        let (pending, source) = head.take_snapshot(self.max_parallelism, barrier.id)?;
        let sync_ms = started.elapsed().as_millis() as u64;
        if barrier.unaligned {
            for lane in &self.priority {
                // A closed lane is a consumer that stopped: the data path reports that.
                let _ = lane.send(barrier.clone());
            }
        }
        self.env.flush.flush_all();
        {
            let mut ob = self.env.outbox.borrow_mut();
            for ch in 0..self.senders.len() {
                ob.queue.push_back((ch, Element::Barrier(barrier.clone())));
            }
        }
        if barrier.unaligned && await_channels {
            if let Some(old) = self.unaligned.replace(UnalignedSnapshot { barrier, pending, sync_ms }) {
                self.decline(
                    old.barrier.id,
                    "a newer unaligned checkpoint started before its channel state was complete",
                );
            }
            return Ok(());
        }
        self.write_snapshot(barrier, pending, source, sync_ms);
        Ok(())
    }

    /// Hands a snapshot to a child that encodes, writes and acknowledges it.
    fn write_snapshot(
        &mut self,
        barrier: CheckpointBarrier,
        pending: PendingSnapshot,
        source: Option<SourceSnapshot>,
        sync_ms: u64,
    ) {
        let task = self.snapshots.start(barrier.id);
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

    /// The channel state of unaligned checkpoint `id` is complete (or failed): the snapshot
    /// goes to its writer (or the checkpoint is declined).
    fn channel_state_complete(&mut self, id: u64, channels: Result<Vec<ChannelState>, String>) {
        let Some(u) = self.unaligned.take_if(|u| u.barrier.id == id) else { return };
        match channels {
            Ok(channels) => {
                let mut pending = u.pending;
                pending.set_channels(channels);
                self.write_snapshot(u.barrier, pending, None, u.sync_ms);
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

    /// The subtask is ending: checkpoint outcomes that arrived but were not handled still
    /// decide which snapshot files go (an aborted checkpoint's files are deleted even if
    /// acknowledged; the rest is decided when the in-flight snapshots are dropped).
    fn settle_checkpoints(&mut self) {
        while let Ok(c) = self.control.try_recv() {
            if let SubtaskControl::CheckpointDone { id, completed } = c {
                self.settle(id, completed);
            }
        }
    }

    /// Checkpoint `id` completed or was aborted: its in-flight snapshot work is settled (an
    /// aborted one's files deleted, its waiting unaligned snapshot dropped).
    fn settle(&mut self, id: u64, completed: bool) {
        if completed {
            self.snapshots.completed(id);
        } else {
            self.snapshots.abort(id);
            if self.unaligned.as_ref().is_some_and(|u| u.barrier.id == id) {
                self.unaligned = None;
            }
        }
    }

    /// Handles control messages that arrived, without waiting.
    fn poll_control(&mut self, head: &mut dyn Checkpointable) -> Result<(), Stop> {
        while let Ok(c) = self.control.try_recv() {
            self.on_control(c, head)?;
        }
        Ok(())
    }

    /// Acts on a control message; what it queues is sent by the caller's next drain.
    fn on_control(&mut self, c: SubtaskControl, head: &mut dyn Checkpointable) -> Result<(), Stop> {
        match c {
            SubtaskControl::TriggerCheckpoint { barrier, stop_source } => {
                if stop_source {
                    self.stop_after = Some(barrier.id);
                }
                self.checkpoint(barrier, head, false)
            }
            SubtaskControl::CheckpointDone { id, completed } => {
                if self.stop_after == Some(id) {
                    self.stop_after = None;
                    self.stop_now = completed;
                }
                self.settle(id, completed);
                head.notify(id, completed)?;
                Ok(())
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
async fn confirm_end(out: &mut Outputs, cancel: &mut watch::Receiver<bool>) -> Result<(), Stop> {
    let jm = out
        .shared
        .job_master(out.execution.job)
        .ok_or_else(|| TaskError::msg(&out.name, "the job master is gone: this attempt cannot end"))?;
    let answer = tokio::select! {
        r = tokio::time::timeout(CONFIRM_END_TIMEOUT, jm.confirm_end(ConfirmEnd { execution: out.execution })) => r,
        _ = cancel.changed() => return Err(Stop::Cancelled),
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

/// Drains a source's outputs; a control message that arrives while it waits for room (a
/// checkpoint trigger, above all) is handled at once instead of after the backlog.
async fn drain_source(
    out: &mut Outputs,
    head: &mut Box<dyn SourceHead>,
    cancel: &mut watch::Receiver<bool>,
) -> Result<(), Stop> {
    while let Some(interrupt) = out.drain_until(cancel, true, None).await? {
        if let DrainInterrupt::Control(c) = interrupt {
            out.on_control(c, head)?;
        }
    }
    Ok(())
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
        out.poll_control(&mut head)?;
        drain_source(out, &mut head, cancel).await?;
        if out.stop_now {
            // Stop-with-savepoint completed: end here, nothing after the savepoint's barrier.
            head.finish()?;
            out.flush_batches(riffle_api::time::now_ms());
            return drain_source(out, &mut head, cancel).await;
        }
        if out.stop_after.is_some() {
            // Waiting for the stop-with-savepoint's savepoint: emit nothing meanwhile.
            out.flush_batches(riffle_api::time::now_ms());
            drain_source(out, &mut head, cancel).await?;
            tokio::select! {
                c = out.control.recv() => if let Some(c) = c {
                    out.on_control(c, &mut head)?;
                },
                _ = cancel.changed() => return Err(Stop::Cancelled),
            }
            continue;
        }
        let status = head.poll()?;
        let emitted = head.records_emitted();
        counters.source_records.fetch_add(emitted - published, std::sync::atomic::Ordering::Relaxed);
        published = emitted;
        drain_source(out, &mut head, cancel).await?;
        let now = riffle_api::time::now_ms();
        if head.next_processing_time().is_some_and(|t| now >= t) {
            head.processing_time(now)?;
            drain_source(out, &mut head, cancel).await?;
        }
        if out.flush_due(now) {
            out.flush_batches(now);
            drain_source(out, &mut head, cancel).await?;
        }
        match status {
            ReadStatus::MoreAvailable => {
                // Let the slot's other subtasks and this subtask's own actor (checkpoint
                // triggers, cancellation) run: a poll is a few thousand records, so this costs
                // well under a nanosecond per record.
                tokio::task::yield_now().await;
            }
            ReadStatus::NeedSplits => {
                out.flush_batches(now);
                drain_source(out, &mut head, cancel).await?;
                let jm =
                    spec.shared.job_master(e.job).ok_or_else(|| TaskError::msg(&out.name, "the job master is gone"))?;
                let resp = tokio::select! {
                    r = jm.request_splits(SplitRequest { execution: e }) => r,
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
                out.flush_batches(now);
                drain_source(out, &mut head, cancel).await?;
                let wait = head.next_processing_time().map(|t| (t - now).clamp(0, 10)).unwrap_or(10);
                tokio::select! {
                    r = sleep_or_cancel(Duration::from_millis(wait as u64), cancel) => r?,
                    c = out.control.recv() => if let Some(c) = c {
                        out.on_control(c, &mut head)?;
                    },
                }
            }
            ReadStatus::EndOfInput => {
                confirm_end(out, cancel).await?;
                head.finish()?;
                out.flush_batches(now);
                return drain_source(out, &mut head, cancel).await;
            }
        }
    }
}

/// Drains an operator subtask's outputs. While it waits for room, an unaligned checkpoint's
/// barrier starts the snapshot at once, and channel state that became complete goes to its
/// writer: neither waits for the backlog (FLIP-76).
async fn drain_operators(
    out: &mut Outputs,
    head: &mut Box<dyn VertexHead>,
    gate: &mut InputGate,
    cancel: &mut watch::Receiver<bool>,
) -> Result<(), Stop> {
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
) -> Result<(), Stop> {
    let id = barrier.id;
    out.checkpoint(barrier, head, true)?;
    gate.start_capture(id, &*head);
    finish_capture(out, gate);
    Ok(())
}

/// Hands complete channel state to the waiting unaligned snapshot.
fn finish_capture(out: &mut Outputs, gate: &mut InputGate) {
    if let Some((id, channels)) = gate.take_completed_capture() {
        out.channel_state_complete(id, channels);
    }
}

/// A busy operator subtask yields its thread at least this often (slow records make 16
/// batches take seconds).
const YIELD_EVERY: Duration = Duration::from_millis(2);

async fn run_operators(
    mut head: Box<dyn VertexHead>,
    mut gate: InputGate,
    replay: Vec<ChannelState>,
    out: &mut Outputs,
    cancel: &mut watch::Receiver<bool>,
) -> Result<(), Stop> {
    let mut events = Vec::new();
    let mut batches = 0u32;
    let mut last_yield = std::time::Instant::now();
    // An unaligned checkpoint's in-flight records come before anything new.
    for channel in replay {
        for batch in &channel.batches {
            head.push_encoded(channel.input as usize, batch)?;
            drain_operators(out, &mut head, &mut gate, cancel).await?;
        }
    }
    if gate.remaining() == 0 {
        confirm_end(out, cancel).await?;
        head.end_input()?;
        out.flush_batches(riffle_api::time::now_ms());
        return drain_operators(out, &mut head, &mut gate, cancel).await;
    }
    loop {
        batches = batches.wrapping_add(1);
        if batches.is_multiple_of(16) || last_yield.elapsed() >= YIELD_EVERY {
            // A subtask that always has input would otherwise never let the others on its
            // thread run: its actor (cancellation), control messages, snapshot writers.
            tokio::task::yield_now().await;
            last_yield = std::time::Instant::now();
            out.io.queued_in.store(gate.queued() as u64, std::sync::atomic::Ordering::Relaxed);
        }
        // While a capture is incomplete, reading ahead frees room that producers on this
        // thread fill once it yields: pull their data up to the markers before the next
        // (possibly slow) batch, so the checkpoint does not wait for it.
        while gate.read_ahead(&head) {
            tokio::task::yield_now().await;
        }
        finish_capture(out, &mut gate);
        let delivery = match gate.try_next(&head) {
            Some(d) => Some(d),
            None => {
                let now = riffle_api::time::now_ms();
                out.flush_batches(now);
                drain_operators(out, &mut head, &mut gate, cancel).await?;
                let wait = head.next_processing_time().map(|t| (t - now).max(0) as u64);
                let timer = async {
                    match wait {
                        Some(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                        None => futures::future::pending::<()>().await,
                    }
                };
                out.io.set_idle(true, 0);
                let io = out.io.clone();
                let woke = tokio::select! {
                    d = std::future::poll_fn(|cx| gate.poll_next(cx, &head)) => Some(d),
                    _ = timer => None,
                    c = out.control.recv() => {
                        if let Some(c) = c {
                            out.on_control(c, &mut head)?;
                        }
                        None
                    }
                    _ = cancel.changed() => return Err(Stop::Cancelled),
                };
                io.set_idle(false, gate.queued());
                woke
            }
        };
        if let Some(Delivery::ChannelLost { .. }) = delivery {
            let why = "an upstream subtask stopped before the end of its partition";
            return Err(peer_lost(&out.name, why, cancel).await);
        }
        if let Some(Delivery::Element { channel: ch, element }) = delivery {
            match element {
                Element::Records { batch, count } => {
                    out.io.read(count as u64);
                    // Between records, an unaligned barrier or the others on this thread (a
                    // source's trigger, snapshot writers) may ask for the rest to wait.
                    let input = gate.input_of[ch];
                    let mut pause = || gate.priority_pending() || last_yield.elapsed() >= YIELD_EVERY;
                    if let Some((count, rest)) = head.push_batch_until(input, batch, &mut pause)? {
                        out.io.read_back(count as u64);
                        gate.push_front(ch, Element::Records { count, batch: rest });
                    }
                }
                Element::Watermark(w) => gate.on_watermark(ch, w, &mut events),
                Element::Idle(b) => gate.on_idle(ch, b, &mut events),
                Element::EndOfPartition => {
                    if let Some(input) = gate.on_end(ch, &mut events) {
                        for ev in events.drain(..) {
                            apply(&mut head, ev)?;
                        }
                        head.end_of_input(input)?;
                    }
                }
                Element::Barrier(b) if b.unaligned => start_unaligned(out, &mut head, &mut gate, b)?,
                Element::Barrier(b) => gate.on_barrier(ch, b),
            }
            if let Some(barrier) = gate.take_completed_barrier() {
                for ev in events.drain(..) {
                    apply(&mut head, ev)?;
                }
                out.checkpoint(barrier, &mut head, false)?;
            }
            for ev in events.drain(..) {
                apply(&mut head, ev)?;
            }
        }
        drain_operators(out, &mut head, &mut gate, cancel).await?;
        let now = riffle_api::time::now_ms();
        if head.next_processing_time().is_some_and(|t| now >= t) {
            head.processing_time(now)?;
            drain_operators(out, &mut head, &mut gate, cancel).await?;
        }
        if gate.remaining() == 0 {
            confirm_end(out, cancel).await?;
            head.end_input()?;
            out.flush_batches(now);
            return drain_operators(out, &mut head, &mut gate, cancel).await;
        }
        if out.flush_due(now) {
            out.flush_batches(now);
            drain_operators(out, &mut head, &mut gate, cancel).await?;
        }
    }
}

fn apply(head: &mut Box<dyn VertexHead>, ev: GateEvent) -> Result<(), TaskError> {
    match ev {
        GateEvent::Watermark(w) => head.watermark(w),
        GateEvent::Idle(b) => head.idle(b),
    }
}
