//! The checkpoint protocol as a pure state machine: every decision the coordinator makes
//! (whether to trigger, which id, when a checkpoint is complete, what an abort deletes, when
//! the coordinator may stop) is taken here, as a function of the events seen so far.
//!
//! `CoordinatorCore::on(event, now)` returns the commands the shell ([`super::actor`]) runs:
//! sending gateway messages, writing metadata, deleting directories, answering callers. The
//! core holds no channel, no actor address and no future; callers waiting for an answer are
//! opaque [`WaiterId`]s, ids being reserved are [`IdRequest`]s, and time comes in with each
//! event. So every path (decline, timeout, subsumption, late acks, failed writes, stop) is
//! tested as a plain table of events and expected commands.
//!
//! Invariant: no I/O and no clock reads in this file (no actix, tokio, filesystem or
//! `Instant::now`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use riffle_state::checkpoint_metadata::{
    CheckpointKind, CheckpointMetadata, EnumeratorState, StateHandle, SubtaskState, VertexInfo,
};
use serde_bytes::ByteBuf;

use super::settings::CheckpointSettings;
use crate::error::RuntimeError;
use crate::ids::{ExecutionId, JobId};

pub use crate::clock::Clock;

/// Stands for a caller waiting for a trigger's outcome (the shell keeps the reply channel
/// under this token), so the core holds no channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WaiterId(pub u64);

/// Names one checkpoint id being reserved (from the local counter or the HA job store), so
/// the answer finds the trigger that asked for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdRequest(pub u64);

/// What is asked of one trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerRequest {
    /// Checkpoint or savepoint.
    pub kind: CheckpointKind,
    /// A savepoint's base directory, already absolute (the caller's or `state.savepoints.dir`);
    /// none refuses a savepoint.
    pub savepoint_dir: Option<PathBuf>,
    /// Stop-with-savepoint: the sources end after the barrier.
    pub stop_sources: bool,
    /// Who gets the outcome (none for periodic checkpoints).
    pub waiter: Option<WaiterId>,
}

impl TriggerRequest {
    /// A checkpoint, periodic (no waiter) or on demand.
    pub fn checkpoint(waiter: Option<WaiterId>) -> Self {
        TriggerRequest { kind: CheckpointKind::Checkpoint, savepoint_dir: None, stop_sources: false, waiter }
    }
}

/// How far a subtask got towards its end, for checkpoints after tasks finish (FLIP-147).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskEnd {
    /// Its input ended and its output went out; it waits for a checkpoint taken after that
    /// (it is triggered directly from now on) before it finishes.
    InputEnded,
    /// It finished: it counts as acknowledged, with no operator state and, for a source,
    /// its reader's last position (every split it read to the end).
    Finished {
        /// The encoded `SourceSnapshot` of a source subtask.
        source: Option<ByteBuf>,
    },
}

/// A subtask's acknowledgement, as it arrives through the gateway.
pub use crate::gateway::AcknowledgeCheckpoint as Ack;

