//! A JobManager that accepts TaskManagers over TCP and TaskManagers linked to it (both in this
//! test process, each with its own runtime and registries, talking only through the link):
//! registration, jobs built again from their origin on the TaskManager with exact results,
//! a lost TaskManager replaced by a standby from the latest checkpoint, refusals with clear
//! errors, and garbage on the RPC port.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use riffle_api::{Configuration, JobGraph, JobOrigin, ProgramSource, Programs, StreamEnvironment};
use riffle_cluster::taskmanager::TaskManager;
use riffle_cluster::{JobStatus, MiniCluster, MiniClusterConfig};

/// `sums <events> <keys> <output> <pause-us-per-record>`: running sums per key `i % keys`.
fn sums(args: &[String], parallelism: u32) -> Result<JobGraph, String> {
    let [n, k, out, pause] = args else { return Err(format!("sums takes 4 arguments, got {args:?}")) };
    let n: u64 = n.parse().map_err(|_| "events".to_string())?;
    let k: u64 = k.parse().map_err(|_| "keys".to_string())?;
    let pause: u64 = pause.parse().map_err(|_| "pause".to_string())?;
    let mut c = Configuration::new();
    c.set("execution.checkpointing.interval", "50 ms")
        .set("restart-strategy", "fixed-delay")
        .set("restart-strategy.fixed-delay.attempts", "5")
        .set("restart-strategy.fixed-delay.delay", "10 ms");
    let mut env = StreamEnvironment::with_config(c);
    env.set_parallelism(parallelism);
    env.from_sequence(0, n - 1)
        .map(move |i| {
            if pause > 0 {
                std::thread::sleep(Duration::from_micros(pause));
            }
            (i % k, i)
        })
        .key_by(|p: &(u64, u64)| p.0)
        .reduce(|a: (u64, u64), b: (u64, u64)| (a.0, a.1 + b.1))
        .write_as_text_exactly_once(std::path::PathBuf::from(out), |p: &(u64, u64)| format!("{},{}", p.0, p.1));
    let mut g = env.build_job_graph("remote sums").map_err(|e| e.to_string())?;
    g.set_origin(JobOrigin {
        program: ProgramSource::Builtin("sums".into()),
        args: args.to_vec(),
        parallelism: Some(parallelism),
        config: Default::default(),
    });
    Ok(g)
}

fn builder() -> Arc<dyn Programs> {
    Arc::new(|o: &JobOrigin| match &o.program {
        ProgramSource::Builtin(name) if name == "sums" => sums(&o.args, o.parallelism.unwrap_or(1)),
        other => Err(format!("no program {other:?} here")),
    })
}

fn job_manager() -> MiniCluster {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mut cfg = MiniClusterConfig::new(0, 1).with_rpc();
    cfg.config
        .set("jobmanager.rpc.address", "127.0.0.1")
        .set("jobmanager.rpc.port", "0")
        .set("heartbeat.interval", "100 ms")
        .set("heartbeat.timeout", "1 s");
    MiniCluster::start(cfg).unwrap()
}

fn task_manager(jm: &MiniCluster, id: &str, slots: u32) -> TaskManager {
    task_manager_with(jm, id, slots, builder())
}

/// A TaskManager with `slots` slots that builds jobs with `builder`, registered at `jm`.
fn task_manager_with(jm: &MiniCluster, id: &str, slots: u32, builder: Arc<dyn Programs>) -> TaskManager {
    task_manager_conf(jm, id, slots, builder, &[])
}

/// [`task_manager_with`] with more configuration.
fn task_manager_conf(
    jm: &MiniCluster,
    id: &str,
    slots: u32,
    builder: Arc<dyn Programs>,
    extra: &[(&str, &str)],
) -> TaskManager {
    let addr = jm.rpc_address().unwrap();
    let (host, port) = addr.rsplit_once(':').unwrap();
    let mut c = Configuration::new();
    c.set("jobmanager.rpc.address", host)
        .set("jobmanager.rpc.port", port)
        .set("taskmanager.resource-id", id)
        .set("taskmanager.host", "127.0.0.1")
        .set("taskmanager.numberOfTaskSlots", slots.to_string())
        .set("heartbeat.interval", "100 ms")
        .set("heartbeat.timeout", "1 s");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    let tm = TaskManager::start(c, builder).unwrap();
    tm.wait_registered(Duration::from_secs(10)).unwrap();
    tm
}

