//! The runtime hosted on a caller's own actix system.

use riffle_api::StreamEnvironment;
use riffle_cluster::{JobStatus, MiniCluster, MiniClusterConfig};

#[actix_rt::test]
async fn a_cluster_runs_inside_the_callers_actix_system() {
    let mc = MiniCluster::start_in_current_system(MiniClusterConfig::new(1, 2)).await.expect("starts");
    assert_eq!(mc.slot_report_async().await.unwrap().total, 2);
    let mut env = StreamEnvironment::new();
    env.set_parallelism(2);
    let out = env
        .from_sequence(1, 1000)
        .map(|x| (x % 3, x))
        .key_by(|t: &(u64, u64)| t.0)
        .sum(|t: &mut (u64, u64)| &mut t.1)
        .collect();
    let job = mc.submit_async(env.build_job_graph("in the caller's system").unwrap()).await.unwrap();
    let r = job.wait_async().await.unwrap();
    assert_eq!(r.status, JobStatus::Finished, "{:?}", r.error);
    // The results wait in the collect channel; the job is over, so reading does not block it.
    let mut last = std::collections::BTreeMap::new();
    for (k, sum) in out {
        let e = last.entry(k).or_insert(0);
        *e = sum.max(*e);
    }
    let want: std::collections::BTreeMap<u64, u64> =
        (0..3).map(|k| (k, (1..=1000u64).filter(|x| x % 3 == k).sum())).collect();
    assert_eq!(last, want);
    mc.shutdown();
}

#[test]
fn starting_in_the_current_system_outside_one_is_an_error() {
    let r = futures::executor::block_on(MiniCluster::start_in_current_system(MiniClusterConfig::new(1, 1)));
    assert!(r.is_err());
}
