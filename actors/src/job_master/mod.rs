//! The JobMaster: one per job. Turns the job graph into executions, gets slots from the
//! ResourceManager, deploys subtasks (slot sharing: subtask i of every vertex goes to slot i),
//! follows their states, and ends the job FINISHED, FAILED (with the root cause naming the
//! operator and subtask) or CANCELED — or, highly available, SUSPENDED when this JobManager
//! lost its leadership (nothing of the job's HA data removed). Its children are the SourceCoordinators.
//!
//! The actor is a shell: every decision about the job's lifecycle is [`core::JobCore`]'s (a
//! pure state machine); the actor turns messages, timers and the outcomes of its own I/O into
//! [`core::JobInput`]s and carries out the [`core::JobCommand`]s that come back. What is not
//! lifecycle stays here: where to restore from, which checkpoint is the newest, the split
//! enumerators, the checkpoint coordinator's address.

pub mod core;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use self::core::{Clock, JobCommand, JobCore, JobInput, VertexSummary};

use actix::prelude::*;
use riffle_api::JobGraph;
use serde::{Deserialize, Serialize};

use crate::checkpoint_coordinator::{
    CheckpointCompleted, CheckpointCoordinator, CheckpointSettings, CoordinatorTasks, StopCheckpointing,
    TaskEndedForCheckpoints, TriggerCheckpointNow, TriggerSavepoint,
};
use crate::error::RuntimeError;
use crate::exception_history::ExceptionEntry;
use crate::gateway::{
    AcknowledgeCheckpoint, CancelTask, ConfirmEnd, DeclineCheckpoint, DeployTask, ReleaseSlots, RequestSlots,
    SlotAssignment, SplitRequest, SplitResponse, TaskStateUpdate,
};
use crate::ids::{ExecutionId, JobId};
use crate::job_status::JobStatus;
use crate::restart_strategy::{RestartStrategy, RestartTracker};
use crate::restore_plan::{plan, RestorePlan, RestorePoint, VertexShape};
use crate::services::{DataServices, Directory, JobRecords, RuntimeShared};
use crate::source_coordinator::SourceCoordinator;
use crate::supervision::{catch_panic, ChildExited, ExitReason};
use riffle_state::checkpoint_metadata::VertexInfo;

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobResult {
    /// The job.
    pub job_id: JobId,
    /// Its name.
    pub name: String,
    /// FINISHED, FAILED, CANCELED, or SUSPENDED (this JobManager lost its leadership; the
    /// job goes on under the next one).
    pub status: JobStatus,
    /// The root cause, for a failed job.
    pub error: Option<String>,
    /// From scheduling to the terminal state.
    pub duration: Duration,
}

/// JobMaster → Dispatcher: the job reached a terminal state.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct JobTerminated(pub JobResult);

/// JobMaster → Dispatcher: the job's status changed.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct JobStatusChanged {
    /// The job.
    pub job_id: JobId,
    /// The new status.
    pub status: JobStatus,
}

/// What happens to a job after a savepoint of it completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AfterSavepoint {
    /// Nothing: the job runs on.
    Continue,
    /// Cancel-with-savepoint: the job is cancelled.
    Cancel,
    /// Stop-with-savepoint: the sources stop right after the savepoint barrier and, once the
    /// savepoint completed, end their input; the job drains and ends FINISHED.
    Stop,
    /// Stop-with-savepoint without draining (Flink's `drain: false`): the sources stop right
    /// after the savepoint barrier and, once the savepoint completed, every subtask is stopped
    /// where it is — no end of input, no final watermark, so windows do not fire — and the
    /// job ends FINISHED at once. A two-phase-commit sink's transactions of the savepoint are
    /// committed when a job resumes from it.
    StopWithoutDrain,
}

/// Takes a savepoint of a running job; answers with its directory.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<std::path::PathBuf, RuntimeError>")]
pub struct SavepointRequest {
    /// Where the `savepoint-…` directory goes (else `state.savepoints.dir`).
    pub target: Option<std::path::PathBuf>,
    /// What happens to the job afterwards.
    pub then: AfterSavepoint,
}

