//! The JobManager's side of TaskManager links: accept, register, heartbeat, forward.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use riffle_actors::gateway::{RegisterTaskExecutor, TaskOutcome, TaskStateUpdate, UnregisterTaskExecutor};
use riffle_actors::ids::ResourceId;
use riffle_actors::job_master::JobMaster;
use riffle_actors::mailbox::Counted;
use riffle_actors::peers::{
    LogQuery, LogReply, LogRequest, RemoteJobManagerMessage, RemoteTaskExecutor, TaskExecutorGateway, ToJobMaster,
    ToTaskExecutor,
};
use riffle_actors::{RuntimeError, RuntimeShared};
use tokio::sync::{mpsc, oneshot, watch};

use super::protocol::LinkMessage;
use super::REGISTRATION_TIMEOUT;
use crate::error::ClusterError;
use crate::heartbeat::{HeartbeatMonitor, HeartbeatSettings};
use crate::transport::{ConnectionReader, ConnectionWriter, Listener, Timeouts, DEFAULT_MAX_FRAME_SIZE};
use riffle_api::{ConfigOption, Configuration, Group, MemorySize, OptionInfo};
use std::net::SocketAddr;

/// Where the JobManager listens for TaskManagers and what it tells them to use.
#[derive(Debug, Clone)]
pub struct RpcSettings {
    /// The address to bind (`jobmanager.bind-host`:`jobmanager.rpc.bind-port`).
    pub bind: String,
    /// The advertised host (`jobmanager.rpc.address`).
    pub advertised_host: String,
    /// The advertised port (`jobmanager.rpc.port`; 0: the bound port).
    pub advertised_port: u16,
    /// Heartbeats.
    pub heartbeat: HeartbeatSettings,
    /// `rpc.max-frame-size`.
    pub max_frame_size: u32,
}

/// `jobmanager.rpc.address`: where TaskManagers reach the JobManager (read by both sides).
pub const RPC_ADDRESS: ConfigOption<String> = ConfigOption::new(
    Group::Processes,
    "jobmanager.rpc.address",
    "localhost",
    "the JobManager's advertised RPC host (TaskManagers connect to it)",
);
/// `jobmanager.rpc.port` (read by both sides).
pub const RPC_PORT: ConfigOption<u16> =
    ConfigOption::new(Group::Processes, "jobmanager.rpc.port", 6123, "the JobManager's advertised RPC port");
/// `jobmanager.bind-host`, else `jobmanager.rpc.address`.
pub const BIND_HOST: ConfigOption<String> = ConfigOption::new(
    Group::Processes,
    "jobmanager.bind-host",
    "localhost",
    "host the JobManager's RPC endpoint binds",
)
.with_fallback_keys(&[RPC_ADDRESS.key()]);
/// `jobmanager.rpc.bind-port`, else `jobmanager.rpc.port`.
pub const RPC_BIND_PORT: ConfigOption<u16> =
    ConfigOption::new(Group::Processes, "jobmanager.rpc.bind-port", 6123, "port the JobManager's RPC endpoint binds")
        .with_fallback_keys(&[RPC_PORT.key()]);
/// `rpc.max-frame-size` (read by both sides).
pub const MAX_FRAME_SIZE: ConfigOption<MemorySize> = ConfigOption::new(
    Group::Rpc,
    "rpc.max-frame-size",
    MemorySize::bytes(DEFAULT_MAX_FRAME_SIZE as usize),
    "largest message between processes",
);

/// The options of the JobManager's RPC endpoint.
pub(crate) const OPTIONS: &[&dyn OptionInfo] = &[&RPC_ADDRESS, &RPC_PORT, &BIND_HOST, &RPC_BIND_PORT, &MAX_FRAME_SIZE];

impl RpcSettings {
    /// Reads Flink's keys (FLINK-15911): bind host and port default to the advertised ones.
    pub fn from_config(c: &Configuration) -> Result<Self, ClusterError> {
        let advertised_host = c.get(&RPC_ADDRESS)?;
        let advertised_port = c.get(&RPC_PORT)?;
        let bind_host = c.get(&BIND_HOST)?;
        let bind_port = c.get(&RPC_BIND_PORT)?;
        let max_frame_size = c.get(&MAX_FRAME_SIZE)?.as_bytes();
        Ok(Self {
            bind: format!("{bind_host}:{bind_port}"),
            advertised_host,
            advertised_port,
            heartbeat: HeartbeatSettings::from_config(c)?,
            max_frame_size: u32::try_from(max_frame_size).unwrap_or(u32::MAX),
        })
    }
}

/// A running RPC endpoint.
#[derive(Debug)]
pub struct RpcEndpoint {
    /// The bound socket address.
    pub bound: SocketAddr,
    /// The advertised `host:port`.
    pub advertised: String,
    stop: watch::Sender<bool>,
}

