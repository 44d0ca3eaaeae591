//! Which state each subtask of a job restores from a completed checkpoint or savepoint: a pure
//! decision over the checkpoint's metadata and the job's shape, so it can be tested without
//! a runtime.
//!
//! At the parallelism the checkpoint was taken with, subtask *i* gets subtask *i*'s state and
//! reader position. At another parallelism (rescaling), every new subtask gets every former
//! subtask's operator state and keeps the key groups it owns (non-keyed operator state has
//! union semantics), and the source's unfinished splits go back to the split enumerator,
//! which hands them out again with their progress.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use riffle_api::snapshot::SourceSnapshot;
use riffle_state::checkpoint_metadata::{
    decode_incremental_state_file, decode_state_file, is_shared_file_name, parse_checkpoint_dir_name,
    CheckpointMetadata, StateHandle, METADATA_FILE,
};

use crate::checkpoint_storage;
use crate::error::RuntimeError;
use crate::gateway::{RestoreState, TaskRestore};

/// A completed checkpoint or savepoint to resume from.
#[derive(Debug, Clone)]
pub struct RestorePoint {
    /// Its metadata.
    pub meta: Arc<CheckpointMetadata>,
    /// Its directory (state file names are relative to it); none for in-memory checkpoints.
    pub dir: Option<PathBuf>,
}

/// The shape of one vertex of the job being restored.
#[derive(Debug, Clone)]
pub struct VertexShape {
    /// Vertex id.
    pub id: u32,
    /// Its parallelism now.
    pub parallelism: u32,
    /// Its operators now: node index and name.
    pub operators: Vec<(u32, String)>,
    /// Whether it is a source vertex.
    pub is_source: bool,
}

/// What a split enumerator restores.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnumeratorRestore {
    /// The parallelism the enumerator was created for when the checkpoint was taken: split
    /// layouts may depend on it, so the restored enumerator is created the same way and
    /// only its unconsumed splits are handed out (to however many readers there are now).
    pub parallelism: u32,
    /// Ids of splits readers hold or finished: never hand them out again.
    pub consumed: Vec<String>,
    /// Unfinished splits (with their progress) to hand out again (after rescaling).
    pub splits_back: Vec<Vec<u8>>,
    /// The enumerator's own state, if it keeps one (restored before `consumed` is applied).
    pub state: Option<Vec<u8>>,
}

/// The whole plan.
#[derive(Debug, Clone, Default)]
pub struct RestorePlan {
    /// By (vertex, subtask).
    pub tasks: HashMap<(u32, u32), TaskRestore>,
    /// By source vertex.
    pub enumerators: HashMap<u32, EnumeratorRestore>,
}

/// Why a job cannot be restored from a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum RestoreError {
    /// The job's number of key groups changed: keyed state cannot be mapped.
    #[error("the checkpoint has max parallelism {found}, the job {expected}: keyed state cannot be redistributed")]
    MaxParallelism {
        /// In the checkpoint.
        found: u32,
        /// In the job.
        expected: u32,
    },
    /// State of an operator the job no longer has.
    #[error(
        "the savepoint has state for operator '{operator}' (vertex {vertex}), which this job does not have; \
         use --allow-non-restored-state (execution.savepoint.ignore-unclaimed-state) to skip it"
    )]
    NonRestoredState {
        /// The operator's name in the checkpoint.
        operator: String,
        /// Its vertex in the checkpoint.
        vertex: u32,
    },
    /// The metadata is inconsistent (a state file named outside its directory).
    #[error("the checkpoint is malformed: {0}")]
    Malformed(String),
    /// A state file is not as long as the metadata says.
    #[error("state file '{name}' has {found} bytes, the metadata says {expected}")]
    StateFileLength {
        /// The file.
        name: String,
        /// Its length.
        found: u64,
        /// The length in the metadata.
        expected: u64,
    },
    /// Nothing to restore from at the path.
    #[error("no checkpoint or savepoint at '{0}' (no _metadata, no chk-<n> directories)")]
    NotFound(String),
}

