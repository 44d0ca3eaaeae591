//! A TaskManager process's runtime: one TaskExecutor with its slots, on an actix system of its
//! own, linked to the JobManager process (see [`crate::remote`]).

use std::sync::mpsc::sync_channel;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix::prelude::*;
use riffle_actors::task_executor::{GetTaskExecutorReport, TaskExecutor};
use riffle_actors::{ResourceId, RuntimeShared};
use riffle_api::Configuration;
use tokio::sync::watch;

use crate::error::ClusterError;
use crate::heartbeat::HeartbeatSettings;
use crate::remote::taskmanager_side::{self, LinkSettings};
use crate::remote::ProgramBuilder;
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

impl TaskManagerSettings {
    /// Reads the keys; a bad value is refused with its key named.
    pub fn from_config(c: &Configuration) -> Result<Self, ClusterError> {
        let jm_host = c.get_str("jobmanager.rpc.address").unwrap_or("localhost");
        let jm_port: u16 = c.get("jobmanager.rpc.port", 6123)?;
        let slots: u32 = c.get("taskmanager.numberOfTaskSlots", 1)?;
        if slots == 0 {
            return Err(ClusterError::Config(riffle_api::ConfigError {
                key: "taskmanager.numberOfTaskSlots".into(),
                value: "0".into(),
                reason: "a TaskManager needs at least one slot".into(),
            }));
        }
        let host = c.get_str("taskmanager.host").unwrap_or("localhost").to_string();
        let data_port: u16 = c.get("taskmanager.data.port", 0)?;
        let data_bind_port: u16 = c.get("taskmanager.data.bind-port", data_port)?;
        let resource_id = match c.get_str("taskmanager.resource-id") {
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
                artifacts: crate::artifacts::ArtifactCache::new(match c.get_str("blob.storage.directory") {
                    Some(d) => std::path::PathBuf::from(d),
                    None => std::env::temp_dir().join(format!("riffle-artifacts-{}", std::process::id())),
                }),
                zookeeper: crate::ha::HaConfig::from_config(c)
                    .map_err(|e| ClusterError::Unavailable(e.to_string()))?
                    .zookeeper()
                    .cloned(),
                advertised: host.clone(),
                network: crate::shuffle::buffer_pool::NetworkBuffers::new(
                    crate::shuffle::buffer_pool::PoolSize::from_config(c)?,
                ),
            },
            task_executor: crate::minicluster::task_executor_settings(c, slots)?,
            data_bind: format!("{}:{}", c.get_str("taskmanager.bind-host").unwrap_or(&host), data_bind_port),
            data_port,
            max_frame_size: u32::try_from(
                c.get_bytes("rpc.max-frame-size", crate::transport::DEFAULT_MAX_FRAME_SIZE as usize)?,
            )
            .unwrap_or(u32::MAX),
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
    pub fn start(config: Configuration, builder: Arc<dyn ProgramBuilder>) -> Result<TaskManager, ClusterError> {
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
                    s2.set_data_plane(Arc::new(NetworkDataPlane::new(s2.clone(), data.clone())));
                    actix::spawn(inbound::serve(listener, s2.clone(), data, stopped.clone()));
                    let te = TaskExecutor::new(settings.link.resource_id.clone(), s2.clone(), settings.task_executor)
                        .start();
                    actix::spawn(taskmanager_side::run(settings.link, s2, te.clone(), builder, stopped));
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
        self.shared.has_remote_job_manager()
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
        self.shared.graphs.len()
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
