//! Addresses behind gateway ids in this process.

use std::sync::atomic::{AtomicU32, AtomicU64};
use std::sync::RwLock;

use dashmap::DashMap;

use crate::ids::{JobId, ResourceId};
use crate::job_master::JobMaster;
use crate::mailbox::Probed;
use crate::peers::{JobMasterGateway, RemoteJobManager, TaskExecutorGateway};
use crate::resource_manager::ResourceManager;

/// Where the actors are: TaskExecutors (here or over a link), the ResourceManager, and each
/// job's JobMaster (here, or in the JobManager process a TaskManager process is linked to).
#[derive(Default)]
pub struct Directory {
    /// TaskExecutors by id: actors of this process or links to TaskManager processes.
    pub task_executors: DashMap<ResourceId, TaskExecutorGateway>,
    /// JobMasters of this process by job.
    pub job_masters: DashMap<JobId, Probed<JobMaster>>,
    /// Slot occupancy as the ResourceManager last published it.
    pub slots: SlotCounts,
    /// How often the JobManager restarted the ResourceManager.
    pub resource_manager_restarts: AtomicU32,
    /// The ResourceManager (replaced when the JobManager restarts it).
    resource_manager: RwLock<Option<Probed<ResourceManager>>>,
    /// In a TaskManager process: the JobManager process, where every JobMaster lives.
    remote_job_manager: RwLock<Option<RemoteJobManager>>,
}

impl Directory {
    /// The current ResourceManager.
    pub fn resource_manager(&self) -> Option<Probed<ResourceManager>> {
        super::read(&self.resource_manager)
    }

    /// Records the current ResourceManager.
    pub fn set_resource_manager(&self, rm: Probed<ResourceManager>) {
        super::write(&self.resource_manager, Some(rm));
    }

    /// How to reach `job`'s JobMaster: the actor when it lives here, else the JobManager
    /// process this TaskManager process is linked to.
    pub fn job_master(&self, job: JobId) -> Option<JobMasterGateway> {
        if let Some(a) = self.job_masters.get(&job) {
            return Some(JobMasterGateway::Local(a.clone()));
        }
        super::read(&self.remote_job_manager).map(JobMasterGateway::Remote)
    }

    /// Whether this (TaskManager) process is linked to a JobManager process now.
    pub fn has_remote_job_manager(&self) -> bool {
        super::read(&self.remote_job_manager).is_some()
    }

    /// Sets (or, with None, clears) the link to the JobManager process.
    pub fn set_remote_job_manager(&self, jm: Option<RemoteJobManager>) {
        super::write(&self.remote_job_manager, jm);
    }
}

/// Slot occupancy, readable without a message to the ResourceManager.
#[derive(Debug, Default)]
pub struct SlotCounts {
    /// Registered slots.
    pub total: AtomicU64,
    /// Slots not allocated to a job.
    pub free: AtomicU64,
}
