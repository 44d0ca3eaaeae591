//! Where a gateway message goes: an actor of this process, or a peer process.
//!
//! The JobManager's actors address a TaskExecutor through a [`TaskExecutorGateway`] and a
//! TaskExecutor addresses its job's JobMaster through a [`JobMasterGateway`]. Each is either
//! an actor address in this process or the sending half of a link to another process: the
//! link itself (sockets, frames, heartbeats) is `riffle-cluster`'s; this module only defines
//! what crosses it, so the actors stay free of I/O.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use actix::Addr;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::error::RuntimeError;
use crate::gateway::{
    AcknowledgeCheckpoint, AllocateSlot, CancelTask, ConfirmEnd, DeclineCheckpoint, DeployTask, FreeSlot,
    NotifyCheckpoint, SplitRequest, SplitResponse, TaskStateUpdate, TriggerCheckpoint,
};
use crate::job_master::JobMaster;
use crate::mailbox::Probed;
use crate::task_executor::{GetTaskExecutorReport, TaskExecutor, TaskExecutorReport};

/// What the JobManager's actors send a TaskExecutor.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ToTaskExecutor {
    /// ResourceManager: a slot now belongs to a job.
    AllocateSlot(AllocateSlot),
    /// ResourceManager: a slot is free again.
    FreeSlot(FreeSlot),
    /// JobMaster: run a subtask.
    DeployTask(DeployTask),
    /// JobMaster: stop a subtask.
    CancelTask(CancelTask),
    /// CheckpointCoordinator: a source starts a checkpoint.
    TriggerCheckpoint(TriggerCheckpoint),
    /// CheckpointCoordinator: a checkpoint completed or was aborted.
    NotifyCheckpoint(NotifyCheckpoint),
}

/// What a TaskExecutor and its subtasks send their job's JobMaster (split requests, which
/// expect an answer, go through [`JobMasterGateway::request_splits`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ToJobMaster {
    /// A subtask changed state.
    TaskState(TaskStateUpdate),
    /// A subtask's part of a checkpoint is written.
    Acknowledge(AcknowledgeCheckpoint),
    /// A subtask cannot take part in a checkpoint.
    Decline(DeclineCheckpoint),
}

macro_rules! into_enum {
    ($enum:ident: $($variant:ident),*) => {$(
        impl From<$variant> for $enum {
            fn from(m: $variant) -> Self {
                $enum::$variant(m)
            }
        }
    )*};
}
into_enum!(ToTaskExecutor: AllocateSlot, FreeSlot, DeployTask, CancelTask, TriggerCheckpoint, NotifyCheckpoint);

impl From<TaskStateUpdate> for ToJobMaster {
    fn from(m: TaskStateUpdate) -> Self {
        ToJobMaster::TaskState(m)
    }
}
impl From<AcknowledgeCheckpoint> for ToJobMaster {
    fn from(m: AcknowledgeCheckpoint) -> Self {
        ToJobMaster::Acknowledge(m)
    }
}
impl From<DeclineCheckpoint> for ToJobMaster {
    fn from(m: DeclineCheckpoint) -> Self {
        ToJobMaster::Decline(m)
    }
}

/// A TaskExecutor in another process, as the JobManager process sees it: the queue its link
/// drains, and what the TaskExecutor last told about itself in a heartbeat.
#[derive(Debug, Clone)]
pub struct RemoteTaskExecutor {
    tx: mpsc::UnboundedSender<ToTaskExecutor>,
    logs: mpsc::UnboundedSender<LogRequest>,
    slots: u32,
    data_address: String,
    report: Arc<Mutex<RemoteReport>>,
}

/// One thread of a TaskManager process, as its heartbeat reports it (for thread dumps).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadSample {
    /// Kernel thread id.
    pub tid: u32,
    /// Its name.
    pub name: String,
    /// RUNNABLE, WAITING, BLOCKED, TERMINATED.
    pub state: String,
    /// Where it sleeps in the kernel, if it does.
    pub wchan: String,
    /// CPU time used, ms.
    pub cpu_ms: u64,
}

