//! What a TaskManager process and the JobManager process say to each other over their link:
//! one rmp-serde message per frame (see `transport`).

use riffle_actors::gateway::SplitResponse;
use riffle_actors::ids::{JobId, ResourceId};
use riffle_actors::peers::{RemoteJobManagerMessage, ToTaskExecutor};
use riffle_actors::task_executor::TaskExecutorReport;
use riffle_api::{Configuration, JobOrigin};
use serde::{Deserialize, Serialize};

/// One message of a TaskManager link, in either direction.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum LinkMessage {
    /// TaskManager → JobManager, first message: who I am and what I offer.
    Register {
        /// The TaskExecutor's id (`taskmanager.resource-id`).
        resource_id: ResourceId,
        /// Its slots.
        slots: u32,
        /// The address it advertises (`taskmanager.host`).
        address: String,
        /// Where it receives data channels (`host:port`, `taskmanager.data.port`).
        data_address: String,
    },
    /// JobManager → TaskManager: registered; `session` fences every later command (a
    /// TaskManager drops commands of another session, e.g. of a JobManager it left).
    Registered {
        /// The JobManager's leader session.
        session: u64,
    },
    /// JobManager → TaskManager: not registered (the id is taken by a live link).
    Refused {
        /// Why.
        reason: String,
    },
    /// TaskManager → JobManager, every `heartbeat.interval`: alive, and how it is doing.
    TaskManagerHeartbeat {
        /// Slots and subtasks.
        report: TaskExecutorReport,
        /// The counters of the subtasks running here, by job (the JobManager's views show them).
        #[serde(default)]
        io: Vec<(JobId, Vec<riffle_actors::job_view::IoSample>)>,
        /// Its process's threads (thread dumps).
        #[serde(default)]
        threads: Option<Vec<riffle_actors::peers::ThreadSample>>,
        /// Its TaskExecutor's mailbox (thread dumps).
        #[serde(default)]
        mailbox: Option<riffle_actors::mailbox::MailboxState>,
        /// Its network buffer pool.
        #[serde(default)]
        network: Option<riffle_actors::peers::NetworkSample>,
    },
    /// JobManager → TaskManager, every `heartbeat.interval`: alive.
    JobManagerHeartbeat,
    /// JobManager → TaskManager, before the first task of a job: how to build its graph.
    ProvideJob {
        /// The leader session.
        session: u64,
        /// The job.
        job: JobId,
        /// Its program and arguments.
        origin: JobOrigin,
        /// Its job-level configuration.
        config: Configuration,
    },
    /// JobManager → TaskManager: a gateway message for the TaskExecutor.
    ForTaskExecutor {
        /// The leader session.
        session: u64,
        /// The message.
        msg: ToTaskExecutor,
    },
    /// TaskManager → JobManager: a message for a JobMaster, or a split request.
    ForJobManager(RemoteJobManagerMessage),
    /// TaskManager → JobManager: send me the plugin library job `job` was built from (it is
    /// not in my artifact cache).
    FetchArtifact {
        /// The job.
        job: JobId,
    },
    /// JobManager → TaskManager: the library asked for, or why it cannot be had.
    Artifact {
        /// The job.
        job: JobId,
        /// The library's bytes.
        bytes: Result<serde_bytes::ByteBuf, String>,
    },
    /// JobManager → TaskManager: the answer to a split request.
    SplitAnswer {
        /// The request answered.
        request: u64,
        /// Splits, or the enumerator's error.
        answer: Result<SplitResponse, String>,
    },
    /// JobManager → TaskManager: the answer to a subtask's `ConfirmEnd`.
    EndAnswer {
        /// The request answered.
        request: u64,
        /// Confirmed, or why not.
        answer: Result<(), String>,
    },
}
