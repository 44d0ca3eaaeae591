//! The open part files of one sink subtask, encoded on a thread of their own.
//!
//! A two-phase-commit sink must be `Send` (the engine moves it onto its subtask's thread),
//! and a format's [`crate::BatchWriter`] is not (orc-rust's encoder is not), so
//! the writers live on one thread per sink instance and the sink talks to it by messages,
//! waiting for each answer: errors come back to the call that caused them, in order.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, sync_channel, Sender, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use crate::error::{ConnectorError, Result};
use crate::format::{BatchWriter, Format};

/// Counts the bytes handed to the file (what the rolling policy's file size measures).
struct Counting<W> {
    inner: W,
    written: Arc<AtomicU64>,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Work run on the writer thread with its (lazily built) async runtime: object store calls,
/// which must not block a thread that already runs an async runtime (the engine's).
type Job = Box<dyn FnOnce(&mut Option<tokio::runtime::Runtime>) + Send>;

enum Command {
    Run(Job),
    Open { id: u64, path: PathBuf, schema: SchemaRef, written: Arc<AtomicU64>, reply: SyncSender<Result<()>> },
    Write { id: u64, batch: RecordBatch, reply: SyncSender<Result<()>> },
    Finish { id: u64, reply: SyncSender<Result<()>> },
    Discard { id: u64 },
}

/// The writer thread of one sink subtask: part files by id.
pub struct PartWriters {
    tx: Option<Sender<Command>>,
    thread: Option<JoinHandle<()>>,
}

fn gone() -> ConnectorError {
    ConnectorError::io("sink", std::io::Error::other("the file sink's writer thread stopped"))
}

/// Runs on the writer thread until the sink drops its sender.
fn serve(format: Arc<dyn Format>, rx: std::sync::mpsc::Receiver<Command>) {
    let mut open: HashMap<u64, (PathBuf, Box<dyn BatchWriter>)> = HashMap::new();
    let mut runtime = None;
    for cmd in rx {
        match cmd {
            Command::Run(job) => job(&mut runtime),
            Command::Open { id, path, schema, written, reply } => {
                let r = std::fs::File::create(&path).map_err(|e| ConnectorError::io(&path, e)).and_then(|f| {
                    let out = Counting { inner: std::io::BufWriter::with_capacity(256 * 1024, f), written };
                    format.writer(&path, Box::new(out), schema)
                });
                let _ = reply.send(r.map(|w| {
                    open.insert(id, (path, w));
                }));
            }
            Command::Write { id, batch, reply } => {
                let r = match open.get_mut(&id) {
                    Some((_, w)) => w.write(&batch),
                    None => Err(ConnectorError::io("sink", std::io::Error::other(format!("part {id} is not open")))),
                };
                let _ = reply.send(r);
            }
            Command::Finish { id, reply } => {
                let r = match open.remove(&id) {
                    Some((path, w)) => w.finish().and_then(|()| sync_file(&path)),
                    None => Err(ConnectorError::io("sink", std::io::Error::other(format!("part {id} is not open")))),
                };
                let _ = reply.send(r);
            }
            Command::Discard { id } => {
                open.remove(&id);
            }
        }
    }
}

/// Makes a finished file's data durable.
fn sync_file(path: &Path) -> Result<()> {
    std::fs::File::open(path).and_then(|f| f.sync_all()).map_err(|e| ConnectorError::io(path, e))
}

impl PartWriters {
    /// A writer thread encoding with `format`; `name` names the thread.
    pub fn start(format: Arc<dyn Format>, name: &str) -> Result<Self> {
        let (tx, rx) = channel();
        let thread = std::thread::Builder::new()
            .name(format!("file-sink {name}"))
            .spawn(move || serve(format, rx))
            .map_err(|e| ConnectorError::io("sink", e))?;
        Ok(Self { tx: Some(tx), thread: Some(thread) })
    }

    fn call(&self, make: impl FnOnce(SyncSender<Result<()>>) -> Command) -> Result<()> {
        let (reply, answer) = sync_channel(1);
        self.tx.as_ref().ok_or_else(gone)?.send(make(reply)).map_err(|_| gone())?;
        answer.recv().map_err(|_| gone())?
    }

    /// Creates `path` (replacing a file there) as part `id` of rows of `schema`; the returned
    /// counter follows the bytes written to it.
    pub fn open(&self, id: u64, path: &Path, schema: SchemaRef) -> Result<Arc<AtomicU64>> {
        let written = Arc::new(AtomicU64::new(0));
        let w = written.clone();
        self.call(|reply| Command::Open { id, path: path.to_path_buf(), schema, written: w, reply })?;
        Ok(written)
    }

    /// Appends `batch` to part `id`.
    pub fn write(&self, id: u64, batch: RecordBatch) -> Result<()> {
        self.call(|reply| Command::Write { id, batch, reply })
    }

    /// Completes part `id` (footer, flush) and fsyncs it.
    pub fn finish(&self, id: u64) -> Result<()> {
        self.call(|reply| Command::Finish { id, reply })
    }

    /// Runs `make()`'s future to its end on the writer thread (object store calls).
    pub fn block_on<T, F>(&self, make: impl FnOnce() -> F + Send + 'static) -> Result<T>
    where
        T: Send + 'static,
        F: std::future::Future<Output = Result<T>>,
    {
        let (reply, answer) = sync_channel(1);
        let job: Job = Box::new(move |runtime: &mut Option<tokio::runtime::Runtime>| {
            if runtime.is_none() {
                match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => *runtime = Some(rt),
                    Err(e) => {
                        let _ = reply.send(Err(ConnectorError::io("sink", e)));
                        return;
                    }
                }
            }
            if let Some(rt) = runtime.as_ref() {
                let _ = reply.send(rt.block_on(make()));
            }
        });
        self.tx.as_ref().ok_or_else(gone)?.send(Command::Run(job)).map_err(|_| gone())?;
        answer.recv().map_err(|_| gone())?
    }

    /// Drops part `id` without completing it (its file is deleted by the caller).
    pub fn discard(&self, id: u64) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Command::Discard { id });
        }
    }
}

impl Drop for PartWriters {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
