//! What a new leader needs to recover every running job: the job graphs
//! ([`JobGraphStore`]), each job's completed checkpoints ([`CompletedCheckpointStore`]) and
//! its exception history ([`ExceptionHistoryStore`]).
//! The bytes live in files under `high-availability.storageDir` (see [`files`](super::files));
//! ZooKeeper holds the pointers, written only by the current leader (fenced), so a deposed
//! leader can neither add a job nor publish a checkpoint the new leader would not know of.
//!
//! Order of a put: file first, pointer second, the replaced file last. A crash in between
//! leaves at worst an unreferenced file, never a pointer to nothing.

use std::path::PathBuf;

use riffle_actors::exception_history::ExceptionHistorySnapshot;
use riffle_actors::JobId;
use zookeeper_client::Error as ZkError;

use super::client::ZkClient;
use super::error::HaError;
use super::fenced::{commit_retrying, session_loss_is_not_leader, FencedFailure, FencedOp};
use super::files::{self, StatePointer};
use super::paths::parse_checkpoint_node_name;
use super::Fence;

/// How many lost compare-and-set races in a row before a put or remove gives up.
const MAX_RACES: u32 = 20;

/// Job graphs by job id: `<root>/<cluster-id>/jobgraphs/<job-id>` → `<storageDir>/<cluster-id>/jobgraphs/`.
#[derive(Debug, Clone)]
pub struct JobGraphStore {
    zk: ZkClient,
    files: PathBuf,
}

impl JobGraphStore {
    /// The job graph store of `zk`'s cluster.
    pub fn new(zk: &ZkClient) -> Self {
        Self { zk: zk.clone(), files: zk.config().cluster_storage_dir().join("jobgraphs") }
    }

    /// Adds or replaces the job graph of `job` (its serialized bytes); only while `fence` holds.
    pub async fn put(&self, fence: &Fence, job: JobId, graph: &[u8]) -> Result<(), HaError> {
        let node = self.zk.paths().job_graph(job);
        let name = files::unique_name(&job.to_string(), fence.token());
        put_pointer(&self.zk, fence, &self.zk.paths().job_graphs(), &node, self.files.clone(), name, graph)
            .await
            .map_err(session_loss_is_not_leader)
    }

    /// The job graph of `job`, `None` if there is none.
    pub async fn get(&self, job: JobId) -> Result<Option<Vec<u8>>, HaError> {
        get_pointed(&self.zk, &self.zk.paths().job_graph(job)).await
    }

    /// The jobs that have a job graph (the jobs to recover).
    pub async fn list(&self) -> Result<Vec<JobId>, HaError> {
        let parent = self.zk.paths().job_graphs();
        let mut jobs: Vec<JobId> = self
            .zk
            .children(&parent)
            .await?
            .into_iter()
            .filter_map(|name| {
                let job = JobId::parse(&name);
                if job.is_none() {
                    tracing::warn!("ignoring {parent}/{name}: not a job id");
                }
                job
            })
            .collect();
        jobs.sort();
        Ok(jobs)
    }

    /// Removes the job graph of `job` (finished, canceled or failed for good); only while
    /// `fence` holds. Nothing to remove is fine.
    pub async fn remove(&self, fence: &Fence, job: JobId) -> Result<(), HaError> {
        remove_pointer(&self.zk, fence, &self.zk.paths().job_graph(job)).await.map_err(session_loss_is_not_leader)
    }
}

/// Completed checkpoints by job and checkpoint id:
/// `<root>/<cluster-id>/checkpoints/<job-id>/<id>` → `<storageDir>/<cluster-id>/checkpoints/<job-id>/`.
#[derive(Debug, Clone)]
pub struct CompletedCheckpointStore {
    zk: ZkClient,
    files: PathBuf,
}

impl CompletedCheckpointStore {
    /// The completed checkpoint store of `zk`'s cluster.
    pub fn new(zk: &ZkClient) -> Self {
        Self { zk: zk.clone(), files: zk.config().cluster_storage_dir().join("checkpoints") }
    }

    /// Records completed checkpoint `checkpoint_id` of `job` (its serialized description,
    /// e.g. the metadata's location); only while `fence` holds.
    pub async fn put(&self, fence: &Fence, job: JobId, checkpoint_id: u64, checkpoint: &[u8]) -> Result<(), HaError> {
        let paths = self.zk.paths();
        let node = paths.checkpoint(job, checkpoint_id);
        let dir = self.files.join(job.to_string());
        let name = files::unique_name(&super::paths::checkpoint_node_name(checkpoint_id), fence.token());
        put_pointer(&self.zk, fence, &paths.checkpoints(job), &node, dir, name, checkpoint)
            .await
            .map_err(session_loss_is_not_leader)
    }

