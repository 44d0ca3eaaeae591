//! Checkpoint metadata on disk: `<dir>/<job-id>/chk-<n>/_metadata`, written atomically (temp
//! file + rename), with a format version and a CRC-32 so that a corrupt or truncated file is
//! detected and reported instead of being trusted.
//!
//! Layout: `b"RFCK"`, format version (u32 LE), CRC-32 of the payload (u32 LE), payload
//! (MessagePack of [`CheckpointMetadata`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 4] = b"RFCK";
/// The metadata format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The metadata file's name inside a checkpoint directory.
pub const METADATA_FILE: &str = "_metadata";

/// One subtask's part of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubtaskState {
    /// The vertex.
    pub vertex: u32,
    /// The subtask index.
    pub subtask: u32,
    /// State bytes inlined in the metadata (empty until operators snapshot state).
    pub inline_state: Vec<u8>,
}

/// What a completed checkpoint consists of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointMetadata {
    /// The job (32 hex digits).
    pub job_id: String,
    /// The checkpoint id.
    pub checkpoint_id: u64,
    /// When it was triggered, epoch ms.
    pub trigger_timestamp_ms: i64,
    /// When it completed, epoch ms.
    pub completion_timestamp_ms: i64,
    /// Every subtask's acknowledged part.
    pub subtasks: Vec<SubtaskState>,
}

/// What can go wrong reading or writing checkpoint metadata.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// The file is not riffle checkpoint metadata.
    #[error("'{path}' is not checkpoint metadata (bad magic bytes)")]
    BadMagic {
        /// The file.
        path: String,
    },
    /// Written by an incompatible version.
    #[error("'{path}' has metadata format version {found}, this build reads version {FORMAT_VERSION}")]
    Version {
        /// The file.
        path: String,
        /// The version found.
        found: u32,
    },
    /// The content does not match its checksum (corrupt or truncated).
    #[error("'{path}' is corrupt or truncated (checksum mismatch)")]
    Checksum {
        /// The file.
        path: String,
    },
    /// The payload does not decode.
    #[error("'{path}' cannot be decoded: {reason}")]
    Decode {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// File system trouble (external: retrying may help).
    #[error("checkpoint storage I/O error at '{path}': {source}")]
    Io {
        /// The path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

fn io(path: &Path, source: std::io::Error) -> MetadataError {
    MetadataError::Io { path: path.display().to_string(), source }
}

/// Encodes metadata with magic, version and checksum.
pub fn encode(meta: &CheckpointMetadata) -> Result<Vec<u8>, MetadataError> {
    let payload = rmp_serde::to_vec(meta)
        .map_err(|e| MetadataError::Decode { path: "<memory>".into(), reason: e.to_string() })?;
    let mut out = Vec::with_capacity(payload.len() + 12);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Decodes and verifies metadata read from `path`.
pub fn decode(bytes: &[u8], path: &Path) -> Result<CheckpointMetadata, MetadataError> {
    let p = || path.display().to_string();
    if bytes.len() < 12 || &bytes[..4] != MAGIC {
        return Err(if bytes.len() < 12 {
            MetadataError::Checksum { path: p() }
        } else {
            MetadataError::BadMagic { path: p() }
        });
    }
    let word = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let version = word(4);
    if version != FORMAT_VERSION {
        return Err(MetadataError::Version { path: p(), found: version });
    }
    let payload = &bytes[12..];
    if crc32fast::hash(payload) != word(8) {
        return Err(MetadataError::Checksum { path: p() });
    }
    rmp_serde::from_slice(payload).map_err(|e| MetadataError::Decode { path: p(), reason: e.to_string() })
}

/// The directory of checkpoint `id` of `job` under `base`.
pub fn checkpoint_dir(base: &Path, job: &str, id: u64) -> PathBuf {
    base.join(job).join(format!("chk-{id}"))
}

/// Writes `meta` to `<base>/<job>/chk-<id>/_metadata` atomically; returns the file's path.
pub fn write(base: &Path, meta: &CheckpointMetadata) -> Result<PathBuf, MetadataError> {
    let dir = checkpoint_dir(base, &meta.job_id, meta.checkpoint_id);
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    let bytes = encode(meta)?;
    let tmp = dir.join(format!("{METADATA_FILE}.inprogress"));
    let path = dir.join(METADATA_FILE);
    std::fs::write(&tmp, &bytes).map_err(|e| io(&tmp, e))?;
    std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
    Ok(path)
}

/// Reads and verifies the metadata file at `path`.
pub fn read(path: &Path) -> Result<CheckpointMetadata, MetadataError> {
    let bytes = std::fs::read(path).map_err(|e| io(path, e))?;
    decode(&bytes, path)
}

/// Keeps the `retain` newest `chk-<n>` directories of `job` under `base` and deletes the
/// rest; returns the ids deleted.
pub fn retain(base: &Path, job: &str, retain: usize) -> Result<Vec<u64>, MetadataError> {
    let root = base.join(job);
    let mut ids: Vec<u64> = match std::fs::read_dir(&root) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_prefix("chk-")).and_then(|n| n.parse().ok()))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(io(&root, e)),
    };
    ids.sort_unstable();
    let drop_n = ids.len().saturating_sub(retain.max(1));
    let mut deleted = Vec::new();
    for id in ids.into_iter().take(drop_n) {
        let d = checkpoint_dir(base, job, id);
        std::fs::remove_dir_all(&d).map_err(|e| io(&d, e))?;
        deleted.push(id);
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(id: u64) -> CheckpointMetadata {
        CheckpointMetadata {
            job_id: "00ff".into(),
            checkpoint_id: id,
            trigger_timestamp_ms: 1,
            completion_timestamp_ms: 2,
            subtasks: vec![SubtaskState { vertex: 0, subtask: 1, inline_state: vec![1, 2, 3] }],
        }
    }

    #[test]
    fn round_trip_and_corruption_is_detected() {
        let dir = std::env::temp_dir().join(format!("riffle-meta-{}", std::process::id()));
        let p = write(&dir, &meta(3)).unwrap();
        assert_eq!(read(&p).unwrap(), meta(3));
        let mut bytes = std::fs::read(&p).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x55;
        assert!(matches!(decode(&bytes, &p), Err(MetadataError::Checksum { .. })));
        assert!(matches!(decode(&bytes[..7], &p), Err(MetadataError::Checksum { .. })), "truncated");
        bytes[0] = b'X';
        assert!(matches!(decode(&bytes, &p), Err(MetadataError::BadMagic { .. })));
        for id in [4, 5, 6] {
            write(&dir, &meta(id)).unwrap();
        }
        assert_eq!(retain(&dir, "00ff", 2).unwrap(), vec![3, 4]);
        assert!(read(&checkpoint_dir(&dir, "00ff", 6).join(METADATA_FILE)).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
