//! `/jobs...`: the job list, a job's details and plan, its failover history, cancel.

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use riffle_actors::dispatcher::{CancelJob, DispatcherError, GetExceptionHistory};
use riffle_actors::exception_history::ExceptionEntry;
use riffle_actors::job_view::{task_counts, vertex_state, ExecutionState, JobState, JobView};
use riffle_actors::{JobId, JobStatus};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::context::RestContext;
use crate::error::WebError;
use crate::params;

type Ctx = web::Data<RestContext>;

/// The job's view, or 404.
pub fn view(ctx: &RestContext, id: &str) -> Result<(JobId, std::sync::Arc<JobView>), WebError> {
    let job = params::job_id(id)?;
    let v = ctx.jobs.view(job).ok_or_else(|| WebError::NotFound(format!("job {job} not found")))?;
    Ok((job, v))
}

fn duration(s: &JobState, now: i64) -> i64 {
    let end = if s.end_ms >= 0 { s.end_ms } else { now };
    (end - s.start_ms).max(0)
}

fn tasks_lowercase(s: &JobState) -> Value {
    let counts = task_counts(s);
    let mut m = Map::new();
    m.insert("total".into(), json!(s.tasks.iter().map(Vec::len).sum::<usize>()));
    for st in ExecutionState::ALL {
        m.insert(st.as_str().to_ascii_lowercase(), json!(counts.get(&st).copied().unwrap_or(0)));
    }
    m.insert("reconciling".into(), json!(0));
    Value::Object(m)
}

fn overview(v: &JobView, now: i64) -> Value {
    let s = v.state();
    json!({
        "jid": v.job_id.to_string(),
        "name": v.name,
        "state": s.status.as_str(),
        "start-time": s.start_ms,
        "end-time": s.end_ms,
        "duration": duration(&s, now),
        "last-modification": s.last_modification_ms,
        "tasks": tasks_lowercase(&s),
        "pending-operators": 0,
    })
}

fn all_views(ctx: &RestContext) -> Vec<std::sync::Arc<JobView>> {
    let mut all: Vec<_> = ctx.jobs.views.iter().map(|e| e.value().clone()).collect();
    all.sort_by_key(|v| std::cmp::Reverse((v.state().start_ms, v.job_id)));
    all
}

/// `GET /jobs`.
pub async fn list(ctx: Ctx) -> HttpResponse {
    let jobs: Vec<Value> = all_views(&ctx)
        .iter()
        .map(|v| json!({"id": v.job_id.to_string(), "status": v.state().status.as_str()}))
        .collect();
    HttpResponse::Ok().json(json!({ "jobs": jobs }))
}

/// `GET /jobs/overview`.
pub async fn overview_list(ctx: Ctx) -> HttpResponse {
    let now = riffle_api::time::now_ms();
    let jobs: Vec<Value> = all_views(&ctx).iter().map(|v| overview(v, now)).collect();
    HttpResponse::Ok().json(json!({ "jobs": jobs }))
}

/// Per-vertex backpressure: the share of the last sampling period its subtasks spent
/// waiting for room downstream, and Flink's level for it.
pub fn backpressure_level(ratio: f64) -> &'static str {
    if ratio <= 0.10 {
        "ok"
    } else if ratio <= 0.5 {
        "low"
    } else {
        "high"
    }
}

/// The plan: one node per vertex, with its inputs.
pub fn plan(v: &JobView) -> Value {
    let nodes: Vec<Value> = v
        .vertices
        .iter()
        .map(|x| {
            let inputs: Vec<Value> = x
                .inputs
                .iter()
                .enumerate()
                .map(|(i, inp)| {
                    json!({
                        "num": i,
                        "id": params::vertex_id(v.job_id, inp.upstream),
                        "ship_strategy": inp.ship_strategy,
                        "exchange": "pipelined_bounded",
                    })
                })
                .collect();
            json!({
                "id": params::vertex_id(v.job_id, x.index),
                "parallelism": x.parallelism,
                "operator": "",
                "operator_strategy": "",
                "description": x.name,
                "inputs": inputs,
                "optimizer_properties": {},
            })
        })
        .collect();
    json!({ "jid": v.job_id.to_string(), "name": v.name, "nodes": nodes })
}

