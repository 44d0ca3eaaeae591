//! Log files (FLIP-103): every regular file of `log.dir`, listed with size and modification
//! time, each served by name with ranges, streamed from disk.
//!
//! A requested name is served only if it is exactly the name of a regular file in the
//! directory's current listing: no path is ever built from what a client sent, so no
//! encoding of `..` or `/` can reach another file (CVE-2020-17519's class), and symbolic
//! links are not followed.
//!
//! A TaskManager *process* has a `log.dir` of its own on its own machine: its pages ask that
//! process over its link ([`riffle_actors::peers::LogQuery`]), which answers with the same
//! [`list`] and reads through the same [`resolve`] ([`read_chunk`]); a file comes in pieces of
//! at most [`LOG_CHUNK`], streamed to the client, with ranges, as the JobManager's own files
//! are. A TaskManager that does not answer within `web.timeout` is a 504, one whose link is
//! gone a 503. TaskExecutors embedded in this process share its `log.dir`.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use actix_files::{HttpRange, NamedFile};
use actix_web::http::header::{self, ContentDisposition, DispositionParam, DispositionType};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use riffle_actors::peers::{LogQuery, LogReply, RemoteTaskExecutor, TaskExecutorGateway, LOG_CHUNK};
use riffle_actors::RuntimeError;
use serde::Deserialize;
use serde_json::json;

use crate::context::RestContext;
use crate::error::WebError;
use crate::params;

type Ctx = web::Data<RestContext>;

/// One file of the log directory (the same shape crosses a TaskManager's link).
pub use riffle_actors::peers::LogFileInfo as LogFile;

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

/// Up to `len` bytes (at most [`LOG_CHUNK`]) of log file `name` of `dir` from `offset`, with
/// the file's size: what a TaskManager process answers a [`LogQuery::Read`] with. The name is
/// checked by [`resolve`].
pub fn read_chunk(dir: &Path, name: &str, offset: u64, len: u64) -> Result<(u64, Vec<u8>), WebError> {
    let path = resolve(dir, name)?;
    let cannot =
        |e: std::io::Error| WebError::Unavailable(format!("cannot read log file '{}': {e}", params::printable(name)));
    let mut file = std::fs::File::open(&path).map_err(cannot)?;
    let size = file.metadata().map_err(cannot)?.len();
    let len = len.min(LOG_CHUNK).min(size.saturating_sub(offset));
    let mut bytes = Vec::with_capacity(len as usize);
    if len > 0 {
        file.seek(SeekFrom::Start(offset)).map_err(cannot)?;
        file.take(len).read_to_end(&mut bytes).map_err(cannot)?;
    }
    Ok((size, bytes))
}

fn log_dir(ctx: &RestContext) -> Option<&Path> {
    ctx.config.log_dir.as_deref()
}

fn listing(ctx: &RestContext) -> Result<HttpResponse, WebError> {
    let files = match log_dir(ctx) {
        Some(d) => list(d)?,
        None => vec![],
    };
    Ok(listing_of(&files))
}

/// `{"logs": [{"name", "size", "mtime"}]}`.
fn listing_of(files: &[LogFile]) -> HttpResponse {
    let logs: Vec<_> = files.iter().map(|f| json!({"name": f.name, "size": f.size, "mtime": f.mtime_ms})).collect();
    HttpResponse::Ok().json(json!({ "logs": logs }))
}

