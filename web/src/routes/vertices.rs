//! `/jobs/{id}/vertices/{vid}...`: one vertex drilled down to its subtasks — where each
//! runs, its records, bytes, backpressure, idle and busy time, watermarks and metrics, in
//! Flink's shapes (`JobVertexDetailsInfo`, `SubtasksTimesInfo`,
//! `JobVertexTaskManagersInfo`, metric queries).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use actix_web::{web, HttpResponse};
use riffle_actors::job_view::{ExecutionState, JobState, JobView, SubtaskIo, VertexView};
use riffle_actors::JobId;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::context::RestContext;
use crate::error::WebError;
use crate::metric_query::{self, MetricValue};
use crate::metrics::{idle_ms_now, Ratios};
use crate::params;
use crate::routes::jobs::{backpressure_level, view};

type Ctx = web::Data<RestContext>;

/// The job, its view and the vertex a path names (404 for an unknown job or vertex).
fn vertex(ctx: &RestContext, id: &str, vid: &str) -> Result<(JobId, Arc<JobView>, u32), WebError> {
    let (job, v) = view(ctx, id)?;
    let index = params::vertex_index(job, vid)?;
    if v.vertices.get(index as usize).is_none() {
        return Err(WebError::NotFound(format!("job {job} has no vertex {}", params::printable(vid))));
    }
    Ok((job, v, index))
}

/// One subtask as the drill-down shows it.
struct Subtask<'a> {
    index: u32,
    status: ExecutionState,
    location: Option<String>,
    io: &'a SubtaskIo,
    ratios: Ratios,
    /// When it started running and ended, epoch ms (-1: not yet).
    start: i64,
    end: i64,
    /// Its state timestamps, by [`ExecutionState::ordinal`].
    times: [i64; 8],
}

impl Subtask<'_> {
    fn duration(&self, now: i64) -> i64 {
        if self.start < 0 {
            return -1;
        }
        (if self.end >= 0 { self.end } else { now }) - self.start
    }

    /// Busy time so far: running time that was neither idle nor backpressured, ms.
    fn busy_ms(&self, now: i64) -> u64 {
        let running = self.duration(now).max(0) as u64;
        running.saturating_sub(idle_ms_now(self.io, now)).saturating_sub(self.backpressured_ms())
    }

    fn backpressured_ms(&self) -> u64 {
        self.io.backpressured_ns.load(Ordering::Relaxed) / 1_000_000
    }

    /// Flink's per-subtask metrics (`<subtask>.<name>` in vertex queries).
    fn metrics(&self, now: i64) -> Vec<(String, MetricValue)> {
        let int = |n: u64| MetricValue::Int(n.min(i64::MAX as u64) as i64);
        let io = self.io;
        vec![
            ("numRecordsIn".into(), int(io.records_in.load(Ordering::Relaxed))),
            ("numRecordsOut".into(), int(io.records_out.load(Ordering::Relaxed))),
            ("numBytesIn".into(), int(io.bytes_in.load(Ordering::Relaxed))),
            ("numBytesOut".into(), int(io.bytes_out.load(Ordering::Relaxed))),
            ("backPressuredTimeMsPerSecond".into(), MetricValue::Float(self.ratios.backpressured * 1000.0)),
            ("idleTimeMsPerSecond".into(), MetricValue::Float(self.ratios.idle * 1000.0)),
            ("busyTimeMsPerSecond".into(), MetricValue::Float(self.ratios.busy * 1000.0)),
            ("accumulatedBackpressuredTimeMs".into(), int(self.backpressured_ms())),
            ("accumulatedIdleTimeMs".into(), int(idle_ms_now(io, now))),
            ("accumulatedBusyTimeMs".into(), int(self.busy_ms(now))),
            ("isBackPressured".into(), MetricValue::Int(io.backpressured.load(Ordering::Relaxed) as i64)),
            ("inputQueueLength".into(), int(io.queued_in.load(Ordering::Relaxed))),
            ("currentInputWatermark".into(), MetricValue::Int(io.input_watermark.load(Ordering::Relaxed))),
            ("currentOutputWatermark".into(), MetricValue::Int(io.output_watermark.load(Ordering::Relaxed))),
        ]
    }

    /// Flink's `IOMetricsInfo` plus the accumulated times of 1.13+.
    fn io_metrics(&self, now: i64) -> Value {
        let ended = self.status.is_terminal();
        let io = self.io;
        json!({
            "read-bytes": io.bytes_in.load(Ordering::Relaxed),
            "read-bytes-complete": ended,
            "write-bytes": io.bytes_out.load(Ordering::Relaxed),
            "write-bytes-complete": ended,
            "read-records": io.records_in.load(Ordering::Relaxed),
            "read-records-complete": ended,
            "write-records": io.records_out.load(Ordering::Relaxed),
            "write-records-complete": ended,
            "accumulated-backpressured-time": self.backpressured_ms(),
            "accumulated-idle-time": idle_ms_now(io, now),
            "accumulated-busy-time": self.busy_ms(now),
        })
    }
}