/// Triggers a checkpoint now; answers with its id once it completed.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<u64, RuntimeError>")]
pub struct CheckpointRequest;

/// Cancels the job.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "()")]
pub struct CancelJobExecution;

/// Suspends the job (high availability: this JobManager lost its leadership). The JobMaster
/// ends SUSPENDED once its subtasks stopped, leaving the job's HA data to the next leader.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "()")]
pub struct SuspendJobExecution;

/// `execution.savepoint.path`: the savepoint or checkpoint a job starts from.
pub const SAVEPOINT_PATH: riffle_api::ConfigOption<Option<std::path::PathBuf>> = riffle_api::ConfigOption::optional(
    riffle_api::Group::Checkpointing,
    "execution.savepoint.path",
    "start the job from this savepoint or checkpoint",
);
/// `execution.savepoint.ignore-unclaimed-state`.
pub const IGNORE_UNCLAIMED_STATE: riffle_api::ConfigOption<bool> = riffle_api::ConfigOption::new(
    riffle_api::Group::Checkpointing,
    "execution.savepoint.ignore-unclaimed-state",
    false,
    "skip state of operators the job no longer has",
);

/// The options a JobMaster reads from its job's configuration (besides the checkpoint and
/// restart settings).
pub(crate) const OPTIONS: &[&dyn riffle_api::OptionInfo] = &[&SAVEPOINT_PATH, &IGNORE_UNCLAIMED_STATE];

/// Settings of a JobMaster.
#[derive(Debug, Clone)]
pub struct JobMasterSettings {
    /// `slot.request.timeout`.
    pub slot_request_timeout: Duration,
    /// How long cancelled subtasks may take to stop before the job is ended anyway.
    pub cancel_timeout: Duration,
    /// `jobmanager.exception-history-size`.
    pub exception_history_size: usize,
}

/// JobMaster → Dispatcher: a failure to keep in the job's exception history.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct ExceptionRecorded {
    /// The job.
    pub job_id: JobId,
    /// The failure.
    pub entry: ExceptionEntry,
}

/// Where a JobMaster reports (its parent, the Dispatcher, in every role).
pub struct JobMasterParent {
    /// The job's end.
    pub terminated: Recipient<JobTerminated>,
    /// Status changes.
    pub status: Recipient<JobStatusChanged>,
    /// Failures for the exception history.
    pub history: Recipient<ExceptionRecorded>,
    /// The JobMaster's own exit (supervision).
    pub exit: Recipient<ChildExited>,
}

/// What a JobMaster reaches outside itself: the cluster configuration, the addresses of the
/// ResourceManager and TaskExecutors, the job's records, and the in-process channels (an
/// attempt's are dropped when it ends).
#[derive(Clone)]
pub struct JobMasterServices {
    /// The cluster configuration (the job's own options are in its graph).
    pub config: riffle_api::Configuration,
    /// Where the ResourceManager and the TaskExecutors are.
    pub directory: Arc<Directory>,
    /// The job's view, counters, checkpoint statistics and (HA) store.
    pub jobs: Arc<JobRecords>,
    /// In-process data channels.
    pub data: Arc<DataServices>,
}

impl JobMasterServices {
    /// The parts of `shared` a JobMaster uses.
    pub fn of(shared: &RuntimeShared) -> Self {
        Self {
            config: shared.config.clone(),
            directory: shared.directory.clone(),
            jobs: shared.jobs.clone(),
            data: shared.data.clone(),
        }
    }
}

