//! The TaskManager's side of its link to the JobManager: connect, register, heartbeat, obey;
//! after a loss, cancel everything and connect again with backoff.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use riffle_actors::gateway::{TaskOutcome, TaskStateUpdate};
use riffle_actors::ids::{JobId, ResourceId};
use riffle_actors::peers::{
    JobMasterGateway, RemoteJobManager, RemoteJobManagerMessage, TaskExecutorGateway, ToTaskExecutor,
};
use riffle_actors::task_executor::{ReleaseAllSlots, TaskExecutor};
use riffle_actors::{RuntimeError, RuntimeShared};
use riffle_api::Programs;
use tokio::sync::{mpsc, watch};

use super::protocol::LinkMessage;
use super::slot_instances::SlotInstances;
use super::REGISTRATION_TIMEOUT;
use crate::error::ClusterError;
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
    /// With ZooKeeper HA: where to look up the leading JobManager (then `job_manager` is
    /// only the fallback shown in logs).
    pub zookeeper: Option<crate::ha::ZooKeeperHaConfig>,
    /// This TaskManager's plugin libraries by digest (`blob.storage.directory`).
    pub artifacts: crate::artifacts::ArtifactCache,
    /// Limits of fetching a remote artifact (`blob.fetch.*`).
    pub fetch_limits: crate::artifacts::FetchLimits,
    /// Its network buffer pool (reported with the heartbeats).
    pub network: crate::shuffle::buffer_pool::NetworkBuffers,
    /// Its `log.dir`, which the JobManager's REST pages list and read through the link.
    pub log_dir: Option<std::path::PathBuf>,
    /// The memory budget its configuration gives each keyed state backend (reported with the
    /// heartbeats).
    pub state_budget: Option<u64>,
}

