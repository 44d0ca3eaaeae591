//! Remote actors: TaskManager processes linked to the JobManager process.
//!
//! A TaskManager process connects to the JobManager's RPC address (`jobmanager.rpc.address`
//! and `.port`, the advertised ones), registers its TaskExecutor and slots, and from then on
//! both sides heartbeat every `heartbeat.interval`; silence for `heartbeat.timeout`, or a
//! broken link, ends it. The JobManager then unregisters the TaskExecutor, whose subtasks fail
//! (the job restarts elsewhere); the TaskManager cancels everything it ran and connects
//! again, as a new registration.
//!
//! Over the link travel the gateway messages of `riffle_actors::peers` ([`protocol`]). A job
//! graph cannot travel (it holds user code): before a job's first task the JobManager sends
//! the graph's origin, and the TaskManager builds the same graph with its
//! [`ProgramBuilder`]. Commands carry the JobManager's session, so a TaskManager never obeys
//! a JobManager it has left.
//!
//! - [`jobmanager_side`]: the listener and one task per TaskManager link.
//! - [`taskmanager_side`]: the TaskManager's link, reconnecting with backoff.

pub mod jobmanager_side;
pub mod protocol;
pub mod slot_instances;
pub mod taskmanager_side;

use riffle_api::{JobGraph, JobOrigin};

/// Builds a job graph from its origin in a TaskManager process (the built-in programs and
/// plugin loading live above this crate, in the `riffle` binary).
pub trait ProgramBuilder: Send + Sync {
    /// The graph `origin` describes, or why it cannot be built here.
    fn build(&self, origin: &JobOrigin) -> Result<JobGraph, String>;
}

impl<F> ProgramBuilder for F
where
    F: Fn(&JobOrigin) -> Result<JobGraph, String> + Send + Sync,
{
    fn build(&self, origin: &JobOrigin) -> Result<JobGraph, String> {
        self(origin)
    }
}

/// How long a new link may take to register before it is dropped.
pub const REGISTRATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
