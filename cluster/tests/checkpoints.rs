//! Periodic checkpoints: barriers flow through running jobs, every subtask acknowledges,
//! metadata lands on disk with a checksum, and only the retained checkpoints stay.

mod common;

use std::time::{Duration, Instant};

use common::WAIT;
use riffle_api::source::{Assignment, Boundedness, ReadStatus, Source, SourceOutput, SourceReader, SplitEnumerator};
use riffle_api::{StreamEnvironment, UserError};
use riffle_cluster::{JobStatus, MiniCluster, MiniClusterConfig};
use riffle_state::checkpoint_metadata;

/// An unbounded source emitting a few records every poll and idling in between, so a job
/// runs for as long as the test wants.
struct Ticks;
struct TickEnum;
struct TickReader(u64, bool);

impl SplitEnumerator<u8> for TickEnum {
    fn handle_split_request(&mut self, _: u32) -> Result<Assignment<u8>, UserError> {
        Ok(Assignment { splits: vec![0], no_more_splits: false })
    }
    fn add_splits_back(&mut self, _: Vec<u8>, _: u32) {}
    fn restore(&mut self, _: &[String]) {}
}

impl SourceReader<u64, u8> for TickReader {
    fn snapshot_state(&mut self) -> riffle_api::source::ReaderState<u8> {
        riffle_api::source::ReaderState { unfinished: vec![0], finished: vec![] }
    }
    fn add_splits(&mut self, _: Vec<u8>) {}
    fn notify_no_more_splits(&mut self) {}
    fn poll_next(&mut self, out: &mut dyn SourceOutput<u64>) -> Result<ReadStatus, UserError> {
        self.1 = !self.1;
        if self.1 {
            for _ in 0..10 {
                self.0 += 1;
                out.collect(self.0);
            }
            Ok(ReadStatus::MoreAvailable)
        } else {
            Ok(ReadStatus::NothingAvailable)
        }
    }
}

impl Source<u64> for Ticks {
    type Split = u8;
    fn boundedness(&self) -> Boundedness {
        Boundedness::Unbounded
    }
    fn create_enumerator(&self, _: u32) -> Result<Box<dyn SplitEnumerator<u8>>, UserError> {
        Ok(Box::new(TickEnum))
    }
    fn create_reader(&self, _: u32) -> Result<Box<dyn SourceReader<u64, u8>>, UserError> {
        Ok(Box::new(TickReader(0, false)))
    }
}

