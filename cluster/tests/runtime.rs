//! The runtime under stress and failure: failing operators, cancellation, slots, backpressure,
//! idle inputs, supervision.

mod common;

use std::time::{Duration, Instant};

use common::{cluster, run_result, WAIT};
use riffle_api::source::{Assignment, Boundedness, ReadStatus, Source, SourceOutput, SourceReader, SplitEnumerator};
use riffle_api::{
    KeyedProcessFunction, ProcessContext, StreamEnvironment, UserError, WatermarkStrategy, WindowAssigner,
};
use riffle_cluster::{JobStatus, MiniCluster, MiniClusterConfig};

/// An unbounded source that never emits: a stand-in for a quiet partition.
struct Silent;
struct SilentEnum;
struct SilentReader;

impl SplitEnumerator<u32> for SilentEnum {
    fn handle_split_request(&mut self, _: u32) -> Result<Assignment<u32>, UserError> {
        Ok(Assignment { splits: vec![0], no_more_splits: false })
    }
    fn add_splits_back(&mut self, _: Vec<u32>, _: u32) {}
    fn restore(&mut self, _: &[String]) {}
}

impl SourceReader<(String, i64), u32> for SilentReader {
    fn snapshot_state(&mut self) -> riffle_api::source::ReaderState<u32> {
        riffle_api::source::ReaderState { unfinished: vec![0], finished: vec![] }
    }
    fn add_splits(&mut self, _: Vec<u32>) {}
    fn notify_no_more_splits(&mut self) {}
    fn poll_next(&mut self, _: &mut dyn SourceOutput<(String, i64)>) -> Result<ReadStatus, UserError> {
        Ok(ReadStatus::NothingAvailable)
    }
}

impl Source<(String, i64)> for Silent {
    type Split = u32;
    fn boundedness(&self) -> Boundedness {
        Boundedness::Unbounded
    }
    fn create_enumerator(&self, _: u32) -> Result<Box<dyn SplitEnumerator<u32>>, UserError> {
        Ok(Box::new(SilentEnum))
    }
    fn create_reader(&self, _: u32) -> Result<Box<dyn SourceReader<(String, i64), u32>>, UserError> {
        Ok(Box::new(SilentReader))
    }
}

#[test]
fn a_panicking_operator_fails_the_job_naming_operator_and_subtask() {
    let mc = cluster(1, 2);
    let mut env = StreamEnvironment::new();
    env.set_parallelism(2);
    let out = env
        .from_sequence(0, 100_000)
        .map(|i| {
            if i == 77_777 {
                panic!("bad record {i}");
            }
            i
        })
        .name("explode")
        .key_by(|i: &u64| i % 10)
        .reduce(|a, b| a + b)
        .collect();
    let (_, r) = run_result(&mc, &env, out);
    assert_eq!(r.status, JobStatus::Failed);
    let e = r.error.unwrap_or_default();
    assert!(e.contains("operator 'explode'"), "{e}");
    assert!(e.contains("bad record 77777"), "{e}");
    // Whichever reader asked for the split holding 77777 ran it: subtask 1/2 or 2/2.
    assert!(e.contains("subtask 1/2") || e.contains("subtask 2/2"), "{e}");
    let slots = mc.slot_report().unwrap();
    assert_eq!(slots.free, slots.total, "a failed job frees its slots");
}

#[derive(Clone)]
struct FailOnKey;
impl KeyedProcessFunction<u64, u64, u64> for FailOnKey {
    fn process_element(&mut self, v: u64, ctx: &mut ProcessContext<'_, u64, u64>) -> Result<(), UserError> {
        if *ctx.key() == 3 {
            return Err(std::io::Error::other(format!("cannot handle key 3 (value {v})")).into());
        }
        ctx.collect(v);
        Ok(())
    }
}

#[test]
fn an_error_returned_by_user_code_fails_the_job_with_its_message() {
    let mc = cluster(1, 1);
    let env = StreamEnvironment::new();
    let out = env.from_sequence(0, 10).key_by(|i: &u64| *i).process(FailOnKey).name("picky").collect();
    let (_, r) = run_result(&mc, &env, out);
    assert_eq!(r.status, JobStatus::Failed);
    let e = r.error.unwrap_or_default();
    assert!(e.contains("operator 'picky' failed: cannot handle key 3 (value 3)"), "{e}");
}

