//! The progress line the CLI prints while a job runs: records in and out and the rate.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use riffle_api::metrics::JobCounters;

/// A thread printing one progress line per second on stderr until [`Progress::finish`].
pub struct Progress {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Formats a rate like `1.2M`.
pub fn human(n: f64) -> String {
    if n >= 1e9 {
        format!("{:.1}G", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1}M", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1}k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

impl Progress {
    /// Starts reporting on `counters`.
    pub fn start(counters: Arc<JobCounters>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("riffle-progress".into())
            .spawn(move || {
                let t0 = Instant::now();
                let tty = std::io::stderr().is_terminal();
                let mut last_in = 0u64;
                let mut last = Instant::now();
                while !s2.load(Ordering::Relaxed) {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    if last.elapsed() < super::PROGRESS_INTERVAL {
                        continue;
                    }
                    let (i, o) = (counters.records_in(), counters.records_out());
                    let rate = (i - last_in) as f64 / last.elapsed().as_secs_f64();
                    last_in = i;
                    last = Instant::now();
                    let mut line = format!(
                        "[riffle] {:.1}s in={i} out={o} rate={} rec/s",
                        t0.elapsed().as_secs_f64(),
                        human(rate)
                    );
                    let skipped = counters.records_skipped();
                    if skipped > 0 {
                        line.push_str(&format!(" skipped={skipped} malformed"));
                    }
                    let mut err = std::io::stderr().lock();
                    let _ = if tty { write!(err, "\r{line}\x1b[K") } else { writeln!(err, "{line}") };
                }
                if tty {
                    let _ = writeln!(std::io::stderr());
                }
            })
            .ok();
        Self { stop, thread }
    }

    /// Stops reporting.
    pub fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
