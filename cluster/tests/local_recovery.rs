//! Local recovery (`state.backend.local-recovery`): a failed task that comes back to its
//! TaskExecutor restores from the local copy of its snapshot, so a checkpoint whose files
//! are gone from the checkpoint storage still restores — and without local recovery it
//! cannot, which shows the copy is what was used.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use riffle_api::{CollectStream, StreamEnvironment};
use riffle_cluster::{JobResult, JobStatus, MiniCluster, MiniClusterConfig};

const EVENTS: u64 = 300_000;
const KEYS: u64 = 5;

fn job(fail: &'static AtomicBool) -> (StreamEnvironment, CollectStream<(u64, u64)>) {
    let mut env = StreamEnvironment::new();
    env.set_parallelism(2);
    let out = env
        .from_sequence(0, EVENTS - 1)
        .map(|i| {
            if i % 150 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            i
        })
        .map(move |i| {
            if fail.swap(false, Ordering::SeqCst) {
                panic!("injected failure");
            }
            (i % KEYS, i)
        })
        .key_by(|(k, _): &(u64, u64)| *k)
        .reduce(|a, b| (a.0, a.1 + b.1))
        .collect();
    (env, out)
}

fn delete_state_files(dir: &Path, id: u64) -> usize {
    let mut n = 0;
    for job in std::fs::read_dir(dir).unwrap() {
        let chk = job.unwrap().path().join(format!("chk-{id}"));
        for f in std::fs::read_dir(&chk).into_iter().flatten() {
            let f = f.unwrap().path();
            if f.extension().is_some_and(|x| x == "state") {
                std::fs::remove_file(f).unwrap();
                n += 1;
            }
        }
    }
    n
}

/// Runs the job, checkpoints, deletes the checkpoint's state files, injects a failure.
fn run(local_recovery: bool, fail: &'static AtomicBool) -> (Vec<(u64, u64)>, JobResult) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = MiniClusterConfig::new(1, 2);
    cfg.config
        .set("state.checkpoints.dir", dir.path().display().to_string())
        .set("state.storage.fs.memory-threshold", "0")
        .set("state.backend.local-recovery", local_recovery.to_string())
        .set("restart-strategy", "fixed-delay")
        .set("restart-strategy.fixed-delay.attempts", "2")
        .set("restart-strategy.fixed-delay.delay", "10 ms");
    let mc = MiniCluster::start(cfg).unwrap();
    let (env, out) = job(fail);
    let h = mc.submit(env.build_job_graph("local recovery").unwrap()).unwrap();
    let collector = std::thread::spawn(move || out.collect::<Vec<_>>());
    std::thread::sleep(Duration::from_millis(300));
    let id = h.trigger_checkpoint().unwrap();
    assert!(delete_state_files(dir.path(), id) > 0, "the checkpoint's state is in files");
    fail.store(true, Ordering::SeqCst);
    let result = h.wait(Some(Duration::from_secs(60))).unwrap();
    let got = collector.join().unwrap();
    mc.shutdown();
    (got, result)
}

#[test]
fn a_restarted_task_restores_from_its_local_copy() {
    static FAIL: AtomicBool = AtomicBool::new(false);
    let (got, result) = run(true, &FAIL);
    assert_eq!(result.status, JobStatus::Finished, "{:?}", result.error);
    for k in 0..KEYS {
        let want: u64 = (0..EVENTS).filter(|i| i % KEYS == k).sum();
        let max = got.iter().filter(|(key, _)| *key == k).map(|(_, s)| *s).max();
        assert_eq!(max, Some(want), "key {k}: state restored exactly once");
    }
}

#[test]
fn without_local_recovery_the_lost_files_fail_the_restore() {
    static FAIL: AtomicBool = AtomicBool::new(false);
    let (_, result) = run(false, &FAIL);
    assert_eq!(result.status, JobStatus::Failed);
    assert!(result.error.unwrap_or_default().contains("checkpoint state"), "the restore read the storage");
}
