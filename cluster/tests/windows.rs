//! Windows with out-of-order events and late data give exact, known results.

mod common;

use std::time::Duration;

use common::{cluster, run, sorted};
use riffle_api::{
    AggregateFunction, OutputTag, ProcessWindowContext, RichProcessWindowFunction, StreamEnvironment, TimeWindow,
    UserError, WatermarkGenerator, WatermarkOutput, WatermarkStrategy, WindowAssigner, WindowContext,
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

/// Counts the records of a window, whatever they are.
struct Count;
impl<T> AggregateFunction<T, u64, u64> for Count {
    fn create_accumulator(&self) -> u64 {
        0
    }
    fn add(&self, _: T, acc: u64) -> u64 {
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

/// A window whose first record comes after the watermark passed its end, within the allowed
/// lateness, fires once at that record, and not again at the next watermark (as Flink's
/// `EventTimeTrigger` registers no end timer for it).
#[test]
fn a_late_window_within_the_lateness_fires_once() {
    let mc = cluster(1, 1);
    let env = StreamEnvironment::new();
    let evs = vec![ev("b", 5500, true), ev("a", 4000, false), ev("b", 5600, true)];
    let out = timed(&env, evs)
        .key_by(|e: &Ev| e.0.clone())
        .window(WindowAssigner::tumbling_event_time(Duration::from_secs(5)))
        .allowed_lateness(Duration::from_secs(1))
        .aggregate_with(Count, |k: &String, w: &TimeWindow, n: u64| (k.clone(), w.end, n))
        .collect();
    let got = sorted(run(&mc, &env, out));
    assert_eq!(got, sorted(vec![("a".to_string(), 5000, 1), ("b".to_string(), 10000, 2)]));
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

/// Window state survives failover exactly: windows that stay open across many checkpoints
/// (their encodings reused from checkpoint to checkpoint) and windows still filling when the
/// failure hits come back with exact counts, and every window fires once.
#[test]
fn window_state_is_restored_exactly_after_a_failure_across_many_checkpoints() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    const N: u64 = 200_000;
    const KEYS: u64 = 7;
    let mut cfg = riffle_cluster::MiniClusterConfig::new(1, 2);
    cfg.config
        .set("execution.checkpointing.interval", "20 ms")
        .set("restart-strategy", "fixed-delay")
        .set("restart-strategy.fixed-delay.attempts", "2")
        .set("restart-strategy.fixed-delay.delay", "10 ms");
    let mc = riffle_cluster::MiniCluster::start(cfg).unwrap();
    let mut env = StreamEnvironment::new();
    env.set_parallelism(2);
    let failed = Arc::new(AtomicBool::new(false));
    let armed = Arc::new(AtomicBool::new(false));
    let (f2, a2) = (failed.clone(), armed.clone());
    let out = env
        .from_sequence(0, N - 1)
        .map(move |i| {
            // Slow enough for several checkpoints before the failure.
            if i % 200 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            if a2.load(Ordering::SeqCst) && !f2.swap(true, Ordering::SeqCst) {
                panic!("injected failure in the middle of the windows");
            }
            i
        })
        // No window fires before the end of the input: all of them stay open (and mostly
        // unchanged) across the checkpoints.
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_secs(3600))
                .with_timestamp_assigner(|i: &u64, _| *i as i64),
        )
        .key_by(|i: &u64| i % KEYS)
        .window(WindowAssigner::tumbling_event_time(Duration::from_secs(1)))
        .aggregate_with(Count, |k: &u64, w: &TimeWindow, n: u64| (*k, w.start, n))
        .collect();
    let h = mc.submit(env.build_job_graph("windows after failover").unwrap()).unwrap();
    // Fail once three checkpoints completed: windows by then were encoded, reused, changed.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while mc.checkpoint_stats(h.job_id()).completed < 3 {
        assert!(std::time::Instant::now() < deadline, "{:?}", mc.checkpoint_stats(h.job_id()));
        std::thread::sleep(Duration::from_millis(2));
    }
    armed.store(true, Ordering::SeqCst);
    let got: Vec<(u64, i64, u64)> = out.collect();
    let r = h.wait(common::WAIT).unwrap();
    assert_eq!(r.status, riffle_cluster::JobStatus::Finished, "{:?}", r.error);
    assert!(failed.load(Ordering::SeqCst), "the failure was injected");
    let mut want: std::collections::BTreeMap<(u64, i64), u64> = Default::default();
    for i in 0..N {
        *want.entry((i % KEYS, (i as i64) / 1000 * 1000)).or_default() += 1;
    }
    let want: Vec<(u64, i64, u64)> = want.into_iter().map(|((k, s), n)| (k, s, n)).collect();
    let got = sorted(got);
    let wrong: Vec<_> = got.iter().filter(|g| !want.contains(g)).take(5).collect();
    let missing: Vec<_> = want.iter().filter(|w| !got.contains(w)).take(5).collect();
    assert!(
        got == want,
        "every window fires once with its exact count: {} results for {} windows; wrong e.g. {wrong:?}; missing e.g. {missing:?}",
        got.len(),
        want.len()
    );
}