/// The subtasks of `index`, with their latest sampled ratios.
fn subtasks<'a>(ctx: &RestContext, job: JobId, x: &'a VertexView, s: &JobState) -> Vec<Subtask<'a>> {
    let ratios = ctx.metrics.subtask_ratios(job, x.index);
    let v = x.index as usize;
    x.subtasks
        .iter()
        .enumerate()
        .map(|(i, io)| {
            let times = s.task_times.get(v).and_then(|t| t.get(i)).copied().unwrap_or([0; 8]);
            let status = s.tasks.get(v).and_then(|t| t.get(i)).copied().unwrap_or(ExecutionState::Created);
            let at = |st: ExecutionState| times[st.ordinal()];
            let start = match at(ExecutionState::Running) {
                0 => at(ExecutionState::Deploying),
                t => t,
            };
            let end = if status.is_terminal() { at(status) } else { -1 };
            Subtask {
                index: i as u32,
                status,
                location: s.locations.get(v).and_then(|l| l.get(i)).cloned().flatten(),
                io,
                ratios: ratios.get(i).copied().unwrap_or_default(),
                start: if start > 0 { start } else { -1 },
                end,
                times,
            }
        })
        .collect()
}

/// `host` and `endpoint` (`host:port`) of the TaskExecutor at `location`.
fn host_of(ctx: &RestContext, location: Option<&str>) -> (String, String) {
    match location.and_then(|l| ctx.endpoint(l)) {
        Some(endpoint) => {
            let host = endpoint.rsplit_once(':').map_or(endpoint.as_str(), |(h, _)| h).to_string();
            (host, endpoint)
        }
        None => ("(unassigned)".into(), "(unassigned)".into()),
    }
}

/// `GET /jobs/{id}/vertices/{vid}`: Flink's `JobVertexDetailsInfo`, each subtask with where
/// it runs, its I/O and its backpressured, idle and busy shares.
pub async fn details(ctx: Ctx, path: web::Path<(String, String)>) -> Result<HttpResponse, WebError> {
    let (id, vid) = path.into_inner();
    let (job, v, index) = vertex(&ctx, &id, &vid)?;
    let x = &v.vertices[index as usize];
    let s = v.state();
    let now = riffle_api::time::now_ms();
    let list: Vec<Value> = subtasks(&ctx, job, x, &s)
        .iter()
        .map(|t| {
            let (host, endpoint) = host_of(&ctx, t.location.as_deref());
            json!({
                "subtask": t.index,
                "status": t.status.as_str(),
                "attempt": s.attempt,
                "host": host,
                "endpoint": endpoint,
                "taskmanager-id": t.location.clone().unwrap_or_else(|| "(unassigned)".into()),
                "start-time": t.start,
                "end-time": t.end,
                "duration": t.duration(now),
                "metrics": t.io_metrics(now),
                "backpressure-level": backpressure_level(t.ratios.backpressured),
                "backpressured-ratio": t.ratios.backpressured,
                "idle-ratio": t.ratios.idle,
                "busy-ratio": t.ratios.busy,
                "current-input-watermark": t.io.input_watermark.load(Ordering::Relaxed),
                "status-duration": status_durations(&t.times, now),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "id": params::vertex_id(job, index),
        "name": x.name,
        "parallelism": x.parallelism,
        "maxParallelism": v.max_parallelism,
        "now": now,
        "subtasks": list,
    })))
}

