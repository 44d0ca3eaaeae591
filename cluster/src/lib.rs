//! riffle-cluster: configuration and the ways to run the runtime. For now the MiniCluster
//! (everything in the caller's process); remote transport, HA and plugins come later.

pub mod config_file;
pub mod error;
pub mod ha;
pub mod heartbeat;
pub mod logging;
pub mod minicluster;
pub mod plugin;
pub mod transport;

pub use error::ClusterError;
pub use minicluster::{CheckpointCounts, JobHandle, MiniCluster, MiniClusterConfig};
pub use riffle_actors::dispatcher::JobOverview;
pub use riffle_actors::exception_history::{ExceptionEntry, ExceptionPage};
pub use riffle_actors::gateway::SlotReport;
pub use riffle_actors::{JobId, JobResult, JobStatus};
pub use riffle_api::Configuration;
