//! The web UI in a real headless Chromium (Debian's, driven by playwright-core from
//! web/ui-tests) against a live MiniCluster whose job failed and restarted 14 times: every
//! page loads and shows what the API says, the failover history pages back to the oldest
//! failures, a log downloads byte for byte, a program is submitted from the browser, and a
//! job of its own is savepointed and cancelled with the job page's buttons. A second test
//! checks the UI with a bearer token required.
//!
//! Needs `node`, `/usr/bin/chromium` and playwright-core in web/ui-tests (`scripts/setup-tests`
//! installs them; without them the tests fail with one line saying so).

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::http::{get, post_json};
use riffle_cluster::{MiniCluster, MiniClusterConfig};
use riffle_scenarios::catalog::programs;
use serde_json::json;

/// Runs a node script with a time limit; whether it passed, and what it printed.
fn node(script: &std::path::Path, env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new("node");
    cmd.arg(script).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("node runs (install Node.js)");
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().unwrap();
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (status.is_some_and(|s| s.success()), text)
}

/// Fails the test in one line when Chromium or playwright-core is missing.
fn require_browser(ui_tests: &std::path::Path) {
    assert!(
        std::path::Path::new("/usr/bin/chromium").is_file() && ui_tests.join("node_modules/playwright-core").is_dir(),
        "Chromium or playwright-core is not installed: run scripts/setup-tests once"
    );
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root").to_path_buf()
}

#[test]
fn every_page_of_the_web_ui_works_in_a_real_browser() {
    let root = repo_root();
    let tests = root.join("web/ui-tests");
    require_browser(&tests);
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("log");
    std::fs::create_dir(&logs).unwrap();
    let log: String = (0..2000).map(|i| format!("2026-12-02T00:00:00Z INFO riffle: line {i}\n")).collect();
    std::fs::write(logs.join("jobmanager.log"), log).unwrap();
    std::fs::write(logs.join("jobmanager.out"), "stdout of the job manager\n").unwrap();
    std::fs::write(logs.join("taskmanager-0.log.2026-12-01"), "yesterday\n").unwrap();
    let mut cfg = MiniClusterConfig::new(2, 2).with_rest().with_programs(programs());
    cfg.config
        .set("rest.port", "0")
        .set("log.dir", logs.display().to_string())
        .set("jobmanager.exception-history-size", "64")
        .set("state.savepoints.dir", dir.path().join("savepoints").display().to_string());
    let mc = MiniCluster::start(cfg).expect("cluster with REST starts");
    let url = mc.rest_url().expect("REST is served");
    let resp = post_json(
        &url,
        "/programs/failover-demo/run",
        &json!({"programArgsList": ["--failures", "14", "--interval-ms", "150", "--seconds", "120", "--rate", "5"], "parallelism": 2}),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let job = resp.json()["jobid"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(90);
    while get(&url, &format!("/jobs/{job}/exceptions?page=0&size=1")).json()["total"].as_u64().unwrap_or(0) < 14 {
        assert!(Instant::now() < deadline, "the job did not fail 14 times");
        std::thread::sleep(Duration::from_millis(100));
    }
    let shots =
        std::env::var_os("RIFFLE_UI_SCREENSHOTS").map(PathBuf::from).unwrap_or_else(|| dir.path().join("screenshots"));
    std::fs::create_dir_all(&shots).unwrap();
    let (ok, text) = node(
        &tests.join("ui.test.mjs"),
        &[
            ("BASE_URL", &url),
            ("JOB_ID", &job),
            ("SCREENSHOT_DIR", &shots.display().to_string()),
            ("UI_TEST_TIMEOUT_MS", "150000"),
        ],
    );
    assert!(ok, "the browser test failed:\n{text}");
    let pngs = std::fs::read_dir(&shots)
        .unwrap()
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "png")))
        .count();
    assert!(pngs >= 10, "screenshots taken: {pngs}\n{text}");
    drop(mc);
}

#[test]
fn the_web_ui_asks_for_the_bearer_token_when_the_api_needs_one() {
    let tests = repo_root().join("web/ui-tests");
    require_browser(&tests);
    let mut cfg = MiniClusterConfig::new(2, 1).with_rest();
    cfg.config.set("rest.port", "0").set("rest.auth.token", "ui-test-token");
    let mc = MiniCluster::start(cfg).expect("cluster with REST starts");
    let url = mc.rest_url().expect("REST is served");
    let (ok, out) = node(&tests.join("auth.test.mjs"), &[("BASE_URL", &url), ("TOKEN", "ui-test-token")]);
    assert!(ok, "the browser test failed:\n{out}");
}
