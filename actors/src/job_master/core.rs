//! The job lifecycle as a pure state machine: every decision the JobMaster makes about one
//! job — schedule, deploy, follow its subtasks, fail over, cancel, finish — is taken here, by
//! [`JobCore::on`], from an event and the state so far, and comes out as [`JobCommand`]s for
//! the actor (`super`) to carry out. The core sends nothing, starts no actor, reads no clock
//! (the time comes with each event) and touches no registry, so every transition is tested
//! as a table in `core/tests.rs`.
//!
//! How a job moves (statuses are Flink's, [`JobStatus`]):
//! - **Scheduling** (RUNNING, no executions yet): `Start` → the actor reads settings and any
//!   savepoint → `Ready` → [`JobCommand::PrepareAttempt`] (split enumerators) →
//!   `AttemptPrepared` → [`JobCommand::RequestSlots`] → `SlotsGranted` → [`JobCommand::Deploy`].
//! - **Running**: subtask reports come in; once all run (or already ended), checkpointing
//!   starts; subtasks whose input ended or that finished are handed to the checkpoint
//!   coordinator, which goes on without them (FLIP-147; with
//!   `checkpoints-after-tasks-finish` off, the first finished subtask stops checkpointing);
//!   when every subtask finished the job is FINISHED.
//! - **Failing over**: the first failure of an attempt asks the restart strategy. A restart
//!   (RESTARTING) cancels what still runs, waits for every subtask to stop (or the cancel
//!   timeout), waits the restart delay and prepares a new attempt on the same slots (new ones
//!   when a TaskExecutor is gone). No restart (FAILING) cancels the rest and ends FAILED with
//!   the first failure as root cause. Failures after the first in an attempt are recorded,
//!   not acted upon.
//! - **Cancelling**: cancel what runs, end CANCELED when all stopped (or the cancel timeout).
//! - **Suspending** (high availability: this JobManager lost its leadership), from any status
//!   that is not an end: SUSPENDED at once, checkpointing stops (pending checkpoints are
//!   aborted, their files and every completed checkpoint kept), a pending restart never
//!   comes, what runs is cancelled, and the JobMaster ends SUSPENDED when all stopped (or the
//!   cancel timeout) — with [`JobCommand::Terminate`]'s `clean_up` false: the job's HA data
//!   (stored graph, checkpoints, counter, history) stays for the next leader. Reports after
//!   the suspension (a failure included) only count towards the end.
//! - Reports from a superseded attempt and anything after the end are ignored.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::checkpoint_coordinator::core::TaskEnd;
use crate::error::RuntimeError;
use crate::exception_history::ExceptionEntry;
use crate::gateway::{SlotAssignment, TaskOutcome, TaskState, TaskStateUpdate};
use crate::ids::{ExecutionId, JobId, ResourceId};
use crate::job_status::{transition, JobEvent, JobStatus};
use crate::job_view::ExecutionState;
use crate::restart_strategy::RestartTracker;

use super::AfterSavepoint;

pub use crate::clock::Clock;

/// Why a suspended job does what it does (savepoints refused, pending checkpoints aborted).
pub const SUSPENDED: &str = "the job is suspended: this JobManager lost its leadership";

/// What the core knows of a vertex: enough to name a failing subtask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VertexSummary {
    /// The vertex id.
    pub id: u32,
    /// Its parallelism.
    pub parallelism: u32,
    /// Its name (the chained operators').
    pub name: String,
}

/// A timer the core asked for, coming back as [`JobInput::Timer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobTimer {
    /// The subtasks of `attempt` were asked to stop that long ago.
    CancelTimedOut {
        /// The attempt whose subtasks were cancelled.
        attempt: u32,
    },
    /// The restart delay of `attempt` passed.
    RestartDue {
        /// The attempt that failed.
        attempt: u32,
    },
}

