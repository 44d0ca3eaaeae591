//! What the streaming operator tests share: the benchmark's bids as Arrow rows (generated
//! here from their definition), aggregate expressions, an exactly-once line sink and its
//! reader, and a MiniCluster.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef, Int64Array, TimestampMillisecondArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use datafusion_common::ScalarValue;
use datafusion_expr::AggregateUDF;
use datafusion_physical_expr::aggregate::{AggregateExprBuilder, AggregateFunctionExpr};
use datafusion_physical_expr::expressions::{col, Literal};
use riffle_api::{DataStream, JobGraph, RichMapFunction, RuntimeContext, StreamEnvironment, UserError};
use riffle_cluster::{JobHandle, JobStatus, MiniCluster, MiniClusterConfig};
use riffle_connectors::Rows;
use riffle_sql::exec::{assign_watermarks, WatermarkSpec};

pub const WAIT: Option<Duration> = Some(Duration::from_secs(120));
/// The benchmark's check size.
pub const N: i64 = 234_567;
/// The first bid's time, 2023-11-14 22:13:20 UTC.
pub const T0: i64 = 1_700_000_000_000;

/// Bid `id` as the benchmark defines it: (auction, bidder, price, dateTime).
pub fn bid(id: i64) -> (i64, i64, i64, i64) {
    (id * 7919 % 1000, id * 104729 % 100000, id * 31 % 10000 + 1, T0 + id)
}

/// id, auction, bidder, price, dateTime (TIMESTAMP_LTZ(3)).
pub fn bids_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("auction", DataType::Int64, false),
        Field::new("bidder", DataType::Int64, false),
        Field::new("price", DataType::Int64, false),
        Field::new("dateTime", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false),
    ]))
}

/// Bids `from..to` as one batch.
pub fn bid_rows(from: i64, to: i64) -> Rows {
    let ids: Vec<i64> = (from..to).collect();
    let bids: Vec<_> = ids.iter().map(|&i| bid(i)).collect();
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.clone())),
        Arc::new(Int64Array::from(bids.iter().map(|b| b.0).collect::<Vec<_>>())),
        Arc::new(Int64Array::from(bids.iter().map(|b| b.1).collect::<Vec<_>>())),
        Arc::new(Int64Array::from(bids.iter().map(|b| b.2).collect::<Vec<_>>())),
        Arc::new(TimestampMillisecondArray::from(bids.iter().map(|b| b.3).collect::<Vec<_>>()).with_timezone("UTC")),
    ];
    Rows(RecordBatch::try_new(bids_schema(), cols).unwrap())
}

/// A failure to inject once in the first attempt: after `armed` is set, or at the input's last
/// batch if the test had not armed it by then.
pub struct Inject {
    pub armed: &'static AtomicBool,
    pub failed: &'static AtomicBool,
}

/// Batch numbers to bid batches, optionally failing once.
#[derive(Clone)]
struct BidBatches {
    n: i64,
    batch: i64,
    inject: Option<&'static Inject>,
    restarted: bool,
}

impl RichMapFunction<u64, Rows> for BidBatches {
    type State = ();

    fn open(&mut self, _: &RuntimeContext) -> Result<(), UserError> {
        self.restarted = self.inject.is_some_and(|i| i.failed.load(Ordering::SeqCst));
        Ok(())
    }

    fn map(&mut self, b: u64) -> Result<Rows, UserError> {
        if let Some(i) = self.inject {
            // At the last batch at the latest, so that a slow test thread (checkpoints late under
            // load) never sees the first attempt finish without its failure.
            let last = b as i64 == (self.n + self.batch - 1) / self.batch - 1;
            if !self.restarted && (i.armed.load(Ordering::SeqCst) || last) && !i.failed.swap(true, Ordering::SeqCst) {
                return Err("injected failure".into());
            }
        }
        let from = b as i64 * self.batch;
        Ok(bid_rows(from, (from + self.batch).min(self.n)))
    }
}

/// Bids `0..n` in batches of `batch`, read in parallel (contiguous ranges of batches), at
/// most `rate` batches per second per subtask (0: unpaced), with the table's watermark
/// (`dateTime - INTERVAL '0' SECOND`).
pub fn bids(
    env: &StreamEnvironment,
    n: i64,
    batch: i64,
    rate: u64,
    inject: Option<&'static Inject>,
) -> DataStream<Rows> {
    let batches = (n + batch - 1) / batch;
    let rows = env
        .from_sequence_paced(0, batches as u64 - 1, rate)
        .map_with_state(BidBatches { n, batch, inject, restarted: false })
        .name("bids");
    assign_watermarks(&rows, &WatermarkSpec { time_column: 4, delay_ms: 0 })
}

