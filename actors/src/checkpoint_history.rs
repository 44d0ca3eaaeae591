//! A job's recent checkpoints as the REST API and the web UI show them: every checkpoint
//! from trigger to completion or failure, with sizes, durations and why it failed.
//!
//! The coordinator records; readers take a copy. Kept apart from the coordinator so it
//! outlives attempts (each attempt has a coordinator of its own) and so reading it never
//! waits on an actor.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

/// Where a checkpoint is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckpointStatus {
    /// Triggered, not every subtask acknowledged yet.
    InProgress,
    /// Complete: restores may use it.
    Completed,
    /// Aborted (decline, timeout, failure, attempt ended, subsumed).
    Failed,
}

impl CheckpointStatus {
    /// Flink's name.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckpointStatus::InProgress => "IN_PROGRESS",
            CheckpointStatus::Completed => "COMPLETED",
            CheckpointStatus::Failed => "FAILED",
        }
    }
}

/// One subtask's acknowledgement of a checkpoint: what the per-subtask checkpoint details
/// (`/jobs/{id}/checkpoints/details/{cid}/subtasks/{vid}`) show.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubtaskCheckpoint {
    /// When its acknowledgement arrived, epoch ms.
    pub ack_ms: i64,
    /// Its state and source position, bytes (channel state included).
    pub state_size: u64,
    /// In-flight data it persisted (unaligned checkpoints), bytes.
    pub persisted_data: u64,
    /// Its synchronous part (the copy), ms.
    pub sync_ms: u64,
    /// Its asynchronous part (encoding and writing), ms.
    pub async_ms: u64,
    /// How long its inputs took to align on the barrier, ms.
    #[serde(default)]
    pub alignment_ms: u64,
}

/// One vertex's part of a checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VertexCheckpoint {
    /// Subtasks that acknowledged.
    pub acknowledged: u32,
    /// Their state, bytes.
    pub state_size: u64,
    /// Latest acknowledgement, epoch ms.
    pub latest_ack_ms: i64,
    /// In-flight data its subtasks persisted, bytes.
    #[serde(default)]
    pub persisted_data: u64,
    /// Each acknowledging subtask's part, by subtask index.
    #[serde(default)]
    pub subtasks: BTreeMap<u32, SubtaskCheckpoint>,
}

/// One checkpoint or savepoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointRecord {
    /// Its id.
    pub id: u64,
    /// Whether it is a savepoint.
    pub is_savepoint: bool,
    /// Its status.
    pub status: CheckpointStatus,
    /// Trigger time, epoch ms.
    pub trigger_ms: i64,
    /// Latest acknowledgement, epoch ms (the trigger time until the first).
    pub latest_ack_ms: i64,
    /// Completion or failure time, epoch ms (-1 while in progress).
    pub end_ms: i64,
    /// State acknowledged so far, bytes (channel state included).
    pub state_size: u64,
    /// In-flight data persisted with it (unaligned checkpoints), bytes.
    pub persisted_data: u64,
    /// Subtasks that must acknowledge.
    pub num_subtasks: u32,
    /// Subtasks that did.
    pub num_acknowledged: u32,
    /// Where it was written, if it was.
    pub external_path: Option<String>,
    /// Why it failed.
    pub failure_message: Option<String>,
    /// Longest synchronous part of a subtask, ms.
    pub sync_ms: u64,
    /// Longest asynchronous part of a subtask, ms.
    pub async_ms: u64,
    /// Per vertex (by vertex index).
    pub vertices: BTreeMap<u32, VertexCheckpoint>,
}

impl CheckpointRecord {
    /// Trigger to completion (or to now, or to the latest ack while in progress), ms.
    pub fn duration_ms(&self) -> i64 {
        let end = if self.end_ms >= 0 { self.end_ms } else { self.latest_ack_ms };
        (end - self.trigger_ms).max(0)
    }
}

/// The checkpoint a job attempt resumed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoredRecord {
    /// Its id.
    pub id: u64,
    /// When the attempt started from it, epoch ms.
    pub restore_ms: i64,
    /// Whether it was a savepoint.
    pub is_savepoint: bool,
    /// Its directory, if it has one.
    pub external_path: Option<String>,
}

/// Counts over the job's whole life (the history keeps only the newest records).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointCountsView {
    /// Restores from a checkpoint or savepoint.
    pub restored: u64,
    /// Triggered.
    pub total: u64,
    /// In progress now.
    pub in_progress: u64,
    /// Completed.
    pub completed: u64,
    /// Failed.
    pub failed: u64,
}

