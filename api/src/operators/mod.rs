//! The operators: each is a chain link ([`crate::link::Input`]) that owns its downstream.
//! They are built per subtask from the job graph and never cross threads.

pub mod basic;
mod key_group_pieces;
pub mod keyed;
pub mod multi;
pub mod rich;
pub mod sinks;
pub mod watermarks;
pub mod window;

/// Implements the event methods of `Input` for an operator that has nothing to do on them
/// but forward to `self.next`.
macro_rules! forward_events {
    () => {
        fn watermark(&mut self, watermark: i64) -> $crate::error::TaskResult {
            self.next.watermark(watermark)
        }
        fn idle(&mut self, idle: bool) -> $crate::error::TaskResult {
            self.next.idle(idle)
        }
        fn end_input(&mut self) -> $crate::error::TaskResult {
            self.next.end_input()
        }
        fn processing_time(&mut self, now: i64) -> $crate::error::TaskResult {
            self.next.processing_time(now)
        }
        fn next_processing_time(&self) -> Option<i64> {
            self.next.next_processing_time()
        }
        fn snapshot(&mut self, out: &mut $crate::snapshot::OperatorSnapshots) -> $crate::error::TaskResult {
            self.next.snapshot(out)
        }
        fn restore(&mut self, from: &$crate::snapshot::OperatorRestore) -> $crate::error::TaskResult {
            self.next.restore(from)
        }
        fn notify_checkpoint(&mut self, id: u64, completed: bool) -> $crate::error::TaskResult {
            self.next.notify_checkpoint(id, completed)
        }
    };
}
pub(crate) use forward_events;

/// Identity for operator identification in errors: the name and the position in the vertex.
#[derive(Clone)]
pub struct OpId {
    /// The operator's name as the user gave it (or the default).
    pub name: String,
    /// Its index in the job's operator list (for the panic marker).
    pub index: usize,
    /// Marks this operator as running before user code is called.
    pub marker: crate::link::OperatorMarker,
}

impl OpId {
    #[inline]
    pub(crate) fn enter(&self) {
        self.marker.enter(self.index)
    }

    pub(crate) fn err(&self, e: crate::error::UserError) -> crate::error::TaskError {
        crate::error::TaskError::new(&self.name, e.as_ref())
    }
}
