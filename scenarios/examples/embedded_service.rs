//! A service that embeds riffle: it starts a MiniCluster inside its own process, on its own
//! tokio runtime, submits a job built from the requests it received, awaits the result
//! without blocking its runtime, and shuts the cluster down cleanly.
//!
//! Run it with `cargo run -p riffle-scenarios --example embedded_service`.

use std::error::Error;

use riffle_api::{Collector, StreamEnvironment};
use riffle_cluster::{JobStatus, MiniCluster, MiniClusterConfig};

/// Counts the words of `requests` on an embedded cluster; returns (word, count) sorted.
pub async fn run_service(requests: Vec<String>) -> Result<Vec<(String, u64)>, Box<dyn Error + Send + Sync>> {
    let cluster = MiniCluster::start(MiniClusterConfig::new(1, 2))?;
    let mut env = StreamEnvironment::new();
    env.set_parallelism(2);
    let counts = env
        .from_collection(requests)
        .flat_map(|line: String, out: &mut Collector<'_, (String, u64)>| {
            for w in line.split_whitespace() {
                out.collect((w.to_lowercase(), 1));
            }
        })
        .key_by(|t: &(String, u64)| t.0.clone())
        .sum(|t: &mut (String, u64)| &mut t.1)
        .collect();
    let job = cluster.submit_async(env.build_job_graph("request words")?).await?;
    // Collected records arrive on a blocking iterator: read it off the async runtime.
    let reader = tokio::task::spawn_blocking(move || {
        let mut last = std::collections::BTreeMap::new();
        for (w, c) in counts {
            last.insert(w, c);
        }
        last
    });
    let result = job.wait_async().await?;
    if result.status != JobStatus::Finished {
        return Err(format!("job ended {}: {}", result.status, result.error.unwrap_or_default()).into());
    }
    let last = reader.await?;
    cluster.shutdown();
    Ok(last.into_iter().collect())
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let requests = vec!["GET /index".to_string(), "get /about".to_string(), "POST /index".to_string()];
    for (w, c) in rt.block_on(run_service(requests))? {
        println!("{w},{c}");
    }
    Ok(())
}
