//! Where a job graph came from, so that another process can build the same graph.
//!
//! A `JobGraph` holds user closures and cannot travel between processes. What travels is its
//! origin: a built-in program or a plugin entry with the exact arguments it was built from.
//! A TaskManager process builds the graph again from it; building is deterministic (vertex
//! and edge ids follow definition order), so both sides agree on every id.

use serde::{Deserialize, Serialize};

use crate::Configuration;

/// The program a job graph was built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProgramSource {
    /// A program compiled into the `riffle` binary (`wordcount`, `nexmark`, ...).
    Builtin(String),
    /// A job of a plugin library: the library file (content-addressed on the JobManager's
    /// side) and the job's entry name.
    Plugin {
        /// The library file.
        path: String,
        /// The job's name inside the plugin.
        entry: String,
        /// The library's SHA-256 (hex): a TaskManager caches libraries by it and fetches one
        /// from the JobManager only when it has no copy.
        digest: String,
    },
}

/// How to build a job graph again: the program, its resolved arguments (defaults that vary
/// from call to call, such as a generated output path, already filled in), parallelism and
/// the job's own configuration. Every way a job is started (`riffle run`, REST programs and
/// jars, application mode, HA recovery, a TaskManager building its copy) builds its graph
/// from one of these through [`crate::Programs::build`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobOrigin {
    /// The program.
    pub program: ProgramSource,
    /// Its arguments.
    pub args: Vec<String>,
    /// The parallelism it was built with, when the builder takes one.
    pub parallelism: Option<u32>,
    /// The job's own options (`-D`, REST `flinkConfiguration`, a savepoint to resume from),
    /// over what the program sets itself; the cluster's configuration is under both.
    #[serde(default)]
    pub config: Configuration,
}

impl JobOrigin {
    /// Built-in program `name` with `args`, at `parallelism` (its default when `None`).
    pub fn builtin(name: &str, args: &[String], parallelism: Option<u32>) -> Self {
        Self {
            program: ProgramSource::Builtin(name.to_string()),
            args: args.to_vec(),
            parallelism,
            config: Configuration::new(),
        }
    }

    /// Job `entry` of the plugin library at `path` with `args`. The digest is left empty: the
    /// graph built from it records the library's ([`crate::programs::Programs::build`]).
    pub fn plugin(path: &str, entry: &str, args: &[String]) -> Self {
        Self {
            program: ProgramSource::Plugin { path: path.to_string(), entry: entry.to_string(), digest: String::new() },
            args: args.to_vec(),
            parallelism: None,
            config: Configuration::new(),
        }
    }

    /// The same origin with the job's own options `config`.
    pub fn with_config(mut self, config: Configuration) -> Self {
        self.config = config;
        self
    }
}
