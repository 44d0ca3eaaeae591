//! A subtask's input side: one receiver per input channel, polled round-robin.
//!
//! The gate does the polling (priority lanes first, then channels round-robin, read-ahead
//! buffers before queues) and leaves every decision to three pure parts, each with its own
//! table of tests:
//! - [`WatermarkValve`] (`watermark.rs`): per-channel watermarks and idleness → the subtask's
//!   watermark (the minimum over its active channels);
//! - [`BarrierAligner`] (`alignment.rs`): aligned barriers' alignment, i.e. which channels are
//!   held back;
//! - [`ChannelStateCapture`] (`capture.rs`): which in-flight records are an unaligned
//!   checkpoint's channel state.
//!
//! # Unaligned checkpoints (FLIP-76)
//!
//! A producer that takes an unaligned snapshot sends the barrier on every output channel's
//! priority lane (it overtakes the queued data) and a *position marker* (the same barrier,
//! in-band) after everything it produced before its snapshot. The consumer snapshots as soon
//! as the first barrier of a checkpoint arrives, on any channel, and from then on records
//! every batch it reads from a channel until that channel's marker: exactly the records that
//! the producers had sent before their snapshots but this subtask had not processed before
//! its own. To complete quickly under backpressure, it reads those records *ahead* of
//! processing, into a per-channel buffer served before the channel's queue, so the markers
//! arrive without waiting for the backlog to be processed.

mod alignment;
mod capture;
mod watermark;

use std::any::Any;
use std::collections::VecDeque;
use std::task::{Context, Poll};

use riffle_api::head::VertexHead;
use riffle_api::snapshot::ChannelState;
use riffle_api::{CheckpointBarrier, Element, TaskError};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::mpsc::{Receiver, UnboundedReceiver};

pub use self::alignment::{BarrierAligner, BarrierStep};
pub use self::capture::{Admit, ChannelStateCapture};
pub use self::watermark::{GateEvent, WatermarkValve};
use crate::exchange::ChannelReceiver;

/// What the gate hands its subtask.
#[derive(Debug)]
pub enum Delivery {
    /// `element` was read from channel `channel`.
    Element {
        /// The channel (index among the subtask's input channels).
        channel: usize,
        /// What it delivered.
        element: Element,
    },
    /// Channel `channel` closed before its end of partition: its producer died.
    ChannelLost {
        /// The channel.
        channel: usize,
    },
    /// Nothing to process, but the capture of an unaligned checkpoint's channel state
    /// completed while the subtask waited: it should hand the channel state over.
    CaptureComplete,
}

impl Delivery {
    /// What channel `channel` delivered as read from it (`None`: it closed).
    #[inline]
    fn read(channel: usize, element: Option<Element>) -> Self {
        match element {
            Some(element) => Delivery::Element { channel, element },
            None => Delivery::ChannelLost { channel },
        }
    }
}

/// Encodes an input batch as channel state: only the vertex head knows the record types.
pub trait BatchEncoder {
    /// Encodes `batch` of logical input `input`.
    fn encode(&self, input: usize, batch: &(dyn Any + Send)) -> Result<Vec<u8>, TaskError>;
}

impl BatchEncoder for Box<dyn VertexHead> {
    fn encode(&self, input: usize, batch: &(dyn Any + Send)) -> Result<Vec<u8>, TaskError> {
        self.encode_batch(input, batch)
    }
}

/// The input channels of one subtask.
pub struct InputGate {
    rxs: Vec<Receiver<Element>>,
    /// Each channel's priority lane (unaligned checkpoint barriers).
    prio: Vec<UnboundedReceiver<CheckpointBarrier>>,
    /// Elements read ahead of processing by a capture (`None`: the channel closed); served
    /// before the channel's queue.
    ahead: Vec<VecDeque<Option<Element>>>,
    /// Logical input of each channel.
    pub input_of: Vec<usize>,
    /// Channels that delivered end of partition: no longer read.
    ended: Vec<bool>,
    remaining_per_input: Vec<usize>,
    remaining: usize,
    next_start: usize,
    /// Decides the subtask's watermark and idleness.
    valve: WatermarkValve,
    /// Decides which channels an aligned checkpoint holds back, and when it is aligned.
    aligner: BarrierAligner,
    /// Decides what an unaligned checkpoint's channel state is.
    capture: ChannelStateCapture,
    /// A priority barrier taken off its lane by [`InputGate::priority_pending`], served first.
    prio_stash: Option<(usize, CheckpointBarrier)>,
    /// Where the watermark released to the operators is published (the REST API's
    /// `watermarks`), if anywhere.
    watermark_gauge: Option<std::sync::Arc<crate::job_view::SubtaskIo>>,
    /// The aligned checkpoint whose first barrier came, and when.
    alignment_started: Option<(u64, std::time::Instant)>,
}

