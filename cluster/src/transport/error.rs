//! What can go wrong between two riffle processes, with the same domains as the crate's
//! [`ClusterError`](crate::ClusterError): the caller's to fix, the environment's (retrying
//! may help) or riffle's own.

use std::fmt;
use std::time::Duration;

use crate::error::ErrorDomain;

/// Which part of a connection's life an undecodable frame arrived in: a garbled handshake means
/// the other end is not a riffle process (or a wrong address), a garbled message after a
/// successful handshake means a bug, since both sides speak the same protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The `Hello` or its answer.
    Handshake,
    /// A typed message after the handshake.
    Session,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Handshake => "handshake frame",
            Stage::Session => "message",
        })
    }
}

/// An error of the wire layer. Every one concerns a single connection: the process and, on the
/// accepting side, the listener carry on.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The socket failed (connection refused or reset, address in use, ...).
    #[error("transport I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// A frame's length is over the limit (`rpc.max-frame-size`, or `HANDSHAKE_MAX_FRAME_SIZE`
    /// during the handshake); it was neither allocated nor read (or, when sending, not written).
    #[error(
        "a frame of {size} bytes is over the limit of {limit} bytes (rpc.max-frame-size; 64 KiB in the handshake)"
    )]
    FrameTooLarge {
        /// The frame's payload length.
        size: u64,
        /// The limit.
        limit: u32,
    },
    /// The peer closed the connection in the middle of a frame.
    #[error("truncated frame: the connection closed after {received} of the frame's {expected} bytes")]
    TruncatedFrame {
        /// Bytes of the frame (length prefix included) that arrived.
        received: u64,
        /// Bytes the frame should have had (only the 4-byte prefix when that was cut short).
        expected: u64,
    },
    /// The peer's `Hello` does not start with riffle's magic: it is not a riffle process.
    #[error("not a riffle peer: bad magic \"{}\"", .found.escape_ascii())]
    BadMagic {
        /// What the peer sent instead.
        found: [u8; 8],
    },
    /// The peer speaks another version of the protocol.
    #[error("protocol version mismatch: ours is {ours}, the peer's is {theirs}")]
    ProtocolMismatch {
        /// This build's `PROTOCOL_VERSION`.
        ours: u32,
        /// The peer's.
        theirs: u32,
    },
    /// The peer refused our `Hello`.
    #[error("the peer refused the connection: {reason}")]
    Refused {
        /// The peer's reason.
        reason: String,
    },
    /// A frame's payload is not what was expected there.
    #[error("undecodable {stage}: {detail}")]
    Undecodable {
        /// Where in the connection's life.
        stage: Stage,
        /// The decoder's complaint.
        detail: String,
    },
    /// One of our own messages could not be encoded; nothing was sent.
    #[error("a message could not be encoded: {0}")]
    Encode(String),
    /// A wait ran out.
    #[error("timed out after {after:?} waiting for {waiting_for}")]
    Timeout {
        /// The timeout.
        after: Duration,
        /// What was awaited.
        waiting_for: &'static str,
    },
    /// The connection was used after an earlier error (or an interrupted send) left it in an
    /// unknown state; it must be dropped and a new one made.
    #[error("the connection is unusable after an earlier error")]
    Broken,
}

impl TransportError {
    /// Where the error comes from: `User` for a deployment to fix (a wrong address, mixed
    /// versions, a frame limit too small), `External` for the network (retrying may help),
    /// `Internal` for a bug in riffle.
    pub fn domain(&self) -> ErrorDomain {
        match self {
            TransportError::Io(_) | TransportError::TruncatedFrame { .. } | TransportError::Timeout { .. } => {
                ErrorDomain::External
            }
            TransportError::FrameTooLarge { .. }
            | TransportError::BadMagic { .. }
            | TransportError::ProtocolMismatch { .. }
            | TransportError::Refused { .. } => ErrorDomain::User,
            TransportError::Undecodable { stage: Stage::Handshake, .. } => ErrorDomain::User,
            TransportError::Undecodable { stage: Stage::Session, .. }
            | TransportError::Encode(_)
            | TransportError::Broken => ErrorDomain::Internal,
        }
    }

    /// Whether the same call on a new connection may succeed later.
    pub fn is_retryable(&self) -> bool {
        self.domain() == ErrorDomain::External
    }

    /// Whether the bytes on the wire were at fault (garbage, a foreign or mismatched peer), as
    /// opposed to the network or ourselves: these are worth a warning naming the peer.
    pub(crate) fn is_peer_fault(&self) -> bool {
        matches!(
            self,
            TransportError::FrameTooLarge { .. }
                | TransportError::TruncatedFrame { .. }
                | TransportError::BadMagic { .. }
                | TransportError::ProtocolMismatch { .. }
                | TransportError::Undecodable { .. }
        )
    }
}
