//! Per-slot plugin instances for the TaskExecutors of an embedded cluster (`riffle serve`, the
//! `MiniCluster`): the same [`SlotInstances`] a TaskManager process keeps, behind the
//! runtime's [`SlotCode`] hook, so a plugin job behaves alike wherever its slots are: one
//! instance of its library per slot and job, kept across restarts, unloaded when the job
//! gives the slot back.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use riffle_actors::peers::SlotCode;
use riffle_actors::JobId;
use riffle_actors::RuntimeError;
use riffle_api::{JobGraph, ProgramSource};

use crate::error::ClusterError;
use crate::remote::slot_instances::SlotInstances;

/// See the [module docs](self).
pub struct EmbeddedSlotCode {
    instances: Mutex<SlotInstances>,
    dir: PathBuf,
}

impl EmbeddedSlotCode {
    /// Instances whose library copies live in `dir`.
    pub fn new(dir: PathBuf) -> Self {
        Self { instances: Mutex::new(SlotInstances::new(dir.clone())), dir }
    }

    fn instances(&self) -> std::sync::MutexGuard<'_, SlotInstances> {
        self.instances.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl SlotCode for EmbeddedSlotCode {
    fn graph_for(&self, job: JobId, slot: u32, graph: &JobGraph) -> Result<Option<Arc<JobGraph>>, RuntimeError> {
        let Some(origin) = graph.origin() else { return Ok(None) };
        let ProgramSource::Plugin { path, entry, .. } = &origin.program else { return Ok(None) };
        let library = local_library(path)?;
        let built = self.instances().graph_for(job, slot, &library, entry, &origin.args, &graph.config)?;
        Ok(Some(built))
    }

    fn release(&self, job: JobId, slot: u32) {
        self.instances().release(job, slot);
    }
}

/// Where the library of a plugin origin is in this process: a path (or `file://` URL) as it
/// is, an `http(s)://` URL in the artifact cache (where the JobManager fetched it; a miss
/// fetches it again).
fn local_library(location: &str) -> Result<PathBuf, ClusterError> {
    match crate::artifacts::parse_location(location)? {
        crate::artifacts::Location::Local(path) => Ok(path),
        crate::artifacts::Location::Http(url) => {
            let settings = crate::artifacts::process_settings();
            Ok(crate::artifacts::fetch_into_cache(&url, &settings)?.path)
        }
    }
}

impl Drop for EmbeddedSlotCode {
    fn drop(&mut self) {
        self.instances().release_all();
        // Empty once every instance went (a copy still in use stays with its directory).
        let _ = std::fs::remove_dir(&self.dir);
    }
}
