//! Incremental checkpoints (`state.backend.incremental`, on by default): a window job whose
//! older windows stay unchanged while new ones fill, so each checkpoint writes only the
//! windows that changed and refers to older checkpoints' shared files for the rest. Restores
//! from a chain of increments are exact; a corrupt increment makes the restore fall back to
//! the previous checkpoint; retention keeps exactly the shared files a retained checkpoint
//! refers to.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::WAIT;
use riffle_api::{CollectStream, Configuration, StreamEnvironment, TimeWindow, WatermarkStrategy, WindowAssigner};
use riffle_cluster::{JobStatus, MiniCluster, MiniClusterConfig};
use riffle_state::checkpoint_metadata::{self, CheckpointMetadata, StateHandle};

const N: u64 = 200_000;
const KEYS: u64 = 10;
/// Event time is the record's number in ms: 1 s windows of 1000 records, 100 per key.
const WINDOW_MS: u64 = 1000;

/// Every (key, window start, count) the job must emit.
fn expected() -> Vec<(u64, i64, u64)> {
    let mut v: Vec<_> = (0..N / WINDOW_MS)
        .flat_map(|w| (0..KEYS).map(move |k| (k, (w * WINDOW_MS) as i64, WINDOW_MS / KEYS)))
        .collect();
    v.sort();
    v
}

/// The job: a slow sequence with event time = the number and watermarks an hour behind (so no
/// window fires before the end of input and the earlier windows stay unchanged), counted per
/// key in 1 s tumbling windows. While `armed`, the next record panics (once: `failed`). A
/// millisecond's sleep every `sleep_every` records keeps it running for a while.
fn job(
    env: &StreamEnvironment,
    armed: &'static AtomicBool,
    failed: &'static AtomicBool,
    sleep_every: u64,
    records: u64,
) -> CollectStream<(u64, i64, u64)> {
    env.from_sequence(0, records - 1)
        .map(move |i| {
            if i % sleep_every == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            if armed.load(Ordering::SeqCst) && !failed.swap(true, Ordering::SeqCst) {
                panic!("injected failure at record {i}");
            }
            i
        })
        .name("slow")
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_secs(3600))
                .with_timestamp_assigner(|i: &u64, _| *i as i64),
        )
        .map(|i| (i % KEYS, 1u64))
        .key_by(|e: &(u64, u64)| e.0)
        .window(WindowAssigner::tumbling_event_time(Duration::from_millis(WINDOW_MS)))
        .reduce_with(|a, b| (a.0, a.1 + b.1), |k: &u64, w: &TimeWindow, e: (u64, u64)| (*k, w.start, e.1))
        .name("count")
        .collect()
}

fn config(dir: &Path, retained: u32) -> Configuration {
    let mut c = Configuration::new();
    c.set("execution.checkpointing.interval", "20 ms")
        .set("state.checkpoints.dir", dir.display().to_string())
        .set("state.checkpoints.num-retained", retained.to_string())
        .set("state.storage.fs.memory-threshold", "0")
        .set("execution.checkpointing.externalized-checkpoint-retention", "RETAIN_ON_CANCELLATION")
        .set("restart-strategy", "fixed-delay")
        .set("restart-strategy.fixed-delay.attempts", "1")
        .set("restart-strategy.fixed-delay.delay", "10 ms");
    c
}

fn metadata(job_dir: &Path, id: u64) -> CheckpointMetadata {
    let f = job_dir.join(format!("chk-{id}")).join(checkpoint_metadata::METADATA_FILE);
    checkpoint_metadata::decode(&std::fs::read(&f).unwrap(), &f).unwrap()
}

/// The ids of the `chk-<n>` directories that hold metadata, oldest first.
fn checkpoints(job_dir: &Path) -> Vec<u64> {
    let mut ids: Vec<u64> = std::fs::read_dir(job_dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_prefix("chk-")?.parse().ok())
        .filter(|id| job_dir.join(format!("chk-{id}")).join(checkpoint_metadata::METADATA_FILE).exists())
        .collect();
    ids.sort();
    ids
}

