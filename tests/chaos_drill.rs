//! `riffle run chaos-drill` in a short setting: a real 3-member ZooKeeper ensemble (Debian's,
//! `scripts/setup-tests` installs it), two JobManager and three TaskManager processes, eight
//! faults (two rounds of every kind: TaskManager SIGKILL, leader JobManager SIGKILL, ZooKeeper
//! member SIGKILL, TaskManager SIGSTOP/SIGCONT) while an exactly-once job runs; the committed
//! output must equal the failure-free result exactly.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

mod common;

use common::Proc;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/zookeeper.sh")
}

/// Stops the drill's ensemble even if the drill itself was killed (its servers run detached).
struct WorkDir(tempfile::TempDir);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let zk = self.0.path().join("zk");
        if zk.join("ensemble").is_file() {
            let _ = Command::new("timeout")
                .arg("60")
                .arg(script())
                .arg("ensemble")
                .arg("stop")
                .arg("--dir")
                .arg(&zk)
                .status();
        }
    }
}

#[test]
fn the_chaos_drill_survives_every_kind_of_fault_with_exactly_the_failure_free_output() {
    let ok = Command::new(script()).arg("check").output().is_ok_and(|o| o.status.success());
    assert!(ok, "ZooKeeper is not installed: run scripts/setup-tests once");
    let work = WorkDir(tempfile::tempdir().unwrap());
    let seed = std::env::var("RIFFLE_CHAOS_SEED").unwrap_or_else(|_| "13".into());
    let mut child = Command::new(env!("CARGO_BIN_EXE_riffle"))
        .args(["run", "chaos-drill", "--duration", "40s", "--faults", "8", "--events", "360000", "--seed", &seed])
        .arg("--zookeeper-script")
        .arg(script())
        .arg("--work-dir")
        .arg(work.0.path().join("drill"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("riffle starts");
    let (out, err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let mut drill = Proc(child);
    let (tx, rx) = channel();
    let tx2 = tx.clone();
    std::thread::spawn(move || BufReader::new(out).lines().map_while(Result::ok).for_each(|l| drop(tx.send(l))));
    std::thread::spawn(move || BufReader::new(err).lines().map_while(Result::ok).for_each(|l| drop(tx2.send(l))));
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut lines = Vec::new();
    let status = loop {
        while let Ok(l) = rx.try_recv() {
            eprintln!("{l}");
            lines.push(l);
        }
        if let Some(s) = drill.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the drill did not end within 10 minutes");
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_millis(200));
    lines.extend(rx.try_iter().inspect(|l| eprintln!("{l}")));
    assert!(status.success(), "the drill failed ({status}); its output is above");
    let result =
        lines.iter().find_map(|l| l.strip_prefix("chaos-drill-result: ")).expect("the drill prints its result");
    let field = |name: &str| -> usize {
        result
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {result}"))
    };
    assert!(result.contains("exact=true"), "{result}");
    assert_eq!(field("lines"), 360_000, "{result}");
    for kind in ["tm-kill", "jm-kill", "zk-kill", "tm-freeze"] {
        assert!(field(kind) >= 1, "no {kind} fault: {result}");
    }
    assert_eq!(["tm-kill", "jm-kill", "zk-kill", "tm-freeze"].iter().map(|k| field(k)).sum::<usize>(), 8, "{result}");
}
