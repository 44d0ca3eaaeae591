//! Per-slot instances of plugin libraries (FLINK-16408's per-slot class loader): in a
//! TaskManager process, a job's subtasks in slot *i* run code from that slot's own copy of the
//! job's library, loaded from a copy of the cached file (a separate file is a separate load,
//! so its statics are its own). The slot keeps the instance while the job holds the slot, so a
//! restarted subtask finds the statics its previous attempt left; when the job gives the slot
//! back, the instance is unloaded and its copy deleted, as soon as no subtask uses its graph.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use riffle_actors::JobId;
use riffle_api::{Configuration, JobGraph};

use crate::error::ClusterError;
use crate::plugin::Plugin;

struct Instance {
    graph: Arc<JobGraph>,
    plugin: Arc<Plugin>,
    copy: PathBuf,
}

/// A TaskManager's slot instances.
pub struct SlotInstances {
    dir: PathBuf,
    live: HashMap<(JobId, u32), Instance>,
    retiring: Vec<Instance>,
}

impl SlotInstances {
    /// Instances whose library copies live in `dir`.
    pub fn new(dir: PathBuf) -> Self {
        Self { dir, live: HashMap::new(), retiring: Vec::new() }
    }

    /// The graph of `job` for `slot`, built by the slot's own instance of `library` (loaded on
    /// the slot's first task of the job, kept after).
    pub fn graph_for(
        &mut self,
        job: JobId,
        slot: u32,
        library: &Path,
        entry: &str,
        args: &[String],
        config: &Configuration,
    ) -> Result<Arc<JobGraph>, ClusterError> {
        if let Some(i) = self.live.get(&(job, slot)) {
            return Ok(i.graph.clone());
        }
        let io = |what: String| move |source| ClusterError::Io { what, source };
        std::fs::create_dir_all(&self.dir).map_err(io(format!("cannot create {}", self.dir.display())))?;
        let copy = self.dir.join(format!("{job}-slot{slot}.so"));
        std::fs::copy(library, &copy).map_err(io(format!("cannot copy the plugin library for slot {slot}")))?;
        // Loaded and built on a thread of its own that ends right after: thread-locals the
        // library's code sets up there go with that thread, and do not pin the library in
        // memory after it is released (glibc keeps a library with live thread-local
        // destructors mapped until their threads end).
        let loaded = std::thread::scope(|s| {
            s.spawn(|| {
                crate::plugin::load(&copy).and_then(|p| {
                    let mut g = p.build(entry, args)?;
                    g.config = config.clone();
                    Ok((Arc::new(p), Arc::new(g)))
                })
            })
            .join()
            .unwrap_or_else(|_| Err(ClusterError::Plugin("loading the plugin panicked".to_string())))
        });
        match loaded {
            Ok((plugin, graph)) => {
                tracing::info!(%job, slot, "slot loaded its own instance of the job's plugin");
                self.live.insert((job, slot), Instance { graph: graph.clone(), plugin, copy });
                Ok(graph)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&copy);
                Err(e)
            }
        }
    }

    /// `job` gave `slot` back: its instance goes once no subtask uses it.
    pub fn release(&mut self, job: JobId, slot: u32) {
        if let Some(i) = self.live.remove(&(job, slot)) {
            self.retiring.push(i);
        }
        self.sweep();
    }

    /// Every slot was given back (the JobManager is gone).
    pub fn release_all(&mut self) {
        self.retiring.extend(self.live.drain().map(|(_, i)| i));
        self.sweep();
    }

    /// Unloads released instances that no subtask uses any more.
    pub fn sweep(&mut self) {
        let (idle, busy): (Vec<Instance>, Vec<Instance>) =
            std::mem::take(&mut self.retiring).into_iter().partition(|i| Arc::strong_count(&i.graph) == 1);
        self.retiring = busy;
        for i in idle {
            // The graph holds closures of the library: it goes first, then the library.
            let Instance { graph, plugin, copy } = i;
            drop(graph);
            drop(plugin);
            let _ = std::fs::remove_file(&copy);
        }
    }

    /// Instances loaded now (released ones still in use included).
    pub fn loaded(&self) -> usize {
        self.live.len() + self.retiring.len()
    }
}
