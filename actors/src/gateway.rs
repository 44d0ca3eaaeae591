//! Gateway messages between JobMaster, ResourceManager and TaskExecutor.
//!
//! Every message here is plain serde data (ids, never addresses), so the same messages work
//! in-process through `Addr`s and, later, between processes as rmp-serde frames.

use actix::Message;
use riffle_api::TaskError;
use riffle_state::checkpoint_metadata::StateHandle;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

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
    /// Why: shut down, heartbeat timeout, link closed (tasks it ran fail with this).
    pub reason: String,
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
    /// The state to start from: its part of the checkpoint or savepoint the job resumes from.
    pub restore: Option<TaskRestore>,
    /// Where the job's slots are, by subtask index (slot sharing puts subtask *i* of every
    /// vertex in slot *i*), when some are in other processes: channels to a subtask on another
    /// TaskExecutor go over the network to its data address. None: all in this process.
    #[serde(default)]
    pub peers: Option<Vec<PeerLocation>>,
}

/// Where a job's slot is: its TaskExecutor and that TaskManager's data address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerLocation {
    /// The TaskExecutor.
    pub resource_id: ResourceId,
    /// Its TaskManager's advertised data address (`host:port`); None for a TaskExecutor of
    /// the JobManager's own process.
    pub data_address: Option<String>,
}

/// Where a subtask's state of a checkpoint is, resolved to something the subtask can read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestoreState {
    /// The encoded state itself.
    Inline(ByteBuf),
    /// A state file (absolute path).
    File(String),
}

/// What a subtask restores: the state of the former subtask(s) whose key groups it owns
/// (one at the same parallelism, several after rescaling), and its reader's position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRestore {
    /// The checkpoint restored from.
    pub checkpoint_id: u64,
    /// Former subtasks' operator state.
    pub states: Vec<RestoreState>,
    /// The source reader's encoded position (same parallelism only: after rescaling the
    /// split enumerator hands the unfinished splits out again).
    pub source: Option<ByteBuf>,
    /// Whether the job's parallelism differs from the checkpoint's (channel state of an
    /// unaligned checkpoint cannot be restored then).
    #[serde(default)]
    pub rescaled: bool,
    /// Every subtask of the vertex had finished when the checkpoint was taken (FLIP-147):
    /// the subtask ends its output channels at once, without building its operators.
    #[serde(default)]
    pub finished: bool,
}

/// JobMaster → TaskExecutor: stop a subtask.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "()")]
pub struct CancelTask {
    /// Which execution.
    pub execution: ExecutionId,
}

/// How a subtask ended: the one model of it, from the subtask's loop (which ends early with
/// `Err(outcome)`) through the Slot and the TaskExecutor's report to the JobMaster, whose view
/// shows it as an [`ExecutionState`](crate::job_view::ExecutionState).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskOutcome {
    /// Its input ended and everything it produced went out.
    Finished,
    /// Stopped on request.
    Canceled,
    /// Failed: the error names the operator (a panic's too: the operator that was running).
    Failed(TaskError),
}

impl From<TaskError> for TaskOutcome {
    fn from(e: TaskError) -> Self {
        TaskOutcome::Failed(e)
    }
}

/// Where an execution is in its life, as its TaskExecutor reports it.
///
/// On the wire it is one flat enum (`Running`, `Finished`, `Canceled`, `Failed(TaskError)`),
/// the shape it had before the outcome was a type of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "WireTaskState", into = "WireTaskState")]
pub enum TaskState {
    /// Deployed and running.
    Running,
    /// Still running, but its input ended and everything it produced went out: it waits for
    /// a checkpoint taken after that (FLIP-147's final checkpoint, where two-phase-commit
    /// sinks commit their last transaction) before it finishes. Shown as RUNNING.
    InputEnded,
    /// Ended, and how.
    Ended(TaskOutcome),
}

impl TaskState {
    /// Whether the execution ended.
    pub fn is_terminal(&self) -> bool {
        matches!(self, TaskState::Ended(_))
    }
}

impl From<TaskOutcome> for TaskState {
    fn from(o: TaskOutcome) -> Self {
        TaskState::Ended(o)
    }
}

/// [`TaskState`] as it travels.
#[derive(Serialize, Deserialize)]
enum WireTaskState {
    Running,
    InputEnded,
    Finished,
    Canceled,
    Failed(TaskError),
}

impl From<TaskState> for WireTaskState {
    fn from(s: TaskState) -> Self {
        match s {
            TaskState::Running => WireTaskState::Running,
            TaskState::InputEnded => WireTaskState::InputEnded,
            TaskState::Ended(TaskOutcome::Finished) => WireTaskState::Finished,
            TaskState::Ended(TaskOutcome::Canceled) => WireTaskState::Canceled,
            TaskState::Ended(TaskOutcome::Failed(e)) => WireTaskState::Failed(e),
        }
    }
}

