//! A TaskManager process's runtime: one TaskExecutor with its slots, on an actix system of its
//! own, linked to the JobManager process (see [`crate::remote`]).

use std::sync::mpsc::sync_channel;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix::prelude::*;
use riffle_actors::task_executor::{GetTaskExecutorReport, TaskExecutor};
use riffle_actors::{ResourceId, RuntimeShared};
use riffle_api::{ConfigOption, Configuration, Group, OptionInfo, Programs};
use tokio::sync::watch;

use crate::error::ClusterError;
use crate::heartbeat::HeartbeatSettings;
use crate::minicluster::NUMBER_OF_TASK_SLOTS;
use crate::remote::jobmanager_side::{MAX_FRAME_SIZE, RPC_ADDRESS, RPC_PORT};
use crate::remote::taskmanager_side::{self, LinkSettings};
use crate::shuffle::{inbound, DataPlaneSettings, NetworkDataPlane};
use crate::transport::{Listener, Timeouts};

/// What a TaskManager is, from Flink's keys.
#[derive(Debug, Clone)]
pub struct TaskManagerSettings {
    /// The link: JobManager address (`jobmanager.rpc.address`:`jobmanager.rpc.port`), id
    /// (`taskmanager.resource-id`), slots (`taskmanager.numberOfTaskSlots`), advertised host
    /// (`taskmanager.host`), heartbeats.
    pub link: LinkSettings,
    /// The TaskExecutor's settings.
    pub task_executor: riffle_actors::task_executor::TaskExecutorSettings,
    /// Where the data endpoint binds (`taskmanager.bind-host`:`taskmanager.data.bind-port`).
    pub data_bind: String,
    /// The advertised data port (`taskmanager.data.port`; 0: the bound one).
    pub data_port: u16,
    /// `rpc.max-frame-size`.
    pub max_frame_size: u32,
}

/// `taskmanager.host`: the host a TaskManager advertises for its data endpoint.
pub const HOST: ConfigOption<String> =
    ConfigOption::new(Group::Processes, "taskmanager.host", "localhost", "the host a TaskManager advertises");
/// `taskmanager.resource-id`.
pub const RESOURCE_ID: ConfigOption<Option<String>> = ConfigOption::optional(
    Group::Processes,
    "taskmanager.resource-id",
    "a TaskManager's id (default: taskmanager-<host>-<pid>)",
);
/// `taskmanager.bind-host`, else `taskmanager.host`.
pub const BIND_HOST: ConfigOption<String> = ConfigOption::new(
    Group::Processes,
    "taskmanager.bind-host",
    "localhost",
    "host a TaskManager's data endpoint binds",
)
.with_fallback_keys(&[HOST.key()]);
/// `taskmanager.rpc.port`: declared so that Flink configurations pass without a warning.
pub const RPC_PORT_UNUSED: ConfigOption<Option<String>> = ConfigOption::optional(
    Group::Processes,
    "taskmanager.rpc.port",
    "accepted from Flink configurations, unused: a riffle TaskManager connects out to its JobManager and listens \
     only for data (taskmanager.data.*)",
);
/// `taskmanager.rpc.bind-port`: declared so that Flink configurations pass without a warning.
pub const RPC_BIND_PORT_UNUSED: ConfigOption<Option<String>> = ConfigOption::optional(
    Group::Processes,
    "taskmanager.rpc.bind-port",
    "accepted from Flink configurations, unused (see taskmanager.rpc.port)",
);
/// `taskmanager.data.port`.
pub const DATA_PORT: ConfigOption<u16> = ConfigOption::new(
    Group::Processes,
    "taskmanager.data.port",
    0,
    "a TaskManager's advertised data port (0: the bound one)",
);
/// `taskmanager.data.bind-port`, else `taskmanager.data.port`.
pub const DATA_BIND_PORT: ConfigOption<u16> =
    ConfigOption::new(Group::Processes, "taskmanager.data.bind-port", 0, "the data port a TaskManager binds")
        .with_fallback_keys(&[DATA_PORT.key()]);