/// Why a subtask blocked on its outputs must act now.
#[derive(Debug)]
pub enum Interrupt {
    /// An unaligned checkpoint's barrier overtook the data on channel `.0`.
    Barrier(usize, CheckpointBarrier),
    /// Every channel delivered the position marker of the checkpoint being captured.
    CaptureComplete,
}

impl InputGate {
    /// A gate over `channels`, channel i feeding logical input `input_of[i]`.
    pub fn new(channels: Vec<ChannelReceiver>, input_of: Vec<usize>, num_inputs: usize) -> Self {
        let n = channels.len();
        let mut remaining_per_input = vec![0; num_inputs.max(1)];
        for &i in &input_of {
            if let Some(r) = remaining_per_input.get_mut(i) {
                *r += 1;
            }
        }
        let (rxs, prio) = channels.into_iter().unzip();
        Self {
            rxs,
            prio,
            ahead: (0..n).map(|_| VecDeque::new()).collect(),
            input_of,
            ended: vec![false; n],
            remaining_per_input,
            remaining: n,
            next_start: 0,
            valve: WatermarkValve::new(n),
            aligner: BarrierAligner::new(n),
            capture: ChannelStateCapture::new(n),
            prio_stash: None,
            watermark_gauge: None,
            alignment_started: None,
        }
    }

    /// Channels that have not delivered end of partition.
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// Elements (mostly record batches) waiting in the input channels, read-ahead included:
    /// the subtask's backlog, shown in thread dumps as its mailbox.
    pub fn queued(&self) -> usize {
        self.rxs.iter().map(|r| r.len()).sum::<usize>() + self.ahead.iter().map(VecDeque::len).sum::<usize>()
    }

    /// Decides what an element read from channel `ch`'s queue is: delivered (`Some`), or a
    /// position marker consumed here (`None`). Records it when the channel is captured.
    #[inline]
    fn admit(&mut self, ch: usize, e: Option<Element>, enc: &dyn BatchEncoder) -> Option<Option<Element>> {
        match self.capture.admit(ch, e.as_ref()) {
            Admit::Deliver => Some(e),
            Admit::Record => {
                record(&mut self.capture, ch, self.input_of[ch], e.as_ref(), enc);
                Some(e)
            }
            Admit::Consume => None,
        }
    }

    /// Whether a barrier of a newer unaligned checkpoint waits on a priority lane (a busy
    /// subtask asks this between records). Cheap: one `try_recv` per channel.
    pub fn priority_pending(&mut self) -> bool {
        if self.prio_stash.is_some() {
            return true;
        }
        if let Some(b) = self.try_priority() {
            self.prio_stash = Some(b);
        }
        self.prio_stash.is_some()
    }

    /// Puts the unprocessed rest of a batch from channel `ch` back in front of the channel,
    /// where it was (a capture started since records it as in flight).
    pub fn push_front(&mut self, ch: usize, e: Element) {
        if let Some(ahead) = self.ahead.get_mut(ch) {
            ahead.push_front(Some(e));
        }
    }

    /// The next priority-lane barrier of a checkpoint newer than the last one started, and
    /// its channel.
    fn try_priority(&mut self) -> Option<(usize, CheckpointBarrier)> {
        if let Some((ch, b)) = self.prio_stash.take() {
            if self.capture.is_new(b.id) {
                return Some((ch, b));
            }
        }
        for ch in 0..self.prio.len() {
            while let Ok(b) = self.prio[ch].try_recv() {
                if self.capture.is_new(b.id) {
                    return Some((ch, b));
                }
            }
        }
        None
    }