#[test]
fn cancel_stops_every_subtask_and_frees_all_slots() {
    let mc = cluster(2, 2);
    let mut env = StreamEnvironment::new();
    env.set_parallelism(4);
    env.from_source(Silent, "silent").key_by(|e: &(String, i64)| e.0.clone()).reduce(|a, _| a).discard();
    let h = mc.submit(env.build_job_graph("forever").unwrap()).unwrap();
    // Wait until all 8 subtasks (4 sources, 4 reducers) run.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let running: usize = mc.task_executor_reports().unwrap().iter().map(|r| r.running_subtasks).sum();
        if running == 8 {
            break;
        }
        assert!(Instant::now() < deadline, "subtasks did not start: {running} running");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(mc.slot_report().unwrap().free, 0);
    h.cancel().unwrap();
    let r = h.wait(WAIT).unwrap();
    assert_eq!(r.status, JobStatus::Canceled);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = mc.slot_report().unwrap();
        let running: usize = mc.task_executor_reports().unwrap().iter().map(|r| r.running_subtasks).sum();
        if s.free == s.total && s.total == 4 && running == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "slots not freed: {s:?}, {running} subtasks running");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(mc.pending_channels(), 0, "no channel left behind");
}

#[test]
fn max_slots_caps_what_a_job_gets_and_requests_time_out_with_a_clear_message() {
    let mut cfg = MiniClusterConfig::new(1, 4);
    cfg.config.set("slotmanager.number-of-slots.max", "2").set("slot.request.timeout", "300 ms");
    let mc = MiniCluster::start(cfg).unwrap();
    // Needs 3 slots: more than the cap.
    let mut env = StreamEnvironment::new();
    env.set_parallelism(3);
    let out = env.from_sequence(0, 9).collect();
    let (_, r) = run_result(&mc, &env, out);
    assert_eq!(r.status, JobStatus::Failed);
    assert!(r.error.as_deref().unwrap_or("").contains("slotmanager.number-of-slots.max is 2"), "{:?}", r.error);

    // Two jobs of 2: the second waits for the first's slots and times out.
    let mut env = StreamEnvironment::new();
    env.set_parallelism(2);
    env.from_source(Silent, "silent").discard();
    let first = mc.submit(env.build_job_graph("holder").unwrap()).unwrap();
    let mut env2 = StreamEnvironment::new();
    env2.set_parallelism(2);
    let out = env2.from_sequence(0, 9).collect();
    let (_, r) = run_result(&mc, &env2, out);
    assert_eq!(r.status, JobStatus::Failed);
    let e = r.error.unwrap_or_default();
    assert!(e.contains("slot.request.timeout = 300 ms") && e.contains("needs 2 slots"), "{e}");
    first.cancel().unwrap();
    assert_eq!(first.wait(WAIT).unwrap().status, JobStatus::Canceled);
}

#[test]
fn a_waiting_job_gets_the_slots_another_job_releases() {
    let mc = cluster(1, 1);
    let env = StreamEnvironment::new();
    env.from_source(Silent, "silent").discard();
    let first = mc.submit(env.build_job_graph("holder").unwrap()).unwrap();
    let env2 = StreamEnvironment::new();
    let out = env2.from_sequence(1, 10).collect();
    let second = mc.submit(env2.build_job_graph("waiter").unwrap()).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    first.cancel().unwrap();
    let v: Vec<u64> = out.collect();
    assert_eq!(second.wait(WAIT).unwrap().status, JobStatus::Finished);
    assert_eq!(v, (1..=10).collect::<Vec<_>>());
}

#[test]
fn a_slow_sink_backpressures_the_source_and_memory_stays_bounded() {
    let mc = cluster(1, 2);
    let mut env = StreamEnvironment::new();
    env.set_parallelism(1);
    let n: u64 = 60_000;
    env.from_sequence(0, n - 1)
        .map(|i| (i, vec![0u8; 256]))
        .rebalance()
        .map(|x| {
            std::thread::sleep(Duration::from_micros(25));
            x.0
        })
        .set_parallelism(1)
        .disable_chaining()
        .discard();
    let h = mc.submit(env.build_job_graph("slow sink").unwrap()).unwrap();
    let c = h.counters();
    let mut max_in_flight = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while c.records_out() < n {
        let inflight = c.records_in().saturating_sub(c.records_out());
        max_in_flight = max_in_flight.max(inflight);
        assert!(Instant::now() < deadline, "job too slow");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(h.wait(WAIT).unwrap().status, JobStatus::Finished);
    assert_eq!(c.records_in(), n);
    // Channel capacity (4 batches of 1024 by default) + the batch being filled + the source's
    // poll (4096) + the consumer's batch in hand: ~10k records, whatever the speed difference.
    let capacity = riffle_actors::exchange::DEFAULT_CHANNEL_CAPACITY as u64 * 1024;
    assert!(max_in_flight < capacity + 8_000, "{max_in_flight} records in flight: not bounded");
    assert!(max_in_flight > 1_000, "{max_in_flight}: the sink was not slower than the source?");
}

fn idle_job(with_idleness: bool) -> (StreamEnvironment, riffle_api::CollectStream<(String, i64, usize)>) {
    let mut env = StreamEnvironment::new();
    env.set_auto_watermark_interval(Duration::from_millis(20));
    let busy = env
        .from_collection(vec![("k".to_string(), 1_000i64), ("k".to_string(), 2_000), ("k".to_string(), 25_000)])
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_monotonous_timestamps().with_timestamp_assigner(|e: &(String, i64), _| e.1),
        );
    let mut quiet_wm =
        WatermarkStrategy::for_monotonous_timestamps().with_timestamp_assigner(|e: &(String, i64), _| e.1);
    if with_idleness {
        quiet_wm = quiet_wm.with_idleness(Duration::from_millis(100));
    }
    let quiet = env.from_source(Silent, "quiet").assign_timestamps_and_watermarks(quiet_wm);
    let out = busy
        .union(&[quiet])
        .key_by(|e: &(String, i64)| e.0.clone())
        .window(WindowAssigner::tumbling_event_time(Duration::from_secs(10)))
        .process(
            |ctx: &riffle_api::WindowContext<'_, String>,
             els: &[(String, i64)],
             out: &mut dyn FnMut((String, i64, usize))| {
                out((ctx.key.clone(), ctx.window.end, els.len()));
                Ok(())
            },
        )
        .collect();
    (env, out)
}

