//! The accepting side: a TCP listener whose `accept` hands out handshaken connections.
//!
//! Handshakes run concurrently inside `accept` (at most [`MAX_PENDING_HANDSHAKES`] at a time,
//! each bounded by the handshake timeout), so a silent or slow peer never holds up the others,
//! and no task is spawned: dropping the listener drops every connection not yet handed out.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};

use super::connection::{Connection, Timeouts};
use super::error::TransportError;
use super::frame::{FrameReader, FrameWriter, DEFAULT_MAX_FRAME_SIZE};
use super::handshake::{self, Hello};

/// How many accepted TCP connections may be in their handshake at once; past it, new ones wait
/// in the OS backlog.
pub const MAX_PENDING_HANDSHAKES: usize = 128;

/// The pause after the OS failed to accept (out of file descriptors, say), so that a caller
/// calling `accept` again at once does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// A connection past the handshake, not yet typed.
struct Accepted {
    reader: FrameReader<OwnedReadHalf>,
    writer: FrameWriter<OwnedWriteHalf>,
    peer_addr: SocketAddr,
    hello: Hello,
}

type PendingHandshake = Pin<Box<dyn Future<Output = Result<Accepted, TransportError>> + Send>>;

/// Listens for riffle peers.
pub struct Listener {
    tcp: TcpListener,
    local_addr: SocketAddr,
    node: Arc<str>,
    timeouts: Timeouts,
    max_frame_size: u32,
    pending: FuturesUnordered<PendingHandshake>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("local_addr", &self.local_addr)
            .field("node", &self.node)
            .field("timeouts", &self.timeouts)
            .field("max_frame_size", &self.max_frame_size)
            .field("pending_handshakes", &self.pending.len())
            .finish()
    }
}

impl Listener {
    /// Listens on `addr` (port 0: any free port, see `local_addr`) as the node `node`, the name
    /// sent in every `Welcome`. Of `timeouts`, only `handshake` applies here.
    pub async fn bind(
        addr: impl ToSocketAddrs,
        node: impl Into<String>,
        timeouts: Timeouts,
    ) -> Result<Listener, TransportError> {
        let tcp = TcpListener::bind(addr).await?;
        let local_addr = tcp.local_addr()?;
        Ok(Listener {
            tcp,
            local_addr,
            node: Arc::from(node.into()),
            timeouts,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            pending: FuturesUnordered::new(),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The frame limit given to the connections accepted from now on.
    pub fn max_frame_size(&self) -> u32 {
        self.max_frame_size
    }

    /// Sets the frame limit (`rpc.max-frame-size`) for the connections accepted from now on.
    pub fn set_max_frame_size(&mut self, max_frame_size: u32) {
        self.max_frame_size = max_frame_size;
    }

    /// The next peer that passed the handshake, or the error of one that did not (refused,
    /// garbage, timed out; already logged with its address) or of the OS's accept. Either way
    /// the listener keeps serving: call `accept` again, in a loop, since handshakes only make
    /// progress while `accept` is awaited.
    ///
    /// Cancel-safe: handshakes in progress carry on at the next call.
    pub async fn accept<T: Serialize + DeserializeOwned>(&mut self) -> Result<Connection<T>, TransportError> {
        enum Event {
            Tcp(io::Result<(TcpStream, SocketAddr)>),
            Handshake(Result<Accepted, TransportError>),
        }
        loop {
            // Past the cap, only finishing handshakes are awaited; the cap is at least 1, so
            // one branch is always enabled.
            let may_accept = self.pending.len() < MAX_PENDING_HANDSHAKES;
            let event = tokio::select! {
                accepted = self.tcp.accept(), if may_accept => Event::Tcp(accepted),
                Some(done) = self.pending.next(), if !self.pending.is_empty() => Event::Handshake(done),
            };
            match event {
                Event::Tcp(Ok((stream, peer_addr))) => self.pending.push(Box::pin(handshake_incoming(
                    stream,
                    peer_addr,
                    self.node.clone(),
                    self.timeouts.handshake,
                    self.max_frame_size,
                ))),
                Event::Tcp(Err(e)) => {
                    // A connection that died in the backlog concerns that peer only; anything
                    // else (no file descriptors left) is worth a pause.
                    if !matches!(e.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset) {
                        tracing::warn!(addr = %self.local_addr, error = %e, "accepting a TCP connection failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                    return Err(e.into());
                }
                Event::Handshake(result) => {
                    return result.map(|a| Connection::from_parts(a.reader, a.writer, a.peer_addr, a.hello.node));
                }
            }
        }
    }
}

/// The acceptor's side of one peer's handshake; failures are logged here, with the peer.
async fn handshake_incoming(
    stream: TcpStream,
    peer_addr: SocketAddr,
    node: Arc<str>,
    timeout: Duration,
    max_frame_size: u32,
) -> Result<Accepted, TransportError> {
    stream.set_nodelay(true)?;
    let (read, write) = stream.into_split();
    let mut reader = FrameReader::new(read, max_frame_size);
    let mut writer = FrameWriter::new(write, max_frame_size);
    match handshake::respond(&mut reader, &mut writer, &node, timeout).await {
        Ok(hello) => {
            tracing::debug!(peer = %peer_addr, node = %hello.node, version = %hello.riffle_version, "accepted a peer");
            Ok(Accepted { reader, writer, peer_addr, hello })
        }
        Err(e) => {
            if e.is_peer_fault() || matches!(e, TransportError::Timeout { .. }) {
                tracing::warn!(peer = %peer_addr, error = %e, "refused a connection");
            } else {
                tracing::debug!(peer = %peer_addr, error = %e, "a connection ended during its handshake");
            }
            Err(e)
        }
    }
}