    /// Checkpoint `checkpoint_id` of `job`, `None` if there is none.
    pub async fn get(&self, job: JobId, checkpoint_id: u64) -> Result<Option<Vec<u8>>, HaError> {
        get_pointed(&self.zk, &self.zk.paths().checkpoint(job, checkpoint_id)).await
    }

    /// The ids of `job`'s completed checkpoints, oldest first.
    pub async fn list(&self, job: JobId) -> Result<Vec<u64>, HaError> {
        let parent = self.zk.paths().checkpoints(job);
        let mut ids: Vec<u64> = self
            .zk
            .children(&parent)
            .await?
            .into_iter()
            .filter_map(|name| {
                let id = parse_checkpoint_node_name(&name);
                if id.is_none() {
                    tracing::warn!("ignoring {parent}/{name}: not a checkpoint id");
                }
                id
            })
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// The newest completed checkpoint of `job` (what a new leader restores), `None` if the
    /// job has none. A damaged newest checkpoint is an error, not a silent step back.
    pub async fn latest(&self, job: JobId) -> Result<Option<(u64, Vec<u8>)>, HaError> {
        // Newest first; one removed between the listing and the read is skipped.
        for id in self.list(job).await?.into_iter().rev() {
            if let Some(data) = self.get(job, id).await? {
                return Ok(Some((id, data)));
            }
        }
        Ok(None)
    }

    /// Removes checkpoint `checkpoint_id` of `job` (subsumed); only while `fence` holds.
    pub async fn remove(&self, fence: &Fence, job: JobId, checkpoint_id: u64) -> Result<(), HaError> {
        remove_pointer(&self.zk, fence, &self.zk.paths().checkpoint(job, checkpoint_id))
            .await
            .map_err(session_loss_is_not_leader)
    }

    /// Removes every checkpoint of `job` and its node (the job is over); only while `fence`
    /// holds.
    pub async fn remove_job(&self, fence: &Fence, job: JobId) -> Result<(), HaError> {
        for id in self.list(job).await? {
            self.remove(fence, job, id).await?;
        }
        let parent = self.zk.paths().checkpoints(job);
        let op = format!("delete {parent}");
        match commit_retrying(&self.zk, fence, &op, &[FencedOp::Delete { path: &parent, version: None }]).await {
            Ok(_) | Err(FencedFailure::Step { source: ZkError::NoNode, .. }) => {}
            Err(e) => return Err(session_loss_is_not_leader(e.into_error())),
        }
        let dir = self.files.join(job.to_string());
        // Empty by now unless an orphan was left behind; then it stays (and is logged).
        if let Err(e) = std::fs::remove_dir(&dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::debug!("keeping checkpoint directory {}: {e}", dir.display());
            }
        }
        Ok(())
    }
}

/// Exception histories by job id (bounded by `jobmanager.exception-history-size`, the first
/// root cause kept: see `riffle_actors::exception_history`):
/// `<root>/<cluster-id>/exception-history/<job-id>` → `<storageDir>/<cluster-id>/exception-history/`.
///
/// A file behind a pointer, as job graphs are, not the history in the node: an entry's text is
/// the user's error with its cause chain, of no bounded length, and the number of entries is
/// configurable, while a node holds 1 MB at most and lives in every member's memory.
#[derive(Debug, Clone)]
pub struct ExceptionHistoryStore {
    zk: ZkClient,
    files: PathBuf,
}

impl ExceptionHistoryStore {
    /// The exception history store of `zk`'s cluster.
    pub fn new(zk: &ZkClient) -> Self {
        Self { zk: zk.clone(), files: zk.config().cluster_storage_dir().join("exception-history") }
    }

    /// Replaces the stored history of `job`; only while `fence` holds.
    pub async fn put(&self, fence: &Fence, job: JobId, history: &ExceptionHistorySnapshot) -> Result<(), HaError> {
        let bytes = rmp_serde::to_vec_named(history)
            .map_err(|e| HaError::Internal(format!("encoding the exception history of job {job}: {e}")))?;
        let node = self.zk.paths().exception_history(job);
        let name = files::unique_name(&job.to_string(), fence.token());
        let parent = self.zk.paths().exception_histories();
        put_pointer(&self.zk, fence, &parent, &node, self.files.clone(), name, &bytes)
            .await
            .map_err(session_loss_is_not_leader)
    }

    /// The stored history of `job`, `None` if there is none.
    pub async fn get(&self, job: JobId) -> Result<Option<ExceptionHistorySnapshot>, HaError> {
        let node = self.zk.paths().exception_history(job);
        let Some(bytes) = get_pointed(&self.zk, &node).await? else { return Ok(None) };
        rmp_serde::from_slice(&bytes)
            .map(Some)
            .map_err(|e| HaError::corrupt(format!("exception history {node}"), format!("cannot be decoded: {e}")))
    }

