//! Unbounded GROUP BY aggregation (the `groupby` query: COUNT(*), SUM(price), MAX(price) per
//! auction) through real jobs: the exact changelog of a small input, the exact materialized
//! table at parallelism 1 and 2 (with and without -U), after an injected failure, and after a
//! savepoint restored at another parallelism.

mod exec_common;

use std::collections::BTreeMap;
use std::path::Path;

use datafusion_functions_aggregate::count::count_udaf;
use datafusion_functions_aggregate::min_max::max_udaf;
use datafusion_functions_aggregate::sum::sum_udaf;
use exec_common::*;
use riffle_api::DataStream;
use riffle_api::StreamEnvironment;
use riffle_cluster::JobStatus;
use riffle_connectors::Rows;
use riffle_sql::exec::group_agg::default_output_schema;
use riffle_sql::exec::{group_aggregate, GroupAggSpec};

fn spec(emit_update_before: bool) -> GroupAggSpec {
    let schema = bids_schema();
    let aggregates = vec![
        agg(count_udaf(), &["*"], &schema, "num"),
        agg(sum_udaf(), &["price"], &schema, "total_price"),
        agg(max_udaf(), &["price"], &schema, "max_price"),
    ];
    let output_schema = default_output_schema(&schema, &[1], &aggregates);
    GroupAggSpec {
        key_columns: vec![1],
        aggregates,
        input_schema: schema,
        output_schema,
        input_changelog: false,
        emit_update_before,
    }
}

/// `auction,num,total,max` per auction over bids `0..n`.
fn expected(n: i64) -> Vec<String> {
    let mut m: BTreeMap<i64, (i64, i64, i64)> = BTreeMap::new();
    for id in 0..n {
        let (auction, _, price, _) = bid(id);
        let e = m.entry(auction).or_insert((0, 0, 0));
        *e = (e.0 + 1, e.1 + price, e.2.max(price));
    }
    let mut v: Vec<String> = m.iter().map(|(a, (c, s, x))| format!("{a},{c},{s},{x}")).collect();
    v.sort();
    v
}

/// The final table of a changelog: with -U, a multiset; without, the last row per key
/// (the first column) wins.
fn materialize(lines: &[String], retracting: bool) -> Vec<String> {
    if retracting {
        let mut t = BTreeMap::new();
        apply_changelog(&mut t, lines);
        table_lines(&t)
    } else {
        let mut by_key: BTreeMap<String, String> = BTreeMap::new();
        for l in lines {
            let (row, op) = l.rsplit_once(',').unwrap();
            assert!(op == "0" || op == "2", "an upsert stream has only +I and +U: {l}");
            by_key.insert(row.split(',').next().unwrap().to_string(), row.to_string());
        }
        let mut v: Vec<String> = by_key.into_values().collect();
        v.sort();
        v
    }
}

fn job(
    env: &StreamEnvironment,
    n: i64,
    batch: i64,
    rate: u64,
    inject: Option<&'static Inject>,
    retracting: bool,
    out: &Path,
) {
    let rows = group_aggregate(&bids(env, n, batch, rate, inject), &spec(retracting)).unwrap();
    sink_lines(&rows, out);
}

#[test]
fn two_batches_give_inserts_then_one_update_per_auction() {
    for retracting in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let mc = cluster(1, &[]);
        let mut env = StreamEnvironment::new();
        env.set_parallelism(1);
        job(&env, 2000, 1000, 0, None, retracting, dir.path());
        run(&mc, env.build_job_graph("groupby changelog").unwrap());
        let mut got = read_lines(dir.path());
        got.sort();
        // Each block of 1000 consecutive ids bids once on every auction.
        let mut want = Vec::new();
        for id in 0..1000 {
            let (a, _, p1, _) = bid(id);
            let (_, _, p2, _) = bid(a_second(a));
            want.push(format!("{a},1,{p1},{p1},0"));
            if retracting {
                want.push(format!("{a},1,{p1},{p1},1"));
            }
            want.push(format!("{a},2,{},{},2", p1 + p2, p1.max(p2)));
        }
        want.sort();
        assert_lines(&got, &want, &format!("retracting {retracting}"));
    }
}

/// The id in 1000..2000 that bids on auction `a`.
fn a_second(a: i64) -> i64 {
    (1000..2000).find(|&id| bid(id).0 == a).unwrap()
}

#[test]
fn the_final_table_is_exact_at_parallelism_1_and_2_with_and_without_update_before() {
    let want = expected(N);
    assert_eq!(want.len(), 1000, "Flink's row count");
    for (p, retracting) in [(1, true), (2, true), (2, false)] {
        let dir = tempfile::tempdir().unwrap();
        let mc = cluster(p, &[]);
        let mut env = StreamEnvironment::new();
        env.set_parallelism(p);
        job(&env, N, 1000, 0, None, retracting, dir.path());
        run(&mc, env.build_job_graph("groupby").unwrap());
        let got = materialize(&read_changelog(dir.path(), |_| true), retracting);
        assert_lines(&got, &want, &format!("parallelism {p}, -U {retracting}"));
    }
}