/// What happened, as the shell tells the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoordinatorEvent {
    /// The coordinator started: subtasks that already wait for a final checkpoint get it.
    Started,
    /// The periodic timer fired (`execution.checkpointing.interval`): trigger a checkpoint
    /// unless `max-concurrent-checkpoints` or `min-pause` hold it back.
    Tick,
    /// A savepoint or a checkpoint on demand: not held back by `min-pause` or
    /// `max-concurrent-checkpoints`.
    Trigger(TriggerRequest),
    /// The id asked for with [`CoordinatorCommand::ReserveId`].
    IdReserved {
        /// The request.
        request: IdRequest,
        /// The id.
        id: u64,
    },
    /// No id could be reserved (the job store failed).
    IdRefused {
        /// The request.
        request: IdRequest,
        /// Why.
        error: String,
    },
    /// A subtask acknowledged its part.
    Acknowledged(Ack),
    /// A subtask cannot take the checkpoint.
    Declined {
        /// Which execution.
        execution: ExecutionId,
        /// The checkpoint.
        checkpoint_id: u64,
        /// Why.
        reason: String,
    },
    /// The timeout set with [`CoordinatorCommand::ScheduleTimeout`] passed.
    TimedOut {
        /// The checkpoint.
        checkpoint_id: u64,
    },
    /// The write asked for with [`CoordinatorCommand::WriteMetadata`] ended.
    MetadataWritten {
        /// The checkpoint.
        checkpoint_id: u64,
        /// Ok, or why the metadata (or the retention) failed.
        result: Result<(), RuntimeError>,
    },
    /// The split enumerators' states asked for with
    /// [`CoordinatorCommand::SnapshotEnumerators`] (by source vertex), or why there are none.
    EnumeratorsSnapshotted {
        /// The checkpoint.
        checkpoint_id: u64,
        /// The states, or why one could not be taken.
        result: Result<Vec<(u32, Vec<u8>)>, RuntimeError>,
    },
    /// A subtask's input ended, or it finished: checkpoints go on without it (FLIP-147).
    TaskEnded {
        /// Which execution.
        execution: ExecutionId,
        /// How far it got.
        end: TaskEnd,
    },
    /// Stop triggering and abort what is pending (the attempt ends, or, with
    /// `checkpoints-after-tasks-finish` off, a task finished).
    Stop {
        /// Why.
        reason: String,
        /// The job is suspended (its JobManager lost its leadership): what the aborted
        /// checkpoints wrote stays — the job's checkpoint directory is the next leader's now,
        /// and this coordinator deletes nothing there any more (late acknowledgements
        /// included).
        keep_files: bool,
    },
}

/// A completed trigger's outcome for its waiter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// The checkpoint's id.
    pub checkpoint_id: u64,
    /// Its directory (none: kept in memory only).
    pub dir: Option<PathBuf>,
}

/// An update of the job's checkpoint history (`CheckpointHistory`), one per method there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatsUpdate {
    /// A checkpoint was triggered.
    Triggered {
        /// Its id.
        checkpoint_id: u64,
        /// Whether it is a savepoint.
        savepoint: bool,
        /// Trigger time, epoch ms.
        trigger_ms: i64,
        /// Subtasks that must acknowledge.
        num_subtasks: u32,
        /// Its directory.
        path: Option<String>,
    },
    /// A subtask acknowledged.
    Acknowledged {
        /// The checkpoint.
        checkpoint_id: u64,
        /// The subtask's vertex.
        vertex: u32,
        /// The subtask's index.
        subtask: u32,
        /// State and source position, bytes.
        bytes: u64,
        /// In-flight data persisted, bytes.
        persisted: u64,
        /// Synchronous and asynchronous snapshot time, ms.
        timings: (u64, u64),
        /// Alignment time, ms.
        alignment_ms: u64,
        /// When, epoch ms.
        now_ms: i64,
    },
    /// A checkpoint completed.
    Completed {
        /// Its id.
        checkpoint_id: u64,
        /// When, epoch ms.
        completion_ms: i64,
        /// Its directory.
        path: Option<String>,
    },
    /// A checkpoint was aborted.
    Failed {
        /// Its id.
        checkpoint_id: u64,
        /// When, epoch ms.
        now_ms: i64,
        /// Why.
        why: String,
    },
}

