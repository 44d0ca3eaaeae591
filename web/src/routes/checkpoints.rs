//! `/jobs/{id}/checkpoints...`: statistics, configuration, one checkpoint's details.

use actix_web::{web, HttpResponse};
use riffle_actors::checkpoint_history::{CheckpointRecord, CheckpointStatus};
use serde_json::{json, Map, Value};

use crate::context::RestContext;
use crate::error::WebError;
use crate::params;
use crate::routes::jobs::view;
use riffle_actors::job_view::JobView;

type Ctx = web::Data<RestContext>;

fn class_of(status: CheckpointStatus) -> &'static str {
    match status {
        CheckpointStatus::Completed => "completed",
        CheckpointStatus::Failed => "failed",
        CheckpointStatus::InProgress => "in_progress",
    }
}

/// One vertex's part of checkpoint `r` (Flink's `TaskCheckpointStatistics`); `parallelism`
/// is its number of subtasks.
fn task_statistics(job: riffle_actors::JobId, r: &CheckpointRecord, vertex: u32, parallelism: u32) -> Value {
    let t = r.vertices.get(&vertex).cloned().unwrap_or_default();
    let status = if t.acknowledged >= parallelism { CheckpointStatus::Completed } else { r.status };
    json!({
        "id": params::vertex_id(job, vertex),
        "status": status.as_str(),
        "latest_ack_timestamp": if t.acknowledged > 0 { t.latest_ack_ms } else { -1 },
        "state_size": t.state_size,
        "checkpointed_size": t.state_size,
        "end_to_end_duration": if t.acknowledged > 0 { (t.latest_ack_ms - r.trigger_ms).max(0) } else { -1 },
        "alignment_buffered": 0,
        "processed_data": 0,
        "persisted_data": t.persisted_data,
        "num_subtasks": parallelism,
        "num_acknowledged_subtasks": t.acknowledged,
    })
}

fn record(job: riffle_actors::JobId, r: &CheckpointRecord, view: Option<&JobView>) -> Value {
    let class = class_of(r.status);
    let mut tasks = Map::new();
    if let Some(v) = view {
        for x in &v.vertices {
            tasks.insert(params::vertex_id(job, x.index), task_statistics(job, r, x.index, x.parallelism));
        }
    }
    let mut m = json!({
        "@class": class,
        "id": r.id,
        "status": r.status.as_str(),
        "is_savepoint": r.is_savepoint,
        "savepointFormat": if r.is_savepoint { json!("CANONICAL") } else { Value::Null },
        "checkpoint_type": if r.is_savepoint { "SAVEPOINT" } else { "CHECKPOINT" },
        "trigger_timestamp": r.trigger_ms,
        "latest_ack_timestamp": r.latest_ack_ms,
        "state_size": r.state_size,
        "checkpointed_size": r.state_size,
        "end_to_end_duration": r.duration_ms(),
        "alignment_buffered": 0,
        "processed_data": 0,
        "persisted_data": r.persisted_data,
        "num_subtasks": r.num_subtasks,
        "num_acknowledged_subtasks": r.num_acknowledged,
        "sync_duration": r.sync_ms,
        "async_duration": r.async_ms,
        "tasks": tasks,
    });
    match r.status {
        CheckpointStatus::Completed => {
            m["external_path"] = json!(r.external_path.clone().unwrap_or_else(|| "<in memory>".into()));
            m["discarded"] = json!(false);
        }
        CheckpointStatus::Failed => {
            m["failure_timestamp"] = json!(r.end_ms);
            m["failure_message"] = json!(r.failure_message);
        }
        CheckpointStatus::InProgress => {}
    }
    m
}

fn summary(values: impl Iterator<Item = u64> + Clone) -> Value {
    let n = values.clone().count() as u64;
    if n == 0 {
        return json!({"min": 0, "max": 0, "avg": 0});
    }
    let min = values.clone().min().unwrap_or(0);
    let max = values.clone().max().unwrap_or(0);
    let sum: u64 = values.sum();
    json!({"min": min, "max": max, "avg": sum / n})
}

