//! Checkpoints after tasks finish (FLIP-147): a bounded branch finishes while the rest of the
//! job runs on, checkpoints and savepoints go on and record it finished, a restore does not
//! run it again, and a two-phase-commit sink commits its last transaction through a final
//! checkpoint taken as soon as every task's input ended.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::WAIT;
use riffle_api::{CollectStream, RichMapFunction, RuntimeContext, StreamEnvironment, UserError};
use riffle_cluster::{JobStatus, MiniCluster};

/// Records of the slow, long branch.
const N: u64 = 200_000;
/// Records of the bounded branch that finishes early.
const SHORT: u64 = 100;

/// How often the short branch's operator was opened: a restore that ran the finished branch
/// again would open it again.
static SHORT_OPENS: AtomicUsize = AtomicUsize::new(0);

#[derive(Clone, Default)]
struct CountOpens;

impl RichMapFunction<u64, u64> for CountOpens {
    type State = u64;
    fn open(&mut self, _: &RuntimeContext) -> Result<(), UserError> {
        SHORT_OPENS.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn map(&mut self, v: u64) -> Result<u64, UserError> {
        Ok(v)
    }
    fn snapshot_state(&mut self, _: u64) -> Result<Vec<u64>, UserError> {
        Ok(Vec::new())
    }
    fn restore_state(&mut self, _: Vec<u64>) -> Result<(), UserError> {
        Ok(())
    }
}

/// A short bounded branch (its own vertex, finished at once) and a slow long one, unioned and
/// summed per key.
/// `count_opens`: the short branch counts its operator's opens in [`SHORT_OPENS`] (one test
/// only: tests of this file run at once).
fn union_job(savepoint: Option<&Path>, count_opens: bool) -> (StreamEnvironment, CollectStream<(u64, u64)>) {
    let mut env = StreamEnvironment::new();
    env.set_parallelism(1);
    env.set_config("execution.checkpointing.interval", "50ms");
    if let Some(p) = savepoint {
        env.set_config("execution.savepoint.path", &p.display().to_string());
    }
    let short = env.from_sequence(0, SHORT - 1);
    let short = if count_opens { short.map_with_state(CountOpens) } else { short.map(|i| i) }.name("short");
    let long = env
        .from_sequence(0, N - 1)
        .map(|i| {
            if i % 200 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            i
        })
        .name("slow");
    let out = long.union(&[short]).key_by(|i: &u64| i % 10).process(common::FinalSum).name("sum").collect();
    (env, out)
}

fn union_expected() -> Vec<(u64, u64)> {
    (0..10).map(|k| (k, (0..N).chain(0..SHORT).filter(|i| i % 10 == k).sum())).collect()
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether every subtask of the short branch's vertex finished.
fn short_finished(mc: &MiniCluster, job: riffle_cluster::JobId) -> bool {
    let Some(view) = mc.shared().jobs.view(job) else { return false };
    let Some(v) = view.vertices.iter().position(|v| v.name.contains("short")) else { return false };
    view.state().tasks.get(v).is_some_and(|t| t.iter().all(|s| s.as_str() == "FINISHED"))
}

fn read_metadata(dir: &Path) -> riffle_state::checkpoint_metadata::CheckpointMetadata {
    let path = dir.join(riffle_state::checkpoint_metadata::METADATA_FILE);
    let bytes = std::fs::read(&path).unwrap();
    riffle_state::checkpoint_metadata::decode(&bytes, &path).unwrap()
}

#[test]
fn checkpoints_go_on_after_a_branch_finished_and_a_restore_does_not_run_it_again() {
    let mc = common::cluster(1, 4);
    let dir = tempfile::tempdir().unwrap();
    let opens_before = SHORT_OPENS.load(Ordering::SeqCst);
    let (env, out) = union_job(None, true);
    let h = mc.submit(env.build_job_graph("first run").unwrap()).unwrap();
    // The short branch finished (its operator opened once) and checkpoints completed after.
    wait_until("the short branch to finish", || short_finished(&mc, h.job_id()));
    let after_finish = mc.checkpoint_stats(h.job_id()).last_completed;
    wait_until("checkpoints after the branch finished", || {
        mc.checkpoint_stats(h.job_id()).last_completed >= after_finish + 2
    });
    let sp = common::savepoint_with_retry(|| h.cancel_with_savepoint(Some(dir.path().to_path_buf())));
    assert_eq!(h.wait(WAIT).unwrap().status, JobStatus::Canceled);
    assert!(out.collect::<Vec<_>>().is_empty(), "cancelled before the end");
    assert_eq!(SHORT_OPENS.load(Ordering::SeqCst), opens_before + 1);
    // The savepoint records the short branch's source and operator as finished.
    let meta = read_metadata(&sp);
    let short_vertex = meta
        .vertices
        .iter()
        .find(|v| v.operators.iter().any(|(_, n)| n.contains("short")))
        .map(|v| v.id)
        .expect("the short branch's vertex");
    let short_parts: Vec<_> = meta.subtasks.iter().filter(|s| s.vertex == short_vertex).collect();
    assert!(!short_parts.is_empty() && short_parts.iter().all(|s| s.finished), "{short_parts:?}");
    assert!(meta.subtasks.iter().any(|s| !s.finished), "the long branch still ran");

    // The restore finishes with exact sums, without building the finished branch again.
    let (env, out) = union_job(Some(&sp), true);
    let h = mc.submit(env.build_job_graph("restored").unwrap()).unwrap();
    let got: Vec<(u64, u64)> = out.collect();
    let r = h.wait(WAIT).unwrap();
    assert_eq!(r.status, JobStatus::Finished, "{:?}", r.error);
    assert_eq!(common::sorted(got), union_expected());
    assert_eq!(SHORT_OPENS.load(Ordering::SeqCst), opens_before + 1, "the finished branch was not run again");
}

#[test]
fn a_two_phase_commit_sink_commits_its_last_records_through_a_final_checkpoint() {
    let mc = common::cluster(1, 4);
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let mut env = StreamEnvironment::new();
    env.set_parallelism(2);
    // Far longer than the job: only the final checkpoint, triggered when every input ended,
    // lets it finish in time.
    env.set_config("execution.checkpointing.interval", "1h");
    let sink_dir = out_dir.clone();
    env.from_sequence(0, 9_999).map(|i| i * 2).write_as_text_exactly_once(sink_dir, |v: &u64| v.to_string());
    let h = mc.submit(env.build_job_graph("final checkpoint").unwrap()).unwrap();
    let started = Instant::now();
    let r = h.wait(WAIT).unwrap();
    assert_eq!(r.status, JobStatus::Finished, "{:?}", r.error);
    assert!(started.elapsed() < Duration::from_secs(50), "it did not wait for the interval");
    let stats = mc.checkpoint_stats(h.job_id());
    assert!(stats.completed >= 1, "the last records were committed by a checkpoint: {stats:?}");
    let mut lines: Vec<u64> = Vec::new();
    for e in std::fs::read_dir(&out_dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        assert!(!name.starts_with('.'), "no uncommitted file is left: {name}");
        let text = std::fs::read_to_string(e.path()).unwrap();
        lines.extend(text.lines().map(|l| l.parse::<u64>().unwrap()));
    }
    lines.sort_unstable();
    assert_eq!(lines, (0..10_000).map(|i| i * 2).collect::<Vec<_>>());
}

#[test]
fn with_checkpoints_after_tasks_finish_off_a_finished_task_stops_checkpointing() {
    let mc = common::cluster(1, 4);
    let (mut env, out) = union_job(None, false);
    env.set_config("execution.checkpointing.checkpoints-after-tasks-finish", "false");
    let h = mc.submit(env.build_job_graph("flink 1.11 behaviour").unwrap()).unwrap();
    wait_until("the short branch to finish", || short_finished(&mc, h.job_id()));
    let at_finish = mc.checkpoint_stats(h.job_id());
    std::thread::sleep(Duration::from_millis(400));
    let later = mc.checkpoint_stats(h.job_id());
    assert_eq!(later.triggered, at_finish.triggered, "no checkpoint after a task finished");
    h.cancel().unwrap();
    let _ = h.wait(WAIT);
    drop(out);
}