/// The JobMaster actor.
pub struct JobMaster {
    job: JobId,
    graph: Arc<JobGraph>,
    services: JobMasterServices,
    settings: JobMasterSettings,
    /// The lifecycle: every decision about the job.
    core: JobCore,
    coordinators: HashMap<u32, Addr<SourceCoordinator>>,
    checkpointing: Option<CheckpointSettings>,
    coordinator: Option<Addr<CheckpointCoordinator>>,
    checkpoint_ids: Arc<AtomicU64>,
    /// What a (re)start resumes from: the latest completed checkpoint, or the savepoint the
    /// job was submitted with.
    restore_point: Option<RestorePoint>,
    restore_plan: Option<RestorePlan>,
    allow_non_restored: bool,
    started: Instant,
    dispatcher: Recipient<JobTerminated>,
    status_listener: Recipient<JobStatusChanged>,
    history: Recipient<ExceptionRecorded>,
    on_exit: Recipient<ChildExited>,
    exit: ExitReason,
}

impl JobMaster {
    /// A JobMaster for `job`, reporting to the Dispatcher.
    pub fn new(
        job: JobId,
        graph: Arc<JobGraph>,
        services: JobMasterServices,
        settings: JobMasterSettings,
        parent: JobMasterParent,
    ) -> Self {
        let JobMasterParent { terminated: dispatcher, status: status_listener, history, exit: on_exit } = parent;
        let vertices = graph
            .vertices()
            .iter()
            .map(|v| VertexSummary { id: v.id as u32, parallelism: v.parallelism, name: v.name.clone() })
            .collect();
        let core = JobCore::new(job, vertices, RestartTracker::new(RestartStrategy::None), settings.cancel_timeout);
        Self {
            job,
            graph,
            services,
            settings,
            core,
            coordinators: HashMap::new(),
            checkpointing: None,
            coordinator: None,
            checkpoint_ids: Arc::new(AtomicU64::new(1)),
            restore_point: None,
            restore_plan: None,
            allow_non_restored: false,
            started: Instant::now(),
            dispatcher,
            status_listener,
            history,
            on_exit,
            exit: ExitReason::Normal,
        }
    }

    /// Feeds `input` to the core and carries out what it decides; the outcomes of that I/O
    /// come back as further inputs.
    fn feed(&mut self, input: JobInput, ctx: &mut Context<Self>) {
        let mut queue = std::collections::VecDeque::from([input]);
        while let Some(input) = queue.pop_front() {
            for command in self.core.on(input, Clock::system()) {
                if let Some(next) = self.run(command, ctx) {
                    queue.push_back(next);
                }
            }
        }
    }

    /// Carries out one command; an outcome the core must know comes back.
    fn run(&mut self, command: JobCommand, ctx: &mut Context<Self>) -> Option<JobInput> {
        match command {
            JobCommand::PublishStatus(status) => {
                self.status_listener.do_send(JobStatusChanged { job_id: self.job, status });
            }
            JobCommand::RecordException(entry) => {
                self.history.do_send(ExceptionRecorded { job_id: self.job, entry });
            }
            JobCommand::ShowTaskState { vertex, subtask, state } => {
                if let Some(view) = self.services.jobs.view(self.job) {
                    view.set_task(vertex, subtask, state);
                }
            }
            JobCommand::PrepareAttempt { previous, .. } => {
                if let Some(old) = previous {
                    self.services.data.exchange.remove_attempt(self.job, old);
                }
                let result = self.start_coordinators();
                let executors_present = self
                    .core
                    .assignments()
                    .iter()
                    .all(|a| self.services.directory.task_executors.contains_key(&a.resource_id));
                return Some(JobInput::AttemptPrepared { result, executors_present });
            }
            JobCommand::RequestSlots => return self.request_slots(ctx),
            JobCommand::ReleaseSlots => {
                if let Some(rm) = self.services.directory.resource_manager() {
                    rm.do_send(ReleaseSlots { job_id: self.job });
                }
            }
            JobCommand::Deploy { attempt, assignments } => return self.deploy(attempt, &assignments),
            JobCommand::CancelTasks(tasks) => {
                for (execution, resource_id) in tasks {
                    if let Some(te) = self.services.directory.task_executors.get(&resource_id) {
                        te.do_send(CancelTask { execution });
                    }
                }
            }
            JobCommand::StartTimer { after, timer } => {
                ctx.run_later(after, move |act, ctx| act.feed(JobInput::Timer(timer), ctx));
            }
            JobCommand::StartCheckpointing { tasks, ended } => self.start_checkpointing(tasks, ended, ctx),
            JobCommand::TaskEnded { execution, end } => {
                if let Some(c) = &self.coordinator {
                    c.do_send(TaskEndedForCheckpoints { execution, end });
                }
            }
            JobCommand::StopCheckpointing(reason) => {
                if let Some(c) = self.coordinator.take() {
                    c.do_send(StopCheckpointing { reason: reason.to_string(), keep_files: false });
                }
            }
            JobCommand::SuspendCheckpointing(reason) => {
                if let Some(c) = self.coordinator.take() {
                    c.do_send(StopCheckpointing { reason: reason.to_string(), keep_files: true });
                }
            }
            JobCommand::DropChannels { attempt } => self.services.data.exchange.remove_attempt(self.job, attempt),
            JobCommand::Terminate { status, error, clean_up } => {
                self.graph.job_terminated();
                let result = JobResult {
                    job_id: self.job,
                    name: self.graph.name.clone(),
                    status,
                    error,
                    duration: self.started.elapsed(),
                };
                // A suspended job's checkpoints are the next leader's to restore from.
                if clean_up {
                    self.clean_up_checkpoints(status);
                }
                self.dispatcher.do_send(JobTerminated(result));
                ctx.stop();
            }
        }
        None
    }

