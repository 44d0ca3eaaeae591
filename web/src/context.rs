//! What every handler reaches the runtime through.
//!
//! Architecture invariant: the web crate knows the runtime only through `riffle_actors`
//! (the Dispatcher's gateway messages and the read-only views in `RuntimeShared`) and builds
//! jobs only through the [`Programs`] it is handed; it knows nothing of the cluster crate or
//! the scenarios.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use riffle_actors::dispatcher::Dispatcher;
use riffle_actors::mailbox::Probed;
use riffle_actors::services::{Directory, JobRecords};
use riffle_actors::RuntimeShared;
pub use riffle_api::{ProgramArg, ProgramInfo, Programs};

use crate::config::RestConfig;

/// An uploaded plugin.
#[derive(Debug, Clone)]
pub struct Jar {
    /// The name the client gave it (shown, never used as a path).
    pub name: String,
    /// Where it is stored: `<upload dir>/<content hash>.so`.
    pub path: std::path::PathBuf,
    /// Upload time, epoch ms.
    pub uploaded_ms: i64,
    /// Its jobs (name, description).
    pub entries: Vec<(String, String)>,
}

/// Where an asynchronous operation (savepoint, stop) is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// Still running.
    InProgress,
    /// Done: the savepoint's location, or why it failed.
    Done(Result<String, riffle_actors::RuntimeError>),
}

/// The asynchronous operations, by job and trigger id.
pub type Triggers = Mutex<HashMap<(riffle_actors::JobId, String), Operation>>;

/// Shared by every handler.
pub struct RestContext {
    /// The cluster configuration.
    pub cluster_config: riffle_api::Configuration,
    /// Where the ResourceManager, TaskExecutors and JobMasters are.
    pub directory: Arc<Directory>,
    /// What the runtime records of each job: views, counters, checkpoint statistics.
    pub jobs: Arc<JobRecords>,
    /// Submissions, cancellations, job results and exception histories.
    pub dispatcher: Probed<Dispatcher>,
    /// Builds every job submitted here: the programs users may submit by name (`/programs`)
    /// and the jobs of uploaded plugins (`/jars`; none: both refuse).
    pub programs: Option<Arc<dyn Programs>>,
    /// Uploaded plugins by id.
    pub jars: Mutex<std::collections::BTreeMap<String, Jar>>,
    /// The server's settings.
    pub config: RestConfig,
    /// Savepoint and stop operations.
    pub triggers: Triggers,
    /// Metrics exported at `/metrics`.
    pub metrics: crate::metrics::Metrics,
    /// When the server started, epoch ms.
    pub started_ms: i64,
    /// The address this server listens on (`host:port`), once bound: where a TaskExecutor
    /// embedded in this process is reached, as pages show it.
    pub local_address: std::sync::OnceLock<String>,
    /// Previous CPU readings of the processes, for their CPU load.
    pub cpu_load: crate::routes::process_metrics::CpuLoad,
    /// Every option riffle reads, to check a submission's `flinkConfiguration` against (none:
    /// keys are not checked, values still are where the runtime reads them).
    pub config_registry: Option<riffle_api::config_keys::Registry>,
    /// Checkpoint and failover spans pushed over OTLP (`traces.reporter.otlp.endpoint`).
    _traces: Option<crate::traces::TraceReporter>,
}

impl RestContext {
    /// A context over a runtime.
    pub fn new(
        shared: &RuntimeShared,
        dispatcher: Probed<Dispatcher>,
        programs: Option<Arc<dyn Programs>>,
        config: RestConfig,
    ) -> Self {
        let traces = config.otlp_traces.as_deref().and_then(|endpoint| {
            match crate::traces::TraceReporter::start(shared.jobs.clone(), endpoint) {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::warn!("checkpoint and failover spans are not reported to {endpoint}: {e}");
                    None
                }
            }
        });
        let metrics = crate::metrics::Metrics::new(shared.jobs.clone(), shared.directory.clone(), config.otlp.clone());
        Self {
            cluster_config: shared.config.clone(),
            directory: shared.directory.clone(),
            jobs: shared.jobs.clone(),
            dispatcher,
            programs,
            jars: Mutex::new(std::collections::BTreeMap::new()),
            config,
            triggers: Mutex::new(HashMap::new()),
            metrics,
            started_ms: riffle_api::time::now_ms(),
            local_address: std::sync::OnceLock::new(),
            cpu_load: Default::default(),
            config_registry: None,
            _traces: traces,
        }
    }

    /// Checks submissions' configurations against `registry`.
    pub fn with_config_registry(mut self, registry: riffle_api::config_keys::Registry) -> Self {
        self.config_registry = Some(registry);
        self
    }

    /// Where the TaskExecutor `id` runs, as `host:port`: a TaskManager process's advertised
    /// address; for a TaskExecutor embedded in this process, this server's address. None
    /// for an unknown TaskExecutor (gone since).
    pub fn endpoint(&self, id: &str) -> Option<String> {
        let te = self.directory.task_executors.iter().find(|e| e.key().to_string() == id).map(|e| e.value().clone())?;
        match te {
            riffle_actors::peers::TaskExecutorGateway::Remote(r) => Some(r.latest().address),
            riffle_actors::peers::TaskExecutorGateway::Local(_) => {
                Some(self.local_address.get().cloned().unwrap_or_else(|| "localhost".into()))
            }
        }
    }

    /// Records an operation's state.
    pub fn set_operation(&self, job: riffle_actors::JobId, trigger: &str, op: Operation) {
        let mut g = self.triggers.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded: the oldest finished operations go first.
        if g.len() >= MAX_TRIGGERS {
            let done: Vec<_> = g.iter().filter(|(_, o)| **o != Operation::InProgress).map(|(k, _)| k.clone()).collect();
            for k in done.into_iter().take(MAX_TRIGGERS / 4 + 1) {
                g.remove(&k);
            }
        }
        g.insert((job, trigger.to_string()), op);
    }

    /// An operation's state.
    pub fn operation(&self, job: riffle_actors::JobId, trigger: &str) -> Option<Operation> {
        self.triggers.lock().unwrap_or_else(|e| e.into_inner()).get(&(job, trigger.to_string())).cloned()
    }
}

/// How many savepoint/stop operations are remembered.
const MAX_TRIGGERS: usize = 1024;