#[test]
fn an_idle_input_does_not_hold_back_the_watermark() {
    let mc = cluster(1, 2);
    // With idleness: the window [0, 10 s) fires while the quiet source still runs.
    let (env, mut out) = idle_job(true);
    let h = mc.submit(env.build_job_graph("idle").unwrap()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(out.next());
        let _ = tx.send(out.next());
    });
    let first = rx.recv_timeout(Duration::from_secs(20)).expect("window fired while an input was idle");
    assert_eq!(first, Some(("k".to_string(), 10_000, 2)));
    h.cancel().unwrap();
    assert_eq!(h.wait(WAIT).unwrap().status, JobStatus::Canceled);

    // Without idleness the quiet input holds the watermark back: nothing fires.
    let (env, mut out) = idle_job(false);
    let h = mc.submit(env.build_job_graph("not idle").unwrap()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(out.next());
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(1500)).is_err(),
        "a window fired although an input held the watermark back"
    );
    h.cancel().unwrap();
    assert_eq!(h.wait(WAIT).unwrap().status, JobStatus::Canceled);
}

#[test]
fn a_crashed_slot_reaches_its_task_executor_which_restarts_it_then_escalates() {
    let mc = cluster(1, 2);
    let reports = mc.task_executor_reports().unwrap();
    assert_eq!(reports[0].live_slots, 2);
    mc.crash_slot(0, 1).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = &mc.task_executor_reports().unwrap()[0];
        if r.slot_restarts == 1 && r.live_slots == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "slot not restarted: {r:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The restarted slot runs jobs again.
    let mut env = StreamEnvironment::new();
    env.set_parallelism(2);
    let out = env.from_sequence(0, 999).collect();
    let (v, r) = run_result(&mc, &env, out);
    assert_eq!(r.status, JobStatus::Finished);
    assert_eq!(v.len(), 1000);
    // Past 3 restarts a minute, the strategy escalates: the executor stops and its slots go.
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(700));
        mc.crash_slot(0, 1).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if mc.slot_report().unwrap().total == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "executor did not escalate: {:?}", mc.slot_report());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn operator_failure_in_enumerator_fails_job_clearly() {
    struct Broken;
    impl Source<u64> for Broken {
        type Split = u64;
        fn boundedness(&self) -> Boundedness {
            Boundedness::Bounded
        }
        fn create_enumerator(&self, _: u32) -> Result<Box<dyn SplitEnumerator<u64>>, UserError> {
            Err("cannot list partitions: broker unreachable".into())
        }
        fn create_reader(&self, _: u32) -> Result<Box<dyn SourceReader<u64, u64>>, UserError> {
            Err("unused".into())
        }
    }
    let mc = cluster(1, 1);
    let env = StreamEnvironment::new();
    let out = env.from_source(Broken, "broken").collect();
    let (_, r) = run_result(&mc, &env, out);
    assert_eq!(r.status, JobStatus::Failed);
    let e = r.error.unwrap_or_default();
    assert!(e.contains("source 'broken' failed to start: cannot list partitions"), "{e}");
}

#[test]
fn a_crashed_resource_manager_is_restarted_by_the_job_manager_and_slots_come_back() {
    let mc = cluster(2, 2);
    assert_eq!(mc.slot_report().unwrap().total, 4);
    mc.crash_resource_manager().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while mc.resource_manager_restarts() == 0 || mc.slot_report().map(|r| r.total).unwrap_or(0) != 4 {
        assert!(
            Instant::now() < deadline,
            "resource manager not restarted: {} restarts",
            mc.resource_manager_restarts()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(mc.resource_manager_restarts(), 1);
    assert_eq!(mc.slot_report().unwrap().total, 4, "the executors registered with the new resource manager");
    let mut env = StreamEnvironment::new();
    env.set_parallelism(4);
    let out = env.from_sequence(0, 99).collect();
    let (v, r) = run_result(&mc, &env, out);
    assert_eq!(r.status, JobStatus::Finished, "{:?}", r.error);
    assert_eq!(v.len(), 100);
}
