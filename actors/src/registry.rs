//! Registries the actors of one process share (dashmap): job graphs, counters, and the
//! addresses behind gateway ids. Gateway messages carry ids, not addresses, so that the same
//! messages can later travel between processes; in one process the id is looked up here.

use std::sync::{Arc, RwLock};

use dashmap::DashMap;
use riffle_api::metrics::JobCounters;
use riffle_api::{Configuration, JobGraph};

use crate::exchange::LocalExchange;
use crate::ids::{JobId, ResourceId};
use crate::job_master::JobMaster;
use crate::mailbox::Probed;
use crate::peers::{JobMasterGateway, RemoteJobManager, TaskExecutorGateway};
use crate::resource_manager::ResourceManager;

/// What the actors of one process share.
pub struct RuntimeShared {
    /// The cluster configuration.
    pub config: Configuration,
    /// Job graphs by job (the in-process stand-in for "rebuild the graph from its builder").
    pub graphs: DashMap<JobId, Arc<JobGraph>>,
    /// Graphs built by a slot's own instance of a job's plugin (TaskManager processes): a
    /// subtask in that slot runs this one rather than the job's.
    pub slot_graphs: DashMap<(JobId, u32), Arc<JobGraph>>,
    /// Job counters by job.
    pub counters: DashMap<JobId, Arc<JobCounters>>,
    /// In-process data channels.
    pub exchange: LocalExchange,
    /// TaskExecutors by id: actors of this process or links to TaskManager processes.
    pub task_executors: DashMap<ResourceId, TaskExecutorGateway>,
    /// JobMaster addresses by job.
    pub job_masters: DashMap<JobId, Probed<JobMaster>>,
    /// Checkpoint counters by job.
    pub checkpoint_stats: DashMap<JobId, Arc<crate::checkpoint_coordinator::CheckpointStats>>,
    /// Slot occupancy as the ResourceManager last published it.
    pub slots: SlotCounts,
    /// What the REST API and the web UI read about each job.
    pub views: DashMap<JobId, Arc<crate::job_view::JobView>>,
    /// How often the JobManager restarted the ResourceManager.
    pub resource_manager_restarts: std::sync::atomic::AtomicU32,
    /// In a TaskManager process: the JobManager process, where every JobMaster lives.
    remote_job_manager: RwLock<Option<RemoteJobManager>>,
    /// In a highly available JobManager: where submitted jobs are kept for the next leader.
    job_store: RwLock<Option<Arc<dyn crate::peers::JobStore>>>,
    /// In a TaskManager process: the network data plane to other TaskManagers.
    data_plane: RwLock<Option<Arc<dyn crate::peers::DataPlane>>>,
    /// The ResourceManager (replaced when the JobManager restarts it).
    resource_manager: RwLock<Option<Probed<ResourceManager>>>,
    /// In an embedded cluster: per-slot instances of plugin jobs' code.
    slot_code: RwLock<Option<Arc<dyn crate::peers::SlotCode>>>,
}

impl RuntimeShared {
    /// Empty registries with `config`.
    pub fn new(config: Configuration) -> Arc<Self> {
        Arc::new(Self {
            config,
            graphs: DashMap::new(),
            slot_graphs: DashMap::new(),
            counters: DashMap::new(),
            exchange: LocalExchange::default(),
            task_executors: DashMap::new(),
            job_masters: DashMap::new(),
            resource_manager: RwLock::new(None),
            remote_job_manager: RwLock::new(None),
            data_plane: RwLock::new(None),
            slot_code: RwLock::new(None),
            job_store: RwLock::new(None),
            resource_manager_restarts: Default::default(),
            checkpoint_stats: DashMap::new(),
            views: DashMap::new(),
            slots: SlotCounts::default(),
        })
    }

