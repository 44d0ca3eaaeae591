//! A text file sink with exactly-once output: one line per record, in part files that
//! become visible by an atomic rename once the checkpoint covering them has completed.

use std::fs::File;
use std::io::{BufWriter, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Recovery, SinkContext, TwoPhaseCommitSink};
use crate::error::UserError;

/// One part file of an [`ExactlyOnceTextFileSink`]: subtask `subtask`'s part number `part`,
/// written as `.part-<subtask>-<part>.inprogress` and committed as `part-<subtask>-<part>`.
/// Its name is all a checkpoint needs to commit or abort it in another process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileTxn {
    /// The subtask that writes it (the name's namespace).
    pub subtask: u32,
    /// The part number, increasing per subtask.
    pub part: u64,
    /// Whether a record was written, i.e. the in-progress file exists. Empty transactions
    /// have no file and commit to nothing; the next transaction reuses their part number.
    pub opened: bool,
}

/// Writes one line per record (`format(record)`) into part files under a base directory,
/// exactly once: after a failover, the output is that of a run without failure.
///
/// Layout: each subtask writes its records into a hidden `.part-<subtask>-<n>.inprogress`
/// file; at a checkpoint the file is flushed and fsynced (pre-commit); when the checkpoint
/// completes it is renamed atomically to `part-<subtask>-<n>` and the directory is fsynced.
/// Readers that skip hidden files thus see only records of completed checkpoints, each once.
///
/// Part numbers are part of the checkpointed state, so after a restore the replayed records
/// are written under the names the failed attempt used; committing renames over a file
/// with the same content, which is why a commit may safely be repeated. Parts a subtask
/// committed at the end of its input after the restored checkpoint are deleted by the
/// restore (their records are replayed), so a reader may see them disappear and come back,
/// possibly cut differently, but never twice.
///
/// A fresh start (no restored checkpoint) numbers from 0, overwrites committed parts of the
/// same names and deletes in-progress files of its subtask: give each job its own directory.
pub struct ExactlyOnceTextFileSink<T> {
    dir: PathBuf,
    format: Arc<dyn Fn(&T) -> String + Send + Sync>,
    next_part: u64,
    /// The open in-progress file, with its part number.
    out: Option<(u64, BufWriter<File>)>,
}

/// A part file name parsed back: `(subtask, part, in_progress)`.
pub(super) fn parse_name(name: &str) -> Option<(u32, u64, bool)> {
    let (rest, in_progress) = match name.strip_prefix(".part-").and_then(|r| r.strip_suffix(".inprogress")) {
        Some(r) => (r, true),
        None => (name.strip_prefix("part-")?, false),
    };
    let (s, n) = rest.split_once('-')?;
    let (s, n): (u32, u64) = (s.parse().ok()?, n.parse().ok()?);
    // Only canonical names ("part-01-2" is someone else's file).
    let canonical = if in_progress { format!(".part-{s}-{n}.inprogress") } else { format!("part-{s}-{n}") };
    (canonical == name).then_some((s, n, in_progress))
}

/// Deletes a file; one already gone is fine.
fn remove_if_exists(path: &Path) -> Result<(), UserError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(format!("cannot delete '{}'", path.display()), e)),
    }
}

fn io_err(what: String, e: std::io::Error) -> UserError {
    format!("{what}: {e}").into()
}

/// Checks a base directory path: not empty, no NUL byte, not an existing non-directory.
fn check_dir(dir: &Path) -> Result<(), UserError> {
    if dir.as_os_str().is_empty() {
        return Err("the output directory path is empty".into());
    }
    if dir.as_os_str().as_encoded_bytes().contains(&0) {
        return Err(format!("the output directory path {dir:?} contains a NUL byte").into());
    }
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => {
            Err(format!("the output path '{}' exists and is not a directory", dir.display()).into())
        }
        _ => Ok(()),
    }
}

