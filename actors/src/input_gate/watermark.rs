//! The watermark valve: per-channel watermarks and idleness in, the subtask's watermark out
//! (Flink's `StatusWatermarkValve`).
//!
//! The subtask's watermark is the minimum over the channels that are not idle; an ended
//! channel counts with its final watermark (MAX), idle or not, so that it never holds the
//! others back; when every channel is idle, the highest watermark any of them reached is
//! released and the subtask reports itself idle downstream. A watermark is emitted only when
//! it advances. Pure bookkeeping, no channels: every rule is a row in the tests' table.

/// A change of the subtask's combined input status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateEvent {
    /// The combined watermark advanced.
    Watermark(i64),
    /// Every active channel is idle now (`true`), or one became active again (`false`).
    Idle(bool),
}

/// Per-channel watermarks and idleness of one subtask's input channels. Works in place on
/// flat vectors indexed by channel, allocation-free per event: it sees every watermark.
#[derive(Debug)]
pub struct WatermarkValve {
    /// The highest watermark each channel delivered (MAX once it ended).
    watermarks: Vec<i64>,
    /// Channels that declared themselves idle.
    idle: Vec<bool>,
    /// Channels that delivered end of partition: they count whether idle or not.
    ended: Vec<bool>,
    /// The last watermark emitted: never emitted again nor regressed.
    emitted: i64,
    /// Whether `Idle(true)` was the last idleness reported.
    all_idle: bool,
}

impl WatermarkValve {
    /// A valve over `channels` channels, none of which has delivered a watermark yet.
    pub fn new(channels: usize) -> Self {
        Self {
            watermarks: vec![i64::MIN; channels],
            idle: vec![false; channels],
            ended: vec![false; channels],
            emitted: i64::MIN,
            all_idle: false,
        }
    }

    /// Records watermark `wm` from channel `ch` (which makes it active again) and pushes onto
    /// `out` what changed for the subtask. A channel's watermark never goes back.
    #[inline]
    pub fn on_watermark(&mut self, ch: usize, wm: i64, out: &mut Vec<GateEvent>) {
        if wm > self.watermarks[ch] {
            self.watermarks[ch] = wm;
        }
        self.idle[ch] = false;
        self.recompute(out);
    }

    /// Records channel `ch` becoming idle or active again; pushes onto `out` what changed.
    #[inline]
    pub fn on_idle(&mut self, ch: usize, idle: bool, out: &mut Vec<GateEvent>) {
        self.idle[ch] = idle;
        self.recompute(out);
    }

    /// Records end of partition on channel `ch`: from now on it counts at MAX. Pushes onto
    /// `out` what changed; a second end of the same channel changes nothing.
    pub fn on_end(&mut self, ch: usize, out: &mut Vec<GateEvent>) {
        if self.ended[ch] {
            return;
        }
        self.ended[ch] = true;
        self.watermarks[ch] = i64::MAX;
        self.recompute(out);
    }

    /// Derives the subtask's watermark and idleness from the channels' and pushes what
    /// changed since the last call (idleness first when it ends, last when it starts).
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
    use GateEvent::{Idle, Watermark};

    /// What a channel delivers to the valve.
    #[derive(Debug, Clone, Copy)]
    enum In {
        Wm(usize, i64),
        Idle(usize),
        Active(usize),
        End(usize),
    }
    use In::{Active, End, Wm};

    fn feed(v: &mut WatermarkValve, input: In, out: &mut Vec<GateEvent>) {
        match input {
            Wm(ch, wm) => v.on_watermark(ch, wm, out),
            In::Idle(ch) => v.on_idle(ch, true, out),
            Active(ch) => v.on_idle(ch, false, out),
            End(ch) => v.on_end(ch, out),
        }
    }

    /// A row: why, channels, the inputs that set the valve up (their output is not checked),
    /// one more input, and what it must emit.
    type Row = (&'static str, usize, &'static [In], In, &'static [GateEvent]);

    #[test]
    fn the_valve_follows_its_table() {
        #[rustfmt::skip]
        let table: &[Row] = &[
            ("a channel without a watermark holds the others back",
                2, &[], Wm(0, 100), &[]),
            ("the minimum over channels",
                2, &[Wm(0, 100)], Wm(1, 50), &[Watermark(50)]),
            ("the minimum advances with the slowest channel",
                2, &[Wm(0, 100), Wm(1, 50)], Wm(1, 70), &[Watermark(70)]),
            ("a faster channel moving on changes nothing",
                2, &[Wm(0, 100), Wm(1, 50)], Wm(0, 200), &[]),
            ("no regression: a channel's watermark never goes back",
                2, &[Wm(0, 100), Wm(1, 50)], Wm(1, 10), &[]),
            ("no regression: the same watermark is not emitted twice",
                1, &[Wm(0, 5)], Wm(0, 5), &[]),
            ("an idle channel does not hold the watermark back",
                2, &[Wm(0, 100), Wm(1, 50)], In::Idle(1), &[Watermark(100)]),
            ("an idle channel without a watermark does not either",
                2, &[Wm(0, 100)], In::Idle(1), &[Watermark(100)]),
            ("an idle fast channel leaves the slow one's watermark",
                2, &[Wm(0, 100), Wm(1, 50)], In::Idle(0), &[]),
            ("all idle: the max of the idle channels is released",
                2, &[Wm(0, 30), Wm(1, 50), In::Idle(1)], In::Idle(0), &[Watermark(50), Idle(true)]),
            ("all idle and nothing higher to release: only idleness",
                2, &[Wm(0, 100), Wm(1, 50), In::Idle(1)], In::Idle(0), &[Idle(true)]),
            ("all idle is reported once",
                2, &[Wm(0, 1), In::Idle(0), In::Idle(1)], In::Idle(1), &[]),
            ("a watermark ends idleness, then advances",
                2, &[Wm(0, 100), In::Idle(0), In::Idle(1)], Wm(0, 200), &[Idle(false), Watermark(200)]),
            ("becoming active ends idleness without a watermark to emit",
                2, &[Wm(0, 100), Wm(1, 100), In::Idle(0), In::Idle(1)], Active(1), &[Idle(false)]),
            ("an ended channel counts at MAX",
                2, &[Wm(0, 10), Wm(1, 5)], End(1), &[Watermark(10)]),
            ("an ended channel counts even if it was idle: idleness ends, MAX is released",
                2, &[Wm(0, 10), In::Idle(1), In::Idle(0)], End(1), &[Idle(false), Watermark(i64::MAX)]),
            ("every channel ended: MAX",
                2, &[Wm(0, 10), End(1)], End(0), &[Watermark(i64::MAX)]),
            ("a second end changes nothing",
                2, &[Wm(0, 10), Wm(1, 20), End(1)], End(1), &[]),
            ("the rest idle: an ended channel releases MAX and the gate is not idle",
                2, &[Wm(0, 10), End(1)], In::Idle(0), &[Watermark(i64::MAX)]),
        ];
        for (why, channels, setup, input, expected) in table {
            let mut v = WatermarkValve::new(*channels);
            let mut out = Vec::new();
            for i in *setup {
                feed(&mut v, *i, &mut out);
            }
            out.clear();
            feed(&mut v, *input, &mut out);
            assert_eq!(out, *expected, "{why}: after {setup:?}, {input:?}");
        }
    }
}
