//! The checkpoint formats: `_metadata` (what a completed checkpoint or savepoint consists of)
//! and the state files beside it. Pure encoding and decoding: the I/O is the runtime's.
//!
//! Both are framed the same way: 4 magic bytes (`RFCK` for metadata, `RFST` for state files),
//! the format version (u32 LE), the CRC-32 of the payload (u32 LE), then the payload
//! (MessagePack). A corrupt or truncated file is detected instead of being trusted.
//!
//! Layout on disk: `<dir>/<job-id>/chk-<n>/_metadata` plus `<vertex>-<subtask>.state` files for
//! state above the inline threshold. The metadata names its state files relative to its own
//! directory, so a savepoint directory can be moved as a whole (FLINK-5763).
//!
//! Incremental checkpoints (`state.backend.incremental`) also write *shared* files,
//! `<dir>/<job-id>/shared/<vertex>-<subtask>-<n>.seg`: the pieces of state that changed since
//! the base checkpoint, framed like state files (`RFST`). A checkpoint's state file is then an
//! *incremental* state file (`RFSI`, same framing) that lists the pieces by shared file,
//! offset and length, and its [`StateHandle::Incremental`] names every shared file it refers
//! to, relative to the job directory (possibly written by an older checkpoint). Savepoints
//! never refer to shared files.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

const MAGIC: &[u8; 4] = b"RFCK";
const STATE_MAGIC: &[u8; 4] = b"RFST";
const INCREMENTAL_MAGIC: &[u8; 4] = b"RFSI";
/// The metadata and state file format this build writes and reads.
pub const FORMAT_VERSION: u32 = 2;
/// The metadata file's name inside a checkpoint directory.
pub const METADATA_FILE: &str = "_metadata";
/// The directory of shared files (incremental checkpoints) inside a job's checkpoint directory.
pub const SHARED_DIR: &str = "shared";

/// Where a subtask's state is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StateHandle {
    /// Inlined in the metadata (state below `state.storage.fs.memory-threshold`).
    Inline(ByteBuf),
    /// In a state file beside the metadata.
    File {
        /// The file's name, relative to the checkpoint directory.
        name: String,
        /// Its length in bytes, header included.
        len: u64,
    },
    /// An incremental state file beside the metadata (`RFSI`), whose pieces are in shared
    /// files, some possibly written by older checkpoints.
    Incremental {
        /// The file's name, relative to the checkpoint directory.
        name: String,
        /// Its length in bytes, header included.
        len: u64,
        /// Every shared file it refers to.
        shared: Vec<SharedFile>,
        /// Bytes this checkpoint wrote (its state file and the shared file it added).
        written: u64,
    },
}

/// A shared file an incremental checkpoint refers to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SharedFile {
    /// Its name relative to the job's checkpoint directory: `shared/<file>`.
    pub name: String,
    /// Its length in bytes, header included.
    pub len: u64,
}

impl StateHandle {
    /// Bytes of state this handle stands for (for checkpoint size reporting): for an
    /// incremental handle, what its checkpoint wrote.
    pub fn size(&self) -> u64 {
        match self {
            StateHandle::Inline(b) => b.len() as u64,
            StateHandle::File { len, .. } => *len,
            StateHandle::Incremental { written, .. } => *written,
        }
    }

    /// Bytes of state needed to restore it (shared files included).
    pub fn full_size(&self) -> u64 {
        match self {
            StateHandle::Incremental { len, shared, .. } => *len + shared.iter().map(|f| f.len).sum::<u64>(),
            other => other.size(),
        }
    }

    /// Whether it is in a file of the checkpoint's directory (not inline).
    pub fn is_file(&self) -> bool {
        !matches!(self, StateHandle::Inline(_))
    }

    /// The shared files it refers to (none unless incremental).
    pub fn shared_files(&self) -> &[SharedFile] {
        match self {
            StateHandle::Incremental { shared, .. } => shared,
            _ => &[],
        }
    }
}

/// One subtask's part of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubtaskState {
    /// The vertex.
    pub vertex: u32,
    /// The subtask index.
    pub subtask: u32,
    /// Its operator state.
    pub state: StateHandle,
    /// Its source reader's position (encoded), kept in the metadata so the JobMaster can
    /// restore split enumerators without reading state files.
    pub source: Option<ByteBuf>,
    /// The subtask had finished when the checkpoint was taken (FLIP-147): its operator state
    /// is empty (everything it produced went downstream) and `source` holds the splits it
    /// read to the end. A vertex whose subtasks all finished is not run again on restore.
    #[serde(default)]
    pub finished: bool,
}

