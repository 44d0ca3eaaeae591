//! FLIP-147 with real processes: a word count of one file at parallelism 2 (one split: the
//! second source subtask finishes at once) keeps taking checkpoints, and a run killed with
//! SIGKILL resumes from its latest checkpoint with exact counts.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn riffle() -> Command {
    Command::new(env!("CARGO_BIN_EXE_riffle"))
}

/// About 9 MB of text over a vocabulary of a few thousand words.
fn write_input(path: &Path) -> String {
    let mut text = String::with_capacity(9 << 20);
    for i in 0u64..360_000 {
        let a = i % 97;
        let b = (i * 7) % 1013;
        let c = (i * 13) % 4001;
        text.push_str(&format!("alpha{a} Beta{b}, gamma_{c}. w{}\n", i % 11));
    }
    std::fs::write(path, &text).unwrap();
    text
}

/// The completed checkpoints (`chk-<n>` with `_metadata`) under `root/<job>/`, by id.
fn completed(root: &Path) -> Vec<(u64, PathBuf)> {
    let mut v = Vec::new();
    for job in std::fs::read_dir(root).into_iter().flatten().flatten() {
        for chk in std::fs::read_dir(job.path()).into_iter().flatten().flatten() {
            let name = chk.file_name().to_string_lossy().to_string();
            let id = name.strip_prefix("chk-").and_then(|n| n.parse::<u64>().ok());
            if let (Some(id), true) = (id, chk.path().join("_metadata").is_file()) {
                v.push((id, chk.path()));
            }
        }
    }
    v.sort();
    v
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_parallel_file_word_count_checkpoints_after_a_source_finished_and_resumes_exactly_after_a_kill() {
    // The file is one split, so one source subtask has nothing to read (FLIP-147's case).
    kill_and_resume("64mb", true);
}

/// The same file in byte ranges read by both source subtasks: each one's position (a byte
/// offset in a split) is in the checkpoint, and the resumed job reads nothing twice.
#[test]
fn a_word_count_over_byte_ranges_of_one_file_resumes_exactly_after_a_kill() {
    kill_and_resume("1mb", false);
}

/// Runs the word count at parallelism 2 with `source.split-size` = `split_size`, kills it
/// after three completed checkpoints, resumes from the latest and checks exact counts; with
/// `one_split`, also that the latest checkpoint records the idle source subtask as finished.
fn kill_and_resume(split_size: &str, one_split: bool) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("big.txt");
    let text = write_input(&input);
    let checkpoints = dir.path().join("ck");
    let output = dir.path().join("out.txt");
    let args = |c: &mut Command| {
        c.args(["run", "wordcount", "--parallelism", "2", "--input"])
            .arg(&input)
            .arg("--output")
            .arg(&output)
            .arg("-D")
            .arg(format!("state.checkpoints.dir={}", checkpoints.display()))
            .args(["-D", "execution.checkpointing.interval=150ms"])
            .args(["-D", "state.checkpoints.num-retained=3"])
            .args(["-D", "execution.checkpointing.externalized-checkpoint-retention=RETAIN_ON_CANCELLATION"])
            .arg("-D")
            .arg(format!("source.split-size={split_size}"));
    };
    let mut first = riffle();
    args(&mut first);
    let mut child = KillOnDrop(first.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
    // Checkpoints keep completing (with one split: although source subtask 2 of 2 finished at
    // once).
    let deadline = Instant::now() + Duration::from_secs(120);
    let first_seen = loop {
        if let Some((id, _)) = completed(&checkpoints).first() {
            break *id;
        }
        assert!(child.0.try_wait().unwrap().is_none(), "the job ended before any checkpoint completed");
        assert!(Instant::now() < deadline, "no checkpoint completed");
        std::thread::sleep(Duration::from_millis(10));
    };
    let (latest, latest_dir) = loop {
        let all = completed(&checkpoints);
        if let Some((id, path)) = all.last().filter(|(id, _)| *id >= first_seen + 2) {
            break (*id, path.clone());
        }
        assert!(child.0.try_wait().unwrap().is_none(), "the job ended before three checkpoints completed");
        assert!(Instant::now() < deadline, "checkpoints stopped after {first_seen}");
        std::thread::sleep(Duration::from_millis(10));
    };
    child.0.kill().unwrap();
    let status = child.0.wait().unwrap();
    assert!(!status.success(), "killed before the end");
    // The latest checkpoint records the source subtask that had nothing to read as finished.
    let meta_path = latest_dir.join("_metadata");
    let meta = riffle_state::checkpoint_metadata::decode(&std::fs::read(&meta_path).unwrap(), &meta_path).unwrap();
    assert!(
        !one_split || meta.subtasks.iter().any(|s| s.vertex == 0 && s.finished),
        "checkpoint {latest}: {:?}",
        meta.subtasks.iter().map(|s| (s.vertex, s.subtask, s.finished)).collect::<Vec<_>>()
    );

    let mut resumed = riffle();
    args(&mut resumed);
    let job_dir = latest_dir.parent().unwrap().to_path_buf();
    let out = resumed.arg("--from-savepoint").arg(&job_dir).output().unwrap();
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let mut got = std::collections::HashMap::new();
    for line in std::fs::read_to_string(&output).unwrap().lines() {
        let (w, c) = line.rsplit_once(',').unwrap();
        assert!(got.insert(w.to_string(), c.parse::<u64>().unwrap()).is_none(), "{w} twice");
    }
    assert_eq!(got, riffle_scenarios::wordcount::reference_wordcount(&text), "exact counts after the kill");
}
