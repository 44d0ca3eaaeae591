//! Session windows (the `session` query: per auction, over the bids with price > 5000, a
//! 2-s session gap, COUNT(*) and SUM(price)) through real jobs: exact sessions computed here
//! from the bids' definition at parallelism 1 and 2, after an injected failure and after a
//! savepoint restored at another parallelism.

mod exec_common;

use std::collections::BTreeMap;
use std::path::Path;

use arrow::array::{Array, BooleanArray, Int64Array};
use arrow::compute::filter_record_batch;
use datafusion_functions_aggregate::count::count_udaf;
use datafusion_functions_aggregate::sum::sum_udaf;
use exec_common::*;
use riffle_api::{DataStream, StreamEnvironment};
use riffle_cluster::JobStatus;
use riffle_connectors::Rows;
use riffle_sql::exec::window_agg::default_output_schema;
use riffle_sql::exec::{session_aggregate, SessionAggSpec};

const GAP: i64 = 2000;

fn sessions(rows: &DataStream<Rows>) -> DataStream<Rows> {
    let schema = bids_schema();
    let aggregates = vec![agg(count_udaf(), &["*"], &schema, "num"), agg(sum_udaf(), &["price"], &schema, "total")];
    let spec = SessionAggSpec {
        gap: GAP,
        time_column: 4,
        key_columns: vec![1],
        output_schema: default_output_schema(&schema, &[1], &aggregates),
        aggregates,
        input_schema: schema,
    };
    // The view: bids with price > 5000.
    let high = rows
        .map(|r: Rows| {
            let price = r.batch().column(3).as_any().downcast_ref::<Int64Array>().unwrap().clone();
            let mask: BooleanArray = price.iter().map(|p| p.map(|p| p > 5000)).collect();
            Rows(filter_record_batch(r.batch(), &mask).unwrap())
        })
        .name("price > 5000");
    session_aggregate(&high, &spec).unwrap()
}

/// `auction,start,end,count,sum` of every session over bids `0..n`.
fn expected(n: i64) -> Vec<String> {
    let mut by_auction: BTreeMap<i64, Vec<(i64, i64)>> = BTreeMap::new();
    for id in 0..n {
        let (auction, _, price, t) = bid(id);
        if price > 5000 {
            by_auction.entry(auction).or_default().push((t, price));
        }
    }
    let mut out = Vec::new();
    for (auction, bids) in by_auction {
        // (start, end, count, sum); bids are in time order.
        let mut s: Option<(i64, i64, i64, i64)> = None;
        for (t, p) in bids {
            match s.as_mut() {
                Some(cur) if t <= cur.1 => *cur = (cur.0, t + GAP, cur.2 + 1, cur.3 + p),
                _ => {
                    if let Some((a, b, c, d)) = s {
                        out.push(format!("{auction},{a},{b},{c},{d}"));
                    }
                    s = Some((t, t + GAP, 1, p));
                }
            }
        }
        if let Some((a, b, c, d)) = s {
            out.push(format!("{auction},{a},{b},{c},{d}"));
        }
    }
    out.sort();
    out
}

fn job(env: &StreamEnvironment, n: i64, batch: i64, rate: u64, inject: Option<&'static Inject>, out: &Path) {
    sink_lines(&sessions(&bids(env, n, batch, rate, inject)), out);
}

#[test]
fn sessions_are_exact_at_parallelism_1_and_2() {
    let want = expected(N);
    assert_eq!(want.len(), 23_839, "Flink's row count");
    for p in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let mc = cluster(p, &[]);
        let mut env = StreamEnvironment::new();
        env.set_parallelism(p);
        job(&env, N, 1000, 0, None, dir.path());
        run(&mc, env.build_job_graph("session").unwrap());
        assert_lines(&read_lines(dir.path()), &want, &format!("parallelism {p}"));
    }
}

#[test]
fn after_an_injected_failure_the_sessions_are_exactly_the_same() {
    let n = 120_000;
    let dir = tempfile::tempdir().unwrap();
    run_with_one_failure("session failure", |env, inject| job(env, n, 500, 100, Some(inject), dir.path()));
    assert_lines(&read_lines(dir.path()), &expected(n), "exactly once");
}

#[test]
fn a_savepoint_at_parallelism_2_restores_at_3_and_at_1_with_the_same_sessions() {
    let n = 120_000;
    let want = expected(n);
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");
    let mc = cluster(3, &[("state.storage.fs.memory-threshold", "0")]);
    let build = |parallelism: u32, out: &Path, savepoint: Option<&Path>| {
        let mut env = StreamEnvironment::new();
        env.set_parallelism(parallelism);
        if let Some(sp) = savepoint {
            env.set_config("execution.savepoint.path", &sp.display().to_string());
        }
        job(&env, n, 500, 100, None, out);
        env.build_job_graph("session savepoint").unwrap()
    };
    let h = mc.submit(build(2, &first, None)).unwrap();
    wait_running(&mc, &h);
    std::thread::sleep(std::time::Duration::from_millis(400));
    let sp = savepoint_with_retry(|| h.cancel_with_savepoint(Some(dir.path().join("savepoints"))));
    assert_eq!(h.wait(WAIT).unwrap().status, JobStatus::Canceled);
    assert!(read_lines(&first).len() < want.len(), "cancelled before the end");
    for parallelism in [3, 1] {
        let out = dir.path().join(format!("restored-{parallelism}"));
        copy_dir(&first, &out);
        run(&mc, build(parallelism, &out, Some(&sp)));
        assert_lines(&read_lines(&out), &want, &format!("restored at parallelism {parallelism}"));
    }
}