/// What the shell must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoordinatorCommand {
    /// Reserve a checkpoint id (local counter, or the HA job store's) and answer with
    /// [`CoordinatorEvent::IdReserved`] or [`CoordinatorEvent::IdRefused`].
    ReserveId {
        /// The request to answer.
        request: IdRequest,
    },
    /// Take the split enumerators' states for checkpoint `checkpoint_id` and answer with
    /// [`CoordinatorEvent::EnumeratorsSnapshotted`]; its triggers wait for the answer.
    SnapshotEnumerators {
        /// The checkpoint.
        checkpoint_id: u64,
    },
    /// Send `TriggerCheckpoint` to the subtasks `to`: the running sources, and the subtasks
    /// whose every upstream subtask ended (FLIP-147), which no barrier reaches any more.
    SendTrigger {
        /// The checkpoint.
        checkpoint_id: u64,
        /// Who gets it.
        to: Vec<ExecutionId>,
        /// Its directory for state files (none: state stays inline).
        target: Option<String>,
        /// Aligned barriers.
        aligned: bool,
        /// Unaligned barriers (FLIP-76).
        unaligned: bool,
        /// State below this many bytes is inlined.
        inline_threshold: usize,
        /// Snapshots may be increments on a completed checkpoint (`state.backend.incremental`):
        /// checkpoints with a directory only, never savepoints, which stay self-contained.
        incremental: bool,
        /// Stop-with-savepoint.
        stop_sources: bool,
    },
    /// Answer with [`CoordinatorEvent::TimedOut`] after `after`.
    ScheduleTimeout {
        /// The checkpoint.
        checkpoint_id: u64,
        /// `execution.checkpointing.timeout`.
        after: Duration,
    },
    /// Update the checkpoint history.
    RecordStats(StatsUpdate),
    /// Send `NotifyCheckpoint` to every subtask.
    Notify {
        /// The checkpoint.
        checkpoint_id: u64,
        /// Completed (`true`) or aborted.
        completed: bool,
    },
    /// Write the metadata into `dir`, then (checkpoints) keep the `retain.1` newest in the job
    /// directory `retain.0`; answer with [`CoordinatorEvent::MetadataWritten`].
    WriteMetadata {
        /// What to write.
        meta: Arc<CheckpointMetadata>,
        /// The checkpoint's directory.
        dir: PathBuf,
        /// The job directory and `state.checkpoints.num-retained` (none for savepoints).
        retain: Option<(PathBuf, usize)>,
    },
    /// Delete an aborted checkpoint's directory (in the background; a missing one is fine).
    DeleteDir(PathBuf),
    /// Tell the JobMaster: restarts resume from this one.
    Completed {
        /// What it consists of.
        meta: Arc<CheckpointMetadata>,
        /// Its directory (none: kept in memory only).
        dir: Option<PathBuf>,
    },
    /// Answer a waiting caller.
    Answer {
        /// Who.
        waiter: WaiterId,
        /// The outcome.
        result: Result<Completion, RuntimeError>,
    },
    /// Stop the coordinator: stopped, and no metadata write in flight.
    StopActor,
}

/// Why a checkpoint is not triggered after the coordinator stopped.
pub const STOPPED: &str = "checkpointing has stopped (the job attempt ended or a task finished)";

/// How many aborted checkpoints' directories the core remembers for late acks.
pub const REMEMBERED_ABORTED_DIRS: usize = 64;

struct Pending {
    kind: CheckpointKind,
    triggered_ms: i64,
    dir: Option<PathBuf>,
    acked: HashMap<ExecutionId, SubtaskState>,
    waiter: Option<WaiterId>,
    /// Who was sent its trigger (more join when their upstream ends).
    triggered: HashSet<ExecutionId>,
    stop_sources: bool,
    /// The split enumerators' states (taken before the first trigger went out).
    enumerators: Vec<EnumeratorState>,
    /// Its triggers went out (after the enumerators' states were taken).
    sent: bool,
}

/// A metadata write under way.
struct Writing {
    meta: Arc<CheckpointMetadata>,
    dir: PathBuf,
    waiter: Option<WaiterId>,
}

