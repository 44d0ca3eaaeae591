//! Savepoints and restores: cancel-with-savepoint, a savepoint moved to another directory
//! and restored there, restore at a different parallelism, stop-with-savepoint, operators the
//! job no longer has, and aborted checkpoints leaving no files behind.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::WAIT;
use riffle_api::{CollectStream, StreamEnvironment, UserError};
use riffle_cluster::{JobHandle, JobStatus, MiniCluster, MiniClusterConfig};

const N: u64 = 300_000;

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
        .process(common::FinalSum)
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
    let sp = common::savepoint_with_retry(|| h.cancel_with_savepoint(Some(dir.to_path_buf())));
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
    let sp = common::savepoint_with_retry(|| h.stop_with_savepoint(Some(dir.path().to_path_buf())));
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

/// Submits a job, lets it run a while (draining its output meanwhile, so it is never
/// backpressured), cancels it with a savepoint in `dir` and returns the savepoint.
fn cancel_mid_run<T: Send + 'static>(
    mc: &MiniCluster,
    env: StreamEnvironment,
    out: CollectStream<T>,
    dir: &Path,
) -> PathBuf {
    let h = mc.submit(env.build_job_graph("first run").unwrap()).unwrap();
    let drain = std::thread::spawn(move || out.count());
    wait_running(mc, &h);
    std::thread::sleep(Duration::from_millis(100));
    let sp = common::savepoint_with_retry(|| h.cancel_with_savepoint(Some(dir.to_path_buf())));
    assert_eq!(h.wait(WAIT).unwrap().status, JobStatus::Canceled);
    drain.join().unwrap();
    sp
}

/// Runs a job to its end; returns its output and how many records its sources read.
fn run_to_end<T>(mc: &MiniCluster, env: StreamEnvironment, out: CollectStream<T>) -> (Vec<T>, u64) {
    let h = mc.submit(env.build_job_graph("restored").unwrap()).unwrap();
    let got: Vec<T> = out.collect();
    let r = h.wait(WAIT).unwrap();
    assert_eq!(r.status, JobStatus::Finished, "{:?}", r.error);
    (got, h.counters().records_in())
}

/// (0 = fired, key, window start, records in the window, the key's records in all its
/// windows fired so far) or (1 = purged, key, window start, records as the window's state
/// kept them, 0).
type WinOut = (u8, u64, i64, u64, u64);

/// Keeps each window's count in per-window state (read back when the window is purged) and
/// each key's running total in global state.
#[derive(Clone)]
struct WindowTotals;

impl riffle_api::RichProcessWindowFunction<u64, u64, WinOut> for WindowTotals {
    fn process(
        &mut self,
        els: &[u64],
        ctx: &mut riffle_api::ProcessWindowContext<'_, u64, WinOut>,
    ) -> Result<(), UserError> {
        let n = els.len() as u64;
        let ws = ctx.window_state()?;
        ws.value_state::<u64>("count")?.set(ws, n)?;
        let gs = ctx.global_state();
        let total = gs.value_state::<u64>("total")?;
        let t = total.get(gs)?.copied().unwrap_or(0) + n;
        total.set(gs, t)?;
        let (k, s) = (*ctx.key(), ctx.window().start);
        ctx.collect((0, k, s, n, t));
        Ok(())
    }
    fn clear(&mut self, ctx: &mut riffle_api::ProcessWindowContext<'_, u64, WinOut>) -> Result<(), UserError> {
        let ws = ctx.window_state()?;
        let n = ws.value_state::<u64>("count")?.get(ws)?.copied().unwrap_or(0);
        let (k, s) = (*ctx.key(), ctx.window().start);
        ctx.collect((1, k, s, n, 0));
        Ok(())
    }
}

/// A watermark at every 50th record.
struct Every50;

