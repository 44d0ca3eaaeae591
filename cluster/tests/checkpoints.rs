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
}

impl SourceReader<u64, u8> for TickReader {
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

fn run_checkpointed(mode: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = MiniClusterConfig::new(1, 2);
    cfg.config
        .set("execution.checkpointing.interval", "30 ms")
        .set("execution.checkpointing.mode", mode)
        .set("state.checkpoints.dir", dir.path().display().to_string())
        .set("state.checkpoints.num-retained", "2");
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
    let mut ids: Vec<u64> = std::fs::read_dir(&job_dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_prefix("chk-")?.parse().ok())
        .collect();
    ids.sort();
    assert_eq!(ids.len(), 2, "{ids:?}");
    let newest = checkpoint_metadata::checkpoint_dir(dir.path(), &h.job_id().to_string(), ids[1]);
    let meta = checkpoint_metadata::read(&newest.join(checkpoint_metadata::METADATA_FILE)).unwrap();
    assert_eq!(meta.checkpoint_id, ids[1]);
    // Vertices at parallelism 2: two sources, the union (two inputs: a vertex of its own),
    // and the keyed reduce → sink chain: 4 × 2 subtasks, every one acknowledged.
    assert_eq!(meta.subtasks.len(), 8);
    assert!(meta.completion_timestamp_ms >= meta.trigger_timestamp_ms);
}

#[test]
fn aligned_checkpoints_complete_periodically_and_are_retained() {
    run_checkpointed("EXACTLY_ONCE");
}

#[test]
fn at_least_once_checkpoints_complete_too() {
    run_checkpointed("AT_LEAST_ONCE");
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