    /// The next element of any channel, without waiting: priority barriers first, then
    /// channels round-robin (read-ahead buffers before queues), skipping channels held back
    /// by an alignment. Never [`Delivery::CaptureComplete`].
    pub fn try_next(&mut self, enc: &dyn BatchEncoder) -> Option<Delivery> {
        if let Some((ch, b)) = self.try_priority() {
            return Some(Delivery::Element { channel: ch, element: Element::Barrier(b) });
        }
        let recv = |rx: &mut Receiver<Element>| match rx.try_recv() {
            Ok(e) => Poll::Ready(Some(e)),
            Err(TryRecvError::Empty) => Poll::Pending,
            Err(TryRecvError::Disconnected) => Poll::Ready(None),
        };
        self.scan(enc, recv, false)
    }

    /// Waits for the next element of any channel (see [`InputGate::try_next`]), or for the
    /// capture in progress to complete ([`Delivery::CaptureComplete`]) while waiting.
    pub fn poll_next(&mut self, cx: &mut Context<'_>, enc: &dyn BatchEncoder) -> Poll<Delivery> {
        if let Some((ch, b)) = self.try_priority() {
            return Poll::Ready(Delivery::Element { channel: ch, element: Element::Barrier(b) });
        }
        for ch in 0..self.prio.len() {
            while let Poll::Ready(Some(b)) = self.prio[ch].poll_recv(cx) {
                if self.capture.is_new(b.id) {
                    return Poll::Ready(Delivery::Element { channel: ch, element: Element::Barrier(b) });
                }
            }
        }
        match self.scan(enc, |rx| rx.poll_recv(cx), true) {
            Some(d) => Poll::Ready(d),
            None => Poll::Pending,
        }
    }

    /// One round over the channels from where the last one left off (read-ahead buffers
    /// before queues, channels held back by an alignment skipped), taking elements with
    /// `recv` until one is for processing. With `report_complete`, a capture that completed
    /// on the way is reported ([`Delivery::CaptureComplete`]).
    #[inline]
    fn scan(
        &mut self,
        enc: &dyn BatchEncoder,
        mut recv: impl FnMut(&mut Receiver<Element>) -> Poll<Option<Element>>,
        report_complete: bool,
    ) -> Option<Delivery> {
        let n = self.rxs.len();
        for k in 0..n {
            let i = (self.next_start + k) % n;
            if self.ended[i] || self.aligner.is_blocked(i) {
                continue;
            }
            if let Some(e) = self.ahead[i].pop_front() {
                self.next_start = (i + 1) % n;
                return Some(Delivery::read(i, e));
            }
            while let Poll::Ready(e) = recv(&mut self.rxs[i]) {
                let closed = e.is_none();
                match self.admit(i, e, enc) {
                    Some(e) => {
                        self.next_start = (i + 1) % n;
                        return Some(Delivery::read(i, e));
                    }
                    None if report_complete && self.capture.is_complete() => return Some(Delivery::CaptureComplete),
                    None => {}
                }
                if closed {
                    break;
                }
            }
        }
        None
    }

    /// Starts recording channel state for unaligned checkpoint `id`, whose snapshot was just
    /// taken: what was read ahead and not processed yet counts, and every channel is recorded
    /// until its marker. A capture of an older checkpoint is abandoned (the subtask declines
    /// that checkpoint).
    pub fn start_capture(&mut self, id: u64, enc: &dyn BatchEncoder) {
        self.capture.start(id);
        for (ch, ahead) in self.ahead.iter().enumerate() {
            for e in ahead {
                if self.capture.unprocessed(ch, e.as_ref()) == Admit::Record {
                    record(&mut self.capture, ch, self.input_of[ch], e.as_ref(), enc);
                }
            }
        }
    }

    /// The channel state of the capture in progress, if it is complete (the capture ends):
    /// the checkpoint id and its channel state, or why it cannot be had.
    pub fn take_completed_capture(&mut self) -> Option<(u64, Result<Vec<ChannelState>, TaskError>)> {
        self.capture.take_completed(&self.input_of)
    }