/// `blob.storage.directory`.
pub const BLOB_STORAGE_DIRECTORY: ConfigOption<Option<std::path::PathBuf>> = ConfigOption::optional(
    Group::Processes,
    "blob.storage.directory",
    "the cache of plugin libraries by SHA-256: a TaskManager's (default: a temp directory of its own) and, for libraries fetched from http(s) URLs, a JobManager's or riffle run's (default: riffle-artifacts in the temp directory)",
);

/// The options of a TaskManager process.
pub(crate) const OPTIONS: &[&dyn OptionInfo] = &[
    &HOST,
    &RESOURCE_ID,
    &BIND_HOST,
    &RPC_PORT_UNUSED,
    &RPC_BIND_PORT_UNUSED,
    &DATA_PORT,
    &DATA_BIND_PORT,
    &BLOB_STORAGE_DIRECTORY,
];

impl TaskManagerSettings {
    /// Reads the keys; a bad value is refused with its key named.
    pub fn from_config(c: &Configuration) -> Result<Self, ClusterError> {
        let jm_host = c.get(&RPC_ADDRESS)?;
        let jm_port = c.get(&RPC_PORT)?;
        let slots = c.get(&NUMBER_OF_TASK_SLOTS)?;
        if slots == 0 {
            return Err(ClusterError::Config(riffle_api::ConfigError {
                key: NUMBER_OF_TASK_SLOTS.key().into(),
                value: "0".into(),
                reason: "a TaskManager needs at least one slot".into(),
            }));
        }
        let host = c.get(&HOST)?;
        let data_port = c.get(&DATA_PORT)?;
        let data_bind_port = c.get(&DATA_BIND_PORT)?;
        let resource_id = match c.get(&RESOURCE_ID)? {
            Some(id) if !id.trim().is_empty() => id.trim().to_string(),
            _ => format!("taskmanager-{host}-{}", std::process::id()),
        };
        Ok(Self {
            link: LinkSettings {
                job_manager: format!("{jm_host}:{jm_port}"),
                resource_id: ResourceId(resource_id),
                slots,
                heartbeat: HeartbeatSettings::from_config(c)?,
                timeouts: Timeouts { connect: Duration::from_secs(5), handshake: Duration::from_secs(10) },
                data_address: String::new(),
                artifacts: crate::artifacts::ArtifactCache::new(match c.get(&BLOB_STORAGE_DIRECTORY)? {
                    Some(d) => d,
                    None => std::env::temp_dir().join(format!("riffle-artifacts-{}", std::process::id())),
                }),
                fetch_limits: crate::artifacts::FetchLimits::from_config(c)?,
                zookeeper: crate::ha::HaConfig::from_config(c)
                    .map_err(|e| ClusterError::Unavailable(e.to_string()))?
                    .zookeeper()
                    .cloned(),
                advertised: host.clone(),
                network: crate::shuffle::buffer_pool::NetworkBuffers::new(
                    crate::shuffle::buffer_pool::PoolSize::from_config(c)?,
                ),
                log_dir: c.get(&riffle_web::config::LOG_DIR)?,
                state_budget: riffle_actors::state_backend::memory_budget(c),
            },
            task_executor: crate::minicluster::task_executor_settings(c, slots)?,
            data_bind: format!("{}:{}", c.get(&BIND_HOST)?, data_bind_port),
            data_port,
            max_frame_size: u32::try_from(c.get(&MAX_FRAME_SIZE)?.as_bytes()).unwrap_or(u32::MAX),
        })
    }
}

/// A running TaskManager. Dropping it stops it.
pub struct TaskManager {
    system: Option<System>,
    thread: Option<JoinHandle<()>>,
    stop: watch::Sender<bool>,
    shared: Arc<RuntimeShared>,
    executor: Addr<TaskExecutor>,
    resource_id: ResourceId,
}

