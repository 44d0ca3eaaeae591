//! The MiniCluster: the whole runtime — Dispatcher, ResourceManager and N TaskExecutors with
//! M slots each — inside the caller's process.
//!
//! It runs its actors on an actix system of its own (a thread named `riffle-jobmanager` plus
//! one thread per slot), so it works whether the caller uses tokio, actix, or no runtime at
//! all: the `*_async` methods are plain futures any executor can await, the others block.

use std::sync::mpsc::sync_channel;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use actix::prelude::*;
use riffle_actors::dispatcher::{CancelJob, Dispatcher, JobOverview, ListJobs, RequestJobResult, SubmitJob};
use riffle_actors::gateway::{GetSlotReport, SlotReport};
use riffle_actors::job_manager::{GetAddrs, JobManager};
use riffle_actors::job_master::JobMasterSettings;
use riffle_actors::task_executor::{
    default_slot_strategy, CrashSlot, GetTaskExecutorReport, TaskExecutor, TaskExecutorReport, TaskExecutorSettings,
};
use riffle_actors::{JobId, JobResult, ResourceId, RuntimeShared};
use riffle_api::metrics::JobCounters;
use riffle_api::{Configuration, JobGraph};

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
}

impl MiniClusterConfig {
    /// `task_executors` executors with `slots_per_executor` slots each, default settings.
    pub fn new(task_executors: u32, slots_per_executor: u32) -> Self {
        Self { task_executors, slots_per_executor, config: Configuration::new() }
    }

    /// Reads `taskmanager.numberOfTaskSlots` and `local.number-taskmanager` from `config`.
    pub fn from_config(config: Configuration) -> Result<Self, ClusterError> {
        let slots = config.get("taskmanager.numberOfTaskSlots", 1u32)?;
        let tms = config.get("local.number-taskmanager", 1u32)?;
        Ok(Self { task_executors: tms, slots_per_executor: slots, config })
    }
}

struct Actors {
    system: System,
    _job_manager: Addr<JobManager>,
    dispatcher: Addr<Dispatcher>,
    shared: Arc<RuntimeShared>,
    task_executors: Vec<Addr<TaskExecutor>>,
}

/// A running embedded cluster. Dropping it shuts it down.
pub struct MiniCluster {
    actors: Option<Actors>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<RuntimeShared>,
}

fn unavailable(e: impl std::fmt::Display) -> ClusterError {
    ClusterError::Unavailable(e.to_string())
}

