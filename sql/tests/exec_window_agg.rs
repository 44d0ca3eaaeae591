//! Window TVF aggregation (TUMBLE, HOP, CUMULATE; keyed and not) through real jobs on the
//! benchmark's bids: exact rows against results computed here from the bids' definition, at
//! parallelism 1 and 2, after an injected failure, and after a savepoint restored at another
//! parallelism.

mod exec_common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use datafusion_functions_aggregate::count::count_udaf;
use datafusion_functions_aggregate::min_max::max_udaf;
use exec_common::*;
use riffle_api::{DataStream, KeyedProcessFunction, ProcessContext, StreamEnvironment, UserError};
use riffle_cluster::JobStatus;
use riffle_connectors::Rows;
use riffle_sql::exec::window_agg::default_output_schema;
use riffle_sql::exec::{window_aggregate, WindowAggSpec, WindowKind};

const TEN_S: i64 = 10_000;

/// `COUNT(*) AS num` per auction per window (or `MAX(price), COUNT(*)` per window without
/// keys, q7_like).
fn spec(window: WindowKind, keyed: bool, local_global: bool) -> WindowAggSpec {
    let schema = bids_schema();
    let (key_columns, aggregates) = if keyed {
        (vec![1], vec![agg(count_udaf(), &["*"], &schema, "num")])
    } else {
        (vec![], vec![agg(max_udaf(), &["price"], &schema, "maxprice"), agg(count_udaf(), &["*"], &schema, "num")])
    };
    let output_schema = default_output_schema(&schema, &key_columns, &aggregates);
    WindowAggSpec { window, time_column: 4, key_columns, aggregates, input_schema: schema, output_schema, local_global }
}

fn aggregate(rows: &DataStream<Rows>, spec: &WindowAggSpec) -> DataStream<Rows> {
    window_aggregate(rows, spec).unwrap()
}

/// The windows (start, end) of time `t`.
fn windows_of(kind: WindowKind, t: i64) -> Vec<(i64, i64)> {
    match kind {
        WindowKind::Tumble { size } => {
            let s = t - t.rem_euclid(size);
            vec![(s, s + size)]
        }
        WindowKind::Hop { slide, size } => {
            let last = t - t.rem_euclid(slide);
            (0..).map(|i| last - i * slide).take_while(|s| s + size > t).map(|s| (s, s + size)).collect()
        }
        WindowKind::Cumulate { step, max_size } => {
            let s = t - t.rem_euclid(max_size);
            (1..=max_size / step).map(|i| (s, s + i * step)).filter(|(_, e)| *e > t).collect()
        }
        WindowKind::Session { .. } => unreachable!(),
    }
}

/// The expected lines of `spec` over bids `0..n`: `auction,start,end,count` or
/// `start,end,max,count`.
fn expected(kind: WindowKind, keyed: bool, n: i64) -> Vec<String> {
    let mut counts: BTreeMap<Vec<i64>, (i64, i64)> = BTreeMap::new();
    for id in 0..n {
        let (auction, _, price, t) = bid(id);
        for (s, e) in windows_of(kind, t) {
            let key = if keyed { vec![auction, s, e] } else { vec![s, e] };
            let c = counts.entry(key).or_insert((i64::MIN, 0));
            c.0 = c.0.max(price);
            c.1 += 1;
        }
    }
    if keyed {
        to_lines(counts.into_iter().map(|(k, (_, c))| (k, c)).collect())
    } else {
        to_lines(counts.into_iter().map(|(k, (m, c))| (k, format!("{m},{c}"))).collect())
    }
}

/// Runs the aggregate over bids `0..n` at `parallelism` and returns its lines.
fn run_window(spec: &WindowAggSpec, n: i64, parallelism: u32) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let mc = cluster(parallelism, &[]);
    let mut env = StreamEnvironment::new();
    env.set_parallelism(parallelism);
    let out = aggregate(&bids(&env, n, 1000, 0, None), spec);
    sink_lines(&out, dir.path());
    run(&mc, env.build_job_graph("window").unwrap());
    read_lines(dir.path())
}

#[test]
fn q5_like_tumbling_counts_per_auction_are_exact_at_parallelism_1_and_2() {
    let kind = WindowKind::Tumble { size: TEN_S };
    let want = expected(kind, true, N);
    assert_eq!(want.len(), 24_000, "Flink's row count");
    assert_eq!(want[0], "0,1700000000000,1700000010000,10");
    for p in [1, 2] {
        assert_lines(&run_window(&spec(kind, true, true), N, p), &want, &format!("local/global at parallelism {p}"));
    }
    assert_lines(&run_window(&spec(kind, true, false), N, 2), &want, "one stage at parallelism 2");
}