fn shared_on_disk(job_dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(job_dir.join(checkpoint_metadata::SHARED_DIR))
        .map(|rd| rd.filter_map(|e| Some(format!("shared/{}", e.ok()?.file_name().into_string().ok()?))).collect())
        .unwrap_or_default()
}

/// The checkpoint that wrote shared file `shared/<v>-<s>-<n>.seg`.
fn written_by(name: &str) -> u64 {
    name.trim_end_matches(".seg").rsplit('-').next().and_then(|n| n.parse().ok()).unwrap()
}

fn wait_for_checkpoints(mc: &MiniCluster, job: riffle_actors::JobId, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while mc.checkpoint_stats(job).completed < n {
        assert!(Instant::now() < deadline, "no checkpoints: {:?}", mc.checkpoint_stats(job));
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Waits until exactly one checkpoint is left in `job_dir` and the shared files on disk are
/// exactly those it refers to; returns its metadata.
fn only_the_retained_files(job_dir: &Path) -> CheckpointMetadata {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ids = checkpoints(job_dir);
        let (meta, referenced) = match ids.as_slice() {
            [id] => {
                let meta = metadata(job_dir, *id);
                let referenced: BTreeSet<String> = meta.shared_files().into_iter().map(|f| f.name.clone()).collect();
                (Some(meta), referenced)
            }
            _ => (None, BTreeSet::new()),
        };
        let on_disk = shared_on_disk(job_dir);
        if let Some(meta) = meta.filter(|_| on_disk == referenced) {
            return meta;
        }
        assert!(Instant::now() < deadline, "checkpoints {ids:?}, shared files {on_disk:?}, referenced {referenced:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_chain_of_increments_restores_exactly_after_a_failure() {
    static ARMED: AtomicBool = AtomicBool::new(false);
    static FAILED: AtomicBool = AtomicBool::new(false);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = MiniClusterConfig::new(1, 2);
    cfg.config = config(dir.path(), 1);
    let mc = MiniCluster::start(cfg).unwrap();
    let mut env = StreamEnvironment::new();
    env.set_parallelism(2);
    let out = job(&env, &ARMED, &FAILED, 50, N);
    let h = mc.submit(env.build_job_graph("incremental").unwrap()).unwrap();
    // Several increments, then a failure: the restart restores the latest, which refers to
    // shared files of older checkpoints.
    wait_for_checkpoints(&mc, h.job_id(), 4);
    ARMED.store(true, Ordering::SeqCst);
    let mut got: Vec<(u64, i64, u64)> = out.collect();
    let r = h.wait(WAIT).unwrap();
    assert_eq!(r.status, JobStatus::Finished, "{:?}", r.error);
    assert!(FAILED.load(Ordering::SeqCst), "the failure was injected");
    got.sort();
    assert_eq!(got, expected(), "restored exactly from a chain of increments");

    // Retention (num-retained 1) across attempts: one checkpoint left, and exactly the
    // shared files it refers to.
    only_the_retained_files(&dir.path().join(h.job_id().to_string()));
}

#[test]
fn retention_deletes_only_shared_files_no_retained_checkpoint_refers_to() {
    static NEVER: AtomicBool = AtomicBool::new(false);
    static FAILED: AtomicBool = AtomicBool::new(false);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = MiniClusterConfig::new(1, 2);
    cfg.config = config(dir.path(), 1);
    let mc = MiniCluster::start(cfg).unwrap();
    let mut env = StreamEnvironment::new();
    env.set_parallelism(2);
    // Long enough (about 50 s) never to finish before it is cancelled, however loaded the
    // machine: the test cancels it after a few checkpoints.
    let out = job(&env, &NEVER, &FAILED, 10, 5 * N);
    let h = mc.submit(env.build_job_graph("incremental").unwrap()).unwrap();
    wait_for_checkpoints(&mc, h.job_id(), 5);
    // A savepoint in the middle of increments is self-contained: plain state files beside
    // its metadata, nothing shared.
    let sp = h.trigger_savepoint(Some(dir.path().join("savepoints"))).unwrap();
    let sp_meta = {
        let f = sp.join(checkpoint_metadata::METADATA_FILE);
        checkpoint_metadata::decode(&std::fs::read(&f).unwrap(), &f).unwrap()
    };
    assert!(sp_meta.shared_files().is_empty());
    assert!(sp_meta.subtasks.iter().all(|s| !matches!(s.state, StateHandle::Incremental { .. })));
    assert!(sp_meta.subtasks.iter().any(|s| matches!(s.state, StateHandle::File { .. })));
    wait_for_checkpoints(&mc, h.job_id(), mc.checkpoint_stats(h.job_id()).completed + 1);
    h.cancel().unwrap();
    drop(out);
    assert_eq!(h.wait(WAIT).unwrap().status, JobStatus::Canceled);
    // The earliest windows never changed: the one checkpoint left still refers to the shared
    // files that older checkpoints (since deleted) wrote for them, and nothing else is left.
    let meta = only_the_retained_files(&dir.path().join(h.job_id().to_string()));
    let id = meta.checkpoint_id;
    assert!(id >= 5, "{id}");
    assert!(meta.shared_files().iter().any(|f| written_by(&f.name) < id), "an older checkpoint's file is kept");
    assert!(meta.subtasks.iter().any(|s| matches!(s.state, StateHandle::Incremental { .. })));
    assert!(
        meta.state_size() < meta.subtasks.iter().map(|s| s.state.full_size()).sum::<u64>(),
        "the latest checkpoint wrote less than its whole state"
    );
}

#[test]
fn a_corrupt_increment_falls_back_to_the_previous_checkpoint() {
    static FAILED: AtomicBool = AtomicBool::new(false);
    static NEVER: AtomicBool = AtomicBool::new(false);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = MiniClusterConfig::new(1, 2);
    cfg.config = config(dir.path(), 2);
    let mc = MiniCluster::start(cfg).unwrap();
    let mut env = StreamEnvironment::new();
    env.set_parallelism(2);
    let out = job(&env, &NEVER, &FAILED, 10, N);
    let h = mc.submit(env.build_job_graph("incremental").unwrap()).unwrap();
    wait_for_checkpoints(&mc, h.job_id(), 4);
    h.cancel().unwrap();
    drop(out);
    assert_eq!(h.wait(WAIT).unwrap().status, JobStatus::Canceled);
    let job_dir = dir.path().join(h.job_id().to_string());
    // Two retained; garble a shared file the newest one added.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut ids = checkpoints(&job_dir);
    while ids.len() != 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        ids = checkpoints(&job_dir);
    }
    let (previous, newest) = (ids[0], ids[1]);
    let added: Vec<PathBuf> = metadata(&job_dir, newest)
        .shared_files()
        .into_iter()
        .filter(|f| written_by(&f.name) == newest)
        .map(|f| job_dir.join(&f.name))
        .collect();
    assert!(!added.is_empty(), "checkpoint {newest} added a shared file");
    let mut bytes = std::fs::read(&added[0]).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x5a;
    std::fs::write(&added[0], &bytes).unwrap();
    let point = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(riffle_actors::restore_plan::load(&job_dir))
        .unwrap();
    assert_eq!(point.meta.checkpoint_id, previous, "the previous checkpoint, whose files are intact");

    // Resuming the job from its checkpoint directory gives exact results from the previous one.
    let mut env = StreamEnvironment::new();
    env.set_parallelism(2);
    env.set_config("execution.savepoint.path", &job_dir.display().to_string());
    let out = job(&env, &NEVER, &FAILED, 1000, N);
    let h = mc.submit(env.build_job_graph("incremental again").unwrap()).unwrap();
    let mut got: Vec<(u64, i64, u64)> = out.collect();
    let r = h.wait(WAIT).unwrap();
    assert_eq!(r.status, JobStatus::Finished, "{:?}", r.error);
    got.sort();
    assert_eq!(got, expected());
    assert!(h.counters().records_in() < N, "resumed, not started over");
}
