//! A cluster of real processes: `riffle local-cluster` (a JobManager and TaskManager
//! processes), and `riffle jobmanager` / `riffle taskmanager` started by hand. TaskManagers
//! are killed with SIGKILL or frozen with SIGSTOP while an exactly-once job runs; the job
//! moves to another TaskManager and its committed output is exactly that of a run without
//! failures. A JobManager bound on one address and advertising another (reached through a
//! forwarder) works.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

mod common;

use common::{http, start, sums_totals, template_plugin, wait_until, Proc};
use riffle::scenarios::drill::{committed_lines, committed_lines_of, expected_lines, DrillSink};

/// Waits for a stdout line containing `what`.
fn line_with(rx: &Receiver<String>, what: &str, seen: &mut Vec<String>) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(l) = seen.iter().find(|l| l.contains(what)) {
            return l.clone();
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => seen.push(l),
            Err(_) => panic!("no line with '{what}' in {seen:?}"),
        }
    }
}

fn rest_address(line: &str) -> String {
    line.split("http://").nth(1).and_then(|r| r.split('/').next()).unwrap_or_else(|| panic!("{line}")).to_string()
}

fn job_state(rest: &str, job: &str) -> String {
    http(rest, "GET", &format!("/jobs/{job}"), "").1["state"].as_str().unwrap_or("").to_string()
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill").args([sig, &pid.to_string()]).status().map(|s| s.success()).unwrap_or(false);
    assert!(ok, "kill {sig} {pid}");
}

struct Cluster {
    proc: Proc,
    rest: String,
    /// TaskManager id → pid, from local-cluster's lines.
    pids: Vec<(String, u32)>,
}

