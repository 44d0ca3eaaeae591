//! Window Top-N (the `topn` query: the 3 highest bids by price per 10-s tumbling window; and
//! the highest bid per auction per window) through real jobs: exact rows computed here, at
//! parallelism 1 and 2 and after an injected failure.

mod exec_common;

use std::collections::BTreeMap;
use std::path::Path;

use exec_common::*;
use riffle_api::StreamEnvironment;
use riffle_sql::exec::{window_top_n, WindowKind, WindowTopNSpec};

const TEN_S: i64 = 10_000;

fn spec(by_auction: bool, limit: usize) -> WindowTopNSpec {
    WindowTopNSpec {
        window: WindowKind::Tumble { size: TEN_S },
        time_column: 4,
        partition_columns: if by_auction { vec![1] } else { vec![] },
        order_by: vec![(3, true)],
        limit,
        input_schema: bids_schema(),
    }
}

/// `id,auction,bidder,price,dateTime,window_start,window_end,rn` of the `limit` highest
/// bids per window (and auction) among bids `0..n`.
fn expected(n: i64, by_auction: bool, limit: usize) -> Vec<String> {
    let mut parts: BTreeMap<(i64, i64), Vec<(i64, i64)>> = BTreeMap::new();
    for id in 0..n {
        let (a, _, p, t) = bid(id);
        let ws = t - t.rem_euclid(TEN_S);
        parts.entry((ws, if by_auction { a } else { 0 })).or_default().push((p, id));
    }
    let mut out = Vec::new();
    for ((ws, _), mut bids) in parts {
        bids.sort_by(|x, y| y.cmp(x));
        for (rn, (_, id)) in bids.into_iter().take(limit).enumerate() {
            let (a, b, p, t) = bid(id);
            out.push(format!("{id},{a},{b},{p},{t},{ws},{},{}", ws + TEN_S, rn + 1));
        }
    }
    out.sort();
    out
}

fn job(
    env: &StreamEnvironment,
    n: i64,
    batch: i64,
    rate: u64,
    inject: Option<&'static Inject>,
    spec: &WindowTopNSpec,
    out: &Path,
) {
    sink_lines(&window_top_n(&bids(env, n, batch, rate, inject), spec).unwrap(), out);
}

#[test]
fn the_top_bids_per_window_are_exact_at_parallelism_1_and_2() {
    let top3 = expected(N, false, 3);
    assert_eq!(top3.len(), 72, "Flink's row count");
    let top_per_auction = expected(N, true, 1);
    assert_eq!(top_per_auction.len(), 24_000);
    for p in [1, 2] {
        for (spec, want) in [(spec(false, 3), &top3), (spec(true, 1), &top_per_auction)] {
            let dir = tempfile::tempdir().unwrap();
            let mc = cluster(p, &[]);
            let mut env = StreamEnvironment::new();
            env.set_parallelism(p);
            job(&env, N, 1000, 0, None, &spec, dir.path());
            run(&mc, env.build_job_graph("window top-n").unwrap());
            let what = format!("parallelism {p}, partitions {:?}", spec.partition_columns);
            assert_lines(&read_lines(dir.path()), want, &what);
        }
    }
}

#[test]
fn after_an_injected_failure_the_top_bids_are_exactly_the_same() {
    let n = 120_000;
    let dir = tempfile::tempdir().unwrap();
    run_with_one_failure("top-n failure", |env, inject| {
        job(env, n, 500, 100, Some(inject), &spec(false, 3), dir.path())
    });
    assert_lines(&read_lines(dir.path()), &expected(n, false, 3), "exactly once");
}
