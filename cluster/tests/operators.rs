//! Operators beyond single-input chains: union, connect + co-process with keyed state,
//! N-input (FLIP-92), process functions with timers, chaining, and results that do not
//! depend on parallelism.

mod common;

use std::time::Duration;

use common::{cluster, run, sorted};
use riffle_api::{
    keyed_multi_input, multi_input, CoProcessFunction, KeyedProcessFunction, ListState, MultiInputFunction,
    ProcessContext, StreamEnvironment, TimeDomain, TimeWindow, UserError, ValueState, WatermarkGenerator,
    WatermarkOutput, WatermarkStrategy, WindowAssigner,
};

#[test]
fn union_merges_streams() {
    let mc = cluster(1, 2);
    let mut env = StreamEnvironment::new();
    env.set_parallelism(2);
    let a = env.from_sequence(0, 99);
    let b = env.from_sequence(1000, 1099);
    let c = env.from_collection(vec![5000u64]);
    let out = a.union(&[b, c]).map(|x| x * 2).collect();
    let want: Vec<u64> = (0..100).chain(1000..1100).chain([5000]).map(|x| x * 2).collect();
    assert_eq!(sorted(run(&mc, &env, out)), sorted(want));
}

/// Joins orders with their item's price (keyed state shared by both inputs): an order whose
/// price is not known yet waits in list state; unmatched orders leave with price 0 when the
/// final watermark fires their timer. The result does not depend on arrival order.
#[derive(Clone, Default)]
struct Enrich {
    price: Option<ValueState<u64>>,
    waiting: Option<ListState<u32>>,
}

type Out = (u32, u32, u64);

impl CoProcessFunction<u32, (u32, u64), (u32, u32), Out> for Enrich {
    fn open(&mut self, state: &mut riffle_api::KeyedStateStore<u32>) -> Result<(), UserError> {
        self.price = Some(state.value_state("price")?);
        self.waiting = Some(state.list_state("waiting")?);
        Ok(())
    }
    fn process_element1(&mut self, v: (u32, u64), ctx: &mut ProcessContext<'_, u32, Out>) -> Result<(), UserError> {
        let (p, w) = (self.price.ok_or("not opened")?, self.waiting.ok_or("not opened")?);
        p.set(ctx.state(), v.1)?;
        for order in w.clear(ctx.state())? {
            ctx.collect((v.0, order, v.1));
        }
        Ok(())
    }
    fn process_element2(&mut self, v: (u32, u32), ctx: &mut ProcessContext<'_, u32, Out>) -> Result<(), UserError> {
        let (p, w) = (self.price.ok_or("not opened")?, self.waiting.ok_or("not opened")?);
        match p.get(ctx.state())?.copied() {
            Some(price) => ctx.collect((v.0, v.1, price)),
            None => {
                w.add(ctx.state(), v.1)?;
                ctx.register_event_time_timer(riffle_api::MAX_WATERMARK - 1);
            }
        }
        Ok(())
    }
    fn on_timer(&mut self, _: i64, _: TimeDomain, ctx: &mut ProcessContext<'_, u32, Out>) -> Result<(), UserError> {
        let w = self.waiting.ok_or("not opened")?;
        let k = *ctx.key();
        for order in w.clear(ctx.state())? {
            ctx.collect((k, order, 0));
        }
        Ok(())
    }
}

#[test]
fn connected_keyed_streams_share_keyed_state() {
    let mc = cluster(1, 2);
    let mut env = StreamEnvironment::new();
    env.set_parallelism(2);
    let prices = env.from_collection(vec![(1u32, 10u64), (2, 20), (3, 30)]).key_by(|p: &(u32, u64)| p.0);
    let orders = env.from_collection(vec![(1u32, 100u32), (3, 101), (9, 102), (1, 103)]).key_by(|o: &(u32, u32)| o.0);
    let out = prices.connect(&orders).process(Enrich::default()).collect();
    assert_eq!(sorted(run(&mc, &env, out)), vec![(1, 100, 10), (1, 103, 10), (3, 101, 30), (9, 102, 0)]);
}

/// Sums each input separately and reports all sums when every input ended.
#[derive(Clone, Default)]
struct PerInputSum {
    sums: [u64; 3],
    ended: usize,
}

impl MultiInputFunction<(), u64, (usize, u64)> for PerInputSum {
    fn process_element(
        &mut self,
        input: usize,
        v: u64,
        _: &mut ProcessContext<'_, (), (usize, u64)>,
    ) -> Result<(), UserError> {
        self.sums[input] += v;
        Ok(())
    }
    fn end_input(&mut self, _input: usize, ctx: &mut ProcessContext<'_, (), (usize, u64)>) -> Result<(), UserError> {
        self.ended += 1;
        if self.ended == 3 {
            for (i, s) in self.sums.iter().enumerate() {
                ctx.collect((i, *s));
            }
        }
        Ok(())
    }
}