#[test]
fn after_an_injected_failure_the_table_is_exactly_the_same() {
    let n = 120_000;
    let dir = tempfile::tempdir().unwrap();
    run_with_one_failure("groupby failure", |env, inject| job(env, n, 500, 100, Some(inject), true, dir.path()));
    // The changelog replays cleanly: every -U retracts a row the table holds.
    assert_lines(&materialize(&read_changelog(dir.path(), |_| true), true), &expected(n), "exactly once");
}

#[test]
fn a_savepoint_at_parallelism_2_restores_at_3_and_at_1_with_the_same_table() {
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
        job(&env, n, 500, 100, None, true, out);
        env.build_job_graph("groupby savepoint").unwrap()
    };
    let h = mc.submit(build(2, &first, None)).unwrap();
    wait_running(&mc, &h);
    std::thread::sleep(std::time::Duration::from_millis(400));
    let sp = savepoint_with_retry(|| h.cancel_with_savepoint(Some(dir.path().join("savepoints"))));
    assert_eq!(h.wait(WAIT).unwrap().status, JobStatus::Canceled);
    let mut committed = BTreeMap::new();
    apply_changelog(&mut committed, &read_changelog(&first, |_| true));
    assert!(table_lines(&committed) != want, "cancelled before the end");
    for parallelism in [3, 1] {
        let out = dir.path().join(format!("restored-{parallelism}"));
        copy_dir(&first, &out);
        // The first run's parts (those pending at the savepoint are committed by the restore,
        // keeping their time) come before the restored run's, which may reuse names of parts
        // written after the savepoint.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let restored_at = std::time::SystemTime::now();
        run(&mc, build(parallelism, &out, Some(&sp)));
        let mut t = BTreeMap::new();
        apply_changelog(&mut t, &read_changelog(&out, |p| written_before(p, restored_at)));
        apply_changelog(&mut t, &read_changelog(&out, |p| !written_before(p, restored_at)));
        assert_lines(&table_lines(&t), &want, &format!("restored at parallelism {parallelism}"));
    }
}

/// The second level over the first one's changelog (with -U): per `num`, COUNT(*) of the
/// auctions, SUM(total_price), MAX(max_price) — retractions move an auction from one count to
/// the next, MAX retracts.
fn second_level(first: &DataStream<Rows>) -> DataStream<Rows> {
    let schema = spec(true).output_schema;
    let aggregates = vec![
        agg(count_udaf(), &["*"], &schema, "auctions"),
        agg(sum_udaf(), &["total_price"], &schema, "total"),
        agg(max_udaf(), &["max_price"], &schema, "max"),
    ];
    let output_schema = default_output_schema(&schema, &[1], &aggregates);
    let spec = GroupAggSpec {
        key_columns: vec![1],
        aggregates,
        input_schema: schema,
        output_schema,
        input_changelog: true,
        emit_update_before: true,
    };
    group_aggregate(first, &spec).unwrap()
}

/// `num,auctions,total,max` over the final first-level table of bids `0..n`.
fn expected_second(n: i64) -> Vec<String> {
    let mut m: BTreeMap<i64, (i64, i64, i64)> = BTreeMap::new();
    for line in expected(n) {
        let v: Vec<i64> = line.split(',').map(|x| x.parse().unwrap()).collect();
        let e = m.entry(v[1]).or_insert((0, 0, 0));
        *e = (e.0 + 1, e.1 + v[2], e.2.max(v[3]));
    }
    m.iter().map(|(k, (c, s, x))| format!("{k},{c},{s},{x}")).collect()
}

fn second_job(env: &StreamEnvironment, n: i64, batch: i64, rate: u64, inject: Option<&'static Inject>, out: &Path) {
    let first = group_aggregate(&bids(env, n, batch, rate, inject), &spec(true)).unwrap();
    sink_lines(&second_level(&first), out);
}

#[test]
fn a_group_by_over_a_changelog_retracts_exactly_at_parallelism_1_and_2() {
    assert_eq!(expected_second(N).len(), 2, "every auction has 234 or 235 bids");
    // The second level re-aggregates a touched group from all its values: a smaller input at
    // parallelism 1.
    for (p, n) in [(1, 120_000), (2, N)] {
        let want = expected_second(n);
        let dir = tempfile::tempdir().unwrap();
        let mc = cluster(p, &[]);
        let mut env = StreamEnvironment::new();
        env.set_parallelism(p);
        second_job(&env, n, 1000, 0, None, dir.path());
        run(&mc, env.build_job_graph("groupby over a changelog").unwrap());
        let got = materialize(&read_changelog(dir.path(), |_| true), true);
        assert_lines(&got, &want, &format!("parallelism {p}"));
    }
}

#[test]
fn after_an_injected_failure_the_group_by_over_a_changelog_is_exactly_the_same() {
    // Paced slowly: the second level re-aggregates a touched group from all its values.
    let n = 60_000;
    let dir = tempfile::tempdir().unwrap();
    run_with_one_failure("groupby over a changelog failure", |env, inject| {
        second_job(env, n, 500, 20, Some(inject), dir.path())
    });
    assert_lines(&materialize(&read_changelog(dir.path(), |_| true), true), &expected_second(n), "exactly once");
}
