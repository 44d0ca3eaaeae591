//! riffle's runtime as actors.
//!
//! The actor tree, each parent holding and supervising its children:
//! ```text
//! JobManager ── Dispatcher ── JobMaster (per job) ── SourceCoordinator (per source)
//!            └─ ResourceManager (SlotManager)
//! TaskExecutor ── Slot (one Arbiter thread each) ── Subtask (one operator chain each)
//! ```
//! Control messages between JobMaster, ResourceManager and TaskExecutor are the serde
//! [`gateway`] messages; data moves between subtasks in bounded batch channels
//! ([`exchange`]) that carry watermarks and end-of-partition in-band.
//!
//! Architecture invariant: this crate knows the job graph only through riffle-api's
//! type-erased vertex interface; it never sees a record type.

pub mod checkpoint_coordinator;
pub mod checkpoint_history;
pub mod checkpoint_storage;
pub mod clock;
pub mod debloat;
pub mod dispatcher;
pub mod error;
pub mod exception_history;
pub mod exchange;
pub mod gateway;
pub mod ids;
pub mod incremental;
pub mod input_gate;
pub mod job_manager;
pub mod job_master;
pub mod job_status;
pub mod job_view;
pub mod local_recovery;
pub mod log_context;
pub mod mailbox;
pub mod peers;
pub mod resource_manager;
pub mod restart_strategy;
pub mod restore_plan;
pub mod services;
pub mod shared_state_registry;
pub mod slot;
pub mod slot_manager;
pub mod snapshot_writer;
pub mod source_coordinator;
pub mod state_backend;
pub mod subtask;
pub mod supervision;
pub mod task_executor;
pub mod thread_name;

pub use error::RuntimeError;
pub use ids::{ExecutionId, JobId, ResourceId};
pub use job_master::JobResult;
pub use job_status::JobStatus;
pub use services::RuntimeShared;

/// The configuration options this crate reads, for the registry
/// ([`riffle_api::config_keys::Registry`]).
pub fn options() -> Vec<&'static dyn riffle_api::OptionInfo> {
    [
        restart_strategy::OPTIONS,
        checkpoint_coordinator::OPTIONS,
        job_master::OPTIONS,
        state_backend::OPTIONS,
        &[&checkpoint_history::HISTORY_SIZE],
    ]
    .concat()
}