/// How long a subtask was in each state it went through (Flink 1.17's `status-duration`).
fn status_durations(times: &[i64; 8], now: i64) -> Value {
    let mut entered: Vec<(i64, ExecutionState)> =
        ExecutionState::ALL.iter().filter(|s| times[s.ordinal()] > 0).map(|s| (times[s.ordinal()], *s)).collect();
    entered.sort_by_key(|(t, s)| (*t, s.ordinal()));
    let mut m = Map::new();
    for (i, (t, st)) in entered.iter().enumerate() {
        let until = entered.get(i + 1).map_or(if st.is_terminal() { *t } else { now }, |(n, _)| *n);
        m.insert(st.as_str().into(), json!((until - t).max(0)));
    }
    Value::Object(m)
}

/// `GET /jobs/{id}/vertices/{vid}/subtasktimes`: when each subtask entered each state.
pub async fn subtask_times(ctx: Ctx, path: web::Path<(String, String)>) -> Result<HttpResponse, WebError> {
    let (id, vid) = path.into_inner();
    let (job, v, index) = vertex(&ctx, &id, &vid)?;
    let x = &v.vertices[index as usize];
    let s = v.state();
    let now = riffle_api::time::now_ms();
    let list: Vec<Value> = subtasks(&ctx, job, x, &s)
        .iter()
        .map(|t| {
            let (host, endpoint) = host_of(&ctx, t.location.as_deref());
            let mut ts = Map::new();
            for st in ExecutionState::ALL {
                ts.insert(st.as_str().into(), json!(t.times[st.ordinal()]));
            }
            ts.insert("INITIALIZING".into(), json!(0));
            ts.insert("RECONCILING".into(), json!(0));
            json!({
                "subtask": t.index,
                "host": host,
                "endpoint": endpoint,
                "duration": t.duration(now),
                "timestamps": ts,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "id": params::vertex_id(job, index),
        "name": x.name,
        "now": now,
        "subtasks": list,
    })))
}

/// `GET /jobs/{id}/vertices/{vid}/taskmanagers`: the vertex's subtasks grouped by the
/// TaskManager they run on, with summed I/O and counts per state.
pub async fn task_managers(ctx: Ctx, path: web::Path<(String, String)>) -> Result<HttpResponse, WebError> {
    let (id, vid) = path.into_inner();
    let (job, v, index) = vertex(&ctx, &id, &vid)?;
    let x = &v.vertices[index as usize];
    let s = v.state();
    let now = riffle_api::time::now_ms();
    let all = subtasks(&ctx, job, x, &s);
    let mut locations: Vec<Option<String>> = Vec::new();
    for t in &all {
        if !locations.contains(&t.location) {
            locations.push(t.location.clone());
        }
    }
    let list: Vec<Value> = locations
        .iter()
        .map(|loc| {
            let mine: Vec<&Subtask> = all.iter().filter(|t| &t.location == loc).collect();
            let (host, endpoint) = host_of(&ctx, loc.as_deref());
            let mut counts = Map::new();
            for st in ExecutionState::ALL {
                counts.insert(st.as_str().into(), json!(mine.iter().filter(|t| t.status == st).count()));
            }
            counts.insert("RECONCILING".into(), json!(0));
            let statuses: Vec<ExecutionState> = mine.iter().map(|t| t.status).collect();
            let start = mine.iter().map(|t| t.start).filter(|t| *t > 0).min().unwrap_or(-1);
            let end = if statuses.iter().all(|s| s.is_terminal()) {
                mine.iter().map(|t| t.end).max().unwrap_or(-1)
            } else {
                -1
            };
            let sum = |f: &dyn Fn(&Subtask) -> u64| mine.iter().map(|t| f(t)).sum::<u64>();
            let ended = statuses.iter().all(|s| s.is_terminal());
            json!({
                "host": host,
                "endpoint": endpoint,
                "taskmanager-id": loc.clone().unwrap_or_else(|| "(unassigned)".into()),
                "status": riffle_actors::job_view::vertex_state(&statuses).as_str(),
                "start-time": start,
                "end-time": end,
                "duration": if start < 0 { -1 } else { (if end >= 0 { end } else { now }) - start },
                "metrics": {
                    "read-bytes": sum(&|t| t.io.bytes_in.load(Ordering::Relaxed)),
                    "read-bytes-complete": ended,
                    "write-bytes": sum(&|t| t.io.bytes_out.load(Ordering::Relaxed)),
                    "write-bytes-complete": ended,
                    "read-records": sum(&|t| t.io.records_in.load(Ordering::Relaxed)),
                    "read-records-complete": ended,
                    "write-records": sum(&|t| t.io.records_out.load(Ordering::Relaxed)),
                    "write-records-complete": ended,
                    "accumulated-backpressured-time": sum(&|t| t.backpressured_ms()),
                    "accumulated-idle-time": sum(&|t| idle_ms_now(t.io, now)),
                    "accumulated-busy-time": sum(&|t| t.busy_ms(now)),
                },
                "status-counts": counts,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "id": params::vertex_id(job, index),
        "name": x.name,
        "now": now,
        "taskmanagers": list,
    })))
}

