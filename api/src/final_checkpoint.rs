//! Whether a subtask waits, after its input ended, for a checkpoint taken after that end
//! (FLIP-147's final checkpoint) before it finishes.
//!
//! An operator that commits through checkpoints (a two-phase-commit sink) *wants* one: then
//! the records after the last checkpoint are committed by a checkpoint too, instead of by the
//! subtask on its own. The runtime decides whether one *comes* (checkpointing is on and
//! `execution.checkpointing.checkpoints-after-tasks-finish` is true) before the input ends;
//! the operator reads that at its end of input. One per subtask, shared by its chain.

use std::cell::Cell;
use std::rc::Rc;

/// See the [module docs](self).
#[derive(Clone, Default, Debug)]
pub struct FinalCheckpoint(Rc<Flags>);

#[derive(Default, Debug)]
struct Flags {
    wanted: Cell<bool>,
    coming: Cell<bool>,
}

impl FinalCheckpoint {
    /// An operator of the chain commits through checkpoints: the subtask should wait for a
    /// checkpoint after its end of input.
    pub fn want(&self) {
        self.0.wanted.set(true);
    }

    /// Whether an operator of the chain asked for one.
    pub fn wanted(&self) -> bool {
        self.0.wanted.get()
    }

    /// The runtime: a final checkpoint will come (or not) after the end of input.
    pub fn set_coming(&self, coming: bool) {
        self.0.coming.set(coming);
    }

    /// Whether a checkpoint will follow the end of input: if so, what the operator holds at
    /// its end is committed when that checkpoint completes.
    pub fn coming(&self) -> bool {
        self.0.coming.get()
    }
}