    /// Starts the attempt's checkpoint coordinator.
    fn start_checkpointing(
        &mut self,
        tasks: Vec<(ExecutionId, crate::ids::ResourceId)>,
        ended: Vec<(ExecutionId, crate::checkpoint_coordinator::core::TaskEnd)>,
        ctx: &mut Context<Self>,
    ) {
        let Some(settings) = self.checkpointing.clone() else { return };
        let upstream = tasks
            .iter()
            .map(|(e, _)| {
                let up = self
                    .graph
                    .upstream_subtasks(e.vertex as usize, e.subtask)
                    .into_iter()
                    .map(|(vertex, subtask)| ExecutionId { vertex, subtask, ..*e })
                    .collect();
                (*e, up)
            })
            .collect();
        let enumerators = self.coordinators.iter().map(|(v, a)| (*v, a.clone())).collect();
        let tasks = CoordinatorTasks {
            tasks,
            upstream,
            ended,
            enumerators,
            vertices: self.vertex_infos(),
            max_parallelism: self.graph.max_parallelism,
        };
        let c = CheckpointCoordinator::new(
            self.job,
            settings,
            self.services.directory.clone(),
            self.services.jobs.clone(),
            tasks,
            self.checkpoint_ids.clone(),
            ctx.address().recipient(),
        );
        self.coordinator = Some(c.start());
    }

    /// The job's vertices as checkpoint metadata records them.
    fn vertex_infos(&self) -> Vec<VertexInfo> {
        self.vertex_shapes()
            .into_iter()
            .map(|v| VertexInfo { id: v.id, parallelism: v.parallelism, operators: v.operators })
            .collect()
    }

    fn vertex_shapes(&self) -> Vec<VertexShape> {
        self.graph
            .vertices()
            .iter()
            .map(|v| VertexShape {
                id: v.id as u32,
                parallelism: v.parallelism,
                operators: v
                    .nodes
                    .iter()
                    .map(|n| (*n as u32, self.graph.operator_name(*n).unwrap_or("").to_string()))
                    .collect(),
                is_source: v.is_source,
            })
            .collect()
    }

    /// Makes `point` what the next (re)start resumes from.
    fn set_restore_point(&mut self, point: RestorePoint) -> Result<(), RuntimeError> {
        let p = plan(&point, &self.vertex_shapes(), self.graph.max_parallelism, self.allow_non_restored)?;
        // Checkpoint ids continue after the restored one, as in Flink.
        self.checkpoint_ids.fetch_max(point.meta.checkpoint_id + 1, std::sync::atomic::Ordering::Relaxed);
        self.restore_point = Some(point);
        self.restore_plan = Some(p);
        Ok(())
    }