impl RpcEndpoint {
    /// Stops accepting (links end with the actor system).
    pub fn stop(self) {
        let _ = self.stop.send(true);
    }
}

/// Binds the RPC endpoint and serves TaskManager links on the current actix system.
pub async fn start(settings: RpcSettings, shared: Arc<RuntimeShared>) -> Result<RpcEndpoint, ClusterError> {
    let mut listener =
        Listener::bind(settings.bind.as_str(), "jobmanager", Timeouts::default()).await.map_err(|e| {
            ClusterError::Unavailable(format!(
                "cannot listen on {} (jobmanager.bind-host, jobmanager.rpc.bind-port): {e}",
                settings.bind
            ))
        })?;
    listener.set_max_frame_size(settings.max_frame_size);
    let bound = listener.local_addr();
    let port = if settings.advertised_port == 0 { bound.port() } else { settings.advertised_port };
    let advertised = format!("{}:{port}", settings.advertised_host);
    let session = new_session();
    let (stop, stopped) = watch::channel(false);
    actix::spawn(serve(listener, shared, settings.heartbeat, session, stopped));
    tracing::info!(%bound, %advertised, "accepting TaskManagers");
    Ok(RpcEndpoint { bound, advertised, stop })
}

/// A leader session id unlike any other JobManager's (time and process id).
fn new_session() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    nanos ^ ((std::process::id() as u64) << 32)
}

/// Accepts TaskManager links until `stop` turns true. Runs on the JobManager's actix system
/// (the links talk to its actors).
pub async fn serve(
    mut listener: Listener,
    shared: Arc<RuntimeShared>,
    heartbeat: HeartbeatSettings,
    session: u64,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept::<LinkMessage>() => match accepted {
                Ok(conn) => {
                    let (reader, writer) = conn.into_split();
                    actix::spawn(link(reader, writer, shared.clone(), heartbeat, session));
                }
                // Refused, garbage, timed out: logged by the listener; it keeps serving.
                Err(_) => continue,
            },
            _ = stop.changed() => return,
        }
    }
}

/// Sends what the writer queue holds until the queue or the connection ends.
async fn write_all(mut writer: ConnectionWriter<LinkMessage>, mut queue: mpsc::UnboundedReceiver<LinkMessage>) {
    while let Some(m) = queue.recv().await {
        if writer.send(&m).await.is_err() {
            return;
        }
    }
    let _ = writer.close().await;
}

