//! `/programs`: the built-in jobs a user can submit by name, with arguments, parallelism,
//! a savepoint to start from and configuration overrides.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::{web, HttpResponse};
use riffle_actors::dispatcher::{DispatcherError, SubmitJob};
use riffle_actors::JobId;
use serde::Deserialize;
use serde_json::json;

use crate::context::RestContext;
use crate::error::WebError;
use crate::params;
use crate::routes::jobs::dispatcher_error;

type Ctx = web::Data<RestContext>;

/// `GET /programs`.
pub async fn list(ctx: Ctx) -> HttpResponse {
    let programs = ctx.programs.as_ref().map(|p| p.list()).unwrap_or_default();
    HttpResponse::Ok().json(json!({ "programs": programs }))
}

/// Body of `POST /programs/{name}/run`, shaped like Flink's `/jars/{id}/run`.
#[derive(Deserialize, Default)]
pub struct RunBody {
    #[serde(rename = "programArgsList", default)]
    program_args_list: Vec<String>,
    #[serde(rename = "programArgs")]
    program_args: Option<String>,
    pub(crate) parallelism: Option<u32>,
    #[serde(rename = "savepointPath")]
    savepoint_path: Option<String>,
    #[serde(rename = "allowNonRestoredState", default)]
    allow_non_restored_state: bool,
    #[serde(rename = "jobId")]
    job_id: Option<String>,
    #[serde(rename = "flinkConfiguration", default)]
    flink_configuration: BTreeMap<String, String>,
    /// `/jars/{id}/run`: which of the plugin's jobs.
    #[serde(rename = "entryClass")]
    pub(crate) entry_class: Option<String>,
    /// `/jars/run`: the remote library (`http://`, `https://` or `file://` URL) to run a job of,
    /// instead of an upload.
    #[serde(rename = "jarUrl")]
    pub(crate) jar_url: Option<String>,
}

/// Largest number of arguments accepted.
const MAX_ARGS: usize = 256;

impl RunBody {
    /// The client's job id as sent (empty when none).
    pub fn job_id_text(&self) -> String {
        self.job_id.clone().unwrap_or_default()
    }
}

/// A submission's arguments and job id, checked.
pub struct Checked {
    /// The job's arguments.
    pub args: Vec<String>,
    /// The job id to use.
    pub job: JobId,
}

/// Checks what every submission carries; `Ok(None)` when the job id names a job that exists
/// already (a client's retry: answer with it, start nothing).
pub fn check(ctx: &RestContext, b: &RunBody) -> Result<Option<Checked>, WebError> {
    if !ctx.config.web_submit {
        return Err(WebError::Conflict(
            "submission through the REST API is disabled (web.submit.enable: false)".into(),
        ));
    }
    let mut args = b.program_args_list.clone();
    if let Some(a) = &b.program_args {
        args.extend(a.split_whitespace().map(str::to_string));
    }
    if args.len() > MAX_ARGS {
        return Err(WebError::BadRequest(format!("at most {MAX_ARGS} program arguments are accepted")));
    }
    if b.parallelism == Some(0) {
        return Err(WebError::BadRequest("parallelism must be at least 1".into()));
    }
    let job = match &b.job_id {
        Some(id) => params::job_id(id)?,
        None => JobId::generate(),
    };
    if ctx.jobs.view(job).is_some() {
        return Ok(None);
    }
    Ok(Some(Checked { args, job }))
}

