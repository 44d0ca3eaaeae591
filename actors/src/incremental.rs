//! Incremental checkpoints, a subtask's side (`state.backend.incremental`).
//!
//! Operators hand in their state as pieces ([`Segment`]); a piece with an id is one they hand
//! in again, unchanged, while it does not change (the window operator: one piece per window,
//! kept until the window changes). An incremental snapshot writes the pieces that are new
//! since its *base* — the latest completed checkpoint when it was triggered, named by the
//! barrier — to one shared file of its own, `shared/<vertex>-<subtask>-<n>.seg` in the job's
//! checkpoint directory, and refers to the base's pieces where they already are (in shared
//! files of older checkpoints). Its state file (`RFSI`) lists the pieces in order; pieces
//! without an id (small, changing every time) are inline in it. A restore reads the state
//! file, then each shared file it names once (verified by its checksum), and concatenates the
//! pieces back into the operators' states, byte for byte what a full snapshot holds.
//!
//! [`SegmentIndex`] is where the pieces of this subtask's snapshots are: pending per
//! checkpoint until it completes; then that checkpoint's pieces are the base for the next
//! increment. An aborted checkpoint's pieces are never a base. The coordinator keeps the
//! shared files alive while a retained checkpoint refers to them
//! (`crate::shared_state_registry`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use riffle_api::snapshot::{ChannelState, SegmentedSnapshot, SourceSnapshot, SubtaskSnapshot};
use riffle_api::TaskError;
use riffle_state::checkpoint_metadata::{
    decode_incremental_state_file, decode_state_file, incremental_state_file_header, is_incremental_state_file,
    is_shared_file_name, shared_file_name, state_file_header_of_parts, SharedFile,
};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::checkpoint_storage;

/// Where a piece was written: a shared file (relative to the job's checkpoint directory), its
/// length, and the piece's place in the file's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PieceLocation {
    /// The shared file.
    pub file: Arc<str>,
    /// The shared file's length, header included.
    pub file_len: u64,
    /// Offset in the payload (after the header).
    pub offset: u64,
    /// The piece's length.
    pub len: u64,
}

/// A piece's identity in a subtask: (operator node index, the operator's piece id).
pub type PieceKey = (usize, u64);

/// The pieces of one snapshot, where they are.
pub type PieceMap = HashMap<PieceKey, PieceLocation>;

/// How many completed checkpoints' pieces a subtask keeps as possible bases: a barrier names
/// the checkpoint that was the latest completed when it was *triggered*, and with checkpoints
/// close together a later one may have completed (and been notified) before the barrier
/// arrives; without the older record the increment would write everything.
const CONFIRMED_KEPT: usize = 4;

/// Which pieces this subtask's checkpoints wrote, and which completed checkpoints may be the
/// base for the next increment. Pure bookkeeping.
#[derive(Debug, Default)]
pub struct SegmentIndex {
    /// The latest completed checkpoints this subtask knows of (at most [`CONFIRMED_KEPT`]),
    /// and their pieces.
    confirmed: BTreeMap<u64, Arc<PieceMap>>,
    /// Pieces of checkpoints written but not known to be complete.
    pending: BTreeMap<u64, Arc<PieceMap>>,
}

impl SegmentIndex {
    /// The pieces an increment on `base` may refer to: those of checkpoint `base` if this
    /// subtask knows them (the barrier says `base` completed, so a pending record of it is
    /// promoted). `None`: write everything.
    pub fn base(&mut self, base: Option<u64>) -> Option<Arc<PieceMap>> {
        let base = base?;
        if let Some(p) = self.pending.remove(&base) {
            self.confirm(base, p);
            self.pending.retain(|id, _| *id > base);
        }
        self.confirmed.get(&base).cloned()
    }

    /// Keeps checkpoint `id`'s pieces as a possible base (and the few latest others).
    fn confirm(&mut self, id: u64, pieces: Arc<PieceMap>) {
        self.confirmed.insert(id, pieces);
        while self.confirmed.len() > CONFIRMED_KEPT {
            self.confirmed.pop_first();
        }
    }

    /// Checkpoint `id`'s snapshot was written with `pieces`.
    pub fn written(&mut self, id: u64, pieces: PieceMap) {
        self.pending.insert(id, Arc::new(pieces));
    }

    /// Checkpoint `id` completed: its pieces are a base of the next increments.
    pub fn completed(&mut self, id: u64) {
        if let Some(p) = self.pending.remove(&id) {
            self.confirm(id, p);
        }
        // Older pending ones may have completed too, their notices still on the way (or
        // overtaken: a savepoint's notice can arrive first) and a barrier may name one as its
        // base; a few are kept. The coordinator names only completed checkpoints as bases, so
        // an aborted one kept here is never used.
        while self.pending.range(..id).count() > CONFIRMED_KEPT {
            self.pending.pop_first();
        }
    }

