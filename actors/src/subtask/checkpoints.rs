//! A subtask's checkpoint bookkeeping as plain decisions: which trigger to take, keep or
//! ignore, when stop-with-savepoint holds a source back or ends it, and when a subtask that
//! waits for a final checkpoint (FLIP-147) may finish. The loop (`super`) asks and acts; no
//! I/O, no channel, no clock here, so every path is a row in the tests below.

use riffle_api::CheckpointBarrier;

/// What to do with a checkpoint trigger sent to the subtask directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum OnTrigger {
    /// Take the snapshot now.
    Take(CheckpointBarrier),
    /// Nothing: the snapshot was taken already (through its barrier), or the trigger is kept
    /// until the subtask's input ended.
    Nothing,
}

/// See the [module docs](self).
#[derive(Debug, Default)]
pub(super) struct CheckpointBook {
    /// It reads input channels: a trigger sent to it directly (because every upstream subtask
    /// ended) waits until what they sent before their end is processed.
    has_inputs: bool,
    /// Its chain waits for a checkpoint after its end of input.
    waits_final: bool,
    /// Its input ended and its output went out: barriers go nowhere any more.
    ended: bool,
    /// The newest checkpoint it took its snapshot for.
    last_id: u64,
    /// A trigger kept until the end of input.
    deferred: Option<CheckpointBarrier>,
    /// The first checkpoint taken after the end of input.
    final_id: Option<u64>,
    /// A checkpoint at or after `final_id` completed.
    final_done: bool,
    /// Stop-with-savepoint: the source emits nothing until this checkpoint is done.
    stop_after: Option<u64>,
    /// Stop-with-savepoint completed: the source ends its input.
    stop_now: bool,
}

impl CheckpointBook {
    /// The book of a subtask with input channels or not, whose chain waits for a final
    /// checkpoint or not.
    pub(super) fn new(has_inputs: bool, waits_final: bool) -> Self {
        Self { has_inputs, waits_final, ..Self::default() }
    }

    /// A trigger sent directly (to a source, or to a subtask whose upstream all ended).
    pub(super) fn on_trigger(&mut self, barrier: CheckpointBarrier, stop_source: bool) -> OnTrigger {
        if barrier.id <= self.last_id {
            return OnTrigger::Nothing;
        }
        if self.has_inputs && !self.ended {
            self.deferred = Some(barrier);
            return OnTrigger::Nothing;
        }
        if stop_source && !self.ended {
            self.stop_after = Some(barrier.id);
        }
        OnTrigger::Take(barrier)
    }

    /// The snapshot of checkpoint `id` was taken; whether its barrier goes downstream (not
    /// after the end of input: the output channels ended).
    pub(super) fn taken(&mut self, id: u64) -> bool {
        self.last_id = self.last_id.max(id);
        if self.ended {
            self.final_id.get_or_insert(id);
        }
        !self.ended
    }

    /// Checkpoint `id` completed or was aborted.
    pub(super) fn done(&mut self, id: u64, completed: bool) {
        if self.stop_after == Some(id) {
            self.stop_after = None;
            self.stop_now = completed;
        }
        if completed && self.final_id.is_some_and(|f| id >= f) {
            self.final_done = true;
        }
    }

    /// The input ended and everything went out. Returns the kept trigger, if the subtask
    /// waits for a final checkpoint (otherwise it finishes and the trigger goes with it).
    pub(super) fn input_ended(&mut self) -> Option<CheckpointBarrier> {
        self.ended = true;
        let kept = self.deferred.take();
        kept.filter(|_| self.waits_final)
    }

    /// Whether the subtask waits for a final checkpoint after its end of input.
    pub(super) fn waits_final(&self) -> bool {
        self.waits_final
    }

    /// Whether it may finish now: it does not wait, or its final checkpoint completed.
    pub(super) fn may_finish(&self) -> bool {
        !self.waits_final || self.final_done
    }

