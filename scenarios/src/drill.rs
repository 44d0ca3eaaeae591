//! The exactly-once drill: counts events per key from a bounded generator while failures are
//! injected at random points, writes every running count through the exactly-once file sink,
//! and checks that the committed output is exactly that of a run without failures — no line
//! lost, none twice.
//!
//! Each event `i` of `0..events` belongs to key `i % keys`; the job emits `key,n` when key's
//! n-th event is counted, so the failure-free output is known in closed form: for every key,
//! the lines `key,1` … `key,count(key)`. A failure is a panic in an operator when the
//! job-wide number of processed records (replays included) reaches a threshold; the job then
//! restarts from its latest checkpoint. Thresholds are spread over the first nine tenths of
//! the input, so every one fires.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use riffle_api::{Configuration, KeyedProcessFunction, ProcessContext, StreamEnvironment, UserError};
use riffle_connectors::sink::{FileSink, FileSinkExt, FileSinkSpec};
use riffle_connectors::Rows;
use serde::{Deserialize, Serialize};

use crate::ScenarioError;

/// How to run the drill.
#[derive(Debug, Clone)]
pub struct DrillOptions {
    /// Events generated (bounded input).
    pub events: u64,
    /// Distinct keys.
    pub keys: u64,
    /// Failures injected.
    pub failures: usize,
    /// Seed of the failure points.
    pub seed: u64,
    /// Parallelism.
    pub parallelism: u32,
    /// Where the committed part files go (must not exist or be empty).
    pub output: PathBuf,
    /// Records per millisecond each source subtask emits at most (spreads the run over time
    /// so that checkpoints complete between failures); 0: unthrottled.
    pub rate_per_ms: u64,
    /// Records per second each source subtask emits at most, paced in the source itself
    /// (it waits without holding its slot's thread, unlike `rate_per_ms`'s sleeps); 0: unpaced.
    pub source_rate_per_s: u64,
    /// Which exactly-once sink writes the running counts.
    pub sink: DrillSink,
}

/// The sink the drill writes through: the text sink of riffle-api, or riffle-connectors'
/// file sink (`key,count` rows as Parquet, or as CSV partitioned by `bucket` = key mod 4 with
/// success files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DrillSink {
    /// `ExactlyOnceTextFileSink`: one `key,count` line per record.
    #[default]
    Text,
    /// `FileSink` writing Parquet.
    Parquet,
    /// `FileSink` writing CSV under `bucket=<key mod 4>` directories, committed with `_SUCCESS`.
    CsvPartitioned,
}

impl std::str::FromStr for DrillSink {
    type Err = ScenarioError;
    fn from_str(s: &str) -> Result<Self, ScenarioError> {
        match s.trim() {
            "" | "text" => Ok(DrillSink::Text),
            "parquet" => Ok(DrillSink::Parquet),
            "csv-partitioned" => Ok(DrillSink::CsvPartitioned),
            other => Err(ScenarioError::Invalid(format!("unknown sink '{other}' (text, parquet, csv-partitioned)"))),
        }
    }
}

/// A running count as a row of the file sinks.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CountRow {
    key: u64,
    count: u64,
    bucket: String,
}

/// The part of a running count the partitioned CSV files hold (`bucket` is the directory).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CountData {
    key: u64,
    count: u64,
}

/// `key,count` (what [`RunningCount`] emits) as one row; `bucketed`: with the partition
/// column.
fn count_row(line: &str, bucketed: bool) -> Rows {
    let (k, n) = line.split_once(',').unwrap_or((line, "0"));
    let (key, count) = (k.parse().unwrap_or(u64::MAX), n.parse().unwrap_or(0));
    // Fixed structs of integers and a string always convert.
    if bucketed {
        Rows::from_records(&[CountRow { key, count, bucket: (key % 4).to_string() }]).expect("a count row converts")
    } else {
        Rows::from_records(&[CountData { key, count }]).expect("a count row converts")
    }
}

/// What the drill saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrillReport {
    /// Failures injected (and survived).
    pub failures: usize,
    /// Lines in the committed output.
    pub lines: usize,
    /// Records processed, replays included.
    pub processed: u64,
}

/// Injects failures: shared by every subtask and every attempt of the job.
struct Injector {
    thresholds: Vec<u64>,
    next: AtomicUsize,
    processed: AtomicU64,
}

impl Injector {
    fn new(o: &DrillOptions) -> Self {
        // SplitMix64: deterministic failure points from the seed.
        let mut x = o.seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let span = (o.events * 9 / 10).max(1);
        let mut thresholds: Vec<u64> = (0..o.failures).map(|_| 1 + next() % span).collect();
        thresholds.sort_unstable();
        Self { thresholds, next: AtomicUsize::new(0), processed: AtomicU64::new(0) }
    }