/// A remote TaskExecutor's latest heartbeat.
#[derive(Debug, Clone, Default)]
pub struct RemoteReport {
    /// What it reported.
    pub report: TaskExecutorReport,
    /// Its process's threads.
    pub threads: Vec<ThreadSample>,
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// The address its process advertises.
    pub address: String,
    /// Its actor's mailbox, as counted in its process.
    pub mailbox: Option<crate::mailbox::MailboxState>,
    /// Its network buffer pool.
    pub network: Option<NetworkSample>,
    /// Its process's memory and machine.
    pub memory: Option<MemorySample>,
}

/// A TaskManager process's network buffer pool (`taskmanager.memory.network.*`) as its
/// heartbeat reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSample {
    /// Bytes per segment.
    pub segment_size: u64,
    /// Segments in the pool.
    pub total: u64,
    /// Segments not in use now.
    pub available: u64,
}

/// A TaskManager process's memory and machine, as its heartbeat reports them (measured in that
/// process, so they are its own, not the JobManager's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemorySample {
    /// Its resident set size (`VmRSS` of `/proc/self/status`), bytes; 0 where unknown.
    pub rss: u64,
    /// Its machine's memory (`MemTotal` of `/proc/meminfo`), bytes.
    pub physical_memory: u64,
    /// Its machine's available memory (`MemAvailable`), bytes.
    pub free_memory: u64,
    /// Cores its process may use.
    pub cpu_cores: u32,
    /// The memory budget of each keyed state backend instance there
    /// (`state.backend.memory-budget`), bytes; None for `heap`, which keeps no budget.
    pub state_budget_per_backend: Option<u64>,
    /// CPU time its process used so far, user and system, ms (`/proc/self/stat`).
    #[serde(default)]
    pub cpu_ms: u64,
    /// Its process's threads (`Threads` of `/proc/self/status`).
    #[serde(default)]
    pub threads: u32,
    /// Its highest resident set size so far (`VmHWM`), bytes.
    #[serde(default)]
    pub rss_peak: u64,
}

/// One regular file of a TaskManager process's `log.dir`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogFileInfo {
    /// Its name (no directory).
    pub name: String,
    /// Its size, bytes.
    pub size: u64,
    /// Its modification time, epoch ms.
    pub mtime_ms: i64,
}

/// What the JobManager asks a TaskManager process about its `log.dir`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogQuery {
    /// Its regular files.
    List,
    /// Up to `len` bytes of file `name` from `offset` (the TaskManager serves only names that are
    /// exactly one of its listed files).
    Read {
        /// The file's name.
        name: String,
        /// The first byte.
        offset: u64,
        /// At most this many bytes (the TaskManager caps it at [`LOG_CHUNK`]).
        len: u64,
    },
}

/// The largest piece of a log file one answer carries (a file is read in pieces, so none is
/// too large for the link).
pub const LOG_CHUNK: u64 = 1 << 20;

/// A TaskManager process's answer to a [`LogQuery`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogReply {
    /// The files, by name (empty without `log.dir`).
    Files(Vec<LogFileInfo>),
    /// A piece of a file.
    Chunk {
        /// The file's size when it was read.
        size: u64,
        /// The bytes from the offset asked for (fewer than asked at the file's end).
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
}

/// A log query on its way to a TaskManager's link, and where its answer goes.
#[derive(Debug)]
pub struct LogRequest {
    /// The question.
    pub query: LogQuery,
    /// The answer, or why there is none.
    pub reply: oneshot::Sender<Result<LogReply, RuntimeError>>,
}

impl RemoteTaskExecutor {
    /// A remote TaskExecutor with `slots` slots whose messages go to `tx` and log queries to
    /// `logs` (both drained by its link).
    pub fn new(
        tx: mpsc::UnboundedSender<ToTaskExecutor>,
        logs: mpsc::UnboundedSender<LogRequest>,
        address: String,
        slots: u32,
        data_address: String,
    ) -> Self {
        let report = RemoteReport { address, at_ms: riffle_api::time::now_ms(), ..Default::default() };
        Self { tx, logs, slots, data_address, report: Arc::new(Mutex::new(report)) }
    }

    /// Asks its process about its `log.dir`; the answer, or why there is none (the link closed
    /// before it came). The caller bounds the wait.
    pub async fn ask_logs(&self, query: LogQuery) -> Result<LogReply, RuntimeError> {
        let (reply, answer) = oneshot::channel();
        self.logs
            .send(LogRequest { query, reply })
            .map_err(|_| RuntimeError::Unavailable("the link to the TaskManager is closed".into()))?;
        answer
            .await
            .map_err(|_| RuntimeError::Unavailable("the link to the TaskManager closed before it answered".into()))?
    }

