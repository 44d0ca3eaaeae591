//! `/jars`: plugin libraries uploaded over REST (Flink's paths and JSON shapes), listed, run
//! and deleted.
//!
//! An upload is stored under a name made of its content's SHA-256 — the client's file name is
//! kept only as a label, never used as a path (CVE-2020-17518's class) — and inspected by
//! the cluster's plugin loader before it is accepted. An id in a later request is looked up
//! in the uploads this server knows: it never becomes a path either.

use std::io::Write;

use actix_multipart::Multipart;
use actix_web::{web, HttpRequest, HttpResponse};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::context::{Jar, RestContext};
use crate::error::WebError;
use crate::params;
use crate::routes::programs::{check, submit, Checked, RunBody};

type Ctx = web::Data<RestContext>;

/// The label of an uploaded file: its base name, if it is a plausible plugin file name.
fn label(filename: &str) -> Result<String, WebError> {
    let base = filename.rsplit(['/', '\\']).next().unwrap_or_default();
    let ok = !base.is_empty()
        && base != "."
        && base != ".."
        && base.len() <= 255
        && !base.chars().any(char::is_control)
        && [".so", ".dylib", ".jar"].iter().any(|ext| base.ends_with(ext));
    if ok {
        Ok(base.to_string())
    } else {
        Err(WebError::BadRequest(format!(
            "'{}' is not accepted as a plugin file name: send one file whose name ends in .so",
            params::printable(filename)
        )))
    }
}

/// `POST /jars/upload`: one multipart file part (any field name), at most
/// `rest.server.max-content-length` bytes.
pub async fn upload(ctx: Ctx, mut payload: Multipart) -> Result<HttpResponse, WebError> {
    let programs = plugin_programs(&ctx)?;
    let limit = ctx.config.max_content_length;
    let mut file: Option<(String, Vec<u8>)> = None;
    while let Some(field) = payload.next().await {
        let mut field = field.map_err(|e| WebError::BadRequest(format!("not a valid multipart upload: {e}")))?;
        let Some(filename) = field.content_disposition().and_then(|d| d.get_filename()).map(str::to_string) else {
            // A non-file field: drain and ignore it.
            while let Some(chunk) = field.next().await {
                chunk.map_err(|e| WebError::BadRequest(format!("not a valid multipart upload: {e}")))?;
            }
            continue;
        };
        if file.is_some() {
            return Err(WebError::BadRequest("send exactly one file per upload".into()));
        }
        let name = label(&filename)?;
        let mut bytes = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(|e| WebError::BadRequest(format!("the upload was cut: {e}")))?;
            if bytes.len() + chunk.len() > limit {
                return Err(WebError::TooLarge(limit));
            }
            bytes.extend_from_slice(&chunk);
        }
        file = Some((name, bytes));
    }
    let (name, bytes) = file.ok_or_else(|| WebError::BadRequest("the upload holds no file".into()))?;
    if bytes.is_empty() {
        return Err(WebError::BadRequest("the uploaded file is empty".into()));
    }
    let digest = Sha256::digest(&bytes);
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    let id = format!("{hex}_{name}");
    let dir = ctx.config.upload_dir.clone();
    let path = dir.join(format!("{hex}.so"));
    let stored = path.clone();
    let entries = web::block(move || -> Result<Vec<(String, String)>, WebError> {
        std::fs::create_dir_all(&dir)
            .map_err(|e| WebError::Unavailable(format!("cannot create the upload directory: {e}")))?;
        if !stored.exists() {
            let tmp = dir.join(format!(".{hex}.so.part"));
            let mut f = std::fs::File::create(&tmp)
                .map_err(|e| WebError::Unavailable(format!("cannot store the upload: {e}")))?;
            f.write_all(&bytes)
                .and_then(|_| f.sync_all())
                .map_err(|e| WebError::Unavailable(format!("cannot store the upload: {e}")))?;
            std::fs::rename(&tmp, &stored)
                .map_err(|e| WebError::Unavailable(format!("cannot store the upload: {e}")))?;
        }
        match programs.inspect(&stored) {
            Ok(entries) => Ok(entries.into_iter().map(|p| (p.name, p.description)).collect()),
            Err(why) => {
                let _ = std::fs::remove_file(&stored);
                Err(why.into())
            }
        }
    })
    .await
    .map_err(|e| WebError::Internal(format!("storing the upload failed: {e}")))??;
    let jar = Jar { name, path: path.clone(), uploaded_ms: riffle_api::time::now_ms(), entries };
    ctx.jars.lock().unwrap_or_else(|e| e.into_inner()).insert(id.clone(), jar);
    tracing::info!("plugin uploaded as {id}");
    Ok(HttpResponse::Ok()
        .json(json!({ "filename": ctx.config.upload_dir.join(&id).display().to_string(), "status": "success" })))
}