impl riffle_api::WatermarkGenerator<u64> for Every50 {
    fn on_event(&mut self, e: &u64, ts: i64, out: &mut riffle_api::WatermarkOutput) {
        if e.is_multiple_of(50) {
            out.emit_watermark(ts);
        }
    }
    fn on_periodic_emit(&mut self, _: &mut riffle_api::WatermarkOutput) {}
}

/// A slow ordered sequence (one source subtask: timestamps never go back, also after a
/// rescaled restore) into 1 s windows of 3 keys with 3 s of allowed lateness, so that at any
/// time about 3 windows per key have fired but still hold their state.
fn window_job(parallelism: u32, savepoint: Option<&Path>) -> (StreamEnvironment, CollectStream<WinOut>) {
    let mut env = StreamEnvironment::new();
    env.set_parallelism(parallelism);
    if let Some(p) = savepoint {
        env.set_config("execution.savepoint.path", &p.display().to_string());
    }
    let out = env
        .from_sequence(0, N - 1)
        .set_parallelism(1)
        .map(|i| {
            if i % 300 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            i
        })
        .name("slow")
        .set_parallelism(1)
        .assign_timestamps_and_watermarks(
            riffle_api::WatermarkStrategy::for_generator(|| Box::new(Every50))
                .with_timestamp_assigner(|i: &u64, _| *i as i64),
        )
        .set_parallelism(1)
        .key_by(|i: &u64| i % 3)
        .window(riffle_api::WindowAssigner::tumbling_event_time(Duration::from_secs(1)))
        .allowed_lateness(Duration::from_secs(3))
        .process_with_state(WindowTotals)
        .name("totals")
        .collect();
    (env, out)
}

/// Every output of an uninterrupted run, by (kind, key, window start).
fn window_expected() -> std::collections::BTreeMap<(u8, u64, i64), WinOut> {
    let mut out = std::collections::BTreeMap::new();
    for k in 0..3u64 {
        let mut total = 0;
        for s in (0..N as i64).step_by(1000) {
            let n = (s as u64..(s as u64 + 1000).min(N)).filter(|i| i % 3 == k).count() as u64;
            total += n;
            out.insert((0, k, s), (0, k, s, n, total));
            out.insert((1, k, s), (1, k, s, n, 0));
        }
    }
    out
}

/// Resumed from a savepoint, windows fire with the key's running total restored from global
/// state, and windows that fired before the savepoint are purged with the count their
/// per-window state kept: every output after the restore is the uninterrupted run's, and
/// every window from where it resumed to the end is there once.
fn window_state_resumes(first: u32, restored: u32) {
    let mc = common::cluster(1, 4);
    let dir = tempfile::tempdir().unwrap();
    let (env, out) = window_job(first, None);
    let sp = cancel_mid_run(&mc, env, out, dir.path());
    let (env, out) = window_job(restored, Some(&sp));
    let (got, read) = run_to_end(&mc, env, out);
    assert!(read > 0 && read < N, "resumed: read {read} of {N}");
    let want = window_expected();
    let mut seen = std::collections::BTreeSet::new();
    for g in &got {
        let id = (g.0, g.1, g.2);
        assert_eq!(want.get(&id), Some(g), "an output as the uninterrupted run's");
        assert!(seen.insert(id), "once: {g:?}");
    }
    let mut crossed = false;
    for k in 0..3u64 {
        for kind in [0u8, 1] {
            let first_s = seen.iter().filter(|(t, key, _)| *t == kind && *key == k).map(|(_, _, s)| *s).min();
            let first_s = first_s.unwrap_or_else(|| panic!("no output of kind {kind} for key {k}"));
            let n = seen.iter().filter(|(t, key, _)| *t == kind && *key == k).count() as i64;
            assert_eq!(n, (N as i64 - first_s + 999) / 1000, "key {k} kind {kind}: every window from {first_s} on");
        }
        let fired = seen.iter().filter(|(t, key, _)| *t == 0 && *key == k).map(|(_, _, s)| *s).min().unwrap();
        let purged = seen.iter().filter(|(t, key, _)| *t == 1 && *key == k).map(|(_, _, s)| *s).min().unwrap();
        crossed |= purged < fired;
    }
    assert!(crossed, "some windows fired before the savepoint and were purged after it, with their restored state");
}

