//! Panics of user code become task errors where the code was compiled.
//!
//! A plugin is a separate shared library with its own copy of the standard library: a panic
//! in its code cannot unwind into riffle's frames (Rust aborts the whole process on such a
//! "foreign exception"). So the entry points of a vertex — its head and its source — are
//! wrapped in a guard that catches panics *inside the same library that built the job*: the
//! guard is created by the graph's own nodes (monomorphised in the plugin), and its
//! `catch_unwind` is the plugin's. For jobs built in riffle's own process it is simply one
//! more catch, per batch, not per record.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::{TaskError, TaskResult};
use crate::head::{BatchRest, VertexHead};
use crate::snapshot::{OperatorRestore, OperatorSnapshots, SourceSnapshot};
use crate::source::{ReadStatus, SourceHead, SplitBytes};

fn message(p: Box<dyn Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

/// The operator name of a caught panic: left empty for the runtime to fill in with the
/// operator that was running (its `OperatorMarker`), which the guard cannot know.
pub const PANICKED_IN_CHAIN: &str = "";

fn guard<R>(f: impl FnOnce() -> Result<R, TaskError>) -> Result<R, TaskError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => Err(TaskError::msg(PANICKED_IN_CHAIN, format!("panicked: {}", message(p)))),
    }
}

/// A vertex head whose calls cannot unwind.
pub(crate) struct GuardedHead {
    pub(crate) inner: Box<dyn VertexHead>,
}

impl VertexHead for GuardedHead {
    fn push_batch(&mut self, input: usize, batch: Box<dyn Any + Send>) -> TaskResult {
        guard(|| self.inner.push_batch(input, batch))
    }
    fn watermark(&mut self, watermark: i64) -> TaskResult {
        guard(|| self.inner.watermark(watermark))
    }
    fn idle(&mut self, idle: bool) -> TaskResult {
        guard(|| self.inner.idle(idle))
    }
    fn end_of_input(&mut self, input: usize) -> TaskResult {
        guard(|| self.inner.end_of_input(input))
    }
    fn end_input(&mut self) -> TaskResult {
        guard(|| self.inner.end_input())
    }
    fn processing_time(&mut self, now: i64) -> TaskResult {
        guard(|| self.inner.processing_time(now))
    }
    fn next_processing_time(&self) -> Option<i64> {
        self.inner.next_processing_time()
    }
    fn snapshot(&mut self, out: &mut OperatorSnapshots) -> TaskResult {
        guard(|| self.inner.snapshot(out))
    }
    fn restore(&mut self, from: &OperatorRestore) -> TaskResult {
        guard(|| self.inner.restore(from))
    }
    fn notify_checkpoint(&mut self, id: u64, completed: bool) -> TaskResult {
        guard(|| self.inner.notify_checkpoint(id, completed))
    }
    fn encode_batch(&self, input: usize, batch: &(dyn Any + Send)) -> Result<Vec<u8>, TaskError> {
        guard(|| self.inner.encode_batch(input, batch))
    }
    fn push_encoded(&mut self, input: usize, bytes: &[u8]) -> TaskResult {
        guard(|| self.inner.push_encoded(input, bytes))
    }
    fn push_batch_until(
        &mut self,
        input: usize,
        batch: Box<dyn Any + Send>,
        pause: &mut dyn FnMut() -> bool,
    ) -> Result<Option<BatchRest>, TaskError> {
        guard(|| self.inner.push_batch_until(input, batch, pause))
    }
}

/// A source head whose calls cannot unwind.
pub(crate) struct GuardedSource {
    pub(crate) inner: Box<dyn SourceHead>,
}

impl SourceHead for GuardedSource {
    fn add_splits(&mut self, splits: Vec<SplitBytes>) -> Result<(), TaskError> {
        guard(|| self.inner.add_splits(splits))
    }
    fn no_more_splits(&mut self) {
        let _ = guard(|| {
            self.inner.no_more_splits();
            Ok(())
        });
    }
    fn poll(&mut self) -> Result<ReadStatus, TaskError> {
        guard(|| self.inner.poll())
    }
    fn finish(&mut self) -> Result<(), TaskError> {
        guard(|| self.inner.finish())
    }
    fn processing_time(&mut self, now: i64) -> Result<(), TaskError> {
        guard(|| self.inner.processing_time(now))
    }
    fn next_processing_time(&self) -> Option<i64> {
        self.inner.next_processing_time()
    }
    fn records_emitted(&self) -> u64 {
        self.inner.records_emitted()
    }
    fn records_skipped(&self) -> u64 {
        self.inner.records_skipped()
    }
    fn snapshot(&mut self, out: &mut OperatorSnapshots) -> Result<SourceSnapshot, TaskError> {
        guard(|| self.inner.snapshot(out))
    }
    fn reader_state(&mut self) -> Result<SourceSnapshot, TaskError> {
        guard(|| self.inner.reader_state())
    }
    fn restore(&mut self, sources: &[SourceSnapshot], from: &OperatorRestore) -> Result<(), TaskError> {
        guard(|| self.inner.restore(sources, from))
    }
    fn notify_checkpoint(&mut self, id: u64, completed: bool) -> Result<(), TaskError> {
        guard(|| self.inner.notify_checkpoint(id, completed))
    }
}
