//! A handshaken TCP connection carrying typed messages, one rmp-serde value per frame, and the
//! initiator's way to open one.

use std::marker::PhantomData;
use std::net::SocketAddr;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpStream, ToSocketAddrs};

use super::error::{Stage, TransportError};
use super::frame::{FrameReader, FrameWriter, DEFAULT_MAX_FRAME_SIZE};
use super::handshake::{self, Hello};
use super::message::{decode, encode_into};

/// How long the wire layer waits for the network. Every wait of a connection's setup has one,
/// so a dead or silent peer costs a bounded time; waits for messages after the handshake have
/// none (an idle connection is normal) and are the caller's to bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Resolving the address and establishing TCP (initiator only).
    pub connect: Duration,
    /// The whole handshake, on either side.
    pub handshake: Duration,
}

impl Default for Timeouts {
    /// 10 s each.
    fn default() -> Self {
        Timeouts { connect: Duration::from_secs(10), handshake: Duration::from_secs(10) }
    }
}

/// A connection to another riffle process, past the handshake, for messages of type `T` in both
/// directions (typically an enum of the gateway messages).
///
/// Both directions refuse frames over `max_frame_size` (default 64 MiB, `rpc.max-frame-size`).
/// A frame that breaks the protocol (too large, truncated, not a `T`) ends the connection:
/// `recv` returns the error once, shuts the connection down and fails with `Broken` from then
/// on; other connections are not affected.
#[derive(Debug)]
pub struct Connection<T> {
    reader: FrameReader<OwnedReadHalf>,
    writer: FrameWriter<OwnedWriteHalf>,
    peer_addr: SocketAddr,
    peer_node: String,
    broken: bool,
    /// `fn(T) -> T`: the connection neither owns nor shares a `T`, so it is `Send` and `Sync`
    /// whatever `T` is.
    _messages: PhantomData<fn(T) -> T>,
}

impl<T: Serialize + DeserializeOwned> Connection<T> {
    /// A connection from a stream that passed the handshake (frame limits already the session's).
    pub(crate) fn from_parts(
        reader: FrameReader<OwnedReadHalf>,
        writer: FrameWriter<OwnedWriteHalf>,
        peer_addr: SocketAddr,
        peer_node: String,
    ) -> Self {
        Connection { reader, writer, peer_addr, peer_node, broken: false, _messages: PhantomData }
    }

    /// Sends one message. Fails without sending anything when the message does not encode or
    /// is over the frame limit (the connection stays usable); an I/O error, or dropping this
    /// future before it completes, leaves the connection `Broken`.
    pub async fn send(&mut self, message: &T) -> Result<(), TransportError> {
        if self.broken {
            return Err(TransportError::Broken);
        }
        self.writer.write_frame_with(|buf| encode_into(buf, message)).await
    }

    /// The next message, or `None` when the peer closed the connection cleanly.
    ///
    /// Cancel-safe: dropping the future (in a `select!`) loses no message.
    pub async fn recv(&mut self) -> Result<Option<T>, TransportError> {
        if self.broken {
            return Err(TransportError::Broken);
        }
        let result = read_message(&mut self.reader, self.peer_addr, &self.peer_node).await;
        if result.is_err() {
            self.broken = true;
            // Tell the peer at once; the socket itself closes when the connection is dropped.
            let _ = self.writer.shutdown().await;
        }
        result
    }

    /// Closes our direction cleanly: the peer's `recv` returns `None` once it has read what was
    /// sent. Messages the peer still sends can be received until it closes too.
    pub async fn close(&mut self) -> Result<(), TransportError> {
        self.writer.shutdown().await
    }
}

impl<T: Serialize + DeserializeOwned> Connection<T> {
    /// Splits the connection so one task can read while another writes (a link's reader and
    /// writer must not wait on each other: two peers blocked writing to each other would
    /// never read).
    pub fn into_split(self) -> (ConnectionReader<T>, ConnectionWriter<T>) {
        let Connection { reader, writer, peer_addr, peer_node, broken, .. } = self;
        (
            ConnectionReader { reader, peer_addr, peer_node, broken, _messages: PhantomData },
            ConnectionWriter { writer, broken, _messages: PhantomData },
        )
    }
}

/// The receiving half of a [`Connection`].
#[derive(Debug)]
pub struct ConnectionReader<T> {
    reader: FrameReader<OwnedReadHalf>,
    peer_addr: SocketAddr,
    peer_node: String,
    broken: bool,
    _messages: PhantomData<fn(T) -> T>,
}

impl<T: DeserializeOwned> ConnectionReader<T> {
    /// The next message, `None` when the peer closed cleanly; a frame that breaks the protocol
    /// is logged and returned as the error, and the half fails with `Broken` from then on.
    /// Cancel-safe.
    pub async fn recv(&mut self) -> Result<Option<T>, TransportError> {
        if self.broken {
            return Err(TransportError::Broken);
        }
        let result = read_message(&mut self.reader, self.peer_addr, &self.peer_node).await;
        self.broken = result.is_err();
        result
    }

