//! Continuous file sources (`source.monitor-interval`): files added to a directory while the
//! job runs are read exactly once — across a failover and a stop-with-savepoint and resume —
//! and globs select exactly their files. Files are added as users must: written under a
//! hidden name, then renamed.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{sorted, WAIT};
use riffle_api::{Configuration, StreamEnvironment};
use riffle_cluster::{JobHandle, JobStatus, MiniCluster, MiniClusterConfig};

/// Lines per input file (about 14 KB: several byte-range splits of 4 KB).
const LINES: usize = 1500;

fn lines_of(file: usize) -> Vec<String> {
    (0..LINES).map(|j| format!("f{file}-{j}")).collect()
}

/// Writes input file `file` into `dir` atomically: a hidden temporary name, then a rename.
fn add_file(dir: &Path, file: usize) {
    let tmp = dir.join(format!(".f{file}.txt.tmp"));
    std::fs::write(&tmp, lines_of(file).join("\n") + "\n").unwrap();
    std::fs::rename(&tmp, dir.join(format!("f{file}.txt"))).unwrap();
}

fn expected(files: std::ops::Range<usize>) -> Vec<String> {
    sorted(files.flat_map(lines_of).collect())
}

/// The lines of the sink's committed part files (hidden in-progress files are not output).
fn committed(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if let Ok(text) = std::fs::read_to_string(e.path()) {
            out.extend(text.lines().map(str::to_string));
        }
    }
    out
}

/// Waits until `n` lines are committed, then a few checkpoints more (a duplicate would show),
/// and returns them sorted.
fn wait_for_lines(dir: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while committed(dir).len() < n {
        assert!(Instant::now() < deadline, "only {} of {n} lines were committed", committed(dir).len());
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(400));
    sorted(committed(dir))
}

fn cluster_with(kv: &[(&str, &str)]) -> MiniCluster {
    let mut cfg = MiniClusterConfig::new(1, 4);
    cfg.config.set("execution.checkpointing.interval", "30 ms");
    for (k, v) in kv {
        cfg.config.set(*k, *v);
    }
    MiniCluster::start(cfg).expect("mini cluster starts")
}

/// `read_text_file(input)` with `source.monitor-interval` set, every line through `map` into
/// the exactly-once text sink at `out`.
fn monitoring_job(
    input: &Path,
    out: &Path,
    savepoint: Option<&Path>,
    map: impl Fn(String) -> String + Send + Sync + Clone + 'static,
) -> StreamEnvironment {
    let mut conf = Configuration::new();
    conf.set("source.monitor-interval", "50 ms");
    conf.set("source.split-size", "4kb");
    if let Some(sp) = savepoint {
        conf.set("execution.savepoint.path", sp.display().to_string());
    }
    let mut env = StreamEnvironment::with_config(conf);
    env.set_parallelism(2);
    env.read_text_file(input)
        .map(map)
        .name("lines")
        .write_as_text_exactly_once(out.to_path_buf(), |l: &String| l.clone());
    env
}