    /// Where its TaskManager receives data channels (`host:port`).
    pub fn data_address(&self) -> &str {
        &self.data_address
    }

    /// The slots it registered.
    pub fn slots(&self) -> u32 {
        self.slots
    }

    /// Records a heartbeat's report (and its process's threads, when it sent them).
    pub fn heard(
        &self,
        report: TaskExecutorReport,
        threads: Option<Vec<ThreadSample>>,
        mailbox: Option<crate::mailbox::MailboxState>,
        network: Option<NetworkSample>,
        memory: Option<MemorySample>,
    ) {
        let mut r = self.report.lock().unwrap_or_else(|e| e.into_inner());
        r.report = report;
        if network.is_some() {
            r.network = network;
        }
        if memory.is_some() {
            r.memory = memory;
        }
        if mailbox.is_some() {
            r.mailbox = mailbox;
        }
        if let Some(t) = threads {
            r.threads = t;
        }
        r.at_ms = riffle_api::time::now_ms();
    }

    /// Whether `other` is this same link (not a later registration under the same id).
    pub fn same(&self, other: &RemoteTaskExecutor) -> bool {
        Arc::ptr_eq(&self.report, &other.report)
    }

    /// The latest heartbeat.
    pub fn latest(&self) -> RemoteReport {
        self.report.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// How the JobManager's actors reach a TaskExecutor.
#[derive(Debug, Clone)]
pub enum TaskExecutorGateway {
    /// An actor of this process.
    Local(Probed<TaskExecutor>),
    /// A TaskExecutor in a TaskManager process.
    Remote(RemoteTaskExecutor),
}

/// A gateway with a probe of its own: prefer the one the TaskExecutor registered in
/// `RuntimeShared::task_executors`, whose probe every sender shares.
impl From<Addr<TaskExecutor>> for TaskExecutorGateway {
    fn from(a: Addr<TaskExecutor>) -> Self {
        TaskExecutorGateway::Local(Probed::new(a))
    }
}

impl TaskExecutorGateway {
    /// Sends without waiting. A message to a TaskExecutor that is gone is dropped: its loss
    /// reaches the JobMaster as a failure of its tasks (heartbeat timeout or a closed link).
    pub fn do_send(&self, m: impl Into<ToTaskExecutor>) {
        match self {
            TaskExecutorGateway::Local(a) => match m.into() {
                ToTaskExecutor::AllocateSlot(m) => a.do_send(m),
                ToTaskExecutor::FreeSlot(m) => a.do_send(m),
                ToTaskExecutor::DeployTask(m) => a.do_send(m),
                ToTaskExecutor::CancelTask(m) => a.do_send(m),
                ToTaskExecutor::TriggerCheckpoint(m) => a.do_send(m),
                ToTaskExecutor::NotifyCheckpoint(m) => a.do_send(m),
            },
            TaskExecutorGateway::Remote(r) => {
                let _ = r.tx.send(m.into());
            }
        }
    }

    /// Whether it can still be reached: a live actor, or a link that is still open.
    pub fn connected(&self) -> bool {
        match self {
            TaskExecutorGateway::Local(a) => a.connected(),
            TaskExecutorGateway::Remote(r) => !r.tx.is_closed(),
        }
    }

    /// Whether it lives in another process.
    pub fn is_remote(&self) -> bool {
        matches!(self, TaskExecutorGateway::Remote(_))
    }

    /// Its slots and running subtasks: asked of a local actor, the latest heartbeat of a remote
    /// one (with its time, ms since the epoch). None when it does not answer.
    pub async fn report(&self) -> Option<(TaskExecutorReport, i64)> {
        match self {
            TaskExecutorGateway::Local(a) => {
                a.send(GetTaskExecutorReport).await.ok().map(|r| (r, riffle_api::time::now_ms()))
            }
            TaskExecutorGateway::Remote(r) => {
                let l = r.latest();
                Some((l.report, l.at_ms))
            }
        }
    }
}

/// An answer of the JobManager process to a subtask's question.
#[derive(Debug)]
pub enum JobManagerAnswer {
    /// To a [`SplitRequest`].
    Splits(Result<SplitResponse, RuntimeError>),
    /// To a [`ConfirmEnd`].
    End(Result<(), RuntimeError>),
}

type PendingAnswers = Mutex<HashMap<u64, oneshot::Sender<JobManagerAnswer>>>;

/// The JobManager process as a TaskManager process sees it: the queue its link drains, and
/// the split requests waiting for an answer.
#[derive(Debug, Clone, Default)]
pub struct RemoteJobManager {
    tx: Option<mpsc::UnboundedSender<RemoteJobManagerMessage>>,
    pending: Arc<PendingAnswers>,
    next: Arc<AtomicU64>,
}

/// What a TaskManager process's link sends to the JobManager process for its actors.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum RemoteJobManagerMessage {
    /// For a JobMaster.
    JobMaster(ToJobMaster),
    /// A source subtask asks its JobMaster for splits; the answer comes back with `request`.
    SplitRequest {
        /// Matches the answer to the question.
        request: u64,
        /// The question.
        msg: SplitRequest,
    },
    /// A subtask asks its JobMaster whether it may end; the answer comes back with `request`.
    ConfirmEnd {
        /// Matches the answer to the question.
        request: u64,
        /// The question.
        msg: ConfirmEnd,
    },
}

impl RemoteJobManager {
    /// A JobManager reached through `tx` (drained by the link).
    pub fn new(tx: mpsc::UnboundedSender<RemoteJobManagerMessage>) -> Self {
        Self { tx: Some(tx), ..Default::default() }
    }