    /// Subtask (v, s)'s part of the checkpoint the job resumes from.
    fn restore_for(&self, v: u32, s: u32) -> Option<crate::gateway::TaskRestore> {
        self.restore_plan.as_ref()?.tasks.get(&(v, s)).cloned()
    }

    fn start_coordinators(&mut self) -> Result<(), RuntimeError> {
        self.coordinators.clear();
        for v in self.graph.vertices() {
            if let Some(src) = self.graph.source_of(v.id) {
                let name = v.nodes.first().and_then(|n| self.graph.operator_name(*n)).unwrap_or(&v.name).to_string();
                let restore = self.restore_plan.as_ref().and_then(|p| p.enumerators.get(&(v.id as u32)));
                let parallelism = restore.map(|r| r.parallelism).unwrap_or(v.parallelism);
                match catch_panic(|| src.create_enumerator(parallelism)) {
                    Ok(Ok(mut e)) => {
                        if let Some(r) = restore {
                            if let Some(state) = &r.state {
                                e.restore_state(state).map_err(|why| {
                                    RuntimeError::from(why)
                                        .context(format!("source '{name}' cannot restore its enumerator's state"))
                                })?;
                            }
                            e.restore(&r.consumed);
                            if !r.splits_back.is_empty() {
                                e.add_splits_back(r.splits_back.clone(), 0).map_err(|why| {
                                    RuntimeError::from(why)
                                        .context(format!("source '{name}' cannot take its splits back"))
                                })?;
                            }
                        }
                        self.coordinators.insert(v.id as u32, SourceCoordinator::new(e).start());
                    }
                    Ok(Err(e)) => return Err(RuntimeError::from(e).context(format!("source '{name}' failed to start"))),
                    Err(p) => return Err(p.context(format!("source '{name}' panicked while starting"))),
                }
            }
        }
        Ok(())
    }

    /// Asks the ResourceManager for the job's slots; the answer comes back as an input.
    fn request_slots(&mut self, ctx: &mut Context<Self>) -> Option<JobInput> {
        let Some(rm) = self.services.directory.resource_manager() else {
            return Some(JobInput::SchedulingFailed(RuntimeError::Unavailable("no resource manager".into())));
        };
        let req = RequestSlots {
            job_id: self.job,
            count: self.graph.required_slots(),
            timeout_ms: self.settings.slot_request_timeout.as_millis() as u64,
        };
        rm.send(req)
            .into_actor(self)
            .then(|res, act, ctx| {
                let input = match res {
                    Ok(Ok(a)) => JobInput::SlotsGranted(a),
                    Ok(Err(e)) => JobInput::SchedulingFailed(e.into()),
                    Err(e) => JobInput::SchedulingFailed(RuntimeError::Unavailable(format!(
                        "resource manager unreachable: {e}"
                    ))),
                };
                act.feed(input, ctx);
                fut::ready(())
            })
            .spawn(ctx);
        None
    }

