use std::sync::atomic::Ordering;
use std::time::Instant;

use riffle_api::partition::Outbox;

use super::*;

fn flush_timer(last: i64, timeout: i64) -> FlushTimer {
    FlushTimer::new(FlushRegistry::default(), timeout, last)
}

#[test]
fn a_run_ends_finished_canceled_or_failed_and_a_panic_fails_the_running_operator() {
    let running = || "map".to_string();
    assert_eq!(outcome_of(Ok(Ok(())), running), TaskOutcome::Finished);
    assert_eq!(outcome_of(Ok(Err(TaskOutcome::Canceled)), running), TaskOutcome::Canceled);
    let sink = TaskError::msg("sink", "refused");
    assert_eq!(outcome_of(Ok(Err(sink.clone().into())), running), TaskOutcome::Failed(sink), "named: kept");
    let guarded = TaskError::msg(riffle_api::panic_guard::PANICKED_IN_CHAIN, "panicked: boom");
    assert_eq!(
        outcome_of(Ok(Err(guarded.into())), running),
        TaskOutcome::Failed(TaskError::msg("map", "panicked: boom")),
        "caught by the chain's guard"
    );
    let escaped = std::panic::catch_unwind(|| -> Result<(), TaskOutcome> { panic!("bad {}", 7) });
    assert_eq!(outcome_of(escaped, running), TaskOutcome::Failed(TaskError::msg("map", "panicked: bad 7")));
}

#[test]
fn partial_batches_go_when_the_buffer_timeout_passed_and_the_timeout_restarts_with_each_flush() {
    let mut f = flush_timer(1_000, 100);
    assert!(!f.due(1_099));
    assert!(f.due(1_100), "at the timeout");
    f.flush(1_150);
    assert!(!f.due(1_200), "measured from the last flush");
    assert!(f.due(1_250));
    assert!(flush_timer(1_000, 0).due(1_000), "a timeout of 0 flushes after every step");
}

#[test]
fn after_a_step_due_timers_fire_the_end_wins_over_a_due_flush_and_otherwise_nothing_happens() {
    let f = flush_timer(1_000, 100);
    assert_eq!(AfterStep::at(1_050, None, false, &f), AfterStep::default());
    assert_eq!(AfterStep::at(1_050, Some(1_051), false, &f), AfterStep::default(), "a timer not yet due");
    let timers = AfterStep { timers: true, ..AfterStep::default() };
    assert_eq!(AfterStep::at(1_050, Some(1_050), false, &f), timers, "a timer due now");
    let flush = AfterStep { flush: true, ..AfterStep::default() };
    assert_eq!(AfterStep::at(1_100, None, false, &f), flush);
    // The end-of-input sequence flushes and drains itself; timers still fire before it.
    let end = AfterStep { timers: true, end: true, flush: false };
    assert_eq!(AfterStep::at(1_100, Some(900), true, &f), end);
}

#[test]
fn a_busy_operator_subtask_yields_every_16_steps_and_every_2_ms() {
    let t0 = Instant::now();
    let mut p = Pacer::new(t0);
    let due: Vec<bool> = (0..32).map(|_| p.due(|| t0)).collect();
    let at: Vec<usize> = due.iter().enumerate().filter(|(_, d)| **d).map(|(i, _)| i + 1).collect();
    assert_eq!(at, vec![16, 32], "by steps, however fast");
    assert!(p.due(|| t0 + YIELD_EVERY), "by time, however few steps");
    p.yielded(t0 + YIELD_EVERY);
    assert!(!p.due(|| t0 + YIELD_EVERY + Duration::from_millis(1)));
    assert!(!Pacer::new(Instant::now()).overdue());
}

/// An end of input that writes down what it did.
#[derive(Default)]
struct Script {
    calls: Vec<&'static str>,
    refuse: bool,
}

