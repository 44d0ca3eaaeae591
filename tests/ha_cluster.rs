//! High availability with real processes and a real ZooKeeper (Debian's 3.8, started by
//! `scripts/zookeeper.sh`; `scripts/setup-tests` installs it): two JobManagers and two TaskManagers; the leader is
//! killed with SIGKILL while an exactly-once job runs, the standby takes over, recovers the job
//! from its newest checkpoint and it finishes with exactly the failure-free output; a failure
//! the old leader recorded (a TaskManager killed before) is in the new leader's exception
//! history. With a 3-member ensemble, a ZooKeeper member is killed too. A leader frozen
//! (SIGSTOP) past its session suspends its job when it wakes, stands by, and leads again
//! when the new leader is killed, recovering the job from the HA data it left in place.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

mod common;

use common::{start, wait_until, Proc};
use riffle::scenarios::drill::{committed_lines, expected_lines};
use serde_json::Value;

/// The JSON answer of a request, if the server gave one.
fn http(addr: &str, method: &str, path: &str, body: &str) -> Option<Value> {
    Some(common::http(addr, method, path, body).1).filter(|v| !v.is_null())
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/zookeeper.sh")
}

/// Fails the test in one line when ZooKeeper is not installed.
fn require_zookeeper() {
    let ok = Command::new(script()).arg("check").output().is_ok_and(|o| o.status.success());
    assert!(ok, "ZooKeeper is not installed: run scripts/setup-tests once");
}

