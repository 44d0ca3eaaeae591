//! Savepoints and restores: cancel-with-savepoint, a savepoint moved to another directory
//! and restored there, restore at a different parallelism, stop-with-savepoint, operators the
//! job no longer has, and aborted checkpoints leaving no files behind.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::WAIT;
use riffle_api::{CollectStream, KeyedProcessFunction, ProcessContext, StreamEnvironment, TimeDomain, UserError};
use riffle_cluster::{JobHandle, JobStatus, MiniCluster, MiniClusterConfig};

const N: u64 = 300_000;

/// Sums values per key in keyed state; emits each key's sum once, at the final watermark.
#[derive(Clone)]
struct FinalSum;

impl KeyedProcessFunction<u64, u64, (u64, u64)> for FinalSum {
    fn process_element(&mut self, v: u64, ctx: &mut ProcessContext<'_, u64, (u64, u64)>) -> Result<(), UserError> {
        let sum = ctx.state().value_state::<u64>("sum")?;
        let cur = sum.get(ctx.state())?.copied();
        if cur.is_none() {
            ctx.register_event_time_timer(riffle_api::MAX_WATERMARK - 1);
        }
        sum.set(ctx.state(), cur.unwrap_or(0) + v)?;
        Ok(())
    }
    fn on_timer(
        &mut self,
        _: i64,
        _: TimeDomain,
        ctx: &mut ProcessContext<'_, u64, (u64, u64)>,
    ) -> Result<(), UserError> {
        let s = ctx.state().value_state::<u64>("sum")?.get(ctx.state())?.copied().unwrap_or(0);
        let k = *ctx.key();
        ctx.collect((k, s));
        Ok(())
    }
}

/// The job under test: a slow sequence (so a savepoint lands in the middle), summed per key.
fn job(parallelism: u32, savepoint: Option<&Path>, sum_name: &str) -> (StreamEnvironment, CollectStream<(u64, u64)>) {
    let mut env = StreamEnvironment::new();
    env.set_parallelism(parallelism);
    env.set_config("state.storage.fs.memory-threshold", "0");
    if let Some(p) = savepoint {
        env.set_config("execution.savepoint.path", &p.display().to_string());
    }
    let out = env
        .from_sequence(0, N - 1)
        .map(|i| {
            if i % 300 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            i
        })
        .name("slow")
        .key_by(|i: &u64| i % 10)
        .process(FinalSum)
        .name(sum_name)
        .collect();
    (env, out)
}

fn expected() -> Vec<(u64, u64)> {
    (0..10).map(|k| (k, (0..N).filter(|i| i % 10 == k).sum())).collect()
}