async fn link(
    mut reader: ConnectionReader<LinkMessage>,
    mut writer: ConnectionWriter<LinkMessage>,
    shared: Arc<RuntimeShared>,
    heartbeat: HeartbeatSettings,
    session: u64,
) {
    let peer = reader.peer_addr();
    let (resource_id, slots, address, data_address) =
        match tokio::time::timeout(REGISTRATION_TIMEOUT, reader.recv()).await {
            Ok(Ok(Some(LinkMessage::Register { resource_id, slots, address, data_address }))) => {
                (resource_id, slots, address, data_address)
            }
            Ok(Ok(Some(other))) => {
                tracing::warn!(%peer, "a TaskManager link must start with Register, got {}", kind(&other));
                return;
            }
            Ok(Ok(None)) | Ok(Err(_)) => return,
            Err(_) => {
                tracing::warn!(%peer, "a TaskManager did not register within {REGISTRATION_TIMEOUT:?}");
                return;
            }
        };
    if shared.directory.task_executors.get(&resource_id).is_some_and(|g| g.connected()) {
        let reason = format!("a TaskExecutor '{resource_id}' is registered already");
        tracing::warn!(%peer, "refusing a TaskManager: {reason}");
        let _ = writer.send(&LinkMessage::Refused { reason }).await;
        return;
    }
    let (tx, mut commands) = mpsc::unbounded_channel::<ToTaskExecutor>();
    let (logs_tx, mut log_queries) = mpsc::unbounded_channel::<LogRequest>();
    let remote = RemoteTaskExecutor::new(tx, logs_tx, address.clone(), slots, data_address.clone());
    shared.directory.task_executors.insert(resource_id.clone(), TaskExecutorGateway::Remote(remote.clone()));
    let (out, queue) = mpsc::unbounded_channel::<LinkMessage>();
    let _ = out.send(LinkMessage::Registered { session });
    actix::spawn(write_all(writer, queue));
    if let Some(rm) = shared.directory.resource_manager() {
        rm.do_send(RegisterTaskExecutor { resource_id: resource_id.clone(), slots });
    }
    tracing::info!(executor = %resource_id, %peer, %address, %data_address, slots, "TaskManager registered");

    let mut monitor = HeartbeatMonitor::new(heartbeat);
    monitor.monitor((), Instant::now());
    let mut tick = tokio::time::interval(heartbeat.interval);
    let mut provided = HashSet::new();
    let mut holders = super::SlotHolders::default();
    // Log queries waiting for the TaskManager's answer; dropped with the link, which tells
    // each waiter that no answer comes.
    let mut log_waiters: HashMap<u64, oneshot::Sender<Result<LogReply, RuntimeError>>> = HashMap::new();
    let mut next_log_request = 0u64;
    let reason = loop {
        tokio::select! {
            // What arrived is read before a heartbeat deadline is judged.
            biased;
            m = reader.recv() => match m {
                Ok(Some(LinkMessage::LogAnswer { request, answer })) => {
                    monitor.heard(&(), Instant::now());
                    if let Some(waiter) = log_waiters.remove(&request) {
                        let _ = waiter.send(answer);
                    }
                }
                Ok(Some(m)) => {
                    monitor.heard(&(), Instant::now());
                    on_message(m, &shared, &remote, &out, &resource_id);
                }
                Ok(None) => break "its link closed".to_string(),
                Err(e) => break format!("its link failed: {e}"),
            },
            Some(c) = commands.recv() => {
                if let Some(left) = holders.follow(&c) {
                    // The TaskManager forgets the job now: its next task there needs the origin again.
                    provided.remove(&left);
                }
                forward(c, &shared, &out, session, &mut provided, &resource_id)
            }
            Some(LogRequest { mut query, reply }) = log_queries.recv() => {
                // A piece must fit in one frame of this link, whatever rpc.max-frame-size says
                // (the REST side reads on from where a short piece ended).
                if let LogQuery::Read { len, .. } = &mut query {
                    *len = (*len).min(u64::from(reader.max_frame_size() / 2).max(1));
                }
                // Waiters that gave up (timed out) leave with the next question.
                log_waiters.retain(|_, w| !w.is_closed());
                next_log_request += 1;
                log_waiters.insert(next_log_request, reply);
                let _ = out.send(LinkMessage::LogQuery { request: next_log_request, query });
            }
            _ = tick.tick() => {
                if !monitor.expire(Instant::now()).is_empty() {
                    break format!("no heartbeat for {:?} (heartbeat.timeout)", heartbeat.timeout);
                }
                let _ = out.send(LinkMessage::JobManagerHeartbeat);
            }
        }
    };
    tracing::warn!(executor = %resource_id, %peer, "TaskManager lost: {reason}");
    // Only our own registration goes: the TaskManager may have registered again already.
    shared
        .directory
        .task_executors
        .remove_if(&resource_id, |_, g| matches!(g, TaskExecutorGateway::Remote(r) if r.same(&remote)));
    if let Some(rm) = shared.directory.resource_manager() {
        rm.do_send(UnregisterTaskExecutor { resource_id, reason });
    }
}

fn kind(m: &LinkMessage) -> &'static str {
    match m {
        LinkMessage::Register { .. } => "Register",
        LinkMessage::Registered { .. } => "Registered",
        LinkMessage::Refused { .. } => "Refused",
        LinkMessage::TaskManagerHeartbeat { .. } => "TaskManagerHeartbeat",
        LinkMessage::JobManagerHeartbeat => "JobManagerHeartbeat",
        LinkMessage::ProvideJob { .. } => "ProvideJob",
        LinkMessage::ForTaskExecutor { .. } => "ForTaskExecutor",
        LinkMessage::ForJobManager(_) => "ForJobManager",
        LinkMessage::SplitAnswer { .. } => "SplitAnswer",
        LinkMessage::EndAnswer { .. } => "EndAnswer",
        LinkMessage::FetchArtifact { .. } => "FetchArtifact",
        LinkMessage::Artifact { .. } => "Artifact",
        LinkMessage::LogQuery { .. } => "LogQuery",
        LinkMessage::LogAnswer { .. } => "LogAnswer",
    }
}

/// Asks `job`'s JobMaster a subtask's question and sends the answer (`reply` wraps it) back
/// over the link, without holding up the link's other messages.
fn ask_job_master<M, T>(
    shared: &RuntimeShared,
    job: riffle_actors::JobId,
    msg: M,
    out: &mpsc::UnboundedSender<LinkMessage>,
    reply: impl FnOnce(Result<T, RuntimeError>) -> LinkMessage + 'static,
) where
    M: actix::Message<Result = Result<T, RuntimeError>> + Send + 'static,
    T: Send + 'static,
    JobMaster: actix::Handler<Counted<M>>,
    <JobMaster as actix::Actor>::Context: actix::dev::ToEnvelope<JobMaster, Counted<M>>,
{
    let jm = shared.directory.job_masters.get(&job).map(|a| a.clone());
    let out = out.clone();
    actix::spawn(async move {
        let answer = match jm {
            Some(jm) => jm
                .send(msg)
                .await
                .unwrap_or_else(|e| Err(RuntimeError::Unavailable(format!("the job master is gone: {e}")))),
            None => Err(RuntimeError::Unavailable("the job master is gone".to_string())),
        };
        let _ = out.send(reply(answer));
    });
}

