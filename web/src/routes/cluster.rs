//! `/config`, `/overview`, `/jobmanager/config`, `/metrics`.

use std::sync::atomic::Ordering;

use actix_web::{web, HttpResponse};
use riffle_actors::JobStatus;
use serde_json::json;

use crate::context::RestContext;
use crate::error::WebError;

type Ctx = web::Data<RestContext>;

/// The Flink version whose REST API riffle speaks (clients check it).
pub const FLINK_API_VERSION: &str = "1.11.0";

/// riffle's own version.
pub const RIFFLE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// `GET /config`: what the web UI needs to know.
pub async fn config(ctx: Ctx) -> HttpResponse {
    // Submission by name: only with programs to submit.
    let web_submit = ctx.config.web_submit && ctx.programs.as_ref().is_some_and(|p| !p.list().is_empty());
    HttpResponse::Ok().json(json!({
        "refresh-interval": ctx.config.refresh_interval_ms,
        "timezone-name": "Coordinated Universal Time",
        "timezone-offset": 0,
        "flink-version": FLINK_API_VERSION,
        "flink-revision": format!("riffle {RIFFLE_VERSION}"),
        "riffle-version": RIFFLE_VERSION,
        "features": { "web-submit": web_submit, "web-cancel": true },
    }))
}

/// `GET /overview`.
pub async fn overview(ctx: Ctx) -> HttpResponse {
    let by = |s: JobStatus| ctx.jobs.views.iter().filter(|v| v.state().status == s).count();
    let running = ctx.jobs.views.iter().filter(|v| !v.state().status.is_terminal()).count();
    let (finished, cancelled, failed) = (by(JobStatus::Finished), by(JobStatus::Canceled), by(JobStatus::Failed));
    HttpResponse::Ok().json(json!({
        "taskmanagers": ctx.directory.task_executors.len(),
        "slots-total": ctx.directory.slots.total.load(Ordering::Relaxed),
        "slots-available": ctx.directory.slots.free.load(Ordering::Relaxed),
        "jobs-running": running,
        "jobs-finished": finished,
        "jobs-cancelled": cancelled,
        "jobs-failed": failed,
        "flink-version": FLINK_API_VERSION,
        "flink-commit": format!("riffle {RIFFLE_VERSION}"),
        "riffle-version": RIFFLE_VERSION,
    }))
}

/// Whether a configuration key's value must not be shown.
pub fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["password", "secret", "token", "credential", "key-store", "keystore"].iter().any(|s| k.contains(s))
        || k.ends_with(".key")
}

/// `GET /jobmanager/config`: the cluster configuration, secrets masked.
pub async fn jobmanager_config(ctx: Ctx) -> HttpResponse {
    let mut entries: Vec<(String, String)> = ctx
        .cluster_config
        .entries()
        .map(|(k, v)| (k.to_string(), if is_secret(k) { "******".to_string() } else { v.to_string() }))
        .collect();
    entries.sort();
    let body: Vec<_> = entries.into_iter().map(|(k, v)| json!({"key": k, "value": v})).collect();
    HttpResponse::Ok().json(body)
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(ctx: Ctx) -> Result<HttpResponse, WebError> {
    let text = ctx.metrics.render()?;
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(text))
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_are_recognised() {
        for k in ["rest.auth.token", "s3.secret-key", "db.password", "security.ssl.rest.key"] {
            assert!(super::is_secret(k), "{k}");
        }
        for k in ["rest.port", "state.backend", "taskmanager.numberOfTaskSlots"] {
            assert!(!super::is_secret(k), "{k}");
        }
    }
}
