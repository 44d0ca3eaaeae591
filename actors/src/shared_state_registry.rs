//! Which shared files (incremental checkpoints) each retained checkpoint of a job refers to,
//! and so which may be deleted: a file goes only when no registered checkpoint refers to it.
//! Pure bookkeeping; the coordinator registers each completed checkpoint, unregisters the
//! ones retention discards, and registers checkpoints found on disk that it did not complete
//! itself (an earlier attempt's, or an earlier JobManager's) from their metadata before
//! discarding anything — so the counts are rebuilt from the retained metadata after a
//! restart.

use std::collections::{BTreeMap, HashMap};

use riffle_state::checkpoint_metadata::CheckpointMetadata;

/// Reference counts of shared files over registered checkpoints.
#[derive(Debug, Default)]
pub struct SharedStateRegistry {
    /// File (relative to the job's checkpoint directory) → number of checkpoints referring.
    refs: HashMap<String, usize>,
    /// Checkpoint → the files it refers to.
    by_checkpoint: BTreeMap<u64, Vec<String>>,
}

impl SharedStateRegistry {
    /// Registers checkpoint `id` referring to `files` (each counted once); registering the
    /// same checkpoint again changes nothing.
    pub fn register(&mut self, id: u64, files: impl IntoIterator<Item = String>) {
        if self.by_checkpoint.contains_key(&id) {
            return;
        }
        let mut files: Vec<String> = files.into_iter().collect();
        files.sort();
        files.dedup();
        for f in &files {
            *self.refs.entry(f.clone()).or_insert(0) += 1;
        }
        self.by_checkpoint.insert(id, files);
    }

    /// Registers a completed checkpoint from its metadata (savepoints refer to nothing shared).
    pub fn register_metadata(&mut self, meta: &CheckpointMetadata) {
        self.register(meta.checkpoint_id, meta.shared_files().into_iter().map(|f| f.name.clone()));
    }

    /// Whether checkpoint `id` is registered.
    pub fn contains(&self, id: u64) -> bool {
        self.by_checkpoint.contains_key(&id)
    }

    /// Unregisters checkpoint `id` (subsumed, discarded by retention, or never completed);
    /// returns the files no registered checkpoint refers to any more: those to delete.
    pub fn unregister(&mut self, id: u64) -> Vec<String> {
        let Some(files) = self.by_checkpoint.remove(&id) else { return Vec::new() };
        let mut unused = Vec::new();
        for f in files {
            if let Some(n) = self.refs.get_mut(&f) {
                *n -= 1;
                if *n == 0 {
                    self.refs.remove(&f);
                    unused.push(f);
                }
            }
        }
        unused
    }

    /// Whether a registered checkpoint refers to `file`.
    pub fn is_referenced(&self, file: &str) -> bool {
        self.refs.contains_key(file)
    }

    /// The registered checkpoints, oldest first.
    pub fn checkpoints(&self) -> impl Iterator<Item = u64> + '_ {
        self.by_checkpoint.keys().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use riffle_state::checkpoint_metadata::{CheckpointKind, SharedFile, StateHandle, SubtaskState};

    fn files(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_file_is_deleted_only_when_no_checkpoint_refers_to_it() {
        let mut r = SharedStateRegistry::default();
        r.register(1, files(&["shared/a", "shared/b"]));
        r.register(2, files(&["shared/a", "shared/c"]));
        r.register(2, files(&["shared/x"]));
        assert!(!r.is_referenced("shared/x"), "a second registration changes nothing");
        assert_eq!(r.unregister(1), files(&["shared/b"]), "a is still referred to by 2");
        assert!(r.is_referenced("shared/a"));
        assert_eq!(r.unregister(1), Vec::<String>::new(), "twice: nothing");
        r.register(3, files(&["shared/c", "shared/d", "shared/d"]));
        let mut gone = r.unregister(2);
        gone.sort();
        assert_eq!(gone, files(&["shared/a"]));
        assert_eq!(r.unregister(3), files(&["shared/c", "shared/d"]));
        assert_eq!(r.checkpoints().count(), 0);
    }

    #[test]
    fn counts_rebuilt_from_metadata() {
        let meta = |id: u64, shared: &[&str]| CheckpointMetadata {
            job_id: "j".into(),
            checkpoint_id: id,
            kind: CheckpointKind::Checkpoint,
            trigger_timestamp_ms: 0,
            completion_timestamp_ms: 0,
            max_parallelism: 128,
            vertices: Vec::new(),
            subtasks: vec![SubtaskState {
                vertex: 0,
                subtask: 0,
                state: StateHandle::Incremental {
                    name: "0-0.state".into(),
                    len: 1,
                    shared: shared.iter().map(|n| SharedFile { name: n.to_string(), len: 1 }).collect(),
                    written: 1,
                },
                source: None,
            }],
        };
        let mut r = SharedStateRegistry::default();
        for m in [meta(4, &["shared/0-0-3.seg", "shared/0-0-4.seg"]), meta(5, &["shared/0-0-3.seg"])] {
            r.register_metadata(&m);
        }
        assert!(r.contains(4) && r.contains(5));
        assert_eq!(r.unregister(4), files(&["shared/0-0-4.seg"]));
        assert!(r.is_referenced("shared/0-0-3.seg"));
    }
}