/// The bounded history (`web.checkpoints.history`, Flink's default 10).
#[derive(Debug, Clone)]
pub struct CheckpointHistory {
    records: VecDeque<CheckpointRecord>,
    capacity: usize,
    counts: CheckpointCountsView,
    latest_completed: Option<CheckpointRecord>,
    latest_savepoint: Option<CheckpointRecord>,
    latest_failed: Option<CheckpointRecord>,
    restored: Option<RestoredRecord>,
}

/// Flink's `web.checkpoints.history` default.
pub const DEFAULT_CHECKPOINT_HISTORY_SIZE: usize = 10;

/// `web.checkpoints.history`: how many recent checkpoints the REST API and the web UI keep
/// per job (counts cover every checkpoint regardless). Read by the JobMaster, which owns the
/// job's history, so a job's own configuration may set it too.
pub const HISTORY_SIZE: riffle_api::ConfigOption<usize> = riffle_api::ConfigOption::new(
    riffle_api::config::Group::Rest,
    "web.checkpoints.history",
    DEFAULT_CHECKPOINT_HISTORY_SIZE,
    "checkpoints kept in a job's checkpoint history (REST and web UI)",
);

impl Default for CheckpointHistory {
    fn default() -> Self {
        Self::new(DEFAULT_CHECKPOINT_HISTORY_SIZE)
    }
}

/// A copy of the history for readers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointHistoryView {
    /// Counts over the job's life.
    pub counts: CheckpointCountsView,
    /// The newest records, newest first.
    pub history: Vec<CheckpointRecord>,
    /// Latest completed checkpoint (savepoints included).
    pub latest_completed: Option<CheckpointRecord>,
    /// Latest completed savepoint.
    pub latest_savepoint: Option<CheckpointRecord>,
    /// Latest failed one.
    pub latest_failed: Option<CheckpointRecord>,
    /// What the latest attempt resumed from.
    pub restored: Option<RestoredRecord>,
}

