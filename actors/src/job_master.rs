//! The JobMaster: one per job. Turns the job graph into executions, gets slots from the
//! ResourceManager, deploys subtasks (slot sharing: subtask i of every vertex goes to slot i),
//! follows their states, and ends the job FINISHED, FAILED (with the root cause naming the
//! operator and subtask) or CANCELED. Its children are the SourceCoordinators.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use riffle_api::JobGraph;
use serde::{Deserialize, Serialize};

use crate::checkpoint_coordinator::{
    CheckpointCompleted, CheckpointCoordinator, CheckpointSettings, CoordinatorTasks, StopCheckpointing,
    TriggerCheckpointNow, TriggerSavepoint,
};
use crate::exception_history::ExceptionEntry;
use crate::gateway::{
    AcknowledgeCheckpoint, CancelTask, ConfirmEnd, DeclineCheckpoint, DeployTask, ReleaseSlots, RequestSlots,
    SlotAssignment, SplitRequest, SplitResponse, TaskState, TaskStateUpdate,
};
use crate::ids::{ExecutionId, JobId};
use crate::job_status::{transition, JobEvent, JobStatus};
use crate::registry::RuntimeShared;
use crate::restart_strategy::{RestartStrategy, RestartTracker};
use crate::restore_plan::{plan, RestorePlan, RestorePoint, VertexShape};
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
    /// FINISHED, FAILED or CANCELED.
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
}

/// Takes a savepoint of a running job; answers with its directory.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<std::path::PathBuf, String>")]
pub struct SavepointRequest {
    /// Where the `savepoint-…` directory goes (else `state.savepoints.dir`).
    pub target: Option<std::path::PathBuf>,
    /// What happens to the job afterwards.
    pub then: AfterSavepoint,
}

/// Triggers a checkpoint now; answers with its id once it completed.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<u64, String>")]
pub struct CheckpointRequest;

/// Cancels the job.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "()")]
pub struct CancelJobExecution;

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

/// A failure as the JobMaster sees it.
struct Failure {
    message: String,
    task_name: Option<String>,
    subtask: Option<u32>,
    location: Option<String>,
}

impl Failure {
    fn job(message: String) -> Self {
        Self { message, task_name: None, subtask: None, location: None }
    }
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

/// The JobMaster actor.
pub struct JobMaster {
    job: JobId,
    graph: Arc<JobGraph>,
    shared: Arc<RuntimeShared>,
    settings: JobMasterSettings,
    status: JobStatus,
    attempt: u32,
    assignments: Vec<SlotAssignment>,
    executions: HashMap<(u32, u32), Option<TaskState>>,
    coordinators: HashMap<u32, Addr<SourceCoordinator>>,
    root_cause: Option<String>,
    tracker: RestartTracker,
    restart_delay: Duration,
    checkpointing: Option<CheckpointSettings>,
    coordinator: Option<Addr<CheckpointCoordinator>>,
    checkpoint_ids: Arc<AtomicU64>,
    /// What a (re)start resumes from: the latest completed checkpoint, or the savepoint the
    /// job was submitted with.
    restore_point: Option<RestorePoint>,
    restore_plan: Option<RestorePlan>,
    allow_non_restored: bool,
    /// A stop-with-savepoint or cancel-with-savepoint in progress.
    after_savepoint: Option<AfterSavepoint>,
    started: Instant,
    dispatcher: Recipient<JobTerminated>,
    status_listener: Recipient<JobStatusChanged>,
    history: Recipient<ExceptionRecorded>,
    on_exit: Recipient<ChildExited>,
    exit: ExitReason,
    done: bool,
}

impl JobMaster {
    /// A JobMaster for `job`, reporting to the Dispatcher.
    pub fn new(
        job: JobId,
        graph: Arc<JobGraph>,
        shared: Arc<RuntimeShared>,
        settings: JobMasterSettings,
        parent: JobMasterParent,
    ) -> Self {
        let JobMasterParent { terminated: dispatcher, status: status_listener, history, exit: on_exit } = parent;
        Self {
            job,
            graph,
            shared,
            settings,
            status: JobStatus::Created,
            attempt: 0,
            assignments: Vec::new(),
            executions: HashMap::new(),
            coordinators: HashMap::new(),
            root_cause: None,
            tracker: RestartTracker::new(RestartStrategy::None),
            restart_delay: Duration::ZERO,
            checkpointing: None,
            coordinator: None,
            checkpoint_ids: Arc::new(AtomicU64::new(1)),
            restore_point: None,
            restore_plan: None,
            allow_non_restored: false,
            after_savepoint: None,
            started: Instant::now(),
            dispatcher,
            status_listener,
            history,
            on_exit,
            exit: ExitReason::Normal,
            done: false,
        }
    }