/// What loads and builds uploaded plugins.
fn plugin_programs(ctx: &RestContext) -> Result<std::sync::Arc<dyn crate::context::Programs>, WebError> {
    ctx.programs.clone().ok_or_else(|| WebError::NotFound("this cluster takes no plugin uploads".into()))
}

fn jar(ctx: &RestContext, id: &str) -> Result<Jar, WebError> {
    ctx.jars
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(id)
        .cloned()
        .ok_or_else(|| WebError::NotFound(format!("no uploaded plugin '{}'", params::printable(id))))
}

/// `GET /jars`.
pub async fn list(ctx: Ctx, req: HttpRequest) -> HttpResponse {
    let info = req.connection_info();
    let files: Vec<_> = ctx
        .jars
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(id, j)| {
            let entry: Vec<_> = j.entries.iter().map(|(n, d)| json!({"name": n, "description": d})).collect();
            json!({"id": id, "name": j.name, "uploaded": j.uploaded_ms, "entry": entry})
        })
        .collect();
    HttpResponse::Ok().json(json!({ "address": format!("{}://{}", info.scheme(), info.host()), "files": files }))
}

/// Flink's query parameters of `/jars/{id}/run` (the body's fields win).
#[derive(Deserialize)]
pub struct RunQuery {
    #[serde(rename = "entry-class")]
    entry_class: Option<String>,
    #[serde(rename = "programArg")]
    program_arg: Option<String>,
}

/// `POST /jars/{id}/run`: runs one of the plugin's jobs; 200 `{"jobid"}`.
pub async fn run(
    ctx: Ctx,
    path: web::Path<String>,
    q: web::Query<RunQuery>,
    body: web::Bytes,
) -> Result<HttpResponse, WebError> {
    let programs = plugin_programs(&ctx)?;
    let j = jar(&ctx, &path)?;
    let b: RunBody = crate::body::parse(&body)?;
    if b.jar_url.is_some() {
        return Err(WebError::BadRequest(
            "jarUrl names a library to run instead of an upload: send it to POST /jars/run".into(),
        ));
    }
    let library = j.path.display().to_string();
    let entries = j.entries.clone();
    run_library(&ctx, programs, library, move || Ok(entries), &b, &q, &j.name).await
}

/// Longest `jarUrl` accepted.
const MAX_URL: usize = 2048;

/// A `jarUrl`: an `http://`, `https://` or `file://` URL of printable characters.
fn jar_url(url: Option<&str>) -> Result<String, WebError> {
    let url = url.ok_or_else(|| WebError::BadRequest("name the library to run with jarUrl".into()))?;
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    let ok = url.len() <= MAX_URL
        && !url.chars().any(|c| c.is_control() || c.is_whitespace())
        && matches!(scheme.as_deref(), Some("http" | "https" | "file"));
    if ok {
        Ok(url.to_string())
    } else {
        Err(WebError::BadRequest(format!(
            "jarUrl '{}' is not accepted: send an http://, https:// or file:// URL of a plugin library (at most {MAX_URL} characters)",
            params::printable(url)
        )))
    }
}

/// `POST /jars/run`: runs a job of the plugin library at the body's `jarUrl` without an upload
/// (the rest of the body and the query as for `/jars/{id}/run`); 200 `{"jobid"}`. The library
/// is fetched (once: the cluster caches it by URL and content) and the cluster's TaskManagers
/// fetch it from the same URL.
pub async fn run_url(ctx: Ctx, q: web::Query<RunQuery>, body: web::Bytes) -> Result<HttpResponse, WebError> {
    let programs = plugin_programs(&ctx)?;
    let b: RunBody = crate::body::parse(&body)?;
    let url = jar_url(b.jar_url.as_deref())?;
    let inspecting = programs.clone();
    let library = url.clone();
    let entries = move || -> Result<Vec<(String, String)>, WebError> {
        let jobs = inspecting.inspect(std::path::Path::new(&library))?;
        Ok(jobs.into_iter().map(|p| (p.name, p.description)).collect())
    };
    run_library(&ctx, programs, url.clone(), entries, &b, &q, &url).await
}