impl CheckpointHistory {
    /// A history keeping `capacity` records (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            records: VecDeque::new(),
            capacity: capacity.max(1),
            counts: CheckpointCountsView::default(),
            latest_completed: None,
            latest_savepoint: None,
            latest_failed: None,
            restored: None,
        }
    }

    /// A checkpoint was triggered.
    pub fn triggered(&mut self, id: u64, is_savepoint: bool, trigger_ms: i64, num_subtasks: u32, path: Option<String>) {
        self.counts.total += 1;
        self.counts.in_progress += 1;
        self.records.push_back(CheckpointRecord {
            id,
            is_savepoint,
            status: CheckpointStatus::InProgress,
            trigger_ms,
            latest_ack_ms: trigger_ms,
            end_ms: -1,
            state_size: 0,
            persisted_data: 0,
            num_subtasks,
            num_acknowledged: 0,
            external_path: path,
            failure_message: None,
            sync_ms: 0,
            async_ms: 0,
            vertices: BTreeMap::new(),
        });
        while self.records.len() > self.capacity {
            self.records.pop_front();
        }
    }

    fn record(&mut self, id: u64) -> Option<&mut CheckpointRecord> {
        self.records.iter_mut().rev().find(|r| r.id == id)
    }

    /// Subtask `subtask` of `vertex` acknowledged checkpoint `id` with `ack`.
    pub fn acknowledged(&mut self, id: u64, vertex: u32, subtask: u32, ack: SubtaskCheckpoint) {
        if let Some(r) = self.record(id) {
            if r.status != CheckpointStatus::InProgress {
                return;
            }
            r.num_acknowledged += 1;
            r.state_size += ack.state_size;
            r.persisted_data += ack.persisted_data;
            r.latest_ack_ms = r.latest_ack_ms.max(ack.ack_ms);
            r.sync_ms = r.sync_ms.max(ack.sync_ms);
            r.async_ms = r.async_ms.max(ack.async_ms);
            let v = r.vertices.entry(vertex).or_default();
            v.acknowledged += 1;
            v.state_size += ack.state_size;
            v.persisted_data += ack.persisted_data;
            v.latest_ack_ms = v.latest_ack_ms.max(ack.ack_ms);
            v.subtasks.insert(subtask, ack);
        }
    }

    /// Keeps the `capacity` newest records from now on (`web.checkpoints.history`, at least 1).
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.max(1);
        while self.records.len() > self.capacity {
            self.records.pop_front();
        }
    }

    /// The checkpoint completed (its metadata is written).
    pub fn completed(&mut self, id: u64, now_ms: i64, path: Option<String>) {
        let Some(r) = self.record(id) else { return };
        if r.status != CheckpointStatus::InProgress {
            return;
        }
        r.status = CheckpointStatus::Completed;
        r.end_ms = now_ms;
        if path.is_some() {
            r.external_path = path;
        }
        let r = r.clone();
        self.counts.in_progress = self.counts.in_progress.saturating_sub(1);
        self.counts.completed += 1;
        if r.is_savepoint {
            self.latest_savepoint = Some(r.clone());
        }
        self.latest_completed = Some(r);
    }

    /// The checkpoint was aborted.
    pub fn failed(&mut self, id: u64, now_ms: i64, why: &str) {
        let Some(r) = self.record(id) else {
            // Evicted while in progress (more than `capacity` newer ones were triggered).
            self.counts.in_progress = self.counts.in_progress.saturating_sub(1);
            self.counts.failed += 1;
            return;
        };
        if r.status != CheckpointStatus::InProgress {
            return;
        }
        r.status = CheckpointStatus::Failed;
        r.end_ms = now_ms;
        r.failure_message = Some(why.to_string());
        let r = r.clone();
        self.counts.in_progress = self.counts.in_progress.saturating_sub(1);
        self.counts.failed += 1;
        self.latest_failed = Some(r);
    }

    /// A job attempt resumed from checkpoint `id`.
    pub fn restored(&mut self, record: RestoredRecord) {
        self.counts.restored += 1;
        self.restored = Some(record);
    }

    /// Counts over the job's life (triggered, completed, failed, ...), without copying records.
    pub fn counts(&self) -> CheckpointCountsView {
        self.counts
    }

    /// The latest completed checkpoint (savepoints included).
    pub fn latest_completed(&self) -> Option<&CheckpointRecord> {
        self.latest_completed.as_ref()
    }

    /// A copy for readers, newest first.
    pub fn view(&self) -> CheckpointHistoryView {
        CheckpointHistoryView {
            counts: self.counts,
            history: self.records.iter().rev().cloned().collect(),
            latest_completed: self.latest_completed.clone(),
            latest_savepoint: self.latest_savepoint.clone(),
            latest_failed: self.latest_failed.clone(),
            restored: self.restored.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_goes_from_in_progress_to_completed_with_its_acks() {
        let mut h = CheckpointHistory::new(3);
        h.triggered(1, false, 100, 2, None);
        let ack = |state_size, persisted_data, sync_ms, async_ms, ack_ms| SubtaskCheckpoint {
            ack_ms,
            state_size,
            persisted_data,
            sync_ms,
            async_ms,
            alignment_ms: 0,
        };
        h.acknowledged(1, 0, 0, ack(10, 0, 1, 5, 110));
        h.acknowledged(1, 1, 1, ack(20, 4, 3, 2, 130));
        assert_eq!(h.view().counts.in_progress, 1);
        h.completed(1, 140, Some("/c/chk-1".into()));
        let v = h.view();
        assert_eq!(v.counts, CheckpointCountsView { restored: 0, total: 1, in_progress: 0, completed: 1, failed: 0 });
        let r = &v.history[0];
        assert_eq!(
            (r.status, r.state_size, r.persisted_data, r.num_acknowledged),
            (CheckpointStatus::Completed, 30, 4, 2)
        );
        assert_eq!((r.sync_ms, r.async_ms, r.duration_ms()), (3, 5, 40));
        assert_eq!(
            r.vertices[&1],
            VertexCheckpoint {
                acknowledged: 1,
                state_size: 20,
                latest_ack_ms: 130,
                persisted_data: 4,
                subtasks: BTreeMap::from([(1, ack(20, 4, 3, 2, 130))]),
            }
        );
        assert_eq!(v.latest_completed.as_ref().map(|r| r.id), Some(1));
        assert!(v.latest_savepoint.is_none());
        // A late ack or a second outcome changes nothing.
        h.acknowledged(1, 0, 0, ack(99, 0, 0, 0, 200));
        h.failed(1, 200, "late");
        assert_eq!(h.view().history[0], v.history[0]);
    }

    #[test]
    fn the_history_is_bounded_but_counts_cover_everything() {
        let mut h = CheckpointHistory::new(2);
        for id in 1..=4 {
            h.triggered(id, id == 4, id as i64, 1, None);
        }
        h.failed(1, 10, "it timed out");
        h.failed(3, 11, "a newer checkpoint completed");
        h.completed(4, 12, Some("/s/savepoint-4".into()));
        let v = h.view();
        assert_eq!(v.history.iter().map(|r| r.id).collect::<Vec<_>>(), vec![4, 3]);
        assert_eq!(v.counts, CheckpointCountsView { restored: 0, total: 4, in_progress: 1, completed: 1, failed: 2 });
        assert_eq!(
            v.latest_failed.as_ref().and_then(|r| r.failure_message.as_deref()),
            Some("a newer checkpoint completed")
        );
        assert_eq!(v.latest_savepoint.as_ref().map(|r| r.id), Some(4));
        h.restored(RestoredRecord { id: 4, restore_ms: 20, is_savepoint: true, external_path: None });
        assert_eq!(h.view().counts.restored, 1);
    }
}
