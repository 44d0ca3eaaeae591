//! Event-time deduplication keeping the first row (the `dedup` query: the first bid of every
//! bidder) through real jobs: exact rows computed here at parallelism 1 and 2 and after an
//! injected failure.

mod exec_common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use exec_common::*;
use riffle_api::StreamEnvironment;
use riffle_cluster::JobStatus;
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
    static ARMED: AtomicBool = AtomicBool::new(false);
    static FAILED: AtomicBool = AtomicBool::new(false);
    static INJECT: Inject = Inject { armed: &ARMED, failed: &FAILED };
    let n = 150_000;
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
    job(&env, n, 500, 100, Some(&INJECT), dir.path());
    let h = mc.submit(env.build_job_graph("dedup failure").unwrap()).unwrap();
    wait_checkpoints(&mc, &h, 2);
    ARMED.store(true, Ordering::SeqCst);
    let r = h.wait(WAIT).unwrap();
    assert_eq!(r.status, JobStatus::Finished, "{:?}", r.error);
    assert!(FAILED.load(Ordering::SeqCst), "the failure was injected");
    assert_lines(&read_lines(dir.path()), &expected(n), "exactly once");
}
