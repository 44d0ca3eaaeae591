//! Throughput of the window aggregation, q5_like-shaped (bids per auction per 10-s tumbling
//! window) — an ignored test, meant for release builds:
//!
//! ```text
//! cargo test --release -p riffle-sql --test exec_bench -- --ignored --nocapture
//! ```
//!
//! `RIFFLE_BENCH_EVENTS` (default 10,000,000) and `RIFFLE_BENCH_PARALLELISM` (default 1)
//! change the run. It prints one line: events, parallelism, seconds (submit to finish, the
//! bids' generation included) and events/s. Flink 2.3 runs q5_like at about 1.0 M events/s at
//! p=1 on the 2-core machine the benchmark was measured on.

mod exec_common;

use std::time::Instant;

use datafusion_functions_aggregate::count::count_udaf;
use exec_common::*;
use riffle_api::StreamEnvironment;
use riffle_sql::exec::window_agg::default_output_schema;
use riffle_sql::exec::{window_aggregate, WindowAggSpec, WindowKind};

fn env_or(name: &str, default: i64) -> i64 {
    std::env::var(name).ok().and_then(|v| v.replace('_', "").parse().ok()).unwrap_or(default)
}

#[test]
#[ignore = "a benchmark: run in release mode with --ignored --nocapture"]
fn q5_like_tumbling_window_throughput() {
    let events = env_or("RIFFLE_BENCH_EVENTS", 10_000_000);
    let parallelism = env_or("RIFFLE_BENCH_PARALLELISM", 1) as u32;
    let schema = bids_schema();
    let aggregates = vec![agg(count_udaf(), &["*"], &schema, "num")];
    let spec = WindowAggSpec {
        window: WindowKind::Tumble { size: 10_000 },
        time_column: 4,
        key_columns: vec![1],
        output_schema: default_output_schema(&schema, &[1], &aggregates),
        aggregates,
        input_schema: schema,
        local_global: true,
    };
    let mc = cluster(parallelism, &[]);
    let mut env = StreamEnvironment::new();
    env.set_parallelism(parallelism);
    let out = window_aggregate(&bids(&env, events, 8192, 0, None), &spec).unwrap();
    let rows = out.map(|r: riffle_connectors::Rows| r.num_rows() as u64).collect();
    let graph = env.build_job_graph("q5_like bench").unwrap();
    let start = Instant::now();
    let h = mc.submit(graph).unwrap();
    let total: u64 = rows.sum();
    let r = h.wait(WAIT).unwrap();
    let seconds = start.elapsed().as_secs_f64();
    assert_eq!(r.status, riffle_cluster::JobStatus::Finished, "{:?}", r.error);
    // Every auction bids once a second: 1000 rows per full window, the last one partial.
    let windows = (events + 9_999) / 10_000;
    assert_eq!(total as i64, 1000 * (windows - 1) + (events - (windows - 1) * 10_000).min(1000));
    println!(
        "query=q5_like events={events} parallelism={parallelism} seconds={seconds:.3} events_per_sec={:.0}",
        events as f64 / seconds
    );
}
