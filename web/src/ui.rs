//! The web UI's static files, embedded in the binary at build time (no network, no build
//! step at run time).

use actix_web::http::header;
use actix_web::HttpResponse;
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "ui/"]
struct Assets;

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") | Some("mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

/// The asset at `path` (`/` is `index.html`), if there is one.
pub fn asset(path: &str) -> Option<HttpResponse> {
    let p = path.trim_start_matches('/');
    let p = if p.is_empty() { "index.html" } else { p };
    let file = Assets::get(p)?;
    Some(
        HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, content_type(p)))
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .insert_header(("X-Content-Type-Options", "nosniff"))
            .body(file.data.into_owned()),
    )
}

/// Whether `path` names one of the UI's files.
pub fn is_asset(path: &str) -> bool {
    let p = path.trim_start_matches('/');
    p.is_empty() || Assets::get(p).is_some()
}