fn local_cluster(dir: &Path, slots: u32) -> Cluster {
    let slots = slots.to_string();
    let args: Vec<String> = [
        "local-cluster",
        "--taskmanagers",
        "2",
        "--slots",
        slots.as_str(),
        "-D",
        "rest.port=0",
        "-D",
        "heartbeat.interval=200 ms",
        "-D",
        "heartbeat.timeout=1 s",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(["-D".to_string(), format!("state.checkpoints.dir={}", dir.join("chk").display())])
    .collect();
    let (proc, rx) = start(&args);
    let mut seen = Vec::new();
    let rest = rest_address(&line_with(&rx, "REST API and web UI at", &mut seen));
    let mut pids = Vec::new();
    for id in ["taskmanager-0", "taskmanager-1"] {
        let l = line_with(&rx, &format!("{id} started, pid"), &mut seen);
        pids.push((id.to_string(), l.rsplit(' ').next().unwrap().parse().unwrap()));
    }
    wait_until("two TaskManagers", Duration::from_secs(30), || {
        http(&rest, "GET", "/taskmanagers", "").1["taskmanagers"].as_array().is_some_and(|a| a.len() == 2)
    });
    Cluster { proc, rest, pids }
}

fn submit_drill(rest: &str, out: &Path, events: u64, keys: u64, rate: u64) -> String {
    let body = serde_json::json!({
        "programArgsList": ["--events", events.to_string(), "--keys", keys.to_string(), "--rate", rate.to_string(),
                            "--output", out.display().to_string()],
        "parallelism": 2,
    });
    let (status, v) = http(rest, "POST", "/programs/exactly-once-drill/run", &body.to_string());
    assert_eq!(status, 200, "{v}");
    v["jobid"].as_str().unwrap().to_string()
}

/// Waits until the job completed a checkpoint.
fn wait_for_a_checkpoint(rest: &str, job: &str) {
    wait_until("a completed checkpoint", Duration::from_secs(60), || {
        http(rest, "GET", &format!("/jobs/{job}/checkpoints"), "").1["counts"]["completed"].as_u64().unwrap_or(0) > 0
    });
}

/// The TaskManager whose slots the job holds (it is packed into one), once it checkpointed.
fn busy_task_manager(c: &Cluster, job: &str) -> (String, u32) {
    wait_for_a_checkpoint(&c.rest, job);
    let mut busy = None;
    wait_until("the TaskManager running the job", Duration::from_secs(10), || {
        let tms = http(&c.rest, "GET", "/taskmanagers", "").1;
        busy = tms["taskmanagers"]
            .as_array()
            .and_then(|a| a.iter().find(|t| t["freeSlots"] == 0 && t["runningSubtasks"].as_u64().unwrap_or(0) > 0))
            .and_then(|t| t["id"].as_str().map(str::to_string));
        busy.is_some()
    });
    let id = busy.unwrap();
    let pid = c.pids.iter().find(|(i, _)| *i == id).unwrap_or_else(|| panic!("no pid for {id}")).1;
    (id, pid)
}

/// The exactly-once drill the failure tests run: events over keys at a bounded rate, on a
/// local-cluster of two TaskManagers with `slots` slots each.
struct Drill {
    c: Cluster,
    job: String,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

const DRILL_EVENTS: u64 = 150_000;
const DRILL_KEYS: u64 = 40;

impl Drill {
    fn start(slots: u32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let c = local_cluster(dir.path(), slots);
        let out = dir.path().join("out");
        let job = submit_drill(&c.rest, &out, DRILL_EVENTS, DRILL_KEYS, 10);
        Drill { c, job, out, _dir: dir }
    }

    /// The job finishes with exactly the output of a run without failures, and its exception
    /// history names the lost TaskManager.
    fn check_exact(&self, lost: &str) {
        let (rest, job) = (&self.c.rest, &self.job);
        wait_until("the job to finish", Duration::from_secs(120), || {
            let s = job_state(rest, job);
            assert!(s != "FAILED" && s != "CANCELED", "the job ended {s}");
            s == "FINISHED"
        });
        let exact = committed_lines(&self.out).unwrap() == expected_lines(DRILL_EVENTS, DRILL_KEYS);
        assert!(exact, "the committed output is not exact");
        let (_, ex) = http(rest, "GET", &format!("/jobs/{job}/exceptions"), "");
        let text = ex.to_string();
        assert!(text.contains(lost) && text.contains("lost"), "{text}");
    }
}

#[test]
fn a_task_manager_killed_with_sigkill_mid_job_loses_and_duplicates_nothing() {
    let d = Drill::start(2);
    let (c, job) = (&d.c, &d.job);
    let (id, pid) = busy_task_manager(c, job);
    let killed_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    signal(pid, "-KILL");
    // The job runs again on the other TaskManager (its link closed: no timeout to wait for).
    let mut again = None;
    wait_until("the job to run again", Duration::from_secs(30), || {
        let (_, j) = http(&c.rest, "GET", &format!("/jobs/{job}"), "");
        let running_since = j["timestamps"]["RUNNING"].as_i64().unwrap_or(0);
        if running_since > killed_ms && j["state"] == "RUNNING" {
            again = Some(running_since - killed_ms);
        }
        again.is_some() || j["state"] == "FINISHED"
    });
    eprintln!("SIGKILL of {id} to the job running again: {again:?} ms");
    d.check_exact(&id);
}

#[test]
fn a_frozen_task_manager_is_declared_dead_after_the_heartbeat_timeout() {
    let d = Drill::start(2);
    let (c, job) = (&d.c, &d.job);
    let (id, pid) = busy_task_manager(c, job);
    let frozen = Instant::now();
    signal(pid, "-STOP");
    wait_until("the frozen TaskManager to be dropped", Duration::from_secs(10), || {
        let tms = http(&c.rest, "GET", "/taskmanagers", "").1;
        !tms["taskmanagers"].as_array().is_some_and(|a| a.iter().any(|t| t["id"] == id.as_str()))
    });
    let noticed = frozen.elapsed();
    // heartbeat.timeout is 1 s; it takes at least that and not much more.
    assert!(noticed >= Duration::from_millis(900), "dropped after {noticed:?}, before the timeout");
    d.check_exact(&id);
    // Thawed, it finds its link gone, cancels what it ran and registers again.
    signal(pid, "-CONT");
    wait_until("the thawed TaskManager to register again", Duration::from_secs(20), || {
        let tms = http(&c.rest, "GET", "/taskmanagers", "").1;
        tms["taskmanagers"].as_array().is_some_and(|a| a.iter().any(|t| t["id"] == id.as_str()))
    });
}

/// Copies bytes both ways between each accepted connection and `to`.
fn forwarder(listener: TcpListener, to: String) {
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(&to) else { continue };
            for (mut a, mut b) in [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)] {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut a, &mut b);
                    let _ = b.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    });
}

fn free_port(host: &str) -> u16 {
    TcpListener::bind((host, 0)).unwrap().local_addr().unwrap().port()
}

