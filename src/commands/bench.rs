//! The benchmark commands: one workload in process or on a local cluster, one result line in
//! the Flink harness's format.

use anyhow::Result;
use riffle::scenarios::bench;
use riffle::Configuration;

/// A workload on a local cluster of one-slot TaskManager processes.
pub fn bench_cluster(workload: &str, events: u64, parallelism: u32, defines: &[String]) -> Result<()> {
    let w: bench::Workload = workload.parse()?;
    let (seconds, rate) = crate::bench_cluster::run(&w.to_string(), events, parallelism, defines)?;
    println!(
        "engine=riffle-cluster workload={w} events={events} parallelism={parallelism} taskmanagers={parallelism} seconds={seconds:.3} events_per_sec={rate:.0}"
    );
    Ok(())
}

/// A workload in process, with its peak resident memory.
pub fn bench(workload: &str, events: u64, parallelism: u32, check: bool, conf: &Configuration) -> Result<()> {
    let w: bench::Workload = workload.parse()?;
    let r = bench::run_bench_with(w, events, parallelism, check, conf)?;
    if check {
        eprintln!("bench: check OK {w} events={events} parallelism={parallelism}");
    }
    let checkpoints = match (r.checkpoints_completed, r.checkpoint_last_ms, r.checkpoint_last_bytes) {
        (Some(n), Some(ms), Some(bytes)) => format!(
            " checkpoints_completed={n} checkpoint_last_ms={ms} checkpoint_last_bytes={bytes} checkpoint_last_sync_ms={} checkpoint_last_async_ms={}",
            r.checkpoint_last_sync_ms.unwrap_or(0),
            r.checkpoint_last_async_ms.unwrap_or(0)
        ),
        _ => String::new(),
    };
    println!(
        "engine=riffle workload={w} events={events} parallelism={parallelism} seconds={:.3} events_per_sec={:.0} peak_rss_kb={}{checkpoints}",
        r.seconds,
        r.events_per_sec,
        peak_rss_kb()
    );
    Ok(())
}

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