/// The coordinator's state and decisions for one job attempt (see the module docs).
pub struct CoordinatorCore {
    job: JobId,
    settings: CheckpointSettings,
    /// The job's checkpoint directory (absolute), if checkpoints go to storage.
    job_dir: Option<PathBuf>,
    /// Every subtask of the attempt: all must acknowledge (or have finished), and only they
    /// count.
    tasks: HashSet<ExecutionId>,
    /// Each subtask's upstream subtasks (none: a source).
    upstream: HashMap<ExecutionId, Vec<ExecutionId>>,
    /// Subtasks whose input ended (they wait for a final checkpoint).
    input_ended: HashSet<ExecutionId>,
    /// Subtasks that finished, with a source's last reader position.
    finished: HashMap<ExecutionId, Option<ByteBuf>>,
    /// Whether the job has split enumerators whose state goes into checkpoints.
    enumerators: bool,
    /// A subtask's input ended with no pending checkpoint to take after it: a final
    /// checkpoint is due once no subtask has input left and none is pending.
    final_due: bool,
    vertices: Vec<VertexInfo>,
    max_parallelism: u32,
    next_request: u64,
    /// Triggers whose id is being reserved: they count as pending for
    /// `max-concurrent-checkpoints`.
    reserving: BTreeMap<IdRequest, TriggerRequest>,
    pending: BTreeMap<u64, Pending>,
    /// Metadata writes under way: a stop waits for them, so a checkpoint every subtask
    /// acknowledged is not lost.
    writing: BTreeMap<u64, Writing>,
    /// Directories of recently aborted checkpoints: a subtask may still write its state file
    /// there after the abort (its acknowledgement comes late), and then it must go too.
    aborted_dirs: BTreeMap<u64, PathBuf>,
    last_completion: Option<Instant>,
    stopped: bool,
    /// Stopped for a suspended job: nothing is deleted any more.
    keep_files: bool,
}

impl CoordinatorCore {
    /// A core for one attempt whose subtasks are `tasks`; `job_dir` is
    /// [`CheckpointSettings::job_dir`], resolved by the shell (it reads the current directory).
    /// Every subtask counts as a source until [`Self::with_upstream`] says otherwise.
    pub fn new(
        job: JobId,
        settings: CheckpointSettings,
        job_dir: Option<PathBuf>,
        tasks: impl IntoIterator<Item = ExecutionId>,
        vertices: Vec<VertexInfo>,
        max_parallelism: u32,
    ) -> Self {
        Self {
            job,
            settings,
            job_dir,
            tasks: tasks.into_iter().collect(),
            upstream: HashMap::new(),
            input_ended: HashSet::new(),
            finished: HashMap::new(),
            enumerators: false,
            final_due: false,
            vertices,
            max_parallelism,
            next_request: 0,
            reserving: BTreeMap::new(),
            pending: BTreeMap::new(),
            writing: BTreeMap::new(),
            aborted_dirs: BTreeMap::new(),
            last_completion: None,
            stopped: false,
            keep_files: false,
        }
    }

    /// The subtasks each subtask reads from: triggers go to the subtasks with none still
    /// running (the sources, at first).
    pub fn with_upstream(mut self, upstream: HashMap<ExecutionId, Vec<ExecutionId>>) -> Self {
        self.upstream = upstream;
        self
    }

    /// The job has split enumerators: each checkpoint takes their state before its triggers.
    pub fn with_enumerators(mut self, enumerators: bool) -> Self {
        self.enumerators = enumerators;
        self
    }

    /// Subtasks that ended before the coordinator started.
    pub fn with_ended(mut self, ended: impl IntoIterator<Item = (ExecutionId, TaskEnd)>) -> Self {
        for (e, end) in ended {
            self.final_due |= end == TaskEnd::InputEnded;
            self.note_end(e, end);
        }
        self
    }

    /// The subtasks a trigger goes to now: those not finished whose every upstream subtask
    /// ended (its input ended, or it finished), in (vertex, subtask) order.
    pub fn trigger_frontier(&self) -> Vec<ExecutionId> {
        let ended = |u: &ExecutionId| self.input_ended.contains(u) || self.finished.contains_key(u);
        let mut out: Vec<ExecutionId> = self
            .tasks
            .iter()
            .filter(|t| !self.finished.contains_key(t))
            .filter(|t| self.upstream.get(t).is_none_or(|us| us.iter().all(ended)))
            .copied()
            .collect();
        out.sort_by_key(|e| (e.vertex, e.subtask));
        out
    }

    fn note_end(&mut self, e: ExecutionId, end: TaskEnd) {
        if !self.tasks.contains(&e) {
            return;
        }
        match end {
            TaskEnd::InputEnded => {
                self.input_ended.insert(e);
            }
            TaskEnd::Finished { source } => {
                self.finished.insert(e, source);
            }
        }
    }