    /// Sends every subtask of `attempt` to its slot's TaskExecutor (consumers first).
    fn deploy(&mut self, attempt: u32, assignments: &[SlotAssignment]) -> Option<JobInput> {
        let peers = match placement(&self.services.directory, assignments) {
            Ok(p) => p,
            Err(why) => return Some(JobInput::PlacementFailed(why)),
        };
        if let Some(point) = &self.restore_point {
            let record = crate::checkpoint_history::RestoredRecord {
                id: point.meta.checkpoint_id,
                restore_ms: riffle_api::time::now_ms(),
                is_savepoint: point.meta.kind == riffle_state::checkpoint_metadata::CheckpointKind::Savepoint,
                external_path: point.dir.as_ref().map(|d| d.display().to_string()),
            };
            self.services.jobs.checkpoint_stats(self.job).with_history(|h| h.restored(record));
        }
        let vertices: Vec<(u32, u32)> = self.graph.vertices().iter().map(|v| (v.id as u32, v.parallelism)).collect();
        let view = self.services.jobs.view(self.job);
        if let Some(view) = &view {
            view.new_attempt(attempt);
            for &(v, p) in &vertices {
                for s in 0..p {
                    view.set_task(v, s, crate::job_view::ExecutionState::Deploying);
                }
            }
        }
        // Consumers first, so their channels exist before producers write (either order
        // works; this one just avoids producers waiting).
        for &(v, p) in vertices.iter().rev() {
            for s in 0..p {
                let execution = ExecutionId { job: self.job, vertex: v, subtask: s, attempt };
                let Some(a) = assignments.get(s as usize) else {
                    return Some(JobInput::DeployFailed(format!("no slot for subtask {s} of vertex {v}")));
                };
                let te = self.services.directory.task_executors.get(&a.resource_id).map(|t| t.clone());
                if let Some(view) = &view {
                    view.set_location(v, s, a.resource_id.to_string());
                }
                match te {
                    Some(te) => te.do_send(DeployTask {
                        execution,
                        slot_index: a.slot_index,
                        restore: self.restore_for(v, s),
                        peers: peers.clone(),
                    }),
                    None => return Some(JobInput::DeployFailed(format!("task executor {} is gone", a.resource_id))),
                }
            }
        }
        None
    }

    /// Deletes the job's checkpoints when it ends, unless they are retained
    /// (`execution.checkpointing.externalized-checkpoint-retention`).
    fn clean_up_checkpoints(&self, status: JobStatus) {
        let Some(settings) = &self.checkpointing else { return };
        if !settings.retention.deletes_on_end(status == JobStatus::Failed) {
            return;
        }
        if let Some(dir) = settings.job_dir(self.job) {
            actix::spawn(async move {
                if let Err(e) = crate::checkpoint_storage::delete_dir(&dir).await {
                    tracing::warn!("cannot delete the checkpoints of an ended job: {e}");
                }
            });
        }
    }

    /// Reads the job's settings into the core; the first bad one is why scheduling fails.
    fn read_settings(&mut self) -> Result<Option<std::path::PathBuf>, RuntimeError> {
        let mut conf = self.services.config.clone();
        conf.merge(&self.graph.config);
        let strategy = RestartStrategy::from_config(&conf)?;
        self.core.set_restart_tracker(RestartTracker::new(strategy));
        let c = CheckpointSettings::from_config(&conf)?;
        let history = conf.get(&crate::checkpoint_history::HISTORY_SIZE)?;
        let stats = self.services.jobs.checkpoint_stats(self.job);
        stats.with_history(|h| h.set_capacity(history));
        *stats.settings.lock().unwrap_or_else(|e| e.into_inner()) = Some(c.clone());
        self.core.enable_checkpointing(c.after_tasks_finish);
        self.checkpointing = Some(c);
        self.allow_non_restored = conf.get(&IGNORE_UNCLAIMED_STATE)?;
        Ok(conf.get(&SAVEPOINT_PATH)?)
    }
}

// Senders reach it through a `Probed` address: thread dumps show its mailbox.
crate::counted_mailbox!(JobMaster);

impl Actor for JobMaster {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.feed(JobInput::Start, ctx);
        let path = match self.read_settings() {
            Ok(path) => path,
            Err(why) => return self.feed(JobInput::SchedulingFailed(why), ctx),
        };
        let Some(path) = path else {
            return self.feed(JobInput::Ready, ctx);
        };
        async move { crate::restore_plan::load(&path).await }
            .into_actor(self)
            .map(|r, act, ctx| {
                let r = r.and_then(|point| {
                    let id = point.meta.checkpoint_id;
                    act.set_restore_point(point)?;
                    Ok(id)
                });
                let input = match r {
                    Ok(id) => {
                        tracing::info!(job = %act.job, checkpoint = id, "restoring from a savepoint/checkpoint");
                        JobInput::Ready
                    }
                    Err(e) => JobInput::SchedulingFailed(e),
                };
                act.feed(input, ctx)
            })
            .spawn(ctx);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.services.directory.job_masters.remove(&self.job);
        if !self.core.is_done() {
            self.graph.job_terminated();
            if let Some(rm) = self.services.directory.resource_manager() {
                rm.do_send(ReleaseSlots { job_id: self.job });
            }
        }
        self.on_exit.do_send(ChildExited {
            child: crate::supervision::ChildId::JobMaster(self.job),
            reason: self.exit.clone(),
        });
    }
}

