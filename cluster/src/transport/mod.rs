//! Messages between processes: length-prefixed rmp-serde frames over TCP with a version
//! handshake.
//!
//! - [`frame`]: a 4-byte big-endian length, then the payload; the length is checked against
//!   `rpc.max-frame-size` before anything is allocated.
//! - [`handshake`]: the initiator's [`Hello`] (magic, [`PROTOCOL_VERSION`], riffle version,
//!   node) and the acceptor's `Welcome` or `Refused`; a peer of another version or no riffle at
//!   all is refused, logged and dropped.
//! - [`connection`]: [`Connection<T>`] for typed messages and [`connect`]; [`listener`]:
//!   [`Listener`], whose `accept` hands out handshaken connections and keeps serving whatever
//!   a single peer sends.
//! - [`error`]: [`TransportError`], with its domain and whether a retry may help.
//!
//! A bad peer costs one connection, never the process: nothing here panics on input, every
//! wait of the setup has a timeout, and buffers grow only with bytes actually received.

pub mod connection;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod listener;
pub(crate) mod message;

pub use connection::{connect, Connection, ConnectionReader, ConnectionWriter, Timeouts};
pub use error::{Stage, TransportError};
pub use frame::{FrameReader, FrameWriter, DEFAULT_MAX_FRAME_SIZE, FRAME_HEADER};
pub use handshake::{Hello, HelloReply, HANDSHAKE_MAX_FRAME_SIZE, MAGIC, PROTOCOL_VERSION};
pub use listener::{Listener, MAX_PENDING_HANDSHAKES};
