//! Incremental checkpoints of keyed state (`state.backend.incremental`), for every backend: a
//! keyed process function first writes many keys at full speed, then only a few keys (four
//! at a time, a new four in each of four segments of the input) slowly. Each checkpoint
//! writes only the pieces of the (state, group)s that changed and refers to older shared
//! files for the rest, so the latest checkpoint refers to files of several checkpoints. A
//! restore from it is exact, at the same parallelism and rescaled 2→3; a corrupt increment
//! makes the restore fall back to the previous checkpoint; a savepoint taken between
//! increments restores after every shared file is gone.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::WAIT;
use riffle_api::{CollectStream, StreamEnvironment};
use riffle_cluster::{JobHandle, JobStatus, MiniCluster, MiniClusterConfig};
use riffle_state::checkpoint_metadata::{self, CheckpointMetadata, StateHandle};
use riffle_state::{assign_to_key_group, key_group_range_for_subtask, key_hash};

/// Keys written once each, at full speed (they fill every key group).
const BIG: u64 = 10_000;
/// Records of a segment of the slow tail: each segment adds to four keys only.
const SEGMENT: u64 = 60_000;
const SEGMENTS: u64 = 4;
const N: u64 = BIG + SEGMENTS * SEGMENT;
const MAX_PARALLELISM: u32 = 128;
/// The backends' default internal key groups (the spilling backends' piece groups).
const INTERNAL_GROUPS: u32 = 1024;

/// Record `i`'s key: itself in the first part; one of four keys of its segment after.
fn key_of(i: u64) -> u64 {
    if i < BIG {
        i
    } else {
        4 * ((i - BIG) / SEGMENT) + i % 4
    }
}

/// The four keys of segment `s`.
fn segment_keys(s: u64) -> Vec<u64> {
    (0..4).map(|k| 4 * s + k).collect()
}

/// Every key's sum of its records.
fn expected() -> Vec<(u64, u64)> {
    let mut sums: BTreeMap<u64, u64> = (0..BIG).map(|k| (k, k)).collect();
    for i in BIG..N {
        *sums.entry(key_of(i)).or_insert(0) += i;
    }
    sums.into_iter().collect()
}

/// Records per second of the first run (paced without blocking, so barriers pass at once):
/// about three seconds per segment.
const RATE: u64 = 20_000;

/// The job: a sequence read by one source subtask (so its order is the records' order), at
/// `rate` records a second (0: at full speed), summed per key by `common::FinalSum` (a timer
/// per key, registered when the key is first seen) at `parallelism`. `progress` counts the
/// records read.
fn job(
    parallelism: u32,
    rate: u64,
    progress: &'static AtomicU64,
    restore_from: Option<&Path>,
) -> (StreamEnvironment, CollectStream<(u64, u64)>) {
    let mut env = StreamEnvironment::new();
    env.set_parallelism(parallelism);
    if let Some(p) = restore_from {
        env.set_config("execution.savepoint.path", &p.display().to_string());
    }
    let out = env
        .from_sequence_paced(0, N - 1, rate)
        .set_parallelism(1)
        .map(move |i| {
            progress.fetch_add(1, Ordering::SeqCst);
            i
        })
        .set_parallelism(1)
        .name("slow")
        .key_by(|i: &u64| key_of(*i))
        .process(common::FinalSum)
        .name("sum")
        .collect();
    (env, out)
}

fn cluster(checkpoints: &Path, backend: &str, backend_dir: &Path) -> MiniCluster {
    cluster_with(checkpoints, backend, backend_dir, true)
}