/// `GET /jobs/{id}`.
pub async fn details(ctx: Ctx, path: web::Path<String>) -> Result<HttpResponse, WebError> {
    let (_, v) = view(&ctx, &path)?;
    let now = riffle_api::time::now_ms();
    let s = v.state();
    let mut timestamps = Map::new();
    for st in [
        JobStatus::Created,
        JobStatus::Running,
        JobStatus::Failing,
        JobStatus::Restarting,
        JobStatus::Failed,
        JobStatus::Cancelling,
        JobStatus::Canceled,
        JobStatus::Finished,
        JobStatus::Suspended,
    ] {
        let t = s.status_times.iter().find(|(x, _)| *x == st).map_or(0, |(_, t)| *t);
        timestamps.insert(st.as_str().into(), json!(t));
    }
    timestamps.insert("RECONCILING".into(), json!(0));
    let ratios = ctx.metrics.backpressure(v.job_id);
    let mut status_counts: HashMap<ExecutionState, usize> = HashMap::new();
    let vertices: Vec<Value> = v
        .vertices
        .iter()
        .map(|x| {
            let tasks = s.tasks.get(x.index as usize).cloned().unwrap_or_default();
            let state = vertex_state(&tasks);
            *status_counts.entry(state).or_insert(0) += 1;
            let mut per_state = Map::new();
            for st in ExecutionState::ALL {
                per_state.insert(st.as_str().into(), json!(tasks.iter().filter(|t| **t == st).count()));
            }
            per_state.insert("RECONCILING".into(), json!(0));
            let (start, end) = s.vertex_times.get(x.index as usize).copied().unwrap_or((-1, -1));
            let load =
                |f: fn(&riffle_actors::job_view::SubtaskIo) -> u64| x.subtasks.iter().map(|io| f(io)).sum::<u64>();
            let read = load(|io| io.records_in.load(std::sync::atomic::Ordering::Relaxed));
            let written = load(|io| io.records_out.load(std::sync::atomic::Ordering::Relaxed));
            let bp_ms = load(|io| io.backpressured_ns.load(std::sync::atomic::Ordering::Relaxed)) / 1_000_000;
            let ratio = ratios.get(&x.index).copied().unwrap_or(0.0);
            let ended = state.is_terminal();
            json!({
                "id": params::vertex_id(v.job_id, x.index),
                "name": x.name,
                "parallelism": x.parallelism,
                "maxParallelism": v.max_parallelism,
                "status": state.as_str(),
                "start-time": start,
                "end-time": end,
                "duration": if start < 0 { -1 } else { (if end >= 0 { end } else { now }) - start },
                "tasks": per_state,
                "metrics": {
                    "read-bytes": load(|io| io.bytes_in.load(std::sync::atomic::Ordering::Relaxed)),
                    "read-bytes-complete": ended,
                    "write-bytes": load(|io| io.bytes_out.load(std::sync::atomic::Ordering::Relaxed)),
                    "write-bytes-complete": ended,
                    "read-records": read, "read-records-complete": ended,
                    "write-records": written, "write-records-complete": ended,
                    "accumulated-backpressured-time": bp_ms,
                },
                "backpressure-level": backpressure_level(ratio),
                "backpressured-ratio": ratio,
            })
        })
        .collect();
    let mut counts = Map::new();
    for st in ExecutionState::ALL {
        counts.insert(st.as_str().into(), json!(status_counts.get(&st).copied().unwrap_or(0)));
    }
    counts.insert("RECONCILING".into(), json!(0));
    Ok(HttpResponse::Ok().json(json!({
        "jid": v.job_id.to_string(),
        "name": v.name,
        "isStoppable": false,
        "state": s.status.as_str(),
        "start-time": s.start_ms,
        "end-time": s.end_ms,
        "duration": duration(&s, now),
        "now": now,
        "attempt": s.attempt,
        "timestamps": timestamps,
        "vertices": vertices,
        "status-counts": counts,
        "plan": plan(&v),
    })))
}

/// `GET /jobs/{id}/plan`.
pub async fn plan_of(ctx: Ctx, path: web::Path<String>) -> Result<HttpResponse, WebError> {
    let (_, v) = view(&ctx, &path)?;
    Ok(HttpResponse::Ok().json(json!({ "plan": plan(&v) })))
}

/// `GET /jobs/{id}/vertices/{vid}/backpressure`.
pub async fn backpressure(ctx: Ctx, path: web::Path<(String, String)>) -> Result<HttpResponse, WebError> {
    let (id, vid) = path.into_inner();
    let (job, v) = view(&ctx, &id)?;
    let index = params::vertex_index(job, &vid)?;
    let x =
        v.vertices.get(index as usize).ok_or_else(|| WebError::NotFound(format!("job {job} has no vertex {vid}")))?;
    let per_subtask = ctx.metrics.subtask_backpressure(job, index);
    let subtasks: Vec<Value> = (0..x.parallelism)
        .map(|i| {
            let r = per_subtask.get(i as usize).copied().unwrap_or(0.0);
            json!({"subtask": i, "backpressure-level": backpressure_level(r), "ratio": r})
        })
        .collect();
    let max = per_subtask.iter().copied().fold(0.0, f64::max);
    Ok(HttpResponse::Ok().json(json!({
        "status": "ok",
        "backpressure-level": backpressure_level(max),
        "end-timestamp": riffle_api::time::now_ms(),
        "subtasks": subtasks,
    })))
}