#[test]
fn a_job_manager_bound_on_one_address_is_reached_on_the_address_it_advertises() {
    let dir = tempfile::tempdir().unwrap();
    let bind_port = free_port("127.0.0.1");
    // The advertised address forwards to the bound one (as a NAT or a container port would).
    let front = TcpListener::bind(("127.0.0.2", 0)).unwrap();
    let front_port = front.local_addr().unwrap().port();
    forwarder(front, format!("127.0.0.1:{bind_port}"));
    let d = |kv: String| ["-D".to_string(), kv];
    let mut jm_args = vec!["jobmanager".to_string()];
    for kv in [
        "rest.port=0".to_string(),
        "jobmanager.bind-host=127.0.0.1".into(),
        format!("jobmanager.rpc.bind-port={bind_port}"),
        "jobmanager.rpc.address=127.0.0.2".into(),
        format!("jobmanager.rpc.port={front_port}"),
    ] {
        jm_args.extend(d(kv));
    }
    let (_jm, jm_out) = start(&jm_args);
    let mut seen = Vec::new();
    let line = line_with(&jm_out, "REST API and web UI at", &mut seen);
    assert!(
        line.contains(&format!("register at 127.0.0.2:{front_port}"))
            && line.contains(&format!("bound on 127.0.0.1:{bind_port}")),
        "{line}"
    );
    let rest = rest_address(&line);
    let mut tm_args = vec!["taskmanager".to_string()];
    for kv in [
        "jobmanager.rpc.address=127.0.0.2".to_string(),
        format!("jobmanager.rpc.port={front_port}"),
        "taskmanager.host=127.0.0.3".into(),
        "taskmanager.resource-id=tm-behind-nat".into(),
        "taskmanager.numberOfTaskSlots=2".into(),
    ] {
        tm_args.extend(d(kv));
    }
    let (_tm, _) = start(&tm_args);
    wait_until("the TaskManager to register", Duration::from_secs(30), || {
        let tms = http(&rest, "GET", "/taskmanagers", "").1;
        tms["taskmanagers"].as_array().is_some_and(|a| {
            a.iter().any(|t| t["id"] == "tm-behind-nat" && t["path"].as_str().is_some_and(|p| p.contains("127.0.0.3")))
        })
    });
    let out = dir.path().join("out");
    let job = submit_drill(&rest, &out, 5_000, 7, 0);
    wait_until("the job to finish", Duration::from_secs(60), || job_state(&rest, &job) == "FINISHED");
    assert!(committed_lines(&out).unwrap() == expected_lines(5_000, 7));
}

#[test]
fn the_exactly_once_drill_over_the_network_survives_a_killed_task_manager() {
    // Two TaskManagers of one slot each: every keyed exchange crosses processes.
    let d = Drill::start(1);
    wait_for_a_checkpoint(&d.c.rest, &d.job);
    let (id, pid) = d.c.pids[0].clone();
    signal(pid, "-KILL");
    // local-cluster starts a new TaskManager in its place; the job waits for its slot.
    d.check_exact(&id);
}

#[test]
fn riffle_run_uploads_a_plugin_to_a_running_cluster_and_waits_for_its_job() {
    let dir = tempfile::tempdir().unwrap();
    let c = local_cluster(dir.path(), 1);
    let out = dir.path().join("sums.txt");
    let o = Command::new(env!("CARGO_BIN_EXE_riffle"))
        .args(["run", "--plugin"])
        .arg(template_plugin())
        .args(["--entry", "sums", "-m", &c.rest, "100", "3"])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("ended FINISHED"), "{stdout}");
    assert_eq!(sums_totals(&out), [(0, 1683), (1, 1617), (2, 1650)]);
    // A TaskManager's thread dump shows that process's threads, not the JobManager's. Its
    // actors' figures come with its heartbeats: wait for one sent after the job's deployment.
    let dump_after_deployment = || {
        let (status, dump) = http(&c.rest, "GET", "/taskmanagers/taskmanager-0/thread-dump", "");
        let deployed = dump["actors"].as_array().is_some_and(|a| {
            a.iter().any(|a| {
                a["kind"] == "TaskExecutor" && a["activity"].as_str().is_some_and(|s| s.contains("last message: "))
            })
        });
        (status, dump, deployed)
    };
    wait_until("a heartbeat after the deployment", Duration::from_secs(10), || dump_after_deployment().2);
    let (status, dump, _) = dump_after_deployment();
    assert_eq!(status, 200, "{dump}");
    let names: Vec<&str> =
        dump["threadInfos"].as_array().unwrap().iter().filter_map(|t| t["threadName"].as_str()).collect();
    // (Kernel thread names keep 15 characters.)
    assert!(names.contains(&"riffle-taskmana") && !names.contains(&"riffle-jobmanag"), "{names:?}");
    // Its TaskExecutor's mailbox, counted in its process, came with the heartbeats; it handled
    // the job's deployment.
    let te = dump["actors"].as_array().unwrap().iter().find(|a| a["kind"] == "TaskExecutor").cloned().unwrap();
    assert!(te["mailbox"].is_u64(), "{te}");
    assert!(te["activity"].as_str().unwrap().contains("last message: "), "{te}");
    // Its network buffer pool (defaults: 10 % of 1728 MiB in 32 KiB segments), all free again.
    let (status, tm) = http(&c.rest, "GET", "/taskmanagers/taskmanager-0", "");
    assert_eq!(status, 200, "{tm}");
    let m = &tm["metrics"];
    assert_eq!(m["nettyShuffleMemorySegmentsTotal"], 5529, "{tm}");
    assert_eq!(m["nettyShuffleMemoryTotal"], 5529 * 32768, "{tm}");
    assert_eq!(m["nettyShuffleMemorySegmentsAvailable"], 5529, "{tm}");
    assert_eq!(tm["memoryConfiguration"]["networkMemory"], 5529 * 32768, "{tm}");
    drop(c.proc);
}