impl Handler<TaskStateUpdate> for JobMaster {
    type Result = ();
    fn handle(&mut self, msg: TaskStateUpdate, ctx: &mut Self::Context) {
        if let Err(p) = catch_panic(|| self.feed(JobInput::TaskUpdate(msg), ctx)) {
            self.exit = ExitReason::Panicked(p.to_string());
            ctx.stop();
        }
    }
}

impl Handler<CheckpointCompleted> for JobMaster {
    type Result = ();
    fn handle(&mut self, msg: CheckpointCompleted, _: &mut Self::Context) {
        let newer = self.restore_point.as_ref().is_none_or(|c| c.meta.checkpoint_id < msg.meta.checkpoint_id);
        if let (Some(store), Some(dir), true) = (self.services.jobs.job_store(), &msg.dir, newer) {
            store.checkpoint_completed(self.job, msg.meta.checkpoint_id, dir);
        }
        if newer {
            if let Err(e) = self.set_restore_point(RestorePoint { meta: msg.meta, dir: msg.dir }) {
                tracing::warn!(job = %self.job, "a completed checkpoint cannot be restored: {e}");
            }
        }
    }
}

impl Handler<DeclineCheckpoint> for JobMaster {
    type Result = ();
    fn handle(&mut self, msg: DeclineCheckpoint, _: &mut Self::Context) {
        if msg.execution.attempt == self.core.attempt() {
            if let Some(c) = &self.coordinator {
                c.do_send(msg);
            }
        }
    }
}

impl Handler<AcknowledgeCheckpoint> for JobMaster {
    type Result = ();
    fn handle(&mut self, msg: AcknowledgeCheckpoint, _: &mut Self::Context) {
        if msg.execution.attempt == self.core.attempt() {
            if let Some(c) = &self.coordinator {
                c.do_send(msg);
            }
        }
    }
}

impl Handler<CancelJobExecution> for JobMaster {
    type Result = ();
    fn handle(&mut self, _: CancelJobExecution, ctx: &mut Self::Context) {
        self.feed(JobInput::Cancel, ctx);
    }
}

impl Handler<SuspendJobExecution> for JobMaster {
    type Result = ();
    fn handle(&mut self, _: SuspendJobExecution, ctx: &mut Self::Context) {
        self.feed(JobInput::Suspend, ctx);
    }
}

impl Handler<SplitRequest> for JobMaster {
    type Result = ResponseFuture<Result<SplitResponse, RuntimeError>>;
    fn handle(&mut self, msg: SplitRequest, _: &mut Self::Context) -> Self::Result {
        let coord = self.coordinators.get(&msg.execution.vertex).cloned();
        Box::pin(async move {
            match coord {
                Some(c) => c
                    .send(msg)
                    .await
                    .map_err(|e| RuntimeError::Unavailable(format!("source coordinator unreachable: {e}")))?,
                None => {
                    Err(RuntimeError::Unavailable(format!("vertex {} has no source coordinator", msg.execution.vertex)))
                }
            }
        })
    }
}

impl Handler<ConfirmEnd> for JobMaster {
    type Result = Result<(), RuntimeError>;
    fn handle(&mut self, msg: ConfirmEnd, _: &mut Self::Context) -> Self::Result {
        self.core.confirm_end(msg.execution.attempt)
    }
}