/// The job's own options a submission gives: `flinkConfiguration`, the savepoint to resume
/// from (it must exist) and whether its unclaimed state may be ignored. They go into the job's
/// origin, so every process that builds the job has them.
///
/// `flinkConfiguration` is checked before anything starts, as the CLI checks a file: a key
/// close to a known one (a typo) or a value its option cannot parse is a 400 naming it; a key
/// nothing like a known one comes back as a warning (riffle ignores it); the job's restart
/// strategy and checkpointing, over the cluster's configuration, must be valid.
pub fn job_config(ctx: &RestContext, b: &RunBody) -> Result<(riffle_api::Configuration, Vec<String>), WebError> {
    let mut config = riffle_api::Configuration::new();
    for (k, v) in &b.flink_configuration {
        config.set(k.as_str(), v.as_str());
    }
    let warnings = check_config(ctx, &config)?;
    if let Some(p) = &b.savepoint_path {
        let p = p.strip_prefix("file://").unwrap_or(p);
        if !std::path::Path::new(p).exists() {
            return Err(WebError::BadRequest(format!("no savepoint or checkpoint at '{}'", params::printable(p))));
        }
        config.set("execution.savepoint.path", p);
    }
    if b.allow_non_restored_state {
        config.set("execution.savepoint.ignore-unclaimed-state", "true");
    }
    Ok((config, warnings))
}

/// The warnings of a job's own configuration, or why it is refused (see [`job_config`]).
fn check_config(ctx: &RestContext, config: &riffle_api::Configuration) -> Result<Vec<String>, WebError> {
    let mut warnings = Vec::new();
    if let Some(registry) = &ctx.config_registry {
        let review = registry.review(config);
        if !review.refused.is_empty() {
            return Err(WebError::BadRequest(format!("flinkConfiguration: {}", review.refused.join("; "))));
        }
        warnings = review.warnings;
    }
    let mut merged = ctx.cluster_config.clone();
    merged.merge(config);
    let refused = |e: riffle_api::ConfigError| WebError::BadRequest(format!("flinkConfiguration: {e}"));
    riffle_actors::restart_strategy::RestartStrategy::from_config(&merged).map_err(refused)?;
    riffle_actors::checkpoint_coordinator::CheckpointSettings::from_config(&merged).map_err(refused)?;
    Ok(warnings)
}

/// Submits `graph` as `job`: 200 `{"jobid"}`, with `"warnings"` about its configuration when
/// there are any.
pub async fn submit(
    ctx: &RestContext,
    job: JobId,
    graph: riffle_api::JobGraph,
    what: &str,
    warnings: &[String],
) -> Result<HttpResponse, WebError> {
    let r = ctx
        .dispatcher
        .send(SubmitJob { job_id: job, graph: Arc::new(graph) })
        .await
        .map_err(|e| WebError::Unavailable(format!("the dispatcher is gone: {e}")))?;
    match r {
        Ok(()) => tracing::info!(job = %job, "job {what} submitted over REST"),
        // The same id submitted concurrently: that submission's job is the answer.
        Err(DispatcherError::Duplicate(_)) => {}
        Err(e) => return Err(dispatcher_error(e)),
    }
    let mut body = json!({ "jobid": job.to_string() });
    if !warnings.is_empty() {
        body["warnings"] = json!(warnings);
    }
    Ok(HttpResponse::Ok().json(body))
}

/// `POST /programs/{name}/run`: 200 `{"jobid"}`; the same `jobId` again returns that job.
pub async fn run(ctx: Ctx, path: web::Path<String>, body: web::Bytes) -> Result<HttpResponse, WebError> {
    let b: RunBody = crate::body::parse(&body)?;
    let Some(Checked { args, job }) = check(&ctx, &b)? else {
        let id = b.job_id_text().to_ascii_lowercase();
        return Ok(HttpResponse::Ok().json(json!({ "jobid": id })));
    };
    let name = path.into_inner();
    let programs = ctx.programs.clone().filter(|p| !p.list().is_empty());
    let programs = programs.ok_or_else(|| WebError::NotFound("this cluster has no programs to submit".into()))?;
    if !programs.list().iter().any(|p| p.name == name) {
        return Err(WebError::NotFound(format!("no program named '{}'", params::printable(&name))));
    }
    let (config, warnings) = job_config(&ctx, &b)?;
    let origin = riffle_api::JobOrigin::builtin(&name, &args, b.parallelism).with_config(config);
    let graph = web::block(move || programs.build(&origin))
        .await
        .map_err(|e| WebError::Internal(format!("building the job failed: {e}")))??;
    submit(&ctx, job, graph, &name, &warnings).await
}
