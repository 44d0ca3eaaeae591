//! The cluster crate's error, with its domain: whether it is the caller's to fix (user), the
//! environment's (external: retrying may help) or riffle's own (internal).

pub use riffle_api::ErrorDomain;

/// What can go wrong starting a cluster or talking to it.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A configuration value is invalid.
    #[error(transparent)]
    Config(#[from] riffle_api::ConfigError),
    /// The job graph is invalid.
    #[error(transparent)]
    Graph(#[from] riffle_api::GraphError),
    /// The cluster refused a request.
    #[error("{0}")]
    Rejected(#[from] riffle_actors::dispatcher::DispatcherError),
    /// The actor system could not be started or reached.
    #[error("the cluster is not reachable: {0}")]
    Unavailable(String),
    /// A wait ran out.
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(std::time::Duration, String),
    /// A checkpoint or savepoint could not be taken (the job is not running, it was aborted,
    /// the directory is not writable).
    #[error("{0}")]
    Checkpoint(String),
    /// A plugin library was refused (not riffle's, another build, corrupt, unreadable).
    #[error("{0}")]
    Plugin(String),
    /// The REST server could not start (bad `rest.*` settings, port taken).
    #[error("the REST server did not start: {0}")]
    Rest(#[from] riffle_web::WebError),
}

impl ClusterError {
    /// Where the error comes from.
    pub fn domain(&self) -> ErrorDomain {
        match self {
            ClusterError::Config(_) | ClusterError::Graph(_) | ClusterError::Rejected(_) | ClusterError::Plugin(_) => {
                ErrorDomain::User
            }
            ClusterError::Unavailable(_) | ClusterError::Timeout(..) | ClusterError::Checkpoint(_) => {
                ErrorDomain::External
            }
            ClusterError::Rest(e) => e.domain(),
        }
    }

    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        self.domain() == ErrorDomain::External
    }
}
