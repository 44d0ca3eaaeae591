//! Savepoints and stop-with-savepoint as Flink's asynchronous operations: the trigger answers
//! 202 with a request id at once, the client polls the operation.

use std::path::PathBuf;

use actix_web::{web, HttpResponse};
use riffle_actors::job_master::{AfterSavepoint, SavepointRequest};
use riffle_actors::JobId;
use serde::Deserialize;
use serde_json::json;

use crate::context::{Operation, RestContext};
use crate::error::WebError;
use crate::params;
use crate::routes::jobs::view;

type Ctx = web::Data<RestContext>;

/// Body of `POST /jobs/{id}/savepoints` (kebab-case, as Flink's).
#[derive(Deserialize, Default)]
pub struct SavepointBody {
    #[serde(rename = "target-directory")]
    target_directory: Option<String>,
    #[serde(rename = "cancel-job", default)]
    cancel_job: bool,
    /// Flink 1.15+: only the canonical format exists in riffle.
    #[serde(rename = "formatType")]
    format_type: Option<String>,
    /// Flink 1.17+: a client-chosen trigger id makes retries idempotent.
    #[serde(rename = "triggerId")]
    trigger_id: Option<String>,
}

/// Body of `POST /jobs/{id}/stop` (camelCase, as Flink's).
#[derive(Deserialize, Default)]
pub struct StopBody {
    #[serde(rename = "targetDirectory")]
    target_directory: Option<String>,
    #[serde(default)]
    drain: bool,
    #[serde(rename = "formatType")]
    format_type: Option<String>,
    #[serde(rename = "triggerId")]
    trigger_id: Option<String>,
}

fn check_format(f: &Option<String>) -> Result<(), WebError> {
    match f.as_deref() {
        None | Some("CANONICAL") | Some("DEFAULT") => Ok(()),
        Some(other) => Err(WebError::BadRequest(format!(
            "savepoint format '{}' is not supported: riffle writes CANONICAL savepoints",
            params::printable(other)
        ))),
    }
}

fn target(dir: Option<String>) -> Result<Option<PathBuf>, WebError> {
    match dir {
        None => Ok(None),
        Some(d) if d.trim().is_empty() => Ok(None),
        Some(d) => {
            if d.contains('\0') {
                return Err(WebError::BadRequest("the target directory contains a NUL byte".into()));
            }
            let d = d.strip_prefix("file://").unwrap_or(&d).to_string();
            if !d.starts_with('/') {
                return Err(WebError::BadRequest(format!(
                    "the target directory must be an absolute path, got '{}'",
                    params::printable(&d)
                )));
            }
            Ok(Some(PathBuf::from(d)))
        }
    }
}

fn start(
    ctx: &Ctx,
    job: JobId,
    trigger: Option<String>,
    dir: Option<PathBuf>,
    then: AfterSavepoint,
) -> Result<HttpResponse, WebError> {
    let trigger = match trigger {
        Some(t) => params::trigger_id(&t)?,
        None => JobId::generate().to_string(),
    };
    if ctx.operation(job, &trigger).is_some() {
        // A retry of a trigger we already have: same answer, no second savepoint.
        return Ok(HttpResponse::Accepted().json(json!({ "request-id": trigger })));
    }
    let jm = ctx
        .directory
        .job_masters
        .get(&job)
        .map(|a| a.clone())
        .ok_or_else(|| WebError::Conflict(format!("job {job} is not running: no savepoint can be taken")))?;
    ctx.set_operation(job, &trigger, Operation::InProgress);
    let c = ctx.clone();
    let t = trigger.clone();
    actix_web::rt::spawn(async move {
        let r = match jm.send(SavepointRequest { target: dir, then }).await {
            Ok(r) => r.map(|p| p.display().to_string()),
            Err(e) => Err(riffle_actors::RuntimeError::Unavailable(format!(
                "the job ended before the savepoint completed: {e}"
            ))),
        };
        match &r {
            Ok(p) => tracing::info!(job = %job, "savepoint completed at {p}"),
            Err(e) => tracing::warn!(job = %job, "savepoint failed: {e}"),
        }
        c.set_operation(job, &t, Operation::Done(r));
    });
    Ok(HttpResponse::Accepted().json(json!({ "request-id": trigger })))
}

/// `POST /jobs/{id}/savepoints`.
pub async fn trigger(ctx: Ctx, path: web::Path<String>, body: web::Bytes) -> Result<HttpResponse, WebError> {
    let (job, _) = view(&ctx, &path)?;
    let b: SavepointBody = crate::body::parse(&body)?;
    check_format(&b.format_type)?;
    let then = if b.cancel_job { AfterSavepoint::Cancel } else { AfterSavepoint::Continue };
    start(&ctx, job, b.trigger_id, target(b.target_directory)?, then)
}

/// `POST /jobs/{id}/stop`: stop with a savepoint; the job ends FINISHED. With `drain: true`
/// the sources end their input after the savepoint's barrier (a final watermark: windows
/// fire, everything in flight is processed); with `drain: false` (Flink's default) every
/// subtask is stopped where it is right after the savepoint, without a final watermark.
pub async fn stop(ctx: Ctx, path: web::Path<String>, body: web::Bytes) -> Result<HttpResponse, WebError> {
    let (job, _) = view(&ctx, &path)?;
    let b: StopBody = crate::body::parse(&body)?;
    check_format(&b.format_type)?;
    let then = if b.drain { AfterSavepoint::Stop } else { AfterSavepoint::StopWithoutDrain };
    start(&ctx, job, b.trigger_id, target(b.target_directory)?, then)
}

/// `GET /jobs/{id}/savepoints/{trigger}`.
pub async fn status(ctx: Ctx, path: web::Path<(String, String)>) -> Result<HttpResponse, WebError> {
    let (id, trigger) = path.into_inner();
    let job = params::job_id(&id)?;
    let trigger = params::trigger_id(&trigger)?;
    let op = ctx
        .operation(job, &trigger)
        .ok_or_else(|| WebError::NotFound(format!("no savepoint operation {trigger} for job {job}")))?;
    Ok(HttpResponse::Ok().json(match op {
        Operation::InProgress => json!({"status": {"id": "IN_PROGRESS"}, "operation": null}),
        Operation::Done(Ok(location)) => {
            json!({"status": {"id": "COMPLETED"}, "operation": {"location": format!("file:{location}")}})
        }
        Operation::Done(Err(why)) => json!({
            "status": {"id": "COMPLETED"},
            "operation": {"failure-cause": {"class": "riffle.SavepointException", "stack-trace": why.chain().join("\n"), "serialized-throwable": ""}},
        }),
    }))
}
