//! What every handler reaches the runtime through.
//!
//! Architecture invariant: the web crate knows the runtime only through `riffle_actors`
//! (the Dispatcher's gateway messages and the read-only views in `RuntimeShared`) and the
//! [`ProgramCatalog`] it is handed; it knows nothing of the cluster crate or the scenarios.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use riffle_actors::dispatcher::Dispatcher;
use riffle_actors::mailbox::Probed;
use riffle_actors::RuntimeShared;
use riffle_api::JobGraph;
use serde::Serialize;

use crate::config::RestConfig;
use crate::error::WebError;

/// One argument a program takes.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ProgramArg {
    /// `--name`.
    pub name: String,
    /// Its default, shown in forms.
    pub default: String,
    /// What it does.
    pub help: String,
}

/// A job a user can submit by name (the built-in scenarios; plugins come with the cluster).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ProgramInfo {
    /// Its name in `/programs/{name}/run`.
    pub name: String,
    /// What it does.
    pub description: String,
    /// Its arguments.
    pub args: Vec<ProgramArg>,
}

/// Builds jobs by name: handed to the server by whoever knows the programs (the `riffle`
/// binary), so this crate needs no dependency on them.
pub trait ProgramCatalog: Send + Sync {
    /// Every program.
    fn programs(&self) -> Vec<ProgramInfo>;
    /// Builds `name`'s job graph from its arguments (`--key value` pairs) and parallelism;
    /// a user error (unknown program, bad argument) is a [`WebError::BadRequest`].
    fn build(&self, name: &str, args: &[String], parallelism: Option<u32>) -> Result<JobGraph, WebError>;
}

impl std::fmt::Debug for dyn ProgramCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgramCatalog")
    }
}

/// Loads plugin libraries uploaded through `/jars` and builds their jobs: handed to the
/// server by the cluster, which owns plugin loading (this crate does not load libraries).
pub trait PluginRunner: Send + Sync {
    /// The jobs (name, description) the plugin at `path` offers; a [`WebError::BadRequest`]
    /// when it is not a usable riffle plugin.
    fn inspect(&self, path: &std::path::Path) -> Result<Vec<(String, String)>, WebError>;
    /// Builds job `entry` of the plugin at `path`. The library stays loaded for as long as
    /// the process runs, so jobs built from it can run.
    fn build(&self, path: &std::path::Path, entry: &str, args: &[String]) -> Result<JobGraph, WebError>;
}

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
    /// The runtime's registries and read-only views.
    pub shared: Arc<RuntimeShared>,
    /// Submissions, cancellations, job results and exception histories.
    pub dispatcher: Probed<Dispatcher>,
    /// Programs users may submit.
    pub programs: Option<Arc<dyn ProgramCatalog>>,
    /// Loads uploaded plugins (none: `/jars` refuses uploads).
    pub plugins: Option<Arc<dyn PluginRunner>>,
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
}

impl RestContext {
    /// A context over a runtime.
    pub fn new(
        shared: Arc<RuntimeShared>,
        dispatcher: Probed<Dispatcher>,
        programs: Option<Arc<dyn ProgramCatalog>>,
        config: RestConfig,
    ) -> Self {
        let metrics = crate::metrics::Metrics::new(shared.clone());
        Self {
            shared,
            dispatcher,
            programs,
            plugins: None,
            jars: Mutex::new(std::collections::BTreeMap::new()),
            config,
            triggers: Mutex::new(HashMap::new()),
            metrics,
            started_ms: riffle_api::time::now_ms(),
        }
    }

    /// With plugin uploads through `runner`.
    pub fn with_plugins(mut self, runner: Arc<dyn PluginRunner>) -> Self {
        self.plugins = Some(runner);
        self
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