/// Emits the watermark its operator saw with each record.
#[derive(Clone)]
struct SeenWatermark;
impl riffle_api::KeyedProcessFunction<(), u64, i64> for SeenWatermark {
    fn process_element(
        &mut self,
        _: u64,
        ctx: &mut riffle_api::ProcessContext<'_, (), i64>,
    ) -> Result<(), riffle_api::UserError> {
        let w = ctx.current_watermark();
        ctx.collect(w);
        Ok(())
    }
}

/// The highest watermark any record saw before the end of a slow input (20,000 records over
/// about 200 ms, read in polls of 4096), with periodic watermarks every `interval`.
fn watermarks_seen(interval: Duration) -> i64 {
    let mc = cluster(1, 1);
    let mut env = StreamEnvironment::new();
    env.set_auto_watermark_interval(interval);
    let out = env
        .from_sequence(0, 19_999)
        .map(|i| {
            if i % 100 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            i
        })
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_monotonous_timestamps().with_timestamp_assigner(|i: &u64, _| *i as i64),
        )
        .process(SeenWatermark)
        .collect();
    run(&mc, &env, out).into_iter().max().unwrap_or(i64::MIN)
}

/// `pipeline.auto-watermark-interval: 0` turns periodic watermarks off (as in Flink): no record
/// sees one before the end of the input; with an interval they advance while it runs.
#[test]
fn an_auto_watermark_interval_of_zero_turns_periodic_watermarks_off() {
    assert_eq!(watermarks_seen(Duration::ZERO), i64::MIN);
    assert!(watermarks_seen(Duration::from_millis(5)) > 0);
}

/// (key, window end, records, this window's firing number, the key's firings so far)
type Fired = (String, i64, usize, u64, u64);

/// Counts firings per window (window state) and per key (global state); when a window is
/// purged, reports its firings on the side output `purged`.
#[derive(Clone)]
struct CountFirings(OutputTag<(String, i64, u64)>);

impl RichProcessWindowFunction<String, Ev, Fired> for CountFirings {
    fn process(&mut self, els: &[Ev], ctx: &mut ProcessWindowContext<'_, String, Fired>) -> Result<(), UserError> {
        let ws = ctx.window_state()?;
        let fires = ws.value_state::<u64>("fires")?;
        let n = fires.get(ws)?.copied().unwrap_or(0) + 1;
        fires.set(ws, n)?;
        let gs = ctx.global_state();
        let total = gs.value_state::<u64>("fires")?;
        let t = total.get(gs)?.copied().unwrap_or(0) + 1;
        total.set(gs, t)?;
        let (k, end) = (ctx.key().clone(), ctx.window().end);
        ctx.collect((k, end, els.len(), n, t));
        Ok(())
    }
    fn clear(&mut self, ctx: &mut ProcessWindowContext<'_, String, Fired>) -> Result<(), UserError> {
        let ws = ctx.window_state()?;
        let n = ws.value_state::<u64>("fires")?.get(ws)?.copied().unwrap_or(0);
        let (k, end) = (ctx.key().clone(), ctx.window().end);
        ctx.output(&self.0, (k, end, n));
        Ok(())
    }
}

