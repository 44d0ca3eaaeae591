//! Drives the two-phase-commit link directly, as the runtime would, against real files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use riffle_state::KeyGroupRange;

use super::exactly_once_file::parse_name;
use super::*;
use crate::error::TaskResult;
use crate::link::{Input, OperatorMarker};
use crate::operators::OpId;
use crate::snapshot::{OperatorRestore, OperatorSnapshots, SubtaskSnapshot};

const MAX_P: u32 = 128;
const OP: usize = 3;

/// A scratch directory removed on drop (the crate has no tempfile dependency).
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("riffle-tpc-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create scratch dir");
        Self(p)
    }
    fn out(&self) -> PathBuf {
        self.0.join("out")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

type Op = TwoPhaseCommitOperator<String, ExactlyOnceTextFileSink<String>>;

fn op(dir: &Path, subtask: u32, parallelism: u32) -> Op {
    let format: Arc<dyn Fn(&String) -> String + Send + Sync> = Arc::new(|s: &String| s.clone());
    let sink = ExactlyOnceTextFileSink::new(dir, format).expect("valid dir");
    let ctx = SinkContext { subtask, parallelism, name: "sink".into() };
    let id = OpId { name: "sink".into(), index: OP, marker: OperatorMarker::default() };
    TwoPhaseCommitOperator::new(sink, ctx, id, None)
}

fn push_all(op: &mut Op, records: &[&str]) -> TaskResult {
    records.iter().try_for_each(|r| op.push(r.to_string(), 0))
}

fn snapshot(op: &mut Op, checkpoint: u64) -> SubtaskSnapshot {
    let mut ops = OperatorSnapshots::new(MAX_P, checkpoint);
    op.snapshot(&mut ops).expect("snapshot");
    assert_eq!(ops.checkpoint_id, checkpoint);
    ops.finish(None).complete().expect("encodes")
}

fn restore(op: &mut Op, snaps: &[SubtaskSnapshot]) -> TaskResult {
    op.restore(&OperatorRestore::new(KeyGroupRange { start: 0, end: MAX_P - 1 }, MAX_P, snaps.to_vec()))
}

/// Every file in `dir` by name, with its content.
fn files(dir: &Path) -> BTreeMap<String, String> {
    let Ok(rd) = std::fs::read_dir(dir) else { return BTreeMap::new() };
    rd.map(|e| {
        let e = e.expect("dir entry");
        (e.file_name().to_string_lossy().into_owned(), std::fs::read_to_string(e.path()).expect("read"))
    })
    .collect()
}

/// The visible (committed) files only.
fn visible(dir: &Path) -> BTreeMap<String, String> {
    files(dir).into_iter().filter(|(n, _)| !n.starts_with('.')).collect()
}

fn hidden(dir: &Path) -> Vec<String> {
    files(dir).into_keys().filter(|n| n.starts_with('.')).collect()
}

fn map(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
    entries.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn records_become_visible_only_after_their_checkpoint_completes() {
    let tmp = TempDir::new("visible");
    let dir = tmp.out();
    let mut op = op(&dir, 0, 1);
    push_all(&mut op, &["a", "b"]).unwrap();
    assert!(visible(&dir).is_empty());
    snapshot(&mut op, 1);
    assert!(visible(&dir).is_empty(), "pre-committed is not visible");
    assert_eq!(hidden(&dir), vec![".part-0-0.inprogress"]);
    push_all(&mut op, &["c"]).unwrap();
    op.notify_checkpoint(1, true).unwrap();
    assert_eq!(visible(&dir), map(&[("part-0-0", "a\nb\n")]), "c came after the barrier");
    snapshot(&mut op, 2);
    assert_eq!(visible(&dir), map(&[("part-0-0", "a\nb\n")]));
    op.notify_checkpoint(2, true).unwrap();
    assert_eq!(visible(&dir), map(&[("part-0-0", "a\nb\n"), ("part-0-1", "c\n")]));
    assert!(hidden(&dir).is_empty());
    assert_eq!(op.pending_transactions(), 0);
}

#[test]
fn aborted_checkpoint_stays_invisible_then_commits_with_the_next_completed_one() {
    let tmp = TempDir::new("abort");
    let dir = tmp.out();
    let mut op = op(&dir, 0, 1);
    push_all(&mut op, &["a", "b"]).unwrap();
    snapshot(&mut op, 1);
    op.notify_checkpoint(1, false).unwrap();
    assert!(visible(&dir).is_empty(), "an aborted checkpoint's data is not committed");
    assert_eq!(hidden(&dir), vec![".part-0-0.inprogress"], "but kept: no failover, no replay");
    assert_eq!(op.pending_transactions(), 1);
    push_all(&mut op, &["c"]).unwrap();
    snapshot(&mut op, 2);
    push_all(&mut op, &["d"]).unwrap();
    snapshot(&mut op, 3);
    assert_eq!(op.pending_transactions(), 3);
    // Checkpoint 2 completing commits 1 (aborted) and 2, not 3.
    op.notify_checkpoint(2, true).unwrap();
    assert_eq!(visible(&dir), map(&[("part-0-0", "a\nb\n"), ("part-0-1", "c\n")]));
    assert_eq!(hidden(&dir), vec![".part-0-2.inprogress"]);
    // A late notification of an older checkpoint changes nothing.
    op.notify_checkpoint(1, true).unwrap();
    assert_eq!(op.pending_transactions(), 1);
    op.notify_checkpoint(3, true).unwrap();
    assert_eq!(visible(&dir), map(&[("part-0-0", "a\nb\n"), ("part-0-1", "c\n"), ("part-0-2", "d\n")]));
    assert!(hidden(&dir).is_empty());
}

#[test]
fn checkpoints_without_records_create_no_files_and_no_gaps() {
    let tmp = TempDir::new("empty");
    let dir = tmp.out();
    let mut op = op(&dir, 0, 1);
    snapshot(&mut op, 1);
    op.notify_checkpoint(1, true).unwrap();
    snapshot(&mut op, 2);
    push_all(&mut op, &["a"]).unwrap();
    snapshot(&mut op, 3);
    snapshot(&mut op, 4);
    op.notify_checkpoint(4, true).unwrap();
    op.end_input().unwrap();
    assert_eq!(files(&dir), map(&[("part-0-0", "a\n")]));
}

const RECORDS: [&str; 10] = ["r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9"];

/// The run without failure: checkpoints 1 after r3 and 2 after r6, end after r9.
fn failure_free(dir: &Path) -> BTreeMap<String, String> {
    let mut op = op(dir, 0, 1);
    push_all(&mut op, &RECORDS[..4]).unwrap();
    snapshot(&mut op, 1);
    op.notify_checkpoint(1, true).unwrap();
    push_all(&mut op, &RECORDS[4..7]).unwrap();
    snapshot(&mut op, 2);
    op.notify_checkpoint(2, true).unwrap();
    push_all(&mut op, &RECORDS[7..]).unwrap();
    op.end_input().unwrap();
    files(dir)
}

#[test]
fn restore_commits_pending_drops_later_data_and_replay_gives_failure_free_bytes() {
    let tmp = TempDir::new("restore");
    let reference = failure_free(&tmp.0.join("reference"));
    assert_eq!(
        reference,
        map(&[("part-0-0", "r0\nr1\nr2\nr3\n"), ("part-0-1", "r4\nr5\nr6\n"), ("part-0-2", "r7\nr8\nr9\n")])
    );

    let dir = tmp.out();
    let mut first = op(&dir, 0, 1);
    push_all(&mut first, &RECORDS[..4]).unwrap();
    let c1 = snapshot(&mut first, 1);
    // Checkpoint 1 completes globally, but the failure comes before its notification.
    push_all(&mut first, &RECORDS[4..7]).unwrap();
    snapshot(&mut first, 2); // never completes
    push_all(&mut first, &RECORDS[7..9]).unwrap();
    drop(first); // the failure
    assert!(visible(&dir).is_empty());
    assert_eq!(hidden(&dir).len(), 3);

    let mut second = op(&dir, 0, 1);
    restore(&mut second, &[c1]).unwrap();
    assert_eq!(files(&dir), map(&[("part-0-0", "r0\nr1\nr2\nr3\n")]), "c1 committed, later data dropped");
    // The sources replay everything after checkpoint 1.
    push_all(&mut second, &RECORDS[4..7]).unwrap();
    snapshot(&mut second, 2);
    second.notify_checkpoint(2, true).unwrap();
    push_all(&mut second, &RECORDS[7..]).unwrap();
    second.end_input().unwrap();
    assert_eq!(files(&dir), reference, "same names, same bytes, nothing hidden left");
}

#[test]
fn restore_after_the_commit_already_happened_is_idempotent() {
    let tmp = TempDir::new("idem");
    let reference = failure_free(&tmp.0.join("reference"));
    let dir = tmp.out();
    let mut first = op(&dir, 0, 1);
    push_all(&mut first, &RECORDS[..4]).unwrap();
    let c1 = snapshot(&mut first, 1);
    push_all(&mut first, &RECORDS[4..6]).unwrap();
    first.notify_checkpoint(1, true).unwrap();
    push_all(&mut first, &RECORDS[6..7]).unwrap();
    drop(first);

    // Restored twice (a failure during the first recovery too).
    for _ in 0..2 {
        let mut again = op(&dir, 0, 1);
        restore(&mut again, std::slice::from_ref(&c1)).unwrap();
        assert_eq!(files(&dir), map(&[("part-0-0", "r0\nr1\nr2\nr3\n")]));
        push_all(&mut again, &RECORDS[4..6]).unwrap();
    }
    let mut last = op(&dir, 0, 1);
    restore(&mut last, &[c1]).unwrap();
    push_all(&mut last, &RECORDS[4..7]).unwrap();
    snapshot(&mut last, 2);
    last.notify_checkpoint(2, true).unwrap();
    push_all(&mut last, &RECORDS[7..]).unwrap();
    last.end_input().unwrap();
    assert_eq!(files(&dir), reference);
}

#[test]
fn restore_of_an_aborted_checkpoints_pending_data_commits_it() {
    // Checkpoint 1 aborted, checkpoint 2 completed: the restore from 2 commits 1's data too.
    let tmp = TempDir::new("abort-restore");
    let dir = tmp.out();
    let mut first = op(&dir, 0, 1);
    push_all(&mut first, &["a"]).unwrap();
    snapshot(&mut first, 1);
    first.notify_checkpoint(1, false).unwrap();
    push_all(&mut first, &["b"]).unwrap();
    let c2 = snapshot(&mut first, 2);
    push_all(&mut first, &["c"]).unwrap();
    drop(first);
    let mut second = op(&dir, 0, 1);
    restore(&mut second, &[c2]).unwrap();
    assert_eq!(files(&dir), map(&[("part-0-0", "a\n"), ("part-0-1", "b\n")]));
    push_all(&mut second, &["c"]).unwrap();
    second.end_input().unwrap();
    assert_eq!(files(&dir), map(&[("part-0-0", "a\n"), ("part-0-1", "b\n"), ("part-0-2", "c\n")]));
}

#[test]
fn end_input_commits_everything_and_leaves_no_in_progress_files() {
    let tmp = TempDir::new("end");
    let dir = tmp.out();
    let mut op = op(&dir, 0, 1);
    push_all(&mut op, &["a"]).unwrap();
    snapshot(&mut op, 1); // never notified
    push_all(&mut op, &["b"]).unwrap();
    snapshot(&mut op, 2);
    op.notify_checkpoint(2, false).unwrap();
    push_all(&mut op, &["c", "d"]).unwrap();
    op.end_input().unwrap();
    assert_eq!(files(&dir), map(&[("part-0-0", "a\n"), ("part-0-1", "b\n"), ("part-0-2", "c\nd\n")]));
    assert_eq!(op.pending_transactions(), 0);
    // Late notifications and snapshots after the end are harmless.
    op.notify_checkpoint(2, true).unwrap();
    let after = snapshot(&mut op, 3);
    op.end_input().unwrap();
    assert!(op.push("x".into(), 0).is_err(), "no record after the end of input");
    assert_eq!(files(&dir), map(&[("part-0-0", "a\n"), ("part-0-1", "b\n"), ("part-0-2", "c\nd\n")]));
    // A restore from a snapshot taken after the end never overwrites committed parts.
    let mut again = self::op(&dir, 0, 1);
    restore(&mut again, &[after]).unwrap();
    push_all(&mut again, &["e"]).unwrap();
    again.end_input().unwrap();
    assert_eq!(files(&dir).get("part-0-3").map(String::as_str), Some("e\n"));
    assert_eq!(files(&dir).len(), 4);
}

#[test]
fn failover_after_end_of_input_replays_without_duplicates() {
    // The subtask finished and committed at the end of input, then a failover elsewhere
    // rolls the job back to checkpoint 1: its later records are replayed, cut differently.
    let tmp = TempDir::new("after-end");
    let dir = tmp.out();
    let mut first = op(&dir, 0, 1);
    push_all(&mut first, &RECORDS[..4]).unwrap();
    let c1 = snapshot(&mut first, 1);
    first.notify_checkpoint(1, true).unwrap();
    push_all(&mut first, &RECORDS[4..7]).unwrap();
    snapshot(&mut first, 2); // never completes
    push_all(&mut first, &RECORDS[7..]).unwrap();
    first.end_input().unwrap();
    assert_eq!(visible(&dir).len(), 3);
    drop(first);

    let mut second = op(&dir, 0, 1);
    restore(&mut second, &[c1]).unwrap();
    assert_eq!(files(&dir), map(&[("part-0-0", "r0\nr1\nr2\nr3\n")]));
    push_all(&mut second, &RECORDS[4..]).unwrap();
    second.end_input().unwrap();
    assert_eq!(files(&dir), map(&[("part-0-0", "r0\nr1\nr2\nr3\n"), ("part-0-1", "r4\nr5\nr6\nr7\nr8\nr9\n")]));
}

#[test]
fn fresh_start_cleans_in_progress_leftovers_of_its_own_subtask_only() {
    let tmp = TempDir::new("fresh");
    let dir = tmp.out();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(".part-0-0.inprogress"), "stale\n").unwrap();
    std::fs::write(dir.join(".part-0-5.inprogress"), "stale\n").unwrap();
    std::fs::write(dir.join(".part-1-0.inprogress"), "other subtask\n").unwrap();
    std::fs::write(dir.join("notes.txt"), "not ours\n").unwrap();
    let mut op = op(&dir, 0, 2);
    push_all(&mut op, &["a"]).unwrap();
    op.end_input().unwrap();
    assert_eq!(
        files(&dir),
        map(&[(".part-1-0.inprogress", "other subtask\n"), ("notes.txt", "not ours\n"), ("part-0-0", "a\n")])
    );
}

#[test]
fn rescale_in_restores_two_former_subtasks_into_one() {
    let tmp = TempDir::new("rescale-in");
    let dir = tmp.out();
    let (mut s0, mut s1) = (op(&dir, 0, 2), op(&dir, 1, 2));
    push_all(&mut s0, &["a0", "b0"]).unwrap();
    push_all(&mut s1, &["a1"]).unwrap();
    let (c0, c1) = (snapshot(&mut s0, 1), snapshot(&mut s1, 1));
    push_all(&mut s0, &["c0"]).unwrap();
    push_all(&mut s1, &["b1", "c1"]).unwrap();
    drop((s0, s1));
    assert_eq!(hidden(&dir).len(), 4);

    let mut merged = op(&dir, 0, 1);
    restore(&mut merged, &[c1, c0]).unwrap();
    assert_eq!(files(&dir), map(&[("part-0-0", "a0\nb0\n"), ("part-1-0", "a1\n")]), "namespace 1 has no owner now");
    // Replay of both former subtasks' records after the checkpoint.
    push_all(&mut merged, &["c0", "b1", "c1"]).unwrap();
    snapshot(&mut merged, 2);
    merged.notify_checkpoint(2, true).unwrap();
    merged.end_input().unwrap();
    assert_eq!(files(&dir), map(&[("part-0-0", "a0\nb0\n"), ("part-0-1", "c0\nb1\nc1\n"), ("part-1-0", "a1\n")]));
}

#[test]
fn rescale_out_leaves_the_other_owners_names_alone() {
    let tmp = TempDir::new("rescale-out");
    let dir = tmp.out();
    let mut s0 = op(&dir, 0, 1);
    push_all(&mut s0, &["a"]).unwrap();
    let c = snapshot(&mut s0, 1);
    push_all(&mut s0, &["b"]).unwrap();
    drop(s0);

    // Both new subtasks get the former subtask's state; subtask 0 owns its names.
    let (mut n0, mut n1) = (op(&dir, 0, 2), op(&dir, 1, 2));
    restore(&mut n0, std::slice::from_ref(&c)).unwrap();
    push_all(&mut n0, &["b"]).unwrap();
    restore(&mut n1, &[c]).unwrap();
    assert_eq!(hidden(&dir), vec![".part-0-1.inprogress"], "subtask 1 must not abort subtask 0's new file");
    push_all(&mut n1, &["x"]).unwrap();
    n0.end_input().unwrap();
    n1.end_input().unwrap();
    assert_eq!(files(&dir), map(&[("part-0-0", "a\n"), ("part-0-1", "b\n"), ("part-1-0", "x\n")]));
}

#[test]
fn odd_base_paths_fail_with_task_errors() {
    let format: Arc<dyn Fn(&String) -> String + Send + Sync> = Arc::new(|s: &String| s.clone());
    let err = |p: &str| ExactlyOnceTextFileSink::<String>::new(p, format.clone()).err().map(|e| e.to_string());
    assert!(err("").is_some_and(|e| e.contains("empty")));
    assert!(err("a\0b").is_some_and(|e| e.contains("NUL")));
    let tmp = TempDir::new("odd");
    let file = tmp.0.join("file");
    std::fs::write(&file, "x").unwrap();
    let e = ExactlyOnceTextFileSink::<String>::new(&file, format.clone()).err().map(|e| e.to_string());
    assert!(e.is_some_and(|e| e.contains("not a directory")), "a file is not a directory");
    // Under a regular file: accepted at build time, fails on first use with the operator named.
    let mut op = op(&file.join("sub"), 0, 1);
    let e = op.push("a".into(), 0).unwrap_err();
    assert_eq!(e.operator, "sink");
    assert!(e.message.contains("cannot create the output directory"), "{}", e.message);
    let e = op.end_input().unwrap_err();
    assert_eq!(e.operator, "sink");
}

#[test]
fn corrupt_restored_state_is_an_error() {
    let tmp = TempDir::new("corrupt");
    let mut op = op(&tmp.out(), 0, 1);
    let snap = SubtaskSnapshot { source: None, operators: vec![(OP, vec![0xc1, 0x00].into())], channels: Vec::new() };
    assert!(restore(&mut op, &[snap]).is_err());
}

#[test]
fn a_lost_pending_file_fails_the_commit() {
    let tmp = TempDir::new("lost");
    let dir = tmp.out();
    let mut op = op(&dir, 0, 1);
    push_all(&mut op, &["a"]).unwrap();
    snapshot(&mut op, 1);
    std::fs::remove_file(dir.join(".part-0-0.inprogress")).unwrap();
    let e = op.notify_checkpoint(1, true).unwrap_err();
    assert!(e.message.contains("cannot commit"), "{}", e.message);
    assert_eq!(op.pending_transactions(), 1, "kept for the restore to retry");
}

#[test]
fn part_names_parse_only_when_canonical() {
    assert_eq!(parse_name("part-3-17"), Some((3, 17, false)));
    assert_eq!(parse_name(".part-0-2.inprogress"), Some((0, 2, true)));
    for odd in ["part-01-2", "part-1", "part-x-1", ".part-1-2", "part-1-2.inprogress", "notes", "part--1-2"] {
        assert_eq!(parse_name(odd), None, "{odd}");
    }
}

#[test]
fn the_stream_api_builds_an_exactly_once_sink() {
    let env = crate::StreamEnvironment::new();
    let tmp = TempDir::new("api");
    env.from_sequence(0, 10).write_as_text_exactly_once(tmp.out(), |n| n.to_string()).name("out");
    assert!(env.build_job_graph("eo").is_ok());
}

/// A sink that logs the protocol calls, to check the operator independently of files.
struct Recorder {
    log: Arc<std::sync::Mutex<Vec<String>>>,
    next: u32,
}

impl Recorder {
    fn note(&self, s: String) {
        self.log.lock().unwrap().push(s);
    }
}

impl TwoPhaseCommitSink<u32> for Recorder {
    type Txn = (u32, Vec<u32>);
    fn initialize(&mut self, _: &SinkContext, r: &Recovery<Self::Txn>) -> Result<(), crate::UserError> {
        self.next = r.aborted.iter().chain(&r.committed).map(|t| t.0 + 1).max().unwrap_or(0);
        self.note(format!("init {} {:?} {:?}", r.restored, r.restored_from, r.aborted));
        Ok(())
    }
    fn begin(&mut self, _: &SinkContext) -> Result<Self::Txn, crate::UserError> {
        self.next += 1;
        self.note(format!("begin {}", self.next - 1));
        Ok((self.next - 1, Vec::new()))
    }
    fn write(&mut self, txn: &mut Self::Txn, value: u32, _: i64) -> Result<(), crate::UserError> {
        txn.1.push(value);
        Ok(())
    }
    fn pre_commit(&mut self, txn: &mut Self::Txn) -> Result<(), crate::UserError> {
        self.note(format!("pre {} {:?}", txn.0, txn.1));
        Ok(())
    }
    fn commit(&mut self, txn: Self::Txn) -> Result<(), crate::UserError> {
        self.note(format!("commit {} {:?}", txn.0, txn.1));
        Ok(())
    }
    fn abort(&mut self, txn: Self::Txn) -> Result<(), crate::UserError> {
        self.note(format!("abort {} {:?}", txn.0, txn.1));
        Ok(())
    }
}

fn recorder_op(log: &Arc<std::sync::Mutex<Vec<String>>>) -> TwoPhaseCommitOperator<u32, Recorder> {
    let ctx = SinkContext { subtask: 0, parallelism: 1, name: "rec".into() };
    let id = OpId { name: "rec".into(), index: OP, marker: OperatorMarker::default() };
    TwoPhaseCommitOperator::new(Recorder { log: log.clone(), next: 0 }, ctx, id, None)
}

fn take(log: &Arc<std::sync::Mutex<Vec<String>>>) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

#[test]
fn operator_drives_the_protocol_in_checkpoint_order() {
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut op = recorder_op(&log);
    op.push(1, 0).unwrap();
    let mut ops = OperatorSnapshots::new(MAX_P, 5);
    op.snapshot(&mut ops).unwrap();
    op.push(2, 0).unwrap();
    let mut ops = OperatorSnapshots::new(MAX_P, 7);
    op.snapshot(&mut ops).unwrap();
    let c7 = ops.finish(None).complete().unwrap();
    op.notify_checkpoint(5, false).unwrap();
    assert_eq!(take(&log), ["init false [] []", "begin 0", "pre 0 [1]", "begin 1", "pre 1 [2]", "begin 2"]);
    op.notify_checkpoint(7, true).unwrap();
    assert_eq!(take(&log), ["commit 0 [1]", "commit 1 [2]"], "the aborted checkpoint's too, in order");
    op.push(3, 0).unwrap();
    op.end_input().unwrap();
    assert_eq!(take(&log), ["pre 2 [3]", "commit 2 [3]"]);

    // A failover back to checkpoint 7 (say its notification never arrived).
    let mut again = recorder_op(&log);
    again.restore(&OperatorRestore::new(KeyGroupRange { start: 0, end: MAX_P - 1 }, MAX_P, vec![c7])).unwrap();
    assert_eq!(take(&log), ["commit 0 [1]", "commit 1 [2]", "abort 2 []", "init true [0] [(2, [])]"]);
    again.push(3, 0).unwrap();
    again.end_input().unwrap();
    assert_eq!(take(&log), ["begin 3", "pre 3 [3]", "commit 3 [3]"]);
}

#[test]
fn with_a_final_checkpoint_coming_the_last_transaction_waits_for_it() {
    let tmp = TempDir::new("final");
    let dir = tmp.out();
    let f = crate::final_checkpoint::FinalCheckpoint::default();
    let mut op = op(&dir, 0, 1).with_final_checkpoint(f.clone());
    assert!(f.wanted(), "a two-phase-commit sink asks for a final checkpoint");
    f.set_coming(true);
    push_all(&mut op, &["a"]).unwrap();
    snapshot(&mut op, 1);
    op.notify_checkpoint(1, true).unwrap();
    push_all(&mut op, &["b", "c"]).unwrap();
    op.end_input().unwrap();
    // Pre-committed, not visible: the final checkpoint commits it.
    let waiting = map(&[("part-0-0", "a\n"), (".part-0-1.inprogress", "b\nc\n")]);
    assert_eq!(files(&dir), waiting);
    assert_eq!(op.pending_transactions(), 1);
    let after_end = snapshot(&mut op, 2);
    op.notify_checkpoint(2, false).unwrap();
    assert_eq!(files(&dir), waiting, "an aborted checkpoint commits nothing");
    snapshot(&mut op, 3);
    op.notify_checkpoint(3, true).unwrap();
    assert_eq!(files(&dir), map(&[("part-0-0", "a\n"), ("part-0-1", "b\nc\n")]));
    assert_eq!(op.pending_transactions(), 0);
    // A restore from the snapshot taken after the end commits that transaction (again: the
    // commit is idempotent), and nothing is duplicated.
    let mut again = self::op(&dir, 0, 1);
    restore(&mut again, &[after_end]).unwrap();
    again.end_input().unwrap();
    assert_eq!(files(&dir), map(&[("part-0-0", "a\n"), ("part-0-1", "b\nc\n")]));
}
