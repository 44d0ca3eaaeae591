//! What readers (REST, metrics, the HA store) see of each job.

use std::sync::{Arc, RwLock};

use dashmap::DashMap;
use riffle_api::metrics::JobCounters;

use crate::checkpoint_coordinator::CheckpointStats;
use crate::ids::JobId;
use crate::job_view::JobView;
use crate::peers::JobStore;

/// Per-job records written by the runtime and read by the REST API and metrics: views,
/// counters, checkpoint statistics, and (highly available) the job store.
#[derive(Default)]
pub struct JobRecords {
    /// What the REST API and the web UI read about each job.
    pub views: DashMap<JobId, Arc<JobView>>,
    /// Job counters by job.
    pub counters: DashMap<JobId, Arc<JobCounters>>,
    /// Checkpoint counters by job.
    pub checkpoint_stats: DashMap<JobId, Arc<CheckpointStats>>,
    /// In a highly available JobManager: where submitted jobs are kept for the next leader.
    job_store: RwLock<Option<Arc<dyn JobStore>>>,
}

impl JobRecords {
    /// What readers see of a job, if it was submitted here.
    pub fn view(&self, job: JobId) -> Option<Arc<JobView>> {
        self.views.get(&job).map(|v| v.clone())
    }

    /// The job's counters (created on first use).
    pub fn counters(&self, job: JobId) -> Arc<JobCounters> {
        self.counters.entry(job).or_default().clone()
    }

    /// The job's checkpoint counters (created on first use).
    pub fn checkpoint_stats(&self, job: JobId) -> Arc<CheckpointStats> {
        self.checkpoint_stats.entry(job).or_default().clone()
    }

    /// The job store of a highly available JobManager.
    pub fn job_store(&self) -> Option<Arc<dyn JobStore>> {
        super::read(&self.job_store)
    }

    /// Installs the job store (a leader does, before it accepts jobs).
    pub fn set_job_store(&self, store: Arc<dyn JobStore>) {
        super::write(&self.job_store, Some(store));
    }
}
