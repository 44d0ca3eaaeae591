//! A standalone `riffle serve` with `log.dir` captures its stdout and stderr into
//! `<log.dir>/jobmanager.out` (Flink's `.out` file) while still printing them: the process the
//! user started supervises a child running the cluster and copies the child's output to both
//! places. The child ends when the supervisor goes, however it goes (its stdin closes), so no
//! cluster outlives the process that was started.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};

/// Set in the child's environment.
pub const CHILD_ENV: &str = "RIFFLE_SUPERVISED_CHILD";

/// Whether this process is the supervised child.
pub fn is_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// In the child: ends the process when the supervisor is gone (stdin reaches its end).
pub fn exit_with_supervisor() {
    let _ = std::thread::Builder::new().name("riffle-supervisor-watch".into()).spawn(|| {
        let mut buf = [0u8; 64];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
        tracing::warn!("the supervising process is gone: stopping");
        std::process::exit(143);
    });
}

fn copy(mut from: impl Read, to: fn() -> Box<dyn Write>, file: Arc<Mutex<File>>) {
    let mut buf = vec![0u8; 16 << 10];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        let mut out = to();
        let _ = out.write_all(chunk);
        let _ = out.flush();
        if let Ok(mut f) = file.lock() {
            let _ = f.write_all(chunk);
        }
    }
}

/// Runs this same command line as a child, copying its output to the terminal and to
/// `<log_dir>/jobmanager.out`; returns the child's exit status.
pub fn run(log_dir: &Path) -> Result<ExitCode> {
    std::fs::create_dir_all(log_dir).with_context(|| format!("cannot create log.dir '{}'", log_dir.display()))?;
    let path = log_dir.join("jobmanager.out");
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot write '{}'", path.display()))?;
    let file = Arc::new(Mutex::new(file));
    let exe = std::env::current_exe().context("cannot find riffle's own executable")?;
    let mut child = Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(CHILD_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start the cluster process")?;
    // Held open for as long as this process lives: its end is the child's signal to stop.
    let _stdin = child.stdin.take();
    let mut copiers = Vec::new();
    if let Some(out) = child.stdout.take() {
        let f = file.clone();
        copiers.push(std::thread::spawn(move || copy(out, || Box::new(std::io::stdout()), f)));
    }
    if let Some(err) = child.stderr.take() {
        let f = file.clone();
        copiers.push(std::thread::spawn(move || copy(err, || Box::new(std::io::stderr()), f)));
    }
    let status = child.wait().context("lost the cluster process")?;
    for c in copiers {
        let _ = c.join();
    }
    Ok(ExitCode::from(status.code().unwrap_or(1).clamp(0, 255) as u8))
}
