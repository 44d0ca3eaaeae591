//! The asynchronous part of a subtask's checkpoint: a child task that encodes the frozen
//! snapshot on the blocking pool, writes it as a state file (or inlines it when small),
//! and acknowledges to the JobMaster — while the subtask goes on processing records.
//!
//! The subtask keeps a handle to every snapshot in flight. An abort (`notify_checkpoint_aborted`)
//! cancels the work and deletes what was written; whichever of the two sides comes second
//! does the deleting, so no file survives an aborted checkpoint. Once acknowledged, a state
//! file belongs to the checkpoint (the coordinator deletes it with its directory).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use riffle_api::snapshot::{PendingSnapshot, SourceSnapshot};
use riffle_api::CheckpointBarrier;
use riffle_state::checkpoint_metadata::{state_file_header, state_file_name, StateHandle};
use serde_bytes::ByteBuf;

use crate::checkpoint_storage;
use crate::gateway::{AcknowledgeCheckpoint, DeclineCheckpoint};
use crate::ids::ExecutionId;
use crate::incremental::{self, SegmentIndex};
use crate::local_recovery::LocalSnapshots;
use crate::peers::JobMasterGateway;

#[derive(Default)]
struct TaskState {
    aborted: bool,
    acknowledged: bool,
    written: Vec<PathBuf>,
}

/// One snapshot in flight, shared by the subtask and its writer.
#[derive(Default)]
pub struct SnapshotTask {
    state: Mutex<TaskState>,
    /// The subtask's pieces of earlier snapshots (incremental checkpoints).
    index: Arc<Mutex<SegmentIndex>>,
}

impl SnapshotTask {
    fn lock(&self) -> std::sync::MutexGuard<'_, TaskState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_aborted(&self) -> bool {
        self.lock().aborted
    }

    /// Marks the work aborted; returns the files to delete if the writer already wrote some.
    /// With `even_acknowledged` false, a snapshot already handed to the coordinator is left
    /// alone (it may be part of a completed checkpoint).
    fn abort(&self, even_acknowledged: bool) -> Vec<PathBuf> {
        let mut s = self.lock();
        if s.acknowledged && !even_acknowledged {
            return Vec::new();
        }
        s.aborted = true;
        std::mem::take(&mut s.written)
    }

    /// Records a file written (deleted if the snapshot is aborted); false if it already was.
    fn wrote(&self, path: &std::path::Path) -> bool {
        let mut s = self.lock();
        if !s.aborted {
            s.written.push(path.to_path_buf());
        }
        !s.aborted
    }

    fn index(&self) -> std::sync::MutexGuard<'_, SegmentIndex> {
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How many aborted checkpoint ids a subtask remembers: an abort can overtake the barrier
/// (a checkpoint times out while its barrier is still on the way), and the snapshot taken
/// when the barrier arrives must then write nothing.
const REMEMBERED_ABORTS: usize = 64;

/// The snapshots a subtask has in flight, by checkpoint id.
#[derive(Default)]
pub struct InFlightSnapshots {
    tasks: BTreeMap<u64, Arc<SnapshotTask>>,
    /// Checkpoints aborted before this subtask took their snapshot.
    aborted_early: BTreeSet<u64>,
    /// Where the pieces of this subtask's snapshots are (incremental checkpoints).
    index: Arc<Mutex<SegmentIndex>>,
}

impl InFlightSnapshots {
    /// Registers the snapshot of checkpoint `id` (born aborted if its abort came first).
    pub fn start(&mut self, id: u64) -> Arc<SnapshotTask> {
        let t = Arc::new(SnapshotTask { index: self.index.clone(), ..Default::default() });
        if self.aborted_early.remove(&id) {
            t.lock().aborted = true;
            return t;
        }
        self.tasks.insert(id, t.clone());
        t
    }

    /// Checkpoint `id` completed: it and older ones need no tracking any more; its pieces are
    /// the base of the next increment.
    pub fn completed(&mut self, id: u64) {
        self.tasks.retain(|k, _| *k > id);
        self.index.lock().unwrap_or_else(PoisonError::into_inner).completed(id);
    }

    /// Checkpoint `id` was aborted: cancel its work and delete what it wrote.
    pub fn abort(&mut self, id: u64) {
        self.index.lock().unwrap_or_else(PoisonError::into_inner).aborted(id);
        match self.tasks.remove(&id) {
            Some(t) => {
                for path in t.abort(true) {
                    delete_later(path);
                }
            }
            None => {
                self.aborted_early.insert(id);
                while self.aborted_early.len() > REMEMBERED_ABORTS {
                    self.aborted_early.pop_first();
                }
            }
        }
    }