    /// Takes `event` at `now`; returns what the shell must do, in order.
    pub fn on(&mut self, event: CoordinatorEvent, now: Clock) -> Vec<CoordinatorCommand> {
        let mut out = Vec::new();
        match event {
            CoordinatorEvent::Started => self.maybe_final(&mut out),
            CoordinatorEvent::Tick => self.tick(now, &mut out),
            CoordinatorEvent::Trigger(t) => self.trigger(t, &mut out),
            CoordinatorEvent::IdReserved { request, id } => {
                if let Some(t) = self.reserving.remove(&request) {
                    self.trigger_as(id, t, now, &mut out);
                }
            }
            CoordinatorEvent::IdRefused { request, error } => {
                if let Some(t) = self.reserving.remove(&request) {
                    answer_err(t.waiter, format!("no checkpoint id from the job store: {error}"), &mut out);
                }
            }
            CoordinatorEvent::Acknowledged(ack) => self.acknowledged(ack, now, &mut out),
            CoordinatorEvent::Declined { execution, checkpoint_id, reason } => {
                let why = format!("subtask {} of vertex {} declined: {}", execution.subtask, execution.vertex, reason);
                self.abort(checkpoint_id, &why, now, &mut out);
            }
            CoordinatorEvent::TimedOut { checkpoint_id } => self.abort(checkpoint_id, "it timed out", now, &mut out),
            CoordinatorEvent::MetadataWritten { checkpoint_id, result } => {
                self.written(checkpoint_id, result, now, &mut out)
            }
            CoordinatorEvent::TaskEnded { execution, end } => self.task_ended(execution, end, now, &mut out),
            CoordinatorEvent::EnumeratorsSnapshotted { checkpoint_id, result } => {
                self.enumerators_snapshotted(checkpoint_id, result, now, &mut out)
            }
            CoordinatorEvent::Stop { reason, keep_files } => {
                self.stopped = true;
                self.keep_files |= keep_files;
                let ids: Vec<u64> = self.pending.keys().copied().collect();
                for id in ids {
                    self.abort(id, &reason, now, &mut out);
                }
                if self.writing.is_empty() {
                    out.push(CoordinatorCommand::StopActor);
                }
            }
        }
        out
    }

    /// The periodic trigger, held back by `max-concurrent-checkpoints` (ids being reserved
    /// included) and `min-pause` since the last completion.
    fn tick(&mut self, now: Clock, out: &mut Vec<CoordinatorCommand>) {
        if self.pending.len() + self.reserving.len() >= self.settings.max_concurrent {
            return;
        }
        if self.last_completion.is_some_and(|t| now.now.saturating_duration_since(t) < self.settings.min_pause) {
            return;
        }
        self.trigger(TriggerRequest::checkpoint(None), out);
    }

    fn trigger(&mut self, t: TriggerRequest, out: &mut Vec<CoordinatorCommand>) {
        if self.stopped {
            return answer_err(t.waiter, STOPPED.to_string(), out);
        }
        let request = IdRequest(self.next_request);
        self.next_request += 1;
        self.reserving.insert(request, t);
        out.push(CoordinatorCommand::ReserveId { request });
    }

    /// Triggers checkpoint `id`.
    fn trigger_as(&mut self, id: u64, t: TriggerRequest, now: Clock, out: &mut Vec<CoordinatorCommand>) {
        let TriggerRequest { kind, savepoint_dir, stop_sources, waiter } = t;
        if self.stopped {
            return answer_err(waiter, STOPPED.to_string(), out);
        }
        let dir = match kind {
            CheckpointKind::Checkpoint => self.job_dir.as_ref().map(|d| d.join(format!("chk-{id}"))),
            CheckpointKind::Savepoint => {
                let Some(base) = savepoint_dir else {
                    let why = "no savepoint directory: give one or set state.savepoints.dir";
                    return answer_err(waiter, why.to_string(), out);
                };
                let job: String = self.job.to_string().chars().take(6).collect();
                Some(base.join(format!("savepoint-{job}-{id}")))
            }
        };
        if self.trigger_frontier().is_empty() {
            return answer_err(waiter, "every task of the job finished".to_string(), out);
        }
        let target = dir.as_ref().map(|d| d.display().to_string());
        let savepoint = kind == CheckpointKind::Savepoint;
        out.push(CoordinatorCommand::RecordStats(StatsUpdate::Triggered {
            checkpoint_id: id,
            savepoint,
            trigger_ms: now.epoch_ms,
            num_subtasks: self.tasks.len() as u32,
            path: target.clone(),
        }));
        let p = Pending {
            kind,
            triggered_ms: now.epoch_ms,
            dir,
            acked: HashMap::new(),
            waiter,
            triggered: HashSet::new(),
            stop_sources,
            enumerators: Vec::new(),
            sent: false,
        };
        self.pending.insert(id, p);
        if self.enumerators {
            out.push(CoordinatorCommand::SnapshotEnumerators { checkpoint_id: id });
        } else {
            self.send_triggers(id, out);
        }
        out.push(CoordinatorCommand::ScheduleTimeout { checkpoint_id: id, after: self.settings.timeout });
    }

