//! The `riffle` binary as a user runs it.

mod common;

use common::{sums_totals, template_plugin};
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

#[test]
fn the_exactly_once_drill_passes_with_injected_failures() {
    let dir = tempfile::tempdir().unwrap();
    let out = riffle()
        .args(["run", "exactly-once-drill", "--events", "30000", "--keys", "17", "--failures", "2", "-p", "2"])
        .args(["--rate", "30", "--output"])
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("exactly-once drill OK: 30000 lines") && stdout.contains("2 injected failures"),
        "{stdout}"
    );
}

/// A `riffle run` killed with SIGKILL resumes from its latest retained checkpoint with
/// `--from-savepoint`, and the committed output of both runs together is exact.
#[test]
fn a_killed_run_resumes_from_its_latest_checkpoint() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let checkpoints = dir.path().join("checkpoints");
    let output = dir.path().join("out");
    let args = |c: &mut Command| {
        c.args(["run", "exactly-once-drill", "--events", "40000", "--keys", "13", "--failures", "0", "-p", "2"])
            .args(["--rate", "5", "--output"])
            .arg(&output)
            .arg("-D")
            .arg(format!("state.checkpoints.dir={}", checkpoints.display()))
            .args(["-D", "execution.checkpointing.interval=100 ms"]);
    };
    let mut first = riffle();
    args(&mut first);
    let mut child = first.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    // Wait for two completed checkpoints, then kill the process outright.
    let completed = |root: &std::path::Path| -> Vec<std::path::PathBuf> {
        let mut v = Vec::new();
        for job in std::fs::read_dir(root).into_iter().flatten().flatten() {
            for chk in std::fs::read_dir(job.path()).into_iter().flatten().flatten() {
                if chk.path().join("_metadata").exists() {
                    v.push(job.path());
                }
            }
        }
        v
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let job_dir = loop {
        if let Some(j) = completed(&checkpoints).first() {
            break j.clone();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("no checkpoint completed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_millis(250));
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed before the end");
    let mut resumed = riffle();
    args(&mut resumed);
    let out = resumed.arg("--from-savepoint").arg(&job_dir).output().unwrap();
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("exactly-once drill OK: 40000 lines"), "{stdout}");
    // It resumed instead of starting over: it processed only what the checkpoint had not.
    let processed: u64 = stdout
        .split('(')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no record count in {stdout}"));
    assert!(processed > 0 && processed < 40000, "the resumed run processed {processed} records");
}

#[test]
fn keys_riffle_reads_are_not_reported_and_config_docs_prints_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let upload = dir.path().join("upload");
    let out = riffle()
        .args(["-D", "restart-strategy.exponential-delay.jitter-factor=0.2", "-D", "high-availability.type=NONE"])
        .args(["-D", "high-availability=NONE", "-D"])
        .arg(format!("web.upload.dir={}", upload.display()))
        .args(["run", "wordcount", "--events", "10", "--output"])
        .arg(dir.path().join("out.txt"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    assert!(!stderr.contains("unknown configuration key"), "{stderr}");
    let out = riffle().arg("config-docs").output().unwrap();
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/configuration.md")).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), page);
}

#[test]
fn a_yaml_config_file_is_read_overridden_by_d_and_typos_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("config.yaml");
    // Nested and flat keys; a bad restart strategy in the file is overridden by -D; one typo.
    std::fs::write(
        &conf,
        "taskmanager:\n  numberOfTaskSlots: 2\nrestart-strategy: bogus\nexecution.checkpointing.intervall: 1 s\n",
    )
    .unwrap();
    let output = dir.path().join("out.txt");
    let out = riffle()
        .arg("--config")
        .arg(&conf)
        .args(["-D", "restart-strategy=none", "run", "wordcount", "--events", "1000", "--parallelism", "2", "--output"])
        .arg(&output)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    assert!(
        stderr.contains("unknown configuration key 'execution.checkpointing.intervall' (ignored; did you mean 'execution.checkpointing.interval'?)"),
        "{stderr}"
    );
    let total: u64 = std::fs::read_to_string(&output)
        .unwrap()
        .lines()
        .map(|l| l.rsplit(',').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, 1000);
    // Without the override, the file's bad value is refused naming its key.
    let out = riffle().arg("--config").arg(&conf).args(["run", "wordcount", "--events", "10"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("restart-strategy"), "{stderr}");
    // A broken file is one clear error.
    std::fs::write(&conf, "key: [unclosed\n").unwrap();
    let out = riffle().arg("--config").arg(&conf).args(["run", "wordcount", "--events", "10"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("not valid YAML") && stderr.lines().count() == 1, "{stderr}");
}

#[test]
fn a_plugin_job_runs_from_the_command_line_and_bad_plugins_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sums.txt");
    let lib = template_plugin();
    let o =
        riffle().args(["run", "--plugin"]).arg(&lib).args(["--entry", "sums", "100", "3"]).arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(sums_totals(&out), [(0, 1683), (1, 1617), (2, 1650)]);
    let junk = dir.path().join("junk.so");
    std::fs::write(&junk, b"not a shared library").unwrap();
    for (plugin, entry, want) in [
        (lib.clone(), "nope", "has no job 'nope'"),
        (junk, "sums", "not a loadable library"),
        (dir.path().join("missing.so"), "sums", "cannot read"),
    ] {
        let o = riffle().args(["run", "--plugin"]).arg(&plugin).args(["--entry", entry]).output().unwrap();
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && e.contains(want) && e.lines().count() == 1, "{e}");
    }
}

#[test]
fn run_application_starts_a_cluster_for_one_plugin_job_and_shuts_it_down() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sums.txt");
    let lib = template_plugin();
    let o = riffle()
        .args(["run-application", "--plugin"])
        .arg(&lib)
        .args(["--entry", "sums", "--taskmanagers", "2", "--slots", "1", "100", "3"])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("cluster shut down"), "{stderr}");
    assert_eq!(sums_totals(&out), [(0, 1683), (1, 1617), (2, 1650)]);
    // The TaskManager processes ended with the application.
    let stdout = String::from_utf8_lossy(&o.stdout);
    for pid in stdout.lines().filter_map(|l| l.rsplit_once("pid ").and_then(|(_, p)| p.trim().parse::<u32>().ok())) {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists() || {
                std::thread::sleep(std::time::Duration::from_millis(500));
                !std::path::Path::new(&format!("/proc/{pid}")).exists()
            },
            "TaskManager {pid} outlived the application"
        );
    }
    // A library that is no plugin: one error line, nothing started.
    let junk = dir.path().join("junk.so");
    std::fs::write(&junk, b"not a library").unwrap();
    let o = riffle().args(["run-application", "--plugin"]).arg(&junk).args(["--entry", "sums"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && stderr.lines().count() == 1 && stderr.starts_with("error:"), "{stderr}");
}

#[test]
fn run_application_takes_a_remote_artifact_that_each_task_manager_fetches_itself() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sums.txt");
    let shared = dir.path().join("shared-store");
    std::fs::create_dir_all(&shared).unwrap();
    let lib = shared.join("sums.so");
    std::fs::copy(template_plugin(), &lib).unwrap();
    let blob = dir.path().join("blob");
    let o = riffle()
        .args(["-D", &format!("blob.storage.directory={}", blob.display())])
        .args(["run-application", "--plugin", &format!("file://{}", lib.display())])
        .args(["--entry", "sums", "--taskmanagers", "2", "--slots", "1", "100", "3"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(sums_totals(&out), [(0, 1683), (1, 1617), (2, 1650)]);
    // The TaskManagers cached the library under its digest, fetched from the URL.
    let cached: Vec<String> = std::fs::read_dir(&blob)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    // A scheme this build has no store for: one clear line.
    let o = riffle().args(["run-application", "--plugin", "s3://bucket/lib.so", "--entry", "sums"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && stderr.contains("scheme 's3'") && stderr.lines().count() == 1, "{stderr}");
}
