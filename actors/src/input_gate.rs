//! A subtask's input side: one receiver per input channel, polled round-robin, with the
//! per-channel watermark and idleness bookkeeping that yields the subtask's watermark
//! (the minimum over its active channels).

use std::task::{Context, Poll};

use riffle_api::{CheckpointBarrier, Element};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::mpsc::Receiver;

/// What a channel delivered: an element, or `None` if it closed before end of partition
/// (its producer died).
pub type Delivery = (usize, Option<Element>);

/// The input channels of one subtask.
pub struct InputGate {
    rxs: Vec<Receiver<Element>>,
    /// Logical input of each channel.
    pub input_of: Vec<usize>,
    watermarks: Vec<i64>,
    idle: Vec<bool>,
    ended: Vec<bool>,
    remaining_per_input: Vec<usize>,
    remaining: usize,
    next_start: usize,
    emitted: i64,
    all_idle: bool,
    /// Channels held back by an aligned checkpoint barrier: not read until the alignment ends.
    blocked: Vec<bool>,
    alignment: Option<Alignment>,
}

/// A checkpoint barrier being aligned across the gate's channels.
#[derive(Debug)]
struct Alignment {
    barrier: CheckpointBarrier,
    seen: Vec<bool>,
}

/// A change of the subtask's combined input status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateEvent {
    /// The combined watermark advanced.
    Watermark(i64),
    /// Every active channel is idle now (`true`), or one became active again (`false`).
    Idle(bool),
}

impl InputGate {
    /// A gate over `rxs`, channel i feeding logical input `input_of[i]`.
    pub fn new(rxs: Vec<Receiver<Element>>, input_of: Vec<usize>, num_inputs: usize) -> Self {
        let n = rxs.len();
        let mut remaining_per_input = vec![0; num_inputs.max(1)];
        for &i in &input_of {
            if let Some(r) = remaining_per_input.get_mut(i) {
                *r += 1;
            }
        }
        Self {
            rxs,
            input_of,
            watermarks: vec![i64::MIN; n],
            idle: vec![false; n],
            ended: vec![false; n],
            remaining_per_input,
            remaining: n,
            next_start: 0,
            emitted: i64::MIN,
            all_idle: false,
            blocked: vec![false; n],
            alignment: None,
        }
    }

    /// Channels that have not delivered end of partition.
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// Takes the next element if one is ready, without waiting.
    pub fn try_next(&mut self) -> Option<Delivery> {
        let n = self.rxs.len();
        for k in 0..n {
            let i = (self.next_start + k) % n;
            if self.ended[i] || self.blocked[i] {
                continue;
            }
            match self.rxs[i].try_recv() {
                Ok(e) => {
                    self.next_start = (i + 1) % n;
                    return Some((i, Some(e)));
                }
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => return Some((i, None)),
            }
        }
        None
    }