/// What the metadata remembers of a vertex, to map state onto a (possibly changed) job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VertexInfo {
    /// The vertex id.
    pub id: u32,
    /// Its parallelism when the checkpoint was taken.
    pub parallelism: u32,
    /// Its operators: node index and name.
    pub operators: Vec<(u32, String)>,
}

/// A periodic checkpoint or a user-triggered savepoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckpointKind {
    /// Periodic, owned by the runtime (retained per `state.checkpoints.num-retained`).
    Checkpoint,
    /// Triggered by the user, owned by the user: never deleted by the runtime.
    Savepoint,
}

/// What a completed checkpoint consists of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointMetadata {
    /// The job (32 hex digits).
    pub job_id: String,
    /// The checkpoint id.
    pub checkpoint_id: u64,
    /// Checkpoint or savepoint.
    pub kind: CheckpointKind,
    /// When it was triggered, epoch ms.
    pub trigger_timestamp_ms: i64,
    /// When it completed, epoch ms.
    pub completion_timestamp_ms: i64,
    /// The job's number of key groups.
    pub max_parallelism: u32,
    /// The job's vertices at the time.
    pub vertices: Vec<VertexInfo>,
    /// Every subtask's acknowledged part.
    pub subtasks: Vec<SubtaskState>,
    /// The split enumerators' own state (FLIP-27), by source vertex, taken before any reader
    /// took its part.
    #[serde(default)]
    pub enumerators: Vec<EnumeratorState>,
}

/// A split enumerator's state in a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnumeratorState {
    /// The source vertex.
    pub vertex: u32,
    /// What the enumerator encoded.
    pub state: ByteBuf,
}

impl CheckpointMetadata {
    /// Total bytes of state (inline and files); for incremental checkpoints, what this one
    /// wrote.
    pub fn state_size(&self) -> u64 {
        self.subtasks.iter().map(|s| s.state.size() + s.source.as_ref().map_or(0, |b| b.len() as u64)).sum()
    }

    /// The shared files this checkpoint refers to (relative to the job directory), each once.
    pub fn shared_files(&self) -> Vec<&SharedFile> {
        let mut seen = std::collections::HashSet::new();
        self.subtasks.iter().flat_map(|s| s.state.shared_files()).filter(|f| seen.insert(&f.name)).collect()
    }
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

fn frame(magic: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 12);
    out.extend_from_slice(&header(magic, payload));
    out.extend_from_slice(payload);
    out
}

/// The 12 bytes that precede a payload: magic, format version, CRC-32 of the payload.
fn header(magic: &[u8; 4], payload: &[u8]) -> [u8; 12] {
    let mut h = [0u8; 12];
    h[..4].copy_from_slice(magic);
    h[4..8].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[8..].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
    h
}

fn unframe<'a>(magic: &[u8; 4], bytes: &'a [u8], path: &Path) -> Result<&'a [u8], MetadataError> {
    let p = || path.display().to_string();
    if bytes.len() < 12 {
        return Err(MetadataError::Checksum { path: p() });
    }
    if &bytes[..4] != magic {
        return Err(MetadataError::BadMagic { path: p() });
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
    Ok(payload)
}

impl MetadataError {
    /// File system trouble is external; a file that is not (this version's) metadata is the
    /// user's (they named it).
    pub fn domain(&self) -> crate::ErrorDomain {
        match self {
            MetadataError::Io { .. } => crate::ErrorDomain::External,
            _ => crate::ErrorDomain::User,
        }
    }

    /// Whether reading or writing again may succeed: only after I/O trouble.
    pub fn is_retryable(&self) -> bool {
        matches!(self, MetadataError::Io { .. })
    }
}

/// Encodes metadata with magic, version and checksum.
pub fn encode(meta: &CheckpointMetadata) -> Result<Vec<u8>, MetadataError> {
    let payload = rmp_serde::to_vec(meta)
        .map_err(|e| MetadataError::Decode { path: "<memory>".into(), reason: e.to_string() })?;
    Ok(frame(MAGIC, &payload))
}

/// Decodes and verifies metadata read from `path`.
pub fn decode(bytes: &[u8], path: &Path) -> Result<CheckpointMetadata, MetadataError> {
    let payload = unframe(MAGIC, bytes, path)?;
    rmp_serde::from_slice(payload)
        .map_err(|e| MetadataError::Decode { path: path.display().to_string(), reason: e.to_string() })
}