impl TaskManager {
    /// Starts the TaskExecutor and its link; returns at once (the link connects, and keeps
    /// reconnecting, in the background: see [`TaskManager::wait_registered`]).
    pub fn start(config: Configuration, programs: Arc<dyn Programs>) -> Result<TaskManager, ClusterError> {
        let settings = TaskManagerSettings::from_config(&config)?;
        let shared = RuntimeShared::new(config);
        let (stop, stopped) = watch::channel(false);
        let (tx, rx) = sync_channel(1);
        let s2 = shared.clone();
        let resource_id = settings.link.resource_id.clone();
        let thread = std::thread::Builder::new()
            .name("riffle-taskmanager".into())
            .spawn(move || {
                let sys = System::new();
                let started = sys.block_on(async move {
                    let mut settings = settings;
                    let data = DataPlaneSettings {
                        capacity: settings.task_executor.channel_capacity,
                        node: settings.link.resource_id.to_string(),
                        timeouts: settings.link.timeouts,
                        patience: Duration::from_secs(30),
                        max_frame_size: settings.max_frame_size,
                        buffers: settings.link.network.clone(),
                    };
                    let listener = Listener::bind(settings.data_bind.as_str(), data.node.clone(), data.timeouts)
                        .await
                        .map_err(|e| {
                            format!(
                                "cannot listen for data on {} (taskmanager.bind-host, taskmanager.data.bind-port): {e}",
                                settings.data_bind
                            )
                        })?;
                    let port = if settings.data_port == 0 { listener.local_addr().port() } else { settings.data_port };
                    settings.link.data_address = format!("{}:{port}", settings.link.advertised);
                    s2.data.set_data_plane(Arc::new(NetworkDataPlane::new(s2.clone(), data.clone())));
                    actix::spawn(inbound::serve(listener, s2.clone(), data, stopped.clone()));
                    let te = TaskExecutor::new(settings.link.resource_id.clone(), &s2, settings.task_executor).start();
                    actix::spawn(taskmanager_side::run(settings.link, s2, te.clone(), programs, stopped));
                    Ok::<_, String>(te)
                });
                let ok = started.is_ok();
                let _ = tx.send(started.map(|te| (System::current(), te)));
                if ok {
                    let _ = sys.run();
                }
            })
            .map_err(|e| ClusterError::Unavailable(e.to_string()))?;
        let (system, executor) = rx
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| ClusterError::Unavailable("the TaskManager's actor system did not start".into()))?
            .map_err(ClusterError::Unavailable)?;
        Ok(TaskManager { system: Some(system), thread: Some(thread), stop, shared, executor, resource_id })
    }

    /// This TaskManager's TaskExecutor id.
    pub fn resource_id(&self) -> &ResourceId {
        &self.resource_id
    }

    /// Whether it is registered at a JobManager now.
    pub fn is_registered(&self) -> bool {
        self.shared.directory.has_remote_job_manager()
    }

    /// Waits until it is registered at a JobManager.
    pub fn wait_registered(&self, timeout: Duration) -> Result<(), ClusterError> {
        let deadline = Instant::now() + timeout;
        while !self.is_registered() {
            if Instant::now() > deadline {
                return Err(ClusterError::Timeout(timeout, "the TaskManager to register at its JobManager".into()));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    /// Jobs whose graph this TaskManager holds now (a job is forgotten when it gives back its
    /// last slot here).
    pub fn jobs_known(&self) -> usize {
        self.shared.code.graphs.len()
    }

    /// Subtasks running here now.
    pub fn running_subtasks(&self) -> usize {
        futures::executor::block_on(self.executor.send(GetTaskExecutorReport)).map_or(0, |r| r.running_subtasks)
    }

    /// Blocks until the TaskManager's actor system ends.
    pub fn join(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TaskManager {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(sys) = self.system.take() {
            sys.stop();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