fn wait_for_slots(jm: &MiniCluster, total: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while jm.slot_report().unwrap().total != total {
        assert!(Instant::now() < deadline, "slots: {:?}, want {total}", jm.slot_report());
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Exactly once: one committed line per record, and each key's largest running sum is the
/// sum of all its records (records 0..n, key = record % keys). Sources interleave per key, so
/// the running sums in between differ from run to run.
fn assert_exact_sums(out: &Path, n: u64, keys: u64) {
    let lines = committed(out);
    assert_eq!(lines.len() as u64, n);
    let mut last = std::collections::BTreeMap::<u64, u64>::new();
    for l in &lines {
        let (k, v) = l.split_once(',').unwrap();
        let e = last.entry(k.parse().unwrap()).or_default();
        *e = (*e).max(v.parse().unwrap());
    }
    let want: std::collections::BTreeMap<u64, u64> =
        (0..keys).map(|k| (k, (0..n).filter(|i| i % keys == k).sum())).collect();
    assert_eq!(last, want);
}

/// The committed output: every line of the committed part files, sorted.
fn committed(dir: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    for f in std::fs::read_dir(dir).unwrap().flatten() {
        if f.file_name().to_string_lossy().starts_with("part-") {
            lines.extend(std::fs::read_to_string(f.path()).unwrap().lines().map(str::to_string));
        }
    }
    lines.sort();
    lines
}

/// What a run without failures commits: every running sum once.
fn expected(n: u64, k: u64) -> Vec<String> {
    let mut sums = vec![0u64; k as usize];
    let mut lines: Vec<String> = (0..n)
        .map(|i| {
            sums[(i % k) as usize] += i;
            format!("{},{}", i % k, sums[(i % k) as usize])
        })
        .collect();
    lines.sort();
    lines
}

fn args(n: u64, k: u64, out: &Path, pause_us: u64) -> Vec<String> {
    vec![n.to_string(), k.to_string(), out.display().to_string(), pause_us.to_string()]
}

#[test]
fn a_job_runs_on_a_task_manager_process_with_exact_results() {
    let jm = job_manager();
    let tm = task_manager(&jm, "tm-a", 2);
    wait_for_slots(&jm, 2);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sums.txt");
    let graph = sums(&args(20_000, 7, &out, 0), 2).unwrap();
    let job = jm.submit(graph).unwrap();
    let r = job.wait(Some(Duration::from_secs(60))).unwrap();
    assert_eq!(r.status, JobStatus::Finished, "{:?}", r.error);
    // The TaskManager's counters reach the JobManager's view (REST, web UI) with its heartbeats.
    let view = jm.shared().jobs.view(job.job_id()).unwrap();
    let read = |v: usize| -> u64 {
        view.vertices[v].subtasks.iter().map(|io| io.records_in.load(std::sync::atomic::Ordering::Relaxed)).sum()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while read(1) != 20_000 {
        assert!(Instant::now() < deadline, "the keyed vertex read {} records in the JobManager's view", read(1));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_exact_sums(&out, 20_000, 7);
    // The slots are free again on the JobManager's side, and the TaskManager forgot the job.
    assert_eq!(jm.slot_report().unwrap().free, 2);
    let deadline = Instant::now() + Duration::from_secs(5);
    while tm.jobs_known() != 0 {
        assert!(Instant::now() < deadline, "the TaskManager still holds the ended job's graph");
        std::thread::sleep(Duration::from_millis(10));
    }
    // It is given the job's origin again for the next one.
    let out2 = dir.path().join("sums2.txt");
    let r =
        jm.submit(sums(&args(1_000, 3, &out2, 0), 2).unwrap()).unwrap().wait(Some(Duration::from_secs(60))).unwrap();
    assert_eq!(r.status, JobStatus::Finished, "{:?}", r.error);
    drop(tm);
    wait_for_slots(&jm, 0);
}

#[test]
fn a_lost_task_manager_is_replaced_by_a_standby_and_the_job_ends_exactly() {
    let jm = job_manager();
    let first = task_manager(&jm, "tm-first", 1);
    wait_for_slots(&jm, 1);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sums.txt");
    // Several seconds of work at parallelism 1, so the TaskManager goes while it runs.
    let graph = sums(&args(40_000, 5, &out, 100), 1).unwrap();
    let job = jm.submit(graph).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while first.running_subtasks() == 0 || jm.checkpoint_stats(job.job_id()).completed == 0 {
        assert!(
            Instant::now() < deadline,
            "the job did not start on the first TaskManager: {} subtasks there, checkpoints {:?}, {:?}",
            first.running_subtasks(),
            jm.checkpoint_stats(job.job_id()),
            jm.list_jobs()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let second = task_manager(&jm, "tm-second", 1);
    drop(first);
    let r = job.wait(Some(Duration::from_secs(60))).unwrap();
    assert_eq!(r.status, JobStatus::Finished, "{:?}", r.error);
    assert!(committed(&out) == expected(40_000, 5), "the committed output is not exactly the expected one");
    let history = jm.exception_history(job.job_id(), 0, 10).unwrap();
    let root = &history.entries.last().expect("the loss is in the exception history").exception;
    assert!(root.contains("tm-first") && root.contains("lost"), "{root}");
    drop(second);
}

#[test]
fn a_job_built_only_in_the_job_manager_process_fails_with_a_clear_error() {
    let jm = job_manager();
    let _tm = task_manager(&jm, "tm-c", 1);
    wait_for_slots(&jm, 1);
    let env = StreamEnvironment::new();
    env.from_sequence(0, 9).discard();
    let graph = env.build_job_graph("closure job").unwrap();
    let r = jm.submit(graph).unwrap().wait(Some(Duration::from_secs(30))).unwrap();
    assert_eq!(r.status, JobStatus::Failed);
    let e = r.error.unwrap_or_default();
    assert!(e.contains("cannot build it") && e.contains("tm-c"), "{e}");
}

#[test]
fn a_task_manager_that_cannot_build_the_job_fails_it_with_the_reason() {
    let jm = job_manager();
    let _tm = task_manager(&jm, "tm-d", 1);
    wait_for_slots(&jm, 1);
    let dir = tempfile::tempdir().unwrap();
    let mut graph = sums(&args(10, 2, &dir.path().join("x"), 0), 1).unwrap();
    graph.set_origin(JobOrigin {
        program: ProgramSource::Builtin("unknown".into()),
        args: vec![],
        parallelism: None,
        config: Default::default(),
    });
    let r = jm.submit(graph).unwrap().wait(Some(Duration::from_secs(30))).unwrap();
    assert_eq!(r.status, JobStatus::Failed);
    let e = r.error.unwrap_or_default();
    assert!(e.contains("cannot build the job here") && e.contains("no program"), "{e}");
}

#[test]
fn a_job_spread_over_two_task_managers_exchanges_its_data_over_the_network_exactly() {
    let jm = job_manager();
    let _a = task_manager(&jm, "tm-e1", 1);
    let _b = task_manager(&jm, "tm-e2", 1);
    wait_for_slots(&jm, 2);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sums");
    // Parallelism 2 on two one-slot TaskManagers: the keyed exchange crosses processes both ways.
    let graph = sums(&args(30_000, 7, &out, 0), 2).unwrap();
    let job = jm.submit(graph).unwrap();
    let r = job.wait(Some(Duration::from_secs(60))).unwrap();
    assert_eq!(r.status, JobStatus::Finished, "{:?}", r.error);
    // What crossed the network is counted on both sides (REST's read-bytes/write-bytes).
    let view = jm.shared().jobs.view(job.job_id()).unwrap();
    let bytes = |v: usize, f: fn(&riffle_actors::job_view::SubtaskIo) -> u64| -> u64 {
        view.vertices[v].subtasks.iter().map(|io| f(io)).sum()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = bytes(0, |io| io.bytes_out.load(std::sync::atomic::Ordering::Relaxed));
        let inn = bytes(1, |io| io.bytes_in.load(std::sync::atomic::Ordering::Relaxed));
        if out > 0 && out == inn {
            break;
        }
        assert!(Instant::now() < deadline, "bytes out {out}, bytes in {inn}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_exact_sums(&out, 30_000, 7);
}

#[test]
fn received_data_goes_through_a_small_fixed_network_buffer_pool_exactly() {
    // Each TaskManager has 8 segments of 4 KiB (32 KiB), half to read what it receives into,
    // half to encode what it sends, whatever the number of channels: frames wait for
    // segments (these frames are larger than a half: each waits for all of it), and the job
    // stays exact.
    let jm = job_manager();
    let pool = [
        ("taskmanager.memory.segment-size", "4kb"),
        ("taskmanager.memory.network.min", "32kb"),
        ("taskmanager.memory.network.max", "32kb"),
    ];
    let _a = task_manager_conf(&jm, "tm-p1", 2, builder(), &pool);
    let _b = task_manager_conf(&jm, "tm-p2", 2, builder(), &pool);
    wait_for_slots(&jm, 4);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sums");
    // Parallelism 4 over two two-slot TaskManagers: 8 keyed channels cross the network.
    let graph = sums(&args(60_000, 11, &out, 0), 4).unwrap();
    let job = jm.submit(graph).unwrap();
    let r = job.wait(Some(Duration::from_secs(120))).unwrap();
    assert_eq!(r.status, JobStatus::Finished, "{:?}", r.error);
    assert_exact_sums(&out, 60_000, 11);
    // The pools' size and use reach the JobManager with the heartbeats: all 8 segments free
    // again once the data is through.
    for tm in ["tm-p1", "tm-p2"] {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let sample = match jm
                .shared()
                .directory
                .task_executors
                .get(&riffle_actors::ResourceId(tm.into()))
                .map(|g| g.clone())
            {
                Some(riffle_actors::peers::TaskExecutorGateway::Remote(r)) => r.latest().network,
                _ => None,
            };
            let want = riffle_actors::peers::NetworkSample { segment_size: 4096, total: 8, available: 8 };
            if sample == Some(want) {
                break;
            }
            assert!(Instant::now() < deadline, "{tm}: {sample:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn a_job_spread_over_the_job_managers_own_slots_and_a_task_manager_is_refused() {
    let mut cfg = MiniClusterConfig::new(1, 1).with_rpc();
    cfg.config.set("jobmanager.rpc.address", "127.0.0.1").set("jobmanager.rpc.port", "0");
    let jm = MiniCluster::start(cfg).unwrap();
    let _tm = task_manager(&jm, "tm-g", 1);
    wait_for_slots(&jm, 2);
    let dir = tempfile::tempdir().unwrap();
    let graph = sums(&args(10, 2, &dir.path().join("x"), 0), 2).unwrap();
    let r = jm.submit(graph).unwrap().wait(Some(Duration::from_secs(30))).unwrap();
    assert_eq!(r.status, JobStatus::Failed);
    let e = r.error.unwrap_or_default();
    assert!(e.contains("spread over the JobManager's own TaskExecutors"), "{e}");
}

#[test]
fn garbage_on_the_rpc_port_costs_only_that_connection() {
    let jm = job_manager();
    let addr = jm.rpc_bound_address().unwrap();
    for junk in [&b"GET / HTTP/1.1\r\n\r\n"[..], &[0xff; 64][..], &[0, 0, 0, 9, 1, 2][..]] {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        let _ = s.write_all(junk);
        drop(s);
    }
    let tm = task_manager(&jm, "tm-f", 1);
    wait_for_slots(&jm, 1);
    assert!(tm.is_registered());
}

#[test]
fn a_second_task_manager_with_a_taken_id_is_refused_and_the_first_keeps_its_slots() {
    let jm = job_manager();
    let _tm = task_manager(&jm, "tm-same", 1);
    wait_for_slots(&jm, 1);
    let addr = jm.rpc_address().unwrap();
    let (host, port) = addr.rsplit_once(':').unwrap();
    let mut c = Configuration::new();
    c.set("jobmanager.rpc.address", host).set("jobmanager.rpc.port", port).set("taskmanager.resource-id", "tm-same");
    let twin = TaskManager::start(c, builder()).unwrap();
    assert!(twin.wait_registered(Duration::from_millis(500)).is_err());
    assert_eq!(jm.slot_report().unwrap().total, 1);
}

static EMITTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static CONSUMED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// `slow <events>`: a fast source dealing records to a fast local and a slow remote consumer.
fn slow(args: &[String], parallelism: u32) -> Result<JobGraph, String> {
    use std::sync::atomic::Ordering::Relaxed;
    let n: u64 = args.first().and_then(|a| a.parse().ok()).ok_or("events")?;
    let mut env = StreamEnvironment::new();
    env.set_parallelism(parallelism);
    // One producer (in the first TaskManager) deals records round-robin to two consumers, one
    // per TaskManager; only the remote one is slow (odd records), so only credit holds the
    // producer back: the local consumer keeps up.
    env.from_sequence(0, n - 1)
        .set_parallelism(1)
        .map(|i| {
            EMITTED.fetch_add(1, Relaxed);
            i
        })
        .set_parallelism(1)
        .rebalance()
        .map(|i: u64| {
            if i % 2 == 1 {
                std::thread::sleep(Duration::from_micros(200));
            }
            CONSUMED.fetch_add(1, Relaxed);
            i
        })
        .discard();
    let mut g = env.build_job_graph("slow consumer").map_err(|e| e.to_string())?;
    g.set_origin(JobOrigin {
        program: ProgramSource::Builtin("slow".into()),
        args: args.to_vec(),
        parallelism: Some(parallelism),
        config: Default::default(),
    });
    Ok(g)
}

#[test]
fn a_slow_consumer_in_another_process_holds_back_the_producers_with_bounded_memory() {
    use std::sync::atomic::Ordering::Relaxed;
    let jm = job_manager();
    let b: Arc<dyn Programs> = Arc::new(|o: &JobOrigin| slow(&o.args, o.parallelism.unwrap_or(1)));
    let (_a, _b) = (task_manager_with(&jm, "tm-slow-1", 1, b.clone()), task_manager_with(&jm, "tm-slow-2", 1, b));
    wait_for_slots(&jm, 2);
    let job = jm.submit(slow(&["10000000".to_string()], 2).unwrap()).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let (emitted, consumed) = (EMITTED.load(Relaxed), CONSUMED.load(Relaxed));
    job.cancel().unwrap();
    assert!(consumed > 0, "nothing reached the consumers");
    // The remote channel holds at most its capacity on both sides and its credit on the wire
    // (3 × capacity batches of 1024 records), the local one its capacity, plus partly filled
    // batches: far below what an unchecked producer pushes into the sockets' buffers in 3 s.
    let in_flight = emitted - consumed;
    eprintln!("in flight: {in_flight} ({emitted} emitted, {consumed} consumed)");
    let c = riffle_actors::exchange::DEFAULT_CHANNEL_CAPACITY as u64;
    assert!(
        in_flight <= 2 * (3 * c + 1) * 1024 + c * 1024,
        "{in_flight} records in flight ({emitted} emitted, {consumed} consumed)"
    );
}

#[test]
fn the_slot_cap_holds_across_task_manager_processes() {
    let mut cfg = MiniClusterConfig::new(0, 1).with_rpc();
    cfg.config
        .set("jobmanager.rpc.address", "127.0.0.1")
        .set("jobmanager.rpc.port", "0")
        .set("slotmanager.number-of-slots.max", "2")
        .set("slot.request.timeout", "500 ms");
    let jm = MiniCluster::start(cfg).unwrap();
    let _a = task_manager(&jm, "tm-cap-1", 2);
    let _b = task_manager(&jm, "tm-cap-2", 2);
    wait_for_slots(&jm, 4);
    let dir = tempfile::tempdir().unwrap();
    // Two slots in use (a slow job), two registered and free, but the cap is reached.
    let first = jm.submit(sums(&args(20_000, 3, &dir.path().join("a"), 200), 2).unwrap()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while jm.slot_report().unwrap().free != 2 {
        assert!(Instant::now() < deadline, "{:?}", jm.slot_report());
        std::thread::sleep(Duration::from_millis(10));
    }
    let second = jm.submit(sums(&args(10, 2, &dir.path().join("b"), 0), 2).unwrap()).unwrap();
    let r = second.wait(Some(Duration::from_secs(30))).unwrap();
    assert_eq!(r.status, JobStatus::Failed);
    let e = r.error.unwrap_or_default();
    assert!(e.contains("slotmanager.number-of-slots.max = 2"), "{e}");
    first.cancel().unwrap();
}

/// `crawl <events> <unaligned>`: two sources dealing records round-robin to two consumers that
/// take 1 ms a record: every channel, local and remote, stays full.
fn crawl(args: &[String], parallelism: u32) -> Result<JobGraph, String> {
    let n: u64 = args.first().and_then(|a| a.parse().ok()).ok_or("events")?;
    let unaligned = args.get(1).map(String::as_str) == Some("true");
    let mut c = Configuration::new();
    c.set("execution.checkpointing.interval", "200 ms")
        .set("execution.checkpointing.unaligned", if unaligned { "true" } else { "false" })
        .set("execution.checkpointing.timeout", "60 s");
    let mut env = StreamEnvironment::with_config(c);
    env.set_parallelism(parallelism);
    env.from_sequence(0, n - 1)
        .rebalance()
        .map(|i: u64| {
            std::thread::sleep(Duration::from_millis(1));
            i
        })
        .discard();
    let mut g = env.build_job_graph("crawl").map_err(|e| e.to_string())?;
    g.set_origin(JobOrigin {
        program: ProgramSource::Builtin("crawl".into()),
        args: args.to_vec(),
        parallelism: Some(parallelism),
        config: Default::default(),
    });
    Ok(g)
}

#[test]
fn unaligned_checkpoints_overtake_a_full_backlog_across_the_network() {
    let jm = job_manager();
    let b: Arc<dyn Programs> = Arc::new(|o: &JobOrigin| crawl(&o.args, o.parallelism.unwrap_or(1)));
    let (_a, _b) = (task_manager_with(&jm, "tm-crawl-1", 1, b.clone()), task_manager_with(&jm, "tm-crawl-2", 1, b));
    wait_for_slots(&jm, 2);
    let job = jm.submit(crawl(&["10000000".to_string(), "true".to_string()], 2).unwrap()).unwrap();
    // Each consumer has ~8 batches of 1024 records queued before it (1 ms each): an aligned
    // checkpoint would wait for that backlog; an unaligned one passes it on the priority lane.
    let deadline = Instant::now() + Duration::from_secs(30);
    while jm.checkpoint_stats(job.job_id()).completed < 3 {
        assert!(Instant::now() < deadline, "{:?}", jm.checkpoint_stats(job.job_id()));
        std::thread::sleep(Duration::from_millis(20));
    }
    let stats = jm.checkpoint_stats(job.job_id());
    job.cancel().unwrap();
    assert!(stats.last_duration_ms < 1000, "an unaligned checkpoint took {} ms", stats.last_duration_ms);
}