    fn apply(&mut self, event: JobEvent) {
        match transition(self.status, event) {
            Ok(s) => {
                if s != self.status {
                    self.status = s;
                    self.status_listener.do_send(JobStatusChanged { job_id: self.job, status: s });
                }
            }
            Err(e) => tracing::warn!(job = %self.job, "{e}"),
        }
    }

    fn fail(&mut self, cause: String, ctx: &mut Context<Self>) {
        self.on_failure(Failure::job(cause), ctx)
    }

    /// A failure: recorded in the exception history, then, if it is the first of this
    /// attempt, the restart strategy decides between a restart and failing the job.
    fn on_failure(&mut self, f: Failure, ctx: &mut Context<Self>) {
        let first = self.status == JobStatus::Running;
        // Failures before the job was deployed (slots, sources) are not restarted.
        let restart = if first && !self.executions.is_empty() { self.tracker.on_failure(Instant::now()) } else { None };
        self.history.do_send(ExceptionRecorded {
            job_id: self.job,
            entry: ExceptionEntry {
                timestamp_ms: riffle_api::time::now_ms(),
                exception: f.message.clone(),
                task_name: f.task_name,
                subtask_index: f.subtask,
                location: f.location,
                is_root_cause: first,
                attempt: self.attempt,
            },
        });
        if first {
            match restart {
                Some(delay) => {
                    tracing::warn!(job = %self.job, ?delay, attempt = self.attempt, "restarting the job: {}", f.message);
                    self.restart_delay = delay;
                    self.apply(JobEvent::Restart);
                }
                None => {
                    tracing::warn!(job = %self.job, "job failing: {}", f.message);
                    self.root_cause = Some(f.message);
                    self.apply(JobEvent::Fail);
                }
            }
        } else if self.status == JobStatus::Created {
            self.root_cause = Some(f.message);
            self.apply(JobEvent::Fail);
        }
        self.cancel_all(ctx);
    }

    /// Starts checkpointing for the current attempt once every subtask runs.
    fn maybe_start_checkpointing(&mut self, ctx: &mut Context<Self>) {
        let Some(settings) = self.checkpointing.clone() else { return };
        if self.coordinator.is_some()
            || self.status != JobStatus::Running
            || !self.executions.values().all(|s| *s == Some(TaskState::Running))
        {
            return;
        }
        let mut sources = Vec::new();
        let mut tasks = Vec::new();
        for &(v, s) in self.executions.keys() {
            let Some(a) = self.assignments.get(s as usize) else { continue };
            let e = ExecutionId { job: self.job, vertex: v, subtask: s, attempt: self.attempt };
            if self.graph.vertices().get(v as usize).is_some_and(|x| x.is_source) {
                sources.push((e, a.resource_id.clone()));
            }
            tasks.push((e, a.resource_id.clone()));
        }
        let tasks = CoordinatorTasks {
            sources,
            tasks,
            vertices: self.vertex_infos(),
            max_parallelism: self.graph.max_parallelism,
        };
        let c = CheckpointCoordinator::new(
            self.job,
            settings,
            self.shared.clone(),
            tasks,
            self.checkpoint_ids.clone(),
            ctx.address().recipient(),
        );
        self.coordinator = Some(c.start());
    }

