//! Bounded event-time OVER aggregation (the `over` query: per bid, COUNT(*) and MAX(price) of
//! its auction's bids in the 10 s up to it, both ends included) through real jobs: exact rows
//! computed here at parallelism 1 and 2 and after an injected failure.

mod exec_common;

use std::collections::BTreeMap;
use std::path::Path;

use datafusion_functions_aggregate::count::count_udaf;
use datafusion_functions_aggregate::min_max::max_udaf;
use exec_common::*;
use riffle_api::StreamEnvironment;
use riffle_sql::exec::over_agg::over_output_schema;
use riffle_sql::exec::{over_aggregate, OverAggSpec};

const RANGE: i64 = 10_000;

/// `id,auction,bidder,price,dateTime,count,max` of every bid among `0..n`.
fn expected(n: i64) -> Vec<String> {
    let mut by_auction: BTreeMap<i64, Vec<(i64, i64)>> = BTreeMap::new();
    for id in 0..n {
        let (a, _, p, t) = bid(id);
        by_auction.entry(a).or_default().push((t, p));
    }
    let mut out = Vec::with_capacity(n as usize);
    for id in 0..n {
        let (a, b, p, t) = bid(id);
        // An auction's bids are in time order: its window is a range of them.
        let bids = &by_auction[&a];
        let (lo, hi) = (bids.partition_point(|(u, _)| *u < t - RANGE), bids.partition_point(|(u, _)| *u <= t));
        let window: Vec<i64> = bids[lo..hi].iter().map(|(_, q)| *q).collect();
        out.push(format!("{id},{a},{b},{p},{t},{},{}", window.len(), window.iter().max().unwrap()));
    }
    out.sort();
    out
}

fn job(env: &StreamEnvironment, n: i64, batch: i64, rate: u64, inject: Option<&'static Inject>, out: &Path) {
    let schema = bids_schema();
    let aggregates =
        vec![agg(count_udaf(), &["*"], &schema, "num_10s"), agg(max_udaf(), &["price"], &schema, "max_10s")];
    let spec = OverAggSpec {
        partition_columns: vec![1],
        time_column: 4,
        preceding_ms: RANGE,
        output_schema: over_output_schema(&schema, &aggregates),
        aggregates,
        input_schema: schema,
    };
    sink_lines(&over_aggregate(&bids(env, n, batch, rate, inject), &spec).unwrap(), out);
}

#[test]
fn every_bid_with_its_10_s_window_is_exact_at_parallelism_1_and_2() {
    let want = expected(N);
    assert_eq!(want.len(), 234_567, "Flink's row count");
    assert!(want.iter().any(|l| l.ends_with(",11,10000")), "steady state: 11 bids in range");
    for p in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let mc = cluster(p, &[]);
        let mut env = StreamEnvironment::new();
        env.set_parallelism(p);
        job(&env, N, 1000, 0, None, dir.path());
        run(&mc, env.build_job_graph("over").unwrap());
        assert_lines(&read_lines(dir.path()), &want, &format!("parallelism {p}"));
    }
}

#[test]
fn after_an_injected_failure_the_over_rows_are_exactly_the_same() {
    let n = 120_000;
    let dir = tempfile::tempdir().unwrap();
    run_with_one_failure("over failure", |env, inject| job(env, n, 500, 100, Some(inject), dir.path()));
    assert_lines(&read_lines(dir.path()), &expected(n), "exactly once");
}
