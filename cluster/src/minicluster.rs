//! The MiniCluster: the whole runtime — Dispatcher, ResourceManager and N TaskExecutors with
//! M slots each — inside the caller's process.
//!
//! It runs its actors on an actix system of its own (a thread named `riffle-jobmanager` plus
//! one thread per slot), so it works whether the caller uses tokio, actix, or no runtime at
//! all: the `*_async` methods are plain futures any executor can await, the others block.

use std::path::PathBuf;
use std::sync::mpsc::sync_channel;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use actix::prelude::*;
use riffle_actors::dispatcher::{
    CancelJob, Dispatcher, GetExceptionHistory, JobOverview, ListJobs, RequestJobResult, SubmitJob,
};
use riffle_actors::exception_history::ExceptionPage;
use riffle_actors::gateway::{GetSlotReport, SlotReport};
use riffle_actors::job_manager::{GetAddrs, JobManager, StopJobManager};
use riffle_actors::job_master::{AfterSavepoint, CheckpointRequest, JobMasterSettings, SavepointRequest};
use riffle_actors::mailbox::Probed;
use riffle_actors::task_executor::{
    default_slot_strategy, GetTaskExecutorReport, StopTaskExecutor, TaskExecutor, TaskExecutorReport,
    TaskExecutorSettings,
};
use riffle_actors::{JobId, JobResult, ResourceId, RuntimeShared};
use riffle_api::metrics::JobCounters;
use riffle_api::{ConfigOption, Configuration, Group, JobGraph, OptionInfo};

use crate::error::ClusterError;

/// What to start.
#[derive(Debug, Clone)]
pub struct MiniClusterConfig {
    /// Number of TaskExecutors.
    pub task_executors: u32,
    /// Slots per TaskExecutor (`taskmanager.numberOfTaskSlots`).
    pub slots_per_executor: u32,
    /// Cluster configuration (Flink key names).
    pub config: Configuration,
    /// Whether to serve the REST API and web UI (`rest.bind-address`, `rest.port`).
    pub rest: bool,
    /// What the REST API builds jobs with: programs by name and uploaded plugins (none: plugin
    /// uploads only, through a loader of this cluster's own).
    pub programs: Option<Arc<dyn riffle_api::Programs>>,
    /// Whether to accept TaskManager processes on the RPC address (`jobmanager.rpc.*`,
    /// `jobmanager.bind-host`); with it, `task_executors` may be 0.
    pub rpc: bool,
    /// Every option riffle reads, to check a REST submission's `flinkConfiguration` against
    /// (none: the options of the crates this one knows, [`crate::config_registry`]).
    pub config_registry: Option<riffle_api::config_keys::Registry>,
}

impl MiniClusterConfig {
    /// `task_executors` executors with `slots_per_executor` slots each, default settings.
    pub fn new(task_executors: u32, slots_per_executor: u32) -> Self {
        Self {
            task_executors,
            slots_per_executor,
            config: Configuration::new(),
            rest: false,
            programs: None,
            rpc: false,
            config_registry: None,
        }
    }

    /// Also accepts TaskManager processes (a JobManager process: `riffle jobmanager`).
    pub fn with_rpc(mut self) -> Self {
        self.rpc = true;
        self
    }

    /// Also serves the REST API and the web UI.
    pub fn with_rest(mut self) -> Self {
        self.rest = true;
        self
    }

    /// What the REST API builds jobs with: the programs users may submit by name, and
    /// uploaded plugins' jobs.
    pub fn with_programs(mut self, programs: Arc<dyn riffle_api::Programs>) -> Self {
        self.programs = Some(programs);
        self
    }

    /// Checks REST submissions' `flinkConfiguration` against `registry` (the `riffle` binary
    /// hands it every option it reads, `riffle::config_options()`).
    pub fn with_config_registry(mut self, registry: riffle_api::config_keys::Registry) -> Self {
        self.config_registry = Some(registry);
        self
    }