/// `fun(args…) AS alias` over `schema`.
pub fn agg(fun: Arc<AggregateUDF>, args: &[&str], schema: &SchemaRef, alias: &str) -> Arc<AggregateFunctionExpr> {
    let args =
        args.iter()
            .map(|a| {
                if *a == "*" {
                    Arc::new(Literal::new(ScalarValue::Int64(Some(1)))) as _
                } else {
                    col(a, schema).unwrap()
                }
            })
            .collect();
    Arc::new(AggregateExprBuilder::new(fun, args).schema(schema.clone()).alias(alias).build().unwrap())
}

/// Each row of `rows` as a line, every column cast to BIGINT (timestamps: epoch ms).
pub fn lines(rows: &Rows) -> Vec<String> {
    let b = rows.batch();
    let cols: Vec<Int64Array> = b
        .columns()
        .iter()
        .map(|c| {
            let c = match c.data_type() {
                DataType::Timestamp(_, _) => {
                    cast(&cast(c, &DataType::Timestamp(TimeUnit::Millisecond, None)).unwrap(), &DataType::Int64)
                        .unwrap()
                }
                _ => cast(c, &DataType::Int64).unwrap(),
            };
            c.as_any().downcast_ref::<Int64Array>().unwrap().clone()
        })
        .collect();
    (0..b.num_rows())
        .map(|i| {
            cols.iter()
                .map(|c| if c.is_null(i) { String::new() } else { c.value(i).to_string() })
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect()
}

/// Writes every row as a line (see [`lines`]) into `dir`, exactly once.
pub fn sink_lines(stream: &DataStream<Rows>, dir: &Path) {
    stream
        .flat_map(|rows: Rows, out| {
            for l in lines(&rows) {
                out.collect(l);
            }
        })
        .name("to lines")
        .write_as_text_exactly_once(dir.to_path_buf(), |l: &String| l.clone())
        // Named without its path: a restore into another directory finds its state.
        .name("lines");
}

/// The committed lines under `dir`, sorted.
pub fn read_lines(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with("part-") {
            let text = std::fs::read_to_string(e.path()).unwrap();
            out.extend(text.lines().filter(|l| !l.is_empty()).map(str::to_string));
        }
    }
    out.sort();
    out
}

/// Counted rows as sorted lines: `key,…,value` from a map.
pub fn to_lines<K: std::fmt::Display>(m: BTreeMap<Vec<i64>, K>) -> Vec<String> {
    let mut v: Vec<String> = m
        .into_iter()
        .map(|(k, c)| format!("{},{c}", k.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",")))
        .collect();
    v.sort();
    v
}

pub fn cluster(slots: u32, config: &[(&str, &str)]) -> MiniCluster {
    let mut cfg = MiniClusterConfig::new(1, slots);
    for (k, v) in config {
        cfg.config.set(*k, *v);
    }
    MiniCluster::start(cfg).expect("mini cluster starts")
}

/// Runs `graph` to its end.
pub fn run(mc: &MiniCluster, graph: JobGraph) -> JobHandle {
    let h = mc.submit(graph).unwrap();
    let r = h.wait(WAIT).unwrap();
    assert_eq!(r.status, JobStatus::Finished, "{:?}", r.error);
    h
}

pub fn wait_checkpoints(mc: &MiniCluster, h: &JobHandle, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while mc.checkpoint_stats(h.job_id()).completed < n {
        assert!(Instant::now() < deadline, "no checkpoints: {:?}", mc.checkpoint_stats(h.job_id()));
        std::thread::sleep(Duration::from_millis(2));
    }
}

