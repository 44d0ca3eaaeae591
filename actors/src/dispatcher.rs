//! The Dispatcher: accepts submissions, starts one JobMaster per job (its children), keeps
//! every job's status and final result, and answers who waits for them. Highly available, it
//! suspends every job when its JobManager loses the leadership ([`SuspendAll`]).

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::exception_history::{ExceptionHistory, ExceptionPage};
use crate::ids::JobId;
use crate::job_master::{
    CancelJobExecution, ExceptionRecorded, JobMaster, JobMasterParent, JobMasterServices, JobMasterSettings, JobResult,
    JobStatusChanged, JobTerminated, SuspendJobExecution,
};
use crate::job_status::JobStatus;
use crate::mailbox::Probed;
use crate::services::{JobCode, RuntimeShared};
use crate::supervision::{ChildExited, ExitReason};
use riffle_api::JobGraph;

/// Errors a Dispatcher answers with (their domains: `crate::error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum DispatcherError {
    /// No such job.
    #[error("job {0} not found")]
    UnknownJob(String),
    /// The job was submitted already.
    #[error("job {0} was already submitted")]
    Duplicate(String),
    /// The dispatcher stopped.
    #[error("the dispatcher is shutting down")]
    ShuttingDown,
    /// A highly available JobManager could not store the job for its successor (refused).
    #[error("the job was not stored for recovery: {0}")]
    NotStored(String),
}

/// Submits a job. The Dispatcher owns its graph from then on: it registers the graph for this
/// process's TaskExecutors (`JobCode`) while the job runs, and removes it when the job ends.
#[derive(Clone, Message)]
#[rtype(result = "Result<(), DispatcherError>")]
pub struct SubmitJob {
    /// The job.
    pub job_id: JobId,
    /// What it runs.
    pub graph: Arc<JobGraph>,
}

impl std::fmt::Debug for SubmitJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubmitJob").field("job_id", &self.job_id).field("name", &self.graph.name).finish()
    }
}

/// Cancels a job.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<(), DispatcherError>")]
pub struct CancelJob {
    /// The job.
    pub job_id: JobId,
}

/// Waits for a job's result.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<JobResult, DispatcherError>")]
pub struct RequestJobResult {
    /// The job.
    pub job_id: JobId,
}

/// Reads a page of a job's exception history (newest first).
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<ExceptionPage, DispatcherError>")]
pub struct GetExceptionHistory {
    /// The job.
    pub job_id: JobId,
    /// Page number, 0-based.
    pub page: usize,
    /// Entries per page.
    pub page_size: usize,
}

/// One line of the job list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobOverview {
    /// The job.
    pub job_id: JobId,
    /// Its name.
    pub name: String,
    /// Its status.
    pub status: JobStatus,
}

/// Lists all jobs.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Vec<JobOverview>")]
pub struct ListJobs;

struct Entry {
    name: String,
    history: ExceptionHistory,
    status: JobStatus,
    master: Option<Probed<JobMaster>>,
    result: Option<JobResult>,
    waiters: Vec<oneshot::Sender<JobResult>>,
}

/// The Dispatcher actor.
pub struct Dispatcher {
    /// What each JobMaster gets.
    services: JobMasterServices,
    /// Where submitted graphs are registered for this process's TaskExecutors.
    code: Arc<JobCode>,
    parent: Recipient<ChildExited>,
    settings: JobMasterSettings,
    jobs: HashMap<JobId, Entry>,
    /// Submissions being stored for recovery (highly available), not started yet.
    persisting: std::collections::HashSet<JobId>,
}

impl Dispatcher {
    /// A dispatcher whose JobMasters use `settings`.
    pub fn new(shared: &RuntimeShared, settings: JobMasterSettings, parent: Recipient<ChildExited>) -> Self {
        let (services, code) = (JobMasterServices::of(shared), shared.code.clone());
        Self { services, code, parent, settings, jobs: HashMap::new(), persisting: Default::default() }
    }

    fn complete(&mut self, result: JobResult) {
        if let Some(e) = self.jobs.get_mut(&result.job_id) {
            if e.result.is_some() {
                return;
            }
            // A suspended job is not over: its stored graph, checkpoints, counter and history
            // stay for the leader that recovers it.
            if let (Some(store), true) = (self.services.jobs.job_store(), result.status.is_globally_terminal()) {
                store.job_terminated(result.job_id);
            }
            // Its subtasks are gone: nothing builds from its graph any more.
            self.code.graphs.remove(&result.job_id);
            e.status = result.status;
            e.master = None;
            if let Some(v) = self.services.jobs.view(result.job_id) {
                v.set_status(result.status);
            }
            for w in e.waiters.drain(..) {
                let _ = w.send(result.clone());
            }
            e.result = Some(result);
        }
    }
}

