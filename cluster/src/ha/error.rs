//! The HA layer's one error type. Every variant names what was being done (the ZooKeeper
//! operation and path, the file, the configuration key) so a log line alone tells an operator
//! where to look, and `domain()`/`is_retryable()` tell the caller whether to fix, retry or
//! give up (a lost leadership is never retried: the new leader carries on).

use std::path::PathBuf;
use std::time::Duration;

use riffle_api::ErrorDomain;
use zookeeper_client::Error as ZkError;

/// What can go wrong in high availability.
#[derive(Debug, thiserror::Error)]
pub enum HaError {
    /// A `high-availability.*` value is invalid or missing.
    #[error(transparent)]
    Config(#[from] riffle_api::ConfigError),
    /// ZooKeeper services were asked for while `high-availability` is `none`.
    #[error("high availability is not enabled: set 'high-availability' to 'zookeeper'")]
    Disabled,
    /// No session could be established with any member of the quorum.
    #[error("ZooKeeper quorum {quorum} is unreachable after {attempts} attempt(s): {last}")]
    Unreachable {
        /// The connection string tried.
        quorum: String,
        /// How many connection attempts were made.
        attempts: u32,
        /// The last attempt's failure.
        last: String,
    },
    /// TLS explains why no session could be established with a member: riffle does not trust
    /// its certificate, it refused riffle's, it does not speak TLS although
    /// `high-availability.zookeeper.client.secure` is on, or it does although that is off.
    /// Retrying with the same files would not help.
    #[error("ZooKeeper {server}: TLS: {reason}")]
    Tls {
        /// The member (`host:port`) whose handshake showed it.
        server: String,
        /// What went wrong, and what to check.
        reason: String,
    },
    /// A PEM file named by a `high-availability.zookeeper.client.ssl.*` key cannot be used.
    #[error("{key} '{}': {reason}", path.display())]
    TlsFile {
        /// The configuration key that names the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it cannot be used (unreadable, no certificate or key in it, ...).
        reason: String,
    },
    /// A ZooKeeper call did not answer in time (the link may be down; the call may or may not
    /// have been applied).
    #[error("ZooKeeper {quorum} did not answer '{op}' within {after:?}")]
    Timeout {
        /// The operation and its path.
        op: String,
        /// The bound that ran out.
        after: Duration,
        /// The connection string.
        quorum: String,
    },
    /// ZooKeeper answered with an error.
    #[error("ZooKeeper '{op}' failed: {source}")]
    ZooKeeper {
        /// The operation and its path.
        op: String,
        /// ZooKeeper's error.
        #[source]
        source: ZkError,
    },
    /// A fenced write was refused because this contender does not (or no longer) lead: its
    /// election node is gone, its session expired or it is disconnected.
    #[error("not the leader: '{op}' refused ({reason})")]
    NotLeader {
        /// The refused operation.
        op: String,
        /// Why leadership is not (or no longer) held.
        reason: String,
    },
    /// A compare-and-set kept losing to concurrent writers.
    #[error("'{op}' lost {attempts} compare-and-set races in a row")]
    Contention {
        /// The operation and its path.
        op: String,
        /// How many attempts were made.
        attempts: u32,
    },
    /// A file in `high-availability.storageDir` could not be read or written.
    #[error("{op} '{}' failed: {source}", path.display())]
    Storage {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// ZooKeeper points at a file that does not exist (deleted or never fully written).
    #[error("'{pointer}' points at '{}', which does not exist", path.display())]
    MissingFile {
        /// The ZooKeeper node holding the pointer.
        pointer: String,
        /// The missing file.
        path: PathBuf,
    },
    /// A pointer, counter or state file does not hold what it should.
    #[error("{what} is corrupt: {reason}")]
    Corrupt {
        /// The node or file.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The election's background task ended unexpectedly.
    #[error("the leader election task failed: {0}")]
    Internal(String),
}

impl HaError {
    /// Where the error comes from.
    pub fn domain(&self) -> ErrorDomain {
        match self {
            HaError::Config(_) | HaError::Disabled | HaError::Tls { .. } | HaError::TlsFile { .. } => ErrorDomain::User,
            HaError::ZooKeeper { source, .. } => zk_domain(source),
            HaError::Internal(_) => ErrorDomain::Internal,
            HaError::Unreachable { .. }
            | HaError::Timeout { .. }
            | HaError::NotLeader { .. }
            | HaError::Contention { .. }
            | HaError::Storage { .. }
            | HaError::MissingFile { .. }
            | HaError::Corrupt { .. } => ErrorDomain::External,
        }
    }

    /// Whether the same call, with the same client, may succeed later. A lost leadership or
    /// an expired session is not: the caller has to contend again with a new session.
    pub fn is_retryable(&self) -> bool {
        match self {
            HaError::Unreachable { .. } | HaError::Timeout { .. } | HaError::Contention { .. } => true,
            HaError::ZooKeeper { source, .. } => zk_retryable(source),
            HaError::Storage { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::Interrupted | std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ),
            _ => false,
        }
    }

    /// ZooKeeper's own error, when that is what this is.
    pub fn zookeeper_error(&self) -> Option<&ZkError> {
        match self {
            HaError::ZooKeeper { source, .. } => Some(source),
            _ => None,
        }
    }

    /// Whether this is ZooKeeper's "no such node".
    pub fn is_no_node(&self) -> bool {
        matches!(self.zookeeper_error(), Some(ZkError::NoNode))
    }

    pub(crate) fn zk(op: impl Into<String>, source: ZkError) -> Self {
        HaError::ZooKeeper { op: op.into(), source }
    }

    pub(crate) fn corrupt(what: impl Into<String>, reason: impl Into<String>) -> Self {
        HaError::Corrupt { what: what.into(), reason: reason.into() }
    }

    pub(crate) fn not_leader(op: impl Into<String>, reason: impl Into<String>) -> Self {
        HaError::NotLeader { op: op.into(), reason: reason.into() }
    }
}

/// Errors that a retry on the same session may get past: the link dropped or the server was
/// busy (the session itself is still alive). zookeeper-client 0.11 fails the requests in
/// flight on a broken connection with the I/O error itself ("Connection reset by peer", "no
/// response from connection in ..."), as `Custom`: that is a lost connection too.
fn zk_retryable(e: &ZkError) -> bool {
    matches!(e, ZkError::ConnectionLoss | ZkError::Timeout | ZkError::Throttled | ZkError::NoHosts | ZkError::Custom(_))
}

fn zk_domain(e: &ZkError) -> ErrorDomain {
    match e {
        ZkError::BadArguments(_)
        | ZkError::UnmarshalError { .. }
        | ZkError::UnexpectedError(_)
        | ZkError::UnexpectedErrorCode(_)
        | ZkError::MarshallingError
        | ZkError::RuntimeInconsistent => ErrorDomain::Internal,
        ZkError::NoAuth | ZkError::AuthFailed | ZkError::InvalidAcl => ErrorDomain::User,
        _ => ErrorDomain::External,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_and_retries() {
        let lost = HaError::zk("get /x", ZkError::ConnectionLoss);
        assert!(lost.is_retryable());
        assert_eq!(lost.domain(), ErrorDomain::External);
        let expired = HaError::zk("get /x", ZkError::SessionExpired);
        assert!(!expired.is_retryable());
        let fenced = HaError::not_leader("set /x", "election node gone");
        assert!(!fenced.is_retryable());
        assert!(fenced.to_string().contains("not the leader"));
        assert_eq!(HaError::Disabled.domain(), ErrorDomain::User);
        assert!(HaError::zk("get /x", ZkError::NoNode).is_no_node());
    }
}
