//! What a subtask's chain contributes to a checkpoint, and what it gets back on restore.
//!
//! Each stateful operator writes one blob under its node index; keyed operators encode their
//! state entry by entry with key groups (see `riffle_state::StateSnapshot`), so a restore can
//! take just the key groups the new subtask owns, from one former subtask or several.

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use riffle_state::KeyGroupRange;

use crate::error::TaskError;
use crate::source::SplitBytes;

/// A source reader's state at a checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceSnapshot {
    /// Splits assigned but not finished, with their progress.
    pub unfinished: Vec<SplitBytes>,
    /// The ids of `unfinished`, so a restore can tell the enumerator what readers hold.
    pub unfinished_ids: Vec<String>,
    /// Ids of splits read to the end.
    pub finished: Vec<String>,
}

/// Everything one subtask contributes to a checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubtaskSnapshot {
    /// The source reader's state (source subtasks only).
    pub source: Option<SourceSnapshot>,
    /// Operator state by node index.
    pub operators: Vec<(usize, Vec<u8>)>,
}

impl SubtaskSnapshot {
    /// Encodes for an acknowledgement message or a state file.
    pub fn encode(&self) -> Result<Vec<u8>, TaskError> {
        rmp_serde::to_vec(self).map_err(|e| TaskError::msg("checkpoint", format!("cannot encode a snapshot: {e}")))
    }

    /// Decodes what [`SubtaskSnapshot::encode`] wrote.
    pub fn decode(bytes: &[u8]) -> Result<Self, TaskError> {
        rmp_serde::from_slice(bytes).map_err(|e| TaskError::msg("checkpoint", format!("corrupt subtask snapshot: {e}")))
    }
}

/// Collects operator snapshots while a snapshot traverses the chain.
pub struct OperatorSnapshots {
    /// Number of key groups.
    pub max_parallelism: u32,
    /// The checkpoint this snapshot belongs to: two-phase-commit sinks file the transaction
    /// they pre-commit here under it, to commit it when this checkpoint (or a later one)
    /// completes.
    pub checkpoint_id: u64,
    /// `(node index, state)` so far.
    pub entries: Vec<(usize, Vec<u8>)>,
}

impl OperatorSnapshots {
    /// An empty collection for checkpoint `checkpoint_id`.
    pub fn new(max_parallelism: u32, checkpoint_id: u64) -> Self {
        Self { max_parallelism, checkpoint_id, entries: Vec::new() }
    }

    /// Adds operator `op`'s state.
    pub fn put<T: Serialize>(&mut self, op: usize, name: &str, state: &T) -> Result<(), TaskError> {
        let bytes =
            rmp_serde::to_vec(state).map_err(|e| TaskError::msg(name, format!("cannot snapshot state: {e}")))?;
        self.entries.push((op, bytes));
        Ok(())
    }
}

/// Operator state to restore, possibly from several former subtasks (rescaling).
pub struct OperatorRestore {
    /// The key groups the restoring subtask owns.
    pub range: KeyGroupRange,
    /// Number of key groups.
    pub max_parallelism: u32,
    by_op: HashMap<usize, Vec<Vec<u8>>>,
}

impl OperatorRestore {
    /// Restore data from former subtasks' snapshots.
    pub fn new(range: KeyGroupRange, max_parallelism: u32, snapshots: &[SubtaskSnapshot]) -> Self {
        let mut by_op: HashMap<usize, Vec<Vec<u8>>> = HashMap::new();
        for s in snapshots {
            for (op, bytes) in &s.operators {
                by_op.entry(*op).or_default().push(bytes.clone());
            }
        }
        Self { range, max_parallelism, by_op }
    }

    /// Operator `op`'s states, decoded (one per former subtask that had some).
    pub fn get<T: DeserializeOwned>(&self, op: usize, name: &str) -> Result<Vec<T>, TaskError> {
        let Some(blobs) = self.by_op.get(&op) else { return Ok(Vec::new()) };
        blobs
            .iter()
            .map(|b| rmp_serde::from_slice(b).map_err(|e| TaskError::msg(name, format!("cannot restore state: {e}"))))
            .collect()
    }
}
