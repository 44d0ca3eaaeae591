//! The exactly-once drill at test size: failures injected at random points, committed output
//! compared line by line with the failure-free result.

use riffle_api::Configuration;
use riffle_scenarios::drill::{committed_lines, committed_lines_of, expected_lines, run, DrillOptions, DrillSink};

fn options(dir: &std::path::Path, parallelism: u32, seed: u64) -> DrillOptions {
    DrillOptions {
        events: 40_000,
        keys: 37,
        failures: 3,
        seed,
        parallelism,
        output: dir.join("out"),
        rate_per_ms: 20,
        source_rate_per_s: 0,
        sink: Default::default(),
    }
}

fn drill(parallelism: u32, seed: u64, conf: &Configuration) {
    drill_with_keys(parallelism, seed, 37, conf)
}

fn drill_with_keys(parallelism: u32, seed: u64, keys: u64, conf: &Configuration) {
    let dir = tempfile::tempdir().unwrap();
    let o = DrillOptions { keys, ..options(dir.path(), parallelism, seed) };
    let report = run(&o, conf).unwrap_or_else(|e| panic!("drill failed: {e}"));
    assert_eq!(report.failures, 3);
    assert_eq!(report.lines, 40_000);
    assert!(report.processed > 40_000, "failures made the job replay records: {}", report.processed);
    assert_eq!(committed_lines(&o.output).unwrap(), expected_lines(40_000, keys));
    let hidden: Vec<_> = std::fs::read_dir(&o.output)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "no in-progress or pending files left: {hidden:?}");
}

#[test]
fn exactly_once_with_aligned_checkpoints_in_memory() {
    drill(2, 11, &Configuration::new());
}

#[test]
fn exactly_once_with_checkpoints_in_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Configuration::new();
    c.set("state.checkpoints.dir", dir.path().display().to_string()).set("state.storage.fs.memory-threshold", "0");
    drill(1, 5, &c);
}

#[test]
fn exactly_once_with_unaligned_checkpoints() {
    let mut c = Configuration::new();
    c.set("execution.checkpointing.unaligned", "true");
    drill(2, 17, &c);
}

#[test]
fn exactly_once_with_unaligned_checkpoints_in_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Configuration::new();
    c.set("execution.checkpointing.unaligned", "true")
        .set("state.checkpoints.dir", dir.path().display().to_string())
        .set("state.storage.fs.memory-threshold", "0");
    drill(3, 31, &c);
}

/// A backend under a budget far below the state's size (4000 keys of about 27 bytes each in
/// memory, about 54 KiB per subtask): key switches load spilled key groups and evict others,
/// through failures and restores.
fn drill_on_backend(backend: &str, budget: &str, seed: u64) {
    let state_dir = tempfile::tempdir().unwrap();
    let mut c = Configuration::new();
    c.set("state.backend", backend)
        .set("state.backend.memory-budget", budget)
        .set("state.backend.key-groups", "16")
        .set("state.backend.dir", state_dir.path().display().to_string());
    drill_with_keys(2, seed, 4000, &c);
    let left: Vec<_> = std::fs::read_dir(state_dir.path()).unwrap().filter_map(|e| e.ok()).map(|e| e.path()).collect();
    assert!(left.is_empty(), "every store removed its directory when its task ended: {left:?}");
}

#[test]
fn exactly_once_on_the_spillable_heap_under_a_tiny_budget() {
    drill_on_backend("spillable-heap", "16 kb", 23);
}

#[test]
fn exactly_once_on_sled_under_a_tiny_budget() {
    // sled copies a tree node per write: a budget closer to the state keeps the test short.
    drill_on_backend("sled", "40 kb", 29);
}

#[test]
fn a_bad_backend_fails_the_job_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let o = options(dir.path(), 1, 1);
    let mut c = Configuration::new();
    c.set("state.backend", "rocksdb").set("restart-strategy", "none");
    let err = run(&o, &c).unwrap_err().to_string();
    assert!(err.contains("state.backend") && err.contains("rocksdb"), "{err}");
}

#[test]
fn a_non_empty_output_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let o = options(dir.path(), 1, 1);
    std::fs::create_dir_all(&o.output).unwrap();
    std::fs::write(o.output.join("part-0-0"), "x").unwrap();
    let err = run(&o, &Configuration::new()).unwrap_err().to_string();
    assert!(err.contains("not empty"), "{err}");
}

/// The drill through riffle-connectors' file sink: the committed rows, read back with
/// riffle's readers, are exactly the failure-free counts; nothing is left in progress.
fn file_sink_drill(sink: DrillSink) {
    let dir = tempfile::tempdir().unwrap();
    let o = DrillOptions { events: 10_000, rate_per_ms: 10, sink, ..options(dir.path(), 2, 11) };
    let report = run(&o, &Configuration::new()).unwrap_or_else(|e| panic!("{sink:?} drill failed: {e}"));
    assert_eq!(report.failures, 3);
    assert_eq!(report.lines, 10_000);
    assert!(report.processed > 10_000, "failures made the job replay records: {}", report.processed);
    assert_eq!(committed_lines_of(&o.output, sink).unwrap(), expected_lines(10_000, 37));
    let mut dirs = vec![o.output.clone()];
    let mut partitions = Vec::new();
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            assert!(!name.starts_with('.'), "no in-progress or pending file left: {name}");
            if e.file_type().unwrap().is_dir() {
                partitions.push(name);
                dirs.push(e.path());
            }
        }
    }
    if sink == DrillSink::CsvPartitioned {
        partitions.sort();
        assert_eq!(partitions, ["bucket=0", "bucket=1", "bucket=2", "bucket=3"]);
        for p in &partitions {
            assert!(o.output.join(p).join("_SUCCESS").is_file(), "{p} committed");
        }
    } else {
        assert!(partitions.is_empty());
    }
}

#[test]
fn the_drill_is_exact_through_the_parquet_file_sink() {
    file_sink_drill(DrillSink::Parquet);
}

#[test]
fn the_drill_is_exact_through_the_partitioned_csv_file_sink() {
    file_sink_drill(DrillSink::CsvPartitioned);
}
