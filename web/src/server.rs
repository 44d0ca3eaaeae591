//! The HTTP server: its own thread and actix system, so it runs beside a cluster whatever
//! runtime (or none) the embedding program uses.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServerHandle, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{web, App, HttpResponse, HttpServer};

use crate::context::RestContext;
use crate::error::WebError;

/// A running REST server. Dropping it stops it.
pub struct RestServer {
    addr: SocketAddr,
    tls: bool,
    handle: Option<ServerHandle>,
    thread: Option<JoinHandle<()>>,
}

const START_TIMEOUT: Duration = Duration::from_secs(10);

fn tls_config(cert: &std::path::Path, key: &std::path::Path) -> Result<rustls::ServerConfig, WebError> {
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| WebError::Config(format!("cannot read {}: {e}", p.display())))
    };
    let certs: Vec<_> = rustls_pemfile::certs(&mut read(cert)?.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| WebError::Config(format!("{} holds no PEM certificate: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(WebError::Config(format!("{} holds no PEM certificate", cert.display())));
    }
    let key = rustls_pemfile::private_key(&mut read(key)?.as_slice())
        .map_err(|e| WebError::Config(format!("{}: {e}", key.display())))?
        .ok_or_else(|| WebError::Config(format!("{} holds no PEM private key", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| WebError::Config(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| WebError::Config(format!("TLS certificate and key do not go together: {e}")))
}

/// Gives every error response a JSON `{"errors": [...]}` body (routing's 404 and 405,
/// extractors' 400 and 413 come with plain text or nothing).
fn json_errors<B: MessageBody + 'static>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = res
        .response()
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let path = res.request().path().to_string();
    let message = match status.as_u16() {
        404 => format!("Not found: {}", crate::params::printable(&path)),
        405 => format!("Method {} is not allowed on {}", res.request().method(), crate::params::printable(&path)),
        413 => "The request body is too large (rest.server.max-content-length)".to_string(),
        _ => status.canonical_reason().unwrap_or("error").to_string(),
    };
    let (req, _) = res.into_parts();
    let resp = HttpResponse::build(status).json(serde_json::json!({ "errors": [message] }));
    Ok(ErrorHandlerResponse::Response(ServiceResponse::new(req, resp).map_into_right_body()))
}

async fn fallback(req: actix_web::HttpRequest) -> HttpResponse {
    if req.method() == actix_web::http::Method::GET {
        if let Some(r) = crate::ui::asset(req.path()) {
            return r;
        }
    }
    HttpResponse::NotFound()
        .json(serde_json::json!({ "errors": [format!("Not found: {}", crate::params::printable(req.path()))] }))
}

fn authorized(token: &Option<String>, req: &actix_web::dev::ServiceRequest) -> bool {
    let Some(token) = token else { return true };
    // The UI's static files are public; everything the API answers is not.
    if req.method() == actix_web::http::Method::GET && crate::ui::is_asset(req.path()) {
        return true;
    }
    let Some(v) = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else { return false };
    let Some(given) = v.strip_prefix("Bearer ") else { return false };
    // Compare without an early exit, so timing does not tell how much matched.
    given.len() == token.len() && given.bytes().zip(token.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

impl RestServer {
    /// Binds `rest.bind-address:rest.port` and serves `ctx`'s runtime. Fails at once if the
    /// address cannot be bound or TLS is misconfigured.
    pub fn start(ctx: RestContext) -> Result<RestServer, WebError> {
        let cfg = ctx.config.clone();
        let data = web::Data::new(ctx);
        let shared = data.clone();
        let server = Self::serve(cfg, move |app: &mut web::ServiceConfig| {
            app.app_data(data.clone())
                .service(web::scope("/v1").configure(crate::routes::configure))
                .configure(crate::routes::configure)
                .default_service(web::to(fallback));
        })?;
        let _ = shared.local_address.set(server.addr.to_string());
        Ok(server)
    }

    /// Binds `rest.bind-address:rest.port` and answers every request with a redirect to the
    /// leading JobManager's REST API (`leader` gives its URL, `None` while nobody leads): what
    /// a standby JobManager serves, so that a client or browser pointed at any JobManager of a
    /// highly available cluster reaches the leader.
    pub fn start_standby(
        cfg: crate::config::RestConfig,
        leader: crate::standby::LeaderUrl,
    ) -> Result<RestServer, WebError> {
        let leader = web::Data::new(leader);
        Self::serve(cfg, move |app: &mut web::ServiceConfig| {
            app.app_data(leader.clone()).default_service(web::to(crate::standby::redirect));
        })
    }

    fn serve(
        cfg: crate::config::RestConfig,
        configure: impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
    ) -> Result<RestServer, WebError> {
        let tls = match &cfg.tls {
            Some((cert, key)) => Some(tls_config(cert, key)?),
            None => None,
        };
        let is_tls = tls.is_some();
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<(SocketAddr, ServerHandle), WebError>>(1);
        let thread = std::thread::Builder::new()
            .name("riffle-rest".into())
            .spawn(move || {
                let sys = actix_rt::System::new();
                let addr = format!("{}:{}", cfg.bind_address, cfg.port);
                let max = cfg.max_content_length;
                let token = cfg.auth_token.clone();
                let server = HttpServer::new(move || {
                    let token = token.clone();
                    App::new()
                        .app_data(web::PayloadConfig::new(max))
                        .wrap(ErrorHandlers::new().default_handler(json_errors))
                        .wrap_fn(move |req, srv| {
                            use actix_web::dev::Service;
                            let ok = authorized(&token, &req);
                            let fut = if ok { Some(srv.call(req)) } else { None };
                            async move {
                                match fut {
                                    Some(f) => f.await,
                                    None => Err(WebError::Unauthorized.into()),
                                }
                            }
                        })
                        .configure(configure.clone())
                })
                .workers(2)
                .shutdown_timeout(2)
                .disable_signals();
                let bound = match tls {
                    Some(t) => server.bind_rustls_0_23(&addr, t),
                    None => server.bind(&addr),
                };
                let server = match bound {
                    Ok(s) => s,
                    Err(source) => {
                        let _ = tx.send(Err(WebError::Bind { addr, source }));
                        return;
                    }
                };
                let Some(local) = server.addrs().first().copied() else {
                    let _ = tx.send(Err(WebError::Internal("the server bound no address".into())));
                    return;
                };
                let server = server.run();
                let _ = tx.send(Ok((local, server.handle())));
                if let Err(e) = sys.block_on(server) {
                    tracing::error!("the REST server stopped: {e}");
                }
            })
            .map_err(|e| WebError::Internal(format!("cannot start the REST server thread: {e}")))?;
        let (addr, handle) = rx
            .recv_timeout(START_TIMEOUT)
            .map_err(|_| WebError::Internal("the REST server did not start in time".into()))??;
        tracing::info!("REST API and web UI at {}://{addr}/", if is_tls { "https" } else { "http" });
        Ok(RestServer { addr, tls: is_tls, handle: Some(handle), thread: Some(thread) })
    }

    /// The address it listens on (with the real port when `rest.port` was 0).
    pub fn address(&self) -> SocketAddr {
        self.addr
    }

    /// `http://host:port/` (or `https`).
    pub fn url(&self) -> String {
        format!("{}://{}/", if self.tls { "https" } else { "http" }, self.addr)
    }

    /// Stops serving and joins the server's thread.
    pub fn stop(mut self) {
        self.shutdown(true);
    }

    /// Stops at once, dropping requests in flight (a standby's redirects, when it takes over:
    /// its own REST API needs the port now).
    pub fn stop_now(mut self) {
        self.shutdown(false);
    }

    fn shutdown(&mut self, graceful: bool) {
        if let Some(h) = self.handle.take() {
            futures::executor::block_on(h.stop(graceful));
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RestServer {
    fn drop(&mut self) {
        self.shutdown(true);
    }
}
