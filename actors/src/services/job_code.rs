//! The job graphs this process runs.

use std::sync::{Arc, RwLock};

use dashmap::DashMap;
use riffle_api::JobGraph;

use crate::ids::JobId;
use crate::peers::SlotCode;

/// Job graphs by job, as TaskExecutors build subtasks from them: in a JobManager process the
/// Dispatcher registers each submitted graph and removes it when the job leaves; in a
/// TaskManager process the link builds each job's graph from its origin. Plus per-slot
/// instances of a plugin job's code.
#[derive(Default)]
pub struct JobCode {
    /// Job graphs by job.
    pub graphs: DashMap<JobId, Arc<JobGraph>>,
    /// Graphs built by a slot's own instance of a job's plugin: a subtask in that slot runs
    /// this one rather than the job's.
    pub slot_graphs: DashMap<(JobId, u32), Arc<JobGraph>>,
    /// In an embedded cluster: per-slot instances of plugin jobs' code.
    slot_code: RwLock<Option<Arc<dyn SlotCode>>>,
}

impl JobCode {
    /// The job's graph.
    pub fn graph(&self, job: JobId) -> Option<Arc<JobGraph>> {
        self.graphs.get(&job).map(|g| g.clone())
    }

    /// Per-slot plugin instances, if this process's TaskExecutors keep them.
    pub fn slot_code(&self) -> Option<Arc<dyn SlotCode>> {
        super::read(&self.slot_code)
    }

    /// Installs per-slot plugin instances (an embedded cluster does, at start).
    pub fn set_slot_code(&self, code: Arc<dyn SlotCode>) {
        super::write(&self.slot_code, Some(code));
    }
}
