//! The `riffle` binary as a user runs it.

use std::process::Command;

fn riffle() -> Command {
    Command::new(env!("CARGO_BIN_EXE_riffle"))
}

#[test]
fn wordcount_writes_exact_counts() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    let output = dir.path().join("out.txt");
    std::fs::write(&input, "Hello hello, World!\nworld_wide web\n\nHELLO\n").unwrap();
    let out = riffle()
        .args(["run", "wordcount", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .args(["--parallelism", "2"])
        .output()
        .unwrap();
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let mut lines: Vec<String> = std::fs::read_to_string(&output).unwrap().lines().map(String::from).collect();
    lines.sort();
    assert_eq!(lines, ["hello,3", "web,1", "world,1", "world_wide,1"]);
}

#[test]
fn errors_are_one_line_with_a_non_zero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.txt");
    let out = riffle().args(["run", "wordcount", "--input"]).arg(&missing).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: cannot read input"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");

    for args in [
        vec!["run", "nexmark", "--query", "q9"],
        vec!["bench", "W1", "0", "1"],
        vec!["-D", "novalue", "run", "nexmark", "--query", "q1", "--events", "10"],
        vec!["-D", "slotmanager.number-of-slots.max=x", "run", "nexmark", "--query", "q1", "--events", "10"],
    ] {
        let out = riffle().args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("error: ") && err.trim_end().lines().count() == 1, "{args:?}: {err}");
    }
    // Unknown flags: clap's usage error, exit 2.
    let out = riffle().args(["run", "wordcount", "--bogus"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_failed_job_is_reported_in_one_line() {
    // Three slots needed, at most one allowed: the job fails with a clear root cause.
    let out = riffle()
        .args([
            "-D",
            "slotmanager.number-of-slots.max=1",
            "run",
            "nexmark",
            "--query",
            "q2",
            "--events",
            "1000",
            "-p",
            "3",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.trim_end().lines().last().unwrap_or("");
    assert!(last.starts_with("error: job FAILED") && last.contains("number-of-slots.max is 1"), "{err}");
}

#[test]
fn nexmark_q1_prints_converted_bids() {
    let out = riffle().args(["run", "nexmark", "--query", "q1", "--events", "3"]).output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    // bid(1) = {919, 4729, 32, 1700000000001}: 32 * 0.908 = 29.
    assert!(stdout.lines().any(|l| l == "919,4729,29,1700000000001"), "{stdout}");
    assert_eq!(stdout.lines().count(), 3);
}

#[test]
fn bench_prints_the_harness_result_line() {
    let out = riffle().args(["bench", "W2", "100000", "1", "--check"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(line.starts_with("engine=riffle workload=W2 events=100000 parallelism=1 seconds="), "{line}");
    assert!(line.contains(" events_per_sec=") && line.contains(" peak_rss_kb="), "{line}");
}
