//! Local recovery (FLINK-15507): a TaskExecutor keeps a copy of the latest snapshots of the
//! subtasks it runs on its own disk, and a subtask that comes back to it after a failover
//! restores from that copy first, reading the checkpoint storage only when the copy is
//! missing or damaged. Enabled per job by `state.backend.local-recovery` (default: on for the
//! `sled` backend, off otherwise).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use riffle_state::checkpoint_metadata::{decode_state_file, encode_state_file};

use crate::ids::ExecutionId;

/// How many checkpoints' copies are kept per subtask: the latest may still be aborted, so the
/// one before it (the latest completed, then) must survive until a newer one completes.
const KEPT_PER_SUBTASK: usize = 2;

/// `state.backend.local-recovery`; when unset, on for the `sled` backend only.
pub const LOCAL_RECOVERY: riffle_api::ConfigOption<Option<bool>> = riffle_api::ConfigOption::optional(
    riffle_api::Group::StateBackend,
    "state.backend.local-recovery",
    "keep a local copy of snapshots (default: on for sled, off otherwise)",
);

/// Identifies a subtask across attempts: job, vertex, subtask index.
type SubtaskKey = (String, u32, u32);

/// One TaskExecutor's local snapshot copies, in a directory of its own (removed on drop).
pub struct LocalSnapshots {
    dir: PathBuf,
    copies: Mutex<HashMap<SubtaskKey, Vec<(u64, PathBuf)>>>,
}

fn key(e: &ExecutionId) -> SubtaskKey {
    (e.job.to_string(), e.vertex, e.subtask)
}

impl LocalSnapshots {
    /// Copies under `dir` (created on first use).
    pub fn new(dir: PathBuf) -> Self {
        Self { dir, copies: Mutex::new(HashMap::new()) }
    }

    /// Keeps a copy of `payload` (an encoded subtask snapshot) of checkpoint `id`. Blocking
    /// file I/O: call it off the actor threads. A failure only costs the local copy.
    pub fn keep(&self, e: &ExecutionId, id: u64, payload: &[u8]) {
        let (job, vertex, subtask) = key(e);
        let path = self.dir.join(&job).join(format!("{vertex}-{subtask}-chk{id}.state"));
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&path, encode_state_file(payload)));
        if let Err(err) = written {
            tracing::warn!("local recovery: cannot keep a copy of checkpoint {id} in {}: {err}", path.display());
            return;
        }
        let mut copies = self.copies.lock().unwrap_or_else(PoisonError::into_inner);
        let list = copies.entry((job, vertex, subtask)).or_default();
        list.push((id, path));
        list.sort_by_key(|(id, _)| *id);
        while list.len() > KEPT_PER_SUBTASK {
            let (_, old) = list.remove(0);
            let _ = std::fs::remove_file(old);
        }
    }

    /// The local copy of checkpoint `id` of this subtask, verified, if there is one.
    pub fn load(&self, e: &ExecutionId, id: u64) -> Option<Vec<u8>> {
        let path = {
            let copies = self.copies.lock().unwrap_or_else(PoisonError::into_inner);
            copies.get(&key(e))?.iter().find(|(c, _)| *c == id)?.1.clone()
        };
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(err) => {
                tracing::warn!("local recovery: cannot read {}: {err}; using the checkpoint storage", path.display());
                return None;
            }
        };
        match decode_state_file(&bytes, &path) {
            Ok(payload) => Some(payload.to_vec()),
            Err(err) => {
                tracing::warn!("local recovery: {err}; using the checkpoint storage");
                None
            }
        }
    }
}

impl Drop for LocalSnapshots {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::JobId;

    #[test]
    fn keeps_the_last_two_copies_and_rejects_a_damaged_one() {
        let dir = tempfile::tempdir().unwrap();
        let local = LocalSnapshots::new(dir.path().join("te"));
        let e = ExecutionId { job: JobId(1), vertex: 2, subtask: 0, attempt: 0 };
        for id in 1..=3 {
            local.keep(&e, id, &[id as u8; 10]);
        }
        assert_eq!(local.load(&e, 1), None, "older copies are deleted");
        assert_eq!(local.load(&e, 3), Some(vec![3; 10]));
        let other = ExecutionId { attempt: 5, ..e };
        assert_eq!(local.load(&other, 2), Some(vec![2; 10]), "a later attempt of the subtask finds it");
        let file = dir.path().join("te").join(e.job.to_string()).join("2-0-chk3.state");
        let mut bytes = std::fs::read(&file).unwrap();
        bytes[12] ^= 0xff;
        std::fs::write(&file, bytes).unwrap();
        assert_eq!(local.load(&e, 3), None, "a damaged copy is not used");
    }
}
