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
    /// A plugin's job builder refused its arguments (or failed): the plugin's own error.
    #[error("job '{entry}' of the plugin: {source}")]
    PluginJob {
        /// The job's entry name.
        entry: String,
        /// What the builder returned.
        #[source]
        source: riffle_api::UserError,
    },
    /// A job cannot be built from its origin here (an unknown program, bad arguments, a
    /// refused plugin): what [`riffle_api::Programs::build`] answered.
    #[error(transparent)]
    Build(#[from] riffle_api::ApiError),
    /// The REST server could not start (bad `rest.*` settings, port taken).
    #[error("the REST server did not start: {0}")]
    Rest(#[from] riffle_web::WebError),
    /// The runtime (a JobMaster, a coordinator, the other end of a link) answered with an error.
    #[error(transparent)]
    Runtime(#[from] riffle_actors::RuntimeError),
    /// A remote artifact could not be fetched (a bad URL, an HTTP error, an unreachable host,
    /// too large, too slow).
    #[error(transparent)]
    Fetch(#[from] crate::artifacts::FetchError),
    /// Reading or writing a file (an artifact, a plugin library) failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl ClusterError {
    /// Where the error comes from.
    pub fn domain(&self) -> ErrorDomain {
        match self {
            ClusterError::Config(_)
            | ClusterError::Graph(_)
            | ClusterError::Plugin(_)
            | ClusterError::PluginJob { .. } => ErrorDomain::User,
            ClusterError::Build(e) => e.domain(),
            ClusterError::Fetch(e) => e.domain(),
            ClusterError::Unavailable(_) | ClusterError::Timeout(..) | ClusterError::Checkpoint(_) => {
                ErrorDomain::External
            }
            ClusterError::Io { .. } => ErrorDomain::External,
            ClusterError::Rest(e) => e.domain(),
            ClusterError::Runtime(e) => e.domain(),
            ClusterError::Rejected(e) => e.domain(),
        }
    }

    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClusterError::Runtime(e) => e.is_retryable(),
            ClusterError::Rejected(e) => e.is_retryable(),
            ClusterError::Build(e) => e.is_retryable(),
            ClusterError::Fetch(e) => e.is_retryable(),
            _ => self.domain() == ErrorDomain::External,
        }
    }
}

/// The cluster crate's result.
pub type Result<T, E = ClusterError> = std::result::Result<T, E>;

/// A cluster error as the runtime carries it (over a link, in a reply): its message, cause
/// chain, domain and retryability.
impl From<ClusterError> for riffle_actors::RuntimeError {
    fn from(e: ClusterError) -> Self {
        match e {
            ClusterError::Runtime(e) => e,
            e => riffle_actors::RuntimeError::capture(&e, e.domain(), e.is_retryable()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        let p = ClusterError::Plugin("not riffle's".into());
        assert_eq!((p.domain(), p.is_retryable()), (ErrorDomain::User, false));
        let io = ClusterError::Io { what: "cannot read".into(), source: std::io::Error::other("gone") };
        assert_eq!((io.domain(), io.is_retryable()), (ErrorDomain::External, true));
        let refused = ClusterError::from(riffle_actors::RuntimeError::Refused("the job is not running".into()));
        assert_eq!((refused.domain(), refused.is_retryable()), (ErrorDomain::User, true));
        let wire = riffle_actors::RuntimeError::from(io);
        assert_eq!(
            (wire.domain(), wire.is_retryable(), wire.to_string()),
            (ErrorDomain::External, true, "cannot read: gone".into())
        );
        assert_eq!(wire.chain(), vec!["cannot read: gone".to_string(), "gone".to_string()]);
    }
}