    /// Reads `taskmanager.numberOfTaskSlots` and `local.number-taskmanager` from `config`.
    pub fn from_config(config: Configuration) -> Result<Self, ClusterError> {
        let slots = config.get(&NUMBER_OF_TASK_SLOTS)?;
        let tms = config.get(&LOCAL_NUMBER_TASKMANAGER)?;
        Ok(Self {
            task_executors: tms,
            slots_per_executor: slots,
            config,
            rest: false,
            programs: None,
            rpc: false,
            config_registry: None,
        })
    }
}

/// `taskmanager.numberOfTaskSlots`: slots of each TaskExecutor (embedded or a TaskManager
/// process).
pub const NUMBER_OF_TASK_SLOTS: ConfigOption<u32> =
    ConfigOption::new(Group::Processes, "taskmanager.numberOfTaskSlots", 1, "slots per TaskManager");
/// `local.number-taskmanager`.
pub const LOCAL_NUMBER_TASKMANAGER: ConfigOption<u32> =
    ConfigOption::new(Group::Processes, "local.number-taskmanager", 1, "TaskManagers of an embedded cluster");
/// `slotmanager.number-of-slots.max`.
pub const MAX_SLOTS: ConfigOption<Option<u32>> =
    ConfigOption::optional(Group::Scheduling, "slotmanager.number-of-slots.max", "slots the cluster hands out at most");
/// `slot.request.timeout`.
pub const SLOT_REQUEST_TIMEOUT: ConfigOption<Duration> = ConfigOption::new(
    Group::Scheduling,
    "slot.request.timeout",
    Duration::from_secs(300),
    "how long a job waits for slots",
);
/// `task.cancellation.timeout`.
pub const TASK_CANCELLATION_TIMEOUT: ConfigOption<Duration> = ConfigOption::new(
    Group::Scheduling,
    "task.cancellation.timeout",
    Duration::from_secs(30),
    "how long a cancelled subtask may take to stop",
);
/// `jobmanager.exception-history-size`.
pub const EXCEPTION_HISTORY_SIZE: ConfigOption<usize> = ConfigOption::new(
    Group::Scheduling,
    "jobmanager.exception-history-size",
    riffle_actors::exception_history::DEFAULT_EXCEPTION_HISTORY_SIZE,
    "failures kept in a job's exception history",
);
/// `execution.batch-size`.
pub const BATCH_SIZE: ConfigOption<usize> = ConfigOption::new(
    Group::Pipeline,
    "execution.batch-size",
    riffle_api::environment::DEFAULT_BATCH_SIZE,
    "records per batch on data channels",
);
/// `execution.buffer-timeout`.
pub const BUFFER_TIMEOUT: ConfigOption<Duration> = ConfigOption::new(
    Group::Pipeline,
    "execution.buffer-timeout",
    Duration::from_millis(100),
    "longest a partial batch waits before it is sent",
);
/// `taskmanager.network.buffers-per-channel`.
pub const BUFFERS_PER_CHANNEL: ConfigOption<usize> = ConfigOption::new(
    Group::Network,
    "taskmanager.network.buffers-per-channel",
    riffle_actors::exchange::DEFAULT_CHANNEL_CAPACITY,
    "batches a data channel holds at most (a network channel's credit); buffer debloating uses less of it for a slow consumer",
);
/// `taskmanager.network.memory.buffer-debloat.enabled` (on in riffle; off in Flink, which
/// has no slot threads shared by a producer and a consumer).
pub const DEBLOAT_ENABLED: ConfigOption<bool> = ConfigOption::new(
    Group::Network,
    "taskmanager.network.memory.buffer-debloat.enabled",
    true,
    "hold each output channel to the batches its consumer takes in the debloat target",
);
/// `taskmanager.network.memory.buffer-debloat.target`.
pub const DEBLOAT_TARGET: ConfigOption<Duration> = ConfigOption::new(
    Group::Network,
    "taskmanager.network.memory.buffer-debloat.target",
    Duration::from_secs(1),
    "how long a channel's consumer should take for the data the channel holds",
);
/// `taskmanager.network.memory.buffer-debloat.period`.
pub const DEBLOAT_PERIOD: ConfigOption<Duration> = ConfigOption::new(
    Group::Network,
    "taskmanager.network.memory.buffer-debloat.period",
    Duration::from_millis(200),
    "how often each channel's consumption rate is measured",
);