/// The query of `PATCH /jobs/{id}`.
#[derive(Deserialize)]
pub struct CancelQuery {
    mode: Option<String>,
}

/// `PATCH /jobs/{id}?mode=cancel`: 202, also for a job that already ended.
pub async fn cancel(ctx: Ctx, path: web::Path<String>, q: web::Query<CancelQuery>) -> Result<HttpResponse, WebError> {
    match q.mode.as_deref() {
        None | Some("cancel") => {}
        Some(m) => {
            return Err(WebError::BadRequest(format!(
                "mode '{}' is not supported: use mode=cancel, or POST /jobs/{{id}}/stop to stop with a savepoint",
                params::printable(m)
            )))
        }
    }
    let (job, _) = view(&ctx, &path)?;
    ctx.dispatcher
        .send(CancelJob { job_id: job })
        .await
        .map_err(|e| WebError::Unavailable(format!("the dispatcher is gone: {e}")))?
        .map_err(dispatcher_error)?;
    Ok(HttpResponse::Accepted().json(json!({})))
}

/// A Dispatcher refusal as a response.
pub fn dispatcher_error(e: DispatcherError) -> WebError {
    match e {
        DispatcherError::UnknownJob(_) => WebError::NotFound(e.to_string()),
        DispatcherError::Duplicate(_) => WebError::Conflict(e.to_string()),
        DispatcherError::ShuttingDown | DispatcherError::NotStored(_) => WebError::Unavailable(e.to_string()),
    }
}

/// The query of `GET /jobs/{id}/exceptions`.
#[derive(Deserialize)]
pub struct ExceptionsQuery {
    #[serde(rename = "maxExceptions")]
    max_exceptions: Option<String>,
    page: Option<String>,
    size: Option<String>,
}

fn exception_name(e: &ExceptionEntry) -> String {
    e.exception.lines().next().unwrap_or_default().to_string()
}

/// Flink's task label, `name (i/p)`.
fn task_label(e: &ExceptionEntry, v: &JobView) -> Option<String> {
    e.task_name.as_ref().map(|t| match e.subtask_index {
        Some(i) => match v.vertices.iter().find(|x| &x.name == t) {
            Some(x) => format!("{t} ({}/{})", i + 1, x.parallelism),
            None => format!("{t} ({})", i + 1),
        },
        None => t.clone(),
    })
}

/// The cause chain as Java shows it: the failure, then `Caused by: ...` per cause.
pub fn stack_trace(e: &ExceptionEntry) -> String {
    match e.causes.split_first() {
        None => e.exception.clone(),
        Some((first, rest)) => {
            let mut out = first.clone();
            for c in rest {
                out.push_str("\nCaused by: ");
                out.push_str(c);
            }
            out
        }
    }
}

/// Where a failure happened as `host:port` (the TaskExecutor's, see
/// [`RestContext::endpoint`]); the TaskExecutor's id when it is gone.
fn location(ctx: &RestContext, e: &ExceptionEntry) -> Option<String> {
    e.location.as_ref().map(|l| ctx.endpoint(l).unwrap_or_else(|| l.clone()))
}

fn history_entry(ctx: &RestContext, e: &ExceptionEntry, v: &JobView, concurrent: Vec<Value>) -> Value {
    let mut m = Map::new();
    m.insert("exceptionName".into(), json!(exception_name(e)));
    m.insert("stacktrace".into(), json!(stack_trace(e)));
    m.insert("timestamp".into(), json!(e.timestamp_ms));
    if let Some(t) = task_label(e, v) {
        m.insert("taskName".into(), json!(t));
    }
    if let Some(l) = &e.location {
        m.insert("location".into(), json!(location(ctx, e)));
        m.insert("taskManagerId".into(), json!(l));
    }
    m.insert("isRootCause".into(), json!(e.is_root_cause));
    m.insert("attempt".into(), json!(e.attempt));
    m.insert("concurrentExceptions".into(), json!(concurrent));
    Value::Object(m)
}

