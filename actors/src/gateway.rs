//! Gateway messages between JobMaster, ResourceManager and TaskExecutor.
//!
//! Every message here is plain serde data (ids, never addresses), so the same messages work
//! in-process through `Addr`s and, later, between processes as rmp-serde frames.

use actix::Message;
use riffle_api::TaskError;
use serde::{Deserialize, Serialize};

use crate::ids::{AllocationId, ExecutionId, JobId, ResourceId};

/// TaskExecutor → ResourceManager: here are my slots.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "()")]
pub struct RegisterTaskExecutor {
    /// The executor.
    pub resource_id: ResourceId,
    /// Its number of slots.
    pub slots: u32,
}

/// TaskExecutor → ResourceManager: I am going away.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "()")]
pub struct UnregisterTaskExecutor {
    /// The executor.
    pub resource_id: ResourceId,
}

/// One slot given to a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotAssignment {
    /// The executor holding the slot.
    pub resource_id: ResourceId,
    /// The slot's index on that executor.
    pub slot_index: u32,
    /// The allocation.
    pub allocation_id: AllocationId,
}

/// Why slots could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum SlotError {
    /// The job needs more slots than the cluster may ever hand out.
    #[error("the job needs {needed} slots but slotmanager.number-of-slots.max is {max}")]
    AboveMax {
        /// Slots needed.
        needed: u32,
        /// The cap.
        max: u32,
    },
    /// Not enough slots came free in time.
    #[error(
        "could not acquire the required resources: the job needs {needed} slots, {free} of {total} slots \
         are free (slotmanager.number-of-slots.max = {max}), gave up after slot.request.timeout = {timeout_ms} ms"
    )]
    Timeout {
        /// Slots needed.
        needed: u32,
        /// Free slots at the time.
        free: u32,
        /// Registered slots.
        total: u32,
        /// The cap, or "unlimited".
        max: String,
        /// The timeout.
        timeout_ms: u64,
    },
    /// The ResourceManager is shutting down.
    #[error("the resource manager is shutting down")]
    ShuttingDown,
}

/// JobMaster → ResourceManager: I need `count` slots (with slot sharing: the job's maximum
/// parallelism).
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<Vec<SlotAssignment>, SlotError>")]
pub struct RequestSlots {
    /// The job.
    pub job_id: JobId,
    /// Slots needed.
    pub count: u32,
    /// How long to wait for them.
    pub timeout_ms: u64,
}

/// JobMaster → ResourceManager: the job no longer needs its slots.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "()")]
pub struct ReleaseSlots {
    /// The job.
    pub job_id: JobId,
}

/// Slot occupancy as the ResourceManager sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotReport {
    /// Registered slots.
    pub total: u32,
    /// Slots not allocated to any job.
    pub free: u32,
    /// Registered TaskExecutors.
    pub task_executors: u32,
}

/// Anyone → ResourceManager: how many slots are there?
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "SlotReport")]
pub struct GetSlotReport;

/// ResourceManager → TaskExecutor: slot `slot_index` now belongs to `job_id`.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "()")]
pub struct AllocateSlot {
    /// The job.
    pub job_id: JobId,
    /// The slot.
    pub slot_index: u32,
    /// The allocation.
    pub allocation_id: AllocationId,
}

/// ResourceManager → TaskExecutor: the slot is free again.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "()")]
pub struct FreeSlot {
    /// The slot.
    pub slot_index: u32,
}

/// JobMaster → TaskExecutor: run a subtask in a slot.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "()")]
pub struct DeployTask {
    /// Which execution.
    pub execution: ExecutionId,
    /// In which slot.
    pub slot_index: u32,
    /// The state to start from: this subtask's part of the latest completed checkpoint.
    pub restore: Option<Vec<u8>>,
}

/// JobMaster → TaskExecutor: stop a subtask.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "()")]
pub struct CancelTask {
    /// Which execution.
    pub execution: ExecutionId,
}