    /// Waits for the next element of any channel.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Delivery> {
        let n = self.rxs.len();
        for k in 0..n {
            let i = (self.next_start + k) % n;
            if self.ended[i] || self.blocked[i] {
                continue;
            }
            match self.rxs[i].poll_recv(cx) {
                Poll::Ready(Some(e)) => {
                    self.next_start = (i + 1) % n;
                    return Poll::Ready((i, Some(e)));
                }
                Poll::Ready(None) => return Poll::Ready((i, None)),
                Poll::Pending => {}
            }
        }
        Poll::Pending
    }

    /// Records checkpoint barrier `id` from channel `ch`. With `aligned`, the channel is held
    /// back until every channel delivered the barrier (exactly-once); without, nothing is
    /// held back (at-least-once). A newer barrier abandons an unfinished older alignment.
    pub fn on_barrier(&mut self, ch: usize, barrier: CheckpointBarrier) {
        match &self.alignment {
            Some(a) if a.barrier.id > barrier.id => return,
            Some(a) if a.barrier.id == barrier.id => {}
            _ => {
                self.blocked.iter_mut().for_each(|b| *b = false);
                self.alignment = Some(Alignment { barrier, seen: vec![false; self.rxs.len()] });
            }
        }
        if let Some(a) = &mut self.alignment {
            a.seen[ch] = true;
            if a.barrier.aligned {
                self.blocked[ch] = true;
            }
        }
    }

    /// The checkpoint whose barrier every live channel has delivered, if any: the subtask
    /// then snapshots and forwards the barrier. Ends the alignment (releases the channels).
    pub fn take_completed_barrier(&mut self) -> Option<CheckpointBarrier> {
        let a = self.alignment.as_ref()?;
        if !(0..a.seen.len()).all(|i| a.seen[i] || self.ended[i]) {
            return None;
        }
        let done = self.alignment.take().map(|a| a.barrier);
        self.blocked.iter_mut().for_each(|b| *b = false);
        done
    }

    /// Whether channel `ch` is held back by an alignment.
    pub fn is_blocked(&self, ch: usize) -> bool {
        self.blocked.get(ch).copied().unwrap_or(false)
    }

    /// Records a watermark from channel `ch`; returns what changed for the subtask.
    pub fn on_watermark(&mut self, ch: usize, wm: i64, out: &mut Vec<GateEvent>) {
        if wm > self.watermarks[ch] {
            self.watermarks[ch] = wm;
        }
        self.idle[ch] = false;
        self.recompute(out);
    }

    /// Records channel `ch` becoming idle or active.
    pub fn on_idle(&mut self, ch: usize, idle: bool, out: &mut Vec<GateEvent>) {
        self.idle[ch] = idle;
        self.recompute(out);
    }

    /// Records end of partition on `ch`; returns `Some(input)` if that logical input ended.
    pub fn on_end(&mut self, ch: usize, out: &mut Vec<GateEvent>) -> Option<usize> {
        if self.ended[ch] {
            return None;
        }
        self.ended[ch] = true;
        self.watermarks[ch] = i64::MAX;
        self.remaining -= 1;
        let input = self.input_of[ch];
        let r = self.remaining_per_input.get_mut(input)?;
        *r -= 1;
        let ended_input = (*r == 0).then_some(input);
        self.recompute(out);
        ended_input
    }

    fn recompute(&mut self, out: &mut Vec<GateEvent>) {
        // Ended channels count with their final watermark (MAX); idle ones do not count.
        let mut min: Option<i64> = None;
        for i in 0..self.watermarks.len() {
            if self.idle[i] && !self.ended[i] {
                continue;
            }
            min = Some(min.map_or(self.watermarks[i], |m: i64| m.min(self.watermarks[i])));
        }
        match min {
            None => {
                // Every channel is idle: like Flink's valve, release the highest watermark any
                // channel reached, then report idleness downstream.
                let max = self.watermarks.iter().copied().max().unwrap_or(i64::MIN);
                if max > self.emitted {
                    self.emitted = max;
                    out.push(GateEvent::Watermark(max));
                }
                if !self.all_idle {
                    self.all_idle = true;
                    out.push(GateEvent::Idle(true));
                }
            }
            Some(m) => {
                if self.all_idle {
                    self.all_idle = false;
                    out.push(GateEvent::Idle(false));
                }
                if m > self.emitted {
                    self.emitted = m;
                    out.push(GateEvent::Watermark(m));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc::channel;

    fn barrier(id: u64, aligned: bool) -> CheckpointBarrier {
        CheckpointBarrier { id, aligned, target: None, inline_threshold: 0 }
    }

    fn gate(n: usize) -> InputGate {
        let rxs = (0..n).map(|_| channel::<Element>(1).1).collect();
        InputGate::new(rxs, vec![0; n], 1)
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
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..3).map(|_| channel::<Element>(8)).unzip();
        let mut g = InputGate::new(rxs, vec![0; 3], 1);
        for tx in &txs {
            tx.send(Element::Watermark(1)).await.unwrap();
        }
        txs[0].send(Element::Barrier(barrier(7, true))).await.unwrap();
        txs[0].send(Element::Watermark(99)).await.unwrap(); // after the barrier: must wait
        let mut got = Vec::new();
        while let Some((ch, Some(e))) = g.try_next() {
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
        while let Some((ch, Some(e))) = g.try_next() {
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
        while let Some((ch, Some(e))) = g.try_next() {
            if let Element::EndOfPartition = e {
                g.on_end(ch, &mut ev);
            }
        }
        assert_eq!(g.take_completed_barrier(), Some(barrier(7, true)), "an ended channel counts as aligned");
        assert!(!g.is_blocked(0));
        assert!(matches!(g.try_next(), Some((0, Some(Element::Watermark(99))))));
    }

    #[test]
    fn unaligned_mode_holds_nothing_back_and_newer_barriers_win() {
        let rxs = (0..2).map(|_| channel::<Element>(1).1).collect();
        let mut g = InputGate::new(rxs, vec![0; 2], 1);
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
        let rxs = (0..3).map(|_| channel::<Element>(1).1).collect();
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
}
