//! The connectors crate's error: what went wrong reading or writing a file, with the file and
//! the place in it, classified like every riffle error (user / external / internal).

use std::path::PathBuf;

use riffle_api::source::file_enumerator::DiscoveryError;
pub use riffle_api::ErrorDomain;

/// Where in a file a malformed record is: what a user needs to find it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// A text format's line: its 1-based number in the file and the byte offset it starts at.
    Line {
        /// The line number, counting from 1.
        line: u64,
        /// The offset of the line's first byte.
        offset: u64,
    },
    /// A byte offset (an Avro block, a file footer).
    Offset(u64),
    /// A Parquet row group (0-based).
    RowGroup(u64),
    /// An ORC stripe (0-based).
    Stripe(u64),
    /// The file as a whole (its header or footer).
    File,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Line { line, offset } => write!(f, "line {line} (byte {offset})"),
            Location::Offset(o) => write!(f, "byte {o}"),
            Location::RowGroup(g) => write!(f, "row group {g}"),
            Location::Stripe(s) => write!(f, "stripe {s}"),
            Location::File => f.write_str("file"),
        }
    }
}

/// Everything reading or writing a format can fail with. Decoding errors name the file, the
/// place (line, byte offset, row group, stripe) and the reason.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The file system failed (missing file, permissions, disk): a retry may help.
    #[error("{path}: I/O error: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A record or the file's structure does not decode: the data's fault.
    #[error("{path}: malformed record at {location}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Where in it.
        location: Location,
        /// What the decoder said.
        reason: String,
    },
    /// The data does not fit the declared schema, or no schema could be inferred.
    #[error("{path}: schema error: {reason}")]
    Schema {
        /// The file.
        path: PathBuf,
        /// What does not fit.
        reason: String,
    },
    /// Encoding batches into a file failed (a type the format cannot hold, a codec error).
    #[error("{path}: cannot write: {reason}")]
    Encode {
        /// The file being written.
        path: PathBuf,
        /// What the encoder said.
        reason: String,
    },
    /// A format option has a bad value, or two options contradict each other.
    #[error(transparent)]
    Config(#[from] riffle_api::ConfigError),
    /// The source's inputs cannot be listed (a missing input, an unreadable directory, a glob
    /// that matches nothing or does not parse).
    #[error(transparent)]
    Discovery(#[from] riffle_api::source::file_enumerator::DiscoveryError),
    /// A reader was asked to seek to a position outside its split.
    #[error("{path}: cannot seek to {position}: {reason}")]
    Seek {
        /// The file.
        path: PathBuf,
        /// The position asked for.
        position: String,
        /// Why it is not in the split.
        reason: String,
    },
}

impl ConnectorError {
    /// Who is to blame: I/O is the environment's; malformed data, schemas, options and
    /// formats' limits are the user's; a seek outside the split is riffle's own bug.
    pub fn domain(&self) -> ErrorDomain {
        match self {
            ConnectorError::Io { .. } => ErrorDomain::External,
            ConnectorError::Discovery(DiscoveryError::Unreadable { .. }) => ErrorDomain::External,
            ConnectorError::Discovery(_) => ErrorDomain::User,
            ConnectorError::Malformed { .. }
            | ConnectorError::Schema { .. }
            | ConnectorError::Encode { .. }
            | ConnectorError::Config(_) => ErrorDomain::User,
            ConnectorError::Seek { .. } => ErrorDomain::Internal,
        }
    }

    /// Whether the same call may succeed later: only I/O errors (a file being copied, a disk
    /// that comes back). The same bytes decode the same way every time.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ConnectorError::Io { .. } | ConnectorError::Discovery(DiscoveryError::Unreadable { .. }))
    }

    /// An I/O error on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ConnectorError::Io { path: path.into(), source }
    }

    /// A malformed record of `path` at `location`.
    pub(crate) fn malformed(path: impl Into<PathBuf>, location: Location, reason: impl ToString) -> Self {
        ConnectorError::Malformed { path: path.into(), location, reason: reason.to_string() }
    }

    /// A schema error on `path`.
    pub(crate) fn schema(path: impl Into<PathBuf>, reason: impl ToString) -> Self {
        ConnectorError::Schema { path: path.into(), reason: reason.to_string() }
    }

    /// An encoding error writing `path`.
    pub(crate) fn encode(path: impl Into<PathBuf>, reason: impl ToString) -> Self {
        ConnectorError::Encode { path: path.into(), reason: reason.to_string() }
    }
}

/// The connectors crate's result.
pub type Result<T, E = ConnectorError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_and_messages() {
        let io = ConnectorError::io("/d/a.csv", std::io::Error::other("gone"));
        assert_eq!((io.domain(), io.is_retryable()), (ErrorDomain::External, true));
        assert_eq!(io.to_string(), "/d/a.csv: I/O error: gone");
        let bad = ConnectorError::malformed("/d/a.csv", Location::Line { line: 7, offset: 120 }, "expected 3 fields");
        assert_eq!((bad.domain(), bad.is_retryable()), (ErrorDomain::User, false));
        assert_eq!(bad.to_string(), "/d/a.csv: malformed record at line 7 (byte 120): expected 3 fields");
        let rg = ConnectorError::malformed("/d/p.parquet", Location::RowGroup(2), "bad page");
        assert_eq!(rg.to_string(), "/d/p.parquet: malformed record at row group 2: bad page");
        let seek = ConnectorError::Seek { path: "/x".into(), position: "9@0".into(), reason: "r".into() };
        assert_eq!(seek.domain(), ErrorDomain::Internal);
        let c = riffle_api::ConfigError { key: "csv.field-delimiter".into(), value: "ab".into(), reason: "r".into() };
        assert_eq!(ConnectorError::from(c).domain(), ErrorDomain::User);
    }
}