/// Frames a subtask's encoded state for a state file.
pub fn encode_state_file(state: &[u8]) -> Vec<u8> {
    frame(STATE_MAGIC, state)
}

/// The header of a state file holding `state`: writing it and then `state` gives the bytes
/// of [`encode_state_file`] without copying a large payload.
pub fn state_file_header(state: &[u8]) -> [u8; 12] {
    header(STATE_MAGIC, state)
}

/// The header of a state file whose payload is `parts`, one after the other.
pub fn state_file_header_of_parts<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> [u8; 12] {
    let mut crc = crc32fast::Hasher::new();
    for p in parts {
        crc.update(p);
    }
    let mut h = [0u8; 12];
    h[..4].copy_from_slice(STATE_MAGIC);
    h[4..8].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[8..].copy_from_slice(&crc.finalize().to_le_bytes());
    h
}

/// Verifies a state file read from `path` and returns its payload.
pub fn decode_state_file<'a>(bytes: &'a [u8], path: &Path) -> Result<&'a [u8], MetadataError> {
    unframe(STATE_MAGIC, bytes, path)
}

/// Frames an incremental state file (its payload lists pieces of shared files).
pub fn incremental_state_file_header(payload: &[u8]) -> [u8; 12] {
    header(INCREMENTAL_MAGIC, payload)
}

/// Whether `bytes` start like an incremental state file (checked no further).
pub fn is_incremental_state_file(bytes: &[u8]) -> bool {
    bytes.len() >= 4 && &bytes[..4] == INCREMENTAL_MAGIC
}

/// Verifies an incremental state file read from `path` and returns its payload.
pub fn decode_incremental_state_file<'a>(bytes: &'a [u8], path: &Path) -> Result<&'a [u8], MetadataError> {
    unframe(INCREMENTAL_MAGIC, bytes, path)
}

/// The shared file subtask `subtask` of `vertex` adds with checkpoint `checkpoint`, relative
/// to the job's checkpoint directory.
pub fn shared_file_name(vertex: u32, subtask: u32, checkpoint: u64) -> String {
    format!("{SHARED_DIR}/{vertex}-{subtask}-{checkpoint}.seg")
}

/// The checkpoint that wrote shared file `name` (`shared/<vertex>-<subtask>-<checkpoint>.seg`),
/// if the name has that shape.
pub fn shared_file_checkpoint(name: &str) -> Option<u64> {
    let file = name.strip_prefix(SHARED_DIR)?.strip_prefix('/')?;
    let stem = file.strip_suffix(".seg")?;
    let mut parts = stem.split('-');
    let (v, s, n) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || v.parse::<u32>().is_err() || s.parse::<u32>().is_err() {
        return None;
    }
    n.parse().ok()
}

/// Whether `name` is a valid shared file name (`shared/<plain file name>`): metadata cannot
/// point anywhere else.
pub fn is_shared_file_name(name: &str) -> bool {
    match name.strip_prefix(SHARED_DIR).and_then(|r| r.strip_prefix('/')) {
        Some(f) => !f.is_empty() && f != "." && f != ".." && !f.contains('/') && !f.contains('\\'),
        None => false,
    }
}

/// The directory of checkpoint `id` of `job` under `base`.
pub fn checkpoint_dir(base: &Path, job: &str, id: u64) -> PathBuf {
    base.join(job).join(format!("chk-{id}"))
}

/// The checkpoint id of a `chk-<n>` directory name.
pub fn parse_checkpoint_dir_name(name: &str) -> Option<u64> {
    name.strip_prefix("chk-").and_then(|n| n.parse().ok())
}

/// The state file name of subtask `subtask` of `vertex`.
pub fn state_file_name(vertex: u32, subtask: u32) -> String {
    format!("{vertex}-{subtask}.state")
}

/// Which of `ids` (completed checkpoints, any order) to delete so that the `retain` newest
/// are kept.
pub fn to_discard(mut ids: Vec<u64>, retain: usize) -> Vec<u64> {
    ids.sort_unstable();
    let n = ids.len().saturating_sub(retain.max(1));
    ids.truncate(n);
    ids
}