    fn stop_checkpointing(&mut self, reason: &str) {
        if let Some(c) = self.coordinator.take() {
            c.do_send(StopCheckpointing { reason: reason.to_string() });
        }
    }

    fn cancel_all(&mut self, ctx: &mut Context<Self>) {
        self.stop_checkpointing("the job attempt is ending");
        let mut any = false;
        for (&(v, s), st) in &self.executions {
            if st.as_ref().is_some_and(TaskState::is_terminal) {
                continue;
            }
            any = true;
            let execution = ExecutionId { job: self.job, vertex: v, subtask: s, attempt: self.attempt };
            let te = self.assignments.get(s as usize).and_then(|a| self.shared.task_executors.get(&a.resource_id));
            if let Some(te) = te {
                te.do_send(CancelTask { execution });
            }
        }
        if !any {
            self.finish_if_done(ctx);
            return;
        }
        let attempt = self.attempt;
        ctx.run_later(self.settings.cancel_timeout, move |act, ctx| {
            if act.done || act.attempt != attempt {
                return;
            }
            tracing::warn!(job = %act.job, "subtasks did not stop in time; going on without them");
            if act.status == JobStatus::Restarting {
                act.restart(ctx);
            } else {
                act.finalize(JobEvent::AllStopped, ctx);
            }
        });
    }