    /// Hands the answer to request `request` to the subtask waiting for it.
    pub fn answer(&self, request: u64, answer: JobManagerAnswer) {
        let waiting = self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&request);
        if let Some(w) = waiting {
            let _ = w.send(answer);
        }
    }

    /// Fails every request still waiting (the link to the JobManager broke): dropping the
    /// waiters' senders tells each.
    pub fn fail_pending(&self, why: &str) {
        let drained = self.pending.lock().unwrap_or_else(|e| e.into_inner()).drain().count();
        if drained > 0 {
            tracing::debug!("{drained} questions to the JobManager fail: {why}");
        }
    }

    /// Sends a question built around a fresh request id; its answer, or why there is none.
    async fn ask(
        &self,
        question: impl FnOnce(u64) -> RemoteJobManagerMessage,
    ) -> Result<JobManagerAnswer, RuntimeError> {
        let Some(tx) = &self.tx else { return Err(RuntimeError::Unavailable("no link to the job manager".into())) };
        let request = self.next.fetch_add(1, Ordering::Relaxed);
        let (answer, wait) = oneshot::channel();
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).insert(request, answer);
        if tx.send(question(request)).is_err() {
            self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&request);
            return Err(RuntimeError::Unavailable("the link to the job manager is closed".into()));
        }
        wait.await.map_err(|_| RuntimeError::Unavailable("the link to the job manager closed before the answer".into()))
    }
}

/// How a TaskExecutor and its subtasks reach their job's JobMaster.
#[derive(Debug, Clone)]
pub enum JobMasterGateway {
    /// An actor of this process.
    Local(Probed<JobMaster>),
    /// The JobManager process, through this process's link to it.
    Remote(RemoteJobManager),
}

impl JobMasterGateway {
    /// Sends without waiting; dropped when the JobMaster is gone.
    pub fn do_send(&self, m: impl Into<ToJobMaster>) {
        match self {
            JobMasterGateway::Local(a) => match m.into() {
                ToJobMaster::TaskState(m) => a.do_send(m),
                ToJobMaster::Acknowledge(m) => a.do_send(m),
                ToJobMaster::Decline(m) => a.do_send(m),
            },
            JobMasterGateway::Remote(r) => {
                if let Some(tx) = &r.tx {
                    let _ = tx.send(RemoteJobManagerMessage::JobMaster(m.into()));
                }
            }
        }
    }

    /// Asks the job's split enumerator for work. The outer error: the JobMaster cannot be
    /// reached; the inner one: the enumerator failed.
    pub async fn request_splits(&self, msg: SplitRequest) -> Result<Result<SplitResponse, RuntimeError>, RuntimeError> {
        match self {
            JobMasterGateway::Local(a) => a.send(msg).await.map_err(unreachable_job_master),
            JobMasterGateway::Remote(r) => {
                match r.ask(|request| RemoteJobManagerMessage::SplitRequest { request, msg }).await? {
                    JobManagerAnswer::Splits(a) => Ok(a),
                    JobManagerAnswer::End(_) => Err(another_question()),
                }
            }
        }
    }