/// Groups a page of entries (newest first) as Flink does: each root cause with the failures
/// of its attempt that happened alongside it.
fn group(ctx: &RestContext, entries: &[ExceptionEntry], v: &JobView) -> Vec<Value> {
    let mut out = Vec::new();
    let mut used = vec![false; entries.len()];
    for (i, e) in entries.iter().enumerate() {
        if !e.is_root_cause {
            continue;
        }
        let mut concurrent = Vec::new();
        for (j, c) in entries.iter().enumerate() {
            if !c.is_root_cause && !used[j] && c.attempt == e.attempt {
                used[j] = true;
                concurrent.push(history_entry(ctx, c, v, vec![]));
            }
        }
        used[i] = true;
        out.push((i, history_entry(ctx, e, v, concurrent)));
    }
    for (i, e) in entries.iter().enumerate() {
        if !used[i] {
            out.push((i, history_entry(ctx, e, v, vec![])));
        }
    }
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, v)| v).collect()
}

/// Largest page size a client may ask for.
pub const MAX_PAGE_SIZE: u64 = 100;

/// `GET /jobs/{id}/exceptions`: Flink's shapes (1.11 and 1.13+), and page by page.
pub async fn exceptions(
    ctx: Ctx,
    path: web::Path<String>,
    q: web::Query<ExceptionsQuery>,
) -> Result<HttpResponse, WebError> {
    let (job, v) = view(&ctx, &path)?;
    let paged = q.page.is_some() || q.size.is_some();
    let (page, size) = if paged {
        let page = q.page.as_deref().map(|p| params::number(p, "page")).transpose()?.unwrap_or(0);
        let size = q.size.as_deref().map(|p| params::number(p, "size")).transpose()?.unwrap_or(10);
        if size == 0 || size > MAX_PAGE_SIZE {
            return Err(WebError::BadRequest(format!("size must be between 1 and {MAX_PAGE_SIZE}, got {size}")));
        }
        if page > 1_000_000 {
            return Err(WebError::BadRequest(format!("page {page} is out of range")));
        }
        (page as usize, size as usize)
    } else {
        let max = q.max_exceptions.as_deref().map(|p| params::number(p, "maxExceptions")).transpose()?.unwrap_or(20);
        (0, max.clamp(1, 10_000) as usize)
    };
    // The history is bounded (`jobmanager.exception-history-size`): read it whole, group
    // each root cause with its concurrent failures, and page over the groups.
    let p = ctx
        .dispatcher
        .send(GetExceptionHistory { job_id: job, page: 0, page_size: usize::MAX })
        .await
        .map_err(|e| WebError::Unavailable(format!("the dispatcher is gone: {e}")))?
        .map_err(dispatcher_error)?;
    let groups = group(&ctx, &p.entries, &v);
    let total = groups.len();
    let entries: Vec<Value> = groups.into_iter().skip(page.saturating_mul(size)).take(size).collect();
    let root = p.entries.iter().find(|e| e.is_root_cause);
    let all: Vec<Value> = p
        .entries
        .iter()
        .take(if paged { usize::MAX } else { size })
        .map(|e| {
            json!({
                "exception": e.exception,
                "task": task_label(e, &v).unwrap_or_default(),
                "location": location(&ctx, e).unwrap_or_default(),
                "timestamp": e.timestamp_ms,
                "taskManagerId": e.location,
            })
        })
        .collect();
    let truncated = p.truncated || (!paged && (total > size || p.entries.len() > size));
    let mut body = json!({
        "root-exception": root.map(|e| e.exception.clone()),
        "timestamp": root.map(|e| e.timestamp_ms),
        "all-exceptions": if paged { Vec::new() } else { all },
        "truncated": truncated,
        "exceptionHistory": { "entries": entries, "truncated": truncated },
    });
    if paged {
        body["page"] = json!(page);
        body["size"] = json!(size);
        body["total"] = json!(total);
    }
    Ok(HttpResponse::Ok().json(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(exception: &str, causes: &[&str]) -> ExceptionEntry {
        ExceptionEntry {
            timestamp_ms: 1,
            exception: exception.into(),
            task_name: None,
            subtask_index: None,
            location: None,
            is_root_cause: true,
            attempt: 0,
            causes: causes.iter().map(|c| c.to_string()).collect(),
        }
    }

    #[test]
    fn the_stack_trace_holds_the_cause_chain() {
        assert_eq!(
            stack_trace(&entry("sink failed", &["sink failed", "cannot write part-0", "disk full"])),
            "sink failed\nCaused by: cannot write part-0\nCaused by: disk full"
        );
        assert_eq!(stack_trace(&entry("boom", &[])), "boom");
    }
}
