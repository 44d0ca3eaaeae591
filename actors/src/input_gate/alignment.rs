//! Aligned checkpoint barriers: which channels are held back, and when a checkpoint's
//! barrier has come from every live channel.
//!
//! Exactly-once (`aligned`) barriers hold back each channel that delivered one until every
//! channel that has not ended delivered it too: then nothing after the barrier has been
//! processed anywhere and the subtask snapshots. At-least-once barriers hold nothing back.
//! A barrier of a newer checkpoint abandons an unfinished alignment (that checkpoint is
//! aborted upstream anyway); one of an older checkpoint is stale. Pure bookkeeping, no
//! channels: every rule is a row in the tests' table. Unaligned barriers never come here
//! (see `capture.rs`).

use riffle_api::CheckpointBarrier;

/// What a barrier did to the alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarrierStep {
    /// It belongs to an older checkpoint than the one being aligned: ignored.
    Stale,
    /// The channel delivered the barrier of the checkpoint being aligned (the first one of a
    /// checkpoint starts it). `aborted` names the older checkpoint whose alignment it
    /// abandoned.
    Seen {
        /// The checkpoint whose alignment the barrier abandoned, if any.
        aborted: Option<u64>,
    },
}

/// The alignment of one subtask's input channels on checkpoint barriers. Its buffers are
/// allocated once: a new alignment reuses them.
#[derive(Debug)]
pub struct BarrierAligner {
    /// The barrier of the checkpoint being aligned.
    barrier: Option<CheckpointBarrier>,
    /// Channels that delivered it.
    seen: Vec<bool>,
    /// Channels held back until the alignment ends (aligned barriers only).
    blocked: Vec<bool>,
    /// Channels that delivered end of partition: they count as aligned.
    ended: Vec<bool>,
}

impl BarrierAligner {
    /// An aligner over `channels` channels, aligning nothing yet.
    pub fn new(channels: usize) -> Self {
        Self {
            barrier: None,
            seen: vec![false; channels],
            blocked: vec![false; channels],
            ended: vec![false; channels],
        }
    }

    /// Records `barrier` from channel `ch`. With `aligned` (as the checkpoint being aligned
    /// says), the channel is held back until the alignment ends; without, nothing is.
    pub fn on_barrier(&mut self, ch: usize, barrier: CheckpointBarrier) -> BarrierStep {
        let aborted = match &self.barrier {
            Some(a) if a.id > barrier.id => return BarrierStep::Stale,
            Some(a) if a.id == barrier.id => None,
            current => {
                let aborted = current.as_ref().map(|a| a.id);
                self.blocked.fill(false);
                self.seen.fill(false);
                self.barrier = Some(barrier);
                aborted
            }
        };
        self.seen[ch] = true;
        if self.barrier.as_ref().is_some_and(|a| a.aligned) {
            self.blocked[ch] = true;
        }
        BarrierStep::Seen { aborted }
    }

    /// Records end of partition on channel `ch`: it counts as aligned from now on.
    pub fn on_end(&mut self, ch: usize) {
        self.ended[ch] = true;
    }

    /// Whether every channel delivered the barrier being aligned or ended.
    #[inline]
    pub fn is_complete(&self) -> bool {
        self.barrier.is_some() && (0..self.seen.len()).all(|i| self.seen[i] || self.ended[i])
    }

    /// The barrier every live channel has delivered, if any: the subtask then snapshots and
    /// forwards it. Ends the alignment (releases the channels). Asked after every element,
    /// so the common case (nothing aligning) is one branch.
    #[inline]
    pub fn take_completed(&mut self) -> Option<CheckpointBarrier> {
        if !self.is_complete() {
            return None;
        }
        self.blocked.fill(false);
        self.barrier.take()
    }