/// `GET /jobs/{id}/vertices/{vid}/watermarks`: each subtask's current input watermark as
/// Flink's metric list (`[{"id": "<i>.currentInputWatermark", "value": "<ms>"}]`); a
/// subtask that has none yet shows Flink's `Long.MIN_VALUE`.
pub async fn watermarks(ctx: Ctx, path: web::Path<(String, String)>) -> Result<HttpResponse, WebError> {
    let (id, vid) = path.into_inner();
    let (_, v, index) = vertex(&ctx, &id, &vid)?;
    let x = &v.vertices[index as usize];
    let list: Vec<Value> = x
        .subtasks
        .iter()
        .enumerate()
        .map(|(i, io)| {
            let w = io.input_watermark.load(Ordering::Relaxed);
            json!({"id": format!("{i}.currentInputWatermark"), "value": w.to_string()})
        })
        .collect();
    Ok(HttpResponse::Ok().json(list))
}

/// The query of the metric paths.
#[derive(Deserialize)]
pub struct MetricsQuery {
    get: Option<String>,
    agg: Option<String>,
    subtasks: Option<String>,
}

/// `GET /jobs/{id}/vertices/{vid}/metrics[?get=...]`: every subtask's metrics as
/// `<subtask>.<name>`, Flink's vertex metric ids.
pub async fn metrics(
    ctx: Ctx,
    path: web::Path<(String, String)>,
    q: web::Query<MetricsQuery>,
) -> Result<HttpResponse, WebError> {
    let (id, vid) = path.into_inner();
    let (job, v, index) = vertex(&ctx, &id, &vid)?;
    let x = &v.vertices[index as usize];
    let s = v.state();
    let now = riffle_api::time::now_ms();
    let mut all = Vec::new();
    for t in subtasks(&ctx, job, x, &s) {
        for (name, value) in t.metrics(now) {
            all.push((format!("{}.{name}", t.index), value));
        }
    }
    Ok(HttpResponse::Ok().json(metric_query::answer(&all, q.get.as_deref())))
}

/// Subtask indexes a `subtasks=0-2,5` parameter names, within `parallelism`.
fn subtask_set(spec: Option<&str>, parallelism: u32) -> Result<Vec<u32>, WebError> {
    let Some(spec) = spec.filter(|s| !s.trim().is_empty()) else { return Ok((0..parallelism).collect()) };
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (params::number(a.trim(), "subtasks")?, params::number(b.trim(), "subtasks")?),
            None => {
                let n = params::number(part, "subtasks")?;
                (n, n)
            }
        };
        for i in a..=b.min(parallelism.saturating_sub(1) as u64) {
            if !out.contains(&(i as u32)) {
                out.push(i as u32);
            }
        }
    }
    Ok(out)
}