    /// Counts one record; `Err` when a failure is due.
    fn tick(&self) -> Result<(), String> {
        let n = self.processed.fetch_add(1, Ordering::Relaxed) + 1;
        let i = self.next.load(Ordering::Relaxed);
        if self.thresholds.get(i).is_some_and(|t| n >= *t)
            && self.next.compare_exchange(i, i + 1, Ordering::SeqCst, Ordering::Relaxed).is_ok()
        {
            return Err(format!("injected failure {} of {} at record {n}", i + 1, self.thresholds.len()));
        }
        Ok(())
    }

    fn fired(&self) -> usize {
        self.next.load(Ordering::SeqCst)
    }
}

/// Counts events per key in keyed state and emits `key,count` on every event.
#[derive(Clone)]
pub(crate) struct RunningCount;

impl KeyedProcessFunction<u64, u64, String> for RunningCount {
    fn process_element(&mut self, _: u64, ctx: &mut ProcessContext<'_, u64, String>) -> Result<(), UserError> {
        let count = ctx.state().value_state::<u64>("count")?;
        let n = count.get(ctx.state())?.copied().unwrap_or(0) + 1;
        count.set(ctx.state(), n)?;
        let k = *ctx.key();
        ctx.collect(format!("{k},{n}"));
        Ok(())
    }
}

/// The configuration the drill needs on top of the user's: checkpoints and restarts.
pub fn drill_config(user: &Configuration, o: &DrillOptions) -> Configuration {
    let mut c = Configuration::new();
    c.set("execution.checkpointing.interval", "50 ms")
        .set("restart-strategy", "fixed-delay")
        .set("restart-strategy.fixed-delay.attempts", (o.failures + 1).to_string())
        .set("restart-strategy.fixed-delay.delay", "10 ms");
    c.merge(user);
    c
}

/// Defines the drill's job on `env`.
fn define(env: &StreamEnvironment, o: &DrillOptions, injector: Arc<Injector>) -> Result<(), ScenarioError> {
    let rate = o.rate_per_ms;
    let counts = env
        .from_sequence_paced(0, o.events.saturating_sub(1), o.source_rate_per_s)
        .map(move |i| {
            if rate > 0 && i % rate == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            i
        })
        .name("Throttle")
        .map(move |i| {
            if let Err(why) = injector.tick() {
                panic!("{why}");
            }
            i
        })
        .name("Failure Injector")
        .key_by({
            let keys = o.keys.max(1);
            move |i: &u64| i % keys
        })
        .process(RunningCount)
        .name("Running Count");
    match o.sink {
        DrillSink::Text => {
            counts.write_as_text_exactly_once(o.output.clone(), |s: &String| s.clone());
        }
        DrillSink::Parquet | DrillSink::CsvPartitioned => {
            let bucketed = o.sink == DrillSink::CsvPartitioned;
            let rows = counts.map(move |s: String| count_row(&s, bucketed)).name("To Rows");
            rows.sink_to_file_sink(file_sink(o)?);
        }
    }
    Ok(())
}

/// The file sink of `o.sink`.
fn file_sink(o: &DrillOptions) -> Result<FileSinkSpec, ScenarioError> {
    let b = FileSink::builder(o.output.to_string_lossy().to_string());
    let b = match o.sink {
        DrillSink::CsvPartitioned => {
            b.format("csv").partition_by(["bucket"]).option("sink.partition-commit.policy.kind", "success-file")
        }
        _ => b.format("parquet"),
    };
    b.build().map_err(|e| ScenarioError::Invalid(e.to_string()))
}

/// The committed output of a drill that wrote through `sink`, as sorted `key,count` lines:
/// the visible part files (hidden and `_` names skipped), read with riffle-connectors' readers
/// for the file sinks.
pub fn committed_lines_of(dir: &Path, sink: DrillSink) -> Result<Vec<String>, ScenarioError> {
    if sink == DrillSink::Text {
        return committed_lines(dir);
    }
    let fmt = if sink == DrillSink::Parquet { "parquet" } else { "csv" };
    let format = riffle_connectors::format::by_name(fmt, &Configuration::new())
        .map_err(|e| ScenarioError::Invalid(e.to_string()))?;
    let schema = Rows::from_records(&[CountData { key: 0, count: 0 }])
        .map_err(|e| ScenarioError::Invalid(e.to_string()))?
        .schema();
    let bad = |e: &dyn std::fmt::Display| ScenarioError::Check(format!("cannot read the output: {e}"));
    let io = |e: std::io::Error| ScenarioError::Io(format!("cannot read the output '{}': {e}", dir.display()));
    let mut lines = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).map_err(io)? {
            let e = e.map_err(io)?;
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with('.') || name.starts_with('_') {
                continue;
            }
            if e.file_type().map_err(io)?.is_dir() {
                dirs.push(e.path());
                continue;
            }
            for split in format.splits(&e.path(), u64::MAX).map_err(|e| bad(&e))? {
                let mut r = format.open(&split, schema.clone()).map_err(|e| bad(&e))?;
                while let Some(b) = r.next_batch().map_err(|e| bad(&e))? {
                    for c in Rows(b).to_records::<CountData>().map_err(|e| bad(&e))? {
                        lines.push(format!("{},{}", c.key, c.count));
                    }
                }
            }
        }
    }
    lines.sort_unstable();
    Ok(lines)
}

