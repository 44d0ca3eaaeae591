//! The files in `high-availability.storageDir` behind the ZooKeeper pointers, and the
//! pointer format itself.
//!
//! ZooKeeper is meant for small data (1 MB per node at most, all of it in every member's
//! memory), so job graphs and checkpoint metadata go to files and ZooKeeper keeps a
//! [`StatePointer`]: the file's path, length and CRC-32. A file is written under a temporary
//! name, synced and renamed, so a crash never leaves a half-written file under a name a
//! pointer could refer to; the length and checksum catch what happens to it afterwards.
//! File names are never reused (they carry the writer's fencing token and a unique suffix),
//! so a deposed leader cannot overwrite a file the new leader points at.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::checksum::crc32;
use super::error::HaError;

static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// What a ZooKeeper node stores about a state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatePointer {
    /// Absolute path of the file.
    pub path: String,
    /// Its length in bytes.
    pub len: u64,
    /// CRC-32 of its contents.
    pub crc32: u32,
}

impl StatePointer {
    /// The bytes stored in ZooKeeper.
    pub fn encode(&self) -> Result<Vec<u8>, HaError> {
        rmp_serde::to_vec_named(self).map_err(|e| HaError::Internal(format!("encoding a state pointer: {e}")))
    }

    /// Reads the bytes of node `node`.
    pub fn decode(node: &str, data: &[u8]) -> Result<Self, HaError> {
        rmp_serde::from_slice(data)
            .map_err(|e| HaError::corrupt(format!("state pointer {node}"), format!("cannot be decoded: {e}")))
    }
}

/// A file name that no other write uses: `<stem>.<fencing token>.<time><counter>`.
pub fn unique_name(stem: &str, fencing_token: i64) -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    format!("{stem}.{fencing_token}.{nanos:x}{:x}-{:x}", UNIQUE.fetch_add(1, Ordering::Relaxed), std::process::id())
}

/// Writes `data` to `dir/name` atomically (temp file, sync, rename, sync directory) on the
/// blocking pool, and returns its pointer.
pub async fn write_atomically(dir: PathBuf, name: String, data: Vec<u8>) -> Result<StatePointer, HaError> {
    tokio::task::spawn_blocking(move || write_blocking(&dir, &name, &data))
        .await
        .map_err(|e| HaError::Internal(format!("state file writer: {e}")))?
}

fn write_blocking(dir: &Path, name: &str, data: &[u8]) -> Result<StatePointer, HaError> {
    std::fs::create_dir_all(dir).map_err(|source| storage("create directory", dir, source))?;
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(data)?;
            f.sync_all()
        })
        .map_err(|source| storage("write", &tmp, source))
        .and_then(|()| std::fs::rename(&tmp, &path).map_err(|source| storage("rename into place", &path, source)));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    // Makes the rename durable; a failure here only weakens durability on power loss.
    if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        tracing::debug!("syncing directory {}: {e}", dir.display());
    }
    let path = path
        .to_str()
        .ok_or_else(|| HaError::Internal(format!("state file path {} is not UTF-8", path.display())))?
        .to_string();
    Ok(StatePointer { path, len: data.len() as u64, crc32: crc32(data) })
}

/// Reads the file `pointer` names (from node `node`) and checks its length and checksum.
pub async fn read_verified(node: String, pointer: StatePointer) -> Result<Vec<u8>, HaError> {
    tokio::task::spawn_blocking(move || read_blocking(&node, &pointer))
        .await
        .map_err(|e| HaError::Internal(format!("state file reader: {e}")))?
}

fn read_blocking(node: &str, pointer: &StatePointer) -> Result<Vec<u8>, HaError> {
    let path = PathBuf::from(&pointer.path);
    let data = match std::fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(HaError::MissingFile { pointer: node.to_string(), path })
        }
        Err(source) => return Err(storage("read", &path, source)),
    };
    let what = || format!("state file {} (from {node})", pointer.path);
    if data.len() as u64 != pointer.len {
        return Err(HaError::corrupt(what(), format!("{} bytes, expected {}", data.len(), pointer.len)));
    }
    let crc = crc32(&data);
    if crc != pointer.crc32 {
        return Err(HaError::corrupt(what(), format!("checksum {crc:08x}, expected {:08x}", pointer.crc32)));
    }
    Ok(data)
}

/// Deletes a file that no pointer refers to any more; failures are only logged (an orphan
/// file wastes space, nothing else).
pub async fn delete_quietly(path: String) {
    let joined = tokio::task::spawn_blocking(move || match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("could not delete the unreferenced state file {path}: {e}"),
    })
    .await;
    if let Err(e) = joined {
        tracing::warn!("state file cleanup did not run: {e}");
    }
}

fn storage(op: &'static str, path: &Path, source: std::io::Error) -> HaError {
    HaError::Storage { op, path: path.to_path_buf(), source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_round_trip_and_garbage() {
        let p = StatePointer { path: "/ha/x".into(), len: 3, crc32: 7 };
        let bytes = p.encode().unwrap_or_default();
        assert_eq!(StatePointer::decode("/n", &bytes).ok(), Some(p));
        let err = StatePointer::decode("/n", b"\xff\x00garbage").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("/n") && err.contains("corrupt"), "{err}");
    }

    #[test]
    fn names_are_unique() {
        assert_ne!(unique_name("a", 1), unique_name("a", 1));
        assert!(unique_name("job", 42).starts_with("job.42."));
    }
}