fn run_checkpointed(mode: &str, threshold: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = MiniClusterConfig::new(1, 2);
    cfg.config
        .set("execution.checkpointing.interval", "30 ms")
        .set("execution.checkpointing.mode", mode)
        .set("state.checkpoints.dir", dir.path().display().to_string())
        .set("state.checkpoints.num-retained", "2")
        .set("state.storage.fs.memory-threshold", threshold)
        .set("execution.checkpointing.externalized-checkpoint-retention", "RETAIN_ON_CANCELLATION");
    let mc = MiniCluster::start(cfg).unwrap();
    let mut env = StreamEnvironment::new();
    env.set_parallelism(2);
    // Two sources into a keyed reduce: the reduce aligns barriers from 2 × 2 channels.
    env.from_source(Ticks, "ticks")
        .union(&[env.from_source(Ticks, "more ticks")])
        .key_by(|x: &u64| x % 7)
        .reduce(|a, b| a + b)
        .discard();
    let h = mc.submit(env.build_job_graph("checkpointed").unwrap()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while mc.checkpoint_stats(h.job_id()).completed < 4 {
        assert!(Instant::now() < deadline, "checkpoints do not complete: {:?}", mc.checkpoint_stats(h.job_id()));
        std::thread::sleep(Duration::from_millis(10));
    }
    h.cancel().unwrap();
    assert_eq!(h.wait(WAIT).unwrap().status, JobStatus::Canceled);
    let stats = mc.checkpoint_stats(h.job_id());
    assert!(stats.triggered >= stats.completed && stats.completed >= 4, "{stats:?}");
    // Retained: the 2 newest completed checkpoints, each with every subtask's part.
    let job_dir = dir.path().join(h.job_id().to_string());
    let retained = || {
        let mut ids: Vec<u64> = std::fs::read_dir(&job_dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.strip_prefix("chk-")?.parse().ok())
            .collect();
        ids.sort();
        ids
    };
    // A checkpoint in progress when the job was cancelled is aborted and its directory deleted
    // in the background: it may still be there for a moment, never for good.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut ids = retained();
    while ids.len() != 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        ids = retained();
    }
    assert_eq!(ids.len(), 2, "{ids:?}");
    let newest = checkpoint_metadata::checkpoint_dir(dir.path(), &h.job_id().to_string(), ids[1]);
    let meta_file = newest.join(checkpoint_metadata::METADATA_FILE);
    let meta = checkpoint_metadata::decode(&std::fs::read(&meta_file).unwrap(), &meta_file).unwrap();
    assert_eq!(meta.checkpoint_id, ids[1]);
    // Vertices at parallelism 2: two sources, the union (two inputs: a vertex of its own),
    // and the keyed reduce → sink chain: 4 × 2 subtasks, every one acknowledged.
    assert_eq!(meta.subtasks.len(), 8);
    assert!(meta.completion_timestamp_ms >= meta.trigger_timestamp_ms);
    // State files beside the metadata, named by it relative to its directory (the keyed
    // reduce's are incremental: its key groups are pieces, written once while unchanged).
    let files: Vec<String> = meta
        .subtasks
        .iter()
        .filter_map(|s| match &s.state {
            checkpoint_metadata::StateHandle::File { name, .. }
            | checkpoint_metadata::StateHandle::Incremental { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect();
    if threshold == "0" {
        assert_eq!(files.len(), 8, "every subtask's state is a file with a zero threshold");
    } else {
        assert!(files.is_empty(), "small state is inlined: {files:?}");
    }
    for f in &files {
        let bytes = std::fs::read(newest.join(f)).unwrap();
        if checkpoint_metadata::is_incremental_state_file(&bytes) {
            checkpoint_metadata::decode_incremental_state_file(&bytes, &newest.join(f)).unwrap();
        } else {
            checkpoint_metadata::decode_state_file(&bytes, &newest.join(f)).unwrap();
        }
    }
    let mut on_disk: Vec<String> =
        std::fs::read_dir(&newest).unwrap().filter_map(|e| e.ok()?.file_name().into_string().ok()).collect();
    on_disk.sort();
    let mut expected = files.clone();
    expected.push(checkpoint_metadata::METADATA_FILE.to_string());
    expected.sort();
    assert_eq!(on_disk, expected, "nothing else in the checkpoint directory");
}

#[test]
fn aligned_checkpoints_complete_periodically_and_are_retained() {
    run_checkpointed("EXACTLY_ONCE", "0");
}

#[test]
fn at_least_once_checkpoints_complete_too() {
    run_checkpointed("AT_LEAST_ONCE", "20kb");
}

#[test]
fn no_checkpoints_after_a_task_finished_and_bad_modes_are_rejected() {
    let mut cfg = MiniClusterConfig::new(1, 1);
    cfg.config.set("execution.checkpointing.interval", "10 ms");
    let mc = MiniCluster::start(cfg).unwrap();
    let env = StreamEnvironment::new();
    let out = env.from_sequence(0, 99).collect();
    let (v, r) = common::run_result(&mc, &env, out);
    assert_eq!(r.status, JobStatus::Finished);
    assert_eq!(v.len(), 100);

    let mut env = StreamEnvironment::new();
    env.set_config("execution.checkpointing.mode", "SOMETIMES");
    let out = env.from_sequence(0, 9).collect();
    let (_, r) = common::run_result(&mc, &env, out);
    assert_eq!(r.status, JobStatus::Failed);
    assert!(r.error.unwrap_or_default().contains("execution.checkpointing.mode"));
}

/// A cluster of two slots that restarts a failed job once, checkpointing every 10 ms, and an
/// environment at parallelism 2.
fn restarting_cluster() -> (MiniCluster, StreamEnvironment) {
    let mut cfg = MiniClusterConfig::new(1, 2);
    cfg.config
        .set("execution.checkpointing.interval", "10 ms")
        .set("restart-strategy", "fixed-delay")
        .set("restart-strategy.fixed-delay.attempts", "1")
        .set("restart-strategy.fixed-delay.delay", "10 ms");
    let mut env = StreamEnvironment::new();
    env.set_parallelism(2);
    (MiniCluster::start(cfg).unwrap(), env)
}

/// The numbers `0..n`, paced (a millisecond every 500), failing once at the first record
/// after `armed` is set.
fn paced_sequence_failing_once(
    env: &StreamEnvironment,
    n: u64,
    armed: &'static std::sync::atomic::AtomicBool,
    failed: &'static std::sync::atomic::AtomicBool,
) -> riffle_api::DataStream<u64> {
    use std::sync::atomic::Ordering;
    env.from_sequence(0, n - 1)
        .map(move |i| {
            if i % 500 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            if armed.load(Ordering::SeqCst) && !failed.swap(true, Ordering::SeqCst) {
                panic!("injected failure at record {i}");
            }
            i
        })
        .name("slow")
}

fn wait_for_two_checkpoints(mc: &MiniCluster, h: &riffle_cluster::JobHandle) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while mc.checkpoint_stats(h.job_id()).completed < 2 {
        assert!(Instant::now() < deadline, "no checkpoints: {:?}", mc.checkpoint_stats(h.job_id()));
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn after_a_failure_the_job_resumes_from_the_latest_checkpoint_with_exact_results() {
    use std::sync::atomic::{AtomicBool, Ordering};
    static ARMED: AtomicBool = AtomicBool::new(false);
    static FAILED: AtomicBool = AtomicBool::new(false);
    const N: u64 = 200_000;
    let (mc, env) = restarting_cluster();
    let out = paced_sequence_failing_once(&env, N, &ARMED, &FAILED)
        .key_by(|i: &u64| i % 10)
        .process(common::FinalSum)
        .collect();
    let h = mc.submit(env.build_job_graph("exactly once").unwrap()).unwrap();
    wait_for_two_checkpoints(&mc, &h);
    let read_before_failure = h.counters().records_in();
    ARMED.store(true, Ordering::SeqCst);
    let mut got: Vec<(u64, u64)> = out.collect();
    let r = h.wait(WAIT).unwrap();
    assert_eq!(r.status, JobStatus::Finished, "{:?}", r.error);
    assert!(FAILED.load(Ordering::SeqCst), "the failure was injected");
    got.sort();
    let want: Vec<(u64, u64)> = (0..10).map(|k| (k, (0..N).filter(|i| i % 10 == k).sum())).collect();
    assert_eq!(got, want, "exactly-once: no record lost or counted twice");
    // The restarted attempt resumed from the checkpoint instead of re-reading everything.
    let total_read = h.counters().records_in();
    assert!(
        total_read < N + read_before_failure,
        "read {total_read} records: the sources started over (read {read_before_failure} before the failure)"
    );
    let history = mc.exception_history(h.job_id(), 0, 10).unwrap();
    assert!(history.entries.iter().any(|e| e.is_root_cause && e.exception.contains("injected failure")));
}

/// A non-keyed process function (key `()`): a sum per subtask, emitted at the end of input.
#[derive(Clone)]
struct SubtaskSum;

impl riffle_api::KeyedProcessFunction<(), u64, u64> for SubtaskSum {
    fn process_element(&mut self, v: u64, ctx: &mut riffle_api::ProcessContext<'_, (), u64>) -> Result<(), UserError> {
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
        _: riffle_api::TimeDomain,
        ctx: &mut riffle_api::ProcessContext<'_, (), u64>,
    ) -> Result<(), UserError> {
        let s = ctx.state().value_state::<u64>("sum")?.get(ctx.state())?.copied().unwrap_or(0);
        ctx.collect(s);
        Ok(())
    }
}

/// Every subtask's state of a non-keyed process function is under the key `()`, whose key
/// group one subtask owns: a restore must give each subtask its own state back, not filter
/// it by key group (which kept one subtask's state and dropped the other's).
#[test]
fn a_non_keyed_process_function_gets_each_subtasks_state_back_after_a_failure() {
    use std::sync::atomic::{AtomicBool, Ordering};
    static ARMED: AtomicBool = AtomicBool::new(false);
    static FAILED: AtomicBool = AtomicBool::new(false);
    const N: u64 = 200_000;
    let (mc, env) = restarting_cluster();
    let out = paced_sequence_failing_once(&env, N, &ARMED, &FAILED).process(SubtaskSum).collect();
    let h = mc.submit(env.build_job_graph("per-subtask state").unwrap()).unwrap();
    wait_for_two_checkpoints(&mc, &h);
    ARMED.store(true, Ordering::SeqCst);
    let got: Vec<u64> = out.collect();
    let r = h.wait(WAIT).unwrap();
    assert_eq!(r.status, JobStatus::Finished, "{:?}", r.error);
    assert!(FAILED.load(Ordering::SeqCst), "the failure was injected");
    // Each subtask reads one split of the sequence: its sum is that split's sum. (The collect
    // sink is not transactional: a subtask that finished before the other one failed emits
    // its sum again after the restart, from the same restored state.)
    let mut distinct = got.clone();
    distinct.sort();
    distinct.dedup();
    let half = N / 2;
    assert_eq!(distinct, [(0..half).sum::<u64>(), (half..N).sum::<u64>()], "exactly-once per-subtask state: {got:?}");
}

/// Records the checkpoint notifications its subtasks receive; when slow, each record takes a
/// millisecond, so a barrier waits behind a backlog and no checkpoint can finish at once.
#[derive(Clone)]
struct Listening(std::sync::Arc<std::sync::Mutex<Vec<(u64, bool)>>>, bool);

impl riffle_api::KeyedProcessFunction<u64, u64, u64> for Listening {
    fn process_element(&mut self, v: u64, ctx: &mut riffle_api::ProcessContext<'_, u64, u64>) -> Result<(), UserError> {
        if self.1 {
            std::thread::sleep(Duration::from_millis(1));
        }
        ctx.collect(v);
        Ok(())
    }
    fn notify_checkpoint_complete(&mut self, id: u64) -> Result<(), UserError> {
        self.0.lock().map_err(|e| e.to_string())?.push((id, true));
        Ok(())
    }
    fn notify_checkpoint_aborted(&mut self, id: u64) -> Result<(), UserError> {
        self.0.lock().map_err(|e| e.to_string())?.push((id, false));
        Ok(())
    }
}

fn notifications(timeout: &str, slow: bool) -> Vec<(u64, bool)> {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut cfg = MiniClusterConfig::new(1, 1);
    cfg.config.set("execution.checkpointing.interval", "5 ms").set("execution.checkpointing.timeout", timeout);
    let mc = MiniCluster::start(cfg).unwrap();
    let env = StreamEnvironment::new();
    env.from_source(Ticks, "ticks").key_by(|x: &u64| x % 3).process(Listening(seen.clone(), slow)).discard();
    let h = mc.submit(env.build_job_graph("listening").unwrap()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.lock().unwrap().len() < 3 {
        assert!(Instant::now() < deadline, "no notifications: {:?}", mc.checkpoint_stats(h.job_id()));
        std::thread::sleep(Duration::from_millis(5));
    }
    h.cancel().unwrap();
    h.wait(WAIT).unwrap();
    let v = seen.lock().unwrap().clone();
    v
}

#[test]
fn user_functions_hear_completed_and_aborted_checkpoints() {
    let seen = notifications("10 min", false);
    let completed: Vec<u64> = seen.iter().filter(|(_, ok)| *ok).map(|(id, _)| *id).collect();
    assert!(completed.len() >= 3, "{seen:?}");
    assert!(completed.windows(2).all(|w| w[0] < w[1]), "in checkpoint order: {seen:?}");
    // Only the checkpoint pending when the job was cancelled may be aborted.
    let last = completed.last().copied().unwrap_or(0);
    assert!(seen.iter().all(|(id, ok)| *ok || *id > last), "{seen:?}");
    // A timeout shorter than any checkpoint can take (the barrier waits behind a backlog of
    // slow records): checkpoints are aborted, and user code hears it.
    let aborted = notifications("0 ms", true);
    assert!(aborted.iter().any(|(_, ok)| !*ok), "{aborted:?}");
}
