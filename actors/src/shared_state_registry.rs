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
    /// Pending checkpoint → the files of its base, which its increment may refer to: kept
    /// until it completes (and refers to them itself) or is aborted, even if retention
    /// discards the base meanwhile (concurrent checkpoints).
    pins: HashMap<u64, Vec<String>>,
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

    /// Keeps the files of completed checkpoint `base` for pending checkpoint `id`, which may
    /// refer to them; false if `base` is not registered (then `id` must not build on it).
    pub fn pin(&mut self, id: u64, base: u64) -> bool {
        let Some(files) = self.by_checkpoint.get(&base).cloned() else { return false };
        if let Some(old) = self.pins.insert(id, files.clone()) {
            self.release(old);
        }
        for f in &files {
            *self.refs.entry(f.clone()).or_insert(0) += 1;
        }
        true
    }

    /// Pending checkpoint `id` completed (and was registered) or was aborted: its base's
    /// files are no longer kept for it; returns the files nothing refers to any more.
    pub fn unpin(&mut self, id: u64) -> Vec<String> {
        match self.pins.remove(&id) {
            Some(files) => self.release(files),
            None => Vec::new(),
        }
    }

    fn release(&mut self, files: Vec<String>) -> Vec<String> {
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

    /// Whether checkpoint `id` is registered.
    pub fn contains(&self, id: u64) -> bool {
        self.by_checkpoint.contains_key(&id)
    }

    /// Unregisters checkpoint `id` (subsumed, discarded by retention, or never completed);
    /// returns the files no registered checkpoint refers to any more: those to delete.
    pub fn unregister(&mut self, id: u64) -> Vec<String> {
        let Some(files) = self.by_checkpoint.remove(&id) else { return Vec::new() };
        self.release(files)
    }

    /// Whether a registered checkpoint refers to `file`.
    pub fn is_referenced(&self, file: &str) -> bool {
        self.refs.contains_key(file)
    }

    /// Of the shared files on disk (`files`), those no registered or pending checkpoint refers
    /// to although the checkpoint that wrote them is not newer than `newest`, the latest
    /// completed one: written by a checkpoint that was aborted or never completed (a process
    /// died between writing and acknowledging). Files of checkpoints after `newest` may still
    /// be in flight and are left alone.
    pub fn orphans<'f>(&self, files: &'f [String], newest: u64) -> Vec<&'f String> {
        files
            .iter()
            .filter(|f| {
                riffle_state::checkpoint_metadata::shared_file_checkpoint(f).is_some_and(|id| id <= newest)
                    && !self.is_referenced(f)
            })
            .collect()
    }

    /// The registered checkpoints, oldest first.
    pub fn checkpoints(&self) -> impl Iterator<Item = u64> + '_ {
        self.by_checkpoint.keys().copied()
    }
}

/// Metadata of checkpoint `id` whose one subtask refers to the shared files `shared` (tests).
#[cfg(test)]
pub(crate) fn incremental_metadata(id: u64, shared: &[&str]) -> CheckpointMetadata {
    use riffle_state::checkpoint_metadata::{CheckpointKind, SharedFile, StateHandle, SubtaskState};
    CheckpointMetadata {
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
            finished: false,
        }],
        enumerators: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_pending_checkpoint_keeps_its_base_files_until_it_is_settled() {
        let mut r = SharedStateRegistry::default();
        r.register(1, files(&["shared/a", "shared/b"]));
        assert!(r.pin(3, 1), "3 builds on 1");
        assert!(!r.pin(4, 2), "2 is not a completed checkpoint");
        // 2 completes first (concurrent checkpoints) and retention discards 1: 3 may still
        // refer to 1's files.
        r.register(2, files(&["shared/b", "shared/c"]));
        assert_eq!(r.unregister(1), Vec::<String>::new());
        assert!(r.is_referenced("shared/a"));
        // 3 completes referring to a: registered, then unpinned.
        r.register(3, files(&["shared/a", "shared/d"]));
        assert_eq!(r.unpin(3), Vec::<String>::new());
        assert!(r.pin(5, 3));
        assert_eq!(r.unregister(3), Vec::<String>::new(), "5 is pending on 3");
        let mut gone = r.unpin(5);
        gone.sort();
        assert_eq!(gone, files(&["shared/a", "shared/d"]), "5 aborted: 3's own files go");
        assert_eq!(r.unpin(5), Vec::<String>::new());
    }

    #[test]
    fn orphans_are_unreferenced_files_of_checkpoints_up_to_the_newest() {
        let mut r = SharedStateRegistry::default();
        r.register(3, files(&["shared/0-0-1.seg", "shared/0-0-3.seg"]));
        assert!(r.pin(5, 3));
        let on_disk = files(&[
            "shared/0-0-1.seg",
            "shared/0-0-2.seg",
            "shared/0-0-3.seg",
            "shared/1-2-4.seg",
            "shared/0-0-5.seg",
            "shared/readme",
        ]);
        let orphans: Vec<&str> = r.orphans(&on_disk, 4).into_iter().map(String::as_str).collect();
        assert_eq!(orphans, vec!["shared/0-0-2.seg", "shared/1-2-4.seg"]);
    }

    #[test]
    fn counts_rebuilt_from_metadata() {
        let mut r = SharedStateRegistry::default();
        for m in [
            incremental_metadata(4, &["shared/0-0-3.seg", "shared/0-0-4.seg"]),
            incremental_metadata(5, &["shared/0-0-3.seg"]),
        ] {
            r.register_metadata(&m);
        }
        assert!(r.contains(4) && r.contains(5));
        assert_eq!(r.unregister(4), files(&["shared/0-0-4.seg"]));
        assert!(r.is_referenced("shared/0-0-3.seg"));
    }
}
