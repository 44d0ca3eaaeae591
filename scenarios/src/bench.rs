//! The benchmark workloads W1–W3, exactly as the Flink harness defines them (see `scripts/compare-flink`), and
//! their self-checks.
//!
//! W1 counts words with a running `reduce` (every update emitted); W2 converts bid prices
//! (source and maps chained); W3 counts bids per auction in 10 s tumbling event-time windows.
//! Results go to a discarding sink; with `check` they are collected and compared with a
//! sequential computation instead (not for timing).

use std::collections::HashMap;
use std::time::Duration;

use riffle_api::generators::{bid, to_euro, Bid, Word, BID_BASE_TIME_MS};
use riffle_api::{StreamEnvironment, TimeWindow, WindowAssigner};
use riffle_cluster::{JobStatus, MiniCluster, MiniClusterConfig};

use crate::nexmark::{timed_bids, CountBids};
use crate::ScenarioError;

/// A benchmark workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Word count with a running reduce.
    W1,
    /// Nexmark q1 price conversion.
    W2,
    /// Count per auction in 10 s tumbling windows.
    W3,
    /// W3 with an exactly-once (aligned) checkpoint every second.
    W4,
}

impl std::str::FromStr for Workload {
    type Err = ScenarioError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "W1" => Ok(Workload::W1),
            "W2" => Ok(Workload::W2),
            "W3" => Ok(Workload::W3),
            "W4" => Ok(Workload::W4),
            other => Err(ScenarioError::Invalid(format!("unknown workload '{other}' (use W1, W2, W3 or W4)"))),
        }
    }
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

/// One benchmark run's outcome.
#[derive(Debug, Clone)]
pub struct BenchResult {
    /// Net job runtime (scheduling to FINISHED), as Flink's `getNetRuntime`.
    pub seconds: f64,
    /// `events / seconds`.
    pub events_per_sec: f64,
    /// W4: checkpoints completed during the run.
    pub checkpoints_completed: Option<u64>,
    /// W4: trigger-to-completion time of the last completed checkpoint, ms.
    pub checkpoint_last_ms: Option<u64>,
    /// W4: state size of the last completed checkpoint, bytes.
    pub checkpoint_last_bytes: Option<u64>,
    /// W4: the longest synchronous part (copy) of a subtask in the last checkpoint, ms.
    pub checkpoint_last_sync_ms: Option<u64>,
    /// W4: the longest asynchronous part (encode, write) of a subtask in it, ms.
    pub checkpoint_last_async_ms: Option<u64>,
}

enum Collected {
    W1(riffle_api::CollectStream<(Word, u64)>),
    W2(riffle_api::CollectStream<Bid>),
    W3(riffle_api::CollectStream<(i64, i64, u64)>),
    Discarded,
}

fn define(env: &StreamEnvironment, w: Workload, events: u64, check: bool) -> Collected {
    match w {
        Workload::W1 => {
            let s = env
                .from_sequence(0, events.saturating_sub(1))
                .map(|i| (Word::of_event(i), 1u64))
                .name("Words")
                .key_by(|t: &(Word, u64)| t.0)
                .reduce(|a, b| (a.0, a.1 + b.1))
                .name("Count");
            if check {
                Collected::W1(s.collect())
            } else {
                s.discard();
                Collected::Discarded
            }
        }
        Workload::W2 => {
            let s = env.bids(events).map(|b: Bid| Bid { price: to_euro(b.price), ..b }).name("Q1");
            if check {
                Collected::W2(s.collect())
            } else {
                s.discard();
                Collected::Discarded
            }
        }
        Workload::W3 | Workload::W4 => {
            let s = timed_bids(env, events)
                .key_by(|b: &Bid| b.auction)
                .window(WindowAssigner::tumbling_event_time(Duration::from_secs(10)))
                .aggregate_with(CountBids, |a: &i64, w: &TimeWindow, n: u64| (*a, w.end, n))
                .name("Bids per Window");
            if check {
                Collected::W3(s.collect())
            } else {
                s.discard();
                Collected::Discarded
            }
        }
    }
}