pub fn wait_running(mc: &MiniCluster, h: &JobHandle) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while mc.list_jobs().unwrap().iter().all(|j| j.job_id != h.job_id() || j.status != JobStatus::Running) {
        assert!(Instant::now() < deadline, "the job does not run");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Retries `f` (a savepoint needs every task running) for up to 30 s.
pub fn savepoint_with_retry(f: impl Fn() -> Result<PathBuf, riffle_cluster::ClusterError>) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match f() {
            Ok(p) => return p,
            Err(e) => {
                assert!(Instant::now() < deadline, "no savepoint: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Copies the files of `from` into a new directory `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// `got == want`, reported as the sizes and the first lines that differ (not whole lists).
pub fn assert_lines(got: &[String], want: &[String], what: &str) {
    if got == want {
        return;
    }
    let missing: Vec<&String> = want.iter().filter(|l| got.binary_search(l).is_err()).take(5).collect();
    let extra: Vec<&String> = got.iter().filter(|l| want.binary_search(l).is_err()).take(5).collect();
    panic!(
        "{what}: {} rows, want {}; missing (first 5) {missing:?}; unexpected (first 5) {extra:?}",
        got.len(),
        want.len()
    );
}

/// The committed lines under `dir` in the order they were written per subtask (part files by
/// subtask, then part number), of the part files `take` accepts (given the file's path).
pub fn read_changelog(dir: &Path, take: impl Fn(&Path) -> bool) -> Vec<String> {
    let mut parts: Vec<(u32, u64, PathBuf)> = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().to_string();
        if !take(&e.path()) {
            continue;
        }
        if let Some(rest) = name.strip_prefix("part-") {
            let (s, n) = rest.split_once('-').unwrap();
            parts.push((s.parse().unwrap(), n.parse().unwrap(), e.path()));
        }
    }
    parts.sort();
    let mut out = Vec::new();
    for (_, _, p) in parts {
        let text = std::fs::read_to_string(p).unwrap();
        out.extend(text.lines().filter(|l| !l.is_empty()).map(str::to_string));
    }
    out
}

/// Whether the file at `path` was last written before `t`.
pub fn written_before(path: &Path, t: std::time::SystemTime) -> bool {
    std::fs::metadata(path).unwrap().modified().unwrap() < t
}

/// Applies changelog lines (`values…,op`, op the row kind's byte) to `table`, a multiset of
/// rows: +I and +U add a row, -U and -D remove an identical one (which must be there).
pub fn apply_changelog(table: &mut BTreeMap<String, i64>, lines: &[String]) {
    for l in lines {
        let (row, op) = l.rsplit_once(',').unwrap();
        let c = table.entry(row.to_string()).or_insert(0);
        match op {
            "0" | "2" => *c += 1,
            "1" | "3" => {
                assert!(*c > 0, "a retraction of a row not in the table: {l}");
                *c -= 1;
            }
            _ => panic!("row kind {op} in {l}"),
        }
    }
    table.retain(|_, c| *c > 0);
}

/// The table as sorted lines (a row k times appears k times).
pub fn table_lines(table: &BTreeMap<String, i64>) -> Vec<String> {
    let mut v: Vec<String> = table.iter().flat_map(|(r, c)| std::iter::repeat_n(r.clone(), *c as usize)).collect();
    v.sort();
    v
}

/// Runs the job `define` builds (handing its source the failure to inject) at parallelism 2
/// with a checkpoint every 20 ms and one restart; injects the failure after two completed
/// checkpoints and returns once the job finished, asserting the failure happened.
pub fn run_with_one_failure(name: &str, define: impl FnOnce(&StreamEnvironment, &'static Inject)) {
    let inject: &'static Inject = Box::leak(Box::new(Inject {
        armed: Box::leak(Box::new(AtomicBool::new(false))),
        failed: Box::leak(Box::new(AtomicBool::new(false))),
    }));
    let mc = cluster(
        2,
        &[
            ("execution.checkpointing.interval", "20 ms"),
            ("restart-strategy", "fixed-delay"),
            ("restart-strategy.fixed-delay.attempts", "1"),
            ("restart-strategy.fixed-delay.delay", "10 ms"),
        ],
    );
    let mut env = StreamEnvironment::new();
    env.set_parallelism(2);
    define(&env, inject);
    let h = mc.submit(env.build_job_graph(name).unwrap()).unwrap();
    wait_checkpoints(&mc, &h, 2);
    inject.armed.store(true, Ordering::SeqCst);
    let r = h.wait(WAIT).unwrap();
    assert_eq!(r.status, JobStatus::Finished, "{:?}", r.error);
    assert!(inject.failed.load(Ordering::SeqCst), "the failure was injected");
}
