//! Apache Flink's own command-line client (PyPI's apache-flink, the version the benchmark
//! harness uses) lists, savepoints, stops and cancels riffle jobs through riffle's REST port.
//!
//! The client is `$RIFFLE_FLINK_CLI`, else the one `scripts/setup-tests` installs
//! (`${RIFFLE_TEST_DEPS:-$HOME/.cache/riffle-test-deps}/bin/flink`); without either the test
//! fails with one line naming the set-up command.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::http::{get, post_json};
use riffle_cluster::{MiniCluster, MiniClusterConfig};
use riffle_scenarios::catalog::programs;
use serde_json::json;

fn flink_cli() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("RIFFLE_FLINK_CLI") {
        return Some(PathBuf::from(p));
    }
    let deps = std::env::var_os("RIFFLE_TEST_DEPS")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/riffle-test-deps")))?;
    let cli = deps.join("bin/flink");
    cli.is_file().then_some(cli)
}

/// Runs the client with a time limit; its stdout and stderr.
fn flink(cli: &PathBuf, args: &[&str]) -> (bool, String) {
    let mut child = Command::new(cli)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the flink client starts");
    let deadline = Instant::now() + Duration::from_secs(120);
    let ok = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.success();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    (ok, format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn submit(url: &str) -> String {
    let r = post_json(
        url,
        "/programs/failover-demo/run",
        &json!({"programArgsList": ["--failures", "0", "--seconds", "300", "--rate", "2"], "parallelism": 2}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["jobid"].as_str().unwrap().to_string()
}

fn wait_state(url: &str, job: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while get(url, &format!("/jobs/{job}")).json()["state"] != want {
        assert!(Instant::now() < deadline, "job {job} did not become {want}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_flink_cli_lists_savepoints_stops_and_cancels_riffle_jobs() {
    let Some(cli) = flink_cli() else {
        panic!("Apache Flink's CLI is not installed: run scripts/setup-tests once (or set RIFFLE_FLINK_CLI)");
    };
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = MiniClusterConfig::new(2, 2).with_rest().with_programs(programs());
    cfg.config.set("rest.port", "0");
    let mc = MiniCluster::start(cfg).unwrap();
    let url = mc.rest_url().unwrap();
    let m = common::http::host_of(&url);
    let job = submit(&url);
    wait_state(&url, &job, "RUNNING");

    let (ok, out) = flink(&cli, &["list", "-m", &m]);
    assert!(ok && out.contains(&format!("{job} : failover demo (RUNNING)")), "{out}");

    let target = dir.path().join("savepoints");
    let (ok, out) = flink(&cli, &["savepoint", "-m", &m, &job, target.to_str().unwrap()]);
    assert!(ok, "{out}");
    let path =
        out.lines().find_map(|l| l.strip_prefix("Savepoint completed. Path: file:")).unwrap_or_else(|| panic!("{out}"));
    assert!(PathBuf::from(path.trim()).join("_metadata").is_file(), "{out}");

    let (ok, out) = flink(&cli, &["stop", "-m", &m, "--savepointPath", target.to_str().unwrap(), &job]);
    assert!(ok && out.contains("Savepoint completed. Path: file:"), "{out}");
    wait_state(&url, &job, "FINISHED");

    let other = submit(&url);
    wait_state(&url, &other, "RUNNING");
    let (ok, out) = flink(&cli, &["cancel", "-m", &m, &other]);
    assert!(ok && out.contains(&format!("Cancelled job {other}")), "{out}");
    wait_state(&url, &other, "CANCELED");

    let (ok, out) = flink(&cli, &["list", "-a", "-m", &m]);
    assert!(ok, "{out}");
    assert!(out.contains(&format!("{job} : failover demo (FINISHED)")), "{out}");
    assert!(out.contains(&format!("{other} : failover demo (CANCELED)")), "{out}");
    drop(mc);
}
