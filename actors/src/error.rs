//! The runtime's error: what the actors answer each other with, across processes too (it is
//! serializable), with its domain and whether a retry may help.

use serde::{Deserialize, Serialize};

use crate::dispatcher::DispatcherError;
use crate::gateway::SlotError;
use crate::restore_plan::RestoreError;
pub use riffle_api::ErrorDomain;

/// Everything the runtime's fallible calls and replies fail with. Serializable, so the same
/// value crosses the gateway (`SplitRequest`, `ConfirmEnd`, savepoints, checkpoints); errors of
/// other crates are kept as [`RuntimeError::Caused`], with their cause chain and domain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum RuntimeError {
    /// A job cannot be restored from a checkpoint.
    #[error(transparent)]
    Restore(#[from] RestoreError),
    /// The Dispatcher refused a request.
    #[error(transparent)]
    Dispatcher(#[from] DispatcherError),
    /// Slots could not be had.
    #[error(transparent)]
    Slot(#[from] SlotError),
    /// The job's current state does not allow the request (no savepoint while not every task
    /// runs, a superseded attempt may not end its input).
    #[error("{0}")]
    Refused(String),
    /// A checkpoint or savepoint did not complete.
    #[error("{0}")]
    Checkpoint(String),
    /// An actor or peer that was to answer is gone (stopped, disconnected, timed out).
    #[error("{0}")]
    Unavailable(String),
    /// What was asked for does not exist (a TaskManager process's log file).
    #[error("{0}")]
    NotFound(String),
    /// Code panicked; the payload's message.
    #[error("{0}")]
    Panicked(String),
    /// Wraps another runtime error with what was being done.
    #[error("{context}: {source}")]
    Context {
        /// What was being done.
        context: String,
        /// Why it failed.
        source: Box<RuntimeError>,
    },
    /// An error of another crate (API, state, I/O), captured with its chain and domain.
    #[error("{message}")]
    Caused {
        /// The error's own message.
        message: String,
        /// Its domain.
        domain: ErrorDomain,
        /// Whether it was retryable.
        retryable: bool,
        /// Its sources' messages, outermost first.
        #[serde(default)]
        causes: Vec<String>,
    },
}

impl RuntimeError {
    /// Who is to blame.
    pub fn domain(&self) -> ErrorDomain {
        match self {
            RuntimeError::Restore(e) => e.domain(),
            RuntimeError::Dispatcher(e) => e.domain(),
            RuntimeError::Slot(e) => e.domain(),
            RuntimeError::Refused(_) | RuntimeError::NotFound(_) => ErrorDomain::User,
            RuntimeError::Checkpoint(_) | RuntimeError::Unavailable(_) => ErrorDomain::External,
            RuntimeError::Panicked(_) => ErrorDomain::Internal,
            RuntimeError::Context { source, .. } => source.domain(),
            RuntimeError::Caused { domain, .. } => *domain,
        }
    }

    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            RuntimeError::Restore(e) => e.is_retryable(),
            RuntimeError::Dispatcher(e) => e.is_retryable(),
            RuntimeError::Slot(e) => e.is_retryable(),
            // Refused for the job's state now: it may allow it later (like a 409).
            RuntimeError::Refused(_) | RuntimeError::Checkpoint(_) | RuntimeError::Unavailable(_) => true,
            RuntimeError::Panicked(_) | RuntimeError::NotFound(_) => false,
            RuntimeError::Context { source, .. } => source.is_retryable(),
            RuntimeError::Caused { retryable, .. } => *retryable,
        }
    }

    /// `self` with what was being done in front.
    pub fn context(self, context: impl Into<String>) -> Self {
        RuntimeError::Context { context: context.into(), source: Box::new(self) }
    }

    /// Captures any error: its message, its sources' messages, its domain and retryability.
    pub fn capture(err: &(dyn std::error::Error + 'static), domain: ErrorDomain, retryable: bool) -> Self {
        let mut chain = riffle_api::error::cause_chain(err);
        let message = chain.remove(0);
        RuntimeError::Caused { message, causes: chain, domain, retryable }
    }

    /// The messages of this error and its causes, outermost first: a context, then what it
    /// wraps; a captured error's message, then its sources'.
    pub fn chain(&self) -> Vec<String> {
        match self {
            RuntimeError::Caused { message, causes, .. } => {
                std::iter::once(message.clone()).chain(causes.iter().cloned()).collect()
            }
            RuntimeError::Context { context, source } => {
                std::iter::once(context.clone()).chain(source.chain()).collect()
            }
            _ => vec![self.to_string()],
        }
    }
}

impl From<riffle_api::ApiError> for RuntimeError {
    fn from(e: riffle_api::ApiError) -> Self {
        RuntimeError::capture(&e, e.domain(), e.is_retryable())
    }
}

impl From<riffle_state::StateError> for RuntimeError {
    fn from(e: riffle_state::StateError) -> Self {
        RuntimeError::capture(&e, e.domain(), e.is_retryable())
    }
}

impl From<riffle_state::MetadataError> for RuntimeError {
    fn from(e: riffle_state::MetadataError) -> Self {
        RuntimeError::capture(&e, e.domain(), e.is_retryable())
    }
}

impl From<riffle_api::ConfigError> for RuntimeError {
    fn from(e: riffle_api::ConfigError) -> Self {
        RuntimeError::capture(&e, e.domain(), e.is_retryable())
    }
}

impl From<std::io::Error> for RuntimeError {
    fn from(e: std::io::Error) -> Self {
        RuntimeError::capture(&e, ErrorDomain::External, true)
    }
}

/// The runtime's result.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

impl RestoreError {
    /// Always the user's: the checkpoint named does not fit the job, or is damaged.
    pub fn domain(&self) -> ErrorDomain {
        ErrorDomain::User
    }

    /// Never: the same checkpoint fails the same way.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

impl DispatcherError {
    /// The caller's, except a Dispatcher shutting down (internal) and a job store that
    /// refused (external).
    pub fn domain(&self) -> ErrorDomain {
        match self {
            DispatcherError::UnknownJob(_) | DispatcherError::Duplicate(_) => ErrorDomain::User,
            DispatcherError::ShuttingDown => ErrorDomain::Internal,
            DispatcherError::NotStored(_) => ErrorDomain::External,
        }
    }

    /// Only a refused store may work later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, DispatcherError::NotStored(_))
    }
}

impl SlotError {
    /// Above the cap is the user's; a timeout the cluster's (external); shutting down internal.
    pub fn domain(&self) -> ErrorDomain {
        match self {
            SlotError::AboveMax { .. } => ErrorDomain::User,
            SlotError::Timeout { .. } => ErrorDomain::External,
            SlotError::ShuttingDown => ErrorDomain::Internal,
        }
    }

    /// Only a timeout: slots may come free.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SlotError::Timeout { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        let above = RuntimeError::from(SlotError::AboveMax { needed: 4, max: 2 });
        assert_eq!((above.domain(), above.is_retryable()), (ErrorDomain::User, false));
        let timeout = RuntimeError::from(SlotError::Timeout {
            needed: 4,
            free: 0,
            total: 2,
            max: "unlimited".into(),
            timeout_ms: 10,
        });
        assert_eq!((timeout.domain(), timeout.is_retryable()), (ErrorDomain::External, true));
        let gone = RuntimeError::from(DispatcherError::ShuttingDown);
        assert_eq!((gone.domain(), gone.is_retryable()), (ErrorDomain::Internal, false));
        let r = RuntimeError::from(RestoreError::Malformed("x".into()));
        assert_eq!((r.domain(), r.is_retryable()), (ErrorDomain::User, false));
        assert_eq!(RuntimeError::Unavailable("link lost".into()).domain(), ErrorDomain::External);
        assert_eq!(RuntimeError::Panicked("boom".into()).domain(), ErrorDomain::Internal);
        let io = RuntimeError::from(riffle_state::MetadataError::Io {
            path: "/chk".into(),
            source: std::io::Error::other("disk full"),
        });
        assert_eq!((io.domain(), io.is_retryable()), (ErrorDomain::External, true));
        let ctx = io.clone().context("cannot restore from '/chk'");
        assert_eq!((ctx.domain(), ctx.is_retryable()), (ErrorDomain::External, true));
        assert_eq!(ctx.to_string(), "cannot restore from '/chk': checkpoint storage I/O error at '/chk': disk full");
        assert_eq!(
            ctx.chain(),
            vec![
                "cannot restore from '/chk'".to_string(),
                "checkpoint storage I/O error at '/chk': disk full".to_string(),
                "disk full".to_string(),
            ]
        );
        // The context's source is the wrapped error, so TaskError::new keeps the chain too.
        let t = riffle_api::TaskError::new("op", &ctx);
        assert_eq!(t.causes, vec![ctx.to_string(), ctx.chain()[1].clone()]);
    }

    #[test]
    fn round_trips_through_rmp_serde() {
        let errors = [
            RuntimeError::Refused("the job is not running: a savepoint needs every task running".into()),
            RuntimeError::from(SlotError::ShuttingDown),
            RuntimeError::from(riffle_state::MetadataError::Io {
                path: "/chk".into(),
                source: std::io::Error::other("disk full"),
            })
            .context("no usable checkpoint under '/jobs'"),
        ];
        for e in errors {
            let bytes = rmp_serde::to_vec(&e).expect("encode");
            let back: RuntimeError = rmp_serde::from_slice(&bytes).expect("decode");
            assert_eq!(back, e);
            assert_eq!(
                (back.domain(), back.is_retryable(), back.to_string()),
                (e.domain(), e.is_retryable(), e.to_string())
            );
        }
    }
}