    /// Stop-with-savepoint holds the source back until its savepoint is done.
    pub(super) fn holding(&self) -> bool {
        self.stop_after.is_some()
    }

    /// Stop-with-savepoint completed: the source ends its input.
    pub(super) fn stop_now(&self) -> bool {
        self.stop_now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn barrier(id: u64) -> CheckpointBarrier {
        CheckpointBarrier { id, ..CheckpointBarrier::default() }
    }

    #[test]
    fn a_source_takes_each_trigger_once() {
        let mut b = CheckpointBook::new(false, false);
        assert_eq!(b.on_trigger(barrier(1), false), OnTrigger::Take(barrier(1)));
        assert!(b.taken(1), "the barrier goes downstream");
        assert_eq!(b.on_trigger(barrier(1), false), OnTrigger::Nothing, "a repeated trigger");
        assert_eq!(b.on_trigger(barrier(2), false), OnTrigger::Take(barrier(2)));
        assert!(b.may_finish());
    }

    #[test]
    fn stop_with_savepoint_holds_the_source_until_it_completes_or_resumes_it_if_aborted() {
        let mut b = CheckpointBook::new(false, false);
        assert_eq!(b.on_trigger(barrier(3), true), OnTrigger::Take(barrier(3)));
        assert!(b.holding() && !b.stop_now());
        b.done(2, true);
        assert!(b.holding(), "another checkpoint's completion does not release it");
        b.done(3, false);
        assert!(!b.holding() && !b.stop_now(), "aborted: the source goes on");
        b.on_trigger(barrier(4), true);
        b.done(4, true);
        assert!(!b.holding() && b.stop_now(), "completed: the source ends");
    }

    #[test]
    fn a_subtask_with_input_keeps_a_direct_trigger_until_its_input_ended() {
        let mut b = CheckpointBook::new(true, true);
        assert_eq!(b.on_trigger(barrier(5), false), OnTrigger::Nothing, "kept");
        assert_eq!(b.on_trigger(barrier(6), false), OnTrigger::Nothing, "the newer one is kept");
        assert_eq!(b.input_ended(), Some(barrier(6)));
        assert_eq!(b.on_trigger(barrier(6), false), OnTrigger::Take(barrier(6)));
        assert!(!b.taken(6), "after the end no barrier goes downstream");
        assert!(!b.may_finish());
        b.done(6, true);
        assert!(b.may_finish());
    }

    #[test]
    fn a_trigger_for_a_checkpoint_taken_through_its_barrier_is_ignored() {
        let mut b = CheckpointBook::new(true, true);
        assert!(b.taken(7), "through the barrier, before the end");
        assert_eq!(b.on_trigger(barrier(7), false), OnTrigger::Nothing);
        assert_eq!(b.input_ended(), None, "nothing was kept");
        // Completed, but taken before the end: not the final checkpoint.
        b.done(7, true);
        assert!(!b.may_finish());
        assert_eq!(b.on_trigger(barrier(8), false), OnTrigger::Take(barrier(8)));
        b.taken(8);
        b.done(8, false);
        assert!(!b.may_finish(), "an aborted final checkpoint: wait for the next");
        b.on_trigger(barrier(9), false);
        b.taken(9);
        b.done(10, true);
        assert!(b.may_finish(), "a later completed checkpoint subsumes it");
    }

    #[test]
    fn a_subtask_that_does_not_wait_drops_a_kept_trigger_and_finishes() {
        let mut b = CheckpointBook::new(true, false);
        assert_eq!(b.on_trigger(barrier(2), false), OnTrigger::Nothing);
        assert_eq!(b.input_ended(), None);
        assert!(b.may_finish() && !b.waits_final());
    }

    #[test]
    fn stop_with_savepoint_after_the_end_of_input_does_not_hold_anything() {
        let mut b = CheckpointBook::new(false, true);
        b.input_ended();
        assert_eq!(b.on_trigger(barrier(3), true), OnTrigger::Take(barrier(3)));
        assert!(!b.holding());
    }
}