fn resolve(handle: &StateHandle, dir: Option<&Path>) -> Result<RestoreState, RestoreError> {
    match handle {
        StateHandle::Inline(b) => Ok(RestoreState::Inline(b.clone())),
        StateHandle::File { name, .. } => file_in(name, dir),
        StateHandle::Incremental { name, shared, .. } => {
            // Shared files only under the job's `shared/`: nowhere else.
            if let Some(bad) = shared.iter().find(|f| !is_shared_file_name(&f.name)) {
                return Err(RestoreError::Malformed(format!("shared file name '{}'", bad.name)));
            }
            file_in(name, dir)
        }
    }
}

fn file_in(name: &str, dir: Option<&Path>) -> Result<RestoreState, RestoreError> {
    // A file name, never a path: the metadata cannot point outside its directory.
    if name.is_empty() || name.contains('/') || name.contains('\\') || name == ".." || name == "." {
        return Err(RestoreError::Malformed(format!("state file name '{name}'")));
    }
    let dir = dir.ok_or_else(|| RestoreError::Malformed(format!("state file '{name}' without a directory")))?;
    Ok(RestoreState::File(dir.join(name).display().to_string()))
}

/// Plans the restore of a job shaped `vertices` with `max_parallelism` key groups.
pub fn plan(
    point: &RestorePoint,
    vertices: &[VertexShape],
    max_parallelism: u32,
    allow_non_restored: bool,
) -> Result<RestorePlan, RestoreError> {
    let meta = &point.meta;
    if meta.max_parallelism != max_parallelism {
        return Err(RestoreError::MaxParallelism { found: meta.max_parallelism, expected: max_parallelism });
    }
    let by_id: HashMap<u32, &VertexShape> = vertices.iter().map(|v| (v.id, v)).collect();
    let mut out = RestorePlan::default();
    for old in &meta.vertices {
        let matching = by_id.get(&old.id).filter(|v| v.operators == old.operators);
        let Some(new) = matching else {
            let has_state = meta.subtasks.iter().any(|s| s.vertex == old.id && carries_state(s));
            if has_state && !allow_non_restored {
                let operator = old.operators.first().map(|(_, n)| n.clone()).unwrap_or_default();
                return Err(RestoreError::NonRestoredState { operator, vertex: old.id });
            }
            continue;
        };
        let former: Vec<_> = meta.subtasks.iter().filter(|s| s.vertex == old.id).collect();
        let rescaled = new.parallelism != old.parallelism;
        let state = meta.enumerators.iter().find(|s| s.vertex == old.id).map(|s| s.state.to_vec());
        let mut enumerator = EnumeratorRestore { parallelism: old.parallelism, state, ..Default::default() };
        for s in &former {
            if let Some(src) = s.source.as_ref().and_then(|b| rmp_serde::from_slice::<SourceSnapshot>(b).ok()) {
                enumerator.consumed.extend(src.finished);
                enumerator.consumed.extend(src.unfinished_ids);
                if rescaled {
                    enumerator.splits_back.extend(src.unfinished);
                }
            }
        }
        if new.is_source {
            out.enumerators.insert(new.id, enumerator);
        }
        // Every subtask of the vertex had finished (FLIP-147): it is not run again.
        let finished = former.len() as u32 == old.parallelism && former.iter().all(|s| s.finished);
        // A finished subtask left no operator state (what it produced went downstream).
        let with_state = |s: &&&riffle_state::checkpoint_metadata::SubtaskState| !s.finished;
        for i in 0..new.parallelism {
            let (states, source) = if rescaled {
                let states = former
                    .iter()
                    .filter(with_state)
                    .map(|s| resolve(&s.state, point.dir.as_deref()))
                    .collect::<Result<_, _>>()?;
                (states, None)
            } else {
                match former.iter().find(|s| s.subtask == i) {
                    Some(s) if s.finished => (Vec::new(), s.source.clone()),
                    Some(s) => (vec![resolve(&s.state, point.dir.as_deref())?], s.source.clone()),
                    None => (Vec::new(), None),
                }
            };
            let restore = TaskRestore { checkpoint_id: meta.checkpoint_id, states, source, rescaled, finished };
            out.tasks.insert((new.id, i), restore);
        }
    }
    Ok(out)
}

