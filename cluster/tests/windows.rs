//! Windows with out-of-order events and late data give exact, known results.

mod common;

use std::time::Duration;

use common::{cluster, run, sorted};
use riffle_api::{
    AggregateFunction, OutputTag, StreamEnvironment, TimeWindow, WatermarkGenerator, WatermarkOutput,
    WatermarkStrategy, WindowAssigner, WindowContext,
};

/// (key, timestamp, emits a watermark at its timestamp)
type Ev = (String, i64, bool);

struct Punctuated;
impl WatermarkGenerator<Ev> for Punctuated {
    fn on_event(&mut self, e: &Ev, ts: i64, out: &mut WatermarkOutput) {
        if e.2 {
            out.emit_watermark(ts);
        }
    }
    fn on_periodic_emit(&mut self, _: &mut WatermarkOutput) {}
}

fn ev(k: &str, ts: i64, wm: bool) -> Ev {
    (k.to_string(), ts, wm)
}

fn events() -> Vec<Ev> {
    vec![
        ev("a", 1000, false),
        ev("b", 1500, false),
        ev("a", 3000, false),
        ev("a", 2000, false), // out of order, not late
        ev("a", 12000, true), // watermark 12000: fires [0, 10000)
        ev("a", 5000, false), // late, but within 5 s of allowed lateness: re-fires [0, 10000)
        ev("b", 16000, true), // watermark 16000: [0, 10000) is cleaned up (9999 + 5000 < 16000)
        ev("a", 7000, false), // too late: side output
    ]
}

struct Count;
impl AggregateFunction<Ev, u64, u64> for Count {
    fn create_accumulator(&self) -> u64 {
        0
    }
    fn add(&self, _: Ev, acc: u64) -> u64 {
        acc + 1
    }
    fn get_result(&self, acc: &u64) -> u64 {
        *acc
    }
    fn merge(&self, a: u64, b: u64) -> u64 {
        a + b
    }
}

fn timed(env: &StreamEnvironment, evs: Vec<Ev>) -> riffle_api::DataStream<Ev> {
    env.from_collection(evs).assign_timestamps_and_watermarks(
        WatermarkStrategy::for_generator(|| Box::new(Punctuated)).with_timestamp_assigner(|e: &Ev, _| e.1),
    )
}

#[test]
fn tumbling_event_time_with_lateness_and_late_side_output() {
    let mc = cluster(1, 2);
    let env = StreamEnvironment::new();
    let late = OutputTag::<Ev>::new("late");
    let windowed = timed(&env, events())
        .key_by(|e: &Ev| e.0.clone())
        .window(WindowAssigner::tumbling_event_time(Duration::from_secs(10)))
        .allowed_lateness(Duration::from_secs(5))
        .side_output_late_data(&late)
        .aggregate_with(Count, |k: &String, w: &TimeWindow, n: u64| (k.clone(), w.end, n));
    let late_out = windowed.get_side_output(&late).collect();
    let out = windowed.collect();
    let h = mc.submit(env.build_job_graph("windows").unwrap()).unwrap();
    let got = sorted(out.collect::<Vec<_>>());
    let late_got: Vec<Ev> = late_out.collect();
    let r = h.wait(common::WAIT).unwrap();
    assert_eq!(r.status, riffle_cluster::JobStatus::Finished, "{:?}", r.error);
    let want = sorted(vec![
        ("a".to_string(), 10000, 3),
        ("b".to_string(), 10000, 1),
        ("a".to_string(), 10000, 4),
        ("a".to_string(), 20000, 1),
        ("b".to_string(), 20000, 1),
    ]);
    assert_eq!(got, want);
    assert_eq!(late_got, vec![ev("a", 7000, false)]);
}