#[test]
fn an_operator_with_three_inputs_knows_where_each_record_came_from() {
    let mc = cluster(1, 1);
    let env = StreamEnvironment::new();
    let ins = [env.from_sequence(1, 10), env.from_sequence(100, 101), env.from_collection(vec![7u64])];
    let out = multi_input(&ins, PerInputSum::default()).expect("inputs").collect();
    assert_eq!(sorted(run(&mc, &env, out)), vec![(0, 55), (1, 201), (2, 7)]);
}

#[derive(Clone)]
struct CountAll;
impl MultiInputFunction<u64, u64, (u64, usize, u64)> for CountAll {
    fn process_element(
        &mut self,
        input: usize,
        v: u64,
        ctx: &mut ProcessContext<'_, u64, (u64, usize, u64)>,
    ) -> Result<(), UserError> {
        let s = ctx.state().value_state::<u64>("n")?;
        let n = s.get(ctx.state())?.copied().unwrap_or(0) + 1;
        s.set(ctx.state(), n)?;
        ctx.collect((v % 3, input, n));
        Ok(())
    }
}

#[test]
fn keyed_multi_input_shares_state_per_key_across_inputs() {
    let mc = cluster(1, 2);
    let mut env = StreamEnvironment::new();
    env.set_parallelism(2);
    let ins = [
        env.from_sequence(0, 29).key_by(|v: &u64| v % 3),
        env.from_sequence(30, 59).key_by(|v: &u64| v % 3),
        env.from_sequence(60, 89).key_by(|v: &u64| v % 3),
    ];
    let out = keyed_multi_input(&ins, CountAll).expect("inputs").collect();
    let got = run(&mc, &env, out);
    assert_eq!(got.len(), 90);
    for k in 0..3 {
        let mut ns: Vec<u64> = got.iter().filter(|g| g.0 == k).map(|g| g.2).collect();
        ns.sort();
        assert_eq!(ns, (1..=30).collect::<Vec<_>>(), "key {k} counted over all inputs");
    }
}

/// Emits each key's count when event time passes the last record + 1 s of silence.
#[derive(Clone, Default)]
struct Timeout;
impl KeyedProcessFunction<String, (String, i64), (String, u64, i64)> for Timeout {
    fn process_element(
        &mut self,
        _: (String, i64),
        ctx: &mut ProcessContext<'_, String, (String, u64, i64)>,
    ) -> Result<(), UserError> {
        let n = ctx.state().value_state::<u64>("n")?;
        let last = ctx.state().value_state::<i64>("timer")?;
        let c = n.get(ctx.state())?.copied().unwrap_or(0) + 1;
        n.set(ctx.state(), c)?;
        if let Some(t) = last.get(ctx.state())?.copied() {
            ctx.delete_event_time_timer(t);
        }
        let t = ctx.timestamp() + 1000;
        last.set(ctx.state(), t)?;
        ctx.register_event_time_timer(t);
        Ok(())
    }
    fn on_timer(
        &mut self,
        ts: i64,
        d: TimeDomain,
        ctx: &mut ProcessContext<'_, String, (String, u64, i64)>,
    ) -> Result<(), UserError> {
        assert_eq!(d, TimeDomain::EventTime);
        let n = ctx.state().value_state::<u64>("n")?;
        let c = n.clear(ctx.state())?.unwrap_or(0);
        let k = ctx.key().clone();
        ctx.collect((k, c, ts));
        Ok(())
    }
}

/// A watermark at every record's timestamp (after the record).
struct EveryRecord;
impl WatermarkGenerator<(String, i64)> for EveryRecord {
    fn on_event(&mut self, _: &(String, i64), ts: i64, out: &mut WatermarkOutput) {
        out.emit_watermark(ts);
    }
    fn on_periodic_emit(&mut self, _: &mut WatermarkOutput) {}
}

#[test]
fn keyed_process_function_with_state_and_event_time_timers() {
    let mc = cluster(1, 1);
    let env = StreamEnvironment::new();
    let evs =
        vec![("a".to_string(), 0i64), ("a".into(), 500), ("b".into(), 600), ("a".into(), 2000), ("b".into(), 5000)];
    let out = env
        .from_collection(evs)
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_generator(|| Box::new(EveryRecord))
                .with_timestamp_assigner(|e: &(String, i64), _| e.1),
        )
        .key_by(|e: &(String, i64)| e.0.clone())
        .process(Timeout)
        .collect();
    let got = sorted(run(&mc, &env, out));
    // a@2000 arrives before watermark 2000, so it moves a's timer from 1500 to 3000 first.
    assert_eq!(got, vec![("a".into(), 3, 3000), ("b".into(), 1, 1600), ("b".into(), 1, 6000)]);
}

