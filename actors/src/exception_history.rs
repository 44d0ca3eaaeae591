//! A job's exception history (FLIP-99): every failure with its time, cause chain, task,
//! subtask and location, bounded in size, read page by page. When full, the oldest entry that
//! is not a root cause goes first, and the job's first root cause is never evicted: later
//! noise cannot push out why the trouble started.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// One recorded failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExceptionEntry {
    /// When it was recorded, epoch ms.
    pub timestamp_ms: i64,
    /// The error with its cause chain, joined by ": ".
    pub exception: String,
    /// The failing task (vertex name), if a task failed.
    pub task_name: Option<String>,
    /// The failing subtask's index (0-based).
    pub subtask_index: Option<u32>,
    /// Where it ran (TaskExecutor id).
    pub location: Option<String>,
    /// Whether this failure caused a failover (or the job's failure); otherwise it happened
    /// concurrently, e.g. while the job was already failing.
    pub is_root_cause: bool,
    /// The job attempt it happened in.
    pub attempt: u32,
    /// The chain of `exception` one error per entry, outermost first (empty in entries
    /// recorded before it was kept: then `exception` is the whole chain). Last, so that a
    /// compact (array) encoding without it still decodes.
    #[serde(default)]
    pub causes: Vec<String>,
}

impl ExceptionEntry {
    /// The cause chain one error per line: `causes`, or `exception` where there are none.
    pub fn stacktrace(&self) -> String {
        if self.causes.is_empty() {
            self.exception.clone()
        } else {
            self.causes.join("\n")
        }
    }
}

/// One page of the history, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExceptionPage {
    /// The entries of this page, newest first.
    pub entries: Vec<ExceptionEntry>,
    /// Entries kept in total.
    pub total: usize,
    /// Whether older entries were evicted.
    pub truncated: bool,
}

/// What a highly available JobManager stores of a job's history for its successor (see
/// `peers::JobStore::exceptions_changed`): the entries oldest first, and whether some were
/// evicted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExceptionHistorySnapshot {
    /// The entries kept, oldest first.
    pub entries: Vec<ExceptionEntry>,
    /// Whether older entries were evicted.
    pub truncated: bool,
}

/// The bounded history.
#[derive(Debug, Clone)]
pub struct ExceptionHistory {
    entries: VecDeque<ExceptionEntry>,
    capacity: usize,
    truncated: bool,
}

/// Flink's `jobmanager.exception-history-size` default.
pub const DEFAULT_EXCEPTION_HISTORY_SIZE: usize = 16;

impl ExceptionHistory {
    /// A history keeping at most `capacity` entries (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self { entries: VecDeque::new(), capacity: capacity.max(1), truncated: false }
    }

    /// The history a previous leader stored, bounded by this JobManager's `capacity` (evicting
    /// as [`push`](Self::push) does, so the first root cause stays).
    pub fn restore(capacity: usize, snapshot: ExceptionHistorySnapshot) -> Self {
        let mut h = Self::new(capacity);
        for e in snapshot.entries {
            h.push(e);
        }
        h.truncated |= snapshot.truncated;
        h
    }

    /// What to store for a successor.
    pub fn snapshot(&self) -> ExceptionHistorySnapshot {
        ExceptionHistorySnapshot { entries: self.entries.iter().cloned().collect(), truncated: self.truncated }
    }

    /// Records an entry, evicting as described in the module docs.
    pub fn push(&mut self, entry: ExceptionEntry) {
        self.entries.push_back(entry);
        while self.entries.len() > self.capacity {
            self.truncated = true;
            let first_root = self.entries.iter().position(|e| e.is_root_cause);
            let victim = self
                .entries
                .iter()
                .position(|e| !e.is_root_cause)
                .or_else(|| self.entries.iter().enumerate().position(|(i, e)| e.is_root_cause && Some(i) != first_root))
                .unwrap_or(0);
            self.entries.remove(victim);
        }
    }

    /// Page `page` (0-based) of `size` entries, newest first.
    pub fn page(&self, page: usize, size: usize) -> ExceptionPage {
        let size = size.max(1);
        let entries = self.entries.iter().rev().skip(page.saturating_mul(size)).take(size).cloned().collect();
        ExceptionPage { entries, total: self.entries.len(), truncated: self.truncated }
    }

    /// Number of entries kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(i: i64, root: bool) -> ExceptionEntry {
        ExceptionEntry {
            timestamp_ms: i,
            exception: format!("e{i}"),
            causes: vec![],
            task_name: None,
            subtask_index: None,
            location: None,
            is_root_cause: root,
            attempt: 0,
        }
    }

    #[test]
    fn the_stacktrace_is_the_chain_one_cause_a_line() {
        let mut entry = e(1, true);
        assert_eq!(entry.stacktrace(), "e1", "an entry without causes shows its exception");
        entry.causes = vec!["operator 'sink' failed: write".into(), "disk full".into()];
        assert_eq!(entry.stacktrace(), "operator 'sink' failed: write\ndisk full");
        // An entry encoded before `causes` existed (compact: an array without it) still decodes.
        let old = (1i64, "e1", None::<String>, None::<u32>, None::<String>, true, 0u32);
        let back: ExceptionEntry = rmp_serde::from_slice(&rmp_serde::to_vec(&old).expect("encode")).expect("decode");
        assert_eq!(back, e(1, true));
    }

    #[test]
    fn pages_newest_first() {
        let mut h = ExceptionHistory::new(10);
        for i in 0..5 {
            h.push(e(i, true));
        }
        let p = h.page(0, 2);
        assert_eq!(p.entries.iter().map(|x| x.timestamp_ms).collect::<Vec<_>>(), vec![4, 3]);
        assert_eq!(h.page(2, 2).entries.len(), 1);
        assert!(h.page(3, 2).entries.is_empty());
        assert_eq!(p.total, 5);
        assert!(!p.truncated);
    }

    #[test]
    fn the_first_root_cause_survives_any_amount_of_noise() {
        let mut h = ExceptionHistory::new(3);
        h.push(e(0, true));
        for i in 1..100 {
            h.push(e(i, i % 10 == 0));
        }
        let all = h.page(0, 10).entries;
        assert_eq!(all.len(), 3);
        assert_eq!(all.last().map(|x| x.timestamp_ms), Some(0), "first root cause kept");
        assert!(h.page(0, 1).truncated);
        // Non-root entries are evicted before root causes.
        assert!(all.iter().filter(|x| x.is_root_cause).count() >= 2);
    }

    #[test]
    fn a_restored_history_is_the_stored_one_bounded_anew() {
        let mut h = ExceptionHistory::new(4);
        h.push(e(0, true));
        for i in 1..10 {
            h.push(e(i, i % 3 == 0));
        }
        let snap = h.snapshot();
        let bytes = rmp_serde::to_vec_named(&snap).expect("encode");
        let back: ExceptionHistorySnapshot = rmp_serde::from_slice(&bytes).expect("decode");
        assert_eq!(back, snap);
        let same = ExceptionHistory::restore(4, back.clone());
        assert_eq!(same.page(0, 10), h.page(0, 10));
        // A successor with a smaller bound keeps the first root cause, and says it truncated.
        let small = ExceptionHistory::restore(2, back);
        let p = small.page(0, 10);
        assert_eq!(p.entries.len(), 2);
        assert_eq!(p.entries.last().map(|x| x.timestamp_ms), Some(0));
        assert!(p.truncated);
        let fresh = ExceptionHistory::restore(3, ExceptionHistorySnapshot::default());
        assert!(fresh.is_empty() && !fresh.page(0, 1).truncated);
    }
}