    /// Whether channel `ch` is held back by the alignment (a channel it does not know is not).
    #[inline]
    pub fn is_blocked(&self, ch: usize) -> bool {
        self.blocked.get(ch).copied().unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// What a channel delivers to the aligner.
    #[derive(Debug, Clone, Copy)]
    enum In {
        /// An exactly-once barrier of checkpoint `.1` on channel `.0`.
        Aligned(usize, u64),
        /// An at-least-once barrier of checkpoint `.1` on channel `.0`.
        AtLeastOnce(usize, u64),
        End(usize),
    }
    use In::{Aligned, AtLeastOnce, End};

    /// What the aligner answers to the row's last input.
    #[derive(Debug, PartialEq, Eq)]
    struct Out {
        step: Option<BarrierStep>,
        blocked: Vec<usize>,
        completed: Option<(u64, bool)>,
    }

    const SEEN: Option<BarrierStep> = Some(BarrierStep::Seen { aborted: None });

    fn out(step: Option<BarrierStep>, blocked: &[usize], completed: Option<(u64, bool)>) -> Out {
        Out { step, blocked: blocked.to_vec(), completed }
    }

    /// Feeds `input`; completed alignments are taken as the gate does after every element.
    fn feed(a: &mut BarrierAligner, input: In, channels: usize) -> Out {
        let step = match input {
            Aligned(ch, id) => Some(a.on_barrier(ch, barrier(id, true))),
            AtLeastOnce(ch, id) => Some(a.on_barrier(ch, barrier(id, false))),
            End(ch) => {
                a.on_end(ch);
                None
            }
        };
        let blocked = (0..channels).filter(|&ch| a.is_blocked(ch)).collect();
        let completed = a.take_completed().map(|b| (b.id, b.aligned));
        Out { step, blocked, completed }
    }

    /// Each row: channels, the inputs that set the aligner up, one more input, and the
    /// answer to it (channels held back are read before a completed alignment is taken).
    #[test]
    fn the_aligner_follows_its_table() {
        #[rustfmt::skip]
        let table: Vec<(&str, usize, &[In], In, Out)> = vec![
            ("the first barrier blocks its channel",
                3, &[], Aligned(0, 7), out(SEEN, &[0], None)),
            ("each barrier blocks its channel until all delivered",
                3, &[Aligned(0, 7)], Aligned(2, 7), out(SEEN, &[0, 2], None)),
            ("complete when every channel delivered",
                3, &[Aligned(0, 7), Aligned(2, 7)], Aligned(1, 7), out(SEEN, &[0, 1, 2], Some((7, true)))),
            ("a single channel completes at once",
                1, &[], Aligned(0, 3), out(SEEN, &[0], Some((3, true)))),
            ("an ended channel counts as delivered",
                2, &[End(1)], Aligned(0, 7), out(SEEN, &[0], Some((7, true)))),
            ("a channel ending completes the alignment waiting for it",
                2, &[Aligned(0, 7)], End(1), out(None, &[0], Some((7, true)))),
            ("a channel ending does not complete an alignment waiting for others",
                3, &[Aligned(0, 7)], End(1), out(None, &[0], None)),
            ("an ending with nothing aligning completes nothing",
                2, &[], End(1), out(None, &[], None)),
            ("a completed alignment releases its channels",
                2, &[Aligned(0, 7), Aligned(1, 7)], End(1), out(None, &[], None)),
            ("the same channel twice still waits for the others",
                2, &[Aligned(0, 7)], Aligned(0, 7), out(SEEN, &[0], None)),
            ("a newer barrier aborts the older alignment and releases its channels",
                3, &[Aligned(0, 7), Aligned(1, 7)], Aligned(2, 8),
                out(Some(BarrierStep::Seen { aborted: Some(7) }), &[2], None)),
            ("after an abort, the newer checkpoint needs every channel again",
                2, &[Aligned(0, 7), Aligned(1, 8)], Aligned(1, 8), out(SEEN, &[1], None)),
            ("after an abort, the newer checkpoint completes",
                2, &[Aligned(0, 7), Aligned(1, 8)], Aligned(0, 8), out(SEEN, &[0, 1], Some((8, true)))),
            ("a stale barrier of the aborted checkpoint is ignored",
                2, &[Aligned(0, 7), Aligned(0, 8)], Aligned(1, 7), out(Some(BarrierStep::Stale), &[0], None)),
            ("after a completed alignment, the next checkpoint aborts nothing",
                2, &[Aligned(0, 7), Aligned(1, 7)], Aligned(0, 8), out(SEEN, &[0], None)),
            ("at-least-once barriers block nothing",
                2, &[], AtLeastOnce(0, 1), out(SEEN, &[], None)),
            ("at-least-once barriers still complete",
                2, &[AtLeastOnce(0, 1)], AtLeastOnce(1, 1), out(SEEN, &[], Some((1, false)))),
            ("an aligned checkpoint after an at-least-once one blocks",
                2, &[AtLeastOnce(0, 1)], Aligned(0, 2),
                out(Some(BarrierStep::Seen { aborted: Some(1) }), &[0], None)),
            ("the mode is the first barrier's: a later copy does not change it",
                2, &[AtLeastOnce(0, 1)], Aligned(1, 1), out(SEEN, &[], Some((1, false)))),
        ];
        for (why, channels, setup, input, expected) in table {
            let mut a = BarrierAligner::new(channels);
            for i in setup {
                feed(&mut a, *i, channels);
            }
            assert_eq!(feed(&mut a, input, channels), expected, "{why}: after {setup:?}, {input:?}");
        }
    }

    #[test]
    fn an_unknown_channel_is_not_blocked() {
        let mut a = BarrierAligner::new(1);
        a.on_barrier(0, barrier(1, true));
        assert!(a.is_blocked(0));
        assert!(!a.is_blocked(5));
    }
}