#[test]
fn a_process_window_function_keeps_state_per_window_and_per_key_and_clears_at_purge() {
    let mc = cluster(1, 2);
    let env = StreamEnvironment::new();
    let purged = OutputTag::<(String, i64, u64)>::new("purged");
    let fired = timed(&env, events())
        .key_by(|e: &Ev| e.0.clone())
        .window(WindowAssigner::tumbling_event_time(Duration::from_secs(10)))
        .allowed_lateness(Duration::from_secs(5))
        .process_with_state(CountFirings(purged.clone()));
    let purged_out = fired.get_side_output(&purged).collect();
    let out = fired.collect();
    let h = mc.submit(env.build_job_graph("window state").unwrap()).unwrap();
    let got = sorted(out.collect::<Vec<_>>());
    let purged_got = sorted(purged_out.collect::<Vec<_>>());
    let r = h.wait(common::WAIT).unwrap();
    assert_eq!(r.status, riffle_cluster::JobStatus::Finished, "{:?}", r.error);
    let a = |end, n, fire, total| ("a".to_string(), end, n, fire, total);
    let b = |end, n, fire, total| ("b".to_string(), end, n, fire, total);
    // [0, 10000) fires at watermark 12000 and again for the late a@5000; [10000, 20000) at the
    // end of the input. The key's count goes on across windows; the window's restarts.
    let want =
        sorted(vec![a(10000, 3, 1, 1), b(10000, 1, 1, 1), a(10000, 4, 2, 2), a(20000, 1, 1, 3), b(20000, 1, 1, 2)]);
    assert_eq!(got, want);
    let p = |k: &str, end, n| (k.to_string(), end, n);
    assert_eq!(purged_got, sorted(vec![p("a", 10000, 2), p("b", 10000, 1), p("a", 20000, 1), p("b", 20000, 1)]));
}

/// Each window's count, and the key's largest count so far (global state); windows of 3 or
/// more records also go to the side output `busy`.
#[derive(Clone)]
struct CountAndMax(OutputTag<(String, i64)>);

impl RichProcessWindowFunction<String, u64, (char, String, i64, u64)> for CountAndMax {
    fn process(
        &mut self,
        counts: &[u64],
        ctx: &mut ProcessWindowContext<'_, String, (char, String, i64, u64)>,
    ) -> Result<(), UserError> {
        assert_eq!(counts.len(), 1, "one aggregate result");
        let n = counts[0];
        let gs = ctx.global_state();
        let max = gs.value_state::<u64>("max")?;
        let m = max.get(gs)?.copied().unwrap_or(0).max(n);
        max.set(gs, m)?;
        let (k, end) = (ctx.key().clone(), ctx.window().end);
        ctx.collect(('c', k.clone(), end, n));
        ctx.collect(('m', k.clone(), end, m));
        if n >= 3 {
            ctx.output(&self.0, (k, end));
        }
        Ok(())
    }
}

#[test]
fn aggregate_with_a_process_window_function_sees_the_result_with_the_whole_context() {
    let mc = cluster(1, 2);
    let env = StreamEnvironment::new();
    let busy = OutputTag::<(String, i64)>::new("busy");
    let counted = timed(&env, events())
        .key_by(|e: &Ev| e.0.clone())
        .window(WindowAssigner::tumbling_event_time(Duration::from_secs(10)))
        .aggregate_process(Count, CountAndMax(busy.clone()));
    let busy_out = counted.get_side_output(&busy).collect();
    let out = counted.collect();
    let h = mc.submit(env.build_job_graph("aggregate and process").unwrap()).unwrap();
    let got = sorted(out.collect::<Vec<_>>());
    let busy_got: Vec<(String, i64)> = busy_out.collect();
    let r = h.wait(common::WAIT).unwrap();
    assert_eq!(r.status, riffle_cluster::JobStatus::Finished, "{:?}", r.error);
    let o = |what, k: &str, end, n| (what, k.to_string(), end, n);
    // No lateness: a@5000 and a@7000 are dropped.
    let want = sorted(vec![
        o('c', "a", 10000, 3),
        o('m', "a", 10000, 3),
        o('c', "b", 10000, 1),
        o('m', "b", 10000, 1),
        o('c', "a", 20000, 1),
        o('m', "a", 20000, 3),
        o('c', "b", 20000, 1),
        o('m', "b", 20000, 1),
    ]);
    assert_eq!(got, want);
    assert_eq!(busy_got, vec![("a".to_string(), 10000)]);
}

