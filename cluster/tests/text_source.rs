//! `read_text_file` over one large file: the file is cut into byte ranges (`source.split-size`)
//! and every source subtask reads some of them; every line arrives exactly once.

mod common;

use std::sync::atomic::Ordering;

use common::{cluster, sorted, WAIT};
use riffle_actors::JobStatus;
use riffle_api::{Configuration, StreamEnvironment};

#[test]
fn one_large_file_is_read_by_every_source_subtask_and_every_line_arrives_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.txt");
    let lines: Vec<String> = (0..50_000).map(|i| format!("line {i} {}", "x".repeat(i % 37))).collect();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let mc = cluster(1, 2);
    let mut conf = Configuration::new();
    conf.set("source.split-size", "16kb");
    let mut env = StreamEnvironment::with_config(conf);
    env.set_parallelism(2);
    // Rebalanced, so the source subtasks' own output counts show who read what.
    let out = env.read_text_file(&path).rebalance().collect();
    let job = mc.submit(env.build_job_graph("text").unwrap()).unwrap();
    let got: Vec<String> = out.collect();
    let r = job.wait(WAIT).unwrap();
    assert_eq!(r.status, JobStatus::Finished, "{:?}", r.error);
    assert_eq!(sorted(got), sorted(lines.clone()), "every line exactly once");
    let view = mc.shared().jobs.view(job.job_id()).expect("the job's view");
    let read: Vec<u64> = (0..2).map(|s| view.io(0, s).map_or(0, |io| io.records_out.load(Ordering::Relaxed))).collect();
    assert_eq!(read.iter().sum::<u64>(), lines.len() as u64, "{read:?}");
    assert!(read.iter().all(|n| *n > 0), "both source subtasks read part of the one file: {read:?}");
}