fn stats(
    ctx: &RestContext,
    id: &str,
) -> Result<(riffle_actors::JobId, std::sync::Arc<riffle_actors::checkpoint_coordinator::CheckpointStats>), WebError> {
    let (job, _) = view(ctx, id)?;
    let stats = ctx.jobs.checkpoint_stats.get(&job).map(|s| s.clone());
    match stats {
        // Checkpointing is on (an interval), or a savepoint was taken without it.
        Some(s) if s.settings().is_some_and(|c| c.interval.is_some()) || s.with_history(|h| h.counts().total) > 0 => {
            Ok((job, s))
        }
        _ => {
            Err(WebError::NotFound(format!("job {job} has no checkpoint statistics: checkpointing is not configured")))
        }
    }
}

/// `GET /jobs/{id}/checkpoints`.
pub async fn statistics(ctx: Ctx, path: web::Path<String>) -> Result<HttpResponse, WebError> {
    let (job, s) = stats(&ctx, &path)?;
    let h = s.with_history(|h| h.view());
    let completed = h.history.iter().filter(|r| r.status == CheckpointStatus::Completed);
    let restored = h.restored.as_ref().map(|r| {
        json!({"id": r.id, "restore_timestamp": r.restore_ms, "is_savepoint": r.is_savepoint, "external_path": r.external_path})
    });
    Ok(HttpResponse::Ok().json(json!({
        "counts": {
            "restored": h.counts.restored,
            "total": h.counts.total,
            "in_progress": h.counts.in_progress,
            "completed": h.counts.completed,
            "failed": h.counts.failed,
        },
        "summary": {
            "state_size": summary(completed.clone().map(|r| r.state_size)),
            "checkpointed_size": summary(completed.clone().map(|r| r.state_size)),
            "end_to_end_duration": summary(completed.clone().map(|r| r.duration_ms() as u64)),
            "alignment_buffered": summary(std::iter::empty::<u64>()),
            "processed_data": summary(std::iter::empty::<u64>()),
            "persisted_data": summary(completed.map(|r| r.persisted_data)),
        },
        "latest": {
            "completed": h.latest_completed.as_ref().filter(|r| !r.is_savepoint).map(|r| record(job, r, None)),
            "savepoint": h.latest_savepoint.as_ref().map(|r| record(job, r, None)),
            "failed": h.latest_failed.as_ref().map(|r| record(job, r, None)),
            "restored": restored,
        },
        "history": h.history.iter().map(|r| record(job, r, None)).collect::<Vec<_>>(),
    })))
}

/// `GET /jobs/{id}/checkpoints/config`.
pub async fn config(ctx: Ctx, path: web::Path<String>) -> Result<HttpResponse, WebError> {
    let (job, s) = stats(&ctx, &path)?;
    let c = s.settings().ok_or_else(|| WebError::NotFound(format!("job {job}: checkpointing is not configured")))?;
    let Some(interval) = c.interval else {
        return Err(WebError::NotFound(format!("job {job}: periodic checkpoints are not enabled")));
    };
    use riffle_actors::checkpoint_coordinator::Retention;
    let backend = ctx.cluster_config.get(&riffle_actors::state_backend::STATE_BACKEND).unwrap_or_default();
    Ok(HttpResponse::Ok().json(json!({
        "mode": if c.aligned { "exactly_once" } else { "at_least_once" },
        "interval": interval.as_millis() as u64,
        "timeout": c.timeout.as_millis() as u64,
        "min_pause": c.min_pause.as_millis() as u64,
        "max_concurrent": c.max_concurrent,
        "externalization": {
            "enabled": c.retention != Retention::None,
            "delete_on_cancellation": c.retention != Retention::RetainOnCancellation,
        },
        "state_backend": backend,
        "checkpoint_storage": if c.dir.is_some() { "FileSystemCheckpointStorage" } else { "JobManagerCheckpointStorage" },
        "unaligned_checkpoints": c.unaligned,
        "tolerable_failed_checkpoints": 0,
    })))
}