#[test]
fn window_and_global_state_of_a_process_window_function_survive_a_savepoint() {
    window_state_resumes(2, 2);
}

#[test]
fn window_and_global_state_follow_their_keys_to_another_parallelism() {
    window_state_resumes(2, 3);
}

/// Counts the records its subtask has seen, in operator list state; emits (subtask, count
/// so far) for each record.
#[derive(Clone, Default)]
struct SubtaskCounter {
    subtask: u32,
    counts: Vec<u64>,
}

impl riffle_api::RichMapFunction<u64, (u32, u64)> for SubtaskCounter {
    type State = u64;
    fn open(&mut self, ctx: &riffle_api::RuntimeContext) -> Result<(), UserError> {
        self.subtask = ctx.subtask;
        Ok(())
    }
    fn map(&mut self, _: u64) -> Result<(u32, u64), UserError> {
        match self.counts.first_mut() {
            Some(c) => *c += 1,
            None => self.counts.push(1),
        }
        Ok((self.subtask, self.counts.iter().sum()))
    }
    fn snapshot_state(&mut self, _: u64) -> Result<Vec<u64>, UserError> {
        Ok(self.counts.clone())
    }
    fn restore_state(&mut self, state: Vec<u64>) -> Result<(), UserError> {
        self.counts = state;
        Ok(())
    }
}

fn counter_job(parallelism: u32, savepoint: Option<&Path>) -> (StreamEnvironment, CollectStream<(u32, u64)>) {
    let mut env = StreamEnvironment::new();
    env.set_parallelism(parallelism);
    if let Some(p) = savepoint {
        env.set_config("execution.savepoint.path", &p.display().to_string());
    }
    let out = env
        .from_sequence(0, N - 1)
        .set_parallelism(1)
        .map(|i| {
            if i % 300 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            i
        })
        .name("slow")
        .set_parallelism(1)
        .rebalance()
        .map_with_state(SubtaskCounter::default())
        .name("counter")
        .collect();
    (env, out)
}

/// The subtasks' counts after a restore add up to every record exactly once: what the state
/// counted before the savepoint plus what was read after it; at another parallelism the
/// former subtasks' counts are dealt out, none lost or doubled.
fn operator_state_resumes(first: u32, restored: u32) {
    let mc = common::cluster(1, 4);
    let dir = tempfile::tempdir().unwrap();
    let (env, out) = counter_job(first, None);
    let sp = cancel_mid_run(&mc, env, out, dir.path());
    let (env, out) = counter_job(restored, Some(&sp));
    let (got, read) = run_to_end(&mc, env, out);
    assert!(read > 0 && read < N, "resumed: read {read} of {N}");
    let mut last = std::collections::BTreeMap::new();
    let mut first_seen = std::collections::BTreeMap::new();
    for (s, c) in got {
        assert!(s < restored);
        first_seen.entry(s).or_insert(c);
        let l = last.entry(s).or_insert(0);
        assert!(c > *l, "counts grow per subtask");
        *l = c;
    }
    assert_eq!(last.values().sum::<u64>(), N, "every record counted once: {last:?}");
    assert!(first_seen.values().any(|c| *c > 1), "state restored: {first_seen:?}");
    if restored > first {
        assert!(first_seen.values().filter(|c| **c == 1).count() as u32 >= restored - first, "{first_seen:?}");
    }
}

#[test]
fn operator_state_of_a_rich_map_survives_a_savepoint() {
    operator_state_resumes(2, 2);
}

#[test]
fn operator_state_is_dealt_round_robin_to_another_parallelism() {
    operator_state_resumes(2, 3);
    operator_state_resumes(3, 1);
}
