//! Checkpoint storage: where state files and metadata go, through the `object_store` crate
//! (a local directory today; the same calls reach S3 or GCS with another store).
//!
//! Every path here is absolute: a checkpoint directory is chosen by the coordinator and
//! travels with the barrier, and the metadata names its state files relative to its own
//! directory, so a savepoint can be moved and restored from its new place.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use riffle_state::checkpoint_metadata::{self, CheckpointMetadata, MetadataError, METADATA_FILE};

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
/// deletes older ones; returns the ids deleted.
pub async fn retain(job_dir: &Path, newest: u64, retain: usize) -> Result<Vec<u64>, MetadataError> {
    let ids: Vec<u64> = list_checkpoints(job_dir).await?.into_iter().filter(|id| *id <= newest).collect();
    let discard = checkpoint_metadata::to_discard(ids, retain);
    for id in &discard {
        delete_dir(&job_dir.join(format!("chk-{id}"))).await?;
    }
    Ok(discard)
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
        assert_eq!(retain(&job, 3, 2).await.unwrap(), vec![1]);
        assert!(!job.join("chk-1").exists(), "directory removed too");
        assert!(job.join("chk-4").exists(), "newer than `newest`: untouched");
        delete(&job.join("chk-2/0-0.state")).await.unwrap();
        delete(&job.join("chk-2/0-0.state")).await.unwrap();
        delete_dir(&job.join("chk-3")).await.unwrap();
        delete_dir(&job.join("chk-404")).await.unwrap();
        assert!(!job.join("chk-3").exists());
    }
}
