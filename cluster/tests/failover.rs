//! Restart strategies and the exception history.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::WAIT;
use riffle_actors::exception_history::{ExceptionHistory, ExceptionHistorySnapshot};
use riffle_actors::peers::JobStore;
use riffle_api::StreamEnvironment;
use riffle_cluster::{JobStatus, MiniCluster, MiniClusterConfig};

fn cluster_with(kv: &[(&str, &str)]) -> MiniCluster {
    let mut cfg = MiniClusterConfig::new(1, 2);
    for (k, v) in kv {
        cfg.config.set(*k, *v);
    }
    MiniCluster::start(cfg).expect("cluster starts")
}

/// A job whose map fails on record 500 while `failures` is below `limit`.
fn flaky_job(failures: &'static AtomicU32, limit: u32) -> (StreamEnvironment, riffle_api::CollectStream<u64>) {
    let mut env = StreamEnvironment::new();
    env.set_parallelism(2);
    let out = env
        .from_sequence(0, 999)
        .map(move |i| {
            if i == 500 && failures.load(Ordering::SeqCst) < limit {
                failures.fetch_add(1, Ordering::SeqCst);
                panic!("flaky record {i}");
            }
            i
        })
        .name("flaky")
        .collect();
    (env, out)
}

#[test]
fn fixed_delay_restarts_the_job_until_it_succeeds() {
    static FAILURES: AtomicU32 = AtomicU32::new(0);
    let mc = cluster_with(&[
        ("restart-strategy", "fixed-delay"),
        ("restart-strategy.fixed-delay.attempts", "3"),
        ("restart-strategy.fixed-delay.delay", "20 ms"),
    ]);
    let (env, out) = flaky_job(&FAILURES, 2);
    let h = mc.submit(env.build_job_graph("flaky").unwrap()).unwrap();
    let got: Vec<u64> = out.collect();
    let r = h.wait(WAIT).unwrap();
    assert_eq!(r.status, JobStatus::Finished, "{:?}", r.error);
    assert_eq!(FAILURES.load(Ordering::SeqCst), 2);
    // The last attempt delivered everything (earlier attempts' partial output came before).
    let mut distinct = got.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct, (0..1000).collect::<Vec<_>>());
    let h2 = mc.exception_history(h.job_id(), 0, 10).unwrap();
    let roots: Vec<_> = h2.entries.iter().filter(|e| e.is_root_cause).collect();
    assert_eq!(roots.len(), 2, "{h2:?}");
    assert_eq!(roots.iter().map(|e| e.attempt).collect::<Vec<_>>(), vec![1, 0], "newest first");
    for e in roots {
        assert!(e.exception.contains("operator 'flaky' failed: panicked: flaky record 500"), "{}", e.exception);
        // Split [500, 999] goes to whichever reader asks for it first (FLIP-27 enumerators
        // hand splits out on request), so either subtask may hold record 500.
        assert!(matches!(e.subtask_index, Some(0 | 1)), "{:?}", e.subtask_index);
        assert_eq!(e.task_name.as_deref(), Some("Sequence Source -> flaky -> Collect Sink"));
        assert_eq!(e.location.as_deref(), Some("taskexecutor-0"));
        assert!(e.timestamp_ms > 0);
    }
}

#[test]
fn the_job_fails_when_the_strategy_gives_up() {
    static FAILURES: AtomicU32 = AtomicU32::new(0);
    let mc = cluster_with(&[
        ("restart-strategy", "fixed-delay"),
        ("restart-strategy.fixed-delay.attempts", "1"),
        ("restart-strategy.fixed-delay.delay", "10 ms"),
    ]);
    let (env, out) = flaky_job(&FAILURES, u32::MAX);
    let h = mc.submit(env.build_job_graph("doomed").unwrap()).unwrap();
    let _ = out.count();
    let r = h.wait(WAIT).unwrap();
    assert_eq!(r.status, JobStatus::Failed);
    assert_eq!(FAILURES.load(Ordering::SeqCst), 2, "one run and one restart");
    assert!(r.error.unwrap_or_default().contains("flaky record 500"));
    let slots = mc.slot_report().unwrap();
    assert_eq!(slots.free, slots.total);
}

#[test]
fn without_a_restart_strategy_the_first_failure_fails_the_job() {
    static FAILURES: AtomicU32 = AtomicU32::new(0);
    let mc = cluster_with(&[]);
    let (env, out) = flaky_job(&FAILURES, u32::MAX);
    let h = mc.submit(env.build_job_graph("no restarts").unwrap()).unwrap();
    let _ = out.count();
    assert_eq!(h.wait(WAIT).unwrap().status, JobStatus::Failed);
    assert_eq!(FAILURES.load(Ordering::SeqCst), 1);
}

