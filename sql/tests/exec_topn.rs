//! Regular Top-N as a changelog (the 3 highest bids by price, then id, per auction, with and without
//! the rank number) through real jobs: the materialized table exact at parallelism 1 and 2
//! and after an injected failure.

mod exec_common;

use std::collections::BTreeMap;
use std::path::Path;

use exec_common::*;
use riffle_api::StreamEnvironment;
use riffle_sql::exec::{top_n, TopNSpec};

fn spec(with_rank_number: bool) -> TopNSpec {
    TopNSpec {
        partition_columns: vec![1],
        order_by: vec![(3, true), (0, false)],
        limit: 3,
        with_rank_number,
        input_schema: bids_schema(),
    }
}

/// `id,auction,bidder,price,dateTime[,rn]` of the 3 highest bids per auction among `0..n`
/// (an auction's bids 10,000 ids apart have the same price: the earlier id ranks first).
fn expected(n: i64, with_rank_number: bool) -> Vec<String> {
    let mut by_auction: BTreeMap<i64, Vec<(i64, i64)>> = BTreeMap::new();
    for id in 0..n {
        let (a, _, p, _) = bid(id);
        by_auction.entry(a).or_default().push((p, id));
    }
    let mut out = Vec::new();
    for (_, mut bids) in by_auction {
        bids.sort_by(|x, y| y.0.cmp(&x.0).then(x.1.cmp(&y.1)));
        for (rn, (_, id)) in bids.into_iter().take(3).enumerate() {
            let (a, b, p, t) = bid(id);
            let rn = if with_rank_number { format!(",{}", rn + 1) } else { String::new() };
            out.push(format!("{id},{a},{b},{p},{t}{rn}"));
        }
    }
    out.sort();
    out
}

fn job(env: &StreamEnvironment, n: i64, batch: i64, rate: u64, inject: Option<&'static Inject>, rn: bool, out: &Path) {
    sink_lines(&top_n(&bids(env, n, batch, rate, inject), &spec(rn)).unwrap(), out);
}

fn table(dir: &Path) -> Vec<String> {
    let mut t = BTreeMap::new();
    apply_changelog(&mut t, &read_changelog(dir, |_| true));
    table_lines(&t)
}

#[test]
fn the_top_3_bids_per_auction_are_exact_at_parallelism_1_and_2() {
    for rn in [true, false] {
        let want = expected(N, rn);
        assert_eq!(want.len(), 3000);
        for p in [1, 2] {
            let dir = tempfile::tempdir().unwrap();
            let mc = cluster(p, &[]);
            let mut env = StreamEnvironment::new();
            env.set_parallelism(p);
            job(&env, N, 1000, 0, None, rn, dir.path());
            run(&mc, env.build_job_graph("top-n").unwrap());
            assert_lines(&table(dir.path()), &want, &format!("parallelism {p}, rank number {rn}"));
        }
    }
}

#[test]
fn after_an_injected_failure_the_top_3_are_exactly_the_same() {
    let n = 120_000;
    let dir = tempfile::tempdir().unwrap();
    run_with_one_failure("top-n failure", |env, inject| job(env, n, 500, 100, Some(inject), true, dir.path()));
    assert_lines(&table(dir.path()), &expected(n, true), "exactly once");
}
