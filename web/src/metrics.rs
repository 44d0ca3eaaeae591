//! `/metrics` in Prometheus text format, produced by OpenTelemetry instruments whose
//! callbacks read the runtime's views at scrape time (nothing is counted twice and nothing
//! runs between scrapes); and the backpressure sampler behind the job pages.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_otlp::{MetricExporter, Protocol, WithExportConfig};
use opentelemetry_sdk::metrics::PeriodicReader;

use opentelemetry::metrics::{AsyncInstrument, MeterProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use riffle_actors::checkpoint_coordinator::CheckpointStats;
use riffle_actors::job_view::{JobView, SubtaskIo, VertexView, NO_WATERMARK};
use riffle_actors::services::{Directory, JobRecords};
use riffle_actors::JobId;

use crate::error::WebError;

/// A reader that pushes every `interval` to the OTLP/HTTP metrics `endpoint` (protobuf).
fn otlp_reader(endpoint: &str, interval: Duration) -> Result<PeriodicReader<MetricExporter>, String> {
    // reqwest is built without a crypto provider of its own (see riffle-cluster's Cargo.toml):
    // the ring provider this crate's rustls builds serves it (a second install is a no-op).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let exporter = MetricExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(endpoint)
        .with_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    Ok(PeriodicReader::builder(exporter).with_interval(interval).build())
}

/// Subtask samples kept before those of ended jobs are dropped.
const MAX_SAMPLES: usize = 1024;

/// How long a backpressure sample stays current before the next read takes a new one.
const SAMPLE_PERIOD_MS: u128 = 1000;

struct Sample {
    at: Instant,
    backpressured_ns: u64,
    idle_ms: u64,
    ratios: Ratios,
}

/// Shares of the latest sampling period (about a second) a subtask spent waiting for room
/// downstream, waiting for input, and working: Flink's `backPressuredTimeMsPerSecond`,
/// `idleTimeMsPerSecond` and `busyTimeMsPerSecond` divided by 1000. Each is 0..=1 and
/// busy is what the other two leave.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Ratios {
    /// Waiting for room in a full output channel.
    pub backpressured: f64,
    /// Waiting for input.
    pub idle: f64,
    /// Neither.
    pub busy: f64,
}

impl Ratios {
    fn of(backpressured: f64, idle: f64) -> Self {
        let backpressured = backpressured.clamp(0.0, 1.0);
        let idle = idle.clamp(0.0, 1.0 - backpressured);
        Ratios { backpressured, idle, busy: (1.0 - backpressured - idle).max(0.0) }
    }
}

/// Idle time of `io` including a wait for input still going on, ms.
pub fn idle_ms_now(io: &SubtaskIo, now_ms: i64) -> u64 {
    let done = io.idle_ms.load(Ordering::Relaxed);
    if io.idle.load(Ordering::Relaxed) {
        done + (now_ms - io.idle_since_ms.load(Ordering::Relaxed)).max(0) as u64
    } else {
        done
    }
}

/// The exporter and the sampler.
pub struct Metrics {
    jobs: Arc<JobRecords>,
    registry: prometheus::Registry,
    _provider: Option<SdkMeterProvider>,
    samples: Mutex<HashMap<(JobId, u32, u32), Sample>>,
}

fn job_attrs(job: JobId, name: &str) -> Vec<KeyValue> {
    vec![KeyValue::new("job_id", job.to_string()), KeyValue::new("job_name", label_name(name))]
}