#[test]
fn exception_history_is_bounded_paged_and_keeps_the_first_root_cause() {
    static FAILURES: AtomicU32 = AtomicU32::new(0);
    let mc = cluster_with(&[
        ("restart-strategy", "failure-rate"),
        ("restart-strategy.failure-rate.max-failures-per-interval", "100"),
        ("restart-strategy.failure-rate.failure-rate-interval", "1 min"),
        ("restart-strategy.failure-rate.delay", "0 ms"),
        ("jobmanager.exception-history-size", "5"),
    ]);
    let (env, out) = flaky_job(&FAILURES, 12);
    let h = mc.submit(env.build_job_graph("noisy").unwrap()).unwrap();
    let _ = out.count();
    assert_eq!(h.wait(WAIT).unwrap().status, JobStatus::Finished);
    assert_eq!(FAILURES.load(Ordering::SeqCst), 12);
    let first = mc.exception_history(h.job_id(), 0, 2).unwrap();
    assert_eq!(first.total, 5);
    assert!(first.truncated);
    assert_eq!(first.entries.iter().map(|e| e.attempt).collect::<Vec<_>>(), vec![11, 10]);
    let second = mc.exception_history(h.job_id(), 1, 2).unwrap();
    assert_eq!(second.entries.iter().map(|e| e.attempt).collect::<Vec<_>>(), vec![9, 8]);
    let last = mc.exception_history(h.job_id(), 2, 2).unwrap();
    assert_eq!(last.entries.iter().map(|e| e.attempt).collect::<Vec<_>>(), vec![0], "the first root cause is kept");
    assert!(mc.exception_history(riffle_cluster::JobId(42), 0, 2).is_err(), "unknown job");
}

#[test]
fn cancel_during_the_restart_delay_cancels_the_job() {
    static FAILURES: AtomicU32 = AtomicU32::new(0);
    let mc = cluster_with(&[
        ("restart-strategy", "fixed-delay"),
        ("restart-strategy.fixed-delay.attempts", "5"),
        ("restart-strategy.fixed-delay.delay", "1 h"),
    ]);
    let (env, out) = flaky_job(&FAILURES, u32::MAX);
    let h = mc.submit(env.build_job_graph("waiting").unwrap()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while mc.list_jobs().unwrap().first().map(|j| j.status) != Some(JobStatus::Restarting) {
        assert!(Instant::now() < deadline, "never restarting: {:?}", mc.list_jobs());
        std::thread::sleep(Duration::from_millis(5));
    }
    h.cancel().unwrap();
    assert_eq!(h.wait(WAIT).unwrap().status, JobStatus::Canceled);
    drop(out);
    assert_eq!(FAILURES.load(Ordering::SeqCst), 1);
}

#[test]
fn an_unknown_restart_strategy_fails_the_job_with_a_clear_message() {
    let mut env = StreamEnvironment::new();
    env.set_config("restart-strategy", "sometimes");
    let out = env.from_sequence(0, 9).collect();
    let mc = cluster_with(&[]);
    let (_, r) = common::run_result(&mc, &env, out);
    assert_eq!(r.status, JobStatus::Failed);
    assert!(r.error.unwrap_or_default().contains("restart-strategy"));
}

#[test]
fn only_the_current_attempt_of_a_running_job_may_end() {
    // The first attempt fails at record 500; the second holds its records until released, so
    // the job is RUNNING in attempt 1 while the JobMaster is asked.
    static FAILURES: AtomicU32 = AtomicU32::new(0);
    static AGAIN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    static RELEASE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let mc = cluster_with(&[("restart-strategy", "fixed-delay"), ("restart-strategy.fixed-delay.delay", "10 ms")]);
    let mut env = StreamEnvironment::new();
    // One subtask: no sibling of the failed attempt goes on to hold records.
    env.set_parallelism(1);
    let out = env
        .from_sequence(0, 999)
        .map(|i| {
            if FAILURES.load(Ordering::SeqCst) == 0 {
                if i == 500 {
                    FAILURES.fetch_add(1, Ordering::SeqCst);
                    panic!("the first attempt fails");
                }
            } else {
                AGAIN.store(true, Ordering::SeqCst);
                while !RELEASE.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            i
        })
        .collect();
    let h = mc.submit(env.build_job_graph("confirm-end").expect("graph")).expect("submitted");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !AGAIN.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the second attempt never ran");
        std::thread::sleep(Duration::from_millis(5));
    }
    let jm = mc.shared().directory.job_masters.get(&h.job_id()).map(|a| a.clone()).expect("the job's JobMaster");
    let deadline = Instant::now() + Duration::from_secs(60);
    let ask = |attempt| {
        let e = riffle_actors::ExecutionId { job: h.job_id(), vertex: 0, subtask: 0, attempt };
        futures::executor::block_on(jm.send(riffle_actors::gateway::ConfirmEnd { execution: e }))
            .unwrap_or_else(|gone| {
                Err(riffle_actors::RuntimeError::Unavailable(format!("the JobMaster is gone: {gone}")))
            })
            .map_err(|e| e.to_string())
    };
    // A task of the failed attempt (say, on a TaskManager frozen past its heartbeat timeout)
    // may not end, and so never commits next to the new attempt.
    // The restarted attempt is confirmed once the JobMaster runs it.
    while ask(1).is_err() {
        assert!(Instant::now() < deadline, "attempt 1 never ran: {:?}", ask(1));
        std::thread::sleep(Duration::from_millis(5));
    }
    let refused = ask(0).expect_err("the superseded attempt is refused");
    assert!(refused.contains("superseded by attempt 1"), "{refused}");
    RELEASE.store(true, Ordering::SeqCst);
    let got: Vec<u64> = out.collect();
    assert_eq!(h.wait(WAIT).expect("ends").status, JobStatus::Finished);
    // The second attempt delivered everything (the first one's partial output came before).
    let mut distinct = got.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct, (0..1000).collect::<Vec<_>>());
    // The job is over: nobody may end any more.
    let done = ask(1).expect_err("a finished job confirms nothing");
    assert!(done.contains("FINISHED") || done.contains("gone"), "{done}");
}

