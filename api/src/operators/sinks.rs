//! The built-in sinks: print, discard, collect (back to the caller) and text files.

use std::fmt::Debug;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

use crate::error::{TaskError, TaskResult};
use crate::link::Input;
use crate::metrics::LocalCounter;

/// Prints records to stdout, prefixed by the subtask number when parallel (as Flink does),
/// with their `Debug` form or, for `print_text`, their `Display` form.
pub struct PrintSink<T> {
    pub(crate) prefix: String,
    pub(crate) counter: LocalCounter,
    pub(crate) format: fn(&T, &mut dyn std::io::Write) -> std::io::Result<()>,
}

/// Writes a record's `Debug` form.
pub(crate) fn write_debug<T: Debug>(v: &T, w: &mut dyn std::io::Write) -> std::io::Result<()> {
    write!(w, "{v:?}")
}

/// Writes a record's `Display` form.
pub(crate) fn write_display<T: std::fmt::Display>(v: &T, w: &mut dyn std::io::Write) -> std::io::Result<()> {
    write!(w, "{v}")
}

impl<T> Input<T> for PrintSink<T> {
    fn push(&mut self, value: T, _: i64) -> TaskResult {
        self.counter.add(1);
        let mut out = std::io::stdout().lock();
        // A closed stdout (a pipe to `head`) is not a job failure.
        let _ = out.write_all(self.prefix.as_bytes());
        let _ = (self.format)(&value, &mut out);
        let _ = out.write_all(b"\n");
        Ok(())
    }
    fn end_input(&mut self) -> TaskResult {
        self.counter.publish();
        Ok(())
    }
    crate::link::no_events!();
}

/// Drops every record (benchmarks).
pub struct DiscardSink {
    pub(crate) counter: LocalCounter,
}

impl<T> Input<T> for DiscardSink {
    #[inline]
    fn push(&mut self, value: T, _: i64) -> TaskResult {
        self.counter.add(1);
        drop(value);
        Ok(())
    }
    fn end_input(&mut self) -> TaskResult {
        self.counter.publish();
        Ok(())
    }
    crate::link::no_events!();
}

/// What a collect sink sends to the caller's iterator.
pub(crate) type CollectBatch<T> = Vec<T>;

/// Sends records back to the caller in batches over a bounded channel: a slow reader
/// backpressures the job.
pub struct CollectSink<T> {
    pub(crate) tx: Option<SyncSender<CollectBatch<T>>>,
    pub(crate) buf: Vec<T>,
    pub(crate) first_buffered_at: Option<i64>,
    pub(crate) counter: LocalCounter,
}

impl<T> CollectSink<T> {
    fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.buf);
        self.first_buffered_at = None;
        if let Some(tx) = &self.tx {
            // The caller dropped its iterator: nobody wants the rest.
            if tx.send(batch).is_err() {
                self.tx = None;
            }
        }
    }
}

impl<T> Input<T> for CollectSink<T> {
    fn push(&mut self, value: T, _: i64) -> TaskResult {
        self.counter.add(1);
        if self.buf.is_empty() {
            self.first_buffered_at = Some(crate::time::now_ms());
        }
        self.buf.push(value);
        if self.buf.len() >= 1024 {
            self.flush();
        }
        Ok(())
    }
    fn watermark(&mut self, _: i64) -> TaskResult {
        Ok(())
    }
    fn idle(&mut self, _: bool) -> TaskResult {
        Ok(())
    }
    fn end_input(&mut self) -> TaskResult {
        self.flush();
        self.counter.publish();
        Ok(())
    }
    fn processing_time(&mut self, now: i64) -> TaskResult {
        if self.first_buffered_at.is_some_and(|t| now >= t + 50) {
            self.flush();
        }
        Ok(())
    }
    fn next_processing_time(&self) -> Option<i64> {
        self.first_buffered_at.map(|t| t + 50)
    }
    crate::link::no_state!();
}

/// Writes one line per record to a file (`path` itself at parallelism 1, `path/part-<i>`
/// otherwise).
pub struct TextFileSink<T> {
    pub(crate) out: BufWriter<File>,
    pub(crate) path: PathBuf,
    pub(crate) format: Arc<dyn Fn(&T) -> String + Send + Sync>,
    pub(crate) name: String,
    pub(crate) counter: LocalCounter,
}

impl<T> TextFileSink<T> {
    pub(crate) fn open(
        base: &std::path::Path,
        subtask: u32,
        parallelism: u32,
        format: Arc<dyn Fn(&T) -> String + Send + Sync>,
        name: &str,
        counter: LocalCounter,
    ) -> Result<Self, TaskError> {
        let path = if parallelism <= 1 { base.to_path_buf() } else { base.join(format!("part-{subtask}")) };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| TaskError::msg(name, format!("cannot create directory '{}': {e}", dir.display())))?;
        }
        let f = File::create(&path)
            .map_err(|e| TaskError::msg(name, format!("cannot create output file '{}': {e}", path.display())))?;
        Ok(Self { out: BufWriter::with_capacity(1 << 16, f), path, format, name: name.to_string(), counter })
    }

    fn io_err(&self, e: std::io::Error) -> TaskError {
        TaskError::msg(&self.name, format!("cannot write '{}': {e}", self.path.display()))
    }
}

impl<T> Input<T> for TextFileSink<T> {
    fn push(&mut self, value: T, _: i64) -> TaskResult {
        self.counter.add(1);
        let line = (self.format)(&value);
        self.out.write_all(line.as_bytes()).map_err(|e| self.io_err(e))?;
        self.out.write_all(b"\n").map_err(|e| self.io_err(e))
    }
    fn end_input(&mut self) -> TaskResult {
        self.counter.publish();
        self.out.flush().map_err(|e| self.io_err(e))?;
        self.out.get_ref().sync_all().map_err(|e| self.io_err(e))
    }
    crate::link::no_events!();
}
