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
pub use riffle_scenarios as scenarios;
