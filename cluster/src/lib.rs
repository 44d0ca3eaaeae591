//! riffle-cluster: configuration and the ways to run the runtime: the MiniCluster (the whole
//! runtime in the caller's process, optionally accepting TaskManager processes), and the
//! TaskManager process linked to it ([`remote`], [`taskmanager`]).

pub mod artifacts;
pub mod config_file;
pub mod error;
pub mod ha;
pub mod heartbeat;
pub mod logging;
pub mod minicluster;
pub mod plugin;
pub mod remote;
pub mod shuffle;
pub mod slot_code;
pub mod taskmanager;
pub mod transport;

pub use error::ClusterError;
pub use minicluster::{CheckpointCounts, JobHandle, MiniCluster, MiniClusterConfig};
pub use riffle_actors::dispatcher::JobOverview;
pub use riffle_actors::exception_history::{ExceptionEntry, ExceptionPage};
pub use riffle_actors::gateway::SlotReport;
pub use riffle_actors::{JobId, JobResult, JobStatus};
pub use riffle_api::Configuration;

/// The configuration options this crate reads, for the registry
/// ([`riffle_api::config_keys::Registry`]).
/// The options of every crate this one knows (riffle-api, riffle-actors, riffle-web and its
/// own): what a MiniCluster's REST API checks submissions against unless it is handed the
/// binary's whole registry.
pub fn config_registry() -> riffle_api::config_keys::Registry {
    riffle_api::config_keys::Registry::new(
        [riffle_api::options(), riffle_actors::options(), riffle_web::options(), options()].concat(),
    )
}

pub fn options() -> Vec<&'static dyn riffle_api::OptionInfo> {
    [
        minicluster::OPTIONS,
        remote::jobmanager_side::OPTIONS,
        taskmanager::OPTIONS,
        shuffle::buffer_pool::OPTIONS,
        heartbeat::OPTIONS,
        ha::config::OPTIONS,
        logging::OPTIONS,
        artifacts::OPTIONS,
    ]
    .concat()
}