/// Where an execution is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskState {
    /// Deployed and running.
    Running,
    /// Ended normally.
    Finished,
    /// Stopped on request.
    Canceled,
    /// Failed: the error names the operator.
    Failed(TaskError),
}

impl TaskState {
    /// Whether the execution ended.
    pub fn is_terminal(&self) -> bool {
        !matches!(self, TaskState::Running)
    }
}

/// TaskExecutor → JobMaster: an execution changed state.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "()")]
pub struct TaskStateUpdate {
    /// Which execution.
    pub execution: ExecutionId,
    /// Its new state.
    pub state: TaskState,
    /// Where it ran.
    pub location: ResourceId,
}

/// Source subtask → JobMaster (→ its SourceCoordinator): give me work.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<SplitResponse, String>")]
pub struct SplitRequest {
    /// Which execution asks.
    pub execution: ExecutionId,
}

/// Splits for a reader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SplitResponse {
    /// Serialized splits.
    pub splits: Vec<Vec<u8>>,
    /// No more splits will come.
    pub no_more_splits: bool,
}

/// CheckpointCoordinator → TaskExecutor → source subtask: start checkpoint `id` (emit its
/// barrier into the stream).
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "()")]
pub struct TriggerCheckpoint {
    /// Which source execution.
    pub execution: ExecutionId,
    /// The checkpoint.
    pub checkpoint_id: u64,
    /// Exactly-once (aligned barriers) or at-least-once.
    pub aligned: bool,
}

/// CheckpointCoordinator → TaskExecutor → subtask: checkpoint `id` completed (or was aborted).
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "()")]
pub struct NotifyCheckpoint {
    /// Which execution.
    pub execution: ExecutionId,
    /// The checkpoint.
    pub checkpoint_id: u64,
    /// Completed (`true`) or aborted (`false`).
    pub completed: bool,
}

/// Subtask → JobMaster (→ CheckpointCoordinator): my part of checkpoint `id` is done.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "()")]
pub struct AcknowledgeCheckpoint {
    /// Which execution.
    pub execution: ExecutionId,
    /// The checkpoint.
    pub checkpoint_id: u64,
    /// The subtask's snapshot (an encoded `riffle_api::snapshot::SubtaskSnapshot`).
    pub state: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{AllocationId, ExecutionId, JobId, ResourceId};

    fn round_trip<T: Serialize + serde::de::DeserializeOwned + std::fmt::Debug>(v: &T) -> T {
        let bytes = rmp_serde::to_vec(v).expect("serializes");
        rmp_serde::from_slice(&bytes).expect("deserializes")
    }

    #[test]
    fn gateway_messages_cross_process_boundaries_as_msgpack() {
        let e = ExecutionId { job: JobId(7), vertex: 1, subtask: 2, attempt: 3 };
        let r = ResourceId("te-1".into());
        assert_eq!(round_trip(&RegisterTaskExecutor { resource_id: r.clone(), slots: 4 }).slots, 4);
        assert_eq!(round_trip(&RequestSlots { job_id: JobId(9), count: 2, timeout_ms: 5 }).count, 2);
        let a = SlotAssignment { resource_id: r.clone(), slot_index: 1, allocation_id: AllocationId(3) };
        assert_eq!(round_trip(&a), a);
        assert_eq!(
            round_trip(&DeployTask { execution: e, slot_index: 1, restore: Some(vec![9]) }).restore,
            Some(vec![9])
        );
        assert_eq!(round_trip(&CancelTask { execution: e }).execution, e);
        let failed = TaskState::Failed(riffle_api::TaskError::msg("map", "boom"));
        let u = round_trip(&TaskStateUpdate { execution: e, state: failed.clone(), location: r });
        assert_eq!(u.state, failed);
        let err = SlotError::AboveMax { needed: 3, max: 2 };
        assert_eq!(round_trip(&err), err);
        assert_eq!(
            round_trip(&SplitResponse { splits: vec![vec![1, 2]], no_more_splits: true }).splits,
            vec![vec![1, 2]]
        );
    }
}