    /// The current ResourceManager.
    pub fn resource_manager(&self) -> Option<Probed<ResourceManager>> {
        match self.resource_manager.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Records the current ResourceManager.
    pub fn set_resource_manager(&self, rm: Probed<ResourceManager>) {
        match self.resource_manager.write() {
            Ok(mut g) => *g = Some(rm),
            Err(p) => *p.into_inner() = Some(rm),
        }
    }

    /// How to reach `job`'s JobMaster: the actor when it lives here, else the JobManager
    /// process this TaskManager process is linked to.
    pub fn job_master(&self, job: JobId) -> Option<JobMasterGateway> {
        if let Some(a) = self.job_masters.get(&job) {
            return Some(JobMasterGateway::Local(a.clone()));
        }
        let remote = match self.remote_job_manager.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        };
        remote.map(JobMasterGateway::Remote)
    }

    /// The job store of a highly available JobManager.
    pub fn job_store(&self) -> Option<Arc<dyn crate::peers::JobStore>> {
        match self.job_store.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Installs the job store (a leader does, before it accepts jobs).
    pub fn set_job_store(&self, store: Arc<dyn crate::peers::JobStore>) {
        match self.job_store.write() {
            Ok(mut g) => *g = Some(store),
            Err(p) => *p.into_inner() = Some(store),
        }
    }

    /// The network data plane, in a TaskManager process.
    pub fn data_plane(&self) -> Option<Arc<dyn crate::peers::DataPlane>> {
        match self.data_plane.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Per-slot plugin instances, if this process's TaskExecutors keep them.
    pub fn slot_code(&self) -> Option<Arc<dyn crate::peers::SlotCode>> {
        match self.slot_code.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Installs per-slot plugin instances (an embedded cluster does, at start).
    pub fn set_slot_code(&self, code: Arc<dyn crate::peers::SlotCode>) {
        match self.slot_code.write() {
            Ok(mut g) => *g = Some(code),
            Err(p) => *p.into_inner() = Some(code),
        }
    }

    /// Installs the network data plane (a TaskManager process does, at start).
    pub fn set_data_plane(&self, plane: Arc<dyn crate::peers::DataPlane>) {
        match self.data_plane.write() {
            Ok(mut g) => *g = Some(plane),
            Err(p) => *p.into_inner() = Some(plane),
        }
    }

    /// Whether this (TaskManager) process is linked to a JobManager process now.
    pub fn has_remote_job_manager(&self) -> bool {
        match self.remote_job_manager.read() {
            Ok(g) => g.is_some(),
            Err(p) => p.into_inner().is_some(),
        }
    }

    /// Sets (or, with None, clears) the link to the JobManager process.
    pub fn set_remote_job_manager(&self, jm: Option<RemoteJobManager>) {
        match self.remote_job_manager.write() {
            Ok(mut g) => *g = jm,
            Err(p) => *p.into_inner() = jm,
        }
    }

    /// The job's graph.
    pub fn graph(&self, job: JobId) -> Option<Arc<JobGraph>> {
        self.graphs.get(&job).map(|g| g.clone())
    }

    /// The job's checkpoint counters (created on first use).
    pub fn checkpoint_stats(&self, job: JobId) -> Arc<crate::checkpoint_coordinator::CheckpointStats> {
        self.checkpoint_stats.entry(job).or_default().clone()
    }

    /// What readers see of a job, if it was submitted here.
    pub fn view(&self, job: JobId) -> Option<Arc<crate::job_view::JobView>> {
        self.views.get(&job).map(|v| v.clone())
    }

    /// The job's counters (created on first use).
    pub fn counters(&self, job: JobId) -> Arc<JobCounters> {
        self.counters.entry(job).or_default().clone()
    }
}

/// Slot occupancy, readable without a message to the ResourceManager.
#[derive(Debug, Default)]
pub struct SlotCounts {
    /// Registered slots.
    pub total: std::sync::atomic::AtomicU64,
    /// Slots not allocated to a job.
    pub free: std::sync::atomic::AtomicU64,
}
