//! Process logging: `tracing` to stderr and, with `log.dir`, to daily rolling files there —
//! `jobmanager.<date>.log` with everything the process logs, and
//! `taskmanager-<id>.<date>.log` with what each TaskExecutor's slot threads log (the runtime's
//! lines and user code's alike). `RUST_LOG` sets the levels (stderr: warn, files: info).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use riffle_api::{ConfigOption, Configuration, Group, OptionInfo};
use riffle_web::config::LOG_DIR;
use tracing_appender::non_blocking::{NonBlocking, WorkerGuard};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use crate::error::ClusterError;

/// Keeps the file writers flushing; drop it last (at process exit).
pub struct LogGuard {
    _guards: Arc<Mutex<Vec<WorkerGuard>>>,
}

fn appender(dir: &Path, prefix: &str, max_files: usize) -> Result<(NonBlocking, WorkerGuard), ClusterError> {
    let a = tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix(prefix)
        .filename_suffix("log")
        .max_log_files(max_files.max(1))
        .build(dir)
        .map_err(|e| ClusterError::Unavailable(format!("cannot write logs to '{}': {e}", dir.display())))?;
    Ok(tracing_appender::non_blocking(a))
}

/// Sends each line to the log file of the TaskExecutor whose thread wrote it; lines from
/// other threads go nowhere (the JobManager file has them).
#[derive(Clone)]
struct TaskExecutorFiles {
    dir: PathBuf,
    max_files: usize,
    writers: Arc<Mutex<HashMap<Arc<str>, NonBlocking>>>,
    guards: Arc<Mutex<Vec<WorkerGuard>>>,
}

enum LineWriter {
    File(NonBlocking),
    Nowhere,
}

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            LineWriter::File(w) => w.write(buf),
            LineWriter::Nowhere => Ok(buf.len()),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            LineWriter::File(w) => w.flush(),
            LineWriter::Nowhere => Ok(()),
        }
    }
}

impl<'a> MakeWriter<'a> for TaskExecutorFiles {
    type Writer = LineWriter;
    fn make_writer(&'a self) -> LineWriter {
        let Some(id) = riffle_actors::log_context::task_executor() else { return LineWriter::Nowhere };
        let mut writers = self.writers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = writers.get(&id) {
            return LineWriter::File(w.clone());
        }
        match appender(&self.dir, &format!("taskmanager-{}", safe_name(&id)), self.max_files) {
            Ok((w, g)) => {
                self.guards.lock().unwrap_or_else(|e| e.into_inner()).push(g);
                writers.insert(id, w.clone());
                LineWriter::File(w)
            }
            Err(_) => LineWriter::Nowhere,
        }
    }
}

/// Installs the process's logging from `log.dir` and `log.file.max-files` (default 7 days):
/// a JobManager's (or an embedded cluster's) files.
pub fn init(conf: &Configuration) -> Result<Option<LogGuard>, ClusterError> {
    init_with(conf, "jobmanager", true)
}

/// A TaskManager process's logging: everything it logs goes to
/// `taskmanager-<resource id>.<date>.log` in `log.dir` (and to stderr).
pub fn init_task_manager(conf: &Configuration, resource_id: &str) -> Result<Option<LogGuard>, ClusterError> {
    init_with(conf, &format!("taskmanager-{}", safe_name(resource_id)), false)
}

fn safe_name(id: &str) -> String {
    id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}

/// `log.file.max-files` (`log.dir` is declared by riffle-web, which serves the files).
pub const MAX_FILES: ConfigOption<usize> =
    ConfigOption::new(Group::Logging, "log.file.max-files", 7, "daily log files kept per process");

/// The options of the log files.
pub(crate) const OPTIONS: &[&dyn OptionInfo] = &[&MAX_FILES];

fn init_with(conf: &Configuration, main_file: &str, per_executor: bool) -> Result<Option<LogGuard>, ClusterError> {
    let stderr_filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    let stderr = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(stderr_filter);
    let Some(dir) = conf.get(&LOG_DIR)? else {
        let _ = tracing_subscriber::registry().with(stderr).try_init();
        return Ok(None);
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| ClusterError::Unavailable(format!("cannot create log.dir '{}': {e}", dir.display())))?;
    let max_files = conf.get(&MAX_FILES)?;
    let (jm, jm_guard) = appender(&dir, main_file, max_files)?;
    let guards = Arc::new(Mutex::new(vec![jm_guard]));
    let file_filter = || tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let jm_layer = tracing_subscriber::fmt::layer().with_ansi(false).with_writer(jm).with_filter(file_filter());
    let tm_layer = per_executor.then(|| {
        let tm = TaskExecutorFiles { dir, max_files, writers: Arc::default(), guards: guards.clone() };
        tracing_subscriber::fmt::layer().with_ansi(false).with_writer(tm).with_filter(file_filter())
    });
    let _ = tracing_subscriber::registry().with(stderr).with(jm_layer).with(tm_layer).try_init();
    Ok(Some(LogGuard { _guards: guards }))
}