#[test]
fn q7_like_non_keyed_max_and_count_per_window_are_exact() {
    let kind = WindowKind::Tumble { size: TEN_S };
    let want = expected(kind, false, N);
    assert_eq!(want.len(), 24);
    assert_eq!(want[0], "1700000000000,1700000010000,10000,10000");
    for p in [1, 2] {
        assert_lines(&run_window(&spec(kind, false, true), N, p), &want, &format!("parallelism {p}"));
    }
    assert_lines(&run_window(&spec(kind, false, false), N, 2), &want, "one stage");
}

#[test]
fn hop_windows_including_partial_ones_are_exact() {
    let kind = WindowKind::Hop { slide: 2000, size: TEN_S };
    let want = expected(kind, true, N);
    assert_eq!(want.len(), 121_567, "Flink's row count");
    for p in [1, 2] {
        assert_lines(&run_window(&spec(kind, true, true), N, p), &want, &format!("parallelism {p}"));
    }
}

#[test]
fn cumulate_windows_are_exact() {
    let kind = WindowKind::Cumulate { step: 2000, max_size: TEN_S };
    let want = expected(kind, true, N);
    assert_eq!(want.len(), 120_000, "Flink's row count");
    for p in [1, 2] {
        assert_lines(&run_window(&spec(kind, true, true), N, p), &want, &format!("parallelism {p}"));
    }
}

#[test]
fn after_an_injected_failure_hop_windows_are_exactly_the_same() {
    static ARMED: AtomicBool = AtomicBool::new(false);
    static FAILED: AtomicBool = AtomicBool::new(false);
    static INJECT: Inject = Inject { armed: &ARMED, failed: &FAILED };
    let kind = WindowKind::Hop { slide: 2000, size: TEN_S };
    let n = 120_000;
    let dir = tempfile::tempdir().unwrap();
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
    let out = aggregate(&bids(&env, n, 500, 100, Some(&INJECT)), &spec(kind, true, true));
    sink_lines(&out, dir.path());
    let h = mc.submit(env.build_job_graph("window failure").unwrap()).unwrap();
    wait_checkpoints(&mc, &h, 2);
    ARMED.store(true, Ordering::SeqCst);
    let r = h.wait(WAIT).unwrap();
    assert_eq!(r.status, JobStatus::Finished, "{:?}", r.error);
    assert!(FAILED.load(Ordering::SeqCst), "the failure was injected");
    assert_lines(&read_lines(dir.path()), &expected(kind, true, n), "exactly once: no window lost or twice");
}

#[test]
fn a_savepoint_at_parallelism_2_restores_at_3_and_at_1_with_the_same_windows() {
    let kind = WindowKind::Cumulate { step: 2000, max_size: TEN_S };
    let n = 120_000;
    let want = expected(kind, true, n);
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");
    let mc = cluster(3, &[("state.storage.fs.memory-threshold", "0")]);
    let job = |parallelism: u32, out: &std::path::Path, savepoint: Option<&std::path::Path>| {
        let mut env = StreamEnvironment::new();
        env.set_parallelism(parallelism);
        if let Some(sp) = savepoint {
            env.set_config("execution.savepoint.path", &sp.display().to_string());
        }
        let rows = aggregate(&bids(&env, n, 500, 100, None), &spec(kind, true, true));
        sink_lines(&rows, out);
        env.build_job_graph("window savepoint").unwrap()
    };
    let h = mc.submit(job(2, &first, None)).unwrap();
    wait_running(&mc, &h);
    std::thread::sleep(Duration::from_millis(400));
    let sp = savepoint_with_retry(|| h.cancel_with_savepoint(Some(dir.path().join("savepoints"))));
    assert_eq!(h.wait(WAIT).unwrap().status, JobStatus::Canceled);
    let before = read_lines(&first);
    assert!(before.len() < want.len(), "cancelled before the end: {} of {} rows", before.len(), want.len());
    for parallelism in [3, 1] {
        let out = dir.path().join(format!("restored-{parallelism}"));
        copy_dir(&first, &out);
        run(&mc, job(parallelism, &out, Some(&sp)));
        assert_lines(&read_lines(&out), &want, &format!("restored at parallelism {parallelism}"));
    }
}

/// The watermark each batch of window results sees when it arrives downstream.
#[derive(Clone)]
struct SeenWatermark;