    /// Checkpoint `id` was aborted: its pieces are never a base.
    pub fn aborted(&mut self, id: u64) {
        self.pending.remove(&id);
    }

    /// Number of checkpoints whose pieces are pending (for tests).
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }
}

/// A piece in an incremental state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Piece {
    /// Inline.
    Bytes(ByteBuf),
    /// In shared file `file` (an index into [`IncrementalState::files`]).
    Shared { file: u32, offset: u64, len: u64 },
}

/// The payload of an incremental state file.
#[derive(Debug, Serialize, Deserialize)]
struct IncrementalState {
    /// The shared files it refers to, relative to the job's checkpoint directory.
    files: Vec<String>,
    source: Option<SourceSnapshot>,
    operators: Vec<(usize, Vec<Piece>)>,
    channels: Vec<ChannelState>,
}

/// What an incremental snapshot writes: its state file (framed), the new shared file (header,
/// then the pieces), and what the metadata and the index get.
pub struct IncrementalWrite {
    /// The state file's bytes, header included.
    pub state_file: Vec<u8>,
    /// The new shared file (relative name and parts, header first), if any piece is new.
    pub shared_file: Option<(String, Vec<bytes::Bytes>)>,
    /// Every shared file the state file refers to.
    pub shared: Vec<SharedFile>,
    /// Where each piece with an id is, for the index.
    pub pieces: PieceMap,
    /// Bytes written by this snapshot (state file and new shared file).
    pub written: u64,
}

struct Owned(Arc<Vec<u8>>);

impl AsRef<[u8]> for Owned {
    fn as_ref(&self) -> &[u8] {
        self.0.as_slice()
    }
}

/// Plans the incremental snapshot of subtask `subtask` of `vertex` for checkpoint
/// `checkpoint`: pieces in `base` are referred to, other pieces with an id go to the new
/// shared file, pieces without one are inline.
pub fn plan(
    snapshot: SegmentedSnapshot,
    base: Option<&PieceMap>,
    vertex: u32,
    subtask: u32,
    checkpoint: u64,
) -> Result<IncrementalWrite, TaskError> {
    let new_name: Arc<str> = shared_file_name(vertex, subtask, checkpoint).into();
    let mut files: Vec<(Arc<str>, u64)> = Vec::new();
    let mut file_index: HashMap<Arc<str>, u32> = HashMap::new();
    let mut new_parts: Vec<Arc<Vec<u8>>> = Vec::new();
    let mut new_len = 0u64;
    let mut new_pieces: Vec<PieceKey> = Vec::new();
    let mut pieces = PieceMap::new();
    let mut operators = Vec::with_capacity(snapshot.operators.len());
    // The new file's index is fixed once its length is known; placeholder until then.
    const NEW: u32 = u32::MAX;
    for (op, segments) in snapshot.operators {
        let mut out = Vec::with_capacity(segments.len());
        for s in segments {
            let Some(id) = s.id else {
                out.push(Piece::Bytes(ByteBuf::from(Arc::try_unwrap(s.bytes).unwrap_or_else(|b| b.as_ref().clone()))));
                continue;
            };
            let key = (op, id);
            if let Some(loc) = base.and_then(|b| b.get(&key)) {
                let i = *file_index.entry(loc.file.clone()).or_insert_with(|| {
                    files.push((loc.file.clone(), loc.file_len));
                    (files.len() - 1) as u32
                });
                out.push(Piece::Shared { file: i, offset: loc.offset, len: loc.len });
                pieces.insert(key, loc.clone());
            } else {
                let len = s.bytes.len() as u64;
                out.push(Piece::Shared { file: NEW, offset: new_len, len });
                new_pieces.push(key);
                pieces.insert(key, PieceLocation { file: new_name.clone(), file_len: 0, offset: new_len, len });
                new_len += len;
                new_parts.push(s.bytes);
            }
        }
        operators.push((op, out));
    }
    let shared_file = if new_parts.is_empty() {
        None
    } else {
        let header = state_file_header_of_parts(new_parts.iter().map(|p| p.as_slice()));
        let file_len = header.len() as u64 + new_len;
        files.push((new_name.clone(), file_len));
        let new_index = (files.len() - 1) as u32;
        for op in &mut operators {
            for p in &mut op.1 {
                if let Piece::Shared { file, .. } = p {
                    if *file == NEW {
                        *file = new_index;
                    }
                }
            }
        }
        for k in &new_pieces {
            if let Some(loc) = pieces.get_mut(k) {
                loc.file_len = file_len;
            }
        }
        let mut parts = Vec::with_capacity(new_parts.len() + 1);
        parts.push(bytes::Bytes::copy_from_slice(&header));
        parts.extend(new_parts.into_iter().map(|p| bytes::Bytes::from_owner(Owned(p))));
        Some((new_name.to_string(), parts))
    };
    let state = IncrementalState {
        files: files.iter().map(|(f, _)| f.to_string()).collect(),
        source: snapshot.source,
        operators,
        channels: snapshot.channels,
    };
    let payload = rmp_serde::to_vec(&state)
        .map_err(|e| TaskError::msg("checkpoint", format!("cannot encode an incremental snapshot: {e}")))?;
    let mut state_file = incremental_state_file_header(&payload).to_vec();
    state_file.extend_from_slice(&payload);
    let written = state_file.len() as u64 + shared_file.as_ref().map_or(0, |_| files.last().map_or(0, |f| f.1));
    let shared = files.into_iter().map(|(name, len)| SharedFile { name: name.to_string(), len }).collect();
    Ok(IncrementalWrite { state_file, shared_file, shared, pieces, written })
}