fn zk(args: &[&str]) -> Result<String, String> {
    let out = Command::new("timeout")
        .arg("120")
        .arg(script())
        .args(args)
        .output()
        .map_err(|e| format!("cannot run zookeeper.sh: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().lines().last().unwrap_or_default().to_string())
    } else {
        Err(format!(
            "zookeeper.sh {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// ZooKeeper for one test: standalone or a 3-member ensemble, stopped on drop.
struct ZooKeeper {
    dir: tempfile::TempDir,
    port: Option<u16>,
    quorum: String,
}

impl ZooKeeper {
    fn standalone() -> Self {
        require_zookeeper();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap().to_string();
        let port = free_port();
        let quorum = zk(&["start", "--port", &port.to_string(), "--dir", &d, "--fresh"])
            .unwrap_or_else(|e| panic!("ZooKeeper did not start: {e}"));
        ZooKeeper { dir, port: Some(port), quorum }
    }

    fn ensemble() -> Self {
        require_zookeeper();
        for _ in 0..5 {
            // 26000..30000: clear of the ephemeral ports and of cluster/tests/ha_zookeeper.rs's
            // ensembles (15000..25000), which another test binary may run at the same time.
            let base = 26_000 + (std::process::id() as u16 % 79) * 50 + (free_port() % 40);
            let ports = (0..3u16).flat_map(|i| [base + i, base + 1000 + i, base + 2000 + i]);
            if !ports.into_iter().all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()) {
                continue;
            }
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path().to_str().unwrap().to_string();
            match zk(&["ensemble", "start", "3", "--base-port", &base.to_string(), "--dir", &d, "--fresh"]) {
                Ok(quorum) => return ZooKeeper { dir, port: None, quorum },
                Err(_) => {
                    let _ = zk(&["ensemble", "stop", "--dir", &d]);
                }
            }
        }
        panic!("the ZooKeeper ensemble did not start");
    }

    fn kill_member(&self, k: u32) {
        let d = self.dir.path().to_str().unwrap().to_string();
        zk(&["kill-member", &k.to_string(), "--dir", &d]).unwrap();
    }
}

impl Drop for ZooKeeper {
    fn drop(&mut self) {
        let d = self.dir.path().to_str().unwrap_or_default().to_string();
        let _ = match self.port {
            Some(p) => zk(&["stop", "--port", &p.to_string(), "--dir", &d]),
            None => zk(&["ensemble", "stop", "--dir", &d]),
        };
    }
}

fn line_with(rx: &Receiver<String>, what: &str, timeout: Duration) -> Option<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match rx.recv_timeout(left) {
            Ok(l) if l.contains(what) => return Some(l),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Two JobManagers (the first leads) and two TaskManagers of two slots against `quorum`.
struct HaCluster {
    jms: Vec<(Proc, String)>,
    tms: Vec<Proc>,
    _standby_out: Receiver<String>,
    /// The `-D` arguments every process gets.
    common: Vec<String>,
    /// Where the HA files go.
    dir: PathBuf,
}

/// Starts TaskManager `tm-<i>` with two slots.
fn start_task_manager(common: &[String], i: usize) -> Proc {
    let mut a = vec!["taskmanager".to_string()];
    a.extend(common.iter().cloned());
    for kv in [
        format!("taskmanager.resource-id=tm-{i}"),
        "taskmanager.numberOfTaskSlots=2".into(),
        "taskmanager.host=127.0.0.1".into(),
    ] {
        a.extend(["-D".to_string(), kv]);
    }
    start(&a).0
}

/// The `-D` options every process of an HA cluster on `quorum` shares (state under `dir`).
fn ha_options(quorum: &str, dir: &Path) -> Vec<String> {
    [
        "high-availability=zookeeper".to_string(),
        format!("high-availability.zookeeper.quorum={quorum}"),
        format!("high-availability.storageDir={}", dir.join("ha").display()),
        "high-availability.zookeeper.client.session-timeout=2 s".into(),
        "high-availability.zookeeper.client.connection-timeout=5 s".into(),
        format!("state.checkpoints.dir={}", dir.join("chk").display()),
        "heartbeat.interval=200 ms".into(),
        "heartbeat.timeout=2 s".into(),
    ]
    .into_iter()
    .flat_map(|kv| ["-D".to_string(), kv])
    .collect()
}

/// `riffle jobmanager` arguments with `common` options, an RPC port and a REST port.
fn jobmanager_args(common: &[String], rpc: u16, rest: u16) -> Vec<String> {
    let mut a = vec!["jobmanager".to_string()];
    a.extend(common.iter().cloned());
    for kv in [
        "jobmanager.rpc.address=127.0.0.1".to_string(),
        format!("jobmanager.rpc.port={rpc}"),
        format!("rest.port={rest}"),
    ] {
        a.extend(["-D".to_string(), kv]);
    }
    a
}

fn ha_cluster(quorum: &str, dir: &Path) -> HaCluster {
    let common = ha_options(quorum, dir);
    let jm = |rpc: u16, rest: u16| {
        let a = jobmanager_args(&common, rpc, rest);
        start(&a)
    };
    let (rest1, rest2) = (free_port(), free_port());
    let (p1, out1) = jm(free_port(), rest1);
    line_with(&out1, "REST API and web UI at", Duration::from_secs(60)).expect("the first JobManager leads");
    let (p2, out2) = jm(free_port(), rest2);
    line_with(&out2, "standby", Duration::from_secs(60)).expect("the second JobManager stands by");
    let tms = (0..2).map(|i| start_task_manager(&common, i)).collect();
    let first = format!("127.0.0.1:{rest1}");
    wait_until("two TaskManagers at the leader", Duration::from_secs(30), || {
        http(&first, "GET", "/taskmanagers", "")
            .is_some_and(|v| v["taskmanagers"].as_array().is_some_and(|a| a.len() == 2))
    });
    HaCluster {
        jms: vec![(p1, first), (p2, format!("127.0.0.1:{rest2}"))],
        tms,
        _standby_out: out2,
        common,
        dir: dir.to_path_buf(),
    }
}

fn submit_drill(rest: &str, out: &Path, events: u64, keys: u64) -> String {
    let body = serde_json::json!({
        "programArgsList": ["--events", events.to_string(), "--keys", keys.to_string(), "--rate", "10",
                            "--output", out.display().to_string()],
        "parallelism": 2,
    });
    let v = http(rest, "POST", "/programs/exactly-once-drill/run", &body.to_string()).expect("the leader answers");
    v["jobid"].as_str().unwrap_or_else(|| panic!("{v}")).to_string()
}

/// The ids of the checkpoints a JobManager triggered for `job` (its recent history).
fn checkpoint_ids(rest: &str, job: &str) -> Vec<u64> {
    http(rest, "GET", &format!("/jobs/{job}/checkpoints"), "")
        .and_then(|v| v["history"].as_array().map(|h| h.iter().filter_map(|c| c["id"].as_u64()).collect()))
        .unwrap_or_default()
}

fn completed_checkpoints(rest: &str, job: &str) -> u64 {
    http(rest, "GET", &format!("/jobs/{job}/checkpoints"), "")
        .and_then(|v| v["counts"]["completed"].as_u64())
        .unwrap_or(0)
}

/// A job's exception history as a JobManager shows it: (timestamp, exception) of each entry,
/// newest first.
fn exceptions(rest: &str, job: &str) -> Vec<(i64, String)> {
    http(rest, "GET", &format!("/jobs/{job}/exceptions"), "")
        .and_then(|v| {
            v["all-exceptions"].as_array().map(|a| {
                a.iter()
                    .map(|e| (e["timestamp"].as_i64().unwrap_or(0), e["exception"].as_str().unwrap_or("").into()))
                    .collect()
            })
        })
        .unwrap_or_default()
}

fn job_state(rest: &str, job: &str) -> String {
    http(rest, "GET", &format!("/jobs/{job}"), "")
        .map(|j| j["state"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

/// Kills a TaskManager (SIGKILL) once the job checkpointed and starts another in its place;
/// returns the leader's exception history once the job runs again and the history is in
/// `storageDir`.
fn lose_a_task_manager(c: &mut HaCluster, job: &str) -> Vec<(i64, String)> {
    let leader = c.jms[0].1.clone();
    wait_until("a completed checkpoint", Duration::from_secs(60), || completed_checkpoints(&leader, job) > 0);
    let mut tm = c.tms.remove(0);
    let _ = tm.0.kill();
    let _ = tm.0.wait();
    c.tms.push(start_task_manager(&c.common, 2));
    wait_until("the lost TaskManager in the exception history", Duration::from_secs(30), || {
        !exceptions(&leader, job).is_empty()
    });
    // A checkpoint of the restarted job: every failure of that failover was recorded by then.
    let before = completed_checkpoints(&leader, job);
    wait_until("the job to run again and checkpoint", Duration::from_secs(60), || {
        job_state(&leader, job) == "RUNNING" && completed_checkpoints(&leader, job) > before
    });
    let stored = c.dir.join("ha/default/exception-history");
    wait_until("the history in storageDir", Duration::from_secs(10), || {
        std::fs::read_dir(&stored)
            .is_ok_and(|mut d| d.any(|f| f.is_ok_and(|f| !f.file_name().to_string_lossy().starts_with('.'))))
    });
    exceptions(&leader, job)
}

/// Kills the leading JobManager once the job checkpointed; returns ms until the standby ran it.
fn kill_leader_and_wait_for_the_standby(c: &mut HaCluster, job: &str) -> i64 {
    let leader = c.jms[0].1.clone();
    wait_until("a completed checkpoint", Duration::from_secs(60), || completed_checkpoints(&leader, job) > 0);
    let (mut p, _) = c.jms.remove(0);
    // The ids the old leader handed out, pending ones included (it may trigger one more
    // before the kill: that one is above these).
    let old_ids = checkpoint_ids(&leader, job);
    let killed = now_ms();
    let _ = p.0.kill();
    let _ = p.0.wait();
    let standby = c.jms[0].1.clone();
    let mut running_at = 0;
    wait_until("the standby to run the job", Duration::from_secs(60), || {
        let j = http(&standby, "GET", &format!("/jobs/{job}"), "");
        running_at = j.as_ref().and_then(|j| j["timestamps"]["RUNNING"].as_i64()).unwrap_or(0);
        running_at > 0
    });
    // The new leader's ids come from the job's counter in ZooKeeper: none is reused, even one
    // of a checkpoint the old leader had triggered but not completed.
    wait_until("a checkpoint by the new leader", Duration::from_secs(60), || !checkpoint_ids(&standby, job).is_empty());
    let (old_max, new) = (old_ids.iter().max().copied().unwrap_or(0), checkpoint_ids(&standby, job));
    assert!(old_max > 0 && new.iter().all(|id| *id > old_max), "old leader's {old_ids:?}, new leader's {new:?}");
    running_at - killed
}

fn wait_finished_exact(rest: &str, job: &str, out: &Path, events: u64, keys: u64) {
    wait_until("the recovered job to finish", Duration::from_secs(120), || {
        let s = http(rest, "GET", &format!("/jobs/{job}"), "").map(|j| j["state"].as_str().unwrap_or("").to_string());
        assert!(!matches!(s.as_deref(), Some("FAILED" | "CANCELED")), "the job ended {s:?}");
        s.as_deref() == Some("FINISHED")
    });
    assert!(committed_lines(out).unwrap() == expected_lines(events, keys), "the committed output is not exact");
}

#[test]
fn the_standby_job_manager_takes_over_a_killed_leader_and_the_job_ends_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let zk = ZooKeeper::standalone();
    let mut c = ha_cluster(&zk.quorum, dir.path());
    let out = dir.path().join("out");
    let (events, keys) = (200_000, 30);
    // A client pointed at the standby is sent to the leader: a redirect for any REST client,
    // which riffle's CLI follows.
    let (leader, standby) = (c.jms[0].1.clone(), c.jms[1].1.clone());
    let mut answer = (0, Value::Null);
    wait_until("the standby's redirect", Duration::from_secs(30), || {
        answer = common::http(&standby, "GET", "/overview?x=1", "");
        answer.0 == 307
    });
    assert_eq!(answer.1["location"], format!("http://{leader}/overview?x=1"), "{}", answer.1);
    let job = submit_drill(&c.jms[0].1, &out, events, keys);
    // A failure before the failover: the new leader shows the history the old one recorded.
    let recorded = lose_a_task_manager(&mut c, &job);
    let listed = Command::new(env!("CARGO_BIN_EXE_riffle")).args(["list", "-m", &standby]).output().unwrap();
    let listed_out = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.status.success() && listed_out.contains(&job),
        "{listed_out}{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let took = kill_leader_and_wait_for_the_standby(&mut c, &job);
    eprintln!("SIGKILL of the leader to the standby running the job: {took} ms (session timeout 2 s)");
    let shown = exceptions(&c.jms[0].1, &job);
    eprintln!("the old leader's exception history, shown by the new leader: {recorded:?}");
    assert!(
        !recorded.is_empty() && recorded.iter().all(|e| shown.contains(e)),
        "old leader's {recorded:?}, new leader's {shown:?}"
    );
    wait_finished_exact(&c.jms[0].1, &job, &out, events, keys);
}

#[test]
fn a_cluster_on_a_three_member_ensemble_survives_a_lost_member_and_a_lost_leader() {
    let dir = tempfile::tempdir().unwrap();
    let zk = ZooKeeper::ensemble();
    let mut c = ha_cluster(&zk.quorum, dir.path());
    let out = dir.path().join("out");
    let (events, keys) = (120_000, 30);
    let job = submit_drill(&c.jms[0].1, &out, events, keys);
    // One of three members goes: the quorum remains, nothing notices but the logs.
    zk.kill_member(1);
    let took = kill_leader_and_wait_for_the_standby(&mut c, &job);
    eprintln!("with a member lost, SIGKILL of the leader to the standby running the job: {took} ms");
    wait_finished_exact(&c.jms[0].1, &job, &out, events, keys);
}

/// Starts `riffle args...` like `common::start`, with its stderr (logs at info) in `log`.
fn start_logged(args: &[String], log: &Path) -> (Proc, Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_riffle"))
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("riffle starts");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (Proc(child), rx)
}

fn signal(p: &Proc, sig: &str) {
    let ok = Command::new("kill").args([sig, &p.0.id().to_string()]).status().is_ok_and(|s| s.success());
    assert!(ok, "kill {sig} {}", p.0.id());
}

/// Whether a directory holds a file whose name does not start with a dot.
fn has_files(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .is_ok_and(|mut d| d.any(|f| f.is_ok_and(|f| !f.file_name().to_string_lossy().starts_with('.'))))
}

#[test]
fn a_frozen_leader_suspends_its_job_stands_by_and_recovers_it_when_it_leads_again() {
    let dir = tempfile::tempdir().unwrap();
    let zk = ZooKeeper::standalone();
    let common = ha_options(&zk.quorum, dir.path());
    let jm_args = |rpc: u16, rest: u16| jobmanager_args(&common, rpc, rest);
    let (rest1, rest2) = (free_port(), free_port());
    let (first, second) = (format!("127.0.0.1:{rest1}"), format!("127.0.0.1:{rest2}"));
    let log1 = dir.path().join("jm1.log");
    let (jm1, out1) = start_logged(&jm_args(free_port(), rest1), &log1);
    line_with(&out1, "REST API and web UI at", Duration::from_secs(60)).expect("the first JobManager leads");
    let (jm2, out2) = start_logged(&jm_args(free_port(), rest2), &dir.path().join("jm2.log"));
    line_with(&out2, "standby", Duration::from_secs(60)).expect("the second JobManager stands by");
    let mut tm_args = vec!["taskmanager".to_string()];
    tm_args.extend(common.iter().cloned());
    for kv in ["taskmanager.resource-id=tm-0", "taskmanager.numberOfTaskSlots=2", "taskmanager.host=127.0.0.1"] {
        tm_args.extend(["-D".to_string(), kv.to_string()]);
    }
    let _tm = start_logged(&tm_args, &dir.path().join("tm.log"));
    wait_until("the TaskManager at the first JobManager", Duration::from_secs(30), || {
        http(&first, "GET", "/taskmanagers", "")
            .is_some_and(|v| v["taskmanagers"].as_array().is_some_and(|a| a.len() == 1))
    });
    // Paced to run about a minute: long enough for two changes of leader.
    let out = dir.path().join("out");
    let (events, keys) = (120_000, 30);
    let body = serde_json::json!({
        "programArgsList": ["--events", events.to_string(), "--keys", keys.to_string(), "--rate", "1",
                            "--output", out.display().to_string()],
        "parallelism": 2,
    });
    let v = http(&first, "POST", "/programs/exactly-once-drill/run", &body.to_string()).expect("the leader answers");
    let job = v["jobid"].as_str().unwrap_or_else(|| panic!("{v}")).to_string();
    wait_until("a completed checkpoint", Duration::from_secs(60), || completed_checkpoints(&first, &job) > 0);

    // Frozen longer than its session (2 s): the second JobManager takes over and runs the job.
    signal(&jm1, "-STOP");
    let frozen = Instant::now();
    wait_until("the second JobManager to run the job", Duration::from_secs(60), || {
        http(&second, "GET", &format!("/jobs/{job}"), "")
            .and_then(|j| j["timestamps"]["RUNNING"].as_i64())
            .is_some_and(|t| t > 0)
    });
    wait_until("a checkpoint by the second JobManager", Duration::from_secs(60), || {
        completed_checkpoints(&second, &job) > 0
    });
    std::thread::sleep(Duration::from_secs(6).saturating_sub(frozen.elapsed()));
    let woke = Instant::now();
    signal(&jm1, "-CONT");

    // It wakes deposed: it suspends its job instead of exiting, and stands by again.
    let line = line_with(&out1, "leadership lost", Duration::from_secs(60)).expect("the old leader suspends");
    assert!(line.contains("suspended 1 jobs") && line.contains(&job), "{line}");
    let suspended_in = woke.elapsed();
    line_with(&out1, "standby", Duration::from_secs(60)).expect("the old leader stands by again");
    let mut jm1 = jm1;
    assert!(jm1.0.try_wait().unwrap().is_none(), "the old leader exited");
    // Its REST port redirects to the new leader again.
    let mut answer = (0, Value::Null);
    wait_until("the old leader's redirect to the new one", Duration::from_secs(30), || {
        answer = common::http(&first, "GET", "/overview", "");
        answer.0 == 307
    });
    assert_eq!(answer.1["location"], format!("http://{second}/overview"), "{}", answer.1);
    // Nothing of the job's HA data was removed while suspending: the stored graph, the
    // checkpoints, and no removal was even tried.
    assert!(has_files(&dir.path().join("ha/default/jobgraphs")), "the stored job graph is gone");
    assert!(has_files(&dir.path().join("chk").join(&job)), "the job's checkpoints are gone");
    let log = std::fs::read_to_string(&log1).unwrap();
    assert!(log.contains("suspending 1 jobs"), "{log}");
    assert!(log.contains("job suspended; its HA data stays"), "{log}");
    for removal in ["cannot remove the ended job", "cannot delete the checkpoints of an ended job", "job ended"] {
        assert!(!log.contains(removal), "the suspended leader tried: {removal}\n{log}");
    }
    let told: Vec<&str> = log.lines().filter(|l| l.contains("suspend") || l.contains("leader")).collect();
    eprintln!("SIGCONT to the old leader's runtime stopped with its job suspended: {suspended_in:?}");
    eprintln!("the old leader's log:\n{}", told.join("\n"));

    // The new leader dies: the first leads again, recovers the job, and it ends exactly once.
    let progressed = completed_checkpoints(&second, &job);
    wait_until("the second JobManager to checkpoint again", Duration::from_secs(60), || {
        completed_checkpoints(&second, &job) > progressed
    });
    assert_eq!(job_state(&second, &job), "RUNNING", "the job must still run for the last change of leader");
    drop(jm2);
    let killed = Instant::now();
    line_with(&out1, "leading again", Duration::from_secs(60)).expect("the first JobManager leads again");
    let line = line_with(&out1, "REST API and web UI at", Duration::from_secs(60)).expect("its runtime starts");
    assert!(line.contains("1 jobs recovered"), "{line}");
    eprintln!("SIGKILL of the new leader to the old one leading again with the job: {:?}", killed.elapsed());
    wait_until("the recovered job to finish", Duration::from_secs(240), || {
        let s = job_state(&first, &job);
        assert!(!matches!(s.as_str(), "FAILED" | "CANCELED" | "SUSPENDED"), "the job ended {s}");
        s == "FINISHED"
    });
    let (got, want) = (committed_lines(&out).unwrap(), expected_lines(events, keys));
    if got != want {
        let kept = std::env::temp_dir().join(format!("riffle-ha-suspend-{}", std::process::id()));
        let _ = Command::new("cp").arg("-a").arg(dir.path()).arg(&kept).status();
        let (mut missing, mut extra) = (want.clone(), got.clone());
        missing.retain(|l| got.binary_search(l).is_err());
        extra.retain(|l| want.binary_search(l).is_err());
        let dups = got.windows(2).filter(|w| w[0] == w[1]).count();
        panic!(
            "the committed output is not exact: {} lines for {}, {} missing (first {:?}), {} unexpected, {dups} \
             duplicated; logs and output kept in {}",
            got.len(),
            want.len(),
            missing.len(),
            missing.first(),
            extra.len(),
            kept.display()
        );
    }
}