    /// Number of snapshots in flight (for tests and metrics).
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether none is in flight.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }
}

impl Drop for InFlightSnapshots {
    /// The subtask ends: writers still working stop and clean up; acknowledged snapshots stay.
    fn drop(&mut self) {
        for t in self.tasks.values() {
            for path in t.abort(false) {
                delete_later(path);
            }
        }
    }
}

fn delete_later(path: PathBuf) {
    if tokio::runtime::Handle::try_current().is_err() {
        let _ = std::fs::remove_file(&path);
        remove_empty_checkpoint_dir(&path);
        return;
    }
    actix::spawn(delete_written(path));
}

/// Deletes a state file of an aborted checkpoint, and its `chk-<n>` directory if that is
/// empty now: a writer that came after the coordinator deleted the directory re-created it,
/// and an empty one must not stay behind either.
async fn delete_written(path: PathBuf) {
    if let Err(e) = checkpoint_storage::delete(&path).await {
        tracing::warn!("cannot delete the state file of an aborted checkpoint: {e}");
    }
    remove_empty_checkpoint_dir(&path);
}

/// Removes the `chk-<n>` directory holding `file` if it is empty (never a savepoint's, which
/// is the user's, nor the shared directory of incremental checkpoints).
fn remove_empty_checkpoint_dir(file: &Path) {
    let Some(dir) = file.parent() else { return };
    let is_checkpoint = dir
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(riffle_state::checkpoint_metadata::parse_checkpoint_dir_name)
        .is_some();
    if is_checkpoint {
        // Fails (and is left alone) when something else is in it.
        let _ = std::fs::remove_dir(dir);
    }
}

/// A snapshot after encoding: whole, or as an increment to write.
enum Encoded {
    Full(Vec<u8>),
    Incremental(incremental::IncrementalWrite),
}

/// The child that finishes one subtask snapshot.
pub struct SnapshotWriter {
    /// The subtask.
    pub execution: ExecutionId,
    /// The JobMaster that deployed the subtask: the acknowledgement goes there.
    pub job_master: JobMasterGateway,
    /// The checkpoint and its target.
    pub barrier: CheckpointBarrier,
    /// Shared with the subtask, for aborts.
    pub task: Arc<SnapshotTask>,
    /// Duration of the synchronous part.
    pub sync_ms: u64,
    /// How long the subtask's inputs took to align on the barrier (aligned checkpoints), ms.
    pub alignment_ms: u64,
    /// Where to keep a local copy (local recovery on).
    pub local: Option<Arc<LocalSnapshots>>,
}

impl SnapshotWriter {
    /// Encodes, writes and acknowledges (or declines, on an error).
    pub async fn run(self, pending: PendingSnapshot, source: Option<SourceSnapshot>) {
        let started = Instant::now();
        let id = self.barrier.id;
        let persisted_bytes = pending.channel_bytes();
        let result = self.write(pending, source).await;
        let jm = &self.job_master;
        match result {
            Ok(Some((state, source))) => jm.do_send(AcknowledgeCheckpoint {
                execution: self.execution,
                checkpoint_id: id,
                state,
                source,
                sync_ms: self.sync_ms,
                async_ms: started.elapsed().as_millis() as u64,
                persisted_bytes,
                alignment_ms: self.alignment_ms,
            }),
            Ok(None) => {}
            Err(reason) => jm.do_send(DeclineCheckpoint { execution: self.execution, checkpoint_id: id, reason }),
        }
    }