impl<T> ExactlyOnceTextFileSink<T> {
    /// A sink writing into directory `dir` (created if missing). Fails for an empty path, a
    /// path with a NUL byte, or one naming an existing file that is not a directory.
    pub fn new(dir: impl Into<PathBuf>, format: Arc<dyn Fn(&T) -> String + Send + Sync>) -> Result<Self, UserError> {
        let dir = dir.into();
        check_dir(&dir)?;
        Ok(Self { dir, format, next_part: 0, out: None })
    }

    /// The base directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where a transaction's records are written until it commits.
    pub fn in_progress_path(&self, subtask: u32, part: u64) -> PathBuf {
        self.dir.join(format!(".part-{subtask}-{part}.inprogress"))
    }

    /// Where a transaction's records are visible once committed.
    pub fn committed_path(&self, subtask: u32, part: u64) -> PathBuf {
        self.dir.join(format!("part-{subtask}-{part}"))
    }

    /// The part files in the directory, `(subtask, part, in_progress)`.
    fn scan(&self) -> Result<Vec<(u32, u64, bool)>, UserError> {
        let what = || format!("cannot list the output directory '{}'", self.dir.display());
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(|e| io_err(what(), e))? {
            let entry = entry.map_err(|e| io_err(what(), e))?;
            if let Some(p) = entry.file_name().to_str().and_then(parse_name) {
                out.push(p);
            }
        }
        Ok(out)
    }

    /// Removes an in-progress file; one already gone is fine.
    fn remove_in_progress(&self, subtask: u32, part: u64) -> Result<(), UserError> {
        remove_if_exists(&self.in_progress_path(subtask, part))
    }

    /// Makes creations, renames and deletions in the directory durable.
    fn sync_dir(&self) -> Result<(), UserError> {
        #[cfg(unix)]
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err(format!("cannot sync the output directory '{}'", self.dir.display()), e))?;
        Ok(())
    }
}