/// What a highly available JobManager's store would keep, in memory: the histories handed to
/// it, and a history "stored by the previous leader" for a recovered job.
#[derive(Default)]
struct MemoryJobStore {
    recovered: std::sync::Mutex<std::collections::HashMap<riffle_cluster::JobId, ExceptionHistorySnapshot>>,
    stored: std::sync::Mutex<Vec<(riffle_cluster::JobId, ExceptionHistorySnapshot)>>,
    terminated: std::sync::Mutex<Vec<riffle_cluster::JobId>>,
}

type Boxed<T> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, riffle_actors::RuntimeError>>>>;

impl JobStore for MemoryJobStore {
    fn job_submitted(&self, _: riffle_cluster::JobId, _: std::sync::Arc<riffle_api::JobGraph>) -> Boxed<()> {
        Box::pin(async { Ok(()) })
    }
    fn next_checkpoint_id(&self, _: riffle_cluster::JobId, at_least: u64) -> Boxed<u64> {
        Box::pin(async move { Ok(at_least) })
    }
    fn job_terminated(&self, job: riffle_cluster::JobId) {
        self.terminated.lock().unwrap().push(job);
    }
    fn checkpoint_completed(&self, _: riffle_cluster::JobId, _: u64, _: &std::path::Path) {}
    fn exceptions_changed(&self, job: riffle_cluster::JobId, history: ExceptionHistorySnapshot) {
        self.stored.lock().unwrap().push((job, history));
    }
    fn recovered_exceptions(&self, job: riffle_cluster::JobId) -> Option<ExceptionHistorySnapshot> {
        self.recovered.lock().unwrap().remove(&job)
    }
}

