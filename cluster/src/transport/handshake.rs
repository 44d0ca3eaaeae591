//! The version handshake: before any message, the initiator sends a [`Hello`] and the acceptor
//! answers [`HelloReply::Welcome`] or [`HelloReply::Refused`] (then closes). A peer that is not
//! riffle, or riffle of another protocol version, is thereby refused before a single message
//! of the wrong shape is decoded.
//!
//! The shapes of `Hello` and `HelloReply` are frozen across protocol versions (new versions may
//! only add fields at the end of `Hello`), so that any two versions can tell each other apart
//! and say so; everything else may change with `PROTOCOL_VERSION`.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use serde::de::{IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};

use super::error::{Stage, TransportError};
use super::frame::{FrameReader, FrameWriter};
use super::message::{decode, encode_into};

/// The first 8 bytes of every `Hello`: tells a riffle peer from anything else on the port.
pub const MAGIC: [u8; 8] = *b"RIFFLE01";

/// The version of the message protocol; peers must have the same one. Raise it with any change
/// to the shape of the messages that travel after the handshake (2: typed errors in the link's
/// answers; 3: log queries, memory in heartbeats, `RuntimeError::NotFound`, tasks report the
/// end of their input and a finished source's reader state).
pub const PROTOCOL_VERSION: u32 = 3;

/// The limit on a handshake frame: a `Hello` is small, so a stray peer's length prefix never
/// makes us allocate up to the session's `rpc.max-frame-size`.
pub const HANDSHAKE_MAX_FRAME_SIZE: u32 = 64 * 1024;

/// The first frame of a connection, from the initiator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Always [`MAGIC`].
    pub magic: [u8; 8],
    /// The initiator's [`PROTOCOL_VERSION`].
    pub protocol: u32,
    /// The initiator's riffle version, for the logs.
    pub riffle_version: String,
    /// The initiator's node name (its resource id or role), for the logs and the acceptor.
    pub node: String,
}

impl Hello {
    /// This build's `Hello` for the node called `node`.
    pub fn new(node: impl Into<String>) -> Self {
        Hello {
            magic: MAGIC,
            protocol: PROTOCOL_VERSION,
            riffle_version: env!("CARGO_PKG_VERSION").to_string(),
            node: node.into(),
        }
    }
}

/// The acceptor's answer to a `Hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HelloReply {
    /// Accepted: messages may follow.
    Welcome {
        /// The acceptor's node name.
        node: String,
    },
    /// Refused: the acceptor closes the connection.
    Refused {
        /// Why, for the initiator's error and logs.
        reason: String,
    },
}

/// The part of a `Hello` that every protocol version can read, whatever follows it.
struct HelloHead {
    magic: [u8; 8],
    protocol: u32,
}

impl<'de> Deserialize<'de> for HelloHead {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HeadVisitor;
        impl<'de> Visitor<'de> for HeadVisitor {
            type Value = HelloHead;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a riffle Hello (an array starting with the magic and the protocol version)")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<HelloHead, A::Error> {
                let magic = seq.next_element()?.ok_or_else(|| serde::de::Error::invalid_length(0, &self))?;
                let protocol = seq.next_element()?.ok_or_else(|| serde::de::Error::invalid_length(1, &self))?;
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(HelloHead { magic, protocol })
            }
        }
        deserializer.deserialize_seq(HeadVisitor)
    }
}

/// Runs `exchange` within `timeout`, or fails with a `Timeout` naming what was awaited.
async fn within<T>(
    timeout: Duration,
    waiting_for: &'static str,
    exchange: impl Future<Output = Result<T, TransportError>>,
) -> Result<T, TransportError> {
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or(Err(TransportError::Timeout { after: timeout, waiting_for }))
}