/// How one operator's state is made up in an incremental state file.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OperatorPieces {
    /// Pieces inline in the state file.
    pub inline: usize,
    /// Per shared file (relative to the job's checkpoint directory): the pieces in it and
    /// their bytes.
    pub shared: BTreeMap<String, (usize, u64)>,
}

/// The pieces of each operator (by node index) of an incremental state file's bytes, without
/// reading the shared files: what a checkpoint wrote anew and what it refers to (for tests
/// and tools; `path` is named in errors).
pub fn operator_pieces(state_file: &[u8], path: &Path) -> Result<Vec<(usize, OperatorPieces)>, TaskError> {
    let payload = decode_incremental_state_file(state_file, path)
        .map_err(|e| TaskError::msg("restore", format!("cannot read checkpoint state: {e}")))?;
    let state: IncrementalState = rmp_serde::from_slice(payload)
        .map_err(|e| TaskError::msg("restore", format!("corrupt incremental state file: {e}")))?;
    let mut out = Vec::with_capacity(state.operators.len());
    for (op, pieces) in state.operators {
        let mut o = OperatorPieces::default();
        for p in pieces {
            match p {
                Piece::Bytes(_) => o.inline += 1,
                Piece::Shared { file, len, .. } => {
                    let name = state.files.get(file as usize).cloned().unwrap_or_default();
                    let e = o.shared.entry(name).or_default();
                    e.0 += 1;
                    e.1 += len;
                }
            }
        }
        out.push((op, o));
    }
    Ok(out)
}

/// The job's checkpoint directory of a state file in `<job dir>/chk-<n>/`.
fn job_dir_of(state_file: &Path) -> Result<&Path, TaskError> {
    state_file.parent().and_then(Path::parent).ok_or_else(|| {
        TaskError::msg("restore", format!("state file '{}' is not in a checkpoint", state_file.display()))
    })
}

/// Reads a subtask's state file, full or incremental (then with the shared files it refers
/// to), verifying every checksum.
pub async fn read_state_file(path: &Path) -> Result<SubtaskSnapshot, TaskError> {
    let err = |e: &dyn std::fmt::Display| TaskError::msg("restore", format!("cannot read checkpoint state: {e}"));
    let bytes = checkpoint_storage::get(path).await.map_err(|e| err(&e))?;
    if !is_incremental_state_file(&bytes) {
        let payload = decode_state_file(&bytes, path).map_err(|e| err(&e))?;
        return SubtaskSnapshot::decode(payload);
    }
    let payload = decode_incremental_state_file(&bytes, path).map_err(|e| err(&e))?;
    let state: IncrementalState = rmp_serde::from_slice(payload)
        .map_err(|e| TaskError::msg("restore", format!("corrupt incremental state file: {e}")))?;
    let job_dir = job_dir_of(path)?;
    let mut shared = Vec::with_capacity(state.files.len());
    for name in &state.files {
        if !is_shared_file_name(name) {
            return Err(TaskError::msg("restore", format!("malformed shared file name '{name}'")));
        }
        let p: PathBuf = job_dir.join(name);
        let bytes = checkpoint_storage::get(&p).await.map_err(|e| err(&e))?;
        decode_state_file(&bytes, &p).map_err(|e| err(&e))?;
        shared.push(bytes);
    }
    assemble(state, &shared)
}

