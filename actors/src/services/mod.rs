//! What the actors of one process share, split by role.
//!
//! Gateway messages carry ids, not addresses, so that the same messages travel between
//! processes; in one process an id is looked up in a [`Directory`]. Each role gets the parts
//! it needs and nothing else:
//!
//! | part | holds | given to |
//! |---|---|---|
//! | [`Directory`] | addresses: TaskExecutors, the ResourceManager, JobMasters (here or over the link) | ResourceManager, Dispatcher, JobMaster, coordinator, TaskExecutor, REST |
//! | [`JobRecords`] | what readers see of jobs: views, counters, checkpoint stats, the HA job store | Dispatcher, JobMaster, coordinator, TaskExecutor, REST, metrics |
//! | [`JobCode`] | job graphs to run: the submitted ones, per-slot plugin instances | Dispatcher (registers), TaskExecutor (reads), data plane |
//! | [`DataServices`] | in-process channels and the network data plane | TaskExecutor, JobMaster (drops an attempt's channels), data plane |
//! | [`TaskServices`] | one subtask's view: its JobMaster, counters, channels, configuration | a subtask and its snapshot writer |
//!
//! [`RuntimeShared`] bundles the parts for the code that wires a process together (the
//! MiniCluster, a TaskManager process, an HA JobManager) and for nothing else.
//!
//! Architecture Invariant: a subtask never looks a job's JobMaster up; it is handed the one
//! gateway of the attempt that deployed it ([`TaskServices::job_master`]).

mod data;
mod directory;
mod job_code;
mod job_records;
mod task_services;

use std::sync::Arc;

use riffle_api::Configuration;

pub use data::DataServices;
pub use directory::{Directory, SlotCounts};
pub use job_code::JobCode;
pub use job_records::JobRecords;
pub use task_services::TaskServices;

/// Reads a lock that a panicking writer may have poisoned (the value is still whole: every
/// writer replaces it in one assignment).
fn read<T: Clone>(lock: &std::sync::RwLock<T>) -> T {
    match lock.read() {
        Ok(g) => g.clone(),
        Err(p) => p.into_inner().clone(),
    }
}

/// Replaces the value behind a lock (see [`read`]).
fn write<T>(lock: &std::sync::RwLock<T>, value: T) {
    match lock.write() {
        Ok(mut g) => *g = value,
        Err(p) => *p.into_inner() = value,
    }
}

/// The parts of one process's services, for wiring code: actors take the parts they need.
pub struct RuntimeShared {
    /// The cluster configuration.
    pub config: Configuration,
    /// Addresses behind gateway ids.
    pub directory: Arc<Directory>,
    /// What readers see of each job.
    pub jobs: Arc<JobRecords>,
    /// Job graphs to run.
    pub code: Arc<JobCode>,
    /// Data channels.
    pub data: Arc<DataServices>,
}

impl RuntimeShared {
    /// Empty parts with `config`.
    pub fn new(config: Configuration) -> Arc<Self> {
        Arc::new(Self {
            config,
            directory: Arc::default(),
            jobs: Arc::default(),
            code: Arc::default(),
            data: Arc::default(),
        })
    }
}