/// Finds what `path` names and loads it: a checkpoint or savepoint directory (with
/// `_metadata`), or a job's checkpoint directory (its newest valid `chk-<n>`). A corrupt or
/// truncated checkpoint — metadata or state file — is reported in one log line and the
/// previous one of the same job is used instead.
pub async fn load(path: &Path) -> Result<RestorePoint, RuntimeError> {
    let path = checkpoint_storage::absolute(path)?;
    let meta_file = path.join(METADATA_FILE);
    let chk = path.file_name().and_then(|n| n.to_str()).and_then(parse_checkpoint_dir_name);
    let (job_dir, newest) = match (meta_file.exists(), chk, path.parent()) {
        // `…/chk-<n>`: this one, or an older one of the same job.
        (true, Some(id), Some(parent)) => (parent.to_path_buf(), Some(id)),
        // A savepoint: nothing to fall back to.
        (true, _, _) => {
            return verified(&path).await.map_err(|e| e.context(format!("cannot restore from '{}'", path.display())))
        }
        // A job's checkpoint directory: its newest usable checkpoint.
        (false, _, _) => (path.clone(), None),
    };
    let mut ids = checkpoint_storage::list_checkpoints(&job_dir).await?;
    ids.retain(|id| newest.is_none_or(|n| *id <= n));
    ids.sort_unstable_by(|a, b| b.cmp(a));
    if ids.is_empty() {
        return Err(RestoreError::NotFound(path.display().to_string()).into());
    }
    let mut last_err = None;
    for id in ids {
        let dir = job_dir.join(format!("chk-{id}"));
        if !dir.join(METADATA_FILE).exists() {
            continue; // in progress or aborted when the process died: not a checkpoint
        }
        match verified(&dir).await {
            Ok(p) => return Ok(p),
            Err(e) => {
                tracing::warn!("checkpoint {} is unusable, trying the previous one: {e}", dir.display());
                last_err = Some(e);
            }
        }
    }
    let context = format!("no usable checkpoint under '{}'", job_dir.display());
    Err(match last_err {
        Some(e) => e.context(context),
        None => RuntimeError::Checkpoint(format!("{context}: no chk-<n> directory has its _metadata")),
    })
}

/// Reads the metadata in `dir` and verifies every state file it names (length, checksum).
async fn verified(dir: &Path) -> Result<RestorePoint, RuntimeError> {
    let meta = checkpoint_storage::read_metadata(dir).await?;
    let mut shared_checked = std::collections::HashSet::new();
    for s in &meta.subtasks {
        let (name, len) = match &s.state {
            StateHandle::Inline(_) => continue,
            StateHandle::File { name, len } | StateHandle::Incremental { name, len, .. } => (name, *len),
        };
        let RestoreState::File(p) = resolve(&s.state, Some(dir))? else { continue };
        let p = PathBuf::from(p);
        let bytes = checked_len(&p, name, len).await?;
        if matches!(s.state, StateHandle::Incremental { .. }) {
            decode_incremental_state_file(&bytes, &p)?;
        } else {
            decode_state_file(&bytes, &p)?;
        }
        // An increment's shared files, possibly written by older checkpoints.
        let job_dir =
            dir.parent().ok_or_else(|| RestoreError::Malformed("a checkpoint without a job directory".into()))?;
        for f in s.state.shared_files() {
            if shared_checked.insert(f.name.clone()) {
                let p = job_dir.join(&f.name);
                decode_state_file(&checked_len(&p, &f.name, f.len).await?, &p)?;
            }
        }
    }
    Ok(RestorePoint { meta: Arc::new(meta), dir: Some(dir.to_path_buf()) })
}

