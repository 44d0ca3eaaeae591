//! The TaskManager's side of its link to the JobManager: connect, register, heartbeat, obey;
//! after a loss, cancel everything and connect again with backoff.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use riffle_actors::gateway::{TaskState, TaskStateUpdate};
use riffle_actors::ids::{JobId, ResourceId};
use riffle_actors::peers::{
    JobMasterGateway, RemoteJobManager, RemoteJobManagerMessage, TaskExecutorGateway, ToTaskExecutor,
};
use riffle_actors::task_executor::{GetTaskExecutorReport, ReleaseAllSlots, TaskExecutor};
use riffle_actors::RuntimeShared;
use tokio::sync::{mpsc, watch};

use super::protocol::LinkMessage;
use super::{ProgramBuilder, REGISTRATION_TIMEOUT};
use crate::heartbeat::{HeartbeatMonitor, HeartbeatSettings};
use crate::transport::{connect, ConnectionReader, ConnectionWriter, Hello, Timeouts};

/// Who this TaskManager is and where its JobManager is.
#[derive(Debug, Clone)]
pub struct LinkSettings {
    /// The JobManager's advertised RPC address (`host:port`).
    pub job_manager: String,
    /// This TaskExecutor's id.
    pub resource_id: ResourceId,
    /// Its slots.
    pub slots: u32,
    /// The address this TaskManager advertises (`taskmanager.host`).
    pub advertised: String,
    /// Where it receives data channels (set once its data endpoint is bound).
    pub data_address: String,
    /// Heartbeats.
    pub heartbeat: HeartbeatSettings,
    /// Connection set-up timeouts.
    pub timeouts: Timeouts,
}