    async fn write(
        &self,
        pending: PendingSnapshot,
        source: Option<SourceSnapshot>,
    ) -> Result<Option<(StateHandle, Option<ByteBuf>)>, String> {
        if self.task.is_aborted() {
            return Ok(None);
        }
        let (local, execution, id) = (self.local.clone(), self.execution, self.barrier.id);
        let incremental = match &self.barrier.target {
            Some(dir) if self.barrier.incremental => Path::new(dir.as_ref()).parent().map(Path::to_path_buf),
            _ => None,
        };
        let (threshold, base, task) = (self.barrier.inline_threshold, self.barrier.base, self.task.clone());
        let encoded = tokio::task::spawn_blocking(move || {
            let segmented = pending.complete_segmented()?;
            let size: usize = segmented.operators.iter().flat_map(|(_, s)| s).map(|s| s.bytes.len()).sum();
            // Only operators that hand in pieces with an id gain from an increment; the rest
            // (and small state) is written whole, as a plain state file or inline.
            let pieces = segmented.operators.iter().flat_map(|(_, s)| s).any(|s| s.id.is_some());
            let incremental = incremental.is_some() && pieces && size >= threshold;
            if let Some(local) = local {
                // The local copy is always whole: it is restored without the storage.
                if !incremental {
                    let full = segmented.into_full().encode()?;
                    local.keep(&execution, id, &full);
                    return Ok::<_, riffle_api::TaskError>(Encoded::Full(full));
                }
                local.keep(&execution, id, &segmented.clone().into_full().encode()?);
            } else if !incremental {
                return Ok(Encoded::Full(segmented.into_full().encode()?));
            }
            let base = task.index().base(base);
            let plan = incremental::plan(segmented, base.as_deref(), execution.vertex, execution.subtask, id)?;
            Ok(Encoded::Incremental(plan))
        })
        .await
        .map_err(|e| format!("the snapshot encoder failed: {e}"))?
        .map_err(|e| e.to_string())?;
        let source = match source {
            Some(s) => Some(ByteBuf::from(
                rmp_serde::to_vec(&s).map_err(|e| format!("cannot encode the source reader's state: {e}"))?,
            )),
            None => None,
        };
        if self.task.is_aborted() {
            return Ok(None);
        }
        let encoded = match encoded {
            Encoded::Full(encoded) => encoded,
            Encoded::Incremental(plan) => match self.write_incremental(plan).await? {
                Some(handle) => return self.acknowledged(handle, source),
                None => return Ok(None),
            },
        };
        let handle = match &self.barrier.target {
            Some(dir) if encoded.len() >= self.barrier.inline_threshold => {
                let name = state_file_name(self.execution.vertex, self.execution.subtask);
                let path = PathBuf::from(dir.as_ref()).join(&name);
                let header = state_file_header(&encoded);
                let len = (header.len() + encoded.len()) as u64;
                let parts = vec![bytes::Bytes::copy_from_slice(&header), bytes::Bytes::from(encoded)];
                checkpoint_storage::put_parts(&path, parts).await.map_err(|e| e.to_string())?;
                if !self.task.wrote(&path) {
                    delete_written(path).await;
                    return Ok(None);
                }
                StateHandle::File { name, len }
            }
            _ => StateHandle::Inline(ByteBuf::from(encoded)),
        };
        self.acknowledged(handle, source)
    }

    /// Writes an incremental snapshot: its new shared file, then its state file; records its
    /// pieces for the increments after it (if its checkpoint completes).
    async fn write_incremental(&self, plan: incremental::IncrementalWrite) -> Result<Option<StateHandle>, String> {
        let Some(dir) = self.barrier.target.as_deref().map(PathBuf::from) else { return Ok(None) };
        let Some(job_dir) = dir.parent().map(Path::to_path_buf) else { return Ok(None) };
        if let Some((name, parts)) = plan.shared_file {
            let path = job_dir.join(&name);
            checkpoint_storage::put_parts(&path, parts).await.map_err(|e| e.to_string())?;
            if !self.task.wrote(&path) {
                let _ = checkpoint_storage::delete(&path).await;
                return Ok(None);
            }
        }
        let name = state_file_name(self.execution.vertex, self.execution.subtask);
        let path = dir.join(&name);
        let len = plan.state_file.len() as u64;
        checkpoint_storage::put(&path, plan.state_file).await.map_err(|e| e.to_string())?;
        if !self.task.wrote(&path) {
            delete_written(path).await;
            return Ok(None);
        }
        self.task.index().written(self.barrier.id, plan.pieces);
        Ok(Some(StateHandle::Incremental { name, len, shared: plan.shared, written: plan.written }))
    }

    /// The snapshot is written: it belongs to the checkpoint from now on (unless aborted).
    fn acknowledged(
        &self,
        handle: StateHandle,
        source: Option<ByteBuf>,
    ) -> Result<Option<(StateHandle, Option<ByteBuf>)>, String> {
        let mut s = self.task.lock();
        if s.aborted {
            return Ok(None);
        }
        s.acknowledged = true;
        Ok(Some((handle, source)))
    }
}