#[test]
fn chaining_fuses_forward_operators_and_keyed_edges_split_vertices() {
    let mut env = StreamEnvironment::new();
    env.set_parallelism(2);
    env.from_sequence(0, 9).map(|x| x + 1).filter(|x| x % 2 == 0).key_by(|x: &u64| *x).reduce(|a, b| a + b).discard();
    let g = env.build_job_graph("chains").unwrap();
    let names: Vec<&str> = g.vertices().iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, vec!["Sequence Source -> Map -> Filter", "Keyed Reduce -> Discard Sink"]);
    assert_eq!(g.required_slots(), 2);
}

fn keyed_windows(p: u32) -> Vec<(u64, i64, u64)> {
    let mc = cluster(1, 4);
    let mut env = StreamEnvironment::new();
    env.set_parallelism(p);
    let out = env
        .from_sequence(0, 49_999)
        .map(|i| (i * 7919 % 13, i as i64))
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_monotonous_timestamps().with_timestamp_assigner(|e: &(u64, i64), _| e.1),
        )
        .key_by(|e: &(u64, i64)| e.0)
        .window(WindowAssigner::tumbling_event_time(Duration::from_millis(1000)))
        .reduce_with(|a, b| (a.0, a.1 + b.1), |k: &u64, w: &TimeWindow, e: (u64, i64)| (*k, w.end, e.1 as u64))
        .collect();
    sorted(run(&mc, &env, out))
}

#[test]
fn results_are_identical_at_parallelism_1_2_and_4() {
    let one = keyed_windows(1);
    assert_eq!(one.len(), 13 * 50);
    assert_eq!(one.iter().map(|r| r.2).sum::<u64>(), (0..50_000u64).sum::<u64>());
    assert_eq!(keyed_windows(2), one);
    assert_eq!(keyed_windows(4), one);
}

#[test]
fn broadcast_sends_every_record_to_every_subtask_and_rescale_covers_all() {
    let mc = cluster(1, 4);
    let mut env = StreamEnvironment::new();
    env.set_parallelism(2);
    let out = env.from_sequence(0, 9).broadcast().map(|x| x).set_parallelism(3).collect();
    let got = sorted(run(&mc, &env, out));
    let want = sorted((0..10u64).flat_map(|x| [x, x, x]).collect());
    assert_eq!(got, want, "each of 3 subtasks saw all 10 records");

    let mut env = StreamEnvironment::new();
    env.set_parallelism(2);
    let out = env.from_sequence(0, 999).rescale().map(|x| x).set_parallelism(4).collect();
    assert_eq!(sorted(run(&mc, &env, out)), (0..1000u64).collect::<Vec<_>>());
}

#[test]
fn the_bid_source_emits_bids_exactly_as_the_harness_defines_them() {
    let mc = cluster(1, 2);
    let mut env = StreamEnvironment::new();
    env.set_parallelism(2);
    let out = env.bids(100_000).map(|b| riffle_api::generators::to_euro(b.price)).collect();
    let got = run(&mc, &env, out);
    assert_eq!(got.len(), 100_000);
    assert_eq!(got.iter().sum::<i64>(), 453_995_600, "the harness's W2 check value");
}

/// Emits a count per key from a processing-time timer.
#[derive(Clone)]
struct Tick;
impl KeyedProcessFunction<u64, u64, (u64, u64)> for Tick {
    fn process_element(&mut self, _: u64, ctx: &mut ProcessContext<'_, u64, (u64, u64)>) -> Result<(), UserError> {
        let n = ctx.state().value_state::<u64>("n")?;
        let c = n.get(ctx.state())?.copied().unwrap_or(0) + 1;
        n.set(ctx.state(), c)?;
        if c == 1 {
            let t = ctx.current_processing_time() + 300;
            ctx.register_processing_time_timer(t);
        }
        Ok(())
    }
    fn on_timer(
        &mut self,
        _: i64,
        d: TimeDomain,
        ctx: &mut ProcessContext<'_, u64, (u64, u64)>,
    ) -> Result<(), UserError> {
        if d == TimeDomain::ProcessingTime {
            let n = ctx.state().value_state::<u64>("n")?;
            let c = n.get(ctx.state())?.copied().unwrap_or(0);
            let k = *ctx.key();
            ctx.collect((k, c));
        }
        Ok(())
    }
}

