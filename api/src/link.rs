//! The runtime face of an operator: a *link* in a chain that takes records and events by a
//! plain function call and passes results to the next link.
//!
//! Operator chaining is this trait: a chain is `op1 -> op2 -> ... -> writers`, each a
//! `Box<dyn Input<T>>` owning its downstream. No queue sits between chained operators.
//! Links live on one thread (their slot's) for their whole life, so they need not be `Send`.

use std::cell::Cell;
use std::rc::Rc;

use crate::error::TaskResult;
use crate::snapshot::{OperatorRestore, OperatorSnapshots};

/// Something that consumes a stream of `T`: an operator with its downstream, or a writer
/// into a data channel.
pub trait Input<T> {
    /// One record with its event timestamp.
    fn push(&mut self, value: T, timestamp: i64) -> TaskResult;

    /// The input's event time advanced. Operators fire due event-time timers, then forward.
    fn watermark(&mut self, watermark: i64) -> TaskResult;

    /// The input became idle or active again (FLIP-126 idleness); forwarded by default.
    fn idle(&mut self, idle: bool) -> TaskResult;

    /// No more input will come. Operators flush what they hold, then forward.
    fn end_input(&mut self) -> TaskResult;

    /// The wall clock reached `now` (epoch ms): fire due processing-time timers.
    fn processing_time(&mut self, now: i64) -> TaskResult;

    /// The earliest processing-time callback this link or any downstream link wants.
    fn next_processing_time(&self) -> Option<i64>;

    /// Adds this link's state (if any) to a checkpoint, then the downstream links'.
    fn snapshot(&mut self, out: &mut OperatorSnapshots) -> TaskResult;

    /// Restores this link's state (if any), then the downstream links'.
    fn restore(&mut self, from: &OperatorRestore) -> TaskResult;

    /// Checkpoint `id` completed (`true`) or was aborted: listeners (two-phase-commit sinks,
    /// user code) act on it; forwarded downstream.
    fn notify_checkpoint(&mut self, id: u64, completed: bool) -> TaskResult;
}

/// Tracks which operator of a chain runs user code right now, so that a panic caught at the
/// subtask boundary can name the operator that raised it. One `Cell` write per call.
#[derive(Clone, Default)]
pub struct OperatorMarker(Rc<Cell<usize>>);

impl OperatorMarker {
    /// Marks operator `index` (its position in the vertex's operator list) as running.
    #[inline]
    pub fn enter(&self, index: usize) {
        self.0.set(index);
    }

    /// The operator that ran last.
    pub fn current(&self) -> usize {
        self.0.get()
    }
}

/// Sends every element to several downstream links (a stream consumed more than once).
pub struct Fanout<T> {
    outputs: Vec<Box<dyn Input<T>>>,
}

impl<T: Clone> Fanout<T> {
    /// A fan-out over `outputs`; with one output, use that output directly instead.
    pub fn new(outputs: Vec<Box<dyn Input<T>>>) -> Self {
        Self { outputs }
    }
}

impl<T: Clone> Input<T> for Fanout<T> {
    fn push(&mut self, value: T, timestamp: i64) -> TaskResult {
        if let Some((last, rest)) = self.outputs.split_last_mut() {
            for o in rest {
                o.push(value.clone(), timestamp)?;
            }
            last.push(value, timestamp)?;
        }
        Ok(())
    }
    fn watermark(&mut self, watermark: i64) -> TaskResult {
        self.outputs.iter_mut().try_for_each(|o| o.watermark(watermark))
    }
    fn idle(&mut self, idle: bool) -> TaskResult {
        self.outputs.iter_mut().try_for_each(|o| o.idle(idle))
    }
    fn end_input(&mut self) -> TaskResult {
        self.outputs.iter_mut().try_for_each(|o| o.end_input())
    }
    fn processing_time(&mut self, now: i64) -> TaskResult {
        self.outputs.iter_mut().try_for_each(|o| o.processing_time(now))
    }
    fn next_processing_time(&self) -> Option<i64> {
        self.outputs.iter().filter_map(|o| o.next_processing_time()).min()
    }
    fn snapshot(&mut self, out: &mut OperatorSnapshots) -> TaskResult {
        self.outputs.iter_mut().try_for_each(|o| o.snapshot(out))
    }
    fn restore(&mut self, from: &OperatorRestore) -> TaskResult {
        self.outputs.iter_mut().try_for_each(|o| o.restore(from))
    }
    fn notify_checkpoint(&mut self, id: u64, completed: bool) -> TaskResult {
        self.outputs.iter_mut().try_for_each(|o| o.notify_checkpoint(id, completed))
    }
}

/// Implements the event methods of a link with nothing to do on them (sinks, [`Nowhere`]).
macro_rules! no_events {
    () => {
        fn watermark(&mut self, _: i64) -> $crate::error::TaskResult {
            Ok(())
        }
        fn idle(&mut self, _: bool) -> $crate::error::TaskResult {
            Ok(())
        }
        fn processing_time(&mut self, _: i64) -> $crate::error::TaskResult {
            Ok(())
        }
        fn next_processing_time(&self) -> Option<i64> {
            None
        }
        $crate::link::no_state!();
    };
}
pub(crate) use no_events;

/// Implements the checkpoint methods of a link that keeps no state and ends its chain.
macro_rules! no_state {
    () => {
        fn snapshot(&mut self, _: &mut $crate::snapshot::OperatorSnapshots) -> $crate::error::TaskResult {
            Ok(())
        }
        fn restore(&mut self, _: &$crate::snapshot::OperatorRestore) -> $crate::error::TaskResult {
            Ok(())
        }
        fn notify_checkpoint(&mut self, _: u64, _: bool) -> $crate::error::TaskResult {
            Ok(())
        }
    };
}
pub(crate) use no_state;

/// A link that drops everything (an operator whose output nobody consumes).
pub struct Nowhere;

impl<T> Input<T> for Nowhere {
    fn push(&mut self, _: T, _: i64) -> TaskResult {
        Ok(())
    }
    fn end_input(&mut self) -> TaskResult {
        Ok(())
    }
    no_events!();
}

/// Hands records to a downstream link from user code (`flat_map`, process functions):
/// a thin wrapper that remembers the timestamp records are emitted with.
pub struct Collector<'a, T> {
    out: &'a mut dyn Input<T>,
    timestamp: i64,
    result: TaskResult,
}

impl<'a, T> Collector<'a, T> {
    /// A collector emitting into `out` with `timestamp`.
    pub fn new(out: &'a mut dyn Input<T>, timestamp: i64) -> Self {
        Self { out, timestamp, result: Ok(()) }
    }

    /// Emits a record with the current timestamp.
    #[inline]
    pub fn collect(&mut self, value: T) {
        if self.result.is_ok() {
            self.result = self.out.push(value, self.timestamp);
        }
    }

    /// Emits a record with an explicit timestamp.
    pub fn collect_with_timestamp(&mut self, value: T, timestamp: i64) {
        if self.result.is_ok() {
            self.result = self.out.push(value, timestamp);
        }
    }

    /// The first downstream error, if emitting failed.
    pub fn finish(self) -> TaskResult {
        self.result
    }
}
