#![allow(dead_code)]
use std::time::Duration;

use riffle_api::{CollectStream, StreamEnvironment};
use riffle_cluster::{JobResult, JobStatus, MiniCluster, MiniClusterConfig};

pub const WAIT: Option<Duration> = Some(Duration::from_secs(60));

pub fn cluster(task_executors: u32, slots: u32) -> MiniCluster {
    MiniCluster::start(MiniClusterConfig::new(task_executors, slots)).expect("mini cluster starts")
}

/// Runs the job, drains `out`, and checks it finished.
pub fn run<T>(mc: &MiniCluster, env: &StreamEnvironment, out: CollectStream<T>) -> Vec<T> {
    let (v, r) = run_result(mc, env, out);
    assert_eq!(r.status, JobStatus::Finished, "job failed: {:?}", r.error);
    v
}

pub fn run_result<T>(mc: &MiniCluster, env: &StreamEnvironment, out: CollectStream<T>) -> (Vec<T>, JobResult) {
    let h = mc.submit(env.build_job_graph("test").expect("graph builds")).expect("submitted");
    let v: Vec<T> = out.collect();
    let r = h.wait(WAIT).expect("job ends");
    (v, r)
}

pub fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}