impl Handler<SavepointRequest> for JobMaster {
    type Result = ResponseActFuture<Self, Result<std::path::PathBuf, RuntimeError>>;
    fn handle(&mut self, msg: SavepointRequest, ctx: &mut Self::Context) -> Self::Result {
        let refuse = |why: RuntimeError| -> Self::Result { Box::pin(fut::ready(Err(why))) };
        // The core refuses first: its reason names the job's state (not running, suspended).
        if let Err(why) = self.core.begin_savepoint(msg.then) {
            return refuse(why);
        }
        let Some(c) = self.coordinator.clone() else {
            self.feed(JobInput::SavepointFinished { succeeded: false }, ctx);
            return refuse(RuntimeError::Refused(
                "the job is not running: a savepoint needs every task running".into(),
            ));
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let stop_sources = matches!(msg.then, AfterSavepoint::Stop | AfterSavepoint::StopWithoutDrain);
        c.do_send(TriggerSavepoint { target: msg.target, stop_sources, reply: tx });
        Box::pin(async move { rx.await.unwrap_or_else(|_| Err(coordinator_stopped())) }.into_actor(self).map(
            |r, act, ctx| {
                act.feed(JobInput::SavepointFinished { succeeded: r.is_ok() }, ctx);
                r
            },
        ))
    }
}

impl Handler<CheckpointRequest> for JobMaster {
    type Result = ResponseFuture<Result<u64, RuntimeError>>;
    fn handle(&mut self, _: CheckpointRequest, _: &mut Self::Context) -> Self::Result {
        let Some(c) = self.coordinator.clone() else {
            return Box::pin(async {
                Err(RuntimeError::Refused("the job is not running: a checkpoint needs every task running".into()))
            });
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        c.do_send(TriggerCheckpointNow { reply: tx });
        Box::pin(async move { rx.await.unwrap_or_else(|_| Err(coordinator_stopped())) })
    }
}

fn coordinator_stopped() -> RuntimeError {
    RuntimeError::Unavailable("the checkpoint coordinator stopped".into())
}

/// A JobMaster learns that a TaskExecutor holding some of its slots is gone (heartbeat
/// timeout, closed link, shutdown): its subtasks there failed, whatever they last reported.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct TaskExecutorLost {
    /// The TaskExecutor.
    pub resource_id: crate::ids::ResourceId,
    /// Why it is gone.
    pub reason: String,
}

impl Handler<TaskExecutorLost> for JobMaster {
    type Result = ();
    fn handle(&mut self, msg: TaskExecutorLost, ctx: &mut Self::Context) {
        self.feed(JobInput::TaskExecutorLost { resource_id: msg.resource_id, reason: msg.reason }, ctx);
    }
}

/// Where the job's slots are, for the TaskExecutors: None when they are all in one process
/// (channels stay in memory), else every slot's TaskExecutor and data address. A job spread
/// over the JobManager's own TaskExecutors and TaskManager processes is refused: the
/// JobManager process has no data plane.
fn placement(
    directory: &Directory,
    assignments: &[SlotAssignment],
) -> Result<Option<Vec<crate::gateway::PeerLocation>>, String> {
    let mut executors: Vec<&crate::ids::ResourceId> = assignments.iter().map(|a| &a.resource_id).collect();
    executors.sort();
    executors.dedup();
    if executors.len() <= 1 {
        return Ok(None);
    }
    let mut peers = Vec::with_capacity(assignments.len());
    for a in assignments {
        let data_address = match directory.task_executors.get(&a.resource_id).map(|g| g.clone()) {
            Some(crate::peers::TaskExecutorGateway::Remote(r)) => Some(r.data_address().to_string()),
            Some(crate::peers::TaskExecutorGateway::Local(_)) => None,
            None => return Err(format!("task executor {} is gone", a.resource_id)),
        };
        peers.push(crate::gateway::PeerLocation { resource_id: a.resource_id.clone(), data_address });
    }
    let remote = peers.iter().filter(|p| p.data_address.is_some()).count();
    if remote > 0 && remote < peers.len() {
        let names: Vec<String> = executors.iter().map(|r| r.to_string()).collect();
        return Err(format!(
            "the job's {} slots are spread over the JobManager's own TaskExecutors and TaskManager processes \
             ({}); data flows between TaskManager processes only: run it with a parallelism that fits one \
             side's free slots",
            assignments.len(),
            names.join(", ")
        ));
    }
    Ok((remote > 0).then_some(peers))
}
