//! riffle: a distributed stream processor built as an actor runtime.
//!
//! This facade re-exports the DataStream API ([`StreamEnvironment`], [`DataStream`], windows,
//! watermarks, process functions, FLIP-27 sources), the embedded runtime ([`MiniCluster`]) and
//! the built-in [`scenarios`]. See the README for a tour.
//!
//! ```
//! use riffle::{MiniCluster, MiniClusterConfig, StreamEnvironment};
//!
//! let cluster = MiniCluster::start(MiniClusterConfig::new(1, 2)).unwrap();
//! let mut env = StreamEnvironment::new();
//! env.set_parallelism(2);
//! let sums = env
//!     .from_sequence(1, 100)
//!     .key_by(|x: &u64| x % 2)
//!     .reduce(|a, b| a + b)
//!     .collect();
//! let job = cluster.submit(env.build_job_graph("sums").unwrap()).unwrap();
//! let last: u64 = sums.max().unwrap();
//! assert_eq!(last, 2550); // 2 + 4 + ... + 100
//! assert_eq!(job.wait(None).unwrap().status, riffle::JobStatus::Finished);
//! ```

pub use riffle_api::*;
pub use riffle_cluster::{
    ClusterError, JobHandle, JobId, JobResult, JobStatus, MiniCluster, MiniClusterConfig, SlotReport,
};
/// Formats, the file source and Arrow rows in streams (`riffle::connectors::RowStreamExt`).
pub use riffle_connectors as connectors;
pub use riffle_scenarios as scenarios;
/// Flink SQL: `riffle::sql::TableEnvironment`, the catalog, table connectors.
pub use riffle_sql as sql;

/// This process's programs: the built-in ones and plugin jobs as one [`Programs`]
/// ([`scenarios::catalog::programs`]), made once, so that the REST API, a TaskManager, HA
/// recovery, application mode and `riffle run --plugin` all build jobs through the same object
/// (and load each plugin library once).
pub fn programs() -> std::sync::Arc<dyn Programs> {
    static PROGRAMS: std::sync::OnceLock<std::sync::Arc<dyn Programs>> = std::sync::OnceLock::new();
    PROGRAMS.get_or_init(scenarios::catalog::programs).clone()
}

/// Every configuration option riffle reads, collected from the crates that declare them: what
/// unknown keys in a configuration are checked against, and what docs/configuration.md is
/// generated from.
pub fn config_options() -> riffle_api::config_keys::Registry {
    riffle_api::config_keys::Registry::new(
        [
            riffle_api::options(),
            riffle_actors::options(),
            riffle_web::options(),
            riffle_cluster::options(),
            riffle_sql::options(),
        ]
        .concat(),
    )
}

/// docs/configuration.md as the registry generates it (`riffle config-docs` prints it).
pub fn config_docs() -> String {
    config_options().markdown()
}