#[test]
fn a_highly_available_dispatcher_stores_every_history_change_and_continues_a_recovered_history() {
    static FAILURES: AtomicU32 = AtomicU32::new(0);
    let mc = cluster_with(&[
        ("restart-strategy", "fixed-delay"),
        ("restart-strategy.fixed-delay.attempts", "3"),
        ("restart-strategy.fixed-delay.delay", "10 ms"),
        ("jobmanager.exception-history-size", "3"),
    ]);
    // What the previous leader stored of the job: its first root cause and later noise.
    let old = |ts: i64, root: bool| riffle_cluster::ExceptionEntry {
        timestamp_ms: ts,
        exception: format!("under the old leader {ts}"),
        causes: vec![],
        task_name: None,
        subtask_index: None,
        location: Some("tm-gone".into()),
        is_root_cause: root,
        attempt: 0,
    };
    let mut previous = ExceptionHistory::new(3);
    for (ts, root) in [(1, true), (2, false), (3, false)] {
        previous.push(old(ts, root));
    }
    let job = riffle_cluster::JobId::generate();
    let store = std::sync::Arc::new(MemoryJobStore::default());
    store.recovered.lock().unwrap().insert(job, previous.snapshot());
    mc.shared().jobs.set_job_store(store.clone());

    let (env, out) = flaky_job(&FAILURES, 1);
    let h = mc.submit_with_id(job, env.build_job_graph("recovered").unwrap()).unwrap();
    let _ = out.count();
    assert_eq!(h.wait(WAIT).unwrap().status, JobStatus::Finished);
    let page = mc.exception_history(job, 0, 10).unwrap();
    assert!(page.truncated && page.total == 3, "{page:?}");
    assert!(
        page.entries.iter().any(|e| e.is_root_cause && e.exception.contains("flaky record 500")),
        "the new failure is recorded: {page:?}"
    );
    assert_eq!(page.entries.last(), Some(&old(1, true)), "the old leader's first root cause is kept");
    // Every change went to the store; the last is the history shown, oldest first. Then the
    // job ended (and the store removes it).
    let stored = store.stored.lock().unwrap().clone();
    assert!(!stored.is_empty() && stored.iter().all(|(j, _)| *j == job));
    let last = stored.last().map(|(_, h)| h.clone()).unwrap();
    assert_eq!(last.entries.iter().rev().cloned().collect::<Vec<_>>(), page.entries);
    assert_eq!(*store.terminated.lock().unwrap(), vec![job]);
    assert_eq!(store.recovered.lock().unwrap().len(), 0, "handed out once");
}

/// High availability, a deposed leader: every job that has not ended is suspended — SUSPENDED,
/// its checkpoints kept although retention deletes them at any end, nothing removed from the
/// job store — while a job that finished before was removed from the store as usual.
#[test]
fn suspending_every_job_keeps_its_checkpoints_and_its_stored_entry() {
    let dir = tempfile::tempdir().unwrap();
    let chk = dir.path().to_str().unwrap().to_string();
    let mc = cluster_with(&[("execution.checkpointing.interval", "50 ms"), ("state.checkpoints.dir", &chk)]);
    let store = std::sync::Arc::new(MemoryJobStore::default());
    mc.shared().jobs.set_job_store(store.clone());

    let mut env = StreamEnvironment::new();
    env.set_parallelism(1);
    env.from_sequence(0, 9).discard();
    let done = mc.submit(env.build_job_graph("short").unwrap()).unwrap();
    assert_eq!(done.wait(WAIT).unwrap().status, JobStatus::Finished);

    // Paced to run far longer than the test: only the suspension ends it.
    let mut env = StreamEnvironment::new();
    env.set_parallelism(2);
    env.from_sequence_paced(0, 1_000_000, 100).map(|i| i + 1).discard();
    let running = mc.submit(env.build_job_graph("long").unwrap()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while mc.checkpoint_stats(running.job_id()).completed == 0 {
        assert!(Instant::now() < deadline, "no checkpoint completed");
        std::thread::sleep(Duration::from_millis(20));
    }

    let suspended = mc.suspend_all_jobs(Duration::from_secs(40)).expect("every JobMaster ends");
    assert_eq!(suspended, vec![running.job_id()]);
    let result = running.wait(WAIT).unwrap();
    assert_eq!((result.status, result.error), (JobStatus::Suspended, None));
    let listed: Vec<_> = mc.list_jobs().unwrap().into_iter().map(|j| (j.job_id, j.status)).collect();
    assert!(listed.contains(&(running.job_id(), JobStatus::Suspended)), "{listed:?}");
    // The checkpoints stay for the next leader (give a wrongly spawned deletion time to run).
    std::thread::sleep(Duration::from_millis(300));
    let kept: Vec<String> = std::fs::read_dir(dir.path().join(running.job_id().to_string()))
        .expect("the job's checkpoint directory")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.starts_with("chk-"))
        .collect();
    assert!(!kept.is_empty(), "the suspended job's checkpoints are gone");
    assert!(!dir.path().join(done.job_id().to_string()).exists(), "the finished job's checkpoints stay");
    assert_eq!(*store.terminated.lock().unwrap(), vec![done.job_id()], "only the finished job leaves the store");
    // Nothing is left to suspend.
    assert_eq!(mc.suspend_all_jobs(Duration::from_secs(5)).unwrap(), vec![]);
}