    /// The peer's socket address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
    }

    /// The largest payload this half accepts.
    pub fn max_frame_size(&self) -> u32 {
        self.reader.max_frame_size()
    }

    /// The peer's node name from the handshake.
    pub fn peer_node(&self) -> &str {
        &self.peer_node
    }

    /// The next frame's payload as it came (for protocols that lay out part of their frames
    /// themselves); `None` when the peer closed. Borrowed until the next call.
    /// Reads the next frame into a buffer `buffer(len)` provides (see
    /// `FrameReader::read_frame_into`).
    pub async fn recv_into<B, F, Fut>(&mut self, buffer: F) -> Result<Option<B>, TransportError>
    where
        B: AsMut<Vec<u8>>,
        F: FnOnce(usize) -> Fut,
        Fut: std::future::Future<Output = Result<B, TransportError>>,
    {
        if self.broken {
            return Err(TransportError::Broken);
        }
        let r = self.reader.read_frame_into(buffer).await;
        self.broken = r.is_err();
        r
    }

    pub async fn recv_raw(&mut self) -> Result<Option<&[u8]>, TransportError> {
        if self.broken {
            return Err(TransportError::Broken);
        }
        match self.reader.read_frame().await {
            Ok(p) => Ok(p),
            Err(e) => {
                self.broken = true;
                Err(e)
            }
        }
    }
}

/// The sending half of a [`Connection`]. Dropping it (or [`ConnectionWriter::close`]) tells
/// the peer the connection ends.
#[derive(Debug)]
pub struct ConnectionWriter<T> {
    writer: FrameWriter<OwnedWriteHalf>,
    broken: bool,
    _messages: PhantomData<fn(T) -> T>,
}

impl<T: Serialize> ConnectionWriter<T> {
    /// Sends one message (see [`Connection::send`]).
    pub async fn send(&mut self, message: &T) -> Result<(), TransportError> {
        if self.broken {
            return Err(TransportError::Broken);
        }
        let r = self.writer.write_frame_with(|buf| encode_into(buf, message)).await;
        if matches!(r, Err(TransportError::Io(_))) {
            self.broken = true;
        }
        r
    }

    /// Closes this direction cleanly.
    pub async fn close(&mut self) -> Result<(), TransportError> {
        self.writer.shutdown().await
    }

    /// Sends one frame the caller prepared in its own buffer (see
    /// `FrameWriter::write_prepared`).
    pub async fn send_prepared(&mut self, frame: &mut [u8]) -> Result<(), TransportError> {
        if self.broken {
            return Err(TransportError::Broken);
        }
        let r = self.writer.write_prepared(frame).await;
        if matches!(r, Err(TransportError::Io(_))) {
            self.broken = true;
        }
        r
    }

    /// Sends one frame whose payload `encode` writes in place into the frame's buffer.
    pub async fn send_raw<F>(&mut self, encode: F) -> Result<(), TransportError>
    where
        F: FnOnce(&mut Vec<u8>) -> Result<(), TransportError>,
    {
        if self.broken {
            return Err(TransportError::Broken);
        }
        let r = self.writer.write_frame_with(encode).await;
        if matches!(r, Err(TransportError::Io(_))) {
            self.broken = true;
        }
        r
    }
}

impl<T> Connection<T> {
    /// The peer's socket address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
    }

    /// The peer's node name from the handshake.
    pub fn peer_node(&self) -> &str {
        &self.peer_node
    }

    /// The frame limit of both directions.
    pub fn max_frame_size(&self) -> u32 {
        self.writer.max_frame_size()
    }

    /// Sets the frame limit of both directions (`rpc.max-frame-size`); both peers should agree.
    pub fn set_max_frame_size(&mut self, max_frame_size: u32) {
        self.reader.set_max_frame_size(max_frame_size);
        self.writer.set_max_frame_size(max_frame_size);
    }
}

/// Reads and decodes one message; a frame that breaks the protocol is logged with the peer.
async fn read_message<T: DeserializeOwned>(
    reader: &mut FrameReader<OwnedReadHalf>,
    peer: SocketAddr,
    node: &str,
) -> Result<Option<T>, TransportError> {
    let result = match reader.read_frame().await {
        Ok(Some(payload)) => decode(payload, Stage::Session).map(Some),
        Ok(None) => Ok(None),
        Err(e) => Err(e),
    };
    if let Err(e) = &result {
        if e.is_peer_fault() {
            tracing::warn!(%peer, %node, error = %e, "dropping a connection: the peer broke the protocol");
        } else {
            tracing::debug!(%peer, %node, error = %e, "connection failed");
        }
    }
    result
}

/// Opens a connection to the riffle process at `addr`: TCP within `timeouts.connect`, then our
/// `hello` and the peer's answer within `timeouts.handshake`. The frame limit starts at the
/// default (`set_max_frame_size` changes it).
///
/// Errors: `Timeout`, `Io` (nobody listening), `Refused` (the peer runs another protocol
/// version or did not like our hello), `Undecodable`/`FrameTooLarge` (the peer is not riffle).
pub async fn connect<T: Serialize + DeserializeOwned>(
    addr: impl ToSocketAddrs,
    hello: Hello,
    timeouts: Timeouts,
) -> Result<Connection<T>, TransportError> {
    let stream = tokio::time::timeout(timeouts.connect, TcpStream::connect(addr))
        .await
        .map_err(|_| TransportError::Timeout { after: timeouts.connect, waiting_for: "a TCP connection" })??;
    let peer_addr = stream.peer_addr()?;
    stream.set_nodelay(true)?;
    let (read, write) = stream.into_split();
    let mut reader = FrameReader::new(read, DEFAULT_MAX_FRAME_SIZE);
    let mut writer = FrameWriter::new(write, DEFAULT_MAX_FRAME_SIZE);
    match handshake::initiate(&mut reader, &mut writer, &hello, timeouts.handshake).await {
        Ok(peer_node) => {
            tracing::debug!(peer = %peer_addr, node = %peer_node, "connected");
            Ok(Connection::from_parts(reader, writer, peer_addr, peer_node))
        }
        Err(e) => {
            if e.is_peer_fault() || matches!(e, TransportError::Refused { .. }) {
                tracing::warn!(peer = %peer_addr, error = %e, "the handshake with a peer failed");
            }
            Err(e)
        }
    }
}
