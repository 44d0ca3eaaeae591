//! Log files (FLIP-103): every regular file of `log.dir`, listed with size and modification
//! time, each served by name with ranges, streamed from disk.
//!
//! A requested name is served only if it is exactly the name of a regular file in the
//! directory's current listing: no path is ever built from what a client sent, so no
//! encoding of `..` or `/` can reach another file (CVE-2020-17519's class), and symbolic
//! links are not followed.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use actix_files::NamedFile;
use actix_web::http::header::{ContentDisposition, DispositionParam, DispositionType};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::context::RestContext;
use crate::error::WebError;
use crate::params;

type Ctx = web::Data<RestContext>;

/// One file of the log directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFile {
    /// Its name (no directory).
    pub name: String,
    /// Its size, bytes.
    pub size: u64,
    /// Its modification time, epoch ms.
    pub mtime_ms: i64,
}

/// The regular files of `dir` (symbolic links and directories left out), by name.
pub fn list(dir: &Path) -> Result<Vec<LogFile>, WebError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| WebError::Unavailable(format!("cannot list the log directory {}: {e}", dir.display())))?;
    let mut out = Vec::new();
    for e in entries.flatten() {
        let Ok(meta) = std::fs::symlink_metadata(e.path()) else { continue };
        if !meta.file_type().is_file() {
            continue;
        }
        let Some(name) = e.file_name().to_str().map(str::to_string) else { continue };
        let mtime_ms =
            meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_millis() as i64);
        out.push(LogFile { name, size: meta.len(), mtime_ms });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The path of log file `name` if it is one of `dir`'s regular files, else 404.
pub fn resolve(dir: &Path, name: &str) -> Result<PathBuf, WebError> {
    let not_found = || WebError::NotFound(format!("no log file named '{}'", params::printable(name)));
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
        return Err(not_found());
    }
    if !list(dir)?.iter().any(|f| f.name == name) {
        return Err(not_found());
    }
    let path = dir.join(name);
    // The listing said it is a regular file in `dir`; check again where it really is.
    let canonical_dir = dir.canonicalize().map_err(|_| not_found())?;
    let canonical = path.canonicalize().map_err(|_| not_found())?;
    if canonical.parent() != Some(canonical_dir.as_path()) {
        return Err(not_found());
    }
    Ok(canonical)
}

fn log_dir(ctx: &RestContext) -> Option<&Path> {
    ctx.config.log_dir.as_deref()
}

fn listing(ctx: &RestContext) -> Result<HttpResponse, WebError> {
    let files = match log_dir(ctx) {
        Some(d) => list(d)?,
        None => vec![],
    };
    let logs: Vec<_> = files.iter().map(|f| json!({"name": f.name, "size": f.size, "mtime": f.mtime_ms})).collect();
    Ok(HttpResponse::Ok().json(json!({ "logs": logs })))
}

/// Query of a log file request.
#[derive(Deserialize)]
pub struct FileQuery {
    download: Option<String>,
}

async fn serve(ctx: &RestContext, name: &str, q: &FileQuery, req: &HttpRequest) -> Result<HttpResponse, WebError> {
    let dir = log_dir(ctx).ok_or_else(|| WebError::NotFound("no log directory is configured (log.dir)".into()))?;
    let path = resolve(dir, name)?;
    let file = NamedFile::open_async(&path)
        .await
        .map_err(|e| WebError::NotFound(format!("cannot open log file '{}': {e}", params::printable(name))))?;
    let download = matches!(q.download.as_deref(), Some("true") | Some("1"));
    let disposition = ContentDisposition {
        disposition: if download { DispositionType::Attachment } else { DispositionType::Inline },
        parameters: vec![DispositionParam::Filename(name.to_string())],
    };
    let file = file
        .set_content_type("text/plain; charset=utf-8".parse().map_err(|_| WebError::Internal("mime".into()))?)
        .set_content_disposition(disposition)
        .use_etag(false);
    Ok(file.into_response(req))
}

/// `GET /jobmanager/logs`.
pub async fn jobmanager_list(ctx: Ctx) -> Result<HttpResponse, WebError> {
    listing(&ctx)
}

/// `GET /jobmanager/logs/{name}`.
pub async fn jobmanager_file(
    ctx: Ctx,
    path: web::Path<String>,
    q: web::Query<FileQuery>,
    req: HttpRequest,
) -> Result<HttpResponse, WebError> {
    serve(&ctx, &path, &q, &req).await
}

/// The TaskManager named `id`, or 404. In one process every TaskManager writes to the
/// process's log directory, so each lists the same files.
pub fn task_manager(ctx: &RestContext, id: &str) -> Result<riffle_actors::ResourceId, WebError> {
    ctx.shared
        .task_executors
        .iter()
        .map(|e| e.key().clone())
        .find(|r| r.to_string() == id)
        .ok_or_else(|| WebError::NotFound(format!("no TaskManager '{}'", params::printable(id))))
}

/// `GET /taskmanagers/{tm}/logs`.
pub async fn taskmanager_list(ctx: Ctx, path: web::Path<String>) -> Result<HttpResponse, WebError> {
    task_manager(&ctx, &path)?;
    listing(&ctx)
}

/// `GET /taskmanagers/{tm}/logs/{name}`.
pub async fn taskmanager_file(
    ctx: Ctx,
    path: web::Path<(String, String)>,
    q: web::Query<FileQuery>,
    req: HttpRequest,
) -> Result<HttpResponse, WebError> {
    let (tm, name) = path.into_inner();
    task_manager(&ctx, &tm)?;
    serve(&ctx, &name, &q, &req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_regular_files_resolve() {
        let d = tempfile::tempdir().unwrap();
        let logs = d.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        std::fs::write(logs.join("jobmanager.log"), b"hello").unwrap();
        std::fs::write(logs.join("gc.out.1"), b"x").unwrap();
        std::fs::write(d.path().join("secret"), b"no").unwrap();
        std::fs::create_dir(logs.join("sub")).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(d.path().join("secret"), logs.join("link.log")).unwrap();
        let names: Vec<_> = list(&logs).unwrap().into_iter().map(|f| f.name).collect();
        assert_eq!(names, vec!["gc.out.1", "jobmanager.log"]);
        assert!(resolve(&logs, "jobmanager.log").is_ok());
        for bad in ["../secret", "..", ".", "", "sub", "link.log", "..%2fsecret", "jobmanager.log\0", "/etc/passwd"] {
            assert!(matches!(resolve(&logs, bad), Err(WebError::NotFound(_))), "{bad:?}");
        }
    }
}