impl EndOfInput for Script {
    async fn confirm_end(&mut self) -> Result<(), TaskOutcome> {
        self.calls.push("confirm");
        if self.refuse {
            return Err(TaskError::msg("sink", "the job master refused this attempt's end").into());
        }
        Ok(())
    }
    fn end_input(&mut self) -> Result<(), TaskOutcome> {
        self.calls.push("end input");
        Ok(())
    }
    fn flush(&mut self) {
        self.calls.push("flush");
    }
    async fn drain(&mut self) -> Result<(), TaskOutcome> {
        self.calls.push("drain");
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_end_is_confirmed_before_the_input_ends_then_partial_batches_go_and_everything_is_drained() {
    let mut s = Script::default();
    assert!(end_of_input(&mut s, true).await.is_ok());
    assert_eq!(s.calls, vec!["confirm", "end input", "flush", "drain"]);
}

#[tokio::test(flavor = "current_thread")]
async fn a_refused_end_ends_nothing() {
    // A two-phase-commit sink commits at its end of input: a superseded attempt must not.
    let mut s = Script { refuse: true, ..Script::default() };
    let r = end_of_input(&mut s, true).await;
    assert!(matches!(r, Err(TaskOutcome::Failed(e)) if e.message.contains("refused")));
    assert_eq!(s.calls, vec!["confirm"]);
}

#[tokio::test(flavor = "current_thread")]
async fn a_source_stopped_with_a_savepoint_ends_without_asking() {
    let mut s = Script::default();
    assert!(end_of_input(&mut s, false).await.is_ok());
    assert_eq!(s.calls, vec!["end input", "flush", "drain"]);
}

fn outputs(n: usize, capacity: usize) -> (OutputChannels, Vec<mpsc::Receiver<Element>>) {
    let (senders, rxs): (Vec<_>, Vec<_>) = (0..n).map(|_| mpsc::channel::<Element>(capacity)).unzip();
    let channels = OutputChannels {
        outbox: SharedOutbox::new(std::cell::RefCell::new(Outbox::default())),
        senders,
        priority: (0..n).map(|_| mpsc::unbounded_channel().0).collect(),
        stalled: vec![false; n],
        ended: vec![false; n],
        io: Arc::default(),
        debloat: crate::debloat::Debloater::new(None, n, capacity, std::time::Instant::now()),
    };
    (channels, rxs)
}

fn records(count: u32) -> Element {
    Element::Records { count, batch: Box::new(vec![0u32; count as usize]) }
}

fn watermark(e: Option<Element>) -> Option<i64> {
    match e {
        Some(Element::Watermark(w)) => Some(w),
        _ => None,
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_full_channel_holds_back_only_its_own_elements_and_a_control_message_ends_the_wait() {
    let (mut out, mut rxs) = outputs(2, 1);
    out.outbox.borrow_mut().queue.extend([
        (0, Element::Watermark(1)),
        (0, Element::Watermark(2)), // channel 0 is full: waits
        (1, records(5)),            // another channel: goes at once
        (0, Element::Watermark(4)), // after 2 on its channel: waits too
    ]);
    let (control_tx, mut control) = mpsc::unbounded_channel();
    let (_cancel_tx, mut cancel) = watch::channel(false);
    control_tx.send(SubtaskControl::CheckpointDone { id: 7, completed: true }).unwrap();
    let r = out.drain_until("op", &mut control, &mut cancel, true, None).await;
    assert!(matches!(r, Ok(Some(DrainInterrupt::Control(SubtaskControl::CheckpointDone { id: 7, .. })))));
    assert_eq!(watermark(rxs[0].try_recv().ok()), Some(1));
    assert!(matches!(rxs[1].try_recv(), Ok(Element::Records { count: 5, .. })));
    let left: Vec<_> = out.outbox.borrow_mut().queue.drain(..).map(|(ch, e)| (ch, watermark(Some(e)))).collect();
    assert_eq!(left, vec![(0, Some(2)), (0, Some(4))], "the unsent back in the outbox, in order");
    assert_eq!(out.io.records_out.load(Ordering::Relaxed), 5);
    assert!(!out.io.backpressured.load(Ordering::Relaxed), "no longer waiting");
}

#[tokio::test(flavor = "current_thread")]
async fn a_drain_waits_for_room_and_keeps_each_channels_order() {
    let (mut out, mut rxs) = outputs(1, 1);
    out.outbox.borrow_mut().queue.extend((1..=4).map(|w| (0, Element::Watermark(w))));
    let mut rx = rxs.remove(0);
    let consumer = tokio::spawn(async move {
        let mut got = Vec::new();
        while got.len() < 4 {
            got.push(watermark(rx.recv().await).unwrap());
        }
        got
    });
    let (_control_tx, mut control) = mpsc::unbounded_channel();
    let (_cancel_tx, mut cancel) = watch::channel(false);
    let r = out.drain_until("op", &mut control, &mut cancel, false, None).await;
    assert!(matches!(r, Ok(None)));
    assert!(out.outbox.borrow().queue.is_empty());
    assert_eq!(consumer.await.unwrap(), vec![1, 2, 3, 4]);
    assert!(out.io.backpressured_ns.load(Ordering::Relaxed) > 0, "the wait for room is counted");
}

#[tokio::test(flavor = "current_thread")]
async fn cancellation_ends_a_wait_for_room() {
    let (mut out, _rxs) = outputs(1, 1);
    out.outbox.borrow_mut().queue.extend((1..=2).map(|w| (0, Element::Watermark(w))));
    let (_control_tx, mut control) = mpsc::unbounded_channel();
    let (cancel_tx, mut cancel) = watch::channel(false);
    cancel_tx.send(true).unwrap();
    let r = out.drain_until("op", &mut control, &mut cancel, true, None).await;
    assert!(matches!(r, Err(TaskOutcome::Canceled)));
}

/// A checkpoint triggered while the final drain waits for room (its end of partition already
/// queued) queues a barrier behind the end: it must not be sent there, because a remote
/// channel's producer side is gone once the end went (the send failed the subtask with "a
/// downstream subtask stopped" after a restore on a local cluster).
#[tokio::test(flavor = "current_thread")]
async fn no_barrier_follows_an_end_of_partition_on_its_channel() {
    let (mut out, mut rxs) = outputs(2, 4);
    let barrier = CheckpointBarrier { id: 4, ..Default::default() };
    out.outbox.borrow_mut().queue.extend([
        (0, records(3)),
        (0, Element::EndOfPartition),
        (1, records(2)),
        (0, Element::Barrier(barrier.clone())),
        (1, Element::Barrier(barrier)),
    ]);
    let (_control_tx, mut control) = mpsc::unbounded_channel();
    let (_cancel_tx, mut cancel) = watch::channel(false);
    // Channel 0's consumer end goes as soon as the end of partition is read (the network
    // producer side closes after forwarding it).
    let mut rx0 = rxs.remove(0);
    let r = out.drain_until("op", &mut control, &mut cancel, true, None).await;
    assert!(matches!(r, Ok(None)), "drained without an error");
    assert!(matches!(rx0.try_recv(), Ok(Element::Records { count: 3, .. })));
    assert!(matches!(rx0.try_recv(), Ok(Element::EndOfPartition)));
    assert!(rx0.try_recv().is_err(), "nothing after the end of partition");
    drop(rx0);
    assert!(matches!(rxs[0].try_recv(), Ok(Element::Records { count: 2, .. })));
    assert!(matches!(rxs[0].try_recv(), Ok(Element::Barrier(b)) if b.id == 4), "the open channel gets its barrier");
    // Later barriers for the ended channel are dropped too, even with its receiver gone.
    out.outbox.borrow_mut().queue.push_back((0, Element::Barrier(CheckpointBarrier { id: 5, ..Default::default() })));
    let r = out.drain_until("op", &mut control, &mut cancel, true, None).await;
    assert!(matches!(r, Ok(None)), "a barrier for an ended, closed channel is not a lost consumer");
}

/// Buffer debloating: a channel whose consumer is slow holds only its limit, not its whole
/// queue, and the drain waits until the consumer takes one before sending the next.
#[tokio::test(flavor = "current_thread")]
async fn a_debloated_channel_holds_its_limit_not_its_whole_queue() {
    let (mut out, mut rxs) = outputs(2, 16);
    let t0 = std::time::Instant::now();
    let settings = crate::debloat::DebloatSettings {
        target: std::time::Duration::from_secs(1),
        period: std::time::Duration::from_millis(1),
    };
    out.debloat = crate::debloat::Debloater::new(Some(settings), 2, 16, t0);
    // Nothing sent for a period: the measured rate is 0, so each channel may hold two.
    out.debloat.sample(t0 + std::time::Duration::from_millis(2));
    assert_eq!(out.debloat.limit(0), crate::debloat::MIN_BATCHES);
    out.outbox.borrow_mut().queue.extend((1..=5).map(|w| (0, Element::Watermark(w))));
    out.outbox.borrow_mut().queue.push_back((1, records(1)));
    let (control_tx, mut control) = mpsc::unbounded_channel();
    let (_cancel_tx, mut cancel) = watch::channel(false);
    control_tx.send(SubtaskControl::CheckpointDone { id: 1, completed: true }).unwrap();
    let r = out.drain_until("op", &mut control, &mut cancel, true, None).await;
    assert!(matches!(r, Ok(Some(DrainInterrupt::Control(_)))), "it waited for room below the limit");
    assert_eq!(watermark(rxs[0].try_recv().ok()), Some(1));
    assert_eq!(watermark(rxs[0].try_recv().ok()), Some(2));
    assert!(rxs[0].try_recv().is_err(), "two batches held, with 14 of the queue's 16 free");
    assert!(matches!(rxs[1].try_recv(), Ok(Element::Records { count: 1, .. })), "the other channel is not held up");
    // The consumer took both: the drain sends two more and waits again (until the timeout).
    let wait = std::time::Duration::from_millis(200);
    let r = tokio::time::timeout(wait, out.drain_until("op", &mut control, &mut cancel, false, None)).await;
    assert!(r.is_err(), "still waiting for room below the limit");
    assert_eq!(watermark(rxs[0].try_recv().ok()), Some(3));
    assert_eq!(watermark(rxs[0].try_recv().ok()), Some(4));
    assert!(rxs[0].try_recv().is_err(), "the fifth waits");
}