    /// Removes the history of `job` (the job is over); only while `fence` holds. Nothing to
    /// remove is fine.
    pub async fn remove(&self, fence: &Fence, job: JobId) -> Result<(), HaError> {
        remove_pointer(&self.zk, fence, &self.zk.paths().exception_history(job))
            .await
            .map_err(session_loss_is_not_leader)
    }
}

/// The pointer stored at `node`, with its version; `Ok(Some(Err(_)))` if it is unreadable.
async fn read_pointer(zk: &ZkClient, node: &str) -> Result<Option<(Result<StatePointer, HaError>, i32)>, HaError> {
    Ok(zk.get_data_opt(node).await?.map(|(data, version)| (StatePointer::decode(node, &data), version)))
}

/// Writes the file, then points `node` at it (creating or replacing, compare-and-set on the
/// node's version, fenced), then deletes the file it replaced. A lost session surfaces as
/// `NotLeader` (callers map it with `session_loss_is_not_leader`).
async fn put_pointer(
    zk: &ZkClient,
    fence: &Fence,
    parent: &str,
    node: &str,
    dir: PathBuf,
    name: String,
    data: &[u8],
) -> Result<(), HaError> {
    let op = format!("put {node}");
    fence.check_local(&op)?;
    zk.ensure_path(parent).await?;
    let pointer = files::write_atomically(dir, name, data.to_vec()).await?;
    let encoded = pointer.encode()?;
    let mut replaced = None;
    let mut outcome = Err(HaError::Contention { op: op.clone(), attempts: MAX_RACES });
    for _ in 0..MAX_RACES {
        let existing = match read_pointer(zk, node).await {
            Ok(e) => e,
            Err(e) => {
                outcome = Err(e);
                break;
            }
        };
        let step = match &existing {
            // A retried write whose first answer was lost had in fact been applied.
            Some((Ok(current), _)) if *current == pointer => {
                outcome = Ok(());
                break;
            }
            Some((current, version)) => {
                replaced = current.as_ref().ok().map(|p| p.path.clone());
                FencedOp::SetData { path: node, data: &encoded, version: Some(*version) }
            }
            None => {
                replaced = None;
                FencedOp::Create { path: node, data: &encoded }
            }
        };
        match commit_retrying(zk, fence, &op, &[step]).await {
            Ok(_) => {
                outcome = Ok(());
                break;
            }
            Err(FencedFailure::Step {
                source: ZkError::BadVersion | ZkError::NodeExists | ZkError::NoNode, ..
            }) => {
                tracing::debug!("{op}: the pointer changed underneath, reading it again");
            }
            Err(e) => {
                outcome = Err(e.into_error());
                break;
            }
        }
    }
    match outcome {
        Ok(()) => {
            if let Some(old) = replaced.filter(|old| *old != pointer.path) {
                files::delete_quietly(old).await;
            }
            Ok(())
        }
        Err(e) => {
            // Delete our file unless the pointer does refer to it after all (a write whose
            // answer was lost); if that cannot be told, keep it: an orphan is harmless.
            if let Ok(current) = read_pointer(zk, node).await {
                let ours = matches!(&current, Some((Ok(p), _)) if *p == pointer);
                if !ours {
                    files::delete_quietly(pointer.path.clone()).await;
                }
            }
            Err(e)
        }
    }
}

/// The bytes of the file `node` points at; `None` if there is no such node.
async fn get_pointed(zk: &ZkClient, node: &str) -> Result<Option<Vec<u8>>, HaError> {
    match read_pointer(zk, node).await? {
        None => Ok(None),
        Some((pointer, _)) => Ok(Some(files::read_verified(node.to_string(), pointer?).await?)),
    }
}

/// Deletes the pointer (compare-and-set on its version, fenced), then its file.
async fn remove_pointer(zk: &ZkClient, fence: &Fence, node: &str) -> Result<(), HaError> {
    let op = format!("remove {node}");
    fence.check_local(&op)?;
    for _ in 0..MAX_RACES {
        let Some((pointer, version)) = read_pointer(zk, node).await? else { return Ok(()) };
        match commit_retrying(zk, fence, &op, &[FencedOp::Delete { path: node, version: Some(version) }]).await {
            Ok(_) | Err(FencedFailure::Step { source: ZkError::NoNode, .. }) => {
                if let Ok(p) = pointer {
                    files::delete_quietly(p.path).await;
                }
                return Ok(());
            }
            Err(FencedFailure::Step { source: ZkError::BadVersion, .. }) => {}
            Err(e) => return Err(e.into_error()),
        }
    }
    Err(HaError::Contention { op, attempts: MAX_RACES })
}