    /// Asks whether this attempt may end (see [`ConfirmEnd`]). The outer error: the JobMaster
    /// cannot be reached; the inner one: it refused.
    pub async fn confirm_end(&self, msg: ConfirmEnd) -> Result<Result<(), RuntimeError>, RuntimeError> {
        match self {
            JobMasterGateway::Local(a) => a.send(msg).await.map_err(unreachable_job_master),
            JobMasterGateway::Remote(r) => {
                match r.ask(|request| RemoteJobManagerMessage::ConfirmEnd { request, msg }).await? {
                    JobManagerAnswer::End(a) => Ok(a),
                    JobManagerAnswer::Splits(_) => Err(another_question()),
                }
            }
        }
    }
}

fn unreachable_job_master(e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Unavailable(e.to_string())
}

fn another_question() -> RuntimeError {
    RuntimeError::Caused {
        message: "the job manager answered another question".into(),
        causes: vec![],
        domain: crate::error::ErrorDomain::Internal,
        retryable: false,
    }
}

/// The network data plane of a TaskManager process, as the subtasks see it: a channel whose
/// consumer runs in another process is shipped there. The subtask writes into the channel's
/// local end as always; the data plane takes the other end and sends what arrives, as far as
/// the consumer grants credit.
pub trait DataPlane: Send + Sync {
    /// Ships channel `id` to the TaskManager whose data address is `address`.
    fn open_outbound(&self, id: crate::exchange::ChannelId, address: &str, graph: Arc<riffle_api::JobGraph>);
}

/// Per-slot instances of a job's plugin code in an embedded cluster (FLINK-16408's per-slot
/// class loader, as TaskManager processes have it): a plugin job's subtasks in slot *i* run a
/// graph built by that slot's own instance of the library, kept while the job holds the slot
/// (across restarts) and unloaded once it gives the slot back.
pub trait SlotCode: Send + Sync {
    /// The graph slot `slot` runs for `job`: its own instance's, built now or kept; `None`
    /// when `graph` is not a plugin's (it runs as it is).
    fn graph_for(
        &self,
        job: crate::ids::JobId,
        slot: u32,
        graph: &riffle_api::JobGraph,
    ) -> Result<Option<Arc<riffle_api::JobGraph>>, crate::RuntimeError>;
    /// `job` gave `slot` back: its instance goes once no subtask runs its code.
    fn release(&self, job: crate::ids::JobId, slot: u32);
}

/// Where a highly available JobManager keeps its jobs, so that the next leader can recover
/// them (ZooKeeper and `high-availability.storageDir`; see `riffle-cluster`'s `ha`).
pub trait JobStore: Send + Sync {
    /// Persists a submitted job; the job starts only once this succeeded, and an error refuses
    /// the submission with its message.
    fn job_submitted(
        &self,
        job: crate::ids::JobId,
        graph: Arc<riffle_api::JobGraph>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), RuntimeError>>>>;
    /// Hands out `job`'s next checkpoint id, at least `at_least` (after a restore, the restored
    /// id + 1), from a counter every leader of the job shares: never one handed out before.
    fn next_checkpoint_id(
        &self,
        job: crate::ids::JobId,
        at_least: u64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64, RuntimeError>>>>;
    /// The job reached a terminal state: it is no longer recovered.
    fn job_terminated(&self, job: crate::ids::JobId);
    /// Checkpoint `id` of `job` completed in `dir`: the next leader resumes from it.
    fn checkpoint_completed(&self, job: crate::ids::JobId, id: u64, dir: &std::path::Path);
    /// `job`'s exception history changed: keep it for the next leader. Returns at once (the
    /// caller is the Dispatcher): the store writes off its path, the latest history wins.
    fn exceptions_changed(&self, job: crate::ids::JobId, history: crate::exception_history::ExceptionHistorySnapshot);
    /// The exception history the previous leader stored for `job` (a recovered job), handed
    /// out once; `None` for a new job or one without a history.
    fn recovered_exceptions(
        &self,
        job: crate::ids::JobId,
    ) -> Option<crate::exception_history::ExceptionHistorySnapshot>;
}
