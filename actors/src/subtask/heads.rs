//! The two kinds of subtask heads (a source reader, an operator chain) as far as
//! checkpoints go: taking a snapshot, hearing an outcome, restoring from a checkpoint.

use super::*;

/// The two kinds of subtask heads, as far as checkpoints are concerned.
pub(super) trait Checkpointable {
    fn take_snapshot(
        &mut self,
        max_parallelism: u32,
        id: u64,
    ) -> Result<(PendingSnapshot, Option<SourceSnapshot>), TaskError>;
    fn notify(&mut self, id: u64, completed: bool) -> Result<(), TaskError>;
}

impl Checkpointable for Box<dyn SourceHead> {
    fn take_snapshot(
        &mut self,
        max_parallelism: u32,
        id: u64,
    ) -> Result<(PendingSnapshot, Option<SourceSnapshot>), TaskError> {
        let mut ops = OperatorSnapshots::new(max_parallelism, id);
        let source = self.snapshot(&mut ops)?;
        Ok((ops.finish(None), Some(source)))
    }
    fn notify(&mut self, id: u64, completed: bool) -> Result<(), TaskError> {
        self.notify_checkpoint(id, completed)
    }
}

impl Checkpointable for Box<dyn VertexHead> {
    fn take_snapshot(
        &mut self,
        max_parallelism: u32,
        id: u64,
    ) -> Result<(PendingSnapshot, Option<SourceSnapshot>), TaskError> {
        let mut ops = OperatorSnapshots::new(max_parallelism, id);
        self.snapshot(&mut ops)?;
        Ok((ops.finish(None), None))
    }
    fn notify(&mut self, id: u64, completed: bool) -> Result<(), TaskError> {
        self.notify_checkpoint(id, completed)
    }
}

/// Restores a freshly built head from its part of a checkpoint: the former subtasks' operator
/// state (filtered to the key groups this subtask owns) and its reader's position. Returns
/// the channel state of an unaligned checkpoint, to replay before new input.
pub(super) async fn restore_head(
    head: &mut HeadKind,
    restore: &TaskRestore,
    range: riffle_state::KeyGroupRange,
    max_parallelism: u32,
    local: Option<(&LocalSnapshots, ExecutionId)>,
) -> Result<Vec<ChannelState>, TaskError> {
    let mut snaps = Vec::with_capacity(restore.states.len());
    // Local recovery: the same subtask's own copy of this checkpoint, if this TaskExecutor
    // kept one (never after rescaling, where other subtasks' state is needed).
    let own = match local {
        Some((l, e)) if !restore.rescaled && restore.states.len() == 1 => l.load(&e, restore.checkpoint_id),
        _ => None,
    };
    let remote = if own.is_some() { &[][..] } else { &restore.states[..] };
    if let Some(bytes) = own {
        snaps.push(SubtaskSnapshot::decode(&bytes)?);
    }
    for s in remote {
        let snap = match s {
            RestoreState::Inline(bytes) => SubtaskSnapshot::decode(bytes)?,
            // Full or incremental (with its shared files), checksums verified.
            RestoreState::File(path) => crate::incremental::read_state_file(std::path::Path::new(path)).await?,
        };
        snaps.push(snap);
    }
    let mut channels = Vec::new();
    for snap in &mut snaps {
        channels.append(&mut snap.channels);
    }
    if restore.rescaled && !channels.is_empty() {
        return Err(TaskError::msg(
            "restore",
            format!(
                "checkpoint {} is unaligned and holds in-flight records, which cannot be redistributed to another \
                 parallelism: restore it at the parallelism it was taken with, then take a savepoint (savepoints \
                 are always aligned) and rescale from that",
                restore.checkpoint_id
            ),
        ));
    }
    let from = OperatorRestore::new(range, max_parallelism, snaps).with_rescaled(restore.rescaled);
    match head {
        HeadKind::Source(h) => {
            let mut sources = Vec::new();
            if let Some(b) = &restore.source {
                sources.push(rmp_serde::from_slice::<SourceSnapshot>(b).map_err(|e| {
                    TaskError::msg("restore", format!("corrupt source reader state in the checkpoint: {e}"))
                })?);
            }
            h.restore(&sources, &from)?;
        }
        HeadKind::Operators(h) => h.restore(&from)?,
    }
    Ok(channels)
}