/// Concatenates each operator's pieces; `shared[i]` is shared file `i`, header included.
fn assemble(state: IncrementalState, shared: &[Vec<u8>]) -> Result<SubtaskSnapshot, TaskError> {
    let mut operators = Vec::with_capacity(state.operators.len());
    for (op, pieces) in state.operators {
        let mut out = Vec::new();
        for p in pieces {
            match p {
                Piece::Bytes(b) => out.extend_from_slice(&b),
                Piece::Shared { file, offset, len } => {
                    let piece = shared
                        .get(file as usize)
                        .and_then(|f| {
                            let start = usize::try_from(offset).ok()?.checked_add(12)?;
                            f.get(start..start.checked_add(usize::try_from(len).ok()?)?)
                        })
                        .ok_or_else(|| {
                            TaskError::msg("restore", format!("a piece lies outside its shared file (file {file})"))
                        })?;
                    out.extend_from_slice(piece);
                }
            }
        }
        operators.push((op, ByteBuf::from(out)));
    }
    Ok(SubtaskSnapshot { source: state.source, operators, channels: state.channels })
}

#[cfg(test)]
mod tests {
    use super::*;
    use riffle_api::snapshot::Segment;

    fn seg(id: Option<u64>, b: &[u8]) -> Segment {
        Segment { id, bytes: Arc::new(b.to_vec()) }
    }

    fn snapshot(pieces: Vec<Segment>) -> SegmentedSnapshot {
        SegmentedSnapshot { source: None, operators: vec![(2, pieces)], channels: Vec::new() }
    }

    /// Writes a plan's files under `job` as chk-`n`, returns the state file's path.
    fn store(job: &Path, n: u64, w: &IncrementalWrite) -> PathBuf {
        if let Some((name, parts)) = &w.shared_file {
            let p = job.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, parts.iter().flat_map(|b| b.iter().copied()).collect::<Vec<u8>>()).unwrap();
        }
        let p = job.join(format!("chk-{n}")).join("1-0.state");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, &w.state_file).unwrap();
        p
    }

    #[tokio::test]
    async fn a_chain_of_increments_restores_exactly_and_writes_only_new_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = SegmentIndex::default();
        let one = snapshot(vec![seg(None, b"head"), seg(Some(1), b"aaaa"), seg(Some(2), b"bbbb")]);
        let w1 = plan(one.clone(), index.base(None).as_deref(), 1, 0, 1).unwrap();
        assert_eq!(w1.shared.len(), 1);
        index.written(1, w1.pieces.clone());
        let p1 = store(dir.path(), 1, &w1);
        assert_eq!(read_state_file(&p1).await.unwrap(), one.into_full());

        // Checkpoint 1 completed (the barrier of 2 says so): piece 1 is referred to.
        let two = snapshot(vec![seg(None, b"h2"), seg(Some(1), b"aaaa"), seg(Some(3), b"cc")]);
        let base = index.base(Some(1));
        assert!(base.is_some(), "a pending record of the base is promoted");
        let w2 = plan(two.clone(), base.as_deref(), 1, 0, 2).unwrap();
        let names: Vec<_> = w2.shared.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, vec!["shared/1-0-1.seg", "shared/1-0-2.seg"]);
        let (_, parts) = w2.shared_file.as_ref().unwrap();
        assert_eq!(parts.iter().map(|b| b.len()).sum::<usize>(), 12 + 2, "only piece 3 is written");
        index.written(2, w2.pieces.clone());
        let p2 = store(dir.path(), 2, &w2);
        assert_eq!(read_state_file(&p2).await.unwrap(), two.into_full());

        // Checkpoint 3 is aborted: never a base; 4 builds on 2.
        index.written(3, PieceMap::new());
        index.aborted(3);
        index.completed(2);
        assert!(index.base(Some(3)).is_none());
        assert!(index.base(Some(2)).is_some());
        assert_eq!(index.pending_len(), 0);
        // A savepoint's notice overtakes a checkpoint's: the checkpoint is still a base.
        index.written(5, PieceMap::new());
        index.completed(6);
        assert!(index.base(Some(5)).is_some(), "a pending checkpoint older than a completed one is kept");
        // A barrier triggered before checkpoint 2 completed still builds on 1.
        assert!(index.base(Some(1)).is_some(), "an older completed checkpoint is still a base");

        // A garbled shared file is detected.
        let f = dir.path().join("shared/1-0-1.seg");
        let mut bytes = std::fs::read(&f).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        std::fs::write(&f, bytes).unwrap();
        let e = read_state_file(&p2).await.unwrap_err().to_string();
        assert!(e.contains("checksum"), "{e}");
    }

    #[test]
    fn no_base_means_every_piece_is_written() {
        let mut index = SegmentIndex::default();
        index.written(5, PieceMap::new());
        assert!(index.base(Some(4)).is_none(), "not the checkpoint the barrier names");
        let w = plan(snapshot(vec![seg(Some(1), b"x")]), None, 0, 0, 6).unwrap();
        assert_eq!(w.shared.len(), 1);
        assert_eq!(w.written, w.state_file.len() as u64 + 13);
    }
}
