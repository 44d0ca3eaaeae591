//! `/jobs/{id}/config`, `/accumulators`, `/metrics` and `/execution-result`: what a job was
//! configured with, what it counted, and how it ended, in Flink's shapes.

use actix_web::{web, HttpResponse};
use riffle_actors::dispatcher::RequestJobResult;
use riffle_actors::JobStatus;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::context::RestContext;
use crate::error::WebError;
use crate::metric_query::{self, MetricValue};
use crate::routes::cluster::is_secret;
use crate::routes::jobs::{dispatcher_error, view};

type Ctx = web::Data<RestContext>;

/// `GET /jobs/{id}/config`: Flink's `JobConfigInfo`. `user-config` holds the job's own
/// configuration (what it was submitted with), secrets masked as on `/jobmanager/config`.
pub async fn config(ctx: Ctx, path: web::Path<String>) -> Result<HttpResponse, WebError> {
    let (job, v) = view(&ctx, &path)?;
    let mut conf = ctx.cluster_config.clone();
    let mut own = riffle_api::Configuration::new();
    for (k, val) in &v.config {
        own.set(k.clone(), val.clone());
    }
    conf.merge(&own);
    let restart = riffle_actors::restart_strategy::RestartStrategy::from_config(&conf)
        .map(|s| format!("{s:?}"))
        .unwrap_or_else(|e| format!("invalid: {e}"));
    let mut user = Map::new();
    for (k, val) in &v.config {
        user.insert(k.clone(), json!(if is_secret(k) { "******" } else { val.as_str() }));
    }
    let parallelism = v.vertices.iter().map(|x| x.parallelism).max().unwrap_or(1);
    Ok(HttpResponse::Ok().json(json!({
        "jid": job.to_string(),
        "name": v.name,
        "execution-config": {
            "execution-mode": "PIPELINED",
            "restart-strategy": restart,
            "job-parallelism": parallelism,
            "object-reuse-mode": false,
            "user-config": user,
        },
    })))
}

/// `GET /jobs/{id}/accumulators`: riffle's job counters (records from sources, into sinks,
/// dropped late, skipped malformed) as Flink's user-task accumulators.
pub async fn accumulators(ctx: Ctx, path: web::Path<String>) -> Result<HttpResponse, WebError> {
    let (job, _) = view(&ctx, &path)?;
    let list: Vec<Value> = counters(&ctx, job)
        .into_iter()
        .map(|(name, n)| json!({"name": name, "type": "LongCounter", "value": n.to_string()}))
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "job-accumulators": [],
        "user-task-accumulators": list,
        "serialized-user-task-accumulators": {},
    })))
}

fn counters(ctx: &RestContext, job: riffle_actors::JobId) -> Vec<(&'static str, u64)> {
    use std::sync::atomic::Ordering::Relaxed;
    let c = ctx.jobs.counters(job);
    vec![
        ("sourceRecords", c.source_records.load(Relaxed)),
        ("sinkRecords", c.sink_records.load(Relaxed)),
        ("lateRecordsDropped", c.late_records_dropped.load(Relaxed)),
        ("sourceRecordsSkipped", c.source_records_skipped.load(Relaxed)),
    ]
}

/// The query of `GET /jobs/{id}/metrics`.
#[derive(Deserialize)]
pub struct MetricsQuery {
    get: Option<String>,
}

/// `GET /jobs/{id}/metrics[?get=...]`: Flink's job metrics (`uptime`, `numRestarts`,
/// checkpoint figures) and riffle's job counters.
pub async fn metrics(ctx: Ctx, path: web::Path<String>, q: web::Query<MetricsQuery>) -> Result<HttpResponse, WebError> {
    let (job, v) = view(&ctx, &path)?;
    let s = v.state();
    let now = riffle_api::time::now_ms();
    let running_since = s.status_times.iter().find(|(st, _)| *st == JobStatus::Running).map(|(_, t)| *t);
    let uptime = match (s.status, running_since) {
        (JobStatus::Running, Some(t)) => (now - t).max(0),
        _ => 0,
    };
    let restarting = match (s.status, s.status_times.iter().find(|(st, _)| *st == JobStatus::Restarting)) {
        (JobStatus::Restarting, Some((_, t))) => (now - t).max(0),
        _ => 0,
    };
    let mut all: Vec<(String, MetricValue)> = vec![
        ("uptime".into(), MetricValue::Int(uptime)),
        ("downtime".into(), MetricValue::Int(0)),
        ("restartingTime".into(), MetricValue::Int(restarting)),
        ("numRestarts".into(), MetricValue::Int(s.attempt as i64)),
        ("fullRestarts".into(), MetricValue::Int(s.attempt as i64)),
    ];
    if let Some(stats) = ctx.jobs.checkpoint_stats.get(&job).map(|s| s.clone()) {
        let h = stats.with_history(|h| (h.counts(), h.latest_completed().cloned()));
        let (counts, latest) = h;
        let n = |x: u64| MetricValue::Int(x.min(i64::MAX as u64) as i64);
        all.extend([
            ("totalNumberOfCheckpoints".into(), n(counts.total)),
            ("numberOfCompletedCheckpoints".into(), n(counts.completed)),
            ("numberOfFailedCheckpoints".into(), n(counts.failed)),
            ("numberOfInProgressCheckpoints".into(), n(counts.in_progress)),
            ("lastCheckpointDuration".into(), MetricValue::Int(latest.as_ref().map_or(-1, |r| r.duration_ms()))),
            ("lastCheckpointSize".into(), n(latest.as_ref().map_or(0, |r| r.state_size))),
            ("lastCheckpointFullSize".into(), n(latest.as_ref().map_or(0, |r| r.state_size))),
        ]);
    }
    for (name, value) in counters(&ctx, job) {
        all.push((name.into(), MetricValue::Int(value.min(i64::MAX as u64) as i64)));
    }
    Ok(HttpResponse::Ok().json(metric_query::answer(&all, q.get.as_deref())))
}

/// `GET /jobs/{id}/execution-result`: `{"status": {"id": "IN_PROGRESS"}}` while the job
/// runs; once it ended, Flink's `JobExecutionResult` with the application status and, for a
/// failed job, its root cause with the cause chain.
pub async fn execution_result(ctx: Ctx, path: web::Path<String>) -> Result<HttpResponse, WebError> {
    let (job, v) = view(&ctx, &path)?;
    let s = v.state();
    if !s.status.is_globally_terminal() {
        return Ok(HttpResponse::Ok().json(json!({"status": {"id": "IN_PROGRESS"}})));
    }
    let r = ctx
        .dispatcher
        .send(RequestJobResult { job_id: job })
        .await
        .map_err(|e| WebError::Unavailable(format!("the dispatcher is gone: {e}")))?
        .map_err(dispatcher_error)?;
    let application = match r.status {
        JobStatus::Finished => "SUCCEEDED",
        JobStatus::Canceled => "CANCELED",
        JobStatus::Failed => "FAILED",
        _ => "UNKNOWN",
    };
    let mut result = json!({
        "id": job.to_string(),
        "application-status": application,
        "accumulator-results": {},
        "net-runtime": r.duration.as_millis() as u64,
    });
    if let Some(e) = &r.error {
        let class = e.lines().next().unwrap_or_default();
        result["failure-cause"] = json!({"class": class, "stack-trace": e, "serialized-throwable": ""});
    }
    Ok(HttpResponse::Ok().json(json!({"status": {"id": "COMPLETED"}, "job-execution-result": result})))
}