/// What happens to the job: the actor's messages, its own I/O's outcomes and its timers.
#[derive(Debug, Clone)]
pub enum JobInput {
    /// The JobMaster started.
    Start,
    /// Settings read and the savepoint (if any) loaded: scheduling may begin.
    Ready,
    /// Scheduling cannot go on (bad settings, unreadable savepoint, no slots, no resource
    /// manager, slots spread over both kinds of TaskExecutor). No restart helps.
    SchedulingFailed(RuntimeError),
    /// The outcome of [`JobCommand::PrepareAttempt`]: the split enumerators started or not,
    /// and whether every TaskExecutor of the slots held is still there.
    AttemptPrepared {
        /// Why the enumerators did not start.
        result: Result<(), RuntimeError>,
        /// Every held slot's TaskExecutor is registered.
        executors_present: bool,
    },
    /// The ResourceManager granted the slots.
    SlotsGranted(Vec<SlotAssignment>),
    /// [`JobCommand::Deploy`] could not place the slots (nothing was deployed).
    PlacementFailed(String),
    /// [`JobCommand::Deploy`] stopped half way (a TaskExecutor is gone).
    DeployFailed(String),
    /// A subtask's state changed.
    TaskUpdate(TaskStateUpdate),
    /// A TaskExecutor holding some of the job's slots is gone: its subtasks failed.
    TaskExecutorLost {
        /// The TaskExecutor.
        resource_id: ResourceId,
        /// Why it is gone.
        reason: String,
    },
    /// The user cancels the job.
    Cancel,
    /// A savepoint asked through [`JobCore::begin_savepoint`] ended.
    SavepointFinished {
        /// It completed.
        succeeded: bool,
    },
    /// A timer fired.
    Timer(JobTimer),
    /// This JobManager is no longer the leader: the job goes to the next one (SUSPENDED).
    Suspend,
}

