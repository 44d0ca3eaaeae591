//! Checkpoint storage: where state files and metadata go, through the `object_store` crate
//! (a local directory today; the same calls reach S3 or GCS with another store).
//!
//! Every path here is absolute: a checkpoint directory is chosen by the coordinator and
//! travels with the barrier, and the metadata names its state files relative to its own
//! directory, so a savepoint can be moved and restored from its new place.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use riffle_state::checkpoint_metadata::{self, CheckpointMetadata, MetadataError, METADATA_FILE};

use crate::shared_state_registry::SharedStateRegistry;

/// The process-wide local file system store (rooted at `/`; paths are absolute).
fn store() -> &'static Arc<LocalFileSystem> {
    static STORE: OnceLock<Arc<LocalFileSystem>> = OnceLock::new();
    STORE.get_or_init(|| Arc::new(LocalFileSystem::new()))
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> MetadataError {
    MetadataError::Io { path: path.display().to_string(), source: std::io::Error::other(e.to_string()) }
}

/// Makes `path` absolute (relative paths are taken from the current directory) without
/// requiring it to exist.
pub fn absolute(path: &Path) -> Result<PathBuf, MetadataError> {
    std::path::absolute(path).map_err(|e| io_err(path, e))
}

fn object_path(path: &Path) -> Result<ObjectPath, MetadataError> {
    ObjectPath::from_absolute_path(absolute(path)?).map_err(|e| io_err(path, e))
}

/// Writes `bytes` to `path` atomically (the store writes a temporary file and renames it).
pub async fn put(path: &Path, bytes: Vec<u8>) -> Result<(), MetadataError> {
    let loc = object_path(path)?;
    store().put(&loc, PutPayload::from(bytes)).await.map_err(|e| io_err(path, e))?;
    Ok(())
}

/// Writes `parts`, one after the other, as the file at `path` (no copy of the parts).
pub async fn put_parts(path: &Path, parts: Vec<bytes::Bytes>) -> Result<(), MetadataError> {
    let loc = object_path(path)?;
    store().put(&loc, PutPayload::from_iter(parts)).await.map_err(|e| io_err(path, e))?;
    Ok(())
}

/// Reads the whole file at `path`.
pub async fn get(path: &Path) -> Result<Vec<u8>, MetadataError> {
    let loc = object_path(path)?;
    let r = store().get(&loc).await.map_err(|e| io_err(path, e))?;
    Ok(r.bytes().await.map_err(|e| io_err(path, e))?.to_vec())
}

/// Deletes the file at `path`; a missing file is not an error.
pub async fn delete(path: &Path) -> Result<(), MetadataError> {
    let loc = object_path(path)?;
    match store().delete(&loc).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(io_err(path, e)),
    }
}

/// Deletes everything under directory `dir`, then the directory itself. A missing directory
/// is not an error.
pub async fn delete_dir(dir: &Path) -> Result<(), MetadataError> {
    if !dir.exists() {
        return Ok(());
    }
    let loc = object_path(dir)?;
    let files: Vec<_> = store().list(Some(&loc)).try_collect().await.map_err(|e| io_err(dir, e))?;
    for f in files {
        match store().delete(&f.location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(io_err(dir, e)),
        }
    }
    // The object store has no directories; the local one leaves them behind, empty.
    remove_empty_dirs(dir).map_err(|e| io_err(dir, e))
}