/// `reduce` with a process window function: the reduced record with its window.
#[derive(Clone)]
struct Latest;

impl RichProcessWindowFunction<String, Ev, (String, i64, i64)> for Latest {
    fn process(
        &mut self,
        latest: &[Ev],
        ctx: &mut ProcessWindowContext<'_, String, (String, i64, i64)>,
    ) -> Result<(), UserError> {
        let end = ctx.window().end;
        for e in latest {
            ctx.collect((e.0.clone(), end, e.1));
        }
        Ok(())
    }
}

#[test]
fn reduce_with_a_process_window_function() {
    let mc = cluster(1, 1);
    let env = StreamEnvironment::new();
    let out = timed(&env, events())
        .key_by(|e: &Ev| e.0.clone())
        .window(WindowAssigner::tumbling_event_time(Duration::from_secs(10)))
        .reduce_process(|a: Ev, b: Ev| if b.1 > a.1 { b } else { a }, Latest)
        .collect();
    let got = sorted(run(&mc, &env, out));
    let l = |k: &str, end, ts| (k.to_string(), end, ts);
    assert_eq!(got, sorted(vec![l("a", 10000, 3000), l("b", 10000, 1500), l("a", 20000, 12000), l("b", 20000, 16000)]));
}

/// Session windows merge, so there is no per-window state (as in Flink); the error says so.
#[derive(Clone)]
struct WantsWindowState;

impl RichProcessWindowFunction<String, Ev, u64> for WantsWindowState {
    fn process(&mut self, _: &[Ev], ctx: &mut ProcessWindowContext<'_, String, u64>) -> Result<(), UserError> {
        let ws = ctx.window_state()?;
        ws.value_state::<u64>("x")?.set(ws, 1)?;
        Ok(())
    }
}

#[test]
fn session_windows_have_no_per_window_state() {
    let mc = cluster(1, 1);
    let env = StreamEnvironment::new();
    let out = timed(&env, events())
        .key_by(|e: &Ev| e.0.clone())
        .window(WindowAssigner::event_time_session(Duration::from_secs(1)))
        .process_with_state(WantsWindowState)
        .collect();
    let (_, r) = common::run_result(&mc, &env, out);
    assert_eq!(r.status, riffle_cluster::JobStatus::Failed);
    let e = r.error.unwrap_or_default();
    assert!(e.contains("Window Process") && e.contains("merging"), "{e}");
}

/// Lets the gated source emit its events past [`GATE`].
static RELEASED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// The gated source stops before this event until [`RELEASED`].
const GATE: usize = 2;

fn late_window_events() -> Vec<Ev> {
    vec![ev("b", 5500, true), ev("a", 4000, false), ev("b", 5600, true)]
}

/// The reader's position in [`late_window_events`].
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Pos(usize);

impl riffle_api::source::Split for Pos {
    fn split_id(&self) -> String {
        "events".into()
    }
}

/// Emits the events one by one, holding at [`GATE`] until [`RELEASED`]; resumable.
struct Gated;
struct GatedEnum(bool);
struct GatedReader(Option<Pos>, bool);

impl riffle_api::source::SplitEnumerator<Pos> for GatedEnum {
    fn handle_split_request(&mut self, _: u32) -> Result<riffle_api::source::Assignment<Pos>, UserError> {
        let splits = if std::mem::replace(&mut self.0, true) { vec![] } else { vec![Pos(0)] };
        Ok(riffle_api::source::Assignment { no_more_splits: splits.is_empty(), splits })
    }
    fn add_splits_back(&mut self, _: Vec<Pos>, _: u32) {}
    fn restore(&mut self, consumed: &[String]) {
        self.0 |= !consumed.is_empty();
    }
}