fn cluster_with(checkpoints: &Path, backend: &str, backend_dir: &Path, incremental: bool) -> MiniCluster {
    let mut cfg = MiniClusterConfig::new(1, 4);
    cfg.config
        .set("state.backend.incremental", incremental.to_string())
        .set("execution.checkpointing.interval", "20 ms")
        .set("state.checkpoints.dir", checkpoints.display().to_string())
        .set("state.checkpoints.num-retained", "3")
        .set("state.storage.fs.memory-threshold", "0")
        .set("execution.checkpointing.externalized-checkpoint-retention", "RETAIN_ON_CANCELLATION")
        .set("state.backend", backend)
        .set("state.backend.memory-budget", "16kb")
        .set("state.backend.dir", backend_dir.display().to_string());
    MiniCluster::start(cfg).unwrap()
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

/// The checkpoint that wrote shared file `shared/<v>-<s>-<n>.seg`.
fn written_by(name: &str) -> u64 {
    name.trim_end_matches(".seg").rsplit('-').next().and_then(|n| n.parse().ok()).unwrap()
}

fn wait_until(what: impl Fn() -> String, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {}", what());
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn wait_for_more_checkpoints(mc: &MiniCluster, h: &JobHandle, n: u64) {
    let target = mc.checkpoint_stats(h.job_id()).completed + n;
    let what =
        || format!("{target} checkpoints complete: {:?}, jobs {:?}", mc.checkpoint_stats(h.job_id()), mc.list_jobs());
    wait_until(what, || mc.checkpoint_stats(h.job_id()).completed >= target);
}

/// Runs a restored job to its end: exact sums, and it resumed (read less than everything).
fn restore_and_check(mc: &MiniCluster, parallelism: u32, from: &Path) {
    static PROGRESS: AtomicU64 = AtomicU64::new(0);
    let (env, out) = job(parallelism, 0, &PROGRESS, Some(from));
    let h = mc.submit(env.build_job_graph("restored").unwrap()).unwrap();
    let got: Vec<(u64, u64)> = out.collect();
    let r = h.wait(WAIT).unwrap();
    assert_eq!(r.status, JobStatus::Finished, "{:?}", r.error);
    assert_eq!(common::sorted(got), expected(), "restored at parallelism {parallelism} from {}", from.display());
    let read = h.counters().records_in();
    assert!(read > 0 && read < N, "resumed: read {read} of {N} records");
}

/// The piece group of `key` for the backend (key groups on the heap, internal groups on
/// the spilling backends).
fn piece_group(backend: &str, key: u64) -> u32 {
    let groups = if backend == "heap" { MAX_PARALLELISM } else { INTERNAL_GROUPS };
    assign_to_key_group(key_hash(&key), groups)
}

fn keyed_increments(backend: &str, progress: &'static AtomicU64) {
    let dir = tempfile::tempdir().unwrap();
    let backend_dir = dir.path().join("backend");
    let mc = cluster(&dir.path().join("checkpoints"), backend, &backend_dir);
    let (env, out) = job(2, RATE, progress, None);
    let h = mc.submit(env.build_job_graph("keyed increments").unwrap()).unwrap();
    let job_dir = dir.path().join("checkpoints").join(h.job_id().to_string());

    // Into the last segment, with a few checkpoints taken there.
    wait_until(|| "the last segment".into(), || progress.load(Ordering::SeqCst) > BIG + 3 * SEGMENT + SEGMENT / 8);
    wait_for_more_checkpoints(&mc, &h, 2);
    if backend == "spillable-heap" {
        let spilled = walk(&backend_dir).len();
        assert!(spilled > 100, "a 16 kb budget spills most groups ({spilled} files)");
    }
    let savepoint = common::savepoint_with_retry(|| h.trigger_savepoint(Some(dir.path().join("savepoints"))));
    wait_for_more_checkpoints(&mc, &h, 2);
    assert!(progress.load(Ordering::SeqCst) < N - SEGMENT / 8, "cancelled before the end");
    h.cancel().unwrap();
    assert_eq!(h.wait(WAIT).unwrap().status, JobStatus::Canceled);
    assert!(out.collect::<Vec<_>>().is_empty(), "sums are emitted at the end only");

    // The latest checkpoint: every keyed piece in a shared file, exactly one per (state,
    // group) holding entries; the new ones only of the last segment's keys; the rest in
    // files of older checkpoints.
    let ids = checkpoints(&job_dir);
    let (previous, newest) = (ids[ids.len() - 2], ids[ids.len() - 1]);
    let meta = metadata(&job_dir, newest);
    let keyed: Vec<_> = meta.subtasks.iter().filter(|s| matches!(s.state, StateHandle::Incremental { .. })).collect();
    assert_eq!(keyed.len(), 2, "both keyed subtasks are incremental");
    let mut written_by_checkpoints = BTreeSet::new();
    let mut new_pieces = 0;
    for s in &keyed {
        let StateHandle::Incremental { name, .. } = &s.state else { unreachable!() };
        let path = job_dir.join(format!("chk-{newest}")).join(name);
        let ops = riffle_actors::incremental::operator_pieces(&std::fs::read(&path).unwrap(), &path).unwrap();
        let range = key_group_range_for_subtask(MAX_PARALLELISM, 2, s.subtask);
        let mine: Vec<u64> =
            (0..BIG).filter(|k| range.contains(assign_to_key_group(key_hash(k), MAX_PARALLELISM))).collect();
        let sum_groups: BTreeSet<u32> = mine.iter().map(|k| piece_group(backend, *k)).collect();
        let timer_groups: BTreeSet<u32> =
            mine.iter().map(|k| assign_to_key_group(key_hash(k), MAX_PARALLELISM)).collect();
        let hot: BTreeSet<u32> = segment_keys(SEGMENTS - 1)
            .into_iter()
            .filter(|k| mine.contains(k))
            .map(|k| piece_group(backend, k))
            .collect();
        let mut total = 0;
        for (_, o) in &ops {
            for (file, (pieces, _)) in &o.shared {
                total += pieces;
                written_by_checkpoints.insert(written_by(file));
                if written_by(file) == newest {
                    assert!(
                        *pieces <= hot.len(),
                        "subtask {}: {pieces} new pieces, {} hot groups",
                        s.subtask,
                        hot.len()
                    );
                    new_pieces += pieces;
                }
            }
        }
        assert_eq!(total, sum_groups.len() + timer_groups.len(), "subtask {}: one piece per (state, group)", s.subtask);
    }
    assert!(new_pieces >= 1, "the last segment's keys changed");
    assert!(
        written_by_checkpoints.len() >= 3,
        "a chain: files of checkpoints {written_by_checkpoints:?} (newest {newest})"
    );
    let written: u64 = keyed.iter().map(|s| s.state.size()).sum();
    let full: u64 = keyed.iter().map(|s| s.state.full_size()).sum();
    assert!(written * 10 < full, "an increment ({written} bytes) is much smaller than the state ({full} bytes)");
    eprintln!(
        "{backend}: checkpoint {newest} wrote {written} of {full} bytes, {new_pieces} new pieces, \
         refers to files of checkpoints {written_by_checkpoints:?}"
    );

    // Restores from the chain: at the same parallelism, and rescaled 2 → 3.
    restore_and_check(&mc, 2, &job_dir);
    restore_and_check(&mc, 3, &job_dir);

    // A corrupt increment: the restore falls back to the previous checkpoint, exactly.
    let added: Vec<PathBuf> = meta
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
    restore_and_check(&mc, 2, &job_dir);

    // The savepoint taken between increments is self-contained: it restores with every
    // checkpoint and shared file of the job gone.
    let sp_meta = {
        let f = savepoint.join(checkpoint_metadata::METADATA_FILE);
        checkpoint_metadata::decode(&std::fs::read(&f).unwrap(), &f).unwrap()
    };
    assert!(sp_meta.shared_files().is_empty());
    std::fs::remove_dir_all(&job_dir).unwrap();
    restore_and_check(&mc, 2, &savepoint);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn heap_keyed_state_is_checkpointed_incrementally() {
    static PROGRESS: AtomicU64 = AtomicU64::new(0);
    keyed_increments("heap", &PROGRESS);
}

#[test]
fn spillable_heap_keyed_state_is_checkpointed_incrementally() {
    static PROGRESS: AtomicU64 = AtomicU64::new(0);
    keyed_increments("spillable-heap", &PROGRESS);
}

#[test]
fn sled_keyed_state_is_checkpointed_incrementally() {
    static PROGRESS: AtomicU64 = AtomicU64::new(0);
    keyed_increments("sled", &PROGRESS);
}

#[test]
fn without_incremental_checkpoints_keyed_state_is_written_whole_and_restores() {
    static PROGRESS: AtomicU64 = AtomicU64::new(0);
    let dir = tempfile::tempdir().unwrap();
    let mc = cluster_with(&dir.path().join("checkpoints"), "spillable-heap", &dir.path().join("backend"), false);
    let (env, out) = job(2, RATE, &PROGRESS, None);
    let h = mc.submit(env.build_job_graph("whole").unwrap()).unwrap();
    let job_dir = dir.path().join("checkpoints").join(h.job_id().to_string());
    wait_until(|| "the tail".into(), || PROGRESS.load(Ordering::SeqCst) > BIG + SEGMENT / 4);
    wait_for_more_checkpoints(&mc, &h, 3);
    h.cancel().unwrap();
    assert_eq!(h.wait(WAIT).unwrap().status, JobStatus::Canceled);
    drop(out);
    let ids = checkpoints(&job_dir);
    let meta = metadata(&job_dir, ids[ids.len() - 1]);
    assert!(meta.shared_files().is_empty());
    assert!(meta.subtasks.iter().all(|s| matches!(s.state, StateHandle::File { .. })), "plain state files");
    assert!(!job_dir.join(checkpoint_metadata::SHARED_DIR).exists());
    restore_and_check(&mc, 3, &job_dir);
}
