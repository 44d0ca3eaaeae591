//! The crate's one error type: what a request gets back (status and `{"errors": [...]}`) and
//! why a server could not start.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

pub use riffle_api::ErrorDomain;

/// Everything the REST server can answer with or fail to start on.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// A malformed parameter or body (400).
    #[error("{0}")]
    BadRequest(String),
    /// No such route, job, checkpoint, trigger, TaskManager or file (404).
    #[error("{0}")]
    NotFound(String),
    /// The request needs a job in another state (409).
    #[error("{0}")]
    Conflict(String),
    /// A bearer token is required and was missing or wrong (401).
    #[error("a valid bearer token is required (Authorization: Bearer <rest.auth.token>)")]
    Unauthorized,
    /// The body is larger than `rest.server.max-content-length` (413).
    #[error("the request body is larger than the limit of {0} bytes (rest.server.max-content-length)")]
    TooLarge(usize),
    /// The runtime cannot answer now (503): it is shutting down or an actor is gone.
    #[error("{0}")]
    Unavailable(String),
    /// A peer process (a TaskManager) did not answer in time (504).
    #[error("{0}")]
    Timeout(String),
    /// A bug (500).
    #[error("internal error: {0}")]
    Internal(String),
    /// A configuration value the server cannot use.
    #[error("bad REST configuration: {0}")]
    Config(String),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

impl WebError {
    /// Who is to blame.
    pub fn domain(&self) -> ErrorDomain {
        match self {
            WebError::BadRequest(_)
            | WebError::NotFound(_)
            | WebError::Conflict(_)
            | WebError::Unauthorized
            | WebError::TooLarge(_)
            | WebError::Config(_) => ErrorDomain::User,
            WebError::Unavailable(_) | WebError::Timeout(_) | WebError::Bind { .. } => ErrorDomain::External,
            WebError::Internal(_) => ErrorDomain::Internal,
        }
    }

    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, WebError::Unavailable(_) | WebError::Timeout(_) | WebError::Bind { .. } | WebError::Conflict(_))
    }
}

impl ResponseError for WebError {
    fn status_code(&self) -> StatusCode {
        match self {
            WebError::BadRequest(_) | WebError::Config(_) => StatusCode::BAD_REQUEST,
            WebError::NotFound(_) => StatusCode::NOT_FOUND,
            WebError::Conflict(_) => StatusCode::CONFLICT,
            WebError::Unauthorized => StatusCode::UNAUTHORIZED,
            WebError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            WebError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            WebError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            WebError::Internal(_) | WebError::Bind { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if self.domain() == ErrorDomain::Internal {
            tracing::error!("REST request failed: {self}");
        }
        HttpResponse::build(self.status_code()).json(serde_json::json!({ "errors": [self.to_string()] }))
    }
}

/// A job that could not be built, as REST answers it: the user's a 400, the environment's a
/// 503, riffle's own a 500; the message is the builder's.
impl From<riffle_api::ApiError> for WebError {
    fn from(e: riffle_api::ApiError) -> Self {
        match e.domain() {
            ErrorDomain::User => WebError::BadRequest(e.to_string()),
            ErrorDomain::External => WebError::Unavailable(e.to_string()),
            ErrorDomain::Internal => WebError::Internal(e.to_string()),
        }
    }
}

/// The web crate's result.
pub type Result<T, E = WebError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        assert_eq!(WebError::NotFound("job".into()).domain(), ErrorDomain::User);
        assert!(!WebError::BadRequest("x".into()).is_retryable());
        assert!(WebError::Unavailable("shutting down".into()).is_retryable());
        assert_eq!(WebError::Internal("bug".into()).domain(), ErrorDomain::Internal);
        let bad = WebError::from(riffle_api::ApiError::from(riffle_api::ProgramError::Invalid("no program".into())));
        assert!(matches!(&bad, WebError::BadRequest(m) if m == "no program"), "{bad:?}");
        let io = std::io::Error::other("gone");
        let gone =
            WebError::from(riffle_api::ApiError::from(riffle_api::ProgramError::Io { what: "x".into(), source: io }));
        assert!(matches!(&gone, WebError::Unavailable(m) if m == "x: gone"), "{gone:?}");
    }
}