/// Longest pause between connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Keeps the TaskExecutor `te` linked to the JobManager until `stop` turns true.
pub async fn run(
    settings: LinkSettings,
    shared: Arc<RuntimeShared>,
    te: Addr<TaskExecutor>,
    builder: Arc<dyn ProgramBuilder>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(50);
    let mut last_error = String::new();
    loop {
        if *stop.borrow() {
            return;
        }
        let hello = Hello::new(settings.resource_id.to_string());
        match connect::<LinkMessage>(settings.job_manager.as_str(), hello, settings.timeouts).await {
            Ok(conn) => {
                backoff = Duration::from_millis(50);
                last_error.clear();
                let (reader, writer) = conn.into_split();
                let reason = tokio::select! {
                    r = session(reader, writer, &settings, &shared, &te, &builder) => r,
                    _ = stop.changed() => "the TaskManager is stopping".to_string(),
                };
                tracing::warn!(job_manager = %settings.job_manager, "left the JobManager: {reason}");
                shared.set_remote_job_manager(None);
                te.do_send(ReleaseAllSlots { reason: format!("the link to the JobManager ended: {reason}") });
            }
            Err(e) => {
                let error = e.to_string();
                if error != last_error {
                    tracing::warn!(job_manager = %settings.job_manager, "cannot reach the JobManager: {error}; retrying");
                    last_error = error;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn write_all(mut writer: ConnectionWriter<LinkMessage>, mut queue: mpsc::UnboundedReceiver<LinkMessage>) {
    while let Some(m) = queue.recv().await {
        if writer.send(&m).await.is_err() {
            return;
        }
    }
    let _ = writer.close().await;
}

/// One registration: returns why it ended.
async fn session(
    mut reader: ConnectionReader<LinkMessage>,
    mut writer: ConnectionWriter<LinkMessage>,
    settings: &LinkSettings,
    shared: &Arc<RuntimeShared>,
    te: &Addr<TaskExecutor>,
    builder: &Arc<dyn ProgramBuilder>,
) -> String {
    let register = LinkMessage::Register {
        resource_id: settings.resource_id.clone(),
        slots: settings.slots,
        address: settings.advertised.clone(),
        data_address: settings.data_address.clone(),
    };
    if let Err(e) = writer.send(&register).await {
        return format!("cannot register: {e}");
    }
    let session = match tokio::time::timeout(REGISTRATION_TIMEOUT, reader.recv()).await {
        Ok(Ok(Some(LinkMessage::Registered { session }))) => session,
        Ok(Ok(Some(LinkMessage::Refused { reason }))) => return format!("registration refused: {reason}"),
        Ok(Ok(Some(_))) => return "the JobManager answered the registration with something else".into(),
        Ok(Ok(None)) => return "the JobManager closed the link during registration".into(),
        Ok(Err(e)) => return format!("registration failed: {e}"),
        Err(_) => return format!("no answer to the registration within {REGISTRATION_TIMEOUT:?}"),
    };
    tracing::info!(job_manager = %settings.job_manager, executor = %settings.resource_id, "registered at the JobManager");
    let (to_jm, mut for_jm) = mpsc::unbounded_channel::<RemoteJobManagerMessage>();
    let remote = RemoteJobManager::new(to_jm);
    shared.set_remote_job_manager(Some(remote.clone()));
    let (out, queue) = mpsc::unbounded_channel::<LinkMessage>();
    actix::spawn(write_all(writer, queue));
    let local = TaskExecutorGateway::Local(te.clone());
    let mut monitor = HeartbeatMonitor::new(settings.heartbeat);
    monitor.monitor((), Instant::now());
    let mut tick = tokio::time::interval(settings.heartbeat.interval);
    // Jobs whose graph could not be built here, with why: their tasks fail with it.
    let mut unbuildable: HashMap<JobId, String> = HashMap::new();
    let reason = loop {
        tokio::select! {
            // What arrived is read before a heartbeat deadline is judged.
            biased;
            m = reader.recv() => match m {
                Ok(Some(m)) => {
                    monitor.heard(&(), Instant::now());
                    match m {
                        LinkMessage::JobManagerHeartbeat => {}
                        LinkMessage::ProvideJob { session: s, job, origin, config } if s == session => {
                            match builder.build(&origin) {
                                Ok(mut graph) => {
                                    graph.config = config;
                                    shared.graphs.insert(job, Arc::new(graph));
                                    unbuildable.remove(&job);
                                }
                                Err(why) => {
                                    tracing::warn!(%job, "cannot build the job's graph: {why}");
                                    unbuildable.insert(job, why);
                                }
                            }
                        }
                        LinkMessage::ForTaskExecutor { session: s, msg } if s == session => {
                            if let ToTaskExecutor::DeployTask(d) = &msg {
                                if let Some(why) = unbuildable.get(&d.execution.job) {
                                    JobMasterGateway::Remote(remote.clone()).do_send(TaskStateUpdate {
                                        execution: d.execution,
                                        state: TaskState::Failed(riffle_api::TaskError::msg(
                                            format!("task executor {}", settings.resource_id),
                                            format!("cannot build the job here: {why}"),
                                        )),
                                        location: settings.resource_id.clone(),
                                    });
                                    continue;
                                }
                            }
                            local.do_send(msg);
                        }
                        LinkMessage::SplitAnswer { request, answer } => remote.answer_splits(request, answer),
                        LinkMessage::ProvideJob { session: s, .. } | LinkMessage::ForTaskExecutor { session: s, .. } => {
                            tracing::warn!(session = s, current = session, "dropping a command of another JobManager session");
                        }
                        other => tracing::warn!("ignoring an unexpected message from the JobManager: {other:?}"),
                    }
                }
                Ok(None) => break "the JobManager closed the link".to_string(),
                Err(e) => break format!("the link failed: {e}"),
            },
            Some(m) = for_jm.recv() => {
                let _ = out.send(LinkMessage::ForJobManager(m));
            }
            _ = tick.tick() => {
                if !monitor.expire(Instant::now()).is_empty() {
                    break format!("no heartbeat from the JobManager for {:?} (heartbeat.timeout)", settings.heartbeat.timeout);
                }
                // The report asks every slot, whose thread may be busy for a while: the loop
                // must not wait for it, or it would stop reading the JobManager's heartbeats.
                let (te, out) = (te.clone(), out.clone());
                actix::spawn(async move {
                    let report = te.send(GetTaskExecutorReport).await.unwrap_or_default();
                    let _ = out.send(LinkMessage::TaskManagerHeartbeat { report });
                });
            }
        }
    };
    remote.fail_pending(&reason);
    reason
}
