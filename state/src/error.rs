//! The classification every crate's error shares.

/// Who is to blame for an error, and so whether retrying can help: one classification shared
/// by every crate's error type (`ClusterError::domain`, `WebError::domain`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ErrorDomain {
    /// Bad input or request: fix it, do not retry as is.
    User,
    /// The environment (a port taken, a peer gone, a timeout): a retry may help.
    External,
    /// A bug in riffle, or a runtime shutting down.
    Internal,
}

impl std::fmt::Display for ErrorDomain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ErrorDomain::User => "user",
            ErrorDomain::External => "external",
            ErrorDomain::Internal => "internal",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorDomain;
    use crate::{MetadataError, StateError};

    #[test]
    fn domains() {
        let user = StateError::NoCurrentKey { name: "count".into() };
        assert_eq!((user.domain(), user.is_retryable()), (ErrorDomain::User, false));
        let io = StateError::Io { path: "/x".into(), reason: "disk full".into() };
        assert_eq!((io.domain(), io.is_retryable()), (ErrorDomain::External, true));
        let bad = StateError::from(MetadataError::Checksum { path: "/m".into() });
        assert_eq!((bad.domain(), bad.is_retryable()), (ErrorDomain::User, false));
        let gone = StateError::from(MetadataError::Io { path: "/m".into(), source: std::io::Error::other("gone") });
        assert_eq!((gone.domain(), gone.is_retryable()), (ErrorDomain::External, true));
        assert_eq!(gone.to_string(), "checkpoint storage I/O error at '/m': gone");
    }
}