impl From<WireTaskState> for TaskState {
    fn from(s: WireTaskState) -> Self {
        match s {
            WireTaskState::Running => TaskState::Running,
            WireTaskState::InputEnded => TaskState::InputEnded,
            WireTaskState::Finished => TaskState::Ended(TaskOutcome::Finished),
            WireTaskState::Canceled => TaskState::Ended(TaskOutcome::Canceled),
            WireTaskState::Failed(e) => TaskState::Ended(TaskOutcome::Failed(e)),
        }
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
    /// A finished source subtask's last reader state (encoded `SourceSnapshot`: every split
    /// it read to the end), which later checkpoints keep for it so that a restore never
    /// hands those splits out again (FLIP-147).
    #[serde(default)]
    pub final_source: Option<ByteBuf>,
}

/// Source subtask → JobMaster (→ its SourceCoordinator): give me work.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<SplitResponse, crate::error::RuntimeError>")]
pub struct SplitRequest {
    /// Which execution asks.
    pub execution: ExecutionId,
}

/// Subtask → JobMaster, before its operators' end of input (where a two-phase-commit sink
/// commits its last transaction on its own, with no checkpoint after it): does this attempt
/// still count? Refused once the job restarts, fails or is cancelled, so a task of a
/// TaskManager that was frozen past its heartbeat timeout, and thawed after its work was
/// restarted elsewhere, does not commit next to the new attempt.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<(), crate::error::RuntimeError>")]
pub struct ConfirmEnd {
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
    /// Unaligned (FLIP-76): barriers overtake in-flight data, which becomes channel state.
    #[serde(default)]
    pub unaligned: bool,
    /// The checkpoint's directory (absolute) for state files; none: state stays inline.
    pub target: Option<String>,
    /// State below this many bytes is inlined in the metadata.
    pub inline_threshold: usize,
    /// Incremental: see [`riffle_api::CheckpointBarrier::incremental`].
    #[serde(default)]
    pub incremental: bool,
    /// The base of an incremental checkpoint: see [`riffle_api::CheckpointBarrier::base`].
    #[serde(default)]
    pub base: Option<u64>,
    /// Stop-with-savepoint: emit nothing after the barrier; end the input once the
    /// checkpoint completed (resume if it is aborted).
    pub stop_source: bool,
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
#[derive(Debug, Clone, PartialEq, Eq, Message, Serialize, Deserialize)]
#[rtype(result = "()")]
pub struct AcknowledgeCheckpoint {
    /// Which execution.
    pub execution: ExecutionId,
    /// The checkpoint.
    pub checkpoint_id: u64,
    /// Where the subtask's snapshot (an encoded `riffle_api::snapshot::SubtaskSnapshot`) is.
    pub state: StateHandle,
    /// The source reader's encoded position (source subtasks).
    pub source: Option<ByteBuf>,
    /// Milliseconds of the synchronous part (the copy) and of the asynchronous part (encoding
    /// and writing).
    pub sync_ms: u64,
    /// See `sync_ms`.
    pub async_ms: u64,
    /// In-flight data persisted as channel state (unaligned checkpoints), bytes.
    pub persisted_bytes: u64,
    /// How long its inputs took to align on the barrier (first to last; aligned
    /// checkpoints of subtasks with inputs), ms.
    #[serde(default)]
    pub alignment_ms: u64,
}

/// Subtask → JobMaster (→ CheckpointCoordinator): I cannot take checkpoint `id`; abort it.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "()")]
pub struct DeclineCheckpoint {
    /// Which execution.
    pub execution: ExecutionId,
    /// The checkpoint.
    pub checkpoint_id: u64,
    /// Why.
    pub reason: String,
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
        let restore = TaskRestore {
            checkpoint_id: 4,
            states: vec![RestoreState::Inline(ByteBuf::from(vec![9])), RestoreState::File("/c/0-1.state".into())],
            source: None,
            rescaled: false,
            finished: true,
        };
        assert_eq!(
            round_trip(&DeployTask { execution: e, slot_index: 1, restore: Some(restore.clone()), peers: None })
                .restore,
            Some(restore)
        );
        assert_eq!(round_trip(&CancelTask { execution: e }).execution, e);
        let failed = TaskState::Ended(TaskOutcome::Failed(riffle_api::TaskError::msg("map", "boom")));
        let u = round_trip(&TaskStateUpdate {
            execution: e,
            state: failed.clone(),
            location: r.clone(),
            final_source: None,
        });
        assert_eq!(u.state, failed);
        let source = Some(ByteBuf::from(vec![7, 8]));
        let ended = TaskStateUpdate { execution: e, state: TaskState::InputEnded, location: r, final_source: source };
        let u = round_trip(&ended);
        assert_eq!((u.state, u.final_source), (TaskState::InputEnded, ended.final_source));
        let err = SlotError::AboveMax { needed: 3, max: 2 };
        assert_eq!(round_trip(&err), err);
        assert_eq!(
            round_trip(&SplitResponse { splits: vec![vec![1, 2]], no_more_splits: true }).splits,
            vec![vec![1, 2]]
        );
    }

    #[test]
    fn a_task_state_travels_in_its_flat_shape() {
        // The shape TaskState had before TaskOutcome: a peer of either build decodes it.
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        enum Flat {
            Running,
            Finished,
            Canceled,
            Failed(TaskError),
        }
        let err = TaskError::msg("map", "boom");
        let pairs = [
            (TaskState::Running, Flat::Running),
            (TaskState::Ended(TaskOutcome::Finished), Flat::Finished),
            (TaskState::Ended(TaskOutcome::Canceled), Flat::Canceled),
            (TaskState::Ended(TaskOutcome::Failed(err.clone())), Flat::Failed(err)),
        ];
        for (state, flat) in pairs {
            let bytes = rmp_serde::to_vec(&state).expect("serializes");
            assert_eq!(bytes, rmp_serde::to_vec(&flat).expect("serializes"), "{state:?}");
            assert_eq!(rmp_serde::from_slice::<Flat>(&bytes).expect("decodes"), flat);
            assert_eq!(rmp_serde::from_slice::<TaskState>(&bytes).expect("decodes"), state);
            assert_eq!(state.is_terminal(), state != TaskState::Running);
        }
    }
}