#[test]
fn without_lateness_late_records_are_dropped() {
    let mc = cluster(1, 1);
    let env = StreamEnvironment::new();
    let out = timed(&env, events())
        .key_by(|e: &Ev| e.0.clone())
        .window(WindowAssigner::tumbling_event_time(Duration::from_secs(10)))
        .reduce_with(|a, _b| a, |k: &String, w: &TimeWindow, _e: Ev| (k.clone(), w.start))
        .collect();
    let got = sorted(run(&mc, &env, out));
    // [0,10000) fires once per key at watermark 12000; the late a@5000 and a@7000 are dropped.
    let want =
        sorted(vec![("a".to_string(), 0), ("b".to_string(), 0), ("a".to_string(), 10000), ("b".to_string(), 10000)]);
    assert_eq!(got, want);
}

#[test]
fn sliding_windows_count_each_record_in_every_window() {
    let mc = cluster(1, 2);
    let mut env = StreamEnvironment::new();
    env.set_parallelism(2);
    // 100 events, one per 100 ms, key = i % 2; windows of 1 s sliding by 500 ms.
    let evs: Vec<Ev> = (0..100).map(|i| ev(if i % 2 == 0 { "x" } else { "y" }, i * 100, false)).collect();
    let out = env
        .from_collection(evs)
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_monotonous_timestamps().with_timestamp_assigner(|e: &Ev, _| e.1),
        )
        .key_by(|e: &Ev| e.0.clone())
        .window(WindowAssigner::sliding_event_time(Duration::from_millis(1000), Duration::from_millis(500)))
        .aggregate_with(Count, |k: &String, w: &TimeWindow, n: u64| (k.clone(), w.start, n))
        .collect();
    let got = sorted(run(&mc, &env, out));
    let mut want = Vec::new();
    for start in (-500..10000).step_by(500) {
        for (k, parity) in [("x", 0), ("y", 1)] {
            let n =
                (0..100i64).filter(|i| i % 2 == parity && i * 100 >= start && i * 100 < start + 1000).count() as u64;
            if n > 0 {
                want.push((k.to_string(), start, n));
            }
        }
    }
    assert_eq!(got, sorted(want));
}

#[test]
fn session_windows_merge_and_process_sees_all_elements() {
    let mc = cluster(1, 1);
    let env = StreamEnvironment::new();
    // Gap 1 s. "a": 0, 500, 1200 (one session 0..2200 after merging), 5000 (new session);
    // the 1200 record arrives before 500, bridging two sessions only once 500 is there.
    let evs =
        vec![ev("a", 0, false), ev("a", 1200, false), ev("a", 500, false), ev("a", 5000, false), ev("b", 100, false)];
    let out = env
        .from_collection(evs)
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_secs(2))
                .with_timestamp_assigner(|e: &Ev, _| e.1),
        )
        .key_by(|e: &Ev| e.0.clone())
        .window(WindowAssigner::event_time_session(Duration::from_secs(1)))
        .process(|ctx: &WindowContext<'_, String>, els: &[Ev], out: &mut dyn FnMut((String, i64, i64, usize))| {
            out((ctx.key.clone(), ctx.window.start, ctx.window.end, els.len()));
            Ok(())
        })
        .collect();
    let got = sorted(run(&mc, &env, out));
    let want =
        sorted(vec![("a".to_string(), 0, 2200, 3), ("a".to_string(), 5000, 6000, 1), ("b".to_string(), 100, 1100, 1)]);
    assert_eq!(got, want);
}

#[test]
fn record_without_timestamp_fails_the_job_with_a_clear_message() {
    let mc = cluster(1, 1);
    let env = StreamEnvironment::new();
    let out = env
        .from_collection(vec![1u32, 2, 3])
        .key_by(|x: &u32| *x)
        .window(WindowAssigner::tumbling_event_time(Duration::from_secs(1)))
        .reduce(|a, b| a + b)
        .collect();
    let (_, r) = common::run_result(&mc, &env, out);
    assert_eq!(r.status, riffle_cluster::JobStatus::Failed);
    let e = r.error.unwrap_or_default();
    assert!(e.contains("Window Reduce") && e.contains("no event timestamp"), "{e}");
}