    /// The split enumerators' states for `id` are in: its triggers go out (or it aborts).
    fn enumerators_snapshotted(
        &mut self,
        id: u64,
        result: Result<Vec<(u32, Vec<u8>)>, RuntimeError>,
        now: Clock,
        out: &mut Vec<CoordinatorCommand>,
    ) {
        match result {
            Ok(states) => {
                let Some(p) = self.pending.get_mut(&id) else { return };
                p.enumerators = states
                    .into_iter()
                    .map(|(vertex, state)| EnumeratorState { vertex, state: ByteBuf::from(state) })
                    .collect();
                self.send_triggers(id, out);
            }
            Err(why) => self.abort(id, &format!("a split enumerator's state could not be taken: {why}"), now, out),
        }
    }

    /// Sends pending checkpoint `id`'s triggers to the subtasks no barrier reaches.
    fn send_triggers(&mut self, id: u64, out: &mut Vec<CoordinatorCommand>) {
        let to = self.trigger_frontier();
        let Some(p) = self.pending.get_mut(&id) else { return };
        p.sent = true;
        p.triggered = to.iter().copied().collect();
        out.push(trigger_command(&self.settings, id, p, to));
    }

    fn acknowledged(&mut self, ack: Ack, now: Clock, out: &mut Vec<CoordinatorCommand>) {
        let id = ack.checkpoint_id;
        let Some(p) = self.pending.get_mut(&id) else {
            // Late for an aborted checkpoint: what it wrote may have come after the directory
            // was deleted.
            if !self.keep_files && matches!(ack.state, StateHandle::File { .. } | StateHandle::Incremental { .. }) {
                if let Some(dir) = self.aborted_dirs.get(&id) {
                    out.push(CoordinatorCommand::DeleteDir(dir.clone()));
                }
            }
            return;
        };
        let e = ack.execution;
        if !self.tasks.contains(&e) {
            // Not a subtask of this attempt: it must not count towards completion.
            return;
        }
        let bytes = ack.state.size() + ack.source.as_ref().map_or(0, |b| b.len() as u64);
        out.push(CoordinatorCommand::RecordStats(StatsUpdate::Acknowledged {
            checkpoint_id: id,
            vertex: e.vertex,
            subtask: e.subtask,
            bytes,
            persisted: ack.persisted_bytes,
            timings: (ack.sync_ms, ack.async_ms),
            alignment_ms: ack.alignment_ms,
            now_ms: now.epoch_ms,
        }));
        // A repeated acknowledgement replaces the first: it counts once.
        let state = SubtaskState {
            vertex: e.vertex,
            subtask: e.subtask,
            state: ack.state,
            source: ack.source,
            finished: false,
        };
        p.acked.insert(e, state);
        self.complete_ready(now, out);
    }