impl KeyedProcessFunction<(), Rows, (i64, usize)> for SeenWatermark {
    fn process_element(&mut self, rows: Rows, ctx: &mut ProcessContext<'_, (), (i64, usize)>) -> Result<(), UserError> {
        let w = ctx.current_watermark();
        ctx.collect((w, rows.num_rows()));
        Ok(())
    }
}

#[test]
fn windows_fire_on_the_periodic_watermark_before_the_input_ends() {
    // 120 batches at 50 per second: about 2.4 s, 12 watermark intervals.
    let n = 60_000;
    let mc = cluster(1, &[("pipeline.auto-watermark-interval", "200 ms")]);
    let env = StreamEnvironment::new();
    let kind = WindowKind::Tumble { size: TEN_S };
    let out = aggregate(&bids(&env, n, 500, 50, None), &spec(kind, true, true)).process(SeenWatermark).collect();
    let h = mc.submit(env.build_job_graph("periodic watermarks").unwrap()).unwrap();
    let seen: Vec<(i64, usize)> = out.collect();
    assert_eq!(h.wait(WAIT).unwrap().status, JobStatus::Finished);
    assert_eq!(seen.iter().map(|(_, n)| n).sum::<usize>(), expected(kind, true, n).len());
    // Windows fired while the input ran: their results met a finite watermark downstream (the
    // one before the watermark that fired them), not only the final one.
    let finite: Vec<i64> = seen.iter().map(|(w, _)| *w).filter(|w| *w > T0 && *w < riffle_api::MAX_WATERMARK).collect();
    assert!(!finite.is_empty(), "every window fired at the end of input: {seen:?}");
    assert!(finite.iter().all(|w| *w < T0 + n), "a watermark beyond the largest time: {finite:?}");
}

/// Bids with the given (id, auction, time offset from T0), prices 1.
fn rows_of(bids: &[(i64, i64, i64)]) -> Rows {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array, TimestampMillisecondArray};
    let col = |f: &dyn Fn(&(i64, i64, i64)) -> i64| -> ArrayRef {
        Arc::new(Int64Array::from(bids.iter().map(f).collect::<Vec<_>>()))
    };
    let times = TimestampMillisecondArray::from(bids.iter().map(|b| T0 + b.2).collect::<Vec<_>>()).with_timezone("UTC");
    let cols = vec![col(&|b| b.0), col(&|b| b.1), col(&|_| 0), col(&|_| 1), Arc::new(times) as ArrayRef];
    Rows(arrow::record_batch::RecordBatch::try_new(bids_schema(), cols).unwrap())
}

#[test]
fn a_late_row_counts_only_in_the_hop_windows_still_to_fire() {
    // Step 0: bids 0..20000; a second later (the watermark is then T0 + 19999), step 1: two
    // late rows of auction 7, at +15 s (its slice [14 s, 16 s) fired, windows ending at 22 s
    // and 24 s did not) and at +3 s (every window of its slice fired: dropped); step 2: bids
    // 20000..30000.
    let kind = WindowKind::Hop { slide: 2000, size: TEN_S };
    for local_global in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let mc = cluster(1, &[("pipeline.auto-watermark-interval", "50 ms")]);
        let env = StreamEnvironment::new();
        let steps = env
            .from_sequence_paced(0, 2, 1)
            .map(|step: u64| match step {
                0 => bid_rows(0, 20_000),
                1 => rows_of(&[(1_000_000, 7, 15_000), (1_000_001, 7, 3_000)]),
                _ => bid_rows(20_000, 30_000),
            })
            .name("steps");
        let rows = riffle_sql::exec::assign_watermarks(
            &steps,
            &riffle_sql::exec::WatermarkSpec { time_column: 4, delay_ms: 0 },
        );
        sink_lines(&aggregate(&rows, &spec(kind, true, local_global)), dir.path());
        run(&mc, env.build_job_graph("late rows").unwrap());
        let mut want = expected(kind, true, 30_000);
        for (s, e) in [(12_000, 22_000), (14_000, 24_000)] {
            let prefix = format!("7,{},{},", T0 + s, T0 + e);
            let line = want.iter_mut().find(|l| l.starts_with(&prefix)).unwrap();
            let c: i64 = line[prefix.len()..].parse().unwrap();
            *line = format!("{prefix}{}", c + 1);
        }
        want.sort();
        assert_lines(&read_lines(dir.path()), &want, &format!("local/global {local_global}"));
    }
}