/// A message from the TaskManager.
fn on_message(
    m: LinkMessage,
    shared: &Arc<RuntimeShared>,
    remote: &RemoteTaskExecutor,
    out: &mpsc::UnboundedSender<LinkMessage>,
    from: &ResourceId,
) {
    match m {
        LinkMessage::TaskManagerHeartbeat { report, io, threads, mailbox, network, memory } => {
            remote.heard(report, threads, mailbox, network, memory);
            for (job, samples) in io {
                if let Some(view) = shared.jobs.view(job) {
                    view.apply_samples(&samples, &from.to_string());
                }
            }
        }
        LinkMessage::ForJobManager(RemoteJobManagerMessage::JobMaster(msg)) => {
            let job = match &msg {
                ToJobMaster::TaskState(u) => u.execution.job,
                ToJobMaster::Acknowledge(a) => a.execution.job,
                ToJobMaster::Decline(d) => d.execution.job,
            };
            // A JobMaster that ended meanwhile needs no news.
            if let Some(jm) = shared.directory.job_masters.get(&job).map(|a| a.clone()) {
                riffle_actors::peers::JobMasterGateway::Local(jm).do_send(msg);
            }
        }
        LinkMessage::ForJobManager(RemoteJobManagerMessage::SplitRequest { request, msg }) => {
            let job = msg.execution.job;
            ask_job_master(shared, job, msg, out, move |answer| LinkMessage::SplitAnswer { request, answer });
        }
        LinkMessage::ForJobManager(RemoteJobManagerMessage::ConfirmEnd { request, msg }) => {
            let job = msg.execution.job;
            ask_job_master(shared, job, msg, out, move |answer| LinkMessage::EndAnswer { request, answer });
        }
        LinkMessage::FetchArtifact { job } => {
            // Only the library of a job this JobManager runs, from its own origin: the
            // TaskManager names a job, never a path.
            let source = shared.code.graph(job).and_then(|g| match g.origin().map(|o| &o.program) {
                Some(riffle_api::ProgramSource::Plugin { path, .. }) => Some(path.clone()),
                _ => None,
            });
            let out = out.clone();
            actix::spawn(async move {
                let bytes = match source {
                    None => Err(RuntimeError::from(ClusterError::Plugin(format!(
                        "job {job} was not built from a plugin here"
                    )))),
                    Some(path) => actix_rt::task::spawn_blocking(move || std::fs::read(&path))
                        .await
                        .map_err(|e| RuntimeError::Panicked(e.to_string()))
                        .and_then(|r| {
                            r.map_err(|e| {
                                RuntimeError::from(ClusterError::Io {
                                    what: "cannot read the plugin library".into(),
                                    source: e,
                                })
                            })
                        })
                        .map(serde_bytes::ByteBuf::from),
                };
                let _ = out.send(LinkMessage::Artifact { job, bytes });
            });
        }
        other => tracing::warn!(executor = %from, "ignoring a {} from a TaskManager", kind(&other)),
    }
}

/// A command for the TaskExecutor; a job's first task is preceded by how to build its graph.
fn forward(
    c: ToTaskExecutor,
    shared: &Arc<RuntimeShared>,
    out: &mpsc::UnboundedSender<LinkMessage>,
    session: u64,
    provided: &mut HashSet<riffle_actors::JobId>,
    to: &ResourceId,
) {
    if let ToTaskExecutor::DeployTask(d) = &c {
        let job = d.execution.job;
        if !provided.contains(&job) {
            let graph = shared.code.graph(job);
            match graph.as_ref().and_then(|g| g.origin().map(|o| (o.clone(), g.config.clone()))) {
                Some((origin, config)) => {
                    let _ = out.send(LinkMessage::ProvideJob { session, job, origin, config });
                    provided.insert(job);
                }
                None => {
                    let why = match graph {
                        Some(g) => format!(
                            "job '{}' was built by code only the JobManager process has (not from a program or a \
                             plugin), so TaskManager {to} cannot build it",
                            g.name
                        ),
                        None => format!("job {job} has no graph on the JobManager"),
                    };
                    if let Some(jm) = shared.directory.job_masters.get(&job) {
                        jm.do_send(TaskStateUpdate {
                            execution: d.execution,
                            state: TaskOutcome::Failed(riffle_api::TaskError::msg(format!("task executor {to}"), why))
                                .into(),
                            location: to.clone(),
                            final_source: None,
                        });
                    }
                    return;
                }
            }
        }
    }
    let _ = out.send(LinkMessage::ForTaskExecutor { session, msg: c });
}