fn verify(c: Collected, events: u64) -> Result<(), ScenarioError> {
    let fail = |m: String| Err(ScenarioError::Check(m));
    match c {
        Collected::Discarded => Ok(()),
        Collected::W1(out) => {
            let mut last: HashMap<Word, u64> = HashMap::new();
            let mut n = 0u64;
            for (w, c) in out {
                n += 1;
                let e = last.entry(w).or_insert(0);
                *e = (*e).max(c);
            }
            if n != events {
                return fail(format!("W1 emitted {n} updates, expected {events}"));
            }
            let mut want: HashMap<Word, u64> = HashMap::new();
            for i in 0..events {
                *want.entry(Word::of_event(i)).or_insert(0) += 1;
            }
            if last != want {
                return fail("W1 final counts differ from a sequential count".into());
            }
            Ok(())
        }
        Collected::W2(out) => {
            let (mut n, mut sum) = (0u64, 0i64);
            for b in out {
                n += 1;
                sum = sum.wrapping_add(b.price + 3 * b.auction + 5 * b.bidder + 7 * (b.date_time - BID_BASE_TIME_MS));
            }
            let want: i64 = (0..events)
                .map(|i| {
                    let b = bid(i);
                    to_euro(b.price) + 3 * b.auction + 5 * b.bidder + 7 * (b.date_time - BID_BASE_TIME_MS)
                })
                .fold(0i64, |a, x| a.wrapping_add(x));
            if n != events || sum != want {
                return fail(format!("W2: {n} records with checksum {sum}, expected {events} and {want}"));
            }
            Ok(())
        }
        Collected::W3(out) => {
            let mut got: HashMap<(i64, i64), u64> = HashMap::new();
            for (a, end, c) in out {
                if got.insert((a, end), c).is_some() {
                    return fail(format!("W3: duplicate result for auction {a}, window end {end}"));
                }
            }
            let total: u64 = got.values().sum();
            if total != events {
                return fail(format!("W3: counts sum to {total}, expected {events}"));
            }
            let mut want: HashMap<(i64, i64), u64> = HashMap::new();
            for i in 0..events {
                let b = bid(i);
                let end = b.date_time - b.date_time.rem_euclid(10_000) + 10_000;
                *want.entry((b.auction, end)).or_insert(0) += 1;
            }
            if got != want {
                return fail("W3: per-(auction, window) counts differ from a sequential count".into());
            }
            Ok(())
        }
    }
}

/// Workload `w`'s job graph, results discarded (for clusters of processes: `riffle
/// bench-cluster` submits it as the `bench` program). W4's checkpoint settings are the
/// job's own.
pub fn graph(w: Workload, events: u64, parallelism: u32) -> Result<riffle_api::JobGraph, ScenarioError> {
    if events == 0 || events > 1u64 << 32 {
        return Err(ScenarioError::Invalid(format!("events must be within 1..=2^32, got {events}")));
    }
    let mut c = riffle_api::Configuration::new();
    if w == Workload::W4 {
        c.set("execution.checkpointing.interval", "1 s").set("execution.checkpointing.mode", "EXACTLY_ONCE");
    }
    let mut env = StreamEnvironment::with_config(c);
    env.set_parallelism(parallelism.max(1));
    let _ = define(&env, w, events, false);
    Ok(env.build_job_graph(&format!("{w} {events} p{parallelism}"))?)
}

/// Runs workload `w` over `events` events at `parallelism` on an embedded cluster with one
/// TaskExecutor of `parallelism` slots (Flink's harness: one TaskManager, p slots).
pub fn run_bench(w: Workload, events: u64, parallelism: u32, check: bool) -> Result<BenchResult, ScenarioError> {
    run_bench_with(w, events, parallelism, check, &riffle_api::Configuration::new())
}

/// [`run_bench`] with cluster settings (`execution.batch-size`, ...).
pub fn run_bench_with(
    w: Workload,
    events: u64,
    parallelism: u32,
    check: bool,
    config: &riffle_api::Configuration,
) -> Result<BenchResult, ScenarioError> {
    if events == 0 || events > 1u64 << 32 {
        return Err(ScenarioError::Invalid(format!("events must be within 1..=2^32, got {events}")));
    }
    if parallelism == 0 {
        return Err(ScenarioError::Invalid("parallelism must be at least 1".into()));
    }
    let mut env = StreamEnvironment::new();
    env.set_parallelism(parallelism);
    let collected = define(&env, w, events, check);
    let mut cfg = MiniClusterConfig::new(1, parallelism);
    cfg.config = config.clone();
    let checkpoint_dir = if w == Workload::W4 {
        let dir = std::env::temp_dir().join(format!("riffle-w4-{}-{}", std::process::id(), riffle_api::time::now_ms()));
        cfg.config
            .set("execution.checkpointing.interval", "1 s")
            .set("execution.checkpointing.mode", "EXACTLY_ONCE")
            .set("state.checkpoints.dir", dir.display().to_string());
        Some(dir)
    } else {
        None
    };
    let cluster = MiniCluster::start(cfg)?;
    let job = cluster.submit(env.build_job_graph(&format!("{w} {events} p{parallelism}"))?)?;
    let checker = std::thread::spawn(move || verify(collected, events));
    let result = job.wait(None)?;
    let verdict = checker.join().map_err(|_| ScenarioError::Check("the checker panicked".into()))?;
    let stats = checkpoint_dir.as_ref().map(|_| cluster.checkpoint_stats(job.job_id()));
    cluster.shutdown();
    if let Some(dir) = checkpoint_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    if result.status != JobStatus::Finished {
        return Err(ScenarioError::JobFailed { status: result.status, cause: result.error.unwrap_or_default() });
    }
    verdict?;
    let seconds = result.duration.as_secs_f64().max(1e-6);
    Ok(BenchResult {
        seconds,
        events_per_sec: events as f64 / seconds,
        checkpoints_completed: stats.as_ref().map(|s| s.completed),
        checkpoint_last_ms: stats.as_ref().map(|s| s.last_duration_ms),
        checkpoint_last_bytes: stats.as_ref().map(|s| s.last_size_bytes),
        checkpoint_last_sync_ms: stats.as_ref().map(|s| s.last_sync_ms),
        checkpoint_last_async_ms: stats.as_ref().map(|s| s.last_async_ms),
    })
}