/// A source that emits `0..n` and then stays open, so processing time can pass.
fn open_ended(env: &StreamEnvironment, n: u64) -> riffle_api::DataStream<u64> {
    env.from_sequence(0, n - 1).union(&[env.from_source(Forever, "forever")])
}

struct Forever;
struct ForeverEnum;
struct ForeverReader;
impl riffle_api::source::SplitEnumerator<u8> for ForeverEnum {
    fn handle_split_request(&mut self, _: u32) -> Result<riffle_api::source::Assignment<u8>, UserError> {
        Ok(riffle_api::source::Assignment { splits: vec![0], no_more_splits: false })
    }
    fn add_splits_back(&mut self, _: Vec<u8>, _: u32) {}
    fn restore(&mut self, _: &[String]) {}
}
impl riffle_api::source::SourceReader<u64, u8> for ForeverReader {
    fn snapshot_state(&mut self) -> riffle_api::source::ReaderState<u8> {
        riffle_api::source::ReaderState { unfinished: vec![0], finished: vec![] }
    }
    fn add_splits(&mut self, _: Vec<u8>) {}
    fn notify_no_more_splits(&mut self) {}
    fn poll_next(
        &mut self,
        _: &mut dyn riffle_api::source::SourceOutput<u64>,
    ) -> Result<riffle_api::source::ReadStatus, UserError> {
        Ok(riffle_api::source::ReadStatus::NothingAvailable)
    }
}
impl riffle_api::source::Source<u64> for Forever {
    type Split = u8;
    fn boundedness(&self) -> riffle_api::source::Boundedness {
        riffle_api::source::Boundedness::Unbounded
    }
    fn create_enumerator(&self, _: u32) -> Result<Box<dyn riffle_api::source::SplitEnumerator<u8>>, UserError> {
        Ok(Box::new(ForeverEnum))
    }
    fn create_reader(&self, _: u32) -> Result<Box<dyn riffle_api::source::SourceReader<u64, u8>>, UserError> {
        Ok(Box::new(ForeverReader))
    }
}

fn take_then_cancel<T: Send + 'static>(
    mc: &riffle_cluster::MiniCluster,
    env: &StreamEnvironment,
    out: riffle_api::CollectStream<T>,
    n: usize,
) -> Vec<T> {
    let h = mc.submit(env.build_job_graph("open ended").unwrap()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let v: Vec<T> = out.take(n).collect();
        let _ = tx.send(v);
    });
    let v = rx.recv_timeout(Duration::from_secs(20)).expect("results arrive while the job runs");
    h.cancel().unwrap();
    assert_eq!(h.wait(common::WAIT).unwrap().status, riffle_cluster::JobStatus::Canceled);
    v
}

#[test]
fn processing_time_timers_fire_while_the_job_runs() {
    let mc = cluster(1, 2);
    let env = StreamEnvironment::new();
    let out = open_ended(&env, 1000).key_by(|x: &u64| x % 4).process(Tick).collect();
    let got = sorted(take_then_cancel(&mc, &env, out, 4));
    assert_eq!(got, vec![(0, 250), (1, 250), (2, 250), (3, 250)]);
}

#[test]
fn processing_time_tumbling_windows_fire_on_the_clock() {
    let mc = cluster(1, 2);
    let env = StreamEnvironment::new();
    let out = open_ended(&env, 1000)
        .key_by(|x: &u64| x % 2)
        .window(WindowAssigner::tumbling_processing_time(Duration::from_millis(100)))
        .reduce_with(|a, b| a + b, |k: &u64, _w: &TimeWindow, sum: u64| (*k, sum))
        .collect();
    // All 1000 records arrive within one or two 100 ms windows; summed per key they add up.
    let h = mc.submit(env.build_job_graph("pt windows").unwrap()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sums = [0u64; 2];
        for (k, s) in out {
            sums[k as usize] += s;
            if sums[0] + sums[1] == (0..1000u64).sum::<u64>() {
                let _ = tx.send(sums);
                return;
            }
        }
    });
    let sums = rx.recv_timeout(Duration::from_secs(20)).expect("processing-time windows fired");
    assert_eq!(
        sums,
        [(0..1000u64).filter(|x| x % 2 == 0).sum::<u64>(), (0..1000u64).filter(|x| x % 2 == 1).sum::<u64>()]
    );
    h.cancel().unwrap();
    assert_eq!(h.wait(common::WAIT).unwrap().status, riffle_cluster::JobStatus::Canceled);
}