    /// Starts the job again on the slots it holds: a new attempt with fresh channels and
    /// fresh split enumerators (no checkpoint to resume from yet: sources start over).
    fn restart(&mut self, ctx: &mut Context<Self>) {
        let old = self.attempt;
        self.attempt += 1;
        self.shared.exchange.remove_attempt(self.job, old);
        self.executions.clear();
        if let Err(why) = self.start_coordinators() {
            self.apply(JobEvent::Fail);
            self.root_cause = Some(why);
            return self.finish_if_done(ctx);
        }
        self.apply(JobEvent::Schedule);
        let lost = self.assignments.iter().any(|a| !self.shared.task_executors.contains_key(&a.resource_id));
        if lost {
            // A TaskExecutor of the last attempt is gone: give the remaining slots back and
            // ask for a whole new set (they may come from a TaskExecutor that replaced it).
            if let Some(rm) = self.shared.resource_manager() {
                rm.do_send(ReleaseSlots { job_id: self.job });
            }
            self.assignments.clear();
            return self.request_slots(ctx);
        }
        let assignments = self.assignments.clone();
        self.deploy(assignments, ctx);
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
    fn set_restore_point(&mut self, point: RestorePoint) -> Result<(), String> {
        let p = plan(&point, &self.vertex_shapes(), self.graph.max_parallelism, self.allow_non_restored)
            .map_err(|e| e.to_string())?;
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

    fn start_coordinators(&mut self) -> Result<(), String> {
        self.coordinators.clear();
        for v in self.graph.vertices() {
            if let Some(src) = self.graph.source_of(v.id) {
                let name = v.nodes.first().and_then(|n| self.graph.operator_name(*n)).unwrap_or(&v.name).to_string();
                let restore = self.restore_plan.as_ref().and_then(|p| p.enumerators.get(&(v.id as u32)));
                let parallelism = restore.map(|r| r.parallelism).unwrap_or(v.parallelism);
                match catch_panic(|| src.create_enumerator(parallelism)) {
                    Ok(Ok(mut e)) => {
                        if let Some(r) = restore {
                            e.restore(&r.consumed);
                            if !r.splits_back.is_empty() {
                                e.add_splits_back(r.splits_back.clone(), 0)
                                    .map_err(|why| format!("source '{name}' cannot take its splits back: {why}"))?;
                            }
                        }
                        self.coordinators.insert(v.id as u32, SourceCoordinator::new(e).start());
                    }
                    Ok(Err(e)) => return Err(format!("source '{name}' failed to start: {e}")),
                    Err(p) => return Err(format!("source '{name}' panicked while starting: {p}")),
                }
            }
        }
        Ok(())
    }

    fn all_terminal(&self) -> bool {
        self.executions.values().all(|s| s.as_ref().is_some_and(TaskState::is_terminal))
    }

    fn finish_if_done(&mut self, ctx: &mut Context<Self>) {
        if self.done || !self.all_terminal() {
            return;
        }
        match self.status {
            JobStatus::Running if self.executions.values().all(|s| *s == Some(TaskState::Finished)) => {
                self.finalize(JobEvent::AllFinished, ctx)
            }
            JobStatus::Failing | JobStatus::Cancelling => self.finalize(JobEvent::AllStopped, ctx),
            JobStatus::Restarting => {
                let attempt = self.attempt;
                ctx.run_later(self.restart_delay, move |act, ctx| {
                    if !act.done && act.attempt == attempt && act.status == JobStatus::Restarting {
                        act.restart(ctx);
                    }
                });
            }
            _ => {}
        }
    }

    fn finalize(&mut self, event: JobEvent, ctx: &mut Context<Self>) {
        if self.done {
            return;
        }
        self.done = true;
        self.stop_checkpointing("the job ended");
        self.apply(event);
        if let Some(rm) = self.shared.resource_manager() {
            rm.do_send(ReleaseSlots { job_id: self.job });
        }
        self.shared.exchange.remove_attempt(self.job, self.attempt);
        self.graph.job_terminated();
        let result = JobResult {
            job_id: self.job,
            name: self.graph.name.clone(),
            status: self.status,
            error: if self.status == JobStatus::Failed { self.root_cause.clone() } else { None },
            duration: self.started.elapsed(),
        };
        tracing::info!(job = %self.job, status = %self.status, "job ended");
        self.clean_up_checkpoints();
        self.dispatcher.do_send(JobTerminated(result));
        ctx.stop();
    }

    fn deploy(&mut self, assignments: Vec<SlotAssignment>, ctx: &mut Context<Self>) {
        if self.status != JobStatus::Running {
            // Cancelled while waiting for slots.
            self.finalize(JobEvent::AllStopped, ctx);
            return;
        }
        let peers = match placement(&self.shared, &assignments) {
            Ok(p) => p,
            Err(why) => return self.fail(why, ctx),
        };
        self.assignments = assignments;
        if let Some(point) = &self.restore_point {
            let record = crate::checkpoint_history::RestoredRecord {
                id: point.meta.checkpoint_id,
                restore_ms: riffle_api::time::now_ms(),
                is_savepoint: point.meta.kind == riffle_state::checkpoint_metadata::CheckpointKind::Savepoint,
                external_path: point.dir.as_ref().map(|d| d.display().to_string()),
            };
            self.shared.checkpoint_stats(self.job).with_history(|h| h.restored(record));
        }
        let vertices: Vec<(u32, u32)> = self.graph.vertices().iter().map(|v| (v.id as u32, v.parallelism)).collect();
        let view = self.shared.view(self.job);
        if let Some(view) = &view {
            view.new_attempt(self.attempt);
        }
        for &(v, p) in &vertices {
            for s in 0..p {
                self.executions.insert((v, s), None);
                if let Some(view) = &view {
                    view.set_task(v, s, crate::job_view::ExecutionState::Deploying);
                }
            }
        }
        // Consumers first, so their channels exist before producers write (either order
        // works; this one just avoids producers waiting).
        for &(v, p) in vertices.iter().rev() {
            for s in 0..p {
                let execution = ExecutionId { job: self.job, vertex: v, subtask: s, attempt: self.attempt };
                let Some(a) = self.assignments.get(s as usize) else {
                    return self.fail(format!("no slot for subtask {s} of vertex {v}"), ctx);
                };
                let te = self.shared.task_executors.get(&a.resource_id).map(|t| t.clone());
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
                    None => {
                        let why = format!("task executor {} is gone", a.resource_id);
                        return self.fail(why, ctx);
                    }
                }
            }
        }
    }

    fn on_task_update(&mut self, msg: TaskStateUpdate, ctx: &mut Context<Self>) {
        let e = msg.execution;
        if e.attempt != self.attempt || self.done {
            return;
        }
        let Some(slot) = self.executions.get_mut(&(e.vertex, e.subtask)) else { return };
        if slot.as_ref().is_some_and(TaskState::is_terminal) {
            return;
        }
        *slot = Some(msg.state.clone());
        if let Some(view) = self.shared.view(self.job) {
            use crate::job_view::ExecutionState as X;
            let state = match &msg.state {
                TaskState::Running => X::Running,
                TaskState::Finished => X::Finished,
                TaskState::Canceled => X::Canceled,
                TaskState::Failed(_) => X::Failed,
            };
            view.set_task(e.vertex, e.subtask, state);
        }
        match msg.state {
            TaskState::Running => self.maybe_start_checkpointing(ctx),
            // As in Flink 1.11, no checkpoints once a task finished.
            TaskState::Finished => self.stop_checkpointing("a task finished"),
            TaskState::Canceled => {
                if self.status == JobStatus::Running {
                    self.fail(
                        format!(
                            "subtask {}/{} of vertex {} was cancelled unexpectedly",
                            e.subtask + 1,
                            self.parallelism(e.vertex),
                            e.vertex
                        ),
                        ctx,
                    );
                }
            }
            TaskState::Failed(err) => {
                let v = self.graph.vertices().get(e.vertex as usize);
                let task = v.map(|v| v.name.clone()).unwrap_or_else(|| "?".into());
                let cause = format!(
                    "{} (subtask {}/{} of '{}', task executor {})",
                    err,
                    e.subtask + 1,
                    v.map(|v| v.parallelism).unwrap_or(0),
                    task,
                    msg.location
                );
                let failure = Failure {
                    message: cause,
                    task_name: Some(task),
                    subtask: Some(e.subtask),
                    location: Some(msg.location.to_string()),
                };
                self.on_failure(failure, ctx);
            }
        }
        self.finish_if_done(ctx);
    }

    /// Starts the split enumerators and asks for slots; deploying follows.
    fn schedule(&mut self, ctx: &mut Context<Self>) {
        if self.status != JobStatus::Running {
            // Cancelled while the savepoint was loading.
            return self.finalize(JobEvent::AllStopped, ctx);
        }
        if let Err(why) = self.start_coordinators() {
            return self.fail(why, ctx);
        }
        self.request_slots(ctx);
    }

    /// Asks the ResourceManager for the job's slots; deploying follows.
    fn request_slots(&mut self, ctx: &mut Context<Self>) {
        let Some(rm) = self.shared.resource_manager() else {
            return self.fail("no resource manager".into(), ctx);
        };
        let req = RequestSlots {
            job_id: self.job,
            count: self.graph.required_slots(),
            timeout_ms: self.settings.slot_request_timeout.as_millis() as u64,
        };
        rm.send(req)
            .into_actor(self)
            .then(|res, act, ctx| {
                match res {
                    Ok(Ok(a)) => act.deploy(a, ctx),
                    Ok(Err(e)) => act.fail(e.to_string(), ctx),
                    Err(e) => act.fail(format!("resource manager unreachable: {e}"), ctx),
                }
                fut::ready(())
            })
            .spawn(ctx);
    }

    /// Deletes the job's checkpoints when it ends, unless they are retained
    /// (`execution.checkpointing.externalized-checkpoint-retention`).
    fn clean_up_checkpoints(&self) {
        let Some(settings) = &self.checkpointing else { return };
        let failed = self.status == JobStatus::Failed;
        if !settings.retention.deletes_on_end(failed) {
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

    fn parallelism(&self, vertex: u32) -> u32 {
        self.graph.vertices().get(vertex as usize).map(|v| v.parallelism).unwrap_or(0)
    }
}

// Senders reach it through a `Probed` address: thread dumps show its mailbox.
crate::counted_mailbox!(JobMaster);

impl Actor for JobMaster {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.apply(JobEvent::Schedule);
        let mut conf = self.shared.config.clone();
        conf.merge(&self.graph.config);
        match RestartStrategy::from_config(&conf) {
            Ok(strategy) => self.tracker = RestartTracker::new(strategy),
            Err(e) => return self.fail(e.to_string(), ctx),
        }
        match CheckpointSettings::from_config(&conf) {
            Ok(c) => {
                *self.shared.checkpoint_stats(self.job).settings.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(c.clone());
                self.checkpointing = Some(c)
            }
            Err(e) => return self.fail(e.to_string(), ctx),
        }
        match conf.get("execution.savepoint.ignore-unclaimed-state", false) {
            Ok(b) => self.allow_non_restored = b,
            Err(e) => return self.fail(e.to_string(), ctx),
        }
        let Some(path) = conf.get_str("execution.savepoint.path").map(std::path::PathBuf::from) else {
            return self.schedule(ctx);
        };
        async move { crate::restore_plan::load(&path).await }
            .into_actor(self)
            .map(|r, act, ctx| {
                let r = r.and_then(|point| {
                    let id = point.meta.checkpoint_id;
                    act.set_restore_point(point)?;
                    Ok(id)
                });
                match r {
                    Ok(id) => {
                        tracing::info!(job = %act.job, checkpoint = id, "restoring from a savepoint/checkpoint");
                        act.schedule(ctx)
                    }
                    Err(e) => act.fail(e, ctx),
                }
            })
            .spawn(ctx);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.shared.job_masters.remove(&self.job);
        if !self.done {
            self.graph.job_terminated();
            if let Some(rm) = self.shared.resource_manager() {
                rm.do_send(ReleaseSlots { job_id: self.job });
            }
        }
        self.on_exit.do_send(ChildExited { child: self.job.to_string(), reason: self.exit.clone() });
    }
}

impl Handler<TaskStateUpdate> for JobMaster {
    type Result = ();
    fn handle(&mut self, msg: TaskStateUpdate, ctx: &mut Self::Context) {
        if let Err(p) = catch_panic(|| self.on_task_update(msg, ctx)) {
            self.exit = ExitReason::Panicked(p);
            ctx.stop();
        }
    }
}

impl Handler<CheckpointCompleted> for JobMaster {
    type Result = ();
    fn handle(&mut self, msg: CheckpointCompleted, _: &mut Self::Context) {
        let newer = self.restore_point.as_ref().is_none_or(|c| c.meta.checkpoint_id < msg.meta.checkpoint_id);
        if let (Some(store), Some(dir), true) = (self.shared.job_store(), &msg.dir, newer) {
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
        if msg.execution.attempt == self.attempt {
            if let Some(c) = &self.coordinator {
                c.do_send(msg);
            }
        }
    }
}

impl Handler<AcknowledgeCheckpoint> for JobMaster {
    type Result = ();
    fn handle(&mut self, msg: AcknowledgeCheckpoint, _: &mut Self::Context) {
        if msg.execution.attempt == self.attempt {
            if let Some(c) = &self.coordinator {
                c.do_send(msg);
            }
        }
    }
}

impl Handler<CancelJobExecution> for JobMaster {
    type Result = ();
    fn handle(&mut self, _: CancelJobExecution, ctx: &mut Self::Context) {
        if self.done || self.status.is_terminal() {
            return;
        }
        self.apply(JobEvent::Cancel);
        if self.executions.is_empty() {
            // Still waiting for slots: the slot response will see the status and end it.
            return;
        }
        self.cancel_all(ctx);
    }
}

impl Handler<SplitRequest> for JobMaster {
    type Result = ResponseFuture<Result<SplitResponse, String>>;
    fn handle(&mut self, msg: SplitRequest, _: &mut Self::Context) -> Self::Result {
        let coord = self.coordinators.get(&msg.execution.vertex).cloned();
        Box::pin(async move {
            match coord {
                Some(c) => c.send(msg).await.map_err(|e| format!("source coordinator unreachable: {e}"))?,
                None => Err(format!("vertex {} has no source coordinator", msg.execution.vertex)),
            }
        })
    }
}

impl Handler<ConfirmEnd> for JobMaster {
    type Result = Result<(), String>;
    fn handle(&mut self, msg: ConfirmEnd, _: &mut Self::Context) -> Self::Result {
        if msg.execution.attempt != self.attempt {
            return Err(format!(
                "attempt {} of the job was superseded by attempt {}",
                msg.execution.attempt, self.attempt
            ));
        }
        if self.done || self.status != JobStatus::Running {
            return Err(format!("the job is {} now", self.status.as_str()));
        }
        Ok(())
    }
}

impl Handler<SavepointRequest> for JobMaster {
    type Result = ResponseActFuture<Self, Result<std::path::PathBuf, String>>;
    fn handle(&mut self, msg: SavepointRequest, _: &mut Self::Context) -> Self::Result {
        let refuse = |why: &str| -> Self::Result { Box::pin(fut::ready(Err(why.to_string()))) };
        let Some(c) = self.coordinator.clone() else {
            return refuse("the job is not running: a savepoint needs every task running");
        };
        if self.after_savepoint.is_some() {
            return refuse("a stop or cancel with savepoint is already in progress");
        }
        if msg.then != AfterSavepoint::Continue {
            self.after_savepoint = Some(msg.then);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        c.do_send(TriggerSavepoint { target: msg.target, stop_sources: msg.then == AfterSavepoint::Stop, reply: tx });
        Box::pin(
            async move { rx.await.unwrap_or_else(|_| Err("the checkpoint coordinator stopped".to_string())) }
                .into_actor(self)
                .map(|r, act, ctx| {
                    let then = act.after_savepoint.take();
                    if r.is_ok() && then == Some(AfterSavepoint::Cancel) && !act.done {
                        act.apply(JobEvent::Cancel);
                        act.cancel_all(ctx);
                    }
                    r
                }),
        )
    }
}

impl Handler<CheckpointRequest> for JobMaster {
    type Result = ResponseFuture<Result<u64, String>>;
    fn handle(&mut self, _: CheckpointRequest, _: &mut Self::Context) -> Self::Result {
        let Some(c) = self.coordinator.clone() else {
            return Box::pin(async {
                Err("the job is not running: a checkpoint needs every task running".to_string())
            });
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        c.do_send(TriggerCheckpointNow { reply: tx });
        Box::pin(async move { rx.await.unwrap_or_else(|_| Err("the checkpoint coordinator stopped".to_string())) })
    }
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
        let lost: Vec<(u32, u32)> = self
            .executions
            .iter()
            .filter(|(_, st)| !st.as_ref().is_some_and(TaskState::is_terminal))
            .filter(|((_, s), _)| self.assignments.get(*s as usize).is_some_and(|a| a.resource_id == msg.resource_id))
            .map(|(k, _)| *k)
            .collect();
        for (vertex, subtask) in lost {
            let execution = ExecutionId { job: self.job, vertex, subtask, attempt: self.attempt };
            let error = riffle_api::TaskError::msg(
                format!("task executor {}", msg.resource_id),
                format!("the task executor is lost: {}", msg.reason),
            );
            let update =
                TaskStateUpdate { execution, state: TaskState::Failed(error), location: msg.resource_id.clone() };
            self.on_task_update(update, ctx);
        }
    }
}

/// Where the job's slots are, for the TaskExecutors: None when they are all in one process
/// (channels stay in memory), else every slot's TaskExecutor and data address. A job spread
/// over the JobManager's own TaskExecutors and TaskManager processes is refused: the
/// JobManager process has no data plane.
fn placement(
    shared: &RuntimeShared,
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
        let data_address = match shared.task_executors.get(&a.resource_id).map(|g| g.clone()) {
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
