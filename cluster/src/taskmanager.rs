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
use crate::transport::Timeouts;

/// What a TaskManager is, from Flink's keys.
#[derive(Debug, Clone)]
pub struct TaskManagerSettings {
    /// The link: JobManager address (`jobmanager.rpc.address`:`jobmanager.rpc.port`), id
    /// (`taskmanager.resource-id`), slots (`taskmanager.numberOfTaskSlots`), advertised host
    /// (`taskmanager.host`), heartbeats.
    pub link: LinkSettings,
    /// The TaskExecutor's settings.
    pub task_executor: riffle_actors::task_executor::TaskExecutorSettings,
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
        let resource_id = match c.get_str("taskmanager.resource-id") {
            Some(id) if !id.trim().is_empty() => id.trim().to_string(),
            _ => format!("taskmanager-{host}-{}", std::process::id()),
        };
        Ok(Self {
            link: LinkSettings {
                job_manager: format!("{jm_host}:{jm_port}"),
                resource_id: ResourceId(resource_id),
                slots,
                advertised: host,
                heartbeat: HeartbeatSettings::from_config(c)?,
                timeouts: Timeouts { connect: Duration::from_secs(5), handshake: Duration::from_secs(10) },
            },
            task_executor: crate::minicluster::task_executor_settings(c, slots)?,
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
                let te = sys.block_on(async {
                    let te = TaskExecutor::new(settings.link.resource_id.clone(), s2.clone(), settings.task_executor)
                        .start();
                    actix::spawn(taskmanager_side::run(settings.link, s2, te.clone(), builder, stopped));
                    te
                });
                let _ = tx.send((System::current(), te));
                let _ = sys.run();
            })
            .map_err(|e| ClusterError::Unavailable(e.to_string()))?;
        let (system, executor) = rx
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| ClusterError::Unavailable("the TaskManager's actor system did not start".into()))?;
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