fn wait_checkpoints(mc: &MiniCluster, h: &JobHandle, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while mc.checkpoint_stats(h.job_id()).completed < n {
        assert!(Instant::now() < deadline, "no checkpoints: {:?}", mc.checkpoint_stats(h.job_id()));
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn dirs() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let out = dir.path().join("out");
    std::fs::create_dir(&input).unwrap();
    (dir, input, out)
}

#[test]
fn a_continuous_job_reads_every_file_added_while_it_runs_exactly_once() {
    let mc = cluster_with(&[]);
    let (_dir, input, out) = dirs();
    add_file(&input, 0);
    add_file(&input, 1);
    // Being written (hidden), a marker file and a file the glob does not match: never read.
    std::fs::write(input.join(".f99.txt.tmp"), "half a file\n").unwrap();
    std::fs::write(input.join("_f98.txt"), "marker\n").unwrap();
    std::fs::write(input.join("g.txt"), "not matched\n").unwrap();
    // Flink's readFile(..., PROCESS_CONTINUOUSLY, interval), over a glob.
    let mut conf = Configuration::new();
    conf.set("source.split-size", "4kb");
    let mut env = StreamEnvironment::with_config(conf);
    env.set_parallelism(2);
    env.monitor_text_files(input.join("f*.txt"), Duration::from_millis(50))
        .write_as_text_exactly_once(out.clone(), |l: &String| l.clone());
    let h = mc.submit(env.build_job_graph("monitor").unwrap()).unwrap();
    assert_eq!(wait_for_lines(&out, 2 * LINES), expected(0..2));
    for f in 2..6 {
        add_file(&input, f);
        std::thread::sleep(Duration::from_millis(60));
    }
    assert_eq!(wait_for_lines(&out, 6 * LINES), expected(0..6), "each line of each file exactly once");
    // Continuous: the source has not ended; it still picks up files.
    add_file(&input, 6);
    assert_eq!(wait_for_lines(&out, 7 * LINES), expected(0..7));
    let listed = mc.list_jobs().unwrap();
    assert!(listed.iter().any(|j| j.job_id == h.job_id() && j.status == JobStatus::Running), "{listed:?}");
    h.cancel().unwrap();
    assert_eq!(h.wait(WAIT).unwrap().status, JobStatus::Canceled);
}

#[test]
fn after_a_failure_the_restored_enumerator_reads_no_file_twice_and_misses_none() {
    static ARMED: AtomicBool = AtomicBool::new(false);
    static FAILED: AtomicBool = AtomicBool::new(false);
    let mc = cluster_with(&[
        ("restart-strategy", "fixed-delay"),
        ("restart-strategy.fixed-delay.attempts", "1"),
        ("restart-strategy.fixed-delay.delay", "10 ms"),
    ]);
    let (_dir, input, out) = dirs();
    for f in 0..3 {
        add_file(&input, f);
    }
    let env = monitoring_job(&input, &out, None, |l| {
        if ARMED.load(Ordering::SeqCst) && !FAILED.swap(true, Ordering::SeqCst) {
            panic!("injected failure at {l}");
        }
        l
    });
    let h = mc.submit(env.build_job_graph("monitor with a failure").unwrap()).unwrap();
    assert_eq!(wait_for_lines(&out, 3 * LINES), expected(0..3));
    // A file already read grows in place: it is never read again, not even by the restarted
    // job (the paths seen are in the checkpoint).
    let mut grown = std::fs::OpenOptions::new().append(true).open(input.join("f0.txt")).unwrap();
    std::io::Write::write_all(&mut grown, "f0-appended\n".repeat(2000).as_bytes()).unwrap();
    drop(grown);
    let before = mc.checkpoint_stats(h.job_id()).completed;
    wait_checkpoints(&mc, &h, before + 2);
    // The next line read fails the job: in the middle of the files added now.
    ARMED.store(true, Ordering::SeqCst);
    for f in 3..6 {
        add_file(&input, f);
        std::thread::sleep(Duration::from_millis(40));
    }
    assert_eq!(wait_for_lines(&out, 6 * LINES), expected(0..6));
    assert!(FAILED.load(Ordering::SeqCst), "the failure was injected");
    // Files added after the restart too.
    add_file(&input, 6);
    assert_eq!(wait_for_lines(&out, 7 * LINES), expected(0..7), "exactly once across the failover");
    let history = mc.exception_history(h.job_id(), 0, 10).unwrap();
    assert!(history.entries.iter().any(|e| e.is_root_cause && e.exception.contains("injected failure")));
    h.cancel().unwrap();
    assert_eq!(h.wait(WAIT).unwrap().status, JobStatus::Canceled);
}

#[test]
fn stop_with_savepoint_then_resume_picks_up_the_files_added_in_between_exactly_once() {
    let mc = cluster_with(&[]);
    let (dir, input, out) = dirs();
    for f in 0..2 {
        add_file(&input, f);
    }
    let env = monitoring_job(&input, &out, None, |l| l);
    let h = mc.submit(env.build_job_graph("monitor, first run").unwrap()).unwrap();
    assert_eq!(wait_for_lines(&out, 2 * LINES), expected(0..2));
    let sp = common::savepoint_with_retry(|| h.stop_with_savepoint(Some(dir.path().join("sp"))));
    assert_eq!(h.wait(WAIT).unwrap().status, JobStatus::Finished, "stopped");
    // The enumerator's state is in the savepoint: the two files it saw.
    let meta_path = sp.join(riffle_state::checkpoint_metadata::METADATA_FILE);
    let meta = riffle_state::checkpoint_metadata::decode(&std::fs::read(&meta_path).unwrap(), &meta_path).unwrap();
    assert_eq!(meta.enumerators.len(), 1);

    // Added while no job runs; and a file already read grows (appended in place, several
    // splits' worth): a file seen is never read again.
    for f in 2..4 {
        add_file(&input, f);
    }
    let mut grown = std::fs::OpenOptions::new().append(true).open(input.join("f0.txt")).unwrap();
    std::io::Write::write_all(&mut grown, "f0-appended\n".repeat(2000).as_bytes()).unwrap();
    drop(grown);
    let env = monitoring_job(&input, &out, Some(&sp), |l| l);
    let h = mc.submit(env.build_job_graph("monitor, resumed").unwrap()).unwrap();
    assert_eq!(wait_for_lines(&out, 4 * LINES), expected(0..4), "the old files not again, the new ones once");
    add_file(&input, 4);
    assert_eq!(wait_for_lines(&out, 5 * LINES), expected(0..5));
    h.cancel().unwrap();
    assert_eq!(h.wait(WAIT).unwrap().status, JobStatus::Canceled);
}

#[test]
fn a_glob_reads_exactly_its_files_and_one_matching_nothing_fails_the_job_clearly() {
    let mc = common::cluster(1, 2);
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in
        [("a.csv", "a1\na2\n"), ("b.csv", "b1\n"), ("c.txt", "c1\n"), ("sub/d.csv", "d1\n"), (".e.csv", "e1\n")]
    {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let mut env = StreamEnvironment::new();
    env.set_parallelism(2);
    let out = env.read_text_file(dir.path().join("*.csv")).collect();
    assert_eq!(sorted(common::run(&mc, &env, out)), ["a1", "a2", "b1"]);
    // A directory: every file under it, nested ones too, hidden ones not.
    let mut env = StreamEnvironment::new();
    let out = env.read_text_file(dir.path()).collect();
    env.set_parallelism(1);
    assert_eq!(sorted(common::run(&mc, &env, out)), ["a1", "a2", "b1", "c1", "d1"]);

    let none = dir.path().join("*.parquet");
    let env = StreamEnvironment::new();
    let out = env.read_text_file(&none).collect();
    let (got, r) = common::run_result(&mc, &env, out);
    assert!(got.is_empty());
    assert_eq!(r.status, JobStatus::Failed);
    let err = r.error.unwrap_or_default();
    assert!(err.contains(&format!("the glob '{}' matches no file", none.display())), "{err}");

    let missing = dir.path().join("missing");
    let env = StreamEnvironment::new();
    let out = env.read_text_file(&missing).collect();
    let (_, r) = common::run_result(&mc, &env, out);
    assert_eq!(r.status, JobStatus::Failed);
    let err = r.error.unwrap_or_default();
    assert!(err.contains(&format!("cannot read input '{}'", missing.display())), "{err}");
}

/// An enumerator with nothing to hand out for a while: counts the requests, gives a split at
/// the sixth.
struct Late(&'static std::sync::atomic::AtomicU64);

impl riffle_api::source::SplitEnumerator<u64> for Late {
    fn handle_split_request(&mut self, _: u32) -> Result<riffle_api::source::Assignment<u64>, riffle_api::UserError> {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(riffle_api::source::Assignment { splits: if n == 6 { vec![42] } else { vec![] }, no_more_splits: false })
    }
    fn add_splits_back(&mut self, _: Vec<u64>, _: u32) {}
    fn restore(&mut self, _: &[String]) {}
}

/// Emits its splits' numbers; asks for splits whenever it has none.
#[derive(Default)]
struct Echo(Vec<u64>);

impl riffle_api::source::SourceReader<u64, u64> for Echo {
    fn add_splits(&mut self, splits: Vec<u64>) {
        self.0.extend(splits);
    }
    fn notify_no_more_splits(&mut self) {}
    fn poll_next(
        &mut self,
        out: &mut dyn riffle_api::source::SourceOutput<u64>,
    ) -> Result<riffle_api::source::ReadStatus, riffle_api::UserError> {
        match self.0.pop() {
            Some(v) => {
                out.collect(v);
                Ok(riffle_api::source::ReadStatus::MoreAvailable)
            }
            None => Ok(riffle_api::source::ReadStatus::NeedSplits),
        }
    }
    fn snapshot_state(&mut self) -> riffle_api::source::ReaderState<u64> {
        riffle_api::source::ReaderState { unfinished: self.0.clone(), finished: vec![] }
    }
}

struct LateSource(&'static std::sync::atomic::AtomicU64);

impl riffle_api::source::Source<u64> for LateSource {
    type Split = u64;
    fn boundedness(&self) -> riffle_api::source::Boundedness {
        riffle_api::source::Boundedness::Unbounded
    }
    fn create_enumerator(
        &self,
        _: u32,
    ) -> Result<Box<dyn riffle_api::source::SplitEnumerator<u64>>, riffle_api::UserError> {
        Ok(Box::new(Late(self.0)))
    }
    fn create_reader(
        &self,
        _: u32,
    ) -> Result<Box<dyn riffle_api::source::SourceReader<u64, u64>>, riffle_api::UserError> {
        Ok(Box::new(Echo::default()))
    }
}

/// The runtime's side of continuous sources: a reader the enumerator had nothing for asks
/// again later (so a split found later reaches it), after a growing wait rather than in a
/// busy loop.
#[test]
fn a_reader_without_splits_asks_again_after_a_growing_wait() {
    static REQUESTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    static GOT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mc = common::cluster(1, 1);
    let mut env = StreamEnvironment::new();
    env.set_parallelism(1);
    env.from_source(LateSource(&REQUESTS), "late")
        .map(|v: u64| {
            GOT.store(v, Ordering::SeqCst);
            v
        })
        .discard();
    let h = mc.submit(env.build_job_graph("late splits").unwrap()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while GOT.load(Ordering::SeqCst) != 42 {
        assert!(Instant::now() < deadline, "the split given at the sixth request never arrived");
        std::thread::sleep(Duration::from_millis(5));
    }
    let at = REQUESTS.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(1));
    let idle = REQUESTS.load(Ordering::SeqCst) - at;
    // 10, 20, 40, ... 200 ms between requests: about 5 a second once idle (a busy loop: many
    // thousands).
    assert!((2..=15).contains(&idle), "{idle} requests in an idle second");
    h.cancel().unwrap();
    assert_eq!(h.wait(WAIT).unwrap().status, JobStatus::Canceled);
}