// Senders reach it through a `Probed` address: thread dumps show its mailbox.
crate::counted_mailbox!(Dispatcher);

impl Actor for Dispatcher {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Self::Context) {
        self.parent.do_send(ChildExited { child: crate::supervision::ChildId::Dispatcher, reason: ExitReason::Normal });
    }
}

impl Handler<SubmitJob> for Dispatcher {
    type Result = ResponseActFuture<Self, Result<(), DispatcherError>>;
    fn handle(&mut self, msg: SubmitJob, _: &mut Self::Context) -> Self::Result {
        let id = msg.job_id;
        if self.jobs.contains_key(&id) || self.persisting.contains(&id) {
            return Box::pin(fut::ready(Err(DispatcherError::Duplicate(id.to_string()))));
        }
        let graph = msg.graph;
        let Some(store) = self.services.jobs.job_store() else {
            return Box::pin(fut::ready(()).map(move |(), act: &mut Self, ctx| act.start_job(id, graph, ctx)));
        };
        // Highly available: the job is stored for the next leader before it starts.
        self.persisting.insert(id);
        Box::pin(fut::wrap_future::<_, Self>(store.job_submitted(id, graph.clone())).map(move |stored, act, ctx| {
            act.persisting.remove(&id);
            match stored {
                Ok(()) => act.start_job(id, graph, ctx),
                Err(why) => Err(DispatcherError::NotStored(why.to_string())),
            }
        }))
    }
}

impl Dispatcher {
    fn start_job(&mut self, id: JobId, graph: Arc<JobGraph>, ctx: &mut Context<Self>) -> Result<(), DispatcherError> {
        self.code.graphs.insert(id, graph.clone());
        let name = graph.name.clone();
        self.services.jobs.views.insert(id, Arc::new(crate::job_view::JobView::new(id, &graph)));
        let me = ctx.address();
        let master = JobMaster::new(
            id,
            graph,
            self.services.clone(),
            self.settings.clone(),
            JobMasterParent {
                terminated: me.clone().recipient(),
                status: me.clone().recipient(),
                history: me.clone().recipient(),
                exit: me.recipient(),
            },
        )
        .start();
        // Registered before the JobMaster runs: everyone reaches it through this one probe.
        let master = Probed::new(master);
        self.services.directory.job_masters.insert(id, master.clone());
        // A recovered job continues the history its previous leader stored.
        let capacity = self.settings.exception_history_size;
        let history = match self.services.jobs.job_store().and_then(|s| s.recovered_exceptions(id)) {
            Some(stored) => ExceptionHistory::restore(capacity, stored),
            None => ExceptionHistory::new(capacity),
        };
        self.jobs.insert(
            id,
            Entry {
                name,
                history,
                status: JobStatus::Created,
                master: Some(master),
                result: None,
                waiters: Vec::new(),
            },
        );
        Ok(())
    }
}

impl Handler<CancelJob> for Dispatcher {
    type Result = Result<(), DispatcherError>;
    fn handle(&mut self, msg: CancelJob, _: &mut Self::Context) -> Self::Result {
        let e = self.jobs.get(&msg.job_id).ok_or_else(|| DispatcherError::UnknownJob(msg.job_id.to_string()))?;
        if let Some(m) = &e.master {
            m.do_send(CancelJobExecution);
        }
        Ok(())
    }
}

impl Handler<RequestJobResult> for Dispatcher {
    type Result = ResponseFuture<Result<JobResult, DispatcherError>>;
    fn handle(&mut self, msg: RequestJobResult, _: &mut Self::Context) -> Self::Result {
        let Some(e) = self.jobs.get_mut(&msg.job_id) else {
            let id = msg.job_id.to_string();
            return Box::pin(async move { Err(DispatcherError::UnknownJob(id)) });
        };
        if let Some(r) = &e.result {
            let r = r.clone();
            return Box::pin(async move { Ok(r) });
        }
        let (tx, rx) = oneshot::channel();
        e.waiters.push(tx);
        Box::pin(async move { rx.await.map_err(|_| DispatcherError::ShuttingDown) })
    }
}

