use riffle_api::StreamEnvironment;
use riffle_cluster::{JobStatus, MiniCluster, MiniClusterConfig};
use std::time::Duration;

#[test]
fn keyed_sum_over_sequence() {
    let mc = MiniCluster::start(MiniClusterConfig::new(1, 2)).unwrap();
    let mut env = StreamEnvironment::new();
    env.set_parallelism(2);
    let out = env
        .from_sequence(0, 9999)
        .map(|i| (i % 7, 1u64))
        .key_by(|t: &(u64, u64)| t.0)
        .sum(|t: &mut (u64, u64)| &mut t.1)
        .collect();
    let h = mc.submit(env.build_job_graph("smoke").unwrap()).unwrap();
    let mut last = std::collections::HashMap::new();
    let mut n = 0;
    for (k, c) in out {
        last.insert(k, c);
        n += 1;
    }
    let r = h.wait(Some(Duration::from_secs(30))).unwrap();
    assert_eq!(r.status, JobStatus::Finished, "{:?}", r.error);
    assert_eq!(n, 10000);
    let total: u64 = last.values().sum();
    assert_eq!(total, 10000);
}
