//! What a TaskManager process and the JobManager process say to each other over their link:
//! one rmp-serde message per frame (see `transport`).

use riffle_actors::gateway::SplitResponse;
use riffle_actors::ids::{JobId, ResourceId};
use riffle_actors::peers::{RemoteJobManagerMessage, ToTaskExecutor};
use riffle_actors::task_executor::TaskExecutorReport;
use riffle_actors::RuntimeError;
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
        /// Its process's resident memory, machine and state backend budget.
        #[serde(default)]
        memory: Option<riffle_actors::peers::MemorySample>,
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
        bytes: Result<serde_bytes::ByteBuf, RuntimeError>,
    },
    /// JobManager → TaskManager: a question about the TaskManager's `log.dir` (its REST pages);
    /// answered with `LogAnswer` and the same `request`, whatever the session.
    LogQuery {
        /// Matches the answer to the question.
        request: u64,
        /// The question.
        query: riffle_actors::peers::LogQuery,
    },
    /// TaskManager → JobManager: the answer to a `LogQuery`.
    LogAnswer {
        /// The request answered.
        request: u64,
        /// The files or bytes, or why not (`NotFound` for a name that is not one of its files).
        answer: Result<riffle_actors::peers::LogReply, RuntimeError>,
    },
    /// JobManager → TaskManager: the answer to a split request.
    SplitAnswer {
        /// The request answered.
        request: u64,
        /// Splits, or the enumerator's error.
        answer: Result<SplitResponse, RuntimeError>,
    },
    /// JobManager → TaskManager: the answer to a subtask's `ConfirmEnd`.
    EndAnswer {
        /// The request answered.
        request: u64,
        /// Confirmed, or why not.
        answer: Result<(), RuntimeError>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::message::{decode, encode_into};
    use crate::transport::Stage;
    use riffle_actors::error::ErrorDomain;

    #[test]
    fn gateway_errors_round_trip_over_the_link() {
        let refused = RuntimeError::Refused("attempt 0 of the job was superseded by attempt 1".into());
        let caused = RuntimeError::from(riffle_api::ApiError::SplitDecode("bad bytes".into())).context("enumerator");
        let messages = [
            LinkMessage::EndAnswer { request: 7, answer: Err(refused.clone()) },
            LinkMessage::SplitAnswer { request: 8, answer: Err(caused.clone()) },
            LinkMessage::EndAnswer { request: 9, answer: Ok(()) },
        ];
        for m in messages {
            let mut buf = Vec::new();
            encode_into(&mut buf, &m).expect("encodes");
            let back: LinkMessage = decode(&buf, Stage::Session).expect("decodes");
            match (m, back) {
                (LinkMessage::EndAnswer { answer: a, .. }, LinkMessage::EndAnswer { answer: b, .. }) => {
                    assert_eq!(a, b)
                }
                (LinkMessage::SplitAnswer { answer: Err(a), .. }, LinkMessage::SplitAnswer { answer: Err(b), .. }) => {
                    assert_eq!(a, b)
                }
                (a, b) => panic!("{a:?} came back as {b:?}"),
            }
        }
        assert_eq!((refused.domain(), refused.is_retryable()), (ErrorDomain::User, true));
        assert_eq!((caused.domain(), caused.is_retryable()), (ErrorDomain::Internal, false));
        assert_eq!(caused.to_string(), "enumerator: corrupt split: bad bytes");
    }

    #[test]
    fn log_queries_and_answers_round_trip_over_the_link() {
        use riffle_actors::peers::{LogFileInfo, LogQuery, LogReply};
        let file = LogFileInfo { name: "taskmanager-a.log".into(), size: 5, mtime_ms: 7 };
        let messages = [
            LinkMessage::LogQuery { request: 1, query: LogQuery::List },
            LinkMessage::LogQuery { request: 2, query: LogQuery::Read { name: "a".into(), offset: 3, len: 4 } },
            LinkMessage::LogAnswer { request: 1, answer: Ok(LogReply::Files(vec![file])) },
            LinkMessage::LogAnswer { request: 2, answer: Ok(LogReply::Chunk { size: 9, bytes: vec![0, 255, 10] }) },
            LinkMessage::LogAnswer { request: 3, answer: Err(RuntimeError::NotFound("no log file named 'x'".into())) },
        ];
        for m in messages {
            let mut buf = Vec::new();
            encode_into(&mut buf, &m).expect("encodes");
            let back: LinkMessage = decode(&buf, Stage::Session).expect("decodes");
            match (&m, &back) {
                (LinkMessage::LogQuery { request: a, query: q }, LinkMessage::LogQuery { request: b, query: r }) => {
                    assert_eq!((a, q), (b, r))
                }
                (
                    LinkMessage::LogAnswer { request: a, answer: x },
                    LinkMessage::LogAnswer { request: b, answer: y },
                ) => assert_eq!((a, x), (b, y)),
                (a, b) => panic!("{a:?} came back as {b:?}"),
            }
        }
        // Bytes travel as bytes, not as an array of numbers.
        let chunk =
            LinkMessage::LogAnswer { request: 1, answer: Ok(LogReply::Chunk { size: 0, bytes: vec![200; 1000] }) };
        let mut buf = Vec::new();
        encode_into(&mut buf, &chunk).expect("encodes");
        assert!(buf.len() < 1100, "{} bytes", buf.len());
    }

    #[test]
    fn subtask_reports_round_trip_over_the_link() {
        use riffle_actors::gateway::{TaskOutcome, TaskState, TaskStateUpdate};
        use riffle_actors::ids::ExecutionId;
        use riffle_actors::peers::ToJobMaster;
        let execution = ExecutionId { job: JobId(7), vertex: 1, subtask: 0, attempt: 2 };
        let failed = TaskOutcome::Failed(riffle_api::TaskError::msg("map", "panicked: boom"));
        for state in [TaskState::Running, TaskOutcome::Finished.into(), TaskOutcome::Canceled.into(), failed.into()] {
            let update = TaskStateUpdate {
                execution,
                state: state.clone(),
                location: ResourceId("te-1".into()),
                final_source: None,
            };
            let m = LinkMessage::ForJobManager(RemoteJobManagerMessage::JobMaster(ToJobMaster::TaskState(update)));
            let mut buf = Vec::new();
            encode_into(&mut buf, &m).expect("encodes");
            match decode(&buf, Stage::Session).expect("decodes") {
                LinkMessage::ForJobManager(RemoteJobManagerMessage::JobMaster(ToJobMaster::TaskState(u))) => {
                    assert_eq!((u.execution, u.state), (execution, state))
                }
                other => panic!("{state:?} came back as {other:?}"),
            }
        }
    }
}
