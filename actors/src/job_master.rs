//! The JobMaster: one per job. Turns the job graph into executions, gets slots from the
//! ResourceManager, deploys subtasks (slot sharing: subtask i of every vertex goes to slot i),
//! follows their states, and ends the job FINISHED, FAILED (with the root cause naming the
//! operator and subtask) or CANCELED. Its children are the SourceCoordinators.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use riffle_api::JobGraph;
use serde::{Deserialize, Serialize};

use crate::gateway::{
    CancelTask, DeployTask, ReleaseSlots, RequestSlots, SlotAssignment, SplitRequest, SplitResponse, TaskState,
    TaskStateUpdate,
};
use crate::ids::{ExecutionId, JobId};
use crate::job_status::{transition, JobEvent, JobStatus};
use crate::registry::RuntimeShared;
use crate::source_coordinator::SourceCoordinator;
use crate::supervision::{catch_panic, ChildExited, ExitReason};

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
    started: Instant,
    dispatcher: Recipient<JobTerminated>,
    status_listener: Recipient<JobStatusChanged>,
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
        dispatcher: Recipient<JobTerminated>,
        status_listener: Recipient<JobStatusChanged>,
        on_exit: Recipient<ChildExited>,
    ) -> Self {
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
            started: Instant::now(),
            dispatcher,
            status_listener,
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
        if self.root_cause.is_none() && matches!(self.status, JobStatus::Created | JobStatus::Running) {
            tracing::warn!(job = %self.job, "job failing: {cause}");
            self.root_cause = Some(cause);
        }
        self.apply(JobEvent::Fail);
        self.cancel_all(ctx);
    }

    fn cancel_all(&mut self, ctx: &mut Context<Self>) {
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
        ctx.run_later(self.settings.cancel_timeout, |act, ctx| {
            if !act.done {
                tracing::warn!(job = %act.job, "subtasks did not stop in time; ending the job anyway");
                act.finalize(JobEvent::AllStopped, ctx);
            }
        });
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
            _ => {}
        }
    }

    fn finalize(&mut self, event: JobEvent, ctx: &mut Context<Self>) {
        if self.done {
            return;
        }
        self.done = true;
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
        self.dispatcher.do_send(JobTerminated(result));
        ctx.stop();
    }

    fn deploy(&mut self, assignments: Vec<SlotAssignment>, ctx: &mut Context<Self>) {
        if self.status != JobStatus::Running {
            // Cancelled while waiting for slots.
            self.finalize(JobEvent::AllStopped, ctx);
            return;
        }
        self.assignments = assignments;
        let vertices: Vec<(u32, u32)> = self.graph.vertices().iter().map(|v| (v.id as u32, v.parallelism)).collect();
        for &(v, p) in &vertices {
            for s in 0..p {
                self.executions.insert((v, s), None);
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
                match te {
                    Some(te) => te.do_send(DeployTask { execution, slot_index: a.slot_index }),
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
        match msg.state {
            TaskState::Running => {}
            TaskState::Finished => {}
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
                let cause = format!(
                    "{} (subtask {}/{} of '{}', task executor {})",
                    err,
                    e.subtask + 1,
                    v.map(|v| v.parallelism).unwrap_or(0),
                    v.map(|v| v.name.as_str()).unwrap_or("?"),
                    msg.location
                );
                self.fail(cause, ctx);
            }
        }
        self.finish_if_done(ctx);
    }

    fn parallelism(&self, vertex: u32) -> u32 {
        self.graph.vertices().get(vertex as usize).map(|v| v.parallelism).unwrap_or(0)
    }
}

impl Actor for JobMaster {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.shared.job_masters.insert(self.job, ctx.address());
        self.apply(JobEvent::Schedule);
        for v in self.graph.vertices() {
            if let Some(src) = self.graph.source_of(v.id) {
                let name = v.nodes.first().and_then(|n| self.graph.operator_name(*n)).unwrap_or(&v.name).to_string();
                match catch_panic(|| src.create_enumerator(v.parallelism)) {
                    Ok(Ok(e)) => {
                        self.coordinators.insert(v.id as u32, SourceCoordinator::new(e).start());
                    }
                    Ok(Err(e)) => return self.fail(format!("source '{name}' failed to start: {e}"), ctx),
                    Err(p) => return self.fail(format!("source '{name}' panicked while starting: {p}"), ctx),
                }
            }
        }
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