impl MiniCluster {
    /// Starts the cluster and waits until every TaskExecutor registered its slots.
    pub fn start(cfg: MiniClusterConfig) -> Result<MiniCluster, ClusterError> {
        let c = &cfg.config;
        let max_slots = match c.get_str("slotmanager.number-of-slots.max") {
            None => None,
            Some(_) => Some(c.get::<u32>("slotmanager.number-of-slots.max", u32::MAX)?),
        };
        let jm_settings = JobMasterSettings {
            slot_request_timeout: c.get_duration("slot.request.timeout", Duration::from_secs(300))?,
            cancel_timeout: c.get_duration("task.cancellation.timeout", Duration::from_secs(30))?,
        };
        let te_settings = TaskExecutorSettings {
            slots: cfg.slots_per_executor.max(1),
            batch_size: c.get("execution.batch-size", riffle_api::environment::DEFAULT_BATCH_SIZE)?.max(1),
            channel_capacity: c
                .get("taskmanager.network.buffers-per-channel", riffle_actors::exchange::DEFAULT_CHANNEL_CAPACITY)?
                .max(1),
            buffer_timeout_ms: c.get_duration("execution.buffer-timeout", Duration::from_millis(100))?.as_millis()
                as i64,
            slot_strategy: default_slot_strategy(),
        };
        let shared = RuntimeShared::new(cfg.config.clone());
        let (tx, rx) = sync_channel(1);
        let s2 = shared.clone();
        let n_te = cfg.task_executors.max(1);
        let thread = std::thread::Builder::new()
            .name("riffle-jobmanager".into())
            .spawn(move || {
                let sys = System::new();
                sys.block_on(async move {
                    let jm = JobManager::new(s2.clone(), jm_settings, max_slots).start();
                    let Ok(Some(addrs)) = jm.send(GetAddrs).await else {
                        System::current().stop();
                        return;
                    };
                    let tes = (0..n_te)
                        .map(|i| {
                            TaskExecutor::new(ResourceId(format!("taskexecutor-{i}")), s2.clone(), te_settings.clone())
                                .start()
                        })
                        .collect();
                    let _ = tx.send(Actors {
                        system: System::current(),
                        _job_manager: jm,
                        dispatcher: addrs.dispatcher,
                        shared: s2.clone(),
                        task_executors: tes,
                    });
                });
                let _ = sys.run();
            })
            .map_err(unavailable)?;
        let actors =
            rx.recv_timeout(Duration::from_secs(30)).map_err(|_| unavailable("the actor system did not start"))?;
        let mc = MiniCluster { actors: Some(actors), thread: Some(thread), shared };
        let want = n_te * cfg.slots_per_executor.max(1);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let r = mc.slot_report()?;
            if r.total >= want {
                break;
            }
            if std::time::Instant::now() > deadline {
                return Err(ClusterError::Timeout(Duration::from_secs(30), "task executors to register".into()));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(mc)
    }

    fn actors(&self) -> Result<&Actors, ClusterError> {
        self.actors.as_ref().ok_or_else(|| unavailable("the cluster was shut down"))
    }

    /// Submits a job; returns once the Dispatcher accepted it.
    pub async fn submit_async(&self, graph: JobGraph) -> Result<JobHandle, ClusterError> {
        let a = self.actors()?;
        let job_id = JobId::generate();
        let counters = self.shared.counters(job_id);
        self.shared.graphs.insert(job_id, Arc::new(graph));
        let r = a.dispatcher.send(SubmitJob { job_id }).await.map_err(unavailable);
        match r {
            Ok(Ok(())) => {
                Ok(JobHandle { job_id, dispatcher: a.dispatcher.clone(), counters, shared: self.shared.clone() })
            }
            Ok(Err(e)) => {
                self.shared.graphs.remove(&job_id);
                Err(e.into())
            }
            Err(e) => {
                self.shared.graphs.remove(&job_id);
                Err(e)
            }
        }
    }

    /// Submits a job, blocking until accepted.
    pub fn submit(&self, graph: JobGraph) -> Result<JobHandle, ClusterError> {
        futures::executor::block_on(self.submit_async(graph))
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

    /// Slot occupancy.
    pub fn slot_report(&self) -> Result<SlotReport, ClusterError> {
        let a = self.actors()?;
        let rm = a.shared.resource_manager().ok_or_else(|| unavailable("no resource manager"))?;
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
    pub fn crash_slot(&self, executor: usize, slot: u32) -> Result<(), ClusterError> {
        let a = self.actors()?;
        let te = a.task_executors.get(executor).ok_or_else(|| unavailable(format!("no task executor {executor}")))?;
        te.do_send(CrashSlot(slot));
        Ok(())
    }

    /// Crashes the ResourceManager (supervision drills and tests): the JobManager restarts it
    /// and the TaskExecutors register their slots again.
    pub fn crash_resource_manager(&self) -> Result<(), ClusterError> {
        let a = self.actors()?;
        let rm = a.shared.resource_manager().ok_or_else(|| unavailable("no resource manager"))?;
        rm.do_send(riffle_actors::resource_manager::InjectResourceManagerFault);
        Ok(())
    }

    /// How often the ResourceManager was restarted by its supervisor.
    pub fn resource_manager_restarts(&self) -> u32 {
        self.shared.resource_manager_restarts.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Data channels created but not picked up by both sides (leak checks).
    pub fn pending_channels(&self) -> usize {
        self.shared.exchange.pending()
    }

    /// Stops every actor and joins the cluster's threads.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(a) = self.actors.take() {
            a.system.stop();
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

/// A submitted job.
#[derive(Clone)]
pub struct JobHandle {
    job_id: JobId,
    dispatcher: Addr<Dispatcher>,
    counters: Arc<JobCounters>,
    shared: Arc<RuntimeShared>,
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
        self.shared.graphs.remove(&self.job_id);
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
}
