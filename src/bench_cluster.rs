//! `riffle bench-cluster`: a benchmark workload on a `local-cluster` of one-slot TaskManager
//! processes, one per parallel subtask, so every keyed exchange crosses the network. Prints
//! the same result line as `riffle bench` (engine `riffle-cluster`).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::rest_client;

struct Cluster(Child);

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `workload` over `events` at `parallelism` and returns (seconds, events/s).
pub fn run(workload: &str, events: u64, parallelism: u32, defines: &[String]) -> Result<(f64, f64)> {
    let exe = std::env::current_exe().context("cannot find riffle's own executable")?;
    let mut cmd = Command::new(exe);
    cmd.args(["local-cluster", "--taskmanagers", &parallelism.to_string(), "--slots", "1", "-D", "rest.port=0"]);
    for d in defines {
        cmd.args(["-D", d]);
    }
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().context("cannot start local-cluster")?;
    let stdout = child.stdout.take().context("no stdout of local-cluster")?;
    let cluster = Cluster(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let address = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .context("local-cluster did not announce its REST address")?;
        if let Some(rest) = line.split("http://").nth(1) {
            break rest.split('/').next().unwrap_or_default().to_string();
        }
    };
    loop {
        let tms = rest_client::call(&address, "GET", "/taskmanagers", None)?;
        if tms.body["taskmanagers"].as_array().map_or(0, Vec::len) >= parallelism as usize {
            break;
        }
        if Instant::now() > deadline {
            bail!("the TaskManagers did not register in time");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let body = json!({
        "programArgsList": ["--workload", workload, "--events", events.to_string()],
        "parallelism": parallelism,
    });
    let submitted = rest_client::call(&address, "POST", "/programs/bench/run", Some(&body))?;
    let job = submitted.body["jobid"].as_str().context("the cluster sent no job id")?.to_string();
    loop {
        let j = rest_client::call(&address, "GET", &format!("/jobs/{job}"), None)?;
        match j.body["state"].as_str().unwrap_or("") {
            "FINISHED" => {
                let ms = j.body["duration"].as_f64().unwrap_or(0.0).max(1.0);
                drop(cluster);
                let seconds = ms / 1000.0;
                return Ok((seconds, events as f64 / seconds));
            }
            s @ ("FAILED" | "CANCELED") => bail!("the benchmark job ended {s}"),
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}
