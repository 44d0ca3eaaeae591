//! A highly available JobManager: contend for leadership in ZooKeeper, and only once leading
//! start the runtime, recover the jobs the previous leader stored, and store every new job
//! before it starts. A leader that loses its leadership (its ZooKeeper session) must not act
//! for a cluster another JobManager now leads: it suspends its jobs (SUSPENDED: subtasks
//! cancelled, checkpointing stopped, nothing of the jobs' HA data removed), stops its runtime
//! (REST API, RPC endpoint, actors), serves the standby redirect again and contends anew with
//! a fresh ZooKeeper session. Leading again, it starts a fresh runtime and recovers the stored
//! jobs like any new leader (Flink's JobMaster suspension).
//!
//! A job is stored as its origin (program or plugin, arguments, parallelism) and its
//! configuration (see `riffle_api::origin`); every completed checkpoint's directory is
//! published too (fenced, older pointers removed). The next leader builds the job again and
//! resumes it from the published checkpoint — or, if that one is gone, from the newest usable
//! one in the job's checkpoint directory (`state.checkpoints.dir/<job-id>`) — under the same
//! job id. Each job's exception history is stored as it changes (off the Dispatcher's path, the
//! latest history of a job written by one task at a time) and the next leader's Dispatcher
//! continues from it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use riffle_actors::exception_history::ExceptionHistorySnapshot;
use riffle_actors::peers::JobStore;
use riffle_actors::{JobId, RuntimeError};
use riffle_api::{Configuration, JobGraph, JobOrigin, Programs};
use serde::{Deserialize, Serialize};

use super::{
    CheckpointIdCounter, CompletedCheckpointStore, ExceptionHistoryStore, Fence, HaConfig, JobGraphStore,
    LeaderElection, Leadership, ZkClient,
};
use crate::error::ClusterError;
use crate::minicluster::{MiniCluster, MiniClusterConfig};

/// What the leader stores of a job for its successor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredJob {
    /// The job's name (for the logs).
    pub name: String,
    /// How to build its graph.
    pub origin: JobOrigin,
    /// Its job-level configuration.
    pub config: Configuration,
}

/// The leader's job store: job specs in ZooKeeper + `high-availability.storageDir`, written
/// only while the leader's fence holds.
pub struct ZooKeeperJobStore {
    zk: ZkClient,
    jobs: JobGraphStore,
    checkpoints: CompletedCheckpointStore,
    histories: ExceptionHistoryStore,
    fence: Fence,
    /// One writer per job whose history changed under this leader.
    history_writers: Mutex<HashMap<JobId, HistoryWriter>>,
    /// The histories of the recovered jobs, until their Dispatcher takes them.
    recovered_histories: Mutex<HashMap<JobId, ExceptionHistorySnapshot>>,
}

impl ZooKeeperJobStore {
    fn new(zk: &ZkClient, fence: Fence, recovered_histories: HashMap<JobId, ExceptionHistorySnapshot>) -> Self {
        Self {
            zk: zk.clone(),
            jobs: JobGraphStore::new(zk),
            checkpoints: CompletedCheckpointStore::new(zk),
            histories: ExceptionHistoryStore::new(zk),
            fence,
            history_writers: Mutex::default(),
            recovered_histories: Mutex::new(recovered_histories),
        }
    }
}

/// A job's history writer: the task, and the latest history waiting for it. A burst of
/// failures costs one write in flight and one after it, whatever its length.
struct HistoryWriter {
    latest: tokio::sync::watch::Sender<ExceptionHistorySnapshot>,
    task: tokio::task::JoinHandle<()>,
}