/// Runs job `entryClass` (or the only job) of `library`; `entries` lists its jobs when the body
/// names none.
async fn run_library(
    ctx: &RestContext,
    programs: std::sync::Arc<dyn crate::context::Programs>,
    library: String,
    entries: impl FnOnce() -> Result<Vec<(String, String)>, WebError> + Send + 'static,
    b: &RunBody,
    q: &RunQuery,
    name: &str,
) -> Result<HttpResponse, WebError> {
    if b.parallelism.is_some() {
        return Err(WebError::BadRequest("a plugin's job sets its own parallelism: leave parallelism out".into()));
    }
    let Some(Checked { mut args, job }) = check(ctx, b)? else {
        let id = b.job_id_text().to_ascii_lowercase();
        return Ok(HttpResponse::Ok().json(json!({ "jobid": id })));
    };
    if args.is_empty() {
        if let Some(a) = &q.program_arg {
            args = a.split(',').map(str::to_string).collect();
        }
    }
    let named = b.entry_class.clone().or_else(|| q.entry_class.clone());
    let (config, warnings) = super::programs::job_config(ctx, b)?;
    let graph = web::block(move || -> Result<(String, riffle_api::JobGraph), WebError> {
        let entry = match named {
            Some(e) => e,
            None => {
                let entries = entries()?;
                match entries.as_slice() {
                    [(only, _)] => only.clone(),
                    _ => {
                        let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
                        return Err(WebError::BadRequest(format!(
                            "name the job to run with entryClass: one of {}",
                            names.join(", ")
                        )));
                    }
                }
            }
        };
        let origin = riffle_api::JobOrigin::plugin(&library, &entry, &args).with_config(config);
        Ok((entry, programs.build(&origin)?))
    })
    .await
    .map_err(|e| WebError::Internal(format!("building the job failed: {e}")))?;
    let (entry, graph) = graph?;
    submit(ctx, job, graph, &format!("{} of {}", entry, params::printable(name)), &warnings).await
}

/// `DELETE /jars/{id}`: forgets the upload and deletes its file (jobs running from it go on:
/// the library stays loaded).
pub async fn delete(ctx: Ctx, path: web::Path<String>) -> Result<HttpResponse, WebError> {
    let removed = ctx.jars.lock().unwrap_or_else(|e| e.into_inner()).remove(path.as_str());
    let j = removed.ok_or_else(|| WebError::NotFound(format!("no uploaded plugin '{}'", params::printable(&path))))?;
    let still_used = ctx.jars.lock().unwrap_or_else(|e| e.into_inner()).values().any(|o| o.path == j.path);
    if !still_used {
        let _ = std::fs::remove_file(&j.path);
    }
    Ok(HttpResponse::Ok().json(json!({})))
}

#[cfg(test)]
mod tests {
    #[test]
    fn file_names_become_labels_only() {
        assert_eq!(super::label("libjobs.so").unwrap(), "libjobs.so");
        assert_eq!(super::label("../../../../tmp/evil.so").unwrap(), "evil.so");
        assert_eq!(super::label("C:\\x\\jobs.so").unwrap(), "jobs.so");
        for bad in ["", "..", "jobs.txt", "a/b/", "evil\n.so"] {
            assert!(super::label(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn jar_urls_are_http_https_or_file_urls() {
        for ok in ["http://h:1/x.so", "HTTPS://h/x.so", "file:///srv/jobs/"] {
            assert_eq!(super::jar_url(Some(ok)).unwrap(), ok);
        }
        for bad in [None, Some("x.so"), Some("s3://b/x.so"), Some("http://h/a b.so"), Some("http://h/\n")] {
            assert!(super::jar_url(bad).is_err(), "{bad:?}");
        }
        assert!(super::jar_url(Some(&format!("http://h/{}", "x".repeat(3000)))).is_err());
    }
}