/// The options of an embedded cluster and of its JobManager and TaskExecutors.
pub(crate) const OPTIONS: &[&dyn OptionInfo] = &[
    &BATCH_SIZE,
    &BUFFER_TIMEOUT,
    &EXCEPTION_HISTORY_SIZE,
    &SLOT_REQUEST_TIMEOUT,
    &MAX_SLOTS,
    &TASK_CANCELLATION_TIMEOUT,
    &NUMBER_OF_TASK_SLOTS,
    &LOCAL_NUMBER_TASKMANAGER,
    &BUFFERS_PER_CHANNEL,
    &DEBLOAT_ENABLED,
    &DEBLOAT_TARGET,
    &DEBLOAT_PERIOD,
];

struct Actors {
    /// The cluster's own actix system, when it has one.
    system: Option<System>,
    job_manager: Addr<JobManager>,
    dispatcher: Probed<Dispatcher>,
    shared: Arc<RuntimeShared>,
    task_executors: Vec<Addr<TaskExecutor>>,
}

/// A running embedded cluster. Dropping it shuts it down.
pub struct MiniCluster {
    rest: Option<riffle_web::RestServer>,
    rpc: Option<crate::remote::jobmanager_side::RpcEndpoint>,
    actors: Option<Actors>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<RuntimeShared>,
}

fn unavailable(e: impl std::fmt::Display) -> ClusterError {
    ClusterError::Unavailable(e.to_string())
}

struct Settings {
    max_slots: Option<u32>,
    jm: JobMasterSettings,
    te: TaskExecutorSettings,
    task_executors: u32,
}

impl Settings {
    fn from(cfg: &MiniClusterConfig) -> Result<Self, ClusterError> {
        let c = &cfg.config;
        let max_slots = c.get(&MAX_SLOTS)?;
        let jm = JobMasterSettings {
            slot_request_timeout: c.get(&SLOT_REQUEST_TIMEOUT)?,
            cancel_timeout: c.get(&TASK_CANCELLATION_TIMEOUT)?,
            exception_history_size: c.get(&EXCEPTION_HISTORY_SIZE)?,
        };
        let te = task_executor_settings(c, cfg.slots_per_executor)?;
        // A JobManager process may start without TaskExecutors of its own: TaskManager
        // processes bring the slots.
        let task_executors = if cfg.rpc { cfg.task_executors } else { cfg.task_executors.max(1) };
        Ok(Self { max_slots, jm, te, task_executors })
    }

    fn slots(&self) -> u32 {
        self.task_executors * self.te.slots
    }
}

/// A TaskExecutor's settings from the configuration, with `slots` slots.
pub(crate) fn task_executor_settings(c: &Configuration, slots: u32) -> Result<TaskExecutorSettings, ClusterError> {
    Ok(TaskExecutorSettings {
        slots: slots.max(1),
        batch_size: c.get(&BATCH_SIZE)?.max(1),
        channel_capacity: c.get(&BUFFERS_PER_CHANNEL)?.max(1),
        debloat: c.get(&DEBLOAT_ENABLED)?.then_some(riffle_actors::debloat::DebloatSettings {
            target: c.get(&DEBLOAT_TARGET)?,
            period: c.get(&DEBLOAT_PERIOD)?.max(Duration::from_millis(1)),
        }),
        buffer_timeout_ms: c.get(&BUFFER_TIMEOUT)?.as_millis() as i64,
        slot_strategy: default_slot_strategy(),
    })
}

