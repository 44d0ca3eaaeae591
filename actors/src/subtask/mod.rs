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
//!
//! Checkpoints after tasks finish (FLIP-147): a subtask whose chain commits through
//! checkpoints (a two-phase-commit sink) does not finish at its end of input while
//! checkpointing is on: it reports that its input ended, takes the checkpoints it is
//! triggered for directly from then on (no barrier reaches it any more), and finishes once
//! one of them completed. A subtask with input triggered directly keeps the trigger until its
//! input ended. A finished source leaves its reader's last position for later checkpoints,
//! and a subtask of a vertex that had finished in the checkpoint restored from only ends its
//! output channels ([`run_finished`]).

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
use serde_bytes::ByteBuf;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::mpsc::{Sender, UnboundedSender};
use tokio::sync::{mpsc, watch};

mod checkpoints;
mod heads;
mod outputs;
mod task_loop;

use checkpoints::{CheckpointBook, OnTrigger};
use heads::*;
use outputs::*;
use task_loop::*;

use crate::checkpoint_coordinator::{AFTER_TASKS_FINISH, INTERVAL};
use crate::exchange::ChannelId;
use crate::gateway::{
    ConfirmEnd, DeclineCheckpoint, RestoreState, SplitRequest, TaskOutcome, TaskRestore, TaskState, TaskStateUpdate,
};
use crate::ids::{ExecutionId, ResourceId};
use crate::input_gate::{BatchEncoder, Delivery, GateEvent, InputGate, Interrupt};
use crate::local_recovery::{LocalSnapshots, LOCAL_RECOVERY};
use crate::peers::JobMasterGateway;
use crate::services::TaskServices;
use crate::snapshot_writer::{InFlightSnapshots, SnapshotWriter};
use crate::supervision::panic_message;

/// Everything a subtask needs to run.
pub struct SubtaskSpec {
    /// Which execution.
    pub execution: ExecutionId,
    /// The TaskExecutor it runs in (named in its reports).
    pub location: ResourceId,
    /// The job's graph.
    pub graph: Arc<JobGraph>,
    /// Its JobMaster, counters and channels.
    pub services: TaskServices,
    /// Records per batch.
    pub batch_size: usize,
    /// Batches per channel: the most a channel's queue holds.
    pub channel_capacity: usize,
    /// Buffer debloating of the output channels (None: each may fill its queue).
    pub debloat: Option<crate::debloat::DebloatSettings>,
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
    /// A finished source's last reader position (encoded `SourceSnapshot`).
    pub final_source: Option<ByteBuf>,
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
    /// A finished source's last reader position.
    final_source: Option<ByteBuf>,
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
            final_source: None,
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
            let res = res.map(|r| {
                r.map(|final_source| {
                    act.final_source = final_source;
                })
            });
            act.outcome = outcome_of(res, || running_operator(&graph, &marker, vertex));
            ctx.stop();
        }));
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        let final_source = self.final_source.take().filter(|_| self.outcome == TaskOutcome::Finished);
        self.parent.do_send(SubtaskExited { execution: self.execution, outcome: self.outcome.clone(), final_source });
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

