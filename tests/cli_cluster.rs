//! `riffle serve` as a real process, driven by riffle's own CLI over REST: list, savepoint,
//! stop and cancel running jobs; bad addresses and ids get one clear line.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn riffle(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_riffle")).args(args).output().expect("riffle runs");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn http(addr: &str, method: &str, path: &str, body: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn submit(addr: &str) -> String {
    let r = http(
        addr,
        "POST",
        "/programs/failover-demo/run",
        r#"{"programArgsList":["--failures","0","--seconds","300","--rate","2"],"parallelism":2}"#,
    );
    let i = r.find("\"jobid\":\"").unwrap_or_else(|| panic!("{r}")) + 9;
    r[i..i + 32].to_string()
}

fn wait_listed(addr: &str, line: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, out) = riffle(&["list", "-m", addr]);
        if out.contains(line) {
            return;
        }
        assert!(Instant::now() < deadline, "never listed '{line}': {out}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_cli_lists_savepoints_stops_and_cancels_jobs_of_a_serving_process() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("log");
    let child = Command::new(env!("CARGO_BIN_EXE_riffle"))
        .args(["serve", "--taskmanagers", "2", "--slots", "2", "-D", "rest.port=0"])
        .args(["-D", &format!("log.dir={}", logs.display())])
        .args(["-D", &format!("state.savepoints.dir={}", dir.path().join("sp").display())])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("riffle serve starts");
    let mut serve = Serve(child);
    let stdout = serve.0.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or_else(|| panic!("no address in '{line}'"))
        .to_string();
    let job = submit(&addr);
    wait_listed(&addr, &format!("{job} : failover demo (RUNNING)"));

    let (ok, out) = riffle(&["savepoint", "-m", &addr, &job]);
    assert!(ok, "{out}");
    let loc = out.trim().strip_prefix("savepoint completed: file:").unwrap_or_else(|| panic!("{out}"));
    assert!(std::path::Path::new(loc).join("_metadata").is_file(), "{out}");
    assert!(loc.starts_with(dir.path().join("sp").to_str().unwrap()));

    let target = dir.path().join("stopped");
    let (ok, out) = riffle(&["stop", "-m", &addr, &job, "--savepoint-path", target.to_str().unwrap()]);
    assert!(ok && out.contains("stopped with savepoint file:"), "{out}");
    wait_listed(&addr, &format!("{job} : failover demo (FINISHED)"));

    let other = submit(&addr);
    wait_listed(&addr, &format!("{other} : failover demo (RUNNING)"));
    let (ok, out) = riffle(&["cancel", "-m", &addr, &other]);
    assert!(ok, "{out}");
    wait_listed(&addr, &format!("{other} : failover demo (CANCELED)"));

    // Clear one-line errors.
    let (ok, out) = riffle(&["cancel", "-m", &addr, "not-a-job"]);
    assert!(!ok && out.contains("not a job id") && out.lines().count() == 1, "{out}");
    let (ok, out) = riffle(&["savepoint", "-m", &addr, &job]);
    assert!(!ok && out.contains("not running"), "{out}");
    let (ok, out) = riffle(&["list", "-m", "127.0.0.1:1"]);
    assert!(!ok && out.contains("cannot reach the REST API"), "{out}");
    // The process logs to log.dir.
    let files: Vec<_> = std::fs::read_dir(&logs).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(files.iter().any(|f| f.to_string_lossy().starts_with("jobmanager")), "{files:?}");
    // Each TaskExecutor has its own file, with what its slot threads logged.
    let tm: Vec<_> = files.iter().filter(|f| f.to_string_lossy().starts_with("taskmanager-taskexecutor-")).collect();
    assert!(!tm.is_empty(), "{files:?}");
    let text = std::fs::read_to_string(logs.join(tm[0])).unwrap();
    assert!(text.contains("deploying subtask"), "{text}");
    let jm = files.iter().find(|f| f.to_string_lossy().starts_with("jobmanager")).unwrap();
    let jm_text = std::fs::read_to_string(logs.join(jm)).unwrap();
    assert!(jm_text.contains("REST API and web UI at"), "{jm_text}");
    // The REST API lists and serves them.
    let listing = http(&addr, "GET", "/taskmanagers/taskexecutor-0/logs", "");
    assert!(listing.contains("taskmanager-taskexecutor-"), "{listing}");
    // What the process printed is captured in jobmanager.out as well.
    let out = std::fs::read_to_string(logs.join("jobmanager.out")).unwrap();
    assert!(out.contains("riffle is serving the REST API and web UI at"), "{out}");
    assert!(listing.contains("jobmanager.out"), "{listing}");
    // Killing the process the user started (SIGKILL: no chance to clean up) stops the cluster.
    let _ = serve.0.kill();
    let _ = serve.0.wait();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(&addr).is_ok() {
        assert!(Instant::now() < deadline, "the cluster outlived the killed serve process");
        std::thread::sleep(Duration::from_millis(50));
    }
}