#[cfg(test)]
mod tests {
    #[test]
    fn shared_file_names_name_their_checkpoint() {
        assert_eq!(shared_file_checkpoint(&shared_file_name(2, 7, 41)), Some(41));
        for bad in ["shared/0-0.seg", "shared/a-0-1.seg", "shared/0-0-1.bin", "other/0-0-1.seg", "shared/0-0-1-2.seg"] {
            assert_eq!(shared_file_checkpoint(bad), None, "{bad}");
        }
    }

    use super::*;

    fn meta(id: u64) -> CheckpointMetadata {
        CheckpointMetadata {
            job_id: "00ff".into(),
            checkpoint_id: id,
            kind: CheckpointKind::Checkpoint,
            trigger_timestamp_ms: 1,
            completion_timestamp_ms: 2,
            max_parallelism: 128,
            vertices: vec![VertexInfo { id: 0, parallelism: 2, operators: vec![(0, "Source".into())] }],
            subtasks: vec![SubtaskState {
                vertex: 0,
                subtask: 1,
                state: StateHandle::Inline(ByteBuf::from(vec![1, 2, 3])),
                source: None,
                finished: false,
            }],
            enumerators: Vec::new(),
        }
    }

    #[test]
    fn round_trip_and_corruption_is_detected() {
        let p = Path::new("/x/_metadata");
        let mut bytes = encode(&meta(3)).unwrap();
        assert_eq!(decode(&bytes, p).unwrap(), meta(3));
        let last = bytes.len() - 1;
        bytes[last] ^= 0x55;
        assert!(matches!(decode(&bytes, p), Err(MetadataError::Checksum { .. })));
        assert!(matches!(decode(&bytes[..7], p), Err(MetadataError::Checksum { .. })), "truncated");
        bytes[0] = b'X';
        assert!(matches!(decode(&bytes, p), Err(MetadataError::BadMagic { .. })));
        let f = encode_state_file(b"hello");
        assert_eq!(decode_state_file(&f, p).unwrap(), b"hello");
        assert!(matches!(decode(&f, p), Err(MetadataError::BadMagic { .. })), "a state file is not metadata");
        assert!(matches!(decode_state_file(&f[..f.len() - 1], p), Err(MetadataError::Checksum { .. })));
    }

    #[test]
    fn incremental_handles_and_files() {
        let shared = vec![
            SharedFile { name: shared_file_name(1, 0, 3), len: 100 },
            SharedFile { name: shared_file_name(1, 0, 4), len: 10 },
        ];
        let h = StateHandle::Incremental { name: "1-0.state".into(), len: 20, shared: shared.clone(), written: 30 };
        assert_eq!((h.size(), h.full_size(), h.is_file()), (30, 130, true));
        assert_eq!(h.shared_files(), &shared[..]);
        let mut m = meta(4);
        m.subtasks[0].state = h.clone();
        m.subtasks.push(SubtaskState { subtask: 0, ..m.subtasks[0].clone() });
        assert_eq!(m.shared_files().len(), 2, "each file once");
        assert_eq!(decode(&encode(&m).unwrap(), Path::new("/m")).unwrap(), m);
        assert!(is_shared_file_name("shared/1-0-3.seg"));
        for bad in ["shared/", "shared/..", "shared/a/b", concat!("..", "/shared/x"), "x.seg", "sharedx/y"] {
            assert!(!is_shared_file_name(bad), "{bad}");
        }
        assert_eq!(state_file_header_of_parts([&b"ab"[..], b"c"]), state_file_header(b"abc"));
        let payload = b"pieces";
        let mut f = incremental_state_file_header(payload).to_vec();
        f.extend_from_slice(payload);
        assert!(is_incremental_state_file(&f));
        assert_eq!(decode_incremental_state_file(&f, Path::new("/f")).unwrap(), payload);
        assert!(decode_state_file(&f, Path::new("/f")).is_err(), "not a plain state file");
        let last = f.len() - 1;
        f[last] ^= 1;
        assert!(matches!(decode_incremental_state_file(&f, Path::new("/f")), Err(MetadataError::Checksum { .. })));
    }

    #[test]
    fn retention_discards_the_oldest() {
        assert_eq!(to_discard(vec![6, 3, 5, 4], 2), vec![3, 4]);
        assert_eq!(to_discard(vec![1], 3), Vec::<u64>::new());
        assert_eq!(parse_checkpoint_dir_name("chk-17"), Some(17));
        assert_eq!(parse_checkpoint_dir_name("chk-x"), None);
    }
}
