//! A panic in a decoder is a malformed file, not a crashed process. The format crates are
//! written for trusted files and some still panic on hostile ones (arrow-ipc's schema decoding
//! inside a Parquet footer does, as the fuzz test found); every format [`super::by_name`]
//! builds is wrapped here, so a panic below becomes [`ConnectorError::Malformed`] and the
//! reader that panicked ends.

use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use crate::error::{ConnectorError, Location, Result};
use crate::format::{BatchReader, BatchWriter, Format};
use crate::split::{FileSplit, Position};

/// Runs `f`; `Err(error)` if it panicked.
fn catch<T>(path: &Path, f: impl FnOnce() -> T) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into());
        ConnectorError::malformed(path, Location::File, format!("the decoder failed: {what}"))
    })
}

/// Runs `f`, turning a panic into a malformed-file error on `path`.
fn guard<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch(path, f)?
}

/// A format whose every call is guarded.
#[derive(Debug)]
pub(crate) struct Guarded<F>(pub(crate) F);

impl<F: Format> Format for Guarded<F> {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn infer_schema(&self, path: &Path) -> Result<SchemaRef> {
        guard(path, || self.0.infer_schema(path))
    }

    fn splits(&self, path: &Path, split_size: u64) -> Result<Vec<FileSplit>> {
        guard(path, || self.0.splits(path, split_size))
    }

    fn open(&self, split: &FileSplit, schema: SchemaRef) -> Result<Box<dyn BatchReader>> {
        let inner = guard(&split.path, || self.0.open(split, schema.clone()))?;
        let last = inner.position();
        Ok(Box::new(GuardedReader { split: split.clone(), schema, inner: Some(inner), last }))
    }

    fn writer(&self, path: &Path, out: Box<dyn Write + Send>, schema: SchemaRef) -> Result<Box<dyn BatchWriter>> {
        self.0.writer(path, out, schema)
    }
}

/// A reader whose calls are guarded; after a panic it has nothing more to read.
struct GuardedReader {
    split: FileSplit,
    schema: SchemaRef,
    inner: Option<Box<dyn BatchReader>>,
    /// The position before the panic, still reported.
    last: Position,
}

impl GuardedReader {
    fn call<T>(&mut self, f: impl FnOnce(&mut dyn BatchReader) -> Result<T>) -> Result<T> {
        let Some(inner) = self.inner.as_mut() else {
            return Err(ConnectorError::malformed(&self.split.path, Location::File, "the reader failed before"));
        };
        self.last = inner.position();
        match catch(&self.split.path, || f(inner.as_mut())) {
            Ok(out) => out,
            Err(panicked) => {
                self.inner = None;
                Err(panicked)
            }
        }
    }
}

impl BatchReader for GuardedReader {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        self.call(|r| r.next_batch())
    }

    fn position(&self) -> Position {
        self.inner.as_ref().map_or(self.last, |r| r.position())
    }

    fn seek(&mut self, position: Position) -> Result<()> {
        self.call(|r| r.seek(position))
    }

    fn skipped(&self) -> u64 {
        self.inner.as_ref().map_or(0, |r| r.skipped())
    }
}