/// Inline, or an attachment with `?download=true`.
fn disposition(name: &str, q: &FileQuery) -> ContentDisposition {
    let download = matches!(q.download.as_deref(), Some("true") | Some("1"));
    ContentDisposition {
        disposition: if download { DispositionType::Attachment } else { DispositionType::Inline },
        parameters: vec![DispositionParam::Filename(name.to_string())],
    }
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
    let file = file
        .set_content_type("text/plain; charset=utf-8".parse().map_err(|_| WebError::Internal("mime".into()))?)
        .set_content_disposition(disposition(name, q))
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

/// The TaskManager named `id`, or 404.
pub fn task_manager(ctx: &RestContext, id: &str) -> Result<riffle_actors::ResourceId, WebError> {
    ctx.directory
        .task_executors
        .iter()
        .map(|e| e.key().clone())
        .find(|r| r.to_string() == id)
        .ok_or_else(|| WebError::NotFound(format!("no TaskManager '{}'", params::printable(id))))
}

/// A TaskManager process's link, or None for a TaskExecutor of this process (which shares
/// this process's `log.dir`).
fn remote(ctx: &RestContext, id: &str) -> Result<Option<RemoteTaskExecutor>, WebError> {
    let id = task_manager(ctx, id)?;
    match ctx.directory.task_executors.get(&id).map(|g| g.clone()) {
        Some(TaskExecutorGateway::Remote(r)) => Ok(Some(r)),
        Some(TaskExecutorGateway::Local(_)) => Ok(None),
        None => Err(WebError::NotFound(format!("no TaskManager '{id}'"))),
    }
}

/// Asks TaskManager `tm`'s process, waiting at most `timeout`.
async fn ask(remote: &RemoteTaskExecutor, tm: &str, query: LogQuery, timeout: Duration) -> Result<LogReply, WebError> {
    match actix_rt::time::timeout(timeout, remote.ask_logs(query)).await {
        Err(_) => Err(WebError::Timeout(format!(
            "TaskManager '{}' did not answer within {} ms (web.timeout)",
            params::printable(tm),
            timeout.as_millis()
        ))),
        Ok(Err(RuntimeError::NotFound(why))) => Err(WebError::NotFound(why)),
        Ok(Err(e)) => Err(WebError::Unavailable(format!("TaskManager '{}': {e}", params::printable(tm)))),
        Ok(Ok(reply)) => Ok(reply),
    }
}

fn timeout(ctx: &RestContext) -> Duration {
    Duration::from_millis(ctx.config.timeout_ms.max(1))
}

/// `GET /taskmanagers/{tm}/logs`.
pub async fn taskmanager_list(ctx: Ctx, path: web::Path<String>) -> Result<HttpResponse, WebError> {
    let Some(remote) = remote(&ctx, &path)? else { return listing(&ctx) };
    let files = match ask(&remote, &path, LogQuery::List, timeout(&ctx)).await? {
        LogReply::Files(files) => files,
        LogReply::Chunk { .. } => return Err(WebError::Internal("a TaskManager answered a listing with bytes".into())),
    };
    Ok(listing_of(&files))
}

/// `GET /taskmanagers/{tm}/logs/{name}`.
pub async fn taskmanager_file(
    ctx: Ctx,
    path: web::Path<(String, String)>,
    q: web::Query<FileQuery>,
    req: HttpRequest,
) -> Result<HttpResponse, WebError> {
    let (tm, name) = path.into_inner();
    match remote(&ctx, &tm)? {
        Some(remote) => serve_remote(remote, tm, name, &q, &req, timeout(&ctx)).await,
        None => serve(&ctx, &name, &q, &req).await,
    }
}

/// A file of a TaskManager process: its size first (which also checks the name there), then
/// the bytes asked for (a single `Range`, else all), streamed in pieces of [`LOG_CHUNK`].
async fn serve_remote(
    remote: RemoteTaskExecutor,
    tm: String,
    name: String,
    q: &FileQuery,
    req: &HttpRequest,
    timeout: Duration,
) -> Result<HttpResponse, WebError> {
    let read = |offset: u64, len: u64| LogQuery::Read { name: name.clone(), offset, len };
    let size = match ask(&remote, &tm, read(0, 0), timeout).await? {
        LogReply::Chunk { size, .. } => size,
        LogReply::Files(_) => return Err(WebError::Internal("a TaskManager answered a read with a listing".into())),
    };
    let mut response = HttpResponse::Ok();
    let (start, length) = match req.headers().get(header::RANGE).and_then(|h| h.to_str().ok()) {
        None => (0, size),
        Some(range) => match HttpRange::parse(range, size).ok().and_then(|r| r.first().map(|r| (r.start, r.length))) {
            Some((start, length)) => {
                response.status(StatusCode::PARTIAL_CONTENT);
                let last = (start + length).saturating_sub(1);
                response.insert_header((header::CONTENT_RANGE, format!("bytes {start}-{last}/{size}")));
                (start, length)
            }
            None => {
                return Ok(HttpResponse::RangeNotSatisfiable()
                    .insert_header((header::CONTENT_RANGE, format!("bytes */{size}")))
                    .finish())
            }
        },
    };
    let disposition = disposition(&name, q);
    let end = start + length;
    let pieces = futures::stream::unfold(Some(start), move |at| {
        let (remote, tm, name) = (remote.clone(), tm.clone(), name.clone());
        async move {
            let at = at.filter(|at| *at < end)?;
            let query = LogQuery::Read { name, offset: at, len: (end - at).min(LOG_CHUNK) };
            match ask(&remote, &tm, query, timeout).await {
                // The file shrank (rotated away): the response ends short, as the connection says.
                Ok(LogReply::Chunk { bytes, .. }) if bytes.is_empty() => None,
                Ok(LogReply::Chunk { bytes, .. }) => {
                    let next = at + bytes.len() as u64;
                    Some((Ok(web::Bytes::from(bytes)), Some(next)))
                }
                Ok(LogReply::Files(_)) => {
                    Some((Err(WebError::Internal("a TaskManager answered a read with a listing".into())), None))
                }
                Err(e) => Some((Err(e), None)),
            }
        }
    });
    Ok(response
        .insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"))
        .insert_header(disposition)
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .no_chunking(length)
        .streaming(pieces))
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
            assert!(matches!(read_chunk(&logs, bad, 0, 10), Err(WebError::NotFound(_))), "{bad:?}");
        }
    }

    #[test]
    fn a_file_is_read_in_pieces_of_at_most_one_chunk() {
        let d = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..LOG_CHUNK + 10).map(|i| (i % 251) as u8).collect();
        std::fs::write(d.path().join("big.log"), &big).unwrap();
        let size = big.len() as u64;
        assert_eq!(read_chunk(d.path(), "big.log", 0, 0).unwrap(), (size, vec![]));
        let (s, first) = read_chunk(d.path(), "big.log", 0, u64::MAX).unwrap();
        assert_eq!((s, first.len() as u64), (size, LOG_CHUNK));
        assert_eq!(read_chunk(d.path(), "big.log", LOG_CHUNK, 100).unwrap().1, big[LOG_CHUNK as usize..]);
        assert_eq!(read_chunk(d.path(), "big.log", 5, 3).unwrap().1, big[5..8]);
        assert!(read_chunk(d.path(), "big.log", size + 7, 10).unwrap().1.is_empty(), "past the end: nothing");
    }
}