#[test]
fn stopping_local_cluster_with_sigterm_stops_every_process_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let c = local_cluster(dir.path(), 1);
    let out = c.proc.0.id();
    let mut pids: Vec<u32> = c.pids.iter().map(|(_, p)| *p).collect();
    // The JobManager's pid: the process serving the REST port, a child of local-cluster.
    let children = std::fs::read_to_string(format!("/proc/{out}/task/{out}/children")).unwrap_or_default();
    pids.extend(children.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
    pids.sort();
    pids.dedup();
    assert!(pids.len() >= 3, "{pids:?}");
    signal(out, "-TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    // A process is gone once /proc no longer lists it, or lists it as a zombie of its parent.
    let alive = |pid: &u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.rsplit(')').next().is_some_and(|r| !r.trim_start().starts_with('Z')))
            .unwrap_or(false)
    };
    while pids.iter().any(alive) {
        assert!(
            Instant::now() < deadline,
            "still running after SIGTERM: {:?}",
            pids.iter().filter(|p| alive(p)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(c.proc);
}

/// The drill through riffle-connectors' file sink (`--sink`) on real processes: a TaskManager
/// killed with SIGKILL mid-job, and the committed files, read back with riffle's readers,
/// hold exactly the failure-free counts; nothing is left in progress.
fn file_sink_drill_survives_a_killed_task_manager(sink: &str, kind: DrillSink) {
    const EVENTS: u64 = 60_000;
    let dir = tempfile::tempdir().unwrap();
    let c = local_cluster(dir.path(), 1);
    let out = dir.path().join("out");
    let body = serde_json::json!({
        "programArgsList": ["--events", EVENTS.to_string(), "--keys", DRILL_KEYS.to_string(), "--rate", "10",
                            "--output", out.display().to_string(), "--sink", sink],
        "parallelism": 2,
    });
    let (status, v) = http(&c.rest, "POST", "/programs/exactly-once-drill/run", &body.to_string());
    assert_eq!(status, 200, "{v}");
    let job = v["jobid"].as_str().unwrap().to_string();
    let (_, pid) = busy_task_manager(&c, &job);
    signal(pid, "-KILL");
    wait_until("the job to finish", Duration::from_secs(120), || {
        let s = job_state(&c.rest, &job);
        if s == "FAILED" || s == "CANCELED" {
            let (_, ex) = http(&c.rest, "GET", &format!("/jobs/{job}/exceptions"), "");
            panic!("{sink}: the job ended {s}: {ex}");
        }
        s == "FINISHED"
    });
    let exact = committed_lines_of(&out, kind).unwrap() == expected_lines(EVENTS, DRILL_KEYS);
    assert!(exact, "{sink}: the committed output is not exact");
    let mut dirs = vec![out.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            assert!(!name.starts_with('.'), "{sink}: left in progress: {name}");
            if e.file_type().unwrap().is_dir() {
                assert!(e.path().join("_SUCCESS").is_file(), "{sink}: {name} committed");
                dirs.push(e.path());
            }
        }
    }
}

#[test]
fn the_drill_through_the_parquet_file_sink_survives_a_killed_task_manager() {
    file_sink_drill_survives_a_killed_task_manager("parquet", DrillSink::Parquet);
}

#[test]
fn the_drill_through_the_partitioned_csv_file_sink_survives_a_killed_task_manager() {
    file_sink_drill_survives_a_killed_task_manager("csv-partitioned", DrillSink::CsvPartitioned);
}