    /// Reads ahead every captured channel up to its marker, without waiting, so that the
    /// capture completes however far behind processing is.
    /// Returns whether it read anything while the capture is still incomplete (then the
    /// producers, freed from backpressure, may have more to send before their markers).
    pub fn read_ahead(&mut self, enc: &dyn BatchEncoder) -> bool {
        if !self.capture.is_active() {
            return false;
        }
        let mut read = false;
        for ch in 0..self.rxs.len() {
            while self.capture.capturing(ch) {
                let e = match self.rxs[ch].try_recv() {
                    Ok(e) => Some(e),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => None,
                };
                read = true;
                if let Some(e) = self.admit(ch, e, enc) {
                    self.ahead[ch].push_back(e);
                }
            }
        }
        read && self.capture.is_active() && !self.capture.is_complete()
    }

    /// For a subtask blocked on its outputs: completes when a newer unaligned checkpoint's
    /// barrier arrives or the capture in progress completes, reading captured channels ahead
    /// meanwhile.
    pub fn poll_interrupt(&mut self, cx: &mut Context<'_>, enc: &dyn BatchEncoder) -> Poll<Interrupt> {
        if let Some((ch, b)) = self.try_priority() {
            return Poll::Ready(Interrupt::Barrier(ch, b));
        }
        for ch in 0..self.prio.len() {
            while let Poll::Ready(Some(b)) = self.prio[ch].poll_recv(cx) {
                if self.capture.is_new(b.id) {
                    return Poll::Ready(Interrupt::Barrier(ch, b));
                }
            }
        }
        for ch in 0..self.rxs.len() {
            while self.capture.capturing(ch) {
                let e = match self.rxs[ch].poll_recv(cx) {
                    Poll::Ready(e) => e,
                    Poll::Pending => break,
                };
                if let Some(e) = self.admit(ch, e, enc) {
                    self.ahead[ch].push_back(e);
                }
            }
        }
        if self.capture.is_complete() {
            return Poll::Ready(Interrupt::CaptureComplete);
        }
        Poll::Pending
    }

    /// Records checkpoint barrier `id` from channel `ch`. With `aligned`, the channel is held
    /// back until every channel delivered the barrier (exactly-once); without, nothing is
    /// held back (at-least-once). A newer barrier abandons an unfinished older alignment.
    #[inline]
    pub fn on_barrier(&mut self, ch: usize, barrier: CheckpointBarrier) {
        if barrier.aligned && self.alignment_started.is_none_or(|(id, _)| id < barrier.id) {
            self.alignment_started = Some((barrier.id, std::time::Instant::now()));
        }
        self.aligner.on_barrier(ch, barrier);
    }

    /// The checkpoint whose barrier every live channel has delivered, if any: the subtask
    /// then snapshots and forwards the barrier. Ends the alignment (releases the channels).
    #[inline]
    pub fn take_completed_barrier(&mut self) -> Option<CheckpointBarrier> {
        let done = self.aligner.take_completed()?;
        if let (Some((id, started)), Some(io)) = (self.alignment_started, &self.watermark_gauge) {
            if id == done.id {
                io.set_alignment(id, started.elapsed().as_millis() as u64);
            }
        }
        Some(done)
    }

    /// Whether channel `ch` is held back by an alignment.
    #[inline]
    pub fn is_blocked(&self, ch: usize) -> bool {
        self.aligner.is_blocked(ch)
    }

    /// Records a watermark from channel `ch`; pushes onto `out` what changed for the subtask.
    #[inline]
    pub fn on_watermark(&mut self, ch: usize, wm: i64, out: &mut Vec<GateEvent>) {
        let before = out.len();
        self.valve.on_watermark(ch, wm, out);
        self.publish(&out[before..]);
    }

    /// Publishes the subtask's input watermark to `io` from now on.
    pub fn with_watermark_gauge(mut self, io: std::sync::Arc<crate::job_view::SubtaskIo>) -> Self {
        self.watermark_gauge = Some(io);
        self
    }

    /// Publishes the latest watermark among `events`, if any.
    #[inline]
    fn publish(&self, events: &[GateEvent]) {
        if let Some(io) = &self.watermark_gauge {
            if let Some(w) = events.iter().rev().find_map(|e| match e {
                GateEvent::Watermark(w) => Some(*w),
                GateEvent::Idle(_) => None,
            }) {
                io.set_input_watermark(w);
            }
        }
    }

    /// Records channel `ch` becoming idle or active; pushes onto `out` what changed.
    #[inline]
    pub fn on_idle(&mut self, ch: usize, idle: bool, out: &mut Vec<GateEvent>) {
        let before = out.len();
        self.valve.on_idle(ch, idle, out);
        self.publish(&out[before..]);
    }