fn remove_empty_dirs(dir: &Path) -> std::io::Result<()> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for e in rd.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_empty_dirs(&e.path())?;
        }
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Writes the metadata of a completed checkpoint into `dir` (atomically, last: a
/// checkpoint directory without `_metadata` is not a checkpoint).
pub async fn write_metadata(dir: &Path, meta: &CheckpointMetadata) -> Result<PathBuf, MetadataError> {
    let path = dir.join(METADATA_FILE);
    put(&path, checkpoint_metadata::encode(meta)?).await?;
    Ok(path)
}

/// Reads and verifies the metadata in checkpoint directory `dir`.
pub async fn read_metadata(dir: &Path) -> Result<CheckpointMetadata, MetadataError> {
    let path = dir.join(METADATA_FILE);
    let bytes = get(&path).await?;
    checkpoint_metadata::decode(&bytes, &path)
}

/// The ids of the `chk-<n>` directories under `job_dir` (with or without metadata).
pub async fn list_checkpoints(job_dir: &Path) -> Result<Vec<u64>, MetadataError> {
    if !job_dir.exists() {
        return Ok(Vec::new());
    }
    let loc = object_path(job_dir)?;
    let list = store().list_with_delimiter(Some(&loc)).await.map_err(|e| io_err(job_dir, e))?;
    Ok(list
        .common_prefixes
        .iter()
        .filter_map(|p| p.filename())
        .filter_map(checkpoint_metadata::parse_checkpoint_dir_name)
        .collect())
}

/// Keeps the `retain` newest checkpoints of the job in `job_dir` (those up to `newest`) and
/// deletes older ones, with the shared files (incremental checkpoints) no kept checkpoint
/// refers to; returns the ids deleted.
///
/// `registry` counts the references: checkpoints on disk it does not know yet (an earlier
/// attempt's or JobManager's) are registered from their metadata first, so a file a kept
/// checkpoint refers to is never deleted.
pub async fn retain(
    job_dir: &Path,
    newest: u64,
    retain: usize,
    registry: &Mutex<SharedStateRegistry>,
) -> Result<Vec<u64>, MetadataError> {
    let ids: Vec<u64> = list_checkpoints(job_dir).await?.into_iter().filter(|id| *id <= newest).collect();
    let unknown: Vec<u64> = {
        let r = lock(registry);
        ids.iter().copied().filter(|id| !r.contains(*id)).collect()
    };
    for id in unknown {
        let dir = job_dir.join(format!("chk-{id}"));
        match read_metadata(&dir).await {
            Ok(meta) => lock(registry).register_metadata(&meta),
            // No metadata (in progress or aborted when a process died) or unreadable: it
            // refers to nothing that is kept for it.
            Err(_) => lock(registry).register(id, Vec::new()),
        }
    }
    let discard = checkpoint_metadata::to_discard(ids, retain);
    for id in &discard {
        let unused = lock(registry).unregister(*id);
        delete_dir(&job_dir.join(format!("chk-{id}"))).await?;
        delete_shared(job_dir, &unused).await;
    }
    sweep_orphans(job_dir, newest, registry).await;
    Ok(discard)
}

/// Deletes the shared files that no checkpoint up to `newest` refers to (see
/// [`SharedStateRegistry::orphans`]): what a process that died between writing an increment
/// and its checkpoint's completion left behind. `registry` must know every retained checkpoint
/// up to `newest` ([`retain`] registers them first). A failure is logged.
pub async fn sweep_orphans(job_dir: &Path, newest: u64, registry: &Mutex<SharedStateRegistry>) {
    let files = match list_shared(job_dir).await {
        Ok(f) => f,
        Err(e) => return tracing::warn!("cannot list the shared checkpoint files: {e}"),
    };
    let orphans: Vec<String> = lock(registry).orphans(&files, newest).into_iter().cloned().collect();
    if !orphans.is_empty() {
        tracing::info!(files = orphans.len(), "deleting shared checkpoint files no checkpoint refers to");
        delete_shared(job_dir, &orphans).await;
    }
}

/// The shared files (`shared/<file>`, relative to `job_dir`) of a job's checkpoints.
pub async fn list_shared(job_dir: &Path) -> Result<Vec<String>, MetadataError> {
    let dir = job_dir.join(checkpoint_metadata::SHARED_DIR);
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let loc = object_path(&dir)?;
    let list = store().list_with_delimiter(Some(&loc)).await.map_err(|e| io_err(&dir, e))?;
    Ok(list
        .objects
        .iter()
        .filter_map(|o| o.location.filename())
        .map(|f| format!("{}/{f}", checkpoint_metadata::SHARED_DIR))
        .collect())
}

/// Deletes shared files (names relative to `job_dir`) no checkpoint refers to any more; a
/// failure is logged (the file is garbage either way).
pub async fn delete_shared(job_dir: &Path, names: &[String]) {
    for name in names {
        if !checkpoint_metadata::is_shared_file_name(name) {
            continue;
        }
        if let Err(e) = delete(&job_dir.join(name)).await {
            tracing::warn!("cannot delete shared checkpoint file {name}: {e}");
        }
    }
}

fn lock(r: &Mutex<SharedStateRegistry>) -> std::sync::MutexGuard<'_, SharedStateRegistry> {
    // Every update leaves the registry consistent: a panic elsewhere does not spoil it.
    r.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_get_delete_and_retain() {
        let dir = tempfile::tempdir().unwrap();
        let job = dir.path().join("job");
        for id in 1..=4u64 {
            put(&job.join(format!("chk-{id}")).join("0-0.state"), vec![id as u8; 3]).await.unwrap();
        }
        assert_eq!(get(&job.join("chk-2/0-0.state")).await.unwrap(), vec![2, 2, 2]);
        let mut ids = list_checkpoints(&job).await.unwrap();
        ids.sort();
        assert_eq!(ids, vec![1, 2, 3, 4]);
        let registry = Mutex::new(SharedStateRegistry::default());
        assert_eq!(retain(&job, 3, 2, &registry).await.unwrap(), vec![1]);
        assert!(!job.join("chk-1").exists(), "directory removed too");
        assert!(job.join("chk-4").exists(), "newer than `newest`: untouched");
        delete(&job.join("chk-2/0-0.state")).await.unwrap();
        delete(&job.join("chk-2/0-0.state")).await.unwrap();
        delete_dir(&job.join("chk-3")).await.unwrap();
        delete_dir(&job.join("chk-404")).await.unwrap();
        assert!(!job.join("chk-3").exists());
    }

    #[tokio::test]
    async fn retention_keeps_shared_files_a_kept_checkpoint_refers_to() {
        let dir = tempfile::tempdir().unwrap();
        let job = dir.path().join("job");
        // Checkpoints 1..=3 each add a shared file; 3 still refers to 1's.
        let refs: [&[&str]; 3] = [
            &["shared/0-0-1.seg"],
            &["shared/0-0-1.seg", "shared/0-0-2.seg"],
            &["shared/0-0-1.seg", "shared/0-0-3.seg"],
        ];
        for (i, r) in refs.iter().enumerate() {
            let id = i as u64 + 1;
            put(&job.join(format!("shared/0-0-{id}.seg")), vec![1]).await.unwrap();
            write_metadata(&job.join(format!("chk-{id}")), &crate::shared_state_registry::incremental_metadata(id, r))
                .await
                .unwrap();
        }
        // A fresh registry (a restarted JobManager): the counts come from the metadata.
        let registry = Mutex::new(SharedStateRegistry::default());
        lock(&registry).register_metadata(&crate::shared_state_registry::incremental_metadata(3, refs[2]));
        assert_eq!(retain(&job, 3, 1, &registry).await.unwrap(), vec![1, 2]);
        let mut left: Vec<_> = std::fs::read_dir(job.join("shared"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, vec!["0-0-1.seg", "0-0-3.seg"], "only the files of the kept checkpoint");
        assert!(!job.join("chk-2").exists() && job.join("chk-3").exists());
    }

    /// Increments whose checkpoint never completed (aborted, or the process died before the
    /// acknowledgement) are deleted by the next retention; those of checkpoints still in
    /// flight (newer than the latest completed) and of kept checkpoints stay.
    #[tokio::test]
    async fn retention_sweeps_shared_files_no_checkpoint_refers_to() {
        let dir = tempfile::tempdir().unwrap();
        let job = dir.path().join("job");
        for name in ["0-0-1.seg", "1-0-2.seg", "0-1-3.seg", "0-0-4.seg", "0-0-6.seg", "notes.txt"] {
            put(&job.join("shared").join(name), vec![1]).await.unwrap();
        }
        // Checkpoint 3 completed and refers to 1's file and its own; 2 and 4 never completed
        // (no metadata); 6 is in flight.
        let meta = crate::shared_state_registry::incremental_metadata(3, &["shared/0-0-1.seg", "shared/0-1-3.seg"]);
        write_metadata(&job.join("chk-3"), &meta).await.unwrap();
        put(&job.join("chk-2/0-0.state"), vec![1]).await.unwrap();
        let registry = Mutex::new(SharedStateRegistry::default());
        assert_eq!(retain(&job, 4, 5, &registry).await.unwrap(), Vec::<u64>::new());
        let mut left: Vec<_> = std::fs::read_dir(job.join("shared"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, vec!["0-0-1.seg", "0-0-6.seg", "0-1-3.seg", "notes.txt"]);
    }
}
