//! The CheckpointCoordinator (one per job attempt, a child of the JobMaster): triggers
//! checkpoints at the sources on a timer and savepoints on demand, collects every subtask's
//! acknowledgement, writes the metadata when all acknowledged, and tells every subtask that
//! the checkpoint completed — or, on decline, timeout or when the attempt ends, that it was
//! aborted, deleting whatever was written for it.
//!
//! Split as a pure decision core and an I/O shell (as Arroyo's arroyo-state-protocol), so the
//! protocol is tested without actors, storage or clocks:
//! - [`core`]: `CoordinatorCore`, events in, commands out; no I/O, no clock reads.
//! - `actor`: `CheckpointCoordinator`, the actor running the commands, and its messages.
//! - `settings`: `CheckpointSettings` and `Retention`, read from the configuration.

mod actor;
pub mod core;
mod settings;

#[cfg(test)]
mod core_tests;

pub use actor::{
    CheckpointCompleted, CheckpointCoordinator, CheckpointStats, CoordinatorTasks, StopCheckpointing,
    TaskEndedForCheckpoints, TriggerCheckpointNow, TriggerSavepoint,
};
pub(crate) use settings::OPTIONS;
pub use settings::{
    CheckpointSettings, Retention, AFTER_TASKS_FINISH, CHECKPOINTS_DIR, INTERVAL, MAX_CONCURRENT, MEMORY_THRESHOLD,
    MIN_PAUSE, MODE, NUM_RETAINED, RETENTION, SAVEPOINTS_DIR, TIMEOUT, UNALIGNED,
};