/// Longest pause between connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Keeps the TaskExecutor `te` linked to the JobManager until `stop` turns true.
pub async fn run(
    settings: LinkSettings,
    shared: Arc<RuntimeShared>,
    te: Addr<TaskExecutor>,
    programs: Arc<dyn Programs>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(50);
    let mut last_error = String::new();
    let mut zk: Option<crate::ha::ZkClient> = None;
    let mut slots = SlotInstances::new(settings.artifacts.dir().join("slots"));
    loop {
        if *stop.borrow() {
            return;
        }
        let address = match leader(&settings, &mut zk).await {
            Ok(a) => a,
            Err(error) => {
                let error = error.to_string();
                if error != last_error {
                    tracing::warn!("cannot find the leading JobManager: {error}; retrying");
                    last_error = error;
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        let hello = Hello::new(settings.resource_id.to_string());
        match connect::<LinkMessage>(address.as_str(), hello, settings.timeouts).await {
            Ok(conn) => {
                backoff = Duration::from_millis(50);
                last_error.clear();
                let (reader, writer) = conn.into_split();
                let reason = tokio::select! {
                    r = session(reader, writer, &settings, &shared, &te, &programs, &mut slots) => r,
                    _ = stop.changed() => "the TaskManager is stopping".to_string(),
                };
                tracing::warn!(job_manager = %address, "left the JobManager: {reason}");
                shared.directory.set_remote_job_manager(None);
                te.do_send(ReleaseAllSlots { reason: format!("the link to the JobManager ended: {reason}") });
                // A new registration starts afresh: the JobManager provides every job again.
                shared.code.slot_graphs.clear();
                shared.code.graphs.clear();
                shared.jobs.views.clear();
                shared.jobs.counters.clear();
                slots.release_all();
            }
            Err(e) => {
                let error = e.to_string();
                if error != last_error {
                    tracing::warn!(job_manager = %address, "cannot reach the JobManager: {error}; retrying");
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

/// This TaskManager's heartbeat: the latest report of its TaskExecutor (a fresh one is fetched
/// in the background, one at a time: a slot deep in a slow batch may answer late), its
/// subtasks' counters and its threads.
fn heartbeat(
    shared: &RuntimeShared,
    retired_views: &mut Vec<(JobId, Arc<riffle_actors::job_view::JobView>)>,
    latest_report: &Arc<std::sync::Mutex<riffle_actors::task_executor::TaskExecutorReport>>,
    te: &TaskExecutorGateway,
    refreshing: &mut Arc<()>,
    network: &crate::shuffle::buffer_pool::NetworkBuffers,
    state_budget: Option<u64>,
) -> LinkMessage {
    // Jobs that left this TaskManager report their final counters once more, then go.
    let io: Vec<_> = shared
        .jobs
        .views
        .iter()
        .map(|v| (*v.key(), v.value().samples()))
        .chain(retired_views.drain(..).map(|(job, v)| (job, v.samples())))
        .filter(|(_, s)| !s.is_empty())
        .collect();
    let threads = Some(
        riffle_web::routes::thread_dump::threads()
            .into_iter()
            .map(|t| riffle_actors::peers::ThreadSample {
                tid: t.tid,
                name: t.name,
                state: t.state.to_string(),
                wchan: t.wchan,
                cpu_ms: t.cpu_ms,
            })
            .collect(),
    );
    let report = latest_report.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if Arc::strong_count(refreshing) == 1 {
        *refreshing = Arc::new(());
        let (te, latest, busy) = (te.clone(), latest_report.clone(), refreshing.clone());
        actix::spawn(async move {
            if let Some((r, _)) = te.report().await {
                *latest.lock().unwrap_or_else(|e| e.into_inner()) = r;
            }
            drop(busy);
        });
    }
    let mailbox = match te {
        TaskExecutorGateway::Local(p) => Some(p.mailbox()),
        TaskExecutorGateway::Remote(_) => None,
    };
    let network = Some(network.sample());
    let memory = Some(riffle_web::routes::taskmanagers::memory_sample(state_budget));
    LinkMessage::TaskManagerHeartbeat { report, io, threads, mailbox, network, memory }
}

/// This TaskManager's answer to a question about its `log.dir`, checked and read by the same
/// code as the JobManager's own log pages.
fn answer_log_query(
    dir: Option<&std::path::Path>,
    query: riffle_actors::peers::LogQuery,
) -> Result<riffle_actors::peers::LogReply, RuntimeError> {
    use riffle_actors::peers::{LogQuery, LogReply};
    use riffle_web::routes::logs;
    let web_error = |e: riffle_web::WebError| match e {
        riffle_web::WebError::NotFound(why) => RuntimeError::NotFound(why),
        other => RuntimeError::Unavailable(other.to_string()),
    };
    match (query, dir) {
        (LogQuery::List, None) => Ok(LogReply::Files(Vec::new())),
        (LogQuery::List, Some(dir)) => logs::list(dir).map(LogReply::Files).map_err(web_error),
        (LogQuery::Read { .. }, None) => {
            Err(RuntimeError::NotFound("the TaskManager has no log directory (log.dir)".into()))
        }
        (LogQuery::Read { name, offset, len }, Some(dir)) => logs::read_chunk(dir, &name, offset, len)
            .map(|(size, bytes)| LogReply::Chunk { size, bytes })
            .map_err(web_error),
    }
}

/// What the link knows of the jobs it was given.
struct Jobs {
    /// Jobs whose graph could not be built here, with why: their tasks fail with it.
    unbuildable: HashMap<JobId, String>,
    /// Jobs waiting for their plugin library: origin, configuration, digest, commands held.
    fetching: HashMap<JobId, (riffle_api::JobOrigin, riffle_api::Configuration, String, Vec<ToTaskExecutor>)>,
    /// Plugin jobs: the cached library, entry, arguments and configuration (each slot builds
    /// the job with an instance of its own).
    plugins: HashMap<JobId, PluginJob>,
    /// Which job holds which slot.
    holders: super::SlotHolders,
    /// Views of jobs that left, whose final counters the next heartbeat carries.
    retired_views: Vec<(JobId, Arc<riffle_actors::job_view::JobView>)>,
}

struct PluginJob {
    library: std::path::PathBuf,
    entry: String,
    args: Vec<String>,
    config: riffle_api::Configuration,
}

impl Jobs {
    fn build(
        &mut self,
        job: JobId,
        origin: &riffle_api::JobOrigin,
        config: riffle_api::Configuration,
        programs: &dyn Programs,
        shared: &RuntimeShared,
    ) {
        if let riffle_api::ProgramSource::Plugin { path, entry, .. } = &origin.program {
            let plugin = PluginJob {
                library: std::path::PathBuf::from(path),
                entry: entry.clone(),
                args: origin.args.clone(),
                config: config.clone(),
            };
            self.plugins.insert(job, plugin);
        }
        // The job's options as the JobManager has them, over what its program sets.
        match programs.build(&origin.clone().with_config(config)) {
            Ok(graph) => {
                // The subtasks here count into this view; heartbeats carry it to the
                // JobManager's.
                shared
                    .jobs
                    .views
                    .entry(job)
                    .or_insert_with(|| Arc::new(riffle_actors::job_view::JobView::new(job, &graph)));
                shared.code.graphs.insert(job, Arc::new(graph));
                self.unbuildable.remove(&job);
            }
            Err(why) => {
                tracing::warn!(%job, "cannot build the job's graph: {why}");
                self.unbuildable.insert(job, why.to_string());
            }
        }
    }

    /// Drops what this TaskManager kept of `job`.
    fn forget(&mut self, job: JobId, shared: &RuntimeShared) {
        shared.code.graphs.remove(&job);
        if let Some((_, view)) = shared.jobs.views.remove(&job) {
            self.retired_views.push((job, view));
        }
        shared.jobs.counters.remove(&job);
        self.plugins.remove(&job);
        self.unbuildable.remove(&job);
    }

    /// Hands a command to the TaskExecutor, or fails a deployment of a job not built here. A
    /// plugin job's task runs on its slot's own instance of the library.
    fn command(
        &mut self,
        msg: ToTaskExecutor,
        local: &TaskExecutorGateway,
        remote: &RemoteJobManager,
        me: &ResourceId,
        slots: &mut SlotInstances,
        shared: &RuntimeShared,
    ) {
        let fail = |d: &riffle_actors::gateway::DeployTask, why: String| {
            JobMasterGateway::Remote(remote.clone()).do_send(TaskStateUpdate {
                execution: d.execution,
                state: TaskOutcome::Failed(riffle_api::TaskError::msg(format!("task executor {me}"), why)).into(),
                location: me.clone(),
                final_source: None,
            });
        };
        if let ToTaskExecutor::FreeSlot(f) = &msg {
            if let Some(job) = self.holders.holder(f.slot_index) {
                shared.code.slot_graphs.remove(&(job, f.slot_index));
                slots.release(job, f.slot_index);
            }
        }
        if let Some(left) = self.holders.follow(&msg) {
            // The job holds no slot here any more: nothing of it stays (the JobManager sends
            // its origin again before a next task here).
            self.forget(left, shared);
        }
        if let ToTaskExecutor::DeployTask(d) = &msg {
            let job = d.execution.job;
            if let Some(why) = self.unbuildable.get(&job) {
                return fail(d, format!("cannot build the job here: {why}"));
            }
            if let Some(p) = self.plugins.get(&job) {
                match slots.graph_for(job, d.slot_index, &p.library, &p.entry, &p.args, &p.config) {
                    Ok(g) => {
                        shared.code.slot_graphs.insert((job, d.slot_index), g);
                    }
                    Err(why) => return fail(d, format!("slot {} cannot load the job's plugin: {why}", d.slot_index)),
                }
            }
        }
        local.do_send(msg);
    }
}

/// Points a plugin origin at this TaskManager's copy of the library.
fn set_plugin_path(origin: &mut riffle_api::JobOrigin, local: &std::path::Path) {
    if let riffle_api::ProgramSource::Plugin { path, .. } = &mut origin.program {
        *path = local.display().to_string();
    }
}

/// The JobManager to connect to: the configured one, or with HA the leader ZooKeeper names.
async fn leader(settings: &LinkSettings, zk: &mut Option<crate::ha::ZkClient>) -> Result<String, ClusterError> {
    let Some(config) = &settings.zookeeper else { return Ok(settings.job_manager.clone()) };
    let unavailable = |e: crate::ha::HaError| ClusterError::Unavailable(e.to_string());
    if zk.as_ref().is_none_or(|z| z.state().is_terminated()) {
        *zk = Some(crate::ha::ZkClient::connect(config).await.map_err(unavailable)?);
    }
    let Some(client) = zk.as_ref() else { return Err(ClusterError::Unavailable("no ZooKeeper client".into())) };
    match crate::ha::leader_address(client).await {
        Ok(Some(info)) => Ok(info.address),
        Ok(None) => Err(ClusterError::Unavailable(format!("no JobManager leads cluster '{}' yet", config.cluster_id))),
        Err(e) => {
            *zk = None;
            Err(unavailable(e))
        }
    }
}

async fn write_all(mut writer: ConnectionWriter<LinkMessage>, mut queue: mpsc::UnboundedReceiver<LinkMessage>) {
    while let Some(m) = queue.recv().await {
        if let Err(e) = writer.send(&m).await {
            tracing::debug!("the link to the JobManager cannot send: {e}");
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
    programs: &Arc<dyn Programs>,
    slots: &mut SlotInstances,
) -> String {
    let job_manager = reader.peer_addr().to_string();
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
    tracing::info!(%job_manager, executor = %settings.resource_id, "registered at the JobManager");
    let (to_jm, mut for_jm) = mpsc::unbounded_channel::<RemoteJobManagerMessage>();
    let remote = RemoteJobManager::new(to_jm);
    shared.directory.set_remote_job_manager(Some(remote.clone()));
    let (out, queue) = mpsc::unbounded_channel::<LinkMessage>();
    actix::spawn(write_all(writer, queue));
    // The gateway the TaskExecutor registered for itself: one probe counts its mailbox.
    let local = shared
        .directory
        .task_executors
        .get(&settings.resource_id)
        .map(|g| g.clone())
        .unwrap_or_else(|| te.clone().into());
    let mut monitor = HeartbeatMonitor::new(settings.heartbeat);
    monitor.monitor((), Instant::now());
    let mut tick = tokio::time::interval(settings.heartbeat.interval);
    // The TaskExecutor's report asks every slot, and a slot thread deep in a slow batch may
    // answer late: heartbeats go out on time with the latest report there is, and a fresh one
    // is fetched for the next.
    let latest_report = Arc::new(std::sync::Mutex::new(riffle_actors::task_executor::TaskExecutorReport::default()));
    let mut refreshing = Arc::new(());
    let mut jobs = Jobs {
        unbuildable: HashMap::new(),
        fetching: HashMap::new(),
        plugins: HashMap::new(),
        holders: Default::default(),
        retired_views: Vec::new(),
    };
    // Results of work the loop started itself (artifacts fetched from a URL), handled like
    // the JobManager's messages.
    let (local_tx, mut local_rx) = mpsc::unbounded_channel::<LinkMessage>();
    let reason = loop {
        let m = tokio::select! {
            // What arrived is read before a heartbeat deadline is judged.
            biased;
            m = reader.recv() => match m {
                Ok(Some(m)) => {
                    monitor.heard(&(), Instant::now());
                    m
                }
                Ok(None) => break "the JobManager closed the link".to_string(),
                Err(e) => break format!("the link failed: {e}"),
            },
            Some(m) = local_rx.recv() => m,
            Some(m) = for_jm.recv() => {
                let _ = out.send(LinkMessage::ForJobManager(m));
                continue;
            }
            _ = tick.tick() => {
                slots.sweep();
                if !monitor.expire(Instant::now()).is_empty() {
                    break format!("no heartbeat from the JobManager for {:?} (heartbeat.timeout)", settings.heartbeat.timeout);
                }
                // The report asks every slot, whose thread may be busy for a while: the loop
                // must not wait for it, or it would stop reading the JobManager's heartbeats.
                let _ = out.send(heartbeat(shared, &mut jobs.retired_views, &latest_report, &local, &mut refreshing, &settings.network, settings.state_budget));
                continue;
            }
        };
        match m {
            // Answered at once with ours: the JobManager's cadence (its
            // heartbeat.interval) decides how fresh its view of us is.
            LinkMessage::JobManagerHeartbeat => {
                let _ = out.send(heartbeat(
                    shared,
                    &mut jobs.retired_views,
                    &latest_report,
                    &local,
                    &mut refreshing,
                    &settings.network,
                    settings.state_budget,
                ));
            }
            LinkMessage::ProvideJob { session: s, job, mut origin, config } if s == session => {
                let digest = match &origin.program {
                    riffle_api::ProgramSource::Plugin { digest, .. } => Some(digest.clone()),
                    riffle_api::ProgramSource::Builtin(_) => None,
                };
                match digest {
                    Some(d) => match settings.artifacts.get(&d) {
                        Some(cached) => {
                            set_plugin_path(&mut origin, &cached);
                            jobs.build(job, &origin, config, programs.as_ref(), shared);
                        }
                        None => {
                            // Fetched once; the job's commands wait for it. A remote artifact (a URL) comes from
                            // where it lives, anything else from the JobManager.
                            let url = match &origin.program {
                                riffle_api::ProgramSource::Plugin { path, .. } if crate::artifacts::is_url(path) => {
                                    Some(path.clone())
                                }
                                _ => None,
                            };
                            jobs.fetching.insert(job, (origin, config, d, Vec::new()));
                            match url {
                                Some(url) => {
                                    let local_tx = local_tx.clone();
                                    let limits = settings.fetch_limits;
                                    actix::spawn(async move {
                                        let bytes = crate::artifacts::fetch_url(&url, &limits)
                                            .await
                                            .map(serde_bytes::ByteBuf::from)
                                            .map_err(Into::into);
                                        let _ = local_tx.send(LinkMessage::Artifact { job, bytes });
                                    });
                                }
                                None => {
                                    let _ = out.send(LinkMessage::FetchArtifact { job });
                                }
                            }
                        }
                    },
                    None => jobs.build(job, &origin, config, programs.as_ref(), shared),
                }
            }
            LinkMessage::Artifact { job, bytes } => {
                let Some((mut origin, config, digest, queued)) = jobs.fetching.remove(&job) else { continue };
                let stored = bytes.and_then(|b| settings.artifacts.put(&digest, &b).map_err(RuntimeError::from));
                match stored {
                    Ok(path) => {
                        tracing::info!(%job, path = %path.display(), "plugin library fetched into the artifact cache");
                        set_plugin_path(&mut origin, &path);
                        jobs.build(job, &origin, config, programs.as_ref(), shared);
                    }
                    Err(why) => {
                        tracing::warn!(%job, "cannot fetch the job's plugin library: {why}");
                        jobs.unbuildable.insert(job, format!("cannot fetch its plugin library: {why}"));
                    }
                }
                for msg in queued {
                    jobs.command(msg, &local, &remote, &settings.resource_id, slots, shared);
                }
            }
            LinkMessage::ForTaskExecutor { session: s, msg } if s == session => {
                let job = match &msg {
                    ToTaskExecutor::DeployTask(d) => Some(d.execution.job),
                    _ => None,
                };
                match job.and_then(|j| jobs.fetching.get_mut(&j)) {
                    Some((_, _, _, queued)) => queued.push(msg),
                    None => jobs.command(msg, &local, &remote, &settings.resource_id, slots, shared),
                }
            }
            LinkMessage::LogQuery { request, query } => {
                // Read off the link's task: a large file must not hold up heartbeats.
                let (dir, out) = (settings.log_dir.clone(), out.clone());
                actix::spawn(async move {
                    let answer = actix_rt::task::spawn_blocking(move || answer_log_query(dir.as_deref(), query))
                        .await
                        .unwrap_or_else(|e| Err(RuntimeError::Panicked(e.to_string())));
                    let _ = out.send(LinkMessage::LogAnswer { request, answer });
                });
            }
            LinkMessage::SplitAnswer { request, answer } => {
                remote.answer(request, riffle_actors::peers::JobManagerAnswer::Splits(answer))
            }
            LinkMessage::EndAnswer { request, answer } => {
                remote.answer(request, riffle_actors::peers::JobManagerAnswer::End(answer))
            }
            LinkMessage::ProvideJob { session: s, .. } | LinkMessage::ForTaskExecutor { session: s, .. } => {
                tracing::warn!(session = s, current = session, "dropping a command of another JobManager session");
            }
            other => tracing::warn!("ignoring an unexpected message from the JobManager: {other:?}"),
        }
    };
    remote.fail_pending(&reason);
    reason
}

#[cfg(test)]
mod tests {
    use riffle_actors::peers::{LogQuery, LogReply};
    use riffle_actors::RuntimeError;

    use super::answer_log_query;

    #[test]
    fn log_queries_are_answered_from_the_own_log_dir_only() {
        let d = tempfile::tempdir().unwrap();
        let logs = d.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        std::fs::write(logs.join("tm.log"), b"hello").unwrap();
        std::fs::write(d.path().join("secret"), b"no").unwrap();
        match answer_log_query(Some(&logs), LogQuery::List) {
            Ok(LogReply::Files(f)) => assert_eq!(f.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["tm.log"]),
            other => panic!("{other:?}"),
        }
        let read = |name: &str| LogQuery::Read { name: name.into(), offset: 1, len: 3 };
        assert_eq!(
            answer_log_query(Some(&logs), read("tm.log")),
            Ok(LogReply::Chunk { size: 5, bytes: b"ell".to_vec() })
        );
        for bad in ["../secret", "..", "/etc/passwd", "tm.log/", "missing"] {
            assert!(matches!(answer_log_query(Some(&logs), read(bad)), Err(RuntimeError::NotFound(_))), "{bad}");
        }
        assert_eq!(answer_log_query(None, LogQuery::List), Ok(LogReply::Files(vec![])));
        assert!(matches!(answer_log_query(None, read("tm.log")), Err(RuntimeError::NotFound(_))));
    }
}