/// `GET /jobs/{id}/vertices/{vid}/subtasks/metrics[?get=...&agg=...&subtasks=...]`: each
/// metric aggregated over the subtasks (`min`, `max`, `avg`, `sum`).
pub async fn subtasks_metrics(
    ctx: Ctx,
    path: web::Path<(String, String)>,
    q: web::Query<MetricsQuery>,
) -> Result<HttpResponse, WebError> {
    let (id, vid) = path.into_inner();
    let (job, v, index) = vertex(&ctx, &id, &vid)?;
    let x = &v.vertices[index as usize];
    let aggs = metric_query::aggregations(q.agg.as_deref()).map_err(WebError::BadRequest)?;
    let wanted = subtask_set(q.subtasks.as_deref(), x.parallelism)?;
    let s = v.state();
    let now = riffle_api::time::now_ms();
    let components: Vec<Vec<(String, MetricValue)>> =
        subtasks(&ctx, job, x, &s).iter().filter(|t| wanted.contains(&t.index)).map(|t| t.metrics(now)).collect();
    Ok(HttpResponse::Ok().json(metric_query::aggregate(&components, q.get.as_deref(), &aggs)))
}

/// `GET /jobs/{id}/vertices/{vid}/subtasks/{i}/metrics[?get=...]`: one subtask's metrics.
pub async fn subtask_metrics(
    ctx: Ctx,
    path: web::Path<(String, String, String)>,
    q: web::Query<MetricsQuery>,
) -> Result<HttpResponse, WebError> {
    let (id, vid, i) = path.into_inner();
    let (job, v, index) = vertex(&ctx, &id, &vid)?;
    let x = &v.vertices[index as usize];
    let i = params::number(&i, "subtask index")?;
    if i >= x.parallelism as u64 {
        return Err(WebError::NotFound(format!("vertex {vid} has no subtask {i} (parallelism {})", x.parallelism)));
    }
    let s = v.state();
    let now = riffle_api::time::now_ms();
    let all = subtasks(&ctx, job, x, &s);
    let metrics = all.iter().find(|t| u64::from(t.index) == i).map(|t| t.metrics(now)).unwrap_or_default();
    Ok(HttpResponse::Ok().json(metric_query::answer(&metrics, q.get.as_deref())))
}

/// `GET /jobs/{id}/vertices/{vid}/accumulators`: riffle has no user accumulators; the
/// shape is Flink's, empty.
pub async fn accumulators(ctx: Ctx, path: web::Path<(String, String)>) -> Result<HttpResponse, WebError> {
    let (id, vid) = path.into_inner();
    let (job, _, index) = vertex(&ctx, &id, &vid)?;
    Ok(HttpResponse::Ok().json(json!({"id": params::vertex_id(job, index), "user-accumulators": []})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtask_sets_take_ranges_and_stay_within_the_parallelism() {
        assert_eq!(subtask_set(None, 3).unwrap(), vec![0, 1, 2]);
        assert_eq!(subtask_set(Some("0-1,1, 4"), 3).unwrap(), vec![0, 1]);
        assert_eq!(subtask_set(Some("2"), 3).unwrap(), vec![2]);
        assert!(subtask_set(Some("a-b"), 3).is_err());
    }

    #[test]
    fn status_durations_run_from_each_state_to_the_next() {
        let mut t = [0; 8];
        t[ExecutionState::Created.ordinal()] = 100;
        t[ExecutionState::Scheduled.ordinal()] = 110;
        t[ExecutionState::Running.ordinal()] = 150;
        t[ExecutionState::Finished.ordinal()] = 400;
        assert_eq!(status_durations(&t, 1000), json!({"CREATED": 10, "SCHEDULED": 40, "RUNNING": 250, "FINISHED": 0}));
        t[ExecutionState::Finished.ordinal()] = 0;
        assert_eq!(status_durations(&t, 1000)["RUNNING"], 850);
    }
}