/// The record of checkpoint `cid` of the job a path names, with the job's view (404: an
/// unknown job, a job without checkpoints, a checkpoint no longer in the history).
fn checkpoint(
    ctx: &RestContext,
    id: &str,
    cid: &str,
) -> Result<(riffle_actors::JobId, std::sync::Arc<JobView>, CheckpointRecord), WebError> {
    let (job, s) = stats(ctx, id)?;
    let (_, v) = view(ctx, id)?;
    let cid = params::number(cid, "checkpoint id")?;
    let h = s.with_history(|h| h.view());
    let r = h.history.into_iter().find(|r| r.id == cid).ok_or_else(|| {
        WebError::NotFound(format!("checkpoint {cid} of job {job} is not in the history (web.checkpoints.history)"))
    })?;
    Ok((job, v, r))
}

/// `GET /jobs/{id}/checkpoints/details/{cid}`: one checkpoint with its per-vertex parts.
pub async fn details(ctx: Ctx, path: web::Path<(String, String)>) -> Result<HttpResponse, WebError> {
    let (id, cid) = path.into_inner();
    let (job, v, r) = checkpoint(&ctx, &id, &cid)?;
    Ok(HttpResponse::Ok().json(record(job, &r, Some(&v))))
}

/// `GET /jobs/{id}/checkpoints/details/{cid}/subtasks/{vid}`: one vertex's part of a
/// checkpoint subtask by subtask (Flink's `TaskCheckpointStatisticsWithSubtaskDetails`): each
/// acknowledgement's time, end-to-end duration, synchronous and asynchronous parts,
/// persisted in-flight data and state size, with min/max/avg over the subtasks. A subtask
/// that has not acknowledged is `pending_or_failed`.
pub async fn subtasks(ctx: Ctx, path: web::Path<(String, String, String)>) -> Result<HttpResponse, WebError> {
    let (id, cid, vid) = path.into_inner();
    let (job, v, r) = checkpoint(&ctx, &id, &cid)?;
    let index = params::vertex_index(job, &vid)?;
    let x = v
        .vertices
        .get(index as usize)
        .ok_or_else(|| WebError::NotFound(format!("job {job} has no vertex {}", params::printable(&vid))))?;
    let t = r.vertices.get(&index).cloned().unwrap_or_default();
    let subtasks: Vec<Value> = (0..x.parallelism)
        .map(|i| match t.subtasks.get(&i) {
            Some(a) => json!({
                "@class": "completed",
                "index": i,
                "status": "completed",
                "ack_timestamp": a.ack_ms,
                "end_to_end_duration": (a.ack_ms - r.trigger_ms).max(0),
                "state_size": a.state_size,
                "checkpointed_size": a.state_size,
                "checkpoint": {"sync": a.sync_ms, "async": a.async_ms},
                "alignment": {"buffered": 0, "processed": 0, "persisted": a.persisted_data, "duration": a.alignment_ms},
                "start_delay": 0,
                "unaligned_checkpoint": a.persisted_data > 0,
                "aborted": false,
            }),
            None => json!({"@class": "pending", "index": i, "status": "pending_or_failed"}),
        })
        .collect();
    let acks: Vec<_> = t.subtasks.values().copied().collect();
    let of = |f: &dyn Fn(&riffle_actors::checkpoint_history::SubtaskCheckpoint) -> u64| {
        summary(acks.iter().map(f).collect::<Vec<_>>().into_iter())
    };
    let mut body = task_statistics(job, &r, index, x.parallelism);
    body["summary"] = json!({
        "state_size": of(&|a| a.state_size),
        "checkpointed_size": of(&|a| a.state_size),
        "end_to_end_duration": of(&|a| (a.ack_ms - r.trigger_ms).max(0) as u64),
        "checkpoint_duration": {"sync": of(&|a| a.sync_ms), "async": of(&|a| a.async_ms)},
        "alignment": {
            "buffered": of(&|_| 0),
            "processed": of(&|_| 0),
            "persisted": of(&|a| a.persisted_data),
            "duration": of(&|a| a.alignment_ms),
        },
        "start_delay": of(&|_| 0),
    });
    body["subtasks"] = json!(subtasks);
    Ok(HttpResponse::Ok().json(body))
}