fn wait_running(mc: &MiniCluster, h: &JobHandle) {
    // A savepoint needs every task running: retry until the job accepts it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while mc.list_jobs().unwrap().iter().all(|j| j.job_id != h.job_id() || j.status != JobStatus::Running) {
        assert!(Instant::now() < deadline, "the job does not run");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn savepoint_with_retry(f: impl Fn() -> Result<PathBuf, riffle_cluster::ClusterError>) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match f() {
            Ok(p) => return p,
            Err(e) => {
                assert!(Instant::now() < deadline, "no savepoint: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Cancels a running job with a savepoint in `dir`; returns the savepoint's directory.
fn cancel_with_savepoint(mc: &MiniCluster, parallelism: u32, dir: &Path) -> PathBuf {
    let (env, out) = job(parallelism, None, "sum");
    let h = mc.submit(env.build_job_graph("first run").unwrap()).unwrap();
    wait_running(mc, &h);
    std::thread::sleep(Duration::from_millis(100));
    let sp = savepoint_with_retry(|| h.cancel_with_savepoint(Some(dir.to_path_buf())));
    assert_eq!(h.wait(WAIT).unwrap().status, JobStatus::Canceled);
    assert!(out.collect::<Vec<_>>().is_empty(), "cancelled before the end: no sums emitted");
    assert!(sp.starts_with(dir) && sp.join("_metadata").is_file(), "{}", sp.display());
    sp
}

fn restore_and_check(mc: &MiniCluster, parallelism: u32, from: &Path) {
    let (env, out) = job(parallelism, Some(from), "sum");
    let h = mc.submit(env.build_job_graph("restored").unwrap()).unwrap();
    let got: Vec<(u64, u64)> = out.collect();
    let r = h.wait(WAIT).unwrap();
    assert_eq!(r.status, JobStatus::Finished, "{:?}", r.error);
    assert_eq!(common::sorted(got), expected(), "restored state + rest of the input = the exact sums");
    // It resumed: the sources read only what the savepoint had not covered.
    let read = h.counters().records_in();
    assert!(read > 0 && read < N, "read {read} of {N} records after the restore");
}

#[test]
fn a_moved_savepoint_restores_with_exact_results() {
    let mc = common::cluster(1, 3);
    let dir = tempfile::tempdir().unwrap();
    let sp = cancel_with_savepoint(&mc, 2, dir.path());
    let files = files_under(&sp);
    assert!(files.iter().any(|f| f.extension().is_some_and(|e| e == "state")), "state files: {files:?}");
    // Move the whole savepoint directory: it refers to its files by relative names.
    let moved = tempfile::tempdir().unwrap();
    let target = moved.path().join("relocated");
    std::fs::rename(&sp, &target).unwrap();
    restore_and_check(&mc, 2, &target);
}

#[test]
fn a_savepoint_restores_at_another_parallelism() {
    let mc = common::cluster(1, 3);
    let dir = tempfile::tempdir().unwrap();
    let sp = cancel_with_savepoint(&mc, 2, dir.path());
    restore_and_check(&mc, 3, &sp);
    restore_and_check(&mc, 1, &sp);
}

#[test]
fn stop_with_savepoint_finishes_the_job_and_the_savepoint_resumes_it() {
    let mc = common::cluster(1, 2);
    let dir = tempfile::tempdir().unwrap();
    let (env, out) = job(2, None, "sum");
    let h = mc.submit(env.build_job_graph("stopped").unwrap()).unwrap();
    wait_running(&mc, &h);
    std::thread::sleep(Duration::from_millis(100));
    let sp = savepoint_with_retry(|| h.stop_with_savepoint(Some(dir.path().to_path_buf())));
    assert_eq!(h.wait(WAIT).unwrap().status, JobStatus::Finished);
    // The job drained: its sums cover exactly what was read up to the savepoint.
    let partial: Vec<(u64, u64)> = out.collect();
    let partial_total: u64 = partial.iter().map(|(_, s)| s).sum();
    let total: u64 = (0..N).sum();
    assert!(partial_total > 0 && partial_total < total, "stopped in the middle: {partial_total} of {total}");
    // Resuming from the savepoint continues with the same state: the final sums are exact.
    restore_and_check(&mc, 2, &sp);
}

#[test]
fn state_of_a_removed_operator_needs_allow_non_restored_state() {
    let mc = common::cluster(1, 2);
    let dir = tempfile::tempdir().unwrap();
    let sp = cancel_with_savepoint(&mc, 1, dir.path());
    let (env, out) = job(1, Some(&sp), "a different sum");
    let (_, r) = common::run_result(&mc, &env, out);
    assert_eq!(r.status, JobStatus::Failed);
    let err = r.error.unwrap_or_default();
    assert!(err.contains("'sum'") && err.contains("--allow-non-restored-state"), "{err}");

    let (mut env, out) = job(1, Some(&sp), "a different sum");
    env.set_config("execution.savepoint.ignore-unclaimed-state", "true");
    let (got, r) = common::run_result(&mc, &env, out);
    assert_eq!(r.status, JobStatus::Finished, "{:?}", r.error);
    let total: u64 = got.iter().map(|(_, s)| s).sum();
    assert!(total < (0..N).sum::<u64>(), "the sums start from zero but the source resumes");
}

#[test]
fn a_missing_or_corrupt_savepoint_fails_the_job_clearly() {
    let mc = common::cluster(1, 1);
    let dir = tempfile::tempdir().unwrap();
    let (env, out) = job(1, Some(&dir.path().join("nowhere")), "sum");
    let (_, r) = common::run_result(&mc, &env, out);
    assert_eq!(r.status, JobStatus::Failed);
    assert!(r.error.unwrap_or_default().contains("no checkpoint or savepoint"));

    let sp = cancel_with_savepoint(&mc, 1, dir.path());
    let meta = sp.join("_metadata");
    let mut bytes = std::fs::read(&meta).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    std::fs::write(&meta, &bytes).unwrap();
    let (env, out) = job(1, Some(&sp), "sum");
    let (_, r) = common::run_result(&mc, &env, out);
    assert_eq!(r.status, JobStatus::Failed);
    assert!(r.error.unwrap_or_default().contains("corrupt"));
}

#[test]
fn aborted_checkpoints_leave_no_files() {
    let mut cfg = MiniClusterConfig::new(1, 2);
    let dir = tempfile::tempdir().unwrap();
    cfg.config
        .set("execution.checkpointing.interval", "5 ms")
        // Every checkpoint times out while subtasks are still writing their state.
        .set("execution.checkpointing.timeout", "1 ms")
        .set("state.checkpoints.dir", dir.path().display().to_string())
        .set("execution.checkpointing.externalized-checkpoint-retention", "RETAIN_ON_CANCELLATION");
    let mc = MiniCluster::start(cfg).unwrap();
    let (env, out) = job(2, None, "sum");
    let h = mc.submit(env.build_job_graph("aborting").unwrap()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while mc.checkpoint_stats(h.job_id()).aborted < 5 {
        assert!(Instant::now() < deadline, "no aborts: {:?}", mc.checkpoint_stats(h.job_id()));
        std::thread::sleep(Duration::from_millis(5));
    }
    h.cancel().unwrap();
    assert_eq!(h.wait(WAIT).unwrap().status, JobStatus::Canceled);
    drop(out);
    let stats = mc.checkpoint_stats(h.job_id());
    // Deletion runs after the abort: give it a moment, then nothing of an aborted checkpoint
    // may be left (completed ones, if one slipped through the timeout, keep their files).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<PathBuf> = files_under(dir.path())
            .into_iter()
            .filter(|f| !f.parent().is_some_and(|d| d.join("_metadata").exists()))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "orphan files after {} aborts: {left:?}", stats.aborted);
        std::thread::sleep(Duration::from_millis(20));
    }
}