impl Handler<ListJobs> for Dispatcher {
    type Result = MessageResult<ListJobs>;
    fn handle(&mut self, _: ListJobs, _: &mut Self::Context) -> Self::Result {
        let mut v: Vec<JobOverview> = self
            .jobs
            .iter()
            .map(|(id, e)| JobOverview { job_id: *id, name: e.name.clone(), status: e.status })
            .collect();
        v.sort_by_key(|j| j.job_id);
        MessageResult(v)
    }
}

impl Handler<ExceptionRecorded> for Dispatcher {
    type Result = ();
    fn handle(&mut self, msg: ExceptionRecorded, _: &mut Self::Context) {
        if let Some(e) = self.jobs.get_mut(&msg.job_id) {
            e.history.push(msg.entry);
            // Highly available: the next leader shows the same history. Never after the end
            // (the store removed it with the job).
            if let (Some(store), None) = (self.services.jobs.job_store(), &e.result) {
                store.exceptions_changed(msg.job_id, e.history.snapshot());
            }
        }
    }
}

impl Handler<GetExceptionHistory> for Dispatcher {
    type Result = Result<ExceptionPage, DispatcherError>;
    fn handle(&mut self, msg: GetExceptionHistory, _: &mut Self::Context) -> Self::Result {
        let e = self.jobs.get(&msg.job_id).ok_or_else(|| DispatcherError::UnknownJob(msg.job_id.to_string()))?;
        Ok(e.history.page(msg.page, msg.page_size))
    }
}

impl Handler<JobTerminated> for Dispatcher {
    type Result = ();
    fn handle(&mut self, msg: JobTerminated, _: &mut Self::Context) {
        self.complete(msg.0);
    }
}

impl Handler<JobStatusChanged> for Dispatcher {
    type Result = ();
    fn handle(&mut self, msg: JobStatusChanged, _: &mut Self::Context) {
        if let Some(e) = self.jobs.get_mut(&msg.job_id) {
            if e.result.is_none() {
                e.status = msg.status;
                if let Some(v) = self.services.jobs.view(msg.job_id) {
                    v.set_status(msg.status);
                }
            }
        }
    }
}

impl Handler<ChildExited> for Dispatcher {
    type Result = ();
    fn handle(&mut self, msg: ChildExited, _: &mut Self::Context) {
        // A JobMaster that stopped without reporting a result crashed: the job failed.
        let crate::supervision::ChildId::JobMaster(id) = msg.child else { return };
        let pending = self.jobs.get(&id).is_some_and(|e| e.result.is_none());
        if pending {
            let name = self.jobs.get(&id).map(|e| e.name.clone()).unwrap_or_default();
            self.complete(JobResult {
                job_id: id,
                name,
                status: JobStatus::Failed,
                error: Some(format!("the job master stopped unexpectedly: {}", msg.reason)),
                duration: std::time::Duration::ZERO,
            });
        }
    }
}

/// Stops the Dispatcher, cancelling every running job.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct StopDispatcher;

impl Handler<StopDispatcher> for Dispatcher {
    type Result = ();
    fn handle(&mut self, _: StopDispatcher, ctx: &mut Self::Context) {
        for e in self.jobs.values() {
            if let Some(m) = &e.master {
                m.do_send(CancelJobExecution);
            }
        }
        ctx.stop();
    }
}

/// Suspends every job that has not ended (high availability: this JobManager lost its
/// leadership) and answers with their ids once every one of their JobMasters ended — each
/// SUSPENDED unless it ended otherwise first. Nothing is removed from the job store: the next
/// leader recovers the jobs from it. New submissions are still accepted (the caller stops the
/// runtime next).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Vec<JobId>")]
pub struct SuspendAll;

impl Handler<SuspendAll> for Dispatcher {
    type Result = ResponseFuture<Vec<JobId>>;
    fn handle(&mut self, _: SuspendAll, _: &mut Self::Context) -> Self::Result {
        let mut ends = Vec::new();
        for (id, e) in &mut self.jobs {
            let Some(m) = e.master.as_ref().filter(|_| e.result.is_none()) else { continue };
            m.do_send(SuspendJobExecution);
            let (tx, rx) = oneshot::channel();
            e.waiters.push(tx);
            ends.push((*id, rx));
        }
        Box::pin(async move {
            let mut suspended = Vec::with_capacity(ends.len());
            for (id, rx) in ends {
                // A dropped waiter: the Dispatcher stopped, the JobMaster with it.
                let _ = rx.await;
                suspended.push(id);
            }
            suspended.sort();
            suspended
        })
    }
}
