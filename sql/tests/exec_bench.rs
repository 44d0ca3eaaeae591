//! Throughput of the streaming SQL operators on the benchmark's bids — an ignored test, meant
//! for release builds:
//!
//! ```text
//! cargo test --release -p riffle-sql --test exec_bench -- --ignored --nocapture
//! ```
//!
//! `RIFFLE_BENCH_QUERY` picks the query (`q5_like`, the default: bids per auction per 10-s
//! tumbling window; `q7_like`: max price and count per window, no key; `hop`: per auction,
//! slide 2 s, size 10 s; `cumulate`: step 2 s, max 10 s; `groupby`: COUNT, SUM, MAX per
//! auction as an upsert changelog), `RIFFLE_BENCH_EVENTS` the events (default 10,000,000)
//! and `RIFFLE_BENCH_PARALLELISM` the parallelism (default 1). It prints one line: query,
//! events, parallelism, seconds (submit to finish, the bids' generation included) and
//! events/s. Flink 2.3 runs q5_like at about 1.0 M events/s at p=1 on the 2-core machine the
//! benchmark was measured on.

mod exec_common;

use std::time::Instant;

use datafusion_functions_aggregate::count::count_udaf;
use datafusion_functions_aggregate::min_max::max_udaf;
use datafusion_functions_aggregate::sum::sum_udaf;
use exec_common::*;
use riffle_api::StreamEnvironment;
use riffle_connectors::Rows;
use riffle_sql::exec::{group_aggregate, window_aggregate, GroupAggSpec, WindowAggSpec, WindowKind};

fn env_or(name: &str, default: i64) -> i64 {
    std::env::var(name).ok().and_then(|v| v.replace('_', "").parse().ok()).unwrap_or(default)
}

fn window_spec(window: WindowKind, keyed: bool) -> WindowAggSpec {
    let schema = bids_schema();
    let (key_columns, aggregates) = if keyed {
        (vec![1], vec![agg(count_udaf(), &["*"], &schema, "num")])
    } else {
        (vec![], vec![agg(max_udaf(), &["price"], &schema, "maxprice"), agg(count_udaf(), &["*"], &schema, "num")])
    };
    WindowAggSpec {
        window,
        time_column: 4,
        output_schema: riffle_sql::exec::window_agg::default_output_schema(&schema, &key_columns, &aggregates),
        key_columns,
        aggregates,
        input_schema: schema,
        local_global: true,
    }
}

fn groupby_spec() -> GroupAggSpec {
    let schema = bids_schema();
    let aggregates = vec![
        agg(count_udaf(), &["*"], &schema, "num"),
        agg(sum_udaf(), &["price"], &schema, "total_price"),
        agg(max_udaf(), &["price"], &schema, "max_price"),
    ];
    GroupAggSpec {
        key_columns: vec![1],
        output_schema: riffle_sql::exec::group_agg::default_output_schema(&schema, &[1], &aggregates),
        aggregates,
        input_schema: schema,
        input_changelog: false,
        emit_update_before: false,
    }
}

#[test]
#[ignore = "a benchmark: run in release mode with --ignored --nocapture"]
fn sql_operator_throughput() {
    let query = std::env::var("RIFFLE_BENCH_QUERY").unwrap_or_else(|_| "q5_like".into());
    let events = env_or("RIFFLE_BENCH_EVENTS", 10_000_000);
    let parallelism = env_or("RIFFLE_BENCH_PARALLELISM", 1) as u32;
    let mc = cluster(parallelism, &[]);
    let mut env = StreamEnvironment::new();
    env.set_parallelism(parallelism);
    let input = bids(&env, events, 8192, 0, None);
    let ten_s = 10_000;
    let out = match query.as_str() {
        "q5_like" => window_aggregate(&input, &window_spec(WindowKind::Tumble { size: ten_s }, true)),
        "q7_like" => window_aggregate(&input, &window_spec(WindowKind::Tumble { size: ten_s }, false)),
        "hop" => window_aggregate(&input, &window_spec(WindowKind::Hop { slide: 2000, size: ten_s }, true)),
        "cumulate" => {
            window_aggregate(&input, &window_spec(WindowKind::Cumulate { step: 2000, max_size: ten_s }, true))
        }
        "groupby" => group_aggregate(&input, &groupby_spec()),
        other => panic!("unknown RIFFLE_BENCH_QUERY {other}"),
    }
    .unwrap();
    let rows = out.map(|r: Rows| r.num_rows() as u64).collect();
    let graph = env.build_job_graph("sql operator bench").unwrap();
    let start = Instant::now();
    let h = mc.submit(graph).unwrap();
    let total: u64 = rows.sum();
    let r = h.wait(WAIT).unwrap();
    let seconds = start.elapsed().as_secs_f64();
    assert_eq!(r.status, riffle_cluster::JobStatus::Finished, "{:?}", r.error);
    if query == "q5_like" {
        // Every auction bids once a second: 1000 rows per full window, the last one partial.
        let windows = (events + 9_999) / 10_000;
        assert_eq!(total as i64, 1000 * (windows - 1) + (events - (windows - 1) * 10_000).min(1000));
    }
    assert!(total > 0);
    println!(
        "query={query} events={events} parallelism={parallelism} seconds={seconds:.3} events_per_sec={:.0} result_rows={total}",
        events as f64 / seconds
    );
}