/// What the actor does for the core.
#[derive(Debug, Clone, PartialEq)]
pub enum JobCommand {
    /// Tell the Dispatcher the job's new status.
    PublishStatus(JobStatus),
    /// Keep a failure in the exception history.
    RecordException(ExceptionEntry),
    /// Show a subtask's state in the job's view.
    ShowTaskState {
        /// The vertex.
        vertex: u32,
        /// The subtask.
        subtask: u32,
        /// Its state.
        state: ExecutionState,
    },
    /// Start the split enumerators of `attempt` (dropping `previous`'s channels first) and
    /// answer with [`JobInput::AttemptPrepared`].
    PrepareAttempt {
        /// The attempt to come.
        attempt: u32,
        /// The attempt it replaces.
        previous: Option<u32>,
    },
    /// Ask the ResourceManager for the job's slots; answer with [`JobInput::SlotsGranted`]
    /// or [`JobInput::SchedulingFailed`].
    RequestSlots,
    /// Give every slot of the job back.
    ReleaseSlots,
    /// Deploy every subtask of `attempt` into `assignments` (subtask i into slot i); answer
    /// with [`JobInput::PlacementFailed`] or [`JobInput::DeployFailed`] if it cannot.
    Deploy {
        /// The attempt.
        attempt: u32,
        /// The slots.
        assignments: Vec<SlotAssignment>,
    },
    /// Cancel these executions on their TaskExecutors.
    CancelTasks(Vec<(ExecutionId, ResourceId)>),
    /// Feed `timer` back after `after`.
    StartTimer {
        /// The delay.
        after: Duration,
        /// What comes back.
        timer: JobTimer,
    },
    /// Every subtask runs (or ended): start the attempt's checkpoint coordinator for these
    /// executions.
    StartCheckpointing {
        /// Every execution of the attempt and where it runs.
        tasks: Vec<(ExecutionId, ResourceId)>,
        /// Those whose input ended or that finished already.
        ended: Vec<(ExecutionId, TaskEnd)>,
    },
    /// Tell the checkpoint coordinator that a subtask's input ended or it finished.
    TaskEnded {
        /// Which execution.
        execution: ExecutionId,
        /// How far it got.
        end: TaskEnd,
    },
    /// Stop the checkpoint coordinator (pending checkpoints are aborted).
    StopCheckpointing(&'static str),
    /// Stop the checkpoint coordinator for a suspended job: pending checkpoints are aborted
    /// but what they wrote stays (the next leader owns the job's checkpoint directory now),
    /// and no completed checkpoint is deleted.
    SuspendCheckpointing(&'static str),
    /// Drop the in-process channels of an ended attempt.
    DropChannels {
        /// The attempt.
        attempt: u32,
    },
    /// The job ended here: report it, clean up (if `clean_up`) its checkpoints as retention
    /// says, stop.
    Terminate {
        /// FINISHED, FAILED, CANCELED or SUSPENDED.
        status: JobStatus,
        /// The root cause, for a failed job.
        error: Option<String>,
        /// The job ended for good: its checkpoints (as retention says) and its highly
        /// available data may be removed. False for a suspended job, which the next leader
        /// recovers from exactly that data.
        clean_up: bool,
    },
}

/// A failure as the core sees it.
#[derive(Debug, Clone)]
struct Failure {
    message: String,
    /// The cause chain, outermost first.
    causes: Vec<String>,
    task_name: Option<String>,
    subtask: Option<u32>,
    location: Option<String>,
}

impl Failure {
    fn job(message: String) -> Self {
        Self { causes: vec![message.clone()], message, task_name: None, subtask: None, location: None }
    }

    fn of(e: &RuntimeError) -> Self {
        Self { message: e.to_string(), causes: e.chain(), task_name: None, subtask: None, location: None }
    }
}

/// One job's lifecycle.
#[derive(Debug)]
pub struct JobCore {
    job: JobId,
    vertices: Vec<VertexSummary>,
    status: JobStatus,
    attempt: u32,
    assignments: Vec<SlotAssignment>,
    /// Every subtask of the current attempt and its last reported state (None: deployed, no
    /// report yet). Empty while the attempt is being scheduled.
    executions: BTreeMap<(u32, u32), Option<TaskState>>,
    root_cause: Option<String>,
    tracker: RestartTracker,
    restart_delay: Duration,
    cancel_timeout: Duration,
    checkpointing_enabled: bool,
    /// `execution.checkpointing.checkpoints-after-tasks-finish`.
    after_tasks_finish: bool,
    checkpointing: bool,
    /// Subtasks of the current attempt whose input ended or that finished, for the
    /// coordinator (started later, or told at once).
    ended: BTreeMap<(u32, u32), TaskEnd>,
    after_savepoint: Option<AfterSavepoint>,
    /// A stop-with-savepoint without draining is stopping every subtask: their cancellation
    /// is expected, and the job ends FINISHED when all stopped.
    stopping: bool,
    done: bool,
    out: Vec<JobCommand>,
}

impl JobCore {
    /// A job about to be scheduled. `cancel_timeout` bounds how long stopping subtasks may
    /// take before the job goes on without them.
    pub fn new(job: JobId, vertices: Vec<VertexSummary>, tracker: RestartTracker, cancel_timeout: Duration) -> Self {
        Self {
            job,
            vertices,
            status: JobStatus::Created,
            attempt: 0,
            assignments: Vec::new(),
            executions: BTreeMap::new(),
            root_cause: None,
            tracker,
            restart_delay: Duration::ZERO,
            cancel_timeout,
            checkpointing_enabled: false,
            after_tasks_finish: false,
            checkpointing: false,
            ended: BTreeMap::new(),
            after_savepoint: None,
            stopping: false,
            done: false,
            out: Vec::new(),
        }
    }

    /// The restart strategy, once the job's settings are read.
    pub fn set_restart_tracker(&mut self, tracker: RestartTracker) {
        self.tracker = tracker;
    }

    /// Whether the job checkpoints (`execution.checkpointing.interval` or savepoints), and
    /// whether checkpoints go on after some subtasks finished (FLIP-147).
    pub fn enable_checkpointing(&mut self, after_tasks_finish: bool) {
        self.checkpointing_enabled = true;
        self.after_tasks_finish = after_tasks_finish;
    }

    /// The job's status.
    pub fn status(&self) -> JobStatus {
        self.status
    }

    /// The current attempt.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The slots the job holds.
    pub fn assignments(&self) -> &[SlotAssignment] {
        &self.assignments
    }

    /// Whether the job ended (the actor is stopping).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Whether a checkpoint coordinator runs (savepoints and checkpoints can be asked for).
    pub fn is_checkpointing(&self) -> bool {
        self.checkpointing
    }

    /// The one entry point: what `input` means for the job, as commands in order.
    pub fn on(&mut self, input: JobInput, clock: Clock) -> Vec<JobCommand> {
        self.out.clear();
        match input {
            JobInput::Start => self.apply(JobEvent::Schedule),
            JobInput::Ready => self.ready(),
            JobInput::SchedulingFailed(why) => self.fail(Failure::of(&why), clock),
            JobInput::AttemptPrepared { result, executors_present } => {
                self.attempt_prepared(result, executors_present, clock)
            }
            JobInput::SlotsGranted(assignments) => self.slots_granted(assignments),
            JobInput::PlacementFailed(why) => {
                self.executions.clear();
                self.fail(Failure::job(why), clock)
            }
            JobInput::DeployFailed(why) => self.fail(Failure::job(why), clock),
            JobInput::TaskUpdate(update) => self.task_update(update, clock),
            JobInput::TaskExecutorLost { resource_id, reason } => self.executor_lost(resource_id, reason, clock),
            JobInput::Cancel => self.cancel(),
            JobInput::SavepointFinished { succeeded } => {
                let then = self.after_savepoint.take();
                if succeeded && then == Some(AfterSavepoint::Cancel) && !self.done && !self.status.is_terminal() {
                    self.apply(JobEvent::Cancel);
                    self.cancel_all();
                }
                if succeeded
                    && then == Some(AfterSavepoint::StopWithoutDrain)
                    && !self.done
                    && self.status == JobStatus::Running
                {
                    self.stopping = true;
                    self.cancel_all();
                }
            }
            JobInput::Timer(timer) => self.timer(timer),
            JobInput::Suspend => self.suspend(),
        }
        std::mem::take(&mut self.out)
    }

    /// May a savepoint be taken now, followed by `then`? Refused while not every subtask
    /// runs, and while a stop or cancel with savepoint is under way.
    pub fn begin_savepoint(&mut self, then: AfterSavepoint) -> Result<(), RuntimeError> {
        if self.status == JobStatus::Suspended {
            return Err(RuntimeError::Refused(SUSPENDED.into()));
        }
        if !self.checkpointing {
            return Err(RuntimeError::Refused("the job is not running: a savepoint needs every task running".into()));
        }
        if self.after_savepoint.is_some() {
            return Err(RuntimeError::Refused("a stop or cancel with savepoint is already in progress".into()));
        }
        if then != AfterSavepoint::Continue {
            self.after_savepoint = Some(then);
        }
        Ok(())
    }

    /// May a subtask of `attempt` end its input now (where a two-phase-commit sink commits
    /// on its own)? Only the current attempt of a running job may.
    pub fn confirm_end(&self, attempt: u32) -> Result<(), RuntimeError> {
        if attempt != self.attempt {
            return Err(RuntimeError::Refused(format!(
                "attempt {attempt} of the job was superseded by attempt {}",
                self.attempt
            )));
        }
        if self.done || self.status != JobStatus::Running {
            return Err(RuntimeError::Refused(format!("the job is {} now", self.status.as_str())));
        }
        Ok(())
    }

    // ---- every status: the status itself -------------------------------------------------

    fn apply(&mut self, event: JobEvent) {
        match transition(self.status, event) {
            Ok(s) if s != self.status => {
                self.status = s;
                self.out.push(JobCommand::PublishStatus(s));
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(job = %self.job, "{e}"),
        }
    }

    // ---- scheduling -------------------------------------------------------------------------

    fn ready(&mut self) {
        if self.status != JobStatus::Running {
            // Cancelled while the savepoint was loading.
            return self.terminate(JobEvent::AllStopped);
        }
        self.out.push(JobCommand::PrepareAttempt { attempt: self.attempt, previous: None });
    }

    fn attempt_prepared(&mut self, result: Result<(), RuntimeError>, executors_present: bool, clock: Clock) {
        if self.done {
            return;
        }
        if let Err(why) = result {
            // The enumerators of a new attempt did not start: no restart can help.
            return self.fail_for_good(Failure::of(&why), clock);
        }
        if self.status == JobStatus::Restarting {
            self.apply(JobEvent::Schedule);
        }
        if self.status != JobStatus::Running {
            return self.terminate(JobEvent::AllStopped);
        }
        if self.assignments.is_empty() || !executors_present {
            if !self.assignments.is_empty() {
                // A TaskExecutor of the last attempt is gone: give the remaining slots back
                // and ask for a whole new set (they may come from one that replaced it).
                self.out.push(JobCommand::ReleaseSlots);
                self.assignments.clear();
            }
            self.out.push(JobCommand::RequestSlots);
        } else {
            let assignments = self.assignments.clone();
            self.deploy(assignments);
        }
    }

    fn slots_granted(&mut self, assignments: Vec<SlotAssignment>) {
        if self.done {
            return;
        }
        if self.status != JobStatus::Running {
            // Cancelled while waiting for slots.
            return self.terminate(JobEvent::AllStopped);
        }
        self.deploy(assignments);
    }

    fn deploy(&mut self, assignments: Vec<SlotAssignment>) {
        self.assignments = assignments.clone();
        self.ended.clear();
        for v in &self.vertices {
            for s in 0..v.parallelism {
                self.executions.insert((v.id, s), None);
            }
        }
        self.out.push(JobCommand::Deploy { attempt: self.attempt, assignments });
    }

    // ---- running ----------------------------------------------------------------------------

    fn task_update(&mut self, update: TaskStateUpdate, clock: Clock) {
        let e = update.execution;
        if e.attempt != self.attempt || self.done {
            return;
        }
        let Some(slot) = self.executions.get_mut(&(e.vertex, e.subtask)) else { return };
        if slot.as_ref().is_some_and(TaskState::is_terminal) {
            return;
        }
        *slot = Some(update.state.clone());
        let shown = ExecutionState::of(&update.state);
        self.out.push(JobCommand::ShowTaskState { vertex: e.vertex, subtask: e.subtask, state: shown });
        if self.status == JobStatus::Suspended || self.stopping {
            // Being cancelled for the next leader, or stopped after a savepoint: a failure is
            // no reason to restart here.
            return self.finish_if_done();
        }
        match update.state {
            TaskState::Running => self.maybe_start_checkpointing(),
            TaskState::InputEnded => self.task_ended(e, TaskEnd::InputEnded),
            TaskState::Ended(TaskOutcome::Finished) if self.after_tasks_finish => {
                self.task_ended(e, TaskEnd::Finished { source: update.final_source })
            }
            // As in Flink 1.11, no checkpoints once a task finished.
            TaskState::Ended(TaskOutcome::Finished) => self.stop_checkpointing("a task finished"),
            TaskState::Ended(TaskOutcome::Canceled) => {
                if self.status == JobStatus::Running && !self.stopping {
                    let why = format!(
                        "subtask {}/{} of vertex {} was cancelled unexpectedly",
                        e.subtask + 1,
                        self.parallelism(e.vertex),
                        e.vertex
                    );
                    self.fail(Failure::job(why), clock);
                }
            }
            TaskState::Ended(TaskOutcome::Failed(err)) => {
                let v = self.vertices.iter().find(|v| v.id == e.vertex);
                let task = v.map(|v| v.name.clone()).unwrap_or_else(|| "?".into());
                let located = format!(
                    " (subtask {}/{} of '{}', task executor {})",
                    e.subtask + 1,
                    v.map(|v| v.parallelism).unwrap_or(0),
                    task,
                    update.location
                );
                let message = format!("{err}{located}");
                // The chain one error a line: the located operator failure, then its causes.
                let mut causes = err.chain();
                if let Some(first) = causes.first_mut() {
                    *first = format!("operator '{}' failed: {first}{located}", err.operator);
                }
                let failure = Failure {
                    message,
                    causes,
                    task_name: Some(task),
                    subtask: Some(e.subtask),
                    location: Some(update.location.to_string()),
                };
                self.fail(failure, clock);
            }
        }
        self.finish_if_done();
    }

    fn executor_lost(&mut self, resource_id: ResourceId, reason: String, clock: Clock) {
        let lost: Vec<(u32, u32)> = self
            .executions
            .iter()
            .filter(|(_, st)| !st.as_ref().is_some_and(TaskState::is_terminal))
            .filter(|((_, s), _)| self.assignments.get(*s as usize).is_some_and(|a| a.resource_id == resource_id))
            .map(|(k, _)| *k)
            .collect();
        for (vertex, subtask) in lost {
            let execution = ExecutionId { job: self.job, vertex, subtask, attempt: self.attempt };
            let error = riffle_api::TaskError::msg(
                format!("task executor {resource_id}"),
                format!("the task executor is lost: {reason}"),
            );
            let state = TaskOutcome::Failed(error).into();
            let update = TaskStateUpdate { execution, state, location: resource_id.clone(), final_source: None };
            self.task_update(update, clock);
        }
    }

    /// Starts checkpointing once every subtask runs — or, with checkpoints after tasks
    /// finish, runs or ended — and some are left.
    fn maybe_start_checkpointing(&mut self) {
        let after = self.after_tasks_finish;
        let ready = |s: &Option<TaskState>| match s {
            Some(TaskState::Running) => true,
            Some(TaskState::InputEnded) | Some(TaskState::Ended(TaskOutcome::Finished)) => after,
            _ => false,
        };
        let all_finished = self.executions.values().all(|s| *s == Some(TaskState::Ended(TaskOutcome::Finished)));
        if !self.checkpointing_enabled
            || self.checkpointing
            || self.status != JobStatus::Running
            || all_finished
            || !self.executions.values().all(ready)
        {
            return;
        }
        self.checkpointing = true;
        let ended = self
            .ended
            .iter()
            .map(|(&(vertex, subtask), end)| {
                (ExecutionId { job: self.job, vertex, subtask, attempt: self.attempt }, end.clone())
            })
            .collect();
        self.out.push(JobCommand::StartCheckpointing { tasks: self.located(|_| true), ended });
    }

    /// A subtask's input ended or it finished: the coordinator goes on without it, or starts
    /// now if it waited for this one.
    fn task_ended(&mut self, e: ExecutionId, end: TaskEnd) {
        self.ended.insert((e.vertex, e.subtask), end.clone());
        if self.checkpointing {
            self.out.push(JobCommand::TaskEnded { execution: e, end });
        } else {
            self.maybe_start_checkpointing();
        }
    }

    fn stop_checkpointing(&mut self, reason: &'static str) {
        if std::mem::take(&mut self.checkpointing) {
            self.out.push(JobCommand::StopCheckpointing(reason));
        }
    }

    // ---- failing over, failing ------------------------------------------------------------

    /// A failure: recorded in the exception history; the first of a running attempt asks the
    /// restart strategy to restart the job or fail it.
    fn fail(&mut self, f: Failure, clock: Clock) {
        let first = self.status == JobStatus::Running;
        // Failures before the job was deployed (slots, sources) are not restarted.
        let restart = if first && !self.executions.is_empty() { self.tracker.on_failure(clock.now) } else { None };
        self.record(&f, first, clock);
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
        self.cancel_all();
    }

    /// A failure no restart can help: the job fails with it as root cause.
    fn fail_for_good(&mut self, f: Failure, clock: Clock) {
        tracing::warn!(job = %self.job, "job failing: {}", f.message);
        self.record(&f, true, clock);
        self.root_cause = Some(f.message);
        self.apply(JobEvent::Fail);
        self.cancel_all();
    }

    fn record(&mut self, f: &Failure, is_root_cause: bool, clock: Clock) {
        self.out.push(JobCommand::RecordException(ExceptionEntry {
            timestamp_ms: clock.epoch_ms,
            exception: f.message.clone(),
            causes: f.causes.clone(),
            task_name: f.task_name.clone(),
            subtask_index: f.subtask,
            location: f.location.clone(),
            is_root_cause,
            attempt: self.attempt,
        }));
    }

    fn timer(&mut self, timer: JobTimer) {
        match timer {
            JobTimer::CancelTimedOut { attempt } => {
                if self.done || self.attempt != attempt {
                    return;
                }
                tracing::warn!(job = %self.job, "subtasks did not stop in time; going on without them");
                if self.status == JobStatus::Restarting {
                    self.restart();
                } else if self.stopping && self.status == JobStatus::Running {
                    self.terminate(JobEvent::AllFinished);
                } else {
                    self.terminate(JobEvent::AllStopped);
                }
            }
            JobTimer::RestartDue { attempt } => {
                if !self.done && self.attempt == attempt && self.status == JobStatus::Restarting {
                    self.restart();
                }
            }
        }
    }

    /// A new attempt on the slots the job holds, with fresh channels and enumerators.
    fn restart(&mut self) {
        let previous = self.attempt;
        self.attempt += 1;
        self.executions.clear();
        self.out.push(JobCommand::PrepareAttempt { attempt: self.attempt, previous: Some(previous) });
    }

    // ---- cancelling -------------------------------------------------------------------------

    fn cancel(&mut self) {
        if self.done || self.status.is_terminal() {
            return;
        }
        self.apply(JobEvent::Cancel);
        if self.executions.is_empty() {
            // Still scheduling: the next step sees the status and ends the job.
            return;
        }
        self.cancel_all();
    }

    /// Stops checkpointing and cancels every subtask that has not ended; the job goes on
    /// when all ended, or after the cancel timeout.
    fn cancel_all(&mut self) {
        self.stop_checkpointing("the job attempt is ending");
        if self.executions.values().all(|st| st.as_ref().is_some_and(TaskState::is_terminal)) {
            return self.finish_if_done();
        }
        let running = self.located(|st| !st.as_ref().is_some_and(TaskState::is_terminal));
        if !running.is_empty() {
            self.out.push(JobCommand::CancelTasks(running));
        }
        self.out.push(JobCommand::StartTimer {
            after: self.cancel_timeout,
            timer: JobTimer::CancelTimedOut { attempt: self.attempt },
        });
    }

    // ---- suspending -------------------------------------------------------------------------

    /// The job goes to the next leader: SUSPENDED now, checkpointing stops keeping every
    /// file, what runs is cancelled, and the JobMaster ends when it stopped.
    fn suspend(&mut self) {
        if self.done || self.status.is_terminal() {
            return;
        }
        tracing::warn!(job = %self.job, status = %self.status, "suspending the job: {SUSPENDED}");
        self.after_savepoint = None;
        self.apply(JobEvent::Suspend);
        if std::mem::take(&mut self.checkpointing) {
            self.out.push(JobCommand::SuspendCheckpointing(SUSPENDED));
        }
        // Scheduling (no executions yet) or between attempts (all stopped): nothing to wait
        // for, not even a slot request.
        self.cancel_all();
    }

    // ---- ending -----------------------------------------------------------------------------

    fn finish_if_done(&mut self) {
        if self.done || !self.executions.values().all(|s| s.as_ref().is_some_and(TaskState::is_terminal)) {
            return;
        }
        match self.status {
            JobStatus::Running
                if self.stopping
                    || self.executions.values().all(|s| *s == Some(TaskState::Ended(TaskOutcome::Finished))) =>
            {
                self.terminate(JobEvent::AllFinished)
            }
            JobStatus::Failing | JobStatus::Cancelling | JobStatus::Suspended => self.terminate(JobEvent::AllStopped),
            JobStatus::Restarting => self.out.push(JobCommand::StartTimer {
                after: self.restart_delay,
                timer: JobTimer::RestartDue { attempt: self.attempt },
            }),
            _ => {}
        }
    }

    fn terminate(&mut self, event: JobEvent) {
        if self.done {
            return;
        }
        self.done = true;
        self.stop_checkpointing("the job ended");
        self.apply(event);
        self.out.push(JobCommand::ReleaseSlots);
        self.out.push(JobCommand::DropChannels { attempt: self.attempt });
        let error = if self.status == JobStatus::Failed { self.root_cause.clone() } else { None };
        let clean_up = self.status.is_globally_terminal();
        match clean_up {
            true => tracing::info!(job = %self.job, status = %self.status, "job ended"),
            false => tracing::info!(job = %self.job, status = %self.status, "job suspended; its HA data stays"),
        }
        self.out.push(JobCommand::Terminate { status: self.status, error, clean_up });
    }

    // ---- helpers ----------------------------------------------------------------------------

    fn parallelism(&self, vertex: u32) -> u32 {
        self.vertices.iter().find(|v| v.id == vertex).map(|v| v.parallelism).unwrap_or(0)
    }

    /// The executions whose state passes `keep`, with the TaskExecutor of their slot.
    fn located(&self, keep: impl Fn(&Option<TaskState>) -> bool) -> Vec<(ExecutionId, ResourceId)> {
        self.executions
            .iter()
            .filter(|(_, st)| keep(st))
            .filter_map(|(&(vertex, subtask), _)| {
                let a = self.assignments.get(subtask as usize)?;
                let e = ExecutionId { job: self.job, vertex, subtask, attempt: self.attempt };
                Some((e, a.resource_id.clone()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