/// A job's or vertex's name as a label value: a file path in it (a source named after the
/// file it reads) is cut to its last component, so no label carries a directory.
pub fn label_name(name: &str) -> String {
    name.split(' ')
        .map(|word| match word.rsplit_once('/') {
            Some((_, last)) if word.contains('/') => last,
            _ => word,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Labels of one vertex of a job: job id and name, vertex id (as the REST API shows it) and
/// name.
fn vertex_attrs(view: &JobView, x: &VertexView) -> Vec<KeyValue> {
    let mut a = job_attrs(view.job_id, &view.name);
    a.push(KeyValue::new("vertex_id", crate::params::vertex_id(view.job_id, x.index)));
    a.push(KeyValue::new("vertex_name", label_name(&x.name)));
    a
}

/// The jobs whose series are exported: those not ended (a job's series go when it ends).
fn live_jobs(s: &JobRecords) -> Vec<Arc<JobView>> {
    s.views.iter().filter(|v| !v.state().status.is_terminal()).map(|v| v.value().clone()).collect()
}

impl Metrics {
    /// Instruments over the jobs' records and the cluster's directory, exported as Prometheus
    /// text and, with `otlp` (endpoint, interval), pushed over OTLP/HTTP.
    pub fn new(jobs: Arc<JobRecords>, directory: Arc<Directory>, otlp: Option<(String, Duration)>) -> Self {
        let registry = prometheus::Registry::new();
        // No `otel_scope_*` labels: every series would carry riffle's meter name.
        let provider = match opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .scope_info_enabled(false)
            .build()
        {
            Ok(exporter) => {
                let mut builder = SdkMeterProvider::builder().with_reader(exporter);
                if let Some((endpoint, interval)) = otlp {
                    match otlp_reader(&endpoint, interval) {
                        Ok(reader) => {
                            tracing::info!("pushing metrics over OTLP/HTTP to {endpoint} every {interval:?}");
                            builder = builder.with_reader(reader);
                        }
                        Err(e) => tracing::warn!("metrics are not pushed to {endpoint}: {e}"),
                    }
                }
                Some(builder.build())
            }
            Err(e) => {
                tracing::warn!("metrics are unavailable: the Prometheus exporter did not start: {e}");
                None
            }
        };
        if let Some(p) = &provider {
            register(&p.meter("riffle"), &jobs, &directory);
        }
        Self { jobs, registry, _provider: provider, samples: Mutex::new(HashMap::new()) }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> Result<String, WebError> {
        use prometheus::Encoder;
        let families = self.registry.gather();
        let mut out = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&families, &mut out)
            .map_err(|e| WebError::Internal(format!("cannot encode metrics: {e}")))?;
        String::from_utf8(out).map_err(|e| WebError::Internal(format!("metrics are not UTF-8: {e}")))
    }

    /// Share of time each subtask of `vertex` waited for room downstream over the latest
    /// sampling period (about a second), 0..=1.
    pub fn subtask_backpressure(&self, job: JobId, vertex: u32) -> Vec<f64> {
        self.subtask_ratios(job, vertex).into_iter().map(|r| r.backpressured).collect()
    }

    /// Backpressured, idle and busy shares of each subtask of `vertex` over the latest
    /// sampling period (about a second; a read within it gets the same sample).
    pub fn subtask_ratios(&self, job: JobId, vertex: u32) -> Vec<Ratios> {
        let Some(view) = self.jobs.view(job) else { return vec![] };
        let Some(v) = view.vertices.get(vertex as usize) else { return vec![] };
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if samples.len() > MAX_SAMPLES {
            // Samples of jobs that ended go (a job's page reads them no more).
            samples.retain(|(j, _, _), _| self.jobs.view(*j).is_some_and(|v| !v.state().status.is_terminal()));
        }
        let now = Instant::now();
        let now_ms = riffle_api::time::now_ms();
        v.subtasks
            .iter()
            .enumerate()
            .map(|(i, io)| {
                let ns = io.backpressured_ns.load(Ordering::Relaxed);
                let idle = idle_ms_now(io, now_ms);
                let waiting_now = io.backpressured.load(Ordering::Relaxed);
                let key = (job, vertex, i as u32);
                match samples.get_mut(&key) {
                    Some(s) if now.duration_since(s.at).as_millis() < SAMPLE_PERIOD_MS => s.ratios,
                    Some(s) => {
                        let dt = now.duration_since(s.at).as_nanos().max(1) as f64;
                        let mut bp = (ns.saturating_sub(s.backpressured_ns)) as f64 / dt;
                        if waiting_now && bp == 0.0 {
                            // One wait that has not ended yet is counted only when it ends.
                            bp = 1.0;
                        }
                        let idle_share = (idle.saturating_sub(s.idle_ms)) as f64 * 1e6 / dt;
                        let ratios = Ratios::of(bp, idle_share);
                        *s = Sample { at: now, backpressured_ns: ns, idle_ms: idle, ratios };
                        ratios
                    }
                    None => {
                        let idle_now = io.idle.load(Ordering::Relaxed);
                        let ratios = Ratios::of(
                            if waiting_now { 1.0 } else { 0.0 },
                            if idle_now && !waiting_now { 1.0 } else { 0.0 },
                        );
                        samples.insert(key, Sample { at: now, backpressured_ns: ns, idle_ms: idle, ratios });
                        ratios
                    }
                }
            })
            .collect()
    }

    /// The highest subtask backpressure of each vertex of `job`.
    pub fn backpressure(&self, job: JobId) -> HashMap<u32, f64> {
        let Some(view) = self.jobs.view(job) else { return HashMap::new() };
        (0..view.vertices.len() as u32)
            .map(|v| (v, self.subtask_backpressure(job, v).into_iter().fold(0.0, f64::max)))
            .collect()
    }
}

/// Observes `value` of every vertex of every live job, labelled with job and vertex.
fn per_vertex(s: &JobRecords, o: &dyn AsyncInstrument<u64>, value: impl Fn(&[Arc<SubtaskIo>]) -> u64) {
    for v in live_jobs(s) {
        for x in &v.vertices {
            o.observe(value(&x.subtasks), &vertex_attrs(&v, x));
        }
    }
}

/// Observes `value` of every subtask of every live job, labelled with job, vertex and
/// `subtask_index` (Flink's per-task scope); `None` observes nothing for that subtask.
fn per_subtask<T>(s: &JobRecords, o: &dyn AsyncInstrument<T>, value: impl Fn(&SubtaskIo) -> Option<T>) {
    for v in live_jobs(s) {
        for x in &v.vertices {
            let base = vertex_attrs(&v, x);
            for (i, io) in x.subtasks.iter().enumerate() {
                if let Some(n) = value(io) {
                    let mut a = base.clone();
                    a.push(KeyValue::new("subtask_index", i as i64));
                    o.observe(n, &a);
                }
            }
        }
    }
}

/// Observes `value` of every live job's checkpoint statistics.
fn per_job_checkpoints(s: &JobRecords, o: &dyn AsyncInstrument<u64>, value: impl Fn(&CheckpointStats) -> u64) {
    for v in live_jobs(s) {
        o.observe(value(&s.checkpoint_stats(v.job_id)), &job_attrs(v.job_id, &v.name));
    }
}

fn sum(subtasks: &[Arc<SubtaskIo>], f: impl Fn(&SubtaskIo) -> u64) -> u64 {
    subtasks.iter().map(|io| f(io)).sum()
}

fn register(meter: &opentelemetry::metrics::Meter, jobs: &Arc<JobRecords>, directory: &Arc<Directory>) {
    type Pick = fn(&[Arc<SubtaskIo>]) -> u64;
    let vertex_counters: [(&'static str, &'static str, Pick); 2] = [
        ("riffle_vertex_records_in", "Records read by a vertex's subtasks from their inputs", |x| {
            sum(x, |io| io.records_in.load(Ordering::Relaxed))
        }),
        ("riffle_vertex_records_out", "Records a vertex's subtasks wrote to their outputs", |x| {
            sum(x, |io| io.records_out.load(Ordering::Relaxed))
        }),
    ];
    for (name, help, pick) in vertex_counters {
        let s = jobs.clone();
        meter
            .u64_observable_counter(name)
            .with_description(help)
            .with_callback(move |o| per_vertex(&s, o, pick))
            .build();
    }
    let s = jobs.clone();
    meter
        .f64_observable_counter("riffle_vertex_backpressured_seconds")
        .with_description("Time a vertex's subtasks waited for room in a full output channel")
        .with_callback(move |o| {
            for v in live_jobs(&s) {
                for x in &v.vertices {
                    let ns = sum(&x.subtasks, |io| io.backpressured_ns.load(Ordering::Relaxed));
                    o.observe(ns as f64 / 1e9, &vertex_attrs(&v, x));
                }
            }
        })
        .build();
    // Per subtask, as Flink's task metrics: numRecordsIn/Out, backpressured time, watermark lag.
    type PerSubtask = fn(&SubtaskIo) -> Option<u64>;
    let subtask_counters: [(&'static str, &'static str, PerSubtask); 2] = [
        ("riffle_task_records_in", "Records a subtask read from its inputs (Flink's numRecordsIn)", |io| {
            Some(io.records_in.load(Ordering::Relaxed))
        }),
        ("riffle_task_records_out", "Records a subtask wrote to its outputs (Flink's numRecordsOut)", |io| {
            Some(io.records_out.load(Ordering::Relaxed))
        }),
    ];
    for (name, help, pick) in subtask_counters {
        let s = jobs.clone();
        meter
            .u64_observable_counter(name)
            .with_description(help)
            .with_callback(move |o| per_subtask(&s, o, pick))
            .build();
    }
    let s = jobs.clone();
    meter
        .f64_observable_counter("riffle_task_backpressured_seconds")
        .with_description("Time a subtask waited for room in a full output channel")
        .with_callback(move |o| per_subtask(&s, o, |io| Some(io.backpressured_ns.load(Ordering::Relaxed) as f64 / 1e9)))
        .build();
    let s = jobs.clone();
    meter
        .u64_observable_gauge("riffle_task_backpressured")
        .with_description("Whether a subtask waits for room downstream right now (Flink's isBackPressured)")
        .with_callback(move |o| per_subtask(&s, o, |io| Some(io.backpressured.load(Ordering::Relaxed) as u64)))
        .build();
    let s = jobs.clone();
    meter
        .i64_observable_gauge("riffle_task_watermark_lag_ms")
        .with_description(
            "Processing time minus a subtask's current input watermark, ms (absent before its first watermark and \
             after its last)",
        )
        .with_callback(move |o| {
            let now = riffle_api::time::now_ms();
            per_subtask(&s, o, |io| {
                let w = io.input_watermark.load(Ordering::Relaxed);
                (w != NO_WATERMARK && w != i64::MAX).then(|| now.saturating_sub(w))
            })
        })
        .build();
    let s = jobs.clone();
    meter
        .u64_observable_gauge("riffle_vertex_backpressured_subtasks")
        .with_description("Subtasks of a vertex waiting for room downstream right now")
        .with_callback(move |o| {
            per_vertex(&s, o, |x| x.iter().filter(|io| io.backpressured.load(Ordering::Relaxed)).count() as u64)
        })
        .build();
    let s = jobs.clone();
    meter
        .u64_observable_counter("riffle_job_restarts")
        .with_description("Restarts of a job (its attempt number)")
        .with_callback(move |o| {
            for v in live_jobs(&s) {
                o.observe(v.state().attempt as u64, &job_attrs(v.job_id, &v.name));
            }
        })
        .build();
    type Stat = fn(&CheckpointStats) -> u64;
    let checkpoint_metrics: [(&'static str, &'static str, bool, Stat); 4] = [
        ("riffle_checkpoints_completed", "Checkpoints completed", true, |c| c.with_history(|h| h.counts().completed)),
        ("riffle_checkpoints_failed", "Checkpoints failed (declined, timed out, aborted)", true, |c| {
            c.with_history(|h| h.counts().failed)
        }),
        (
            "riffle_checkpoint_last_duration_ms",
            "Trigger to completion of the latest completed checkpoint",
            false,
            |c| c.with_history(|h| h.latest_completed().map_or(0, |r| r.duration_ms() as u64)),
        ),
        ("riffle_checkpoint_last_size_bytes", "State size of the latest completed checkpoint", false, |c| {
            c.with_history(|h| h.latest_completed().map_or(0, |r| r.state_size))
        }),
    ];
    for (name, help, counter, pick) in checkpoint_metrics {
        let s = jobs.clone();
        let callback = move |o: &dyn AsyncInstrument<u64>| per_job_checkpoints(&s, o, pick);
        if counter {
            meter.u64_observable_counter(name).with_description(help).with_callback(callback).build();
        } else {
            meter.u64_observable_gauge(name).with_description(help).with_callback(callback).build();
        }
    }
    type Cluster = fn(&Directory) -> u64;
    let cluster_gauges: [(&'static str, &'static str, Cluster); 3] = [
        ("riffle_task_executors", "TaskExecutors registered", |s| s.task_executors.len() as u64),
        ("riffle_slots_total", "Task slots of all TaskExecutors", |s| s.slots.total.load(Ordering::Relaxed)),
        ("riffle_slots_available", "Task slots not allocated to a job", |s| s.slots.free.load(Ordering::Relaxed)),
    ];
    for (name, help, pick) in cluster_gauges {
        let s = directory.clone();
        meter
            .u64_observable_gauge(name)
            .with_description(help)
            .with_callback(move |o| o.observe(pick(&s), &[]))
            .build();
    }
    let s = jobs.clone();
    meter
        .u64_observable_gauge("riffle_jobs")
        .with_description("Jobs by status")
        .with_callback(move |o| {
            let mut by: HashMap<&'static str, u64> = HashMap::new();
            for v in s.views.iter() {
                *by.entry(v.state().status.as_str()).or_insert(0) += 1;
            }
            for (st, n) in by {
                o.observe(n, &[KeyValue::new("status", st)]);
            }
        })
        .build();
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_as_labels_carry_no_directories() {
        assert_eq!(super::label_name("Source: /data/in/events.csv -> Map"), "Source: events.csv -> Map");
        assert_eq!(super::label_name("Window(5 s) -> Sink"), "Window(5 s) -> Sink");
        assert_eq!(super::label_name("a/b/"), "");
    }
}