/// The initiator's half: sends `hello`, awaits the answer within `timeout`. Returns the
/// acceptor's node name, or `Refused` with the acceptor's reason.
pub async fn initiate<R, W>(
    reader: &mut FrameReader<R>,
    writer: &mut FrameWriter<W>,
    hello: &Hello,
    timeout: Duration,
) -> Result<String, TransportError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let session_limit = reader.max_frame_size();
    reader.set_max_frame_size(HANDSHAKE_MAX_FRAME_SIZE);
    let reply = within(timeout, "the peer's answer to our hello", async {
        writer.write_frame_with(|buf| encode_into(buf, hello)).await?;
        match reader.read_frame().await? {
            Some(payload) => decode::<HelloReply>(payload, Stage::Handshake),
            None => Err(closed_during_handshake()),
        }
    })
    .await?;
    reader.set_max_frame_size(session_limit);
    match reply {
        HelloReply::Welcome { node } => Ok(node),
        HelloReply::Refused { reason } => Err(TransportError::Refused { reason }),
    }
}

/// The acceptor's half: reads the peer's `Hello` within `timeout`, checks its magic and
/// protocol version and answers; returns the peer's `Hello`. A bad `Hello` is answered with
/// `Refused` (as far as the peer still listens) and returned as the error; the caller closes.
pub async fn respond<R, W>(
    reader: &mut FrameReader<R>,
    writer: &mut FrameWriter<W>,
    node: &str,
    timeout: Duration,
) -> Result<Hello, TransportError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let session_limit = reader.max_frame_size();
    reader.set_max_frame_size(HANDSHAKE_MAX_FRAME_SIZE);
    let hello = within(timeout, "the peer's hello", async {
        match read_hello(reader).await {
            Ok(hello) => {
                writer
                    .write_frame_with(|buf| encode_into(buf, &HelloReply::Welcome { node: node.to_string() }))
                    .await?;
                Ok(hello)
            }
            Err(e) => {
                if let Some(reason) = refusal_reason(&e, node) {
                    // Best effort: the peer may be gone or not be reading.
                    let refused = HelloReply::Refused { reason };
                    if writer.write_frame_with(|buf| encode_into(buf, &refused)).await.is_ok() {
                        let _ = writer.shutdown().await;
                    }
                }
                Err(e)
            }
        }
    })
    .await?;
    reader.set_max_frame_size(session_limit);
    Ok(hello)
}

/// Reads and checks the peer's `Hello`: magic first (a foreign peer), then the version, then
/// the rest.
async fn read_hello<R: AsyncRead + Unpin>(reader: &mut FrameReader<R>) -> Result<Hello, TransportError> {
    let payload = reader.read_frame().await?.ok_or_else(closed_during_handshake)?;
    let head: HelloHead = decode(payload, Stage::Handshake)?;
    if head.magic != MAGIC {
        return Err(TransportError::BadMagic { found: head.magic });
    }
    if head.protocol != PROTOCOL_VERSION {
        return Err(TransportError::ProtocolMismatch { ours: PROTOCOL_VERSION, theirs: head.protocol });
    }
    decode(payload, Stage::Handshake)
}

/// What to tell a peer whose `Hello` was refused, or `None` when it is gone anyway.
fn refusal_reason(error: &TransportError, node: &str) -> Option<String> {
    match error {
        TransportError::BadMagic { .. } => Some("not a riffle hello (bad magic)".to_string()),
        TransportError::ProtocolMismatch { ours, theirs } => Some(format!(
            "protocol version {theirs} is not supported: {node} runs riffle {} with protocol version {ours}",
            env!("CARGO_PKG_VERSION")
        )),
        TransportError::Undecodable { detail, .. } => Some(format!("the hello could not be decoded: {detail}")),
        TransportError::FrameTooLarge { size, limit } => {
            Some(format!("the hello frame has {size} bytes, at most {limit} are accepted"))
        }
        _ => None,
    }
}

fn closed_during_handshake() -> TransportError {
    TransportError::Io(std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "the peer closed the connection during the handshake",
    ))
}