/// Reads the file at `p` and checks its length against the metadata's.
async fn checked_len(p: &Path, name: &str, len: u64) -> Result<Vec<u8>, RuntimeError> {
    let bytes = checkpoint_storage::get(p).await?;
    if bytes.len() as u64 != len {
        return Err(
            RestoreError::StateFileLength { name: name.to_string(), found: bytes.len() as u64, expected: len }.into()
        );
    }
    Ok(bytes)
}

/// Whether a subtask's part holds anything to restore. An inline snapshot of a stateless
/// chain encodes to a few bytes; a source's position always counts.
fn carries_state(s: &riffle_state::checkpoint_metadata::SubtaskState) -> bool {
    s.source.is_some()
        || match &s.state {
            StateHandle::Inline(b) => b.len() > 8,
            StateHandle::File { .. } | StateHandle::Incremental { .. } => true,
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use riffle_api::snapshot::SubtaskSnapshot;
    use riffle_state::checkpoint_metadata::{CheckpointKind, SubtaskState, VertexInfo};
    use serde_bytes::ByteBuf;

    fn meta(parallelism: u32) -> CheckpointMetadata {
        let ops = vec![(0, "Source".to_string()), (1, "Count".to_string())];
        let mut subtasks = Vec::new();
        for s in 0..parallelism {
            let src = SourceSnapshot {
                unfinished: vec![vec![s as u8]],
                unfinished_ids: vec![format!("split-{s}")],
                finished: vec![format!("done-{s}")],
            };
            subtasks.push(SubtaskState {
                vertex: 0,
                subtask: s,
                state: StateHandle::File { name: format!("0-{s}.state"), len: 10 },
                source: Some(ByteBuf::from(rmp_serde::to_vec(&src).unwrap())),
                finished: false,
            });
        }
        CheckpointMetadata {
            job_id: "j".into(),
            checkpoint_id: 9,
            kind: CheckpointKind::Savepoint,
            trigger_timestamp_ms: 0,
            completion_timestamp_ms: 1,
            max_parallelism: 128,
            vertices: vec![VertexInfo { id: 0, parallelism, operators: ops }],
            subtasks,
            enumerators: vec![riffle_state::checkpoint_metadata::EnumeratorState {
                vertex: 0,
                state: ByteBuf::from(vec![4, 2]),
            }],
        }
    }

    fn shape(parallelism: u32, name: &str) -> Vec<VertexShape> {
        vec![VertexShape {
            id: 0,
            parallelism,
            operators: vec![(0, "Source".into()), (1, name.into())],
            is_source: true,
        }]
    }

    fn point(p: u32) -> RestorePoint {
        RestorePoint { meta: Arc::new(meta(p)), dir: Some(PathBuf::from("/moved/sp")) }
    }

    #[test]
    fn same_parallelism_maps_subtask_to_subtask_with_files_relative_to_the_directory() {
        let plan = plan(&point(2), &shape(2, "Count"), 128, false).unwrap();
        let t1 = &plan.tasks[&(0, 1)];
        assert_eq!(t1.states, vec![RestoreState::File("/moved/sp/0-1.state".into())]);
        assert!(t1.source.is_some());
        let e = &plan.enumerators[&0];
        assert!(e.splits_back.is_empty());
        assert_eq!(e.consumed.len(), 4);
        assert_eq!(e.state, Some(vec![4, 2]), "the enumerator's own state goes back to it");
    }

    #[test]
    fn rescaling_gives_every_former_state_to_each_subtask_and_splits_back_to_the_enumerator() {
        let plan = plan(&point(2), &shape(3, "Count"), 128, false).unwrap();
        assert_eq!(plan.tasks.len(), 3);
        for i in 0..3 {
            assert_eq!(plan.tasks[&(0, i)].states.len(), 2);
            assert!(plan.tasks[&(0, i)].source.is_none());
        }
        assert_eq!(plan.enumerators[&0].splits_back, vec![vec![0u8], vec![1u8]]);
    }

    #[test]
    fn unknown_operators_need_allow_non_restored_state() {
        let err = plan(&point(1), &shape(1, "Other"), 128, false).unwrap_err();
        assert!(matches!(err, RestoreError::NonRestoredState { .. }), "{err}");
        assert!(err.to_string().contains("--allow-non-restored-state"));
        let ok = plan(&point(1), &shape(1, "Other"), 128, true).unwrap();
        assert!(ok.tasks.is_empty());
        assert!(matches!(plan(&point(1), &shape(1, "Count"), 256, false), Err(RestoreError::MaxParallelism { .. })));
    }

    #[test]
    fn state_file_names_cannot_escape_the_directory() {
        let mut m = meta(1);
        m.subtasks[0].state = StateHandle::File { name: "../../etc/passwd".into(), len: 1 };
        let p = RestorePoint { meta: Arc::new(m), dir: Some(PathBuf::from("/sp")) };
        assert!(matches!(plan(&p, &shape(1, "Count"), 128, false), Err(RestoreError::Malformed(_))));
        let empty = SubtaskSnapshot::default().encode().unwrap();
        assert!(empty.len() <= 8, "an empty snapshot counts as no state");
    }

    fn write_checkpoint(job_dir: &Path, id: u64) {
        let dir = job_dir.join(format!("chk-{id}"));
        std::fs::create_dir_all(&dir).unwrap();
        let state = riffle_state::checkpoint_metadata::encode_state_file(&[id as u8; 64]);
        std::fs::write(dir.join("0-0.state"), &state).unwrap();
        let mut m = meta(1);
        m.checkpoint_id = id;
        m.subtasks[0].state = StateHandle::File { name: "0-0.state".into(), len: state.len() as u64 };
        std::fs::write(dir.join(METADATA_FILE), riffle_state::checkpoint_metadata::encode(&m).unwrap()).unwrap();
    }

    #[tokio::test]
    async fn a_corrupt_checkpoint_falls_back_to_the_previous_one() {
        let tmp = tempfile::tempdir().unwrap();
        let job = tmp.path().join("job");
        for id in [3, 4, 5] {
            write_checkpoint(&job, id);
        }
        // chk-6 never completed (no metadata): not a checkpoint.
        std::fs::create_dir_all(job.join("chk-6")).unwrap();
        assert_eq!(load(&job).await.unwrap().meta.checkpoint_id, 5);
        // A flipped byte in chk-5's state file, a truncated chk-4 metadata.
        let f = job.join("chk-5/0-0.state");
        let mut b = std::fs::read(&f).unwrap();
        b[20] ^= 1;
        std::fs::write(&f, &b).unwrap();
        let m = job.join("chk-4").join(METADATA_FILE);
        let b = std::fs::read(&m).unwrap();
        std::fs::write(&m, &b[..b.len() / 2]).unwrap();
        let p = load(&job).await.unwrap();
        assert_eq!(p.meta.checkpoint_id, 3);
        assert_eq!(p.dir.as_deref(), Some(job.join("chk-3").as_path()));
        assert_eq!(load(&job.join("chk-5")).await.unwrap().meta.checkpoint_id, 3, "an explicit chk-5 falls back too");
        assert_eq!(load(&job.join("chk-3")).await.unwrap().meta.checkpoint_id, 3);
        std::fs::remove_file(job.join("chk-3/0-0.state")).unwrap();
        let err = load(&job).await.unwrap_err();
        assert!(err.to_string().contains("no usable checkpoint"), "{err}");
    }
}