/// The committed output: every line of the visible part files, sorted.
pub fn committed_lines(dir: &Path) -> Result<Vec<String>, ScenarioError> {
    let io = |e: std::io::Error| ScenarioError::Io(format!("cannot read the output '{}': {e}", dir.display()));
    let mut lines = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io)? {
        let e = e.map_err(io)?;
        let name = e.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue; // in progress or pending: not committed
        }
        let text = std::fs::read_to_string(e.path()).map_err(io)?;
        lines.extend(text.lines().map(str::to_string));
    }
    lines.sort_unstable();
    Ok(lines)
}

/// The failure-free output, sorted.
pub fn expected_lines(events: u64, keys: u64) -> Vec<String> {
    let keys = keys.max(1);
    let mut lines = Vec::with_capacity(events as usize);
    for k in 0..keys.min(events) {
        let n = (events - k).div_ceil(keys);
        lines.extend((1..=n).map(|c| format!("{k},{c}")));
    }
    lines.sort_unstable();
    lines
}

/// The drill's job graph without a checker around it (for clusters the caller checks itself,
/// e.g. a `local-cluster` whose TaskManagers are killed from outside); failures are injected
/// only if `o.failures` asks for them.
pub fn graph(o: &DrillOptions, user: &Configuration) -> Result<riffle_api::JobGraph, riffle_api::GraphError> {
    let env = crate::environment(o.parallelism, &drill_config(user, o));
    define(&env, o, Arc::new(Injector::new(o))).map_err(|e| riffle_api::GraphError::Invalid(e.to_string()))?;
    env.build_job_graph("exactly-once drill")
}

/// Runs the drill on an embedded cluster; an error unless the committed output is exact.
/// Resumed from a savepoint or checkpoint of a killed run (`execution.savepoint.path`), it
/// continues that run's output directory, and the check covers both runs together.
pub fn run(o: &DrillOptions, user: &Configuration) -> Result<DrillReport, ScenarioError> {
    // A resumed run continues the output of the run it resumes.
    let resuming = user.contains(&riffle_actors::job_master::SAVEPOINT_PATH);
    if !resuming && o.output.exists() && std::fs::read_dir(&o.output).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(ScenarioError::Invalid(format!(
            "output directory '{}' is not empty: the drill compares everything in it",
            o.output.display()
        )));
    }
    let conf = drill_config(user, o);
    let env = crate::environment(o.parallelism, &conf);
    let injector = Arc::new(Injector::new(o));
    define(&env, o, injector.clone())?;
    crate::run_job(&env, "exactly-once drill", o.parallelism, false)?;
    let got = committed_lines_of(&o.output, o.sink)?;
    let want = expected_lines(o.events, o.keys);
    if injector.fired() != o.failures {
        return Err(ScenarioError::Check(format!("only {} of {} failures fired", injector.fired(), o.failures)));
    }
    if got != want {
        return Err(ScenarioError::Check(describe_difference(&got, &want)));
    }
    Ok(DrillReport {
        failures: injector.fired(),
        lines: got.len(),
        processed: injector.processed.load(Ordering::SeqCst),
    })
}

/// Names the first lines lost and duplicated.
pub fn describe_difference(got: &[String], want: &[String]) -> String {
    use std::collections::HashMap;
    let mut count: HashMap<&str, i64> = HashMap::new();
    for l in want {
        *count.entry(l).or_default() += 1;
    }
    for l in got {
        *count.entry(l).or_default() -= 1;
    }
    let lost: Vec<&str> = count.iter().filter(|(_, n)| **n > 0).map(|(l, _)| *l).take(5).collect();
    let dup: Vec<&str> = count.iter().filter(|(_, n)| **n < 0).map(|(l, _)| *l).take(5).collect();
    format!(
        "committed output differs from the failure-free result: {} lines instead of {}; lost e.g. {lost:?}; \
         duplicated or unexpected e.g. {dup:?}",
        got.len(),
        want.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_lines_cover_every_event_once() {
        let l = expected_lines(10, 3);
        assert_eq!(l.len(), 10);
        assert!(l.contains(&"0,4".to_string()) && l.contains(&"2,3".to_string()) && !l.contains(&"2,4".to_string()));
    }

    #[test]
    fn failure_points_are_deterministic_and_fire_once_each() {
        let o = DrillOptions {
            events: 1000,
            keys: 3,
            failures: 3,
            seed: 7,
            parallelism: 1,
            output: PathBuf::new(),
            rate_per_ms: 0,
            source_rate_per_s: 0,
            sink: DrillSink::Text,
        };
        let a = Injector::new(&o);
        assert_eq!(a.thresholds, Injector::new(&o).thresholds);
        let fails = (0..2000).filter(|_| a.tick().is_err()).count();
        assert_eq!(fails, 3);
        assert_eq!(a.fired(), 3);
    }
}
