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

/// Sums values per key in keyed state; emits each key's sum once, at the final watermark
/// (so a job cancelled before its end emits nothing, and a restored one the exact sums).
#[derive(Clone)]
pub struct FinalSum;

impl riffle_api::KeyedProcessFunction<u64, u64, (u64, u64)> for FinalSum {
    fn process_element(
        &mut self,
        v: u64,
        ctx: &mut riffle_api::ProcessContext<'_, u64, (u64, u64)>,
    ) -> Result<(), riffle_api::UserError> {
        let sum = ctx.state().value_state::<u64>("sum")?;
        let cur = sum.get(ctx.state())?.copied();
        if cur.is_none() {
            ctx.register_event_time_timer(riffle_api::MAX_WATERMARK - 1);
        }
        sum.set(ctx.state(), cur.unwrap_or(0) + v)?;
        Ok(())
    }
    fn on_timer(
        &mut self,
        _: i64,
        _: riffle_api::TimeDomain,
        ctx: &mut riffle_api::ProcessContext<'_, u64, (u64, u64)>,
    ) -> Result<(), riffle_api::UserError> {
        let s = ctx.state().value_state::<u64>("sum")?.get(ctx.state())?.copied().unwrap_or(0);
        let k = *ctx.key();
        ctx.collect((k, s));
        Ok(())
    }
}

/// Retries `f` (a savepoint needs every task running) for up to 20 s.
pub fn savepoint_with_retry(
    f: impl Fn() -> Result<std::path::PathBuf, riffle_cluster::ClusterError>,
) -> std::path::PathBuf {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match f() {
            Ok(p) => return p,
            Err(e) => {
                assert!(std::time::Instant::now() < deadline, "no savepoint: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}
