//! Event-time deduplication keeping the first row (the `dedup` query: the first bid of every
//! bidder) through real jobs: exact rows computed here at parallelism 1 and 2 and after an
//! injected failure.

mod exec_common;

use std::collections::BTreeMap;
use std::path::Path;

use exec_common::*;
use riffle_api::StreamEnvironment;
use riffle_sql::exec::{deduplicate_first, DedupSpec};

/// `id,auction,bidder,price,dateTime` of every bidder's first bid among bids `0..n`.
fn expected(n: i64) -> Vec<String> {
    let mut first: BTreeMap<i64, i64> = BTreeMap::new();
    for id in 0..n {
        first.entry(bid(id).1).or_insert(id);
    }
    let mut v: Vec<String> = first
        .values()
        .map(|&id| {
            let (a, b, p, t) = bid(id);
            format!("{id},{a},{b},{p},{t}")
        })
        .collect();
    v.sort();
    v
}

fn job(env: &StreamEnvironment, n: i64, batch: i64, rate: u64, inject: Option<&'static Inject>, out: &Path) {
    let spec = DedupSpec { key_columns: vec![2], time_column: 4, input_schema: bids_schema() };
    sink_lines(&deduplicate_first(&bids(env, n, batch, rate, inject), &spec).unwrap(), out);
}

#[test]
fn the_first_bid_of_every_bidder_is_exact_at_parallelism_1_and_2() {
    let want = expected(N);
    assert_eq!(want.len(), 100_000, "Flink's row count");
    for p in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let mc = cluster(p, &[]);
        let mut env = StreamEnvironment::new();
        env.set_parallelism(p);
        job(&env, N, 1000, 0, None, dir.path());
        run(&mc, env.build_job_graph("dedup").unwrap());
        assert_lines(&read_lines(dir.path()), &want, &format!("parallelism {p}"));
    }
}

#[test]
fn after_an_injected_failure_the_first_rows_are_exactly_the_same() {
    let n = 150_000;
    let dir = tempfile::tempdir().unwrap();
    run_with_one_failure("dedup failure", |env, inject| job(env, n, 500, 100, Some(inject), dir.path()));
    assert_lines(&read_lines(dir.path()), &expected(n), "exactly once");
}