    /// Completes, oldest first, the pending checkpoints every subtask acknowledged or
    /// finished for.
    fn complete_ready(&mut self, now: Clock, out: &mut Vec<CoordinatorCommand>) {
        let ready: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| self.tasks.iter().all(|t| p.acked.contains_key(t) || self.finished.contains_key(t)))
            .map(|(id, _)| *id)
            .collect();
        for id in ready {
            if let Some(p) = self.pending.remove(&id) {
                self.complete(id, p, now, out);
            }
        }
    }

    /// A subtask's input ended or it finished: the pending checkpoints' triggers go to the
    /// subtasks no barrier reaches any more, what waited only for it completes, and once no
    /// subtask runs with input left, the final checkpoint is triggered at once (the subtasks
    /// waiting for it need not wait for the next interval).
    fn task_ended(&mut self, e: ExecutionId, end: TaskEnd, now: Clock, out: &mut Vec<CoordinatorCommand>) {
        if self.stopped || !self.tasks.contains(&e) {
            return;
        }
        let input_ended = end == TaskEnd::InputEnded;
        self.note_end(e, end);
        let frontier = self.trigger_frontier();
        let mut retriggered = false;
        // (Not before a checkpoint's first triggers went out: its enumerators' state comes
        // first.)
        for (id, p) in self.pending.iter_mut().filter(|(_, p)| p.sent) {
            let to: Vec<ExecutionId> =
                frontier.iter().filter(|t| !p.triggered.contains(*t) && !p.acked.contains_key(*t)).copied().collect();
            if to.is_empty() {
                continue;
            }
            p.triggered.extend(to.iter().copied());
            retriggered |= to.contains(&e);
            out.push(trigger_command(&self.settings, *id, p, to));
        }
        // A checkpoint it takes after its end is already on its way to it otherwise.
        self.final_due |= input_ended && !retriggered;
        self.complete_ready(now, out);
        self.maybe_final(out);
    }

    /// Triggers the final checkpoint if one is due, no subtask has input left, some wait
    /// for it, and nothing else is under way.
    fn maybe_final(&mut self, out: &mut Vec<CoordinatorCommand>) {
        if !self.final_due || self.stopped {
            return;
        }
        let all_ended = self.tasks.iter().all(|t| self.input_ended.contains(t) || self.finished.contains_key(t));
        let waiting = self.input_ended.iter().any(|t| !self.finished.contains_key(t));
        if all_ended && waiting && self.pending.is_empty() && self.reserving.is_empty() && self.writing.is_empty() {
            self.final_due = false;
            self.trigger(TriggerRequest::checkpoint(None), out);
        }
    }

    /// Every subtask acknowledged `id`.
    fn complete(&mut self, id: u64, p: Pending, now: Clock, out: &mut Vec<CoordinatorCommand>) {
        // Older pending checkpoints are subsumed by this one.
        let older: Vec<u64> = self.pending.range(..id).map(|(k, _)| *k).collect();
        for o in older {
            self.abort(o, "a newer checkpoint completed", now, out);
        }
        let mut acked = p.acked;
        // Finished subtasks that did not acknowledge: no operator state, and a source's
        // last reader position (FLIP-147).
        for (e, source) in &self.finished {
            acked.entry(*e).or_insert_with(|| SubtaskState {
                vertex: e.vertex,
                subtask: e.subtask,
                state: StateHandle::Inline(ByteBuf::new()),
                source: source.clone(),
                finished: true,
            });
        }
        let mut subtasks: Vec<SubtaskState> = acked.into_values().collect();
        subtasks.sort_by_key(|s| (s.vertex, s.subtask));
        let meta = Arc::new(CheckpointMetadata {
            job_id: self.job.to_string(),
            checkpoint_id: id,
            kind: p.kind,
            trigger_timestamp_ms: p.triggered_ms,
            completion_timestamp_ms: now.epoch_ms,
            max_parallelism: self.max_parallelism,
            vertices: self.vertices.clone(),
            subtasks,
            enumerators: p.enumerators,
        });
        let Some(dir) = p.dir else {
            return self.completed(meta, None, p.waiter, now, out);
        };
        let retain = match p.kind {
            CheckpointKind::Checkpoint => self.job_dir.clone().map(|d| (d, self.settings.retained)),
            CheckpointKind::Savepoint => None,
        };
        out.push(CoordinatorCommand::WriteMetadata { meta: meta.clone(), dir: dir.clone(), retain });
        self.writing.insert(id, Writing { meta, dir, waiter: p.waiter });
    }

    fn written(&mut self, id: u64, result: Result<(), RuntimeError>, now: Clock, out: &mut Vec<CoordinatorCommand>) {
        let Some(w) = self.writing.remove(&id) else { return };
        match result {
            Ok(()) => self.completed(w.meta, Some(w.dir), w.waiter, now, out),
            Err(e) => {
                // What the subtasks wrote goes; a savepoint's directory is the user's.
                let dir = match w.meta.kind {
                    CheckpointKind::Checkpoint => Some(w.dir),
                    CheckpointKind::Savepoint => None,
                };
                self.aborted(id, dir, w.waiter, &e.to_string(), now, out);
            }
        }
        if self.stopped && self.writing.is_empty() {
            out.push(CoordinatorCommand::StopActor);
        }
    }

    fn completed(
        &mut self,
        meta: Arc<CheckpointMetadata>,
        dir: Option<PathBuf>,
        waiter: Option<WaiterId>,
        now: Clock,
        out: &mut Vec<CoordinatorCommand>,
    ) {
        let id = meta.checkpoint_id;
        let completion_ms = meta.completion_timestamp_ms;
        out.push(CoordinatorCommand::Completed { meta, dir: dir.clone() });
        self.last_completion = Some(now.now);
        let path = dir.as_ref().map(|d| d.display().to_string());
        out.push(CoordinatorCommand::RecordStats(StatsUpdate::Completed { checkpoint_id: id, completion_ms, path }));
        out.push(CoordinatorCommand::Notify { checkpoint_id: id, completed: true });
        if let Some(waiter) = waiter {
            out.push(CoordinatorCommand::Answer { waiter, result: Ok(Completion { checkpoint_id: id, dir }) });
        }
        self.maybe_final(out);
    }

    /// Aborts `id` if it is still pending.
    fn abort(&mut self, id: u64, why: &str, now: Clock, out: &mut Vec<CoordinatorCommand>) {
        if let Some(p) = self.pending.remove(&id) {
            self.aborted(id, p.dir, p.waiter, why, now, out);
        }
    }

    /// Tells every subtask, deletes what was written, answers a waiting caller.
    fn aborted(
        &mut self,
        id: u64,
        dir: Option<PathBuf>,
        waiter: Option<WaiterId>,
        why: &str,
        now: Clock,
        out: &mut Vec<CoordinatorCommand>,
    ) {
        out.push(CoordinatorCommand::RecordStats(StatsUpdate::Failed {
            checkpoint_id: id,
            now_ms: now.epoch_ms,
            why: why.to_string(),
        }));
        out.push(CoordinatorCommand::Notify { checkpoint_id: id, completed: false });
        if let Some(dir) = dir.filter(|_| !self.keep_files) {
            self.aborted_dirs.insert(id, dir.clone());
            while self.aborted_dirs.len() > REMEMBERED_ABORTED_DIRS {
                self.aborted_dirs.pop_first();
            }
            out.push(CoordinatorCommand::DeleteDir(dir));
        }
        answer_err(waiter, format!("checkpoint {id} was aborted: {why}"), out);
    }
}

/// The trigger of pending checkpoint `id` for the subtasks `to`.
fn trigger_command(settings: &CheckpointSettings, id: u64, p: &Pending, to: Vec<ExecutionId>) -> CoordinatorCommand {
    let savepoint = p.kind == CheckpointKind::Savepoint;
    CoordinatorCommand::SendTrigger {
        checkpoint_id: id,
        to,
        target: p.dir.as_ref().map(|d| d.display().to_string()),
        aligned: settings.aligned || savepoint,
        unaligned: settings.unaligned && !savepoint,
        inline_threshold: settings.inline_threshold,
        incremental: settings.incremental && !savepoint && p.dir.is_some(),
        stop_sources: p.stop_sources,
    }
}

fn answer_err(waiter: Option<WaiterId>, why: String, out: &mut Vec<CoordinatorCommand>) {
    if let Some(waiter) = waiter {
        out.push(CoordinatorCommand::Answer { waiter, result: Err(RuntimeError::Checkpoint(why)) });
    }
}