/// Starts the actors on the current actix system.
async fn start_actors(shared: Arc<RuntimeShared>, s: Settings, system: Option<System>) -> Option<Actors> {
    let jm = JobManager::new(shared.clone(), s.jm, s.max_slots).start();
    let addrs = jm.send(GetAddrs).await.ok().flatten()?;
    let task_executors = (0..s.task_executors)
        .map(|i| TaskExecutor::new(ResourceId(format!("taskexecutor-{i}")), &shared, s.te.clone()).start())
        .collect();
    Some(Actors { system, job_manager: jm, dispatcher: addrs.dispatcher, shared, task_executors })
}

const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The embedded TaskExecutors keep per-slot instances of plugin jobs' code, as TaskManager
/// processes do; the copies live in a directory of this cluster's own.
fn install_slot_code(shared: &RuntimeShared) {
    static CLUSTERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = CLUSTERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("riffle-slot-code-{}-{n}", std::process::id()));
    shared.code.set_slot_code(std::sync::Arc::new(crate::slot_code::EmbeddedSlotCode::new(dir)));
}

impl MiniCluster {
    /// Starts the cluster on an actix system of its own (a new thread) and waits until every
    /// TaskExecutor registered its slots. Use from anywhere but inside an actix system that
    /// should host it (see [`MiniCluster::start_in_current_system`]).
    pub fn start(cfg: MiniClusterConfig) -> Result<MiniCluster, ClusterError> {
        let settings = Settings::from(&cfg)?;
        let want = settings.slots();
        let shared = RuntimeShared::new(cfg.config.clone());
        install_slot_code(&shared);
        let (tx, rx) = sync_channel(1);
        let s2 = shared.clone();
        let thread = std::thread::Builder::new()
            .name("riffle-jobmanager".into())
            .spawn(move || {
                let sys = System::new();
                let started = sys.block_on(start_actors(s2, settings, Some(System::current())));
                let ok = started.is_some();
                let _ = tx.send(started);
                if ok {
                    let _ = sys.run();
                }
            })
            .map_err(unavailable)?;
        let actors = rx
            .recv_timeout(START_TIMEOUT)
            .ok()
            .flatten()
            .ok_or_else(|| unavailable("the actor system did not start"))?;
        let mut mc = MiniCluster { rest: None, rpc: None, actors: Some(actors), thread: Some(thread), shared };
        mc.start_rpc(&cfg)?;
        let deadline = std::time::Instant::now() + START_TIMEOUT;
        while mc.slot_report()?.total < want {
            if std::time::Instant::now() > deadline {
                return Err(ClusterError::Timeout(START_TIMEOUT, "task executors to register".into()));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        mc.start_rest(&cfg)?;
        Ok(mc)
    }

    /// Starts the cluster's actors on the caller's running actix system (for services built on
    /// actix that embed riffle). Slots still get threads (Arbiters) of their own. On such a
    /// cluster use the `*_async` methods: the blocking ones would wait on the thread that must
    /// answer them.
    pub async fn start_in_current_system(cfg: MiniClusterConfig) -> Result<MiniCluster, ClusterError> {
        if System::try_current().is_none() {
            return Err(unavailable("start_in_current_system must be called inside a running actix system"));
        }
        let settings = Settings::from(&cfg)?;
        let want = settings.slots();
        let shared = RuntimeShared::new(cfg.config.clone());
        install_slot_code(&shared);
        let actors = start_actors(shared.clone(), settings, None)
            .await
            .ok_or_else(|| unavailable("the job manager did not start"))?;
        let mut mc = MiniCluster { rest: None, rpc: None, actors: Some(actors), thread: None, shared };
        if cfg.rpc {
            let settings = crate::remote::jobmanager_side::RpcSettings::from_config(&cfg.config)?;
            mc.rpc = Some(crate::remote::jobmanager_side::start(settings, mc.shared.clone()).await?);
        }
        let deadline = std::time::Instant::now() + START_TIMEOUT;
        while mc.slot_report_async().await?.total < want {
            if std::time::Instant::now() > deadline {
                return Err(ClusterError::Timeout(START_TIMEOUT, "task executors to register".into()));
            }
            actix_rt::time::sleep(Duration::from_millis(2)).await;
        }
        mc.start_rest(&cfg)?;
        Ok(mc)
    }

    fn start_rpc(&mut self, cfg: &MiniClusterConfig) -> Result<(), ClusterError> {
        if !cfg.rpc {
            return Ok(());
        }
        let settings = crate::remote::jobmanager_side::RpcSettings::from_config(&cfg.config)?;
        let shared = self.shared.clone();
        let a = self.actors()?;
        let sys = a.system.as_ref().ok_or_else(|| unavailable("the cluster has no actor system of its own"))?;
        // Bind on the cluster's own system, where the links must run.
        let (tx, rx) = sync_channel(1);
        let spawned = sys.arbiter().spawn(async move {
            let _ = tx.send(crate::remote::jobmanager_side::start(settings, shared).await);
        });
        if !spawned {
            return Err(unavailable("the actor system is gone"));
        }
        let endpoint = rx.recv_timeout(START_TIMEOUT).map_err(|_| unavailable("the RPC endpoint did not start"))??;
        self.rpc = Some(endpoint);
        Ok(())
    }

    /// Where TaskManager processes reach this cluster: the advertised RPC address
    /// (`host:port`), if it accepts them.
    pub fn rpc_address(&self) -> Option<String> {
        self.rpc.as_ref().map(|r| r.advertised.clone())
    }

    /// The socket address the RPC endpoint is bound to, if any.
    pub fn rpc_bound_address(&self) -> Option<std::net::SocketAddr> {
        self.rpc.as_ref().map(|r| r.bound)
    }

    fn start_rest(&mut self, cfg: &MiniClusterConfig) -> Result<(), ClusterError> {
        if !cfg.rest {
            return Ok(());
        }
        let a = self.actors()?;
        let rest = riffle_web::RestConfig::from_config(&cfg.config)?;
        let programs = cfg.programs.clone().unwrap_or_else(|| Arc::new(crate::plugin::LoadedPlugins::default()));
        let registry = cfg.config_registry.clone().unwrap_or_else(crate::config_registry);
        let ctx = riffle_web::RestContext::new(&self.shared, a.dispatcher.clone(), Some(programs), rest)
            .with_config_registry(registry);
        self.rest = Some(riffle_web::RestServer::start(ctx)?);
        Ok(())
    }

    /// The REST API's and web UI's address (`http://host:port/`), if it is served.
    pub fn rest_url(&self) -> Option<String> {
        self.rest.as_ref().map(|r| r.url())
    }

    /// Page `page` (0-based, `page_size` entries, newest first) of a job's exception history.
    pub async fn exception_history_async(
        &self,
        job: JobId,
        page: usize,
        page_size: usize,
    ) -> Result<ExceptionPage, ClusterError> {
        let a = self.actors()?;
        Ok(a.dispatcher.send(GetExceptionHistory { job_id: job, page, page_size }).await.map_err(unavailable)??)
    }

    /// Blocking form of [`MiniCluster::exception_history_async`].
    pub fn exception_history(&self, job: JobId, page: usize, page_size: usize) -> Result<ExceptionPage, ClusterError> {
        futures::executor::block_on(self.exception_history_async(job, page, page_size))
    }

    /// The job's checkpoint counters: triggered, completed, aborted, latest completed id.
    pub fn checkpoint_stats(&self, job: JobId) -> CheckpointCounts {
        let s = self.shared.jobs.checkpoint_stats(job);
        s.with_history(|h| {
            let counts = h.counts();
            let last = h.latest_completed();
            CheckpointCounts {
                triggered: counts.total,
                completed: counts.completed,
                aborted: counts.failed,
                last_completed: last.map_or(0, |r| r.id),
                last_duration_ms: last.map_or(0, |r| r.duration_ms() as u64),
                last_size_bytes: last.map_or(0, |r| r.state_size),
                last_sync_ms: last.map_or(0, |r| r.sync_ms),
                last_async_ms: last.map_or(0, |r| r.async_ms),
            }
        })
    }

    /// Slot occupancy, without blocking.
    pub async fn slot_report_async(&self) -> Result<SlotReport, ClusterError> {
        let a = self.actors()?;
        let rm = a.shared.directory.resource_manager().ok_or_else(|| unavailable("no resource manager"))?;
        rm.send(GetSlotReport).await.map_err(unavailable)
    }

    fn actors(&self) -> Result<&Actors, ClusterError> {
        self.actors.as_ref().ok_or_else(|| unavailable("the cluster was shut down"))
    }

    /// Submits a job; returns once the Dispatcher accepted it.
    pub async fn submit_async(&self, graph: JobGraph) -> Result<JobHandle, ClusterError> {
        self.submit_with_id_async(JobId::generate(), graph).await
    }

    /// Submits a job under a given id (a recovered job keeps its id, and so its checkpoint
    /// directory).
    pub async fn submit_with_id_async(&self, job_id: JobId, graph: JobGraph) -> Result<JobHandle, ClusterError> {
        let a = self.actors()?;
        let counters = self.shared.jobs.counters(job_id);
        let r = a.dispatcher.send(SubmitJob { job_id, graph: Arc::new(graph) }).await.map_err(unavailable)?;
        r?;
        let directory = self.shared.directory.clone();
        Ok(JobHandle { job_id, dispatcher: a.dispatcher.clone(), counters, directory })
    }

    /// Submits a job, blocking until accepted.
    pub fn submit(&self, graph: JobGraph) -> Result<JobHandle, ClusterError> {
        futures::executor::block_on(self.submit_async(graph))
    }

    /// Blocking form of [`MiniCluster::submit_with_id_async`].
    pub fn submit_with_id(&self, job_id: JobId, graph: JobGraph) -> Result<JobHandle, ClusterError> {
        futures::executor::block_on(self.submit_with_id_async(job_id, graph))
    }

    /// The registries the cluster's actors share (for the process that hosts it: HA hooks).
    pub fn shared(&self) -> &Arc<RuntimeShared> {
        &self.shared
    }

    /// Submits a job and blocks until it ends.
    pub fn execute(&self, graph: JobGraph) -> Result<JobResult, ClusterError> {
        self.submit(graph)?.wait(None)
    }

    /// Every job the cluster knows, with its status.
    pub fn list_jobs(&self) -> Result<Vec<JobOverview>, ClusterError> {
        let a = self.actors()?;
        futures::executor::block_on(a.dispatcher.send(ListJobs)).map_err(unavailable)
    }

    /// Suspends every job that has not ended (high availability: this JobManager lost its
    /// leadership; see `riffle_actors::dispatcher::SuspendAll`) and returns their ids once their
    /// JobMasters ended, at most `timeout` later. Nothing of the jobs' HA data is removed.
    pub fn suspend_all_jobs(&self, timeout: Duration) -> Result<Vec<JobId>, ClusterError> {
        let a = self.actors()?;
        let asked = a.dispatcher.send(riffle_actors::dispatcher::SuspendAll);
        // Waited for on a thread of its own: the bound needs no timer of an async runtime.
        let (tx, rx) = sync_channel(1);
        std::thread::Builder::new()
            .name("riffle-suspend".into())
            .spawn(move || {
                let _ = tx.send(futures::executor::block_on(asked));
            })
            .map_err(unavailable)?;
        match rx.recv_timeout(timeout) {
            Ok(r) => r.map_err(unavailable),
            Err(_) => Err(ClusterError::Timeout(timeout, "the suspended jobs' JobMasters to end".into())),
        }
    }

    /// Slot occupancy.
    pub fn slot_report(&self) -> Result<SlotReport, ClusterError> {
        let a = self.actors()?;
        let rm = a.shared.directory.resource_manager().ok_or_else(|| unavailable("no resource manager"))?;
        futures::executor::block_on(rm.send(GetSlotReport)).map_err(unavailable)
    }

    /// What each TaskExecutor reports about its slots.
    pub fn task_executor_reports(&self) -> Result<Vec<TaskExecutorReport>, ClusterError> {
        let a = self.actors()?;
        let mut out = Vec::new();
        for te in &a.task_executors {
            out.push(futures::executor::block_on(te.send(GetTaskExecutorReport)).map_err(unavailable)?);
        }
        Ok(out)
    }

    /// Crashes slot `slot` of TaskExecutor `executor` (supervision drills and tests).
    #[cfg(feature = "testing")]
    pub fn crash_slot(&self, executor: usize, slot: u32) -> Result<(), ClusterError> {
        let a = self.actors()?;
        let te = a.task_executors.get(executor).ok_or_else(|| unavailable(format!("no task executor {executor}")))?;
        te.do_send(riffle_actors::task_executor::CrashSlot(slot));
        Ok(())
    }

    /// Crashes the ResourceManager (supervision drills and tests): the JobManager restarts it
    /// and the TaskExecutors register their slots again.
    #[cfg(feature = "testing")]
    pub fn crash_resource_manager(&self) -> Result<(), ClusterError> {
        let a = self.actors()?;
        let rm = a.shared.directory.resource_manager().ok_or_else(|| unavailable("no resource manager"))?;
        rm.do_send(riffle_actors::resource_manager::InjectResourceManagerFault);
        Ok(())
    }

    /// How often the ResourceManager was restarted by its supervisor.
    pub fn resource_manager_restarts(&self) -> u32 {
        self.shared.directory.resource_manager_restarts.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Data channels created but not picked up by both sides (leak checks).
    pub fn pending_channels(&self) -> usize {
        self.shared.data.exchange.pending()
    }

    /// Stops every actor and joins the cluster's threads.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(r) = self.rest.take() {
            r.stop();
        }
        if let Some(r) = self.rpc.take() {
            r.stop();
        }
        if let Some(a) = self.actors.take() {
            match a.system {
                Some(sys) => sys.stop(),
                None => {
                    for te in &a.task_executors {
                        te.do_send(StopTaskExecutor);
                    }
                    a.job_manager.do_send(StopJobManager);
                }
            }
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for MiniCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A snapshot of a job's checkpoint counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointCounts {
    /// Checkpoints triggered.
    pub triggered: u64,
    /// Checkpoints completed.
    pub completed: u64,
    /// Checkpoints aborted.
    pub aborted: u64,
    /// Latest completed checkpoint id (0: none).
    pub last_completed: u64,
    /// Trigger to completion of the latest completed checkpoint, ms.
    pub last_duration_ms: u64,
    /// State size of the latest completed checkpoint, bytes.
    pub last_size_bytes: u64,
    /// Longest synchronous part of a subtask in the latest completed checkpoint, ms.
    pub last_sync_ms: u64,
    /// Longest asynchronous part of a subtask in the latest completed checkpoint, ms.
    pub last_async_ms: u64,
}

/// A submitted job.
#[derive(Clone)]
pub struct JobHandle {
    job_id: JobId,
    dispatcher: Probed<Dispatcher>,
    counters: Arc<JobCounters>,
    /// Where its JobMaster is (savepoints and checkpoints on request).
    directory: Arc<riffle_actors::services::Directory>,
}

impl JobHandle {
    /// The job's id.
    pub fn job_id(&self) -> JobId {
        self.job_id
    }

    /// Records in (from sources) and out (into sinks), live.
    pub fn counters(&self) -> Arc<JobCounters> {
        self.counters.clone()
    }

    /// Waits for the job to end.
    pub async fn wait_async(&self) -> Result<JobResult, ClusterError> {
        let r = self.dispatcher.send(RequestJobResult { job_id: self.job_id }).await.map_err(unavailable)?;
        Ok(r?)
    }

    /// Blocks until the job ends, or `timeout` passes.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<JobResult, ClusterError> {
        match timeout {
            None => futures::executor::block_on(self.wait_async()),
            Some(t) => {
                let (tx, rx) = sync_channel(1);
                let me = self.clone();
                std::thread::spawn(move || {
                    let _ = tx.send(futures::executor::block_on(me.wait_async()));
                });
                rx.recv_timeout(t).map_err(|_| ClusterError::Timeout(t, format!("job {}", self.job_id)))?
            }
        }
    }

    /// Asks the job to stop; [`JobHandle::wait`] then returns CANCELED.
    pub async fn cancel_async(&self) -> Result<(), ClusterError> {
        Ok(self.dispatcher.send(CancelJob { job_id: self.job_id }).await.map_err(unavailable)??)
    }

    /// Asks the job to stop, blocking until the request was delivered.
    pub fn cancel(&self) -> Result<(), ClusterError> {
        futures::executor::block_on(self.cancel_async())
    }

    async fn savepoint(&self, target: Option<PathBuf>, then: AfterSavepoint) -> Result<PathBuf, ClusterError> {
        let jm = self.directory.job_masters.get(&self.job_id).map(|a| a.clone()).ok_or_else(|| {
            ClusterError::Checkpoint(format!("job {} is not running: no savepoint can be taken", self.job_id))
        })?;
        jm.send(SavepointRequest { target, then }).await.map_err(unavailable)?.map_err(ClusterError::Runtime)
    }

    /// Takes a savepoint of the running job into `target` (else `state.savepoints.dir`);
    /// returns its directory once it completed. The directory is self-contained: move it
    /// anywhere and restore with `execution.savepoint.path`.
    pub async fn trigger_savepoint_async(&self, target: Option<PathBuf>) -> Result<PathBuf, ClusterError> {
        self.savepoint(target, AfterSavepoint::Continue).await
    }

    /// Blocking form of [`JobHandle::trigger_savepoint_async`].
    pub fn trigger_savepoint(&self, target: Option<PathBuf>) -> Result<PathBuf, ClusterError> {
        futures::executor::block_on(self.trigger_savepoint_async(target))
    }

    /// Takes a savepoint, then cancels the job (ending CANCELED).
    pub fn cancel_with_savepoint(&self, target: Option<PathBuf>) -> Result<PathBuf, ClusterError> {
        futures::executor::block_on(self.savepoint(target, AfterSavepoint::Cancel))
    }

    /// Stop-with-savepoint: the sources emit nothing after the savepoint's barrier and end
    /// once it completed; the job drains and ends FINISHED.
    pub fn stop_with_savepoint(&self, target: Option<PathBuf>) -> Result<PathBuf, ClusterError> {
        futures::executor::block_on(self.savepoint(target, AfterSavepoint::Stop))
    }

    /// Triggers a checkpoint now; returns its id once it completed.
    pub fn trigger_checkpoint(&self) -> Result<u64, ClusterError> {
        futures::executor::block_on(async {
            let jm = self.directory.job_masters.get(&self.job_id).map(|a| a.clone()).ok_or_else(|| {
                ClusterError::Checkpoint(format!("job {} is not running: no checkpoint can be taken", self.job_id))
            })?;
            jm.send(CheckpointRequest).await.map_err(unavailable)?.map_err(ClusterError::Runtime)
        })
    }
}