/// Runs the subtask; a finished source gives its reader's last position.
async fn run(
    spec: SubtaskSpec,
    mut cancel: watch::Receiver<bool>,
    control: mpsc::UnboundedReceiver<SubtaskControl>,
    marker: OperatorMarker,
) -> Result<Option<ByteBuf>, TaskOutcome> {
    let e = spec.execution;
    let graph = spec.graph.clone();
    let task_name = name_of(&graph, &e);
    if spec.restore.as_ref().is_some_and(|r| r.finished) {
        return run_finished(&spec, &task_name, &mut cancel).await;
    }
    let counters = spec.services.counters.clone();
    // The job's own options over the cluster's.
    let mut conf = spec.services.config.clone();
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
        final_checkpoint: Default::default(),
    };
    let mut instance = graph.instantiate(e.vertex as usize, e.subtask, &env)?;
    // A chain that commits through checkpoints waits for one after its end of input, if
    // checkpoints come and go on after tasks finish (FLIP-147).
    let config_err = |err: riffle_api::ConfigError| TaskError::msg(&task_name, err.to_string());
    let waits_final = env.final_checkpoint.wanted()
        && conf.get(&INTERVAL).map_err(config_err)?.is_some()
        && conf.get(&AFTER_TASKS_FINISH).map_err(config_err)?;
    env.final_checkpoint.set_coming(waits_final);
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
            .services
            .data
            .exchange
            .take_sender(id, spec.channel_capacity)
            .ok_or_else(|| TaskError::msg(&task_name, format!("output channel {key:?} was already taken")))?;
        if let Some(Some(address)) = spec.remote_slots.get(key.consumer as usize) {
            let plane = spec.services.data.data_plane().ok_or_else(|| {
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
            ended: vec![false; senders.len()],
            debloat: crate::debloat::Debloater::new(
                spec.debloat,
                senders.len(),
                spec.channel_capacity,
                std::time::Instant::now(),
            ),
            senders,
            priority,
            io: spec.services.io.clone(),
        },
        flush: FlushTimer::new(env.flush.clone(), spec.buffer_timeout_ms, riffle_api::time::now_ms()),
        snapshots: Snapshots {
            execution: e,
            job_master: spec.services.job_master.clone(),
            max_parallelism: graph.max_parallelism,
            in_flight: InFlightSnapshots::default(),
            unaligned: None,
            local,
        },
        control,
        book: CheckpointBook::new(false, waits_final),
        final_source: None,
        location: spec.location.clone(),
    };
    let mut input = match instance.head {
        HeadKind::Source(head) => TaskInput::Source(SourceInput::new(head, counters)),
        HeadKind::Operators(head) => {
            let channels = graph.input_channels(e.vertex as usize, e.subtask);
            let mut rxs = Vec::with_capacity(channels.len());
            let mut input_of = Vec::with_capacity(channels.len());
            for c in &channels {
                let id = ChannelId { job: e.job, attempt: e.attempt, key: c.key };
                let rx = spec.services.data.exchange.take_receiver(id, spec.channel_capacity).ok_or_else(|| {
                    TaskError::msg(&task_name, format!("input channel {:?} was already taken", c.key))
                })?;
                rxs.push(rx);
                input_of.push(c.input);
            }
            let num_inputs = graph.vertices().get(e.vertex as usize).map(|v| v.num_inputs).unwrap_or(1);
            out.book = CheckpointBook::new(true, waits_final);
            let gate = InputGate::new(rxs, input_of, num_inputs).with_watermark_gauge(spec.services.io.clone());
            TaskInput::Gate(GateInput::new(head, gate))
        }
    };
    let result = run_task(&mut input, replay, &mut out, &mut cancel).await;
    out.settle_checkpoints();
    result.map(|()| out.final_source.take())
}

/// A subtask of a vertex that had finished in the checkpoint restored from (FLIP-147): its
/// operators are not built or run again. It ends its output channels and reads its input
/// channels to their end (whatever comes is discarded: it was processed before the
/// checkpoint); a source gives back the reader position it was restored with.
async fn run_finished(
    spec: &SubtaskSpec,
    task_name: &str,
    cancel: &mut watch::Receiver<bool>,
) -> Result<Option<ByteBuf>, TaskOutcome> {
    let e = spec.execution;
    let graph = &spec.graph;
    tracing::info!(job = %e.job, vertex = e.vertex, subtask = e.subtask, "finished in the checkpoint: not run again");
    let mut senders = Vec::new();
    for key in graph.output_channels(e.vertex as usize, e.subtask) {
        let id = ChannelId { job: e.job, attempt: e.attempt, key };
        let (tx, _) = spec
            .services
            .data
            .exchange
            .take_sender(id, spec.channel_capacity)
            .ok_or_else(|| TaskError::msg(task_name, format!("output channel {key:?} was already taken")))?;
        if let Some(Some(address)) = spec.remote_slots.get(key.consumer as usize) {
            let plane = spec.services.data.data_plane().ok_or_else(|| {
                TaskError::msg(task_name, "a consumer runs in another process, but this one has no data plane")
            })?;
            plane.open_outbound(id, address, graph.clone());
        }
        senders.push(tx);
    }
    for tx in senders {
        tokio::select! {
            r = tx.send(Element::EndOfPartition) => if r.is_err() {
                return Err(peer_lost(task_name, "a downstream subtask stopped", cancel).await);
            },
            _ = cancel.changed() => return Err(TaskOutcome::Canceled),
        }
    }
    for c in graph.input_channels(e.vertex as usize, e.subtask) {
        let id = ChannelId { job: e.job, attempt: e.attempt, key: c.key };
        let (mut rx, _) = spec
            .services
            .data
            .exchange
            .take_receiver(id, spec.channel_capacity)
            .ok_or_else(|| TaskError::msg(task_name, format!("input channel {:?} was already taken", c.key)))?;
        loop {
            tokio::select! {
                el = rx.recv() => match el {
                    Some(Element::EndOfPartition) => break,
                    Some(_) => {}
                    None => return Err(peer_lost(task_name, "an upstream subtask stopped before the end of its partition", cancel).await),
                },
                _ = cancel.changed() => return Err(TaskOutcome::Canceled),
            }
        }
    }
    Ok(spec.restore.as_ref().and_then(|r| r.source.clone()))
}

#[cfg(test)]
mod tests;