/// Writes the latest history of `job` until its sender goes (the job ended), fenced: a
/// deposed leader's writes fail, and it stops anyway.
async fn write_histories(
    store: ExceptionHistoryStore,
    fence: Fence,
    job: JobId,
    mut latest: tokio::sync::watch::Receiver<ExceptionHistorySnapshot>,
) {
    loop {
        let history = latest.borrow_and_update().clone();
        if let Err(e) = store.put(&fence, job, &history).await {
            tracing::warn!(%job, "cannot store the exception history for the next leader: {e}");
        }
        if latest.changed().await.is_err() {
            return;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// An HA error as the runtime carries it, with its domain.
fn ha_runtime_error(e: super::HaError) -> RuntimeError {
    RuntimeError::capture(&e, e.domain(), e.is_retryable())
}

impl JobStore for ZooKeeperJobStore {
    fn job_submitted(
        &self,
        job: JobId,
        graph: Arc<JobGraph>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), RuntimeError>>>> {
        let (jobs, fence) = (self.jobs.clone(), self.fence.clone());
        Box::pin(async move {
            let origin = graph.origin().cloned().ok_or_else(|| RuntimeError::Caused {
                message: format!(
                    "job '{}' was built by code only this process has; a highly available cluster runs jobs of \
                         programs and plugins, which the next leader can build again",
                    graph.name
                ),
                causes: vec![],
                domain: riffle_api::ErrorDomain::User,
                retryable: false,
            })?;
            let stored = StoredJob { name: graph.name.clone(), origin, config: graph.config.clone() };
            let bytes = rmp_serde::to_vec(&stored).map_err(|e| RuntimeError::Caused {
                message: format!("cannot encode the job: {e}"),
                causes: vec![],
                domain: riffle_api::ErrorDomain::Internal,
                retryable: false,
            })?;
            jobs.put(&fence, job, &bytes).await.map_err(ha_runtime_error)
        })
    }

    fn next_checkpoint_id(
        &self,
        job: JobId,
        at_least: u64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64, RuntimeError>>>> {
        let (counter, fence) = (CheckpointIdCounter::new(&self.zk, job), self.fence.clone());
        Box::pin(async move { counter.get_and_increment_at_least(&fence, at_least).await.map_err(ha_runtime_error) })
    }

    fn job_terminated(&self, job: JobId) {
        let (jobs, checkpoints, fence) = (self.jobs.clone(), self.checkpoints.clone(), self.fence.clone());
        let histories = self.histories.clone();
        let writer = lock(&self.history_writers).remove(&job);
        lock(&self.recovered_histories).remove(&job);
        let counter = CheckpointIdCounter::new(&self.zk, job);
        actix::spawn(async move {
            // The history goes first (a crash after it leaves a job without history, never a
            // history without job), once the writer finished: no write lands after the removal.
            if let Some(HistoryWriter { latest, task }) = writer {
                drop(latest);
                let _ = task.await;
            }
            if let Err(e) = histories.remove(&fence, job).await {
                tracing::warn!(%job, "cannot remove the ended job's exception history from ZooKeeper: {e}");
            }
            if let Err(e) = counter.remove(&fence).await {
                tracing::warn!(%job, "cannot remove the ended job's checkpoint id counter from ZooKeeper: {e}");
            }
            if let Err(e) = jobs.remove(&fence, job).await {
                tracing::warn!(%job, "cannot remove the ended job from ZooKeeper: {e}");
            }
            if let Err(e) = checkpoints.remove_job(&fence, job).await {
                tracing::warn!(%job, "cannot remove the ended job's checkpoint pointers from ZooKeeper: {e}");
            }
        });
    }

    fn checkpoint_completed(&self, job: JobId, id: u64, dir: &std::path::Path) {
        let (checkpoints, fence) = (self.checkpoints.clone(), self.fence.clone());
        let path = dir.display().to_string();
        actix::spawn(async move {
            // Only this leader's checkpoints are published (fenced); older pointers go.
            if let Err(e) = checkpoints.put(&fence, job, id, path.as_bytes()).await {
                tracing::warn!(%job, checkpoint = id, "cannot publish the checkpoint in ZooKeeper: {e}");
                return;
            }
            if let Ok(ids) = checkpoints.list(job).await {
                for old in ids.into_iter().filter(|o| *o < id) {
                    let _ = checkpoints.remove(&fence, job, old).await;
                }
            }
        });
    }

    fn exceptions_changed(&self, job: JobId, history: ExceptionHistorySnapshot) {
        let mut writers = lock(&self.history_writers);
        if let Some(w) = writers.get(&job).filter(|w| !w.task.is_finished()) {
            w.latest.send_replace(history);
            return;
        }
        let (latest, rx) = tokio::sync::watch::channel(history);
        let task = actix::spawn(write_histories(self.histories.clone(), self.fence.clone(), job, rx));
        writers.insert(job, HistoryWriter { latest, task });
    }

    fn recovered_exceptions(&self, job: JobId) -> Option<ExceptionHistorySnapshot> {
        lock(&self.recovered_histories).remove(&job)
    }
}

/// A stored job, the directory of its latest published checkpoint, and its exception history.
type Recovered = (JobId, StoredJob, Option<PathBuf>, Option<ExceptionHistorySnapshot>);

enum Event {
    Standby(String),
    Leader {
        zk: ZkClient,
        fence: Fence,
        jobs: Vec<Recovered>,
    },
    /// The leadership is lost (why); the HA thread waits for the runtime to stop before it
    /// contends again.
    Deposed(String),
    Failed(String),
}

/// What a highly available JobManager is doing, for its caller to show.
pub enum Role<'a> {
    /// Waiting for the leadership (its election node).
    Standby(&'a str),
    /// Leading: its runtime runs, the stored jobs were resubmitted. `again` after a
    /// suspension.
    Leading {
        /// The runtime and the recovered jobs.
        leader: &'a LeadingJobManager,
        /// Not the first time this process leads.
        again: bool,
    },
    /// It lost its leadership: these jobs were suspended, the runtime stopped; it contends
    /// again next.
    Suspended(&'a [JobId]),
}

/// A leading JobManager: its runtime, with the jobs of the previous leader resubmitted.
pub struct LeadingJobManager {
    /// The runtime (REST and RPC endpoints included).
    pub cluster: MiniCluster,
    /// Jobs recovered from the previous leader.
    pub recovered: Vec<JobId>,
}

/// Runs a highly available JobManager for the cluster of `cfg` (`high-availability:
/// zookeeper`) until the process ends: stand by, lead (start the runtime, recover the stored
/// jobs), and when the leadership is lost suspend every job, stop the runtime and stand by
/// again. `on_role` is told each change. Returns only with an error: bad settings, or a
/// runtime that cannot start (its ports taken).
pub fn serve(
    cfg: MiniClusterConfig,
    programs: Arc<dyn Programs>,
    mut on_role: impl FnMut(Role<'_>),
) -> Result<std::convert::Infallible, ClusterError> {
    let zk_config = HaConfig::from_config(&cfg.config).map_err(ha_error)?.require_zookeeper().map_err(ha_error)?;
    let rpc = crate::remote::jobmanager_side::RpcSettings::from_config(&cfg.config)?;
    if rpc.advertised_port == 0 {
        return Err(ClusterError::Config(riffle_api::ConfigError {
            key: "jobmanager.rpc.port".into(),
            value: "0".into(),
            reason: "a highly available JobManager publishes its address: give it a fixed port".into(),
        }));
    }
    let address = format!("{}:{}", rpc.advertised_host, rpc.advertised_port);
    // The REST API this JobManager will serve when it leads, published with its address; until
    // then its REST port redirects to the leader's.
    let (rest_url, redirect) = match cfg.rest {
        true => standby_rest(&cfg.config, &rpc.advertised_host)?,
        false => (None, None),
    };
    let (mut standby_server, leader_url) = match redirect {
        Some(StandbyRest { server, leader, settings }) => (Some(server), Some((leader, settings))),
        None => (None, None),
    };
    let watched_url = leader_url.as_ref().map(|(url, _)| url.clone());
    let (tx, rx) = std::sync::mpsc::channel::<Event>();
    let (resume, resumed) = tokio::sync::mpsc::unbounded_channel::<()>();
    std::thread::Builder::new()
        .name("riffle-ha".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.send(Event::Failed(format!("cannot start the HA runtime: {e}")));
                    return;
                }
            };
            runtime.block_on(contend(zk_config, address, rest_url, watched_url, tx, resumed));
        })
        .map_err(|e| ClusterError::Unavailable(e.to_string()))?;
    let mut led = false;
    loop {
        let (zk, fence, jobs) = loop {
            match rx.recv() {
                Ok(Event::Standby(node)) => on_role(Role::Standby(&node)),
                Ok(Event::Leader { zk, fence, jobs }) => break (zk, fence, jobs),
                Ok(Event::Deposed(_)) => {}
                Ok(Event::Failed(why)) => return Err(ClusterError::Unavailable(why)),
                Err(_) => return Err(ClusterError::Unavailable("the HA thread ended".into())),
            }
        };
        // The leader's own REST API takes the port over.
        if let Some(s) = standby_server.take() {
            s.stop_now();
        }
        if led {
            tracing::info!(jobs = jobs.len(), "leading again: starting a fresh runtime and recovering the stored jobs");
        }
        // A JobMaster ends at its cancel timeout at the latest; the margin covers the rest.
        let bound = cfg.config.get(&crate::minicluster::TASK_CANCELLATION_TIMEOUT)? + Duration::from_secs(10);
        let leader = start_leading(cfg.clone(), programs.as_ref(), zk, fence, jobs)?;
        on_role(Role::Leading { leader: &leader, again: led });
        led = true;
        let why = loop {
            match rx.recv() {
                Ok(Event::Deposed(why)) => break why,
                Ok(Event::Failed(why)) => return Err(ClusterError::Unavailable(why)),
                Ok(_) => {}
                Err(_) => return Err(ClusterError::Unavailable("the HA thread ended".into())),
            }
        };
        let suspended = step_down(leader, &why, bound);
        // Back to standby: the redirect server takes the REST port again (the leader's own
        // REST API stopped with the runtime), pointing nowhere until the HA thread reads the
        // new leader.
        if let Some((url, settings)) = &leader_url {
            url.set(None);
            standby_server = match riffle_web::server::RestServer::start_standby(settings.clone(), url.clone()) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!("the standby REST server cannot start again ({e}); clients must find the leader");
                    None
                }
            };
        }
        on_role(Role::Suspended(&suspended));
        if resume.send(()).is_err() {
            return Err(ClusterError::Unavailable("the HA thread ended".into()));
        }
    }
}

/// Starts the leader's runtime with the job store and resubmits the stored jobs.
fn start_leading(
    cfg: MiniClusterConfig,
    programs: &dyn Programs,
    zk: ZkClient,
    fence: Fence,
    jobs: Vec<Recovered>,
) -> Result<LeadingJobManager, ClusterError> {
    let cluster_config = cfg.config.clone();
    let cluster = MiniCluster::start(cfg)?;
    let histories = jobs.iter().filter_map(|(job, _, _, h)| Some((*job, h.clone()?))).collect();
    cluster.shared().jobs.set_job_store(Arc::new(ZooKeeperJobStore::new(&zk, fence, histories)));
    let mut recovered = Vec::new();
    for (job, stored, checkpoint, _) in jobs {
        match recover(&cluster, &cluster_config, programs, job, &stored, checkpoint) {
            Ok(()) => recovered.push(job),
            Err(e) => tracing::error!(%job, name = %stored.name, "cannot recover the job: {e}"),
        }
    }
    Ok(LeadingJobManager { cluster, recovered })
}

/// A deposed leader's way out: suspend every job (nothing of their HA data is removed; a job
/// whose JobMaster does not end in time is left behind, logged), then stop the runtime.
/// Returns the suspended jobs.
fn step_down(leader: LeadingJobManager, why: &str, bound: Duration) -> Vec<JobId> {
    let running: Vec<JobId> = match leader.cluster.list_jobs() {
        Ok(jobs) => jobs.into_iter().filter(|j| !j.status.is_terminal()).map(|j| j.job_id).collect(),
        Err(e) => {
            tracing::warn!("cannot list the jobs to suspend: {e}");
            Vec::new()
        }
    };
    tracing::warn!("leadership lost ({why}): suspending {} jobs", running.len());
    let suspended = match leader.cluster.suspend_all_jobs(bound) {
        Ok(jobs) => jobs,
        Err(e) => {
            tracing::warn!("the jobs were not all suspended ({e}); stopping the runtime anyway");
            running
        }
    };
    for job in &suspended {
        tracing::info!(%job, "job suspended; the next leader recovers it");
    }
    leader.cluster.shutdown();
    tracing::info!("the runtime stopped; standing by for the leadership again");
    suspended
}

/// The standby's redirect server, where it keeps the leader's REST URL, and its settings (to
/// serve it again after a suspension).
struct StandbyRest {
    server: riffle_web::server::RestServer,
    leader: riffle_web::standby::LeaderUrl,
    settings: riffle_web::config::RestConfig,
}

/// This JobManager's REST URL as clients reach it (`rest.address`, else the advertised RPC
/// host; `rest.port`), and the standby server that redirects to the leader's meanwhile. No URL
/// with `rest.port: 0` (nobody could be sent to a port chosen at random later).
fn standby_rest(config: &Configuration, rpc_host: &str) -> Result<(Option<String>, Option<StandbyRest>), ClusterError> {
    let rest = riffle_web::config::RestConfig::from_config(config)
        .map_err(|e| ClusterError::Unavailable(format!("REST settings: {e}")))?;
    let advertised_port = config.get(&riffle_web::config::PORT).map_err(ClusterError::Config)?;
    if advertised_port == 0 || rest.port == 0 {
        return Ok((None, None));
    }
    let leader_url = riffle_web::standby::LeaderUrl::default();
    let address = config.get(&riffle_web::config::ADDRESS).map_err(ClusterError::Config)?;
    let host = address.as_deref().unwrap_or(rpc_host);
    let url = format!("{}://{host}:{advertised_port}/", if rest.tls.is_some() { "https" } else { "http" });
    let server = match riffle_web::server::RestServer::start_standby(rest.clone(), leader_url.clone()) {
        Ok(server) => Some(StandbyRest { server, leader: leader_url, settings: rest }),
        Err(e) => {
            tracing::warn!("the standby REST server cannot start ({e}); clients must find the leader themselves");
            None
        }
    };
    Ok((Some(url), server))
}

fn ha_error(e: super::HaError) -> ClusterError {
    ClusterError::Unavailable(e.to_string())
}

/// Builds a stored job again and resubmits it, resuming from its newest usable checkpoint.
fn recover(
    cluster: &MiniCluster,
    cluster_config: &Configuration,
    programs: &dyn Programs,
    job: JobId,
    stored: &StoredJob,
    checkpoint: Option<PathBuf>,
) -> Result<(), ClusterError> {
    // The job's options as it was submitted with, over what its program sets.
    let mut graph = programs.build(&stored.origin.clone().with_config(stored.config.clone()))?;
    let mut merged = cluster_config.clone();
    merged.merge(&graph.config);
    // The checkpoint the previous leader published; if it is gone (retention removed it after
    // a newer one completed whose pointer did not make it), the newest usable one on disk.
    let published = checkpoint.filter(|c| c.join("_metadata").is_file());
    let job_dir = merged
        .get(&riffle_actors::checkpoint_coordinator::CHECKPOINTS_DIR)
        .map_err(ClusterError::Config)?
        .map(|d| PathBuf::from(d).join(job.to_string()));
    match (published, job_dir.filter(|d| d.is_dir())) {
        (Some(c), _) => {
            tracing::info!(%job, checkpoint = %c.display(), "recovering the job from its published checkpoint");
            graph.config.set("execution.savepoint.path", c.display().to_string());
        }
        (None, Some(d)) => {
            tracing::info!(%job, dir = %d.display(), "recovering the job from its newest checkpoint on disk");
            graph.config.set("execution.savepoint.path", d.display().to_string());
        }
        (None, None) => tracing::info!(%job, "recovering the job from the start (it has no checkpoint)"),
    }
    tracing::info!(%job, name = %stored.name, "recovering a job of the previous leader");
    cluster.submit_with_id(job, graph)?;
    Ok(())
}

/// The HA thread: contend, report leadership with the stored jobs, watch it; when it is lost
/// report that and, once the runtime stopped (`resume`), contend again with a new session.
async fn contend(
    config: super::ZooKeeperHaConfig,
    address: String,
    rest_url: Option<String>,
    leader_url: Option<riffle_web::standby::LeaderUrl>,
    tx: std::sync::mpsc::Sender<Event>,
    mut resume: tokio::sync::mpsc::UnboundedReceiver<()>,
) {
    loop {
        let Some(why) = contend_once(&config, &address, rest_url.as_deref(), leader_url.as_ref(), &tx).await else {
            return;
        };
        tracing::error!("this JobManager is no longer the leader: {why}; suspending its jobs");
        if tx.send(Event::Deposed(why)).is_err() || resume.recv().await.is_none() {
            return;
        }
    }
}

/// One term: connect (retrying), contend, report leadership with the stored jobs, then watch
/// the leadership. Returns why it was lost (the election left, the session closed), or `None`
/// when the election failed ([`Event::Failed`] sent).
async fn contend_once(
    config: &super::ZooKeeperHaConfig,
    address: &str,
    rest_url: Option<&str>,
    leader_url: Option<&riffle_web::standby::LeaderUrl>,
    tx: &std::sync::mpsc::Sender<Event>,
) -> Option<String> {
    let mut pause = Duration::from_millis(200);
    let (zk, election) = loop {
        let attempt = async {
            let zk = ZkClient::connect(config).await?;
            let election = LeaderElection::start_publishing(&zk, address, rest_url).await?;
            Ok::<_, super::HaError>((zk, election))
        };
        match attempt.await {
            Ok(pair) => break pair,
            Err(e) => {
                tracing::warn!(quorum = %config.quorum, "ZooKeeper is not usable: {e}; retrying in {pause:?}");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    };
    let _ = tx.send(Event::Standby(election.node_path().to_string()));
    // A standby with a redirect server keeps it pointed at the current leader (read every
    // 500 ms); without one it only waits.
    let wait = if leader_url.is_some() { Duration::from_millis(500) } else { Duration::from_secs(3600) };
    let fence = loop {
        if let Some(url) = leader_url {
            match super::leader_address(&zk).await {
                Ok(leader) => url.set(leader.and_then(|l| l.rest_url)),
                Err(e) => tracing::debug!("cannot read the leader's address: {e}"),
            }
        }
        match election.wait_for_leadership(wait).await {
            Ok(f) => break f,
            Err(super::HaError::Timeout { .. }) => continue,
            Err(e) => {
                let _ = tx.send(Event::Failed(format!("the leader election ended: {e}")));
                return None;
            }
        }
    };
    tracing::info!(node = %election.node_path(), "this JobManager leads the cluster");
    let jobs = stored_jobs(&zk).await;
    let _ = tx.send(Event::Leader { zk: zk.clone(), fence, jobs });
    let why = watch(&zk, &election).await;
    // Leave the election (a session still alive would keep the node, and the others waiting,
    // until it expires); bounded, and a session that is gone has nothing to resign.
    if let Err(e) = election.resign().await {
        tracing::debug!("resigning from the lost election: {e}");
    }
    Some(why)
}

/// The jobs the previous leader stored, with their published checkpoints and histories.
async fn stored_jobs(zk: &ZkClient) -> Vec<Recovered> {
    let store = JobGraphStore::new(zk);
    let checkpoints = CompletedCheckpointStore::new(zk);
    let histories = ExceptionHistoryStore::new(zk);
    let mut jobs = Vec::new();
    match store.list().await {
        Ok(ids) => {
            for id in ids {
                let latest = match checkpoints.latest(id).await {
                    Ok(Some((_, bytes))) => String::from_utf8(bytes).ok().map(PathBuf::from),
                    Ok(None) => None,
                    Err(e) => {
                        tracing::warn!(job = %id, "cannot read the job's published checkpoint: {e}");
                        None
                    }
                };
                // A history that cannot be read is lost, not a reason to leave the job behind.
                let history = histories.get(id).await.unwrap_or_else(|e| {
                    tracing::warn!(job = %id, "cannot read the job's exception history: {e}");
                    None
                });
                match store.get(id).await {
                    Ok(Some(bytes)) => match rmp_serde::from_slice::<StoredJob>(&bytes) {
                        Ok(s) => jobs.push((id, s, latest, history)),
                        Err(e) => tracing::error!(job = %id, "a stored job is unreadable: {e}"),
                    },
                    Ok(None) => {}
                    Err(e) => tracing::error!(job = %id, "cannot read a stored job: {e}"),
                }
            }
        }
        Err(e) => tracing::error!("cannot list the stored jobs: {e}"),
    }
    jobs
}

/// Watches a leader's leadership until it is lost; returns why. A dropped connection (a
/// ZooKeeper member went away) suspends the leadership until the client reaches another
/// member within the session; only a session that is gone, or a suspension long enough that
/// the servers may have ended the session (two thirds of its timeout, measured from the
/// drop), deposes this JobManager.
async fn watch(zk: &ZkClient, election: &LeaderElection) -> String {
    const GONE: &str = "its ZooKeeper session or election node is gone";
    let mut leadership = election.leadership();
    let grace = zk.session_timeout() * 2 / 3;
    loop {
        if leadership.changed().await.is_err() {
            return GONE.into();
        }
        if leadership.borrow().is_leader() {
            continue;
        }
        tracing::warn!(
            "leadership suspended (disconnected from ZooKeeper); waiting {grace:?} for the session to resume"
        );
        match tokio::time::timeout(grace, leadership.wait_for(Leadership::is_leader)).await {
            Ok(Ok(_)) => tracing::info!("leadership resumed"),
            Ok(Err(_)) => return GONE.into(),
            Err(_) => return format!("it stayed disconnected from ZooKeeper for {grace:?}"),
        }
    }
}