impl riffle_api::source::SourceReader<Ev, Pos> for GatedReader {
    fn add_splits(&mut self, mut splits: Vec<Pos>) {
        self.0 = self.0.take().or(splits.pop());
    }
    fn notify_no_more_splits(&mut self) {
        self.1 = true;
    }
    fn poll_next(
        &mut self,
        out: &mut dyn riffle_api::source::SourceOutput<Ev>,
    ) -> Result<riffle_api::source::ReadStatus, UserError> {
        use riffle_api::source::ReadStatus;
        let Some(pos) = self.0.as_mut() else {
            return Ok(if self.1 { ReadStatus::EndOfInput } else { ReadStatus::NeedSplits });
        };
        let evs = late_window_events();
        if pos.0 >= evs.len() {
            return Ok(ReadStatus::EndOfInput);
        }
        if pos.0 == GATE && !RELEASED.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(ReadStatus::NothingAvailable);
        }
        out.collect(evs[pos.0].clone());
        pos.0 += 1;
        Ok(ReadStatus::MoreAvailable)
    }
    fn snapshot_state(&mut self) -> riffle_api::source::ReaderState<Pos> {
        riffle_api::source::ReaderState { unfinished: self.0.iter().cloned().collect(), finished: vec![] }
    }
}

impl riffle_api::source::Source<Ev> for Gated {
    type Split = Pos;
    fn boundedness(&self) -> riffle_api::source::Boundedness {
        riffle_api::source::Boundedness::Bounded
    }
    fn create_enumerator(&self, _: u32) -> Result<Box<dyn riffle_api::source::SplitEnumerator<Pos>>, UserError> {
        Ok(Box::new(GatedEnum(false)))
    }
    fn create_reader(&self, _: u32) -> Result<Box<dyn riffle_api::source::SourceReader<Ev, Pos>>, UserError> {
        Ok(Box::new(GatedReader(None, false)))
    }
}

fn gated_late_window_job(
    savepoint: Option<&std::path::Path>,
) -> (StreamEnvironment, riffle_api::CollectStream<(String, i64, u64)>) {
    let mut env = StreamEnvironment::new();
    env.set_parallelism(1);
    if let Some(p) = savepoint {
        env.set_config("execution.savepoint.path", &p.display().to_string());
    }
    let out = env
        .from_source(Gated, "gated")
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_generator(|| Box::new(Punctuated)).with_timestamp_assigner(|e: &Ev, _| e.1),
        )
        .key_by(|e: &Ev| e.0.clone())
        .window(WindowAssigner::tumbling_event_time(Duration::from_secs(5)))
        .allowed_lateness(Duration::from_secs(1))
        .aggregate_with(Count, |k: &String, w: &TimeWindow, n: u64| (k.clone(), w.end, n))
        .collect();
    (env, out)
}

/// The same late window, with a savepoint and a restore between its firing and the next
/// watermark: the restore does not bring back an end-of-window timer for it, so it fires
/// once over both runs.
#[test]
fn a_late_window_within_the_lateness_fires_once_across_a_restore() {
    let mc = cluster(1, 1);
    let dir = tempfile::tempdir().unwrap();
    let (env, out) = gated_late_window_job(None);
    let h = mc.submit(env.build_job_graph("before").unwrap()).unwrap();
    let mut out = out.into_iter();
    assert_eq!(out.next(), Some(("a".to_string(), 5000, 1)), "the late window fires at its record");
    let sp = common::savepoint_with_retry(|| h.cancel_with_savepoint(Some(dir.path().to_path_buf())));
    assert_eq!(h.wait(common::WAIT).unwrap().status, riffle_cluster::JobStatus::Canceled);
    assert_eq!(out.next(), None, "nothing else before the savepoint");
    RELEASED.store(true, std::sync::atomic::Ordering::SeqCst);
    let (env, out) = gated_late_window_job(Some(&sp));
    let got = sorted(run(&mc, &env, out));
    assert_eq!(got, vec![("b".to_string(), 10000, 2)], "window a does not fire again after the restore");
}
