//! Traces of checkpoints and failovers over OTLP/HTTP (`traces.reporter.otlp.endpoint`), as
//! Flink 1.19+ reports checkpoint and recovery spans: one `Checkpoint` span per completed or
//! failed checkpoint (trigger to completion) with a child per acknowledging subtask (its
//! synchronous and asynchronous parts), and one `JobFailover` span per restart (the failure
//! detected to the job running again). They are built from what the runtime already records
//! (checkpoint history, job status times), by a thread that looks every half second, so the
//! runtime itself carries no tracing code.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{Span as _, SpanBuilder, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use riffle_actors::checkpoint_history::{CheckpointRecord, CheckpointStatus};
use riffle_actors::services::JobRecords;
use riffle_actors::{JobId, JobStatus};

/// How often the thread looks for new checkpoints and restarts.
const POLL: Duration = Duration::from_millis(500);

/// The running reporter; stops (and flushes) when dropped.
pub struct TraceReporter {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for TraceReporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn at(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

/// What was reported of one job already.
#[derive(Default)]
struct Seen {
    checkpoint: u64,
    attempt: u32,
}

impl TraceReporter {
    /// Starts reporting the jobs of `jobs` to the OTLP/HTTP traces `endpoint`.
    pub fn start(jobs: Arc<JobRecords>, endpoint: &str) -> Result<Self, String> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let exporter = SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(endpoint)
            .with_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        let provider = SdkTracerProvider::builder().with_simple_exporter(exporter).build();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("riffle-traces".into())
            .spawn(move || {
                let tracer = provider.tracer("riffle");
                let mut seen: HashMap<JobId, Seen> = HashMap::new();
                while !flag.load(Ordering::Relaxed) {
                    report(&jobs, &tracer, &mut seen);
                    std::thread::sleep(POLL);
                }
                report(&jobs, &tracer, &mut seen);
                let _ = provider.shutdown();
            })
            .map_err(|e| format!("cannot start the trace reporter: {e}"))?;
        Ok(Self { stop, thread: Some(thread) })
    }
}

fn report(jobs: &JobRecords, tracer: &SdkTracer, seen: &mut HashMap<JobId, Seen>) {
    for v in jobs.views.iter() {
        let job = v.job_id;
        let s = seen.entry(job).or_default();
        if let Some(stats) = jobs.checkpoint_stats.get(&job).map(|c| c.clone()) {
            let history = stats.with_history(|h| h.view());
            let mut done: Vec<&CheckpointRecord> = history
                .history
                .iter()
                .filter(|r| r.id > s.checkpoint && r.status != CheckpointStatus::InProgress)
                .collect();
            done.sort_by_key(|r| r.id);
            for r in done {
                checkpoint_span(tracer, job, r);
                s.checkpoint = r.id;
            }
        }
        let state = v.state();
        if state.attempt > s.attempt && state.status == JobStatus::Running {
            let time = |st: JobStatus| state.status_times.iter().find(|(x, _)| *x == st).map(|(_, t)| *t);
            if let (Some(from), Some(to)) = (time(JobStatus::Restarting), time(JobStatus::Running)) {
                let mut span = tracer.build(
                    SpanBuilder::from_name("JobFailover").with_start_time(at(from)).with_attributes(vec![
                        KeyValue::new("job_id", job.to_string()),
                        KeyValue::new("attempt", i64::from(state.attempt)),
                    ]),
                );
                span.end_with_timestamp(at(to.max(from)));
            }
            s.attempt = state.attempt;
        }
    }
}

fn checkpoint_span(tracer: &SdkTracer, job: JobId, r: &CheckpointRecord) {
    let end = if r.end_ms >= 0 { r.end_ms } else { r.latest_ack_ms };
    let parent = tracer.build(
        SpanBuilder::from_name(if r.is_savepoint { "Savepoint" } else { "Checkpoint" })
            .with_start_time(at(r.trigger_ms))
            .with_attributes(vec![
                KeyValue::new("job_id", job.to_string()),
                KeyValue::new("checkpoint_id", r.id as i64),
                KeyValue::new("status", r.status.as_str()),
                KeyValue::new("state_size", r.state_size as i64),
                KeyValue::new("persisted_data", r.persisted_data as i64),
            ]),
    );
    let cx = Context::new().with_span(parent);
    for (vertex, part) in &r.vertices {
        for (subtask, ack) in &part.subtasks {
            let start = ack.ack_ms - (ack.sync_ms + ack.async_ms) as i64;
            let mut child = tracer.build_with_context(
                SpanBuilder::from_name("SubtaskCheckpoint")
                    .with_start_time(at(start.max(r.trigger_ms)))
                    .with_attributes(vec![
                        KeyValue::new("job_id", job.to_string()),
                        KeyValue::new("checkpoint_id", r.id as i64),
                        KeyValue::new("vertex_id", crate::params::vertex_id(job, *vertex)),
                        KeyValue::new("subtask_index", i64::from(*subtask)),
                        KeyValue::new("sync_ms", ack.sync_ms as i64),
                        KeyValue::new("async_ms", ack.async_ms as i64),
                        KeyValue::new("alignment_ms", ack.alignment_ms as i64),
                        KeyValue::new("state_size", ack.state_size as i64),
                    ]),
                &cx,
            );
            child.end_with_timestamp(at(ack.ack_ms));
        }
    }
    cx.span().end_with_timestamp(at(end.max(r.trigger_ms)));
}