impl<T: 'static> TwoPhaseCommitSink<T> for ExactlyOnceTextFileSink<T> {
    type Txn = FileTxn;

    /// Creates the directory, continues the part numbering of the restored state, and
    /// deletes in-progress files nobody will commit: those of this subtask's own namespace
    /// (on a fresh start, or when this subtask's former state was restored here: anything of
    /// it that was pending is committed by now), and those of restored former subtasks that
    /// no longer exist after a rescale. In those namespaces, committed parts numbered from
    /// the restored open transaction on are deleted too: only the end of input commits
    /// without a checkpoint, so they hold records written after the restored checkpoint,
    /// which are replayed (without this, a replay cut into parts differently would leave
    /// them as duplicates). Other committed files are never deleted.
    fn initialize(&mut self, ctx: &SinkContext, recovery: &Recovery<FileTxn>) -> Result<(), UserError> {
        check_dir(&self.dir)?;
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| io_err(format!("cannot create the output directory '{}'", self.dir.display()), e))?;
        check_dir(&self.dir)?;
        let me = ctx.subtask;
        let files = self.scan()?;
        self.next_part = if let Some(t) = recovery.aborted.iter().find(|t| t.subtask == me) {
            // The replay writes under the name the failed attempt used after the checkpoint.
            t.part
        } else if !recovery.restored {
            0
        } else {
            // Restored without this subtask's open transaction (rescaled, or after the end of
            // input): never reuse a name that exists.
            let known = recovery.committed.iter().chain(&recovery.aborted).filter(|t| t.subtask == me).map(|t| t.part);
            let on_disk = files.iter().filter(|f| f.0 == me).map(|f| f.1);
            known.chain(on_disk).map(|n| n + 1).max().unwrap_or(0)
        };
        let owns = |s: u32| {
            (s == me && (!recovery.restored || recovery.restored_from.contains(&me)))
                || (s >= ctx.parallelism && recovery.restored_from.contains(&s))
        };
        // Where the replay of a restored subtask's records starts: parts from there on were
        // written after the restored checkpoint, so the replay writes them again.
        let replayed_from = |s: u32| recovery.aborted.iter().find(|t| t.subtask == s).map(|t| t.part);
        for &(s, n, in_progress) in &files {
            if !owns(s) {
                continue;
            }
            if in_progress {
                self.remove_in_progress(s, n)?;
            } else if replayed_from(s).is_some_and(|from| n >= from) {
                // Committed at the end of input after the restored checkpoint: its records
                // are replayed and may be cut into parts differently this time.
                remove_if_exists(&self.committed_path(s, n))?;
            }
        }
        self.sync_dir()
    }

    fn begin(&mut self, ctx: &SinkContext) -> Result<FileTxn, UserError> {
        Ok(FileTxn { subtask: ctx.subtask, part: self.next_part, opened: false })
    }

    fn write(&mut self, txn: &mut FileTxn, value: T, _: i64) -> Result<(), UserError> {
        if !txn.opened {
            let path = self.in_progress_path(txn.subtask, txn.part);
            let f = File::create(&path).map_err(|e| io_err(format!("cannot create '{}'", path.display()), e))?;
            self.out = Some((txn.part, BufWriter::with_capacity(1 << 16, f)));
            txn.opened = true;
            self.next_part = self.next_part.max(txn.part + 1);
        }
        let dir = &self.dir;
        let what = || {
            format!("cannot write '{}'", dir.join(format!(".part-{}-{}.inprogress", txn.subtask, txn.part)).display())
        };
        let Some((_, out)) = self.out.as_mut().filter(|(p, _)| *p == txn.part) else {
            return Err(format!("{}: the transaction is not open", what()).into());
        };
        let line = (self.format)(&value);
        let r = out.write_all(line.as_bytes()).and_then(|()| out.write_all(b"\n"));
        r.map_err(|e| io_err(what(), e))
    }

    /// Flushes and fsyncs the in-progress file, so a commit after a crash finds its data.
    fn pre_commit(&mut self, txn: &mut FileTxn) -> Result<(), UserError> {
        if !txn.opened {
            return Ok(());
        }
        if let Some((part, mut out)) = self.out.take() {
            if part != txn.part {
                self.out = Some((part, out));
                return Ok(());
            }
            let what = || format!("cannot sync '{}'", self.in_progress_path(txn.subtask, txn.part).display());
            out.flush().map_err(|e| io_err(what(), e))?;
            out.get_ref().sync_all().map_err(|e| io_err(what(), e))?;
            // The file's directory entry must survive a crash as well as its data.
            self.sync_dir()?;
        }
        Ok(())
    }

    /// Renames the in-progress file to its visible name. Already renamed (the in-progress
    /// file is gone and the visible one exists) counts as committed.
    fn commit(&mut self, txn: FileTxn) -> Result<(), UserError> {
        if !txn.opened {
            return Ok(());
        }
        let (from, to) = (self.in_progress_path(txn.subtask, txn.part), self.committed_path(txn.subtask, txn.part));
        match std::fs::rename(&from, &to) {
            Ok(()) => self.sync_dir(),
            Err(e) if e.kind() == ErrorKind::NotFound && to.is_file() => Ok(()),
            Err(e) => Err(io_err(format!("cannot commit '{}' to '{}'", from.display(), to.display()), e)),
        }
    }

    fn abort(&mut self, txn: FileTxn) -> Result<(), UserError> {
        if txn.opened && self.out.as_ref().is_some_and(|(p, _)| *p == txn.part) {
            self.out = None;
        }
        if txn.opened {
            self.remove_in_progress(txn.subtask, txn.part)?;
        }
        Ok(())
    }

    /// Deletes the restored open transaction's file (it may have records written after the
    /// checkpoint even though the state says it was empty), unless another subtask owns that
    /// namespace now and may already be writing the same name for the replay.
    fn recover_and_abort(&mut self, ctx: &SinkContext, txn: FileTxn) -> Result<(), UserError> {
        if txn.subtask == ctx.subtask || txn.subtask >= ctx.parallelism {
            self.remove_in_progress(txn.subtask, txn.part)?;
        }
        Ok(())
    }
}