    /// Records end of partition on `ch`; returns `Some(input)` if that logical input ended.
    pub fn on_end(&mut self, ch: usize, out: &mut Vec<GateEvent>) -> Option<usize> {
        if self.ended[ch] {
            return None;
        }
        self.ended[ch] = true;
        self.aligner.on_end(ch);
        self.capture.on_end(ch);
        self.remaining -= 1;
        let input = self.input_of[ch];
        let ended_input = self.remaining_per_input.get_mut(input).and_then(|r| {
            *r -= 1;
            (*r == 0).then_some(input)
        });
        let before = out.len();
        self.valve.on_end(ch, out);
        self.publish(&out[before..]);
        ended_input
    }
}

/// Records `e`, a batch of channel `ch` feeding logical input `input`, as channel state.
fn record(capture: &mut ChannelStateCapture, ch: usize, input: usize, e: Option<&Element>, enc: &dyn BatchEncoder) {
    if let Some(Element::Records { batch, .. }) = e {
        capture.record(ch, || enc.encode(input, batch.as_ref()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use riffle_api::StreamRecord;
    use tokio::sync::mpsc::{channel, unbounded_channel};

    fn barrier(id: u64, aligned: bool) -> CheckpointBarrier {
        CheckpointBarrier {
            id,
            aligned,
            unaligned: false,
            target: None,
            inline_threshold: 0,
            incremental: false,
            base: None,
        }
    }

    fn unaligned(id: u64) -> CheckpointBarrier {
        CheckpointBarrier { unaligned: true, ..barrier(id, true) }
    }

    /// Encodes batches of `u32` records as their values, little-endian.
    struct U32s;

    impl BatchEncoder for U32s {
        fn encode(&self, _input: usize, batch: &(dyn Any + Send)) -> Result<Vec<u8>, TaskError> {
            let b = batch.downcast_ref::<Vec<StreamRecord<u32>>>().ok_or_else(|| TaskError::msg("test", "type"))?;
            Ok(b.iter().flat_map(|r| r.value.to_le_bytes()).collect())
        }
    }

    fn records(values: &[u32]) -> Element {
        let batch: Vec<StreamRecord<u32>> = values.iter().map(|&value| StreamRecord { value, timestamp: 0 }).collect();
        Element::Records { count: values.len() as u32, batch: Box::new(batch) }
    }

    fn values(e: &Element) -> Vec<u32> {
        match e {
            Element::Records { batch, .. } => {
                batch.downcast_ref::<Vec<StreamRecord<u32>>>().unwrap().iter().map(|r| r.value).collect()
            }
            other => panic!("not records: {other:?}"),
        }
    }

    fn channels(n: usize, capacity: usize) -> (Vec<crate::exchange::ChannelSender>, InputGate) {
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..n)
            .map(|_| {
                let (tx, rx) = channel::<Element>(capacity);
                let (ptx, prx) = unbounded_channel();
                ((tx, ptx), (rx, prx))
            })
            .unzip();
        (txs, InputGate::new(rxs, vec![0; n], 1))
    }

    fn gate(n: usize) -> InputGate {
        channels(n, 1).1
    }

    /// The next element of any channel, without waiting (a lost channel fails the test).
    fn next(g: &mut InputGate) -> Option<(usize, Element)> {
        match g.try_next(&U32s)? {
            Delivery::Element { channel, element } => Some((channel, element)),
            other => panic!("not an element: {other:?}"),
        }
    }

    #[test]
    fn watermark_is_min_of_active_channels_and_idle_channels_do_not_hold_it_back() {
        let mut g = gate(2);
        let mut ev = Vec::new();
        g.on_watermark(0, 100, &mut ev);
        assert!(ev.is_empty(), "channel 1 has no watermark yet");
        g.on_watermark(1, 50, &mut ev);
        assert_eq!(ev, vec![GateEvent::Watermark(50)]);
        ev.clear();
        g.on_idle(1, true, &mut ev);
        assert_eq!(ev, vec![GateEvent::Watermark(100)], "idle channel 1 no longer holds back");
        ev.clear();
        g.on_idle(0, true, &mut ev);
        assert_eq!(ev, vec![GateEvent::Idle(true)]);
        ev.clear();
        g.on_watermark(0, 200, &mut ev);
        assert_eq!(ev, vec![GateEvent::Idle(false), GateEvent::Watermark(200)]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn aligned_barriers_hold_back_channels_until_all_delivered() {
        let (txs, mut g) = channels(3, 8);
        let txs: Vec<_> = txs.into_iter().map(|(tx, _)| tx).collect();
        for tx in &txs {
            tx.send(Element::Watermark(1)).await.unwrap();
        }
        txs[0].send(Element::Barrier(barrier(7, true))).await.unwrap();
        txs[0].send(Element::Watermark(99)).await.unwrap(); // after the barrier: must wait
        let mut got = Vec::new();
        while let Some((ch, e)) = next(&mut g) {
            if let Element::Barrier(b) = e {
                g.on_barrier(ch, b);
            }
            got.push(ch);
        }
        assert!(g.is_blocked(0));
        assert_eq!(got.iter().filter(|&&c| c == 0).count(), 2, "channel 0 stops after its barrier");
        assert_eq!(g.take_completed_barrier(), None);
        txs[1].send(Element::Barrier(barrier(7, true))).await.unwrap();
        drop(txs[2].clone());
        let mut ev = Vec::new();
        while let Some((ch, e)) = next(&mut g) {
            match e {
                Element::Barrier(b) => g.on_barrier(ch, b),
                Element::EndOfPartition => {
                    g.on_end(ch, &mut ev);
                }
                _ => {}
            }
        }
        assert_eq!(g.take_completed_barrier(), None, "channel 2 has neither delivered nor ended");
        txs[2].send(Element::EndOfPartition).await.unwrap();
        while let Some((ch, e)) = next(&mut g) {
            if let Element::EndOfPartition = e {
                g.on_end(ch, &mut ev);
            }
        }
        assert_eq!(g.take_completed_barrier(), Some(barrier(7, true)), "an ended channel counts as aligned");
        assert!(!g.is_blocked(0));
        assert!(matches!(next(&mut g), Some((0, Element::Watermark(99)))));
    }

    #[test]
    fn the_gate_publishes_its_input_watermark_and_how_long_an_alignment_took() {
        let io = std::sync::Arc::new(crate::job_view::SubtaskIo::default());
        let mut g = gate(2).with_watermark_gauge(io.clone());
        let wm = |io: &crate::job_view::SubtaskIo| io.input_watermark.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(wm(&io), crate::job_view::NO_WATERMARK);
        let mut ev = Vec::new();
        g.on_watermark(0, 10, &mut ev);
        assert_eq!(wm(&io), crate::job_view::NO_WATERMARK, "channel 1 has none yet");
        g.on_watermark(1, 5, &mut ev);
        assert_eq!(wm(&io), 5);
        g.on_barrier(0, barrier(3, true));
        std::thread::sleep(std::time::Duration::from_millis(30));
        g.on_barrier(1, barrier(3, true));
        assert_eq!(g.take_completed_barrier(), Some(barrier(3, true)));
        let ms = io.alignment_ms(3);
        assert!((30..5_000).contains(&ms), "first to last barrier: {ms} ms");
        assert_eq!(io.alignment_ms(2), 0, "another checkpoint did not align here");
        // Unaligned barriers are not aligned: nothing is published for them.
        g.on_barrier(0, barrier(4, false));
        g.on_barrier(1, barrier(4, false));
        assert_eq!(g.take_completed_barrier(), Some(barrier(4, false)));
        assert_eq!(io.alignment_ms(4), 0);
        g.on_end(0, &mut ev);
        g.on_end(1, &mut ev);
        assert_eq!(wm(&io), i64::MAX, "every input ended: the final watermark");
    }

    #[test]
    fn unaligned_mode_holds_nothing_back_and_newer_barriers_win() {
        let mut g = gate(2);
        g.on_barrier(0, barrier(1, false));
        assert!(!g.is_blocked(0));
        g.on_barrier(0, barrier(2, true));
        assert!(g.is_blocked(0));
        g.on_barrier(1, barrier(1, true)); // stale
        assert!(!g.is_blocked(1));
        g.on_barrier(1, barrier(2, true));
        assert_eq!(g.take_completed_barrier(), Some(barrier(2, true)));
    }

    #[test]
    fn end_of_partition_releases_the_watermark_and_reports_ended_inputs() {
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..3)
            .map(|_| {
                let (tx, rx) = channel::<Element>(1);
                let (ptx, prx) = unbounded_channel::<CheckpointBarrier>();
                ((tx, ptx), (rx, prx))
            })
            .unzip();
        let _keep = txs;
        let mut g = InputGate::new(rxs, vec![0, 1, 1], 2);
        let mut ev = Vec::new();
        g.on_watermark(0, 10, &mut ev);
        g.on_watermark(1, 20, &mut ev);
        g.on_watermark(2, 5, &mut ev);
        ev.clear();
        assert_eq!(g.on_end(2, &mut ev), None);
        assert_eq!(ev, vec![GateEvent::Watermark(10)]);
        assert_eq!(g.on_end(1, &mut ev), Some(1));
        assert_eq!(g.on_end(0, &mut ev), Some(0));
        assert_eq!(g.remaining(), 0);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_unaligned_barrier_overtakes_queued_data_and_in_flight_records_become_channel_state() {
        let (txs, mut g) = channels(2, 8);
        // Channel 0: two batches, then the producer snapshotted (marker), then one more.
        txs[0].0.send(records(&[1, 2])).await.unwrap();
        txs[0].0.send(records(&[3])).await.unwrap();
        txs[0].1.send(unaligned(5)).unwrap();
        txs[0].0.send(Element::Barrier(unaligned(5))).await.unwrap();
        txs[0].0.send(records(&[4])).await.unwrap();
        // Channel 1: one batch, its producer has not snapshotted yet.
        txs[1].0.send(records(&[10])).await.unwrap();

        // The barrier comes first, ahead of the queued batches.
        let Some((0, Element::Barrier(b))) = next(&mut g) else { panic!("the barrier overtakes") };
        assert_eq!(b, unaligned(5));
        g.start_capture(5, &U32s);
        // Reading ahead consumes channel 0 up to its marker without processing anything.
        g.read_ahead(&U32s);
        assert!(g.take_completed_capture().is_none(), "channel 1's marker has not arrived");
        // Processing goes on in order: read-ahead batches first, then the rest of the queue.
        let mut seen = Vec::new();
        while let Some((ch, e)) = next(&mut g) {
            seen.push((ch, values(&e)));
        }
        assert_eq!(seen, vec![(0, vec![1, 2]), (1, vec![10]), (0, vec![3]), (0, vec![4])]);
        // Channel 1's producer snapshots later: what it sent before counts, what after does not.
        txs[1].0.send(records(&[11])).await.unwrap();
        txs[1].1.send(unaligned(5)).unwrap();
        txs[1].0.send(Element::Barrier(unaligned(5))).await.unwrap();
        txs[1].0.send(records(&[12])).await.unwrap();
        assert!(next(&mut g).is_some_and(|(ch, e)| ch == 1 && values(&e) == vec![11]));
        assert!(next(&mut g).is_some_and(|(ch, e)| ch == 1 && values(&e) == vec![12]));
        let (id, state) = g.take_completed_capture().expect("both markers arrived");
        assert_eq!(id, 5);
        let state = state.unwrap();
        let decoded: Vec<(u32, Vec<Vec<u8>>)> =
            state.iter().map(|c| (c.channel, c.batches.iter().map(|b| b.to_vec()).collect())).collect();
        let le = |v: &[u32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        // Channel 0: every batch before its marker (none was processed before the snapshot);
        // channel 1: the batch processed after the snapshot and the one after it up to the marker.
        assert_eq!(decoded, vec![(0, vec![le(&[1, 2]), le(&[3])]), (1, vec![le(&[10]), le(&[11])])]);
        // A stale priority barrier of the same checkpoint is ignored.
        txs[1].1.send(unaligned(5)).unwrap();
        assert!(next(&mut g).is_none());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_marker_before_its_barrier_starts_the_checkpoint_with_nothing_in_flight_on_its_channel() {
        let (txs, mut g) = channels(2, 8);
        txs[1].0.send(Element::Barrier(unaligned(3))).await.unwrap();
        let Some((1, Element::Barrier(b))) = next(&mut g) else { panic!("the marker starts it") };
        assert_eq!(b.id, 3);
        g.start_capture(3, &U32s);
        txs[0].0.send(Element::EndOfPartition).await.unwrap();
        assert!(matches!(next(&mut g), Some((0, Element::EndOfPartition))));
        let (id, state) = g.take_completed_capture().expect("an ended channel has nothing in flight");
        assert_eq!((id, state.unwrap()), (3, vec![]));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_waiting_subtask_is_told_of_a_completed_capture_and_of_a_lost_channel() {
        let (mut txs, mut g) = channels(2, 8);
        txs[0].1.send(unaligned(3)).unwrap();
        let Some((0, Element::Barrier(b))) = next(&mut g) else { panic!("the barrier comes first") };
        g.start_capture(b.id, &U32s);
        txs[1].0.send(Element::EndOfPartition).await.unwrap();
        assert!(matches!(next(&mut g), Some((1, Element::EndOfPartition))));
        g.on_end(1, &mut Vec::new());
        txs[0].0.send(Element::Barrier(unaligned(3))).await.unwrap();
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(matches!(g.poll_next(&mut cx, &U32s), Poll::Ready(Delivery::CaptureComplete)));
        assert_eq!(g.take_completed_capture().map(|(id, s)| (id, s.unwrap())), Some((3, vec![])));
        assert!(g.poll_next(&mut cx, &U32s).is_pending(), "the marker was consumed");
        txs.remove(0);
        assert!(matches!(g.poll_next(&mut cx, &U32s), Poll::Ready(Delivery::ChannelLost { channel: 0 })));
        assert!(matches!(g.try_next(&U32s), Some(Delivery::ChannelLost { channel: 0 })), "until it is handled");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_blocked_subtask_is_interrupted_by_a_barrier_and_by_the_capture_completing() {
        let (txs, mut g) = channels(1, 8);
        txs[0].0.send(records(&[7])).await.unwrap();
        txs[0].1.send(unaligned(9)).unwrap();
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let Poll::Ready(Interrupt::Barrier(0, b)) = g.poll_interrupt(&mut cx, &U32s) else { panic!("barrier") };
        g.start_capture(b.id, &U32s);
        assert!(g.poll_interrupt(&mut cx, &U32s).is_pending(), "the marker has not arrived");
        txs[0].0.send(Element::Barrier(unaligned(9))).await.unwrap();
        assert!(matches!(g.poll_interrupt(&mut cx, &U32s), Poll::Ready(Interrupt::CaptureComplete)));
        let (_, state) = g.take_completed_capture().unwrap();
        assert_eq!(state.unwrap()[0].batches.len(), 1, "the batch read ahead while blocked");
        assert!(next(&mut g).is_some_and(|(_, e)| values(&e) == vec![7]), "and processed after");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_barrier_is_seen_between_records_and_the_rest_of_the_batch_becomes_channel_state() {
        let (txs, mut g) = channels(1, 8);
        txs[0].0.send(records(&[1, 2, 3])).await.unwrap();
        txs[0].0.send(records(&[4])).await.unwrap();
        assert!(next(&mut g).is_some_and(|(_, e)| values(&e) == vec![1, 2, 3]));
        assert!(!g.priority_pending());
        txs[0].1.send(unaligned(4)).unwrap();
        assert!(g.priority_pending(), "seen while the batch is being processed");
        // The head processed record 1 and hands back the rest.
        g.push_front(0, records(&[2, 3]));
        let Some((0, Element::Barrier(b))) = next(&mut g) else { panic!("the barrier comes first") };
        g.start_capture(b.id, &U32s);
        txs[0].0.send(Element::Barrier(unaligned(4))).await.unwrap();
        assert!(next(&mut g).is_some_and(|(_, e)| values(&e) == vec![2, 3]));
        assert!(next(&mut g).is_some_and(|(_, e)| values(&e) == vec![4]));
        assert!(next(&mut g).is_none(), "the marker is consumed by the gate");
        let (_, state) = g.take_completed_capture().expect("the marker arrived");
        let le = |v: &[u32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let batches: Vec<Vec<u8>> = state.unwrap()[0].batches.iter().map(|b| b.to_vec()).collect();
        assert_eq!(batches, vec![le(&[2, 3]), le(&[4])], "the unprocessed rest and what followed it");
    }
}
