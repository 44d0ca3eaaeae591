//! A highly available JobManager: contend for leadership in ZooKeeper, and only once leading
//! start the runtime, recover the jobs the previous leader stored, and store every new job
//! before it starts. A leader that loses its leadership (its ZooKeeper session) stops the
//! process at once: it must not act for a cluster another JobManager now leads.
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
    Leader { zk: ZkClient, fence: Fence, jobs: Vec<Recovered> },
    Failed(String),
}

/// A leading JobManager: its runtime, with the jobs of the previous leader resubmitted.
pub struct LeadingJobManager {
    /// The runtime (REST and RPC endpoints included).
    pub cluster: MiniCluster,
    /// Jobs recovered from the previous leader.
    pub recovered: Vec<JobId>,
}

/// Waits until this JobManager leads the cluster of `cfg` (`high-availability: zookeeper`),
/// then starts it and recovers the stored jobs. `standby` is told when the JobManager waits.
/// The leadership is watched from then on; losing it ends the process (exit code 70).
pub fn lead(
    cfg: MiniClusterConfig,
    programs: Arc<dyn Programs>,
    mut standby: impl FnMut(&str),
) -> Result<LeadingJobManager, ClusterError> {
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
    let (standby_server, leader_url) = redirect.unzip();
    let (tx, rx) = std::sync::mpsc::channel::<Event>();
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
            runtime.block_on(contend(zk_config, address, rest_url, leader_url, tx));
        })
        .map_err(|e| ClusterError::Unavailable(e.to_string()))?;
    let (zk, fence, jobs) = loop {
        match rx.recv() {
            Ok(Event::Standby(node)) => standby(&node),
            Ok(Event::Leader { zk, fence, jobs }) => break (zk, fence, jobs),
            Ok(Event::Failed(why)) => return Err(ClusterError::Unavailable(why)),
            Err(_) => return Err(ClusterError::Unavailable("the HA thread ended".into())),
        }
    };
    // The leader's own REST API takes the port over.
    if let Some(s) = standby_server {
        s.stop_now();
    }
    let cluster_config = cfg.config.clone();
    let cluster = MiniCluster::start(cfg)?;
    let histories = jobs.iter().filter_map(|(job, _, _, h)| Some((*job, h.clone()?))).collect();
    cluster.shared().jobs.set_job_store(Arc::new(ZooKeeperJobStore::new(&zk, fence, histories)));
    let mut recovered = Vec::new();
    for (job, stored, checkpoint, _) in jobs {
        match recover(&cluster, &cluster_config, programs.as_ref(), job, &stored, checkpoint) {
            Ok(()) => recovered.push(job),
            Err(e) => tracing::error!(%job, name = %stored.name, "cannot recover the job: {e}"),
        }
    }
    Ok(LeadingJobManager { cluster, recovered })
}

/// The standby's redirect server, and where it keeps the leader's REST URL.
type StandbyRest = (riffle_web::server::RestServer, riffle_web::standby::LeaderUrl);

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
    let server = match riffle_web::server::RestServer::start_standby(rest, leader_url.clone()) {
        Ok(s) => Some((s, leader_url)),
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

/// The HA thread: connect (retrying), contend, report leadership with the stored jobs, then
/// watch the leadership and end the process when it is lost.
async fn contend(
    config: super::ZooKeeperHaConfig,
    address: String,
    rest_url: Option<String>,
    leader_url: Option<riffle_web::standby::LeaderUrl>,
    tx: std::sync::mpsc::Sender<Event>,
) {
    let mut pause = Duration::from_millis(200);
    let (zk, election) = loop {
        let attempt = async {
            let zk = ZkClient::connect(&config).await?;
            let election = LeaderElection::start_publishing(&zk, &address, rest_url.as_deref()).await?;
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
        if let Some(url) = &leader_url {
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
                return;
            }
        }
    };
    tracing::info!(node = %election.node_path(), "this JobManager leads the cluster");
    let store = JobGraphStore::new(&zk);
    let checkpoints = CompletedCheckpointStore::new(&zk);
    let histories = ExceptionHistoryStore::new(&zk);
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
    let _ = tx.send(Event::Leader { zk: zk.clone(), fence, jobs });
    let mut leadership = election.leadership();
    // A dropped connection (a ZooKeeper member went away) suspends the leadership until the
    // client reaches another member within the session; only a session that is gone, or a
    // suspension long enough that the servers may have ended the session (two thirds of its
    // timeout, measured from the drop), deposes this JobManager. It then stops at once.
    let grace = zk.session_timeout() * 2 / 3;
    loop {
        if leadership.changed().await.is_err() {
            depose("its ZooKeeper session or election node is gone");
        }
        if leadership.borrow().is_leader() {
            continue;
        }
        tracing::warn!(
            "leadership suspended (disconnected from ZooKeeper); waiting {grace:?} for the session to resume"
        );
        match tokio::time::timeout(grace, leadership.wait_for(Leadership::is_leader)).await {
            Ok(Ok(_)) => tracing::info!("leadership resumed"),
            Ok(Err(_)) => depose("its ZooKeeper session or election node is gone"),
            Err(_) => depose(&format!("it stayed disconnected from ZooKeeper for {grace:?}")),
        }
    }
}

fn depose(why: &str) -> ! {
    tracing::error!("this JobManager is no longer the leader: {why}; stopping");
    eprintln!("error: this JobManager is no longer the leader ({why}); stopping");
    std::process::exit(70);
}
