//! The wire layer between riffle processes, over loopback TCP: typed round trips, and every
//! kind of bad peer (random bytes, truncated frames, huge length prefixes, foreign magic, other
//! protocol versions, undecodable messages, silence) refused with its own error while the same
//! listener keeps serving good clients. Every wait is bounded; every test binds its own port.

use std::future::Future;
use std::time::Duration;

use riffle_actors::gateway::{RegisterTaskExecutor, RequestSlots, SlotError};
use riffle_actors::{JobId, ResourceId};
use riffle_cluster::error::ErrorDomain;
use riffle_cluster::transport::{
    connect, Connection, FrameReader, FrameWriter, Hello, HelloReply, Listener, Stage, Timeouts, TransportError,
    DEFAULT_MAX_FRAME_SIZE, HANDSHAKE_MAX_FRAME_SIZE, MAGIC, PROTOCOL_VERSION,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The bound on any single wait of a test.
const WAIT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Msg {
    Ping(u64),
    Text { id: u32, body: String },
    Many(Vec<i64>),
    Nothing,
}

async fn within<F: Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(WAIT, f).await {
        Ok(out) => out,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

fn timeouts() -> Timeouts {
    Timeouts { connect: Duration::from_secs(5), handshake: Duration::from_secs(5) }
}

async fn listener() -> Listener {
    Listener::bind("127.0.0.1:0", "server", timeouts()).await.expect("bind")
}

/// A good client connected to `listener`: (server side, client side).
async fn pair(listener: &mut Listener) -> (Connection<Msg>, Connection<Msg>) {
    let addr = listener.local_addr();
    let (server, client) = within("a handshake", async {
        tokio::join!(listener.accept::<Msg>(), connect::<Msg>(addr, Hello::new("client"), timeouts()))
    })
    .await;
    (server.expect("server side of a good client"), client.expect("client side of a good client"))
}

/// The listener still accepts a good client and both directions work.
async fn assert_still_serves(listener: &mut Listener) {
    let (mut server, mut client) = pair(listener).await;
    within("a ping", client.send(&Msg::Ping(7))).await.expect("client send");
    assert_eq!(within("a ping", server.recv()).await.expect("server recv"), Some(Msg::Ping(7)));
    within("a pong", server.send(&Msg::Ping(8))).await.expect("server send");
    assert_eq!(within("a pong", client.recv()).await.expect("client recv"), Some(Msg::Ping(8)));
}

/// A raw TCP peer sends `bytes` as its opening, closes its direction, and drains what comes
/// back; the listener's result for it.
async fn raw_opening(listener: &mut Listener, bytes: &[u8]) -> (Result<Connection<Msg>, TransportError>, Vec<u8>) {
    let addr = listener.local_addr();
    within("a raw peer", async {
        tokio::join!(listener.accept::<Msg>(), async {
            let mut s = TcpStream::connect(addr).await.expect("tcp connect");
            // The server may refuse and close before all is written: that is fine.
            let _ = s.write_all(bytes).await;
            let _ = s.shutdown().await;
            let mut back = Vec::new();
            let _ = s.read_to_end(&mut back).await;
            back
        })
    })
    .await
}

fn expect_err<T: std::fmt::Debug>(r: Result<T, TransportError>) -> TransportError {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e,
    }
}

/// A raw client that did the handshake by hand, to send broken frames afterwards.
struct RawClient {
    reader: FrameReader<tokio::net::tcp::OwnedReadHalf>,
    writer: FrameWriter<tokio::net::tcp::OwnedWriteHalf>,
}

async fn raw_handshaken(listener: &mut Listener) -> (Connection<Msg>, RawClient) {
    let addr = listener.local_addr();
    let (server, client) = within("a hand-made handshake", async {
        tokio::join!(listener.accept::<Msg>(), async {
            let (r, w) = TcpStream::connect(addr).await.expect("tcp connect").into_split();
            let mut reader = FrameReader::new(r, DEFAULT_MAX_FRAME_SIZE);
            let mut writer = FrameWriter::new(w, DEFAULT_MAX_FRAME_SIZE);
            let hello = rmp_serde::to_vec(&Hello::new("raw")).expect("encode hello");
            writer.write_frame(&hello).await.expect("send hello");
            let reply = reader.read_frame().await.expect("read reply").expect("a reply frame");
            let reply: HelloReply = rmp_serde::from_slice(reply).expect("decode reply");
            assert_eq!(reply, HelloReply::Welcome { node: "server".to_string() });
            RawClient { reader, writer }
        })
    })
    .await;
    (server.expect("server side of the raw client"), client)
}

/// Reads until the peer closes; true when it closed (cleanly or by reset), not timed out.
async fn sees_close(client: &mut RawClient) -> bool {
    loop {
        match within("the server closing", client.reader.read_frame()).await {
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => return true,
        }
    }
}

/// xorshift64*: reproducible garbage without a dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn is_garbage_error(e: &TransportError) -> bool {
    matches!(
        e,
        TransportError::FrameTooLarge { .. }
            | TransportError::TruncatedFrame { .. }
            | TransportError::BadMagic { .. }
            | TransportError::ProtocolMismatch { .. }
            | TransportError::Undecodable { stage: Stage::Handshake, .. }
    )
}

#[tokio::test(flavor = "current_thread")]
async fn typed_round_trip_of_many_messages_both_ways() {
    let mut listener = listener().await;
    let (mut server, mut client) = pair(&mut listener).await;
    assert_eq!(server.peer_node(), "client");
    assert_eq!(client.peer_node(), "server");
    assert_eq!(client.peer_addr(), listener.local_addr());
    let messages: Vec<Msg> = (0..2000u32)
        .map(|i| match i % 4 {
            0 => Msg::Ping(u64::from(i) << 33),
            1 => Msg::Text { id: i, body: "ü".repeat(i as usize % 50) },
            2 => Msg::Many((0..i64::from(i % 300)).map(|x| x * -3).collect()),
            _ => Msg::Nothing,
        })
        .collect();
    // Up: the client streams everything while the server reads; then down, the other way.
    let (sent, down) = within("the upstream", async {
        tokio::join!(
            async {
                for m in &messages {
                    client.send(m).await.expect("client send");
                }
                client.close().await.expect("client close");
            },
            async {
                let mut got = Vec::new();
                while let Some(m) = server.recv().await.expect("server recv") {
                    got.push(m);
                }
                got
            }
        )
    })
    .await;
    let ((), up) = within("the downstream", async {
        tokio::join!(
            async {
                for m in messages.iter().rev() {
                    server.send(m).await.expect("server send");
                }
                server.close().await.expect("server close");
            },
            async {
                let mut got = Vec::new();
                while let Some(m) = client.recv().await.expect("client recv") {
                    got.push(m);
                }
                got
            }
        )
    })
    .await;
    let () = sent;
    assert_eq!(down, messages, "client → server");
    let reversed: Vec<Msg> = messages.iter().rev().cloned().collect();
    assert_eq!(up, reversed, "server → client");
    // Clean close: `None` again, not an error.
    assert_eq!(within("a closed connection", server.recv()).await.expect("recv after close"), None);
}

#[tokio::test(flavor = "current_thread")]
async fn gateway_messages_cross_unchanged() {
    #[derive(Debug, Serialize, Deserialize)]
    enum Gateway {
        Register(RegisterTaskExecutor),
        Request(RequestSlots),
        Failed(SlotError),
    }
    let mut listener = listener().await;
    let addr = listener.local_addr();
    let (server, client) = within("a handshake", async {
        tokio::join!(listener.accept::<Gateway>(), connect::<Gateway>(addr, Hello::new("te-1"), timeouts()))
    })
    .await;
    let (mut server, mut client) = (server.expect("server"), client.expect("client"));
    let sent = vec![
        Gateway::Register(RegisterTaskExecutor { resource_id: ResourceId("te-1".to_string()), slots: 4 }),
        Gateway::Request(RequestSlots { job_id: JobId(u128::MAX - 5), count: 3, timeout_ms: 30_000 }),
        Gateway::Failed(SlotError::Timeout { needed: 3, free: 1, total: 2, max: "unlimited".into(), timeout_ms: 5 }),
    ];
    for m in &sent {
        within("a send", client.send(m)).await.expect("send");
    }
    for m in &sent {
        let got = within("a recv", server.recv()).await.expect("recv").expect("a message");
        assert_eq!(format!("{got:?}"), format!("{m:?}"));
    }
}

#[tokio::test(flavor = "current_thread")]
async fn random_bytes_are_refused_and_the_listener_keeps_serving() {
    let mut listener = listener().await;
    for seed in 1..=12u64 {
        let mut rng = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let len = 1 + (rng.next() % 600) as usize;
        // Pure garbage: the length prefix itself is random.
        let garbage = rng.bytes(len);
        let e = expect_err(raw_opening(&mut listener, &garbage).await.0);
        assert!(is_garbage_error(&e), "seed {seed}: raw garbage gave {e:?}");
        // A plausible length prefix around a random payload: gets past the frame layer.
        let payload = rng.bytes(len);
        let mut framed = (len as u32).to_be_bytes().to_vec();
        framed.extend_from_slice(&payload);
        let e = expect_err(raw_opening(&mut listener, &framed).await.0);
        assert!(is_garbage_error(&e), "seed {seed}: framed garbage gave {e:?}");
        assert_still_serves(&mut listener).await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn random_bytes_after_the_handshake_drop_that_connection() {
    let mut listener = listener().await;
    for seed in 1..=8u64 {
        let mut rng = XorShift(seed.wrapping_mul(0xD1B5_4A32_D192_ED03) | 1);
        let len = 1 + (rng.next() % 400) as usize;
        let garbage = rng.bytes(len);
        for framed in [false, true] {
            let (mut server, mut raw) = raw_handshaken(&mut listener).await;
            if framed {
                within("a garbage frame", raw.writer.write_frame(&garbage)).await.expect("send");
            } else {
                within("garbage", raw.writer.get_mut().write_all(&garbage)).await.expect("send");
                raw.writer.shutdown().await.expect("shutdown");
            }
            let e = expect_err(within("garbage to fail", server.recv()).await);
            assert!(
                matches!(
                    e,
                    TransportError::FrameTooLarge { .. }
                        | TransportError::TruncatedFrame { .. }
                        | TransportError::Undecodable { stage: Stage::Session, .. }
                ),
                "seed {seed}, framed {framed}: {e:?}"
            );
            assert!(matches!(within("recv after an error", server.recv()).await, Err(TransportError::Broken)));
            assert!(sees_close(&mut raw).await);
        }
    }
    assert_still_serves(&mut listener).await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_garbage_server_fails_the_initiator_cleanly() {
    for seed in 1..=6u64 {
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = tcp.local_addr().expect("addr");
        let mut rng = XorShift(seed * 7919);
        let len = 1 + (rng.next() % 300) as usize;
        let garbage = rng.bytes(len);
        let (client, ()) = within("a garbage server", async {
            tokio::join!(connect::<Msg>(addr, Hello::new("client"), timeouts()), async {
                let (mut s, _) = tcp.accept().await.expect("accept");
                let _ = s.write_all(&garbage).await;
                let _ = s.shutdown().await;
                let mut sink = Vec::new();
                let _ = s.read_to_end(&mut sink).await;
            })
        })
        .await;
        let e = expect_err(client);
        assert!(
            matches!(
                e,
                TransportError::FrameTooLarge { .. }
                    | TransportError::TruncatedFrame { .. }
                    | TransportError::Undecodable { stage: Stage::Handshake, .. }
            ),
            "seed {seed}: {e:?}"
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn truncated_frames_are_refused() {
    let mut listener = listener().await;
    // Cut inside the length prefix.
    let e = expect_err(raw_opening(&mut listener, &[0, 0]).await.0);
    assert!(matches!(e, TransportError::TruncatedFrame { received: 2, expected: 4 }), "{e:?}");
    // Cut inside the hello's payload.
    let mut bytes = 100u32.to_be_bytes().to_vec();
    bytes.extend_from_slice(&[0x94; 50]);
    let e = expect_err(raw_opening(&mut listener, &bytes).await.0);
    assert!(matches!(e, TransportError::TruncatedFrame { received: 54, expected: 104 }), "{e:?}");
    assert!(e.is_retryable());
    // Cut inside a message after the handshake.
    let (mut server, mut raw) = raw_handshaken(&mut listener).await;
    let mut bytes = 1000u32.to_be_bytes().to_vec();
    bytes.extend_from_slice(&[7; 10]);
    within("a partial frame", raw.writer.get_mut().write_all(&bytes)).await.expect("write partial frame");
    raw.writer.shutdown().await.expect("shutdown");
    let e = expect_err(within("a truncated message", server.recv()).await);
    assert!(matches!(e, TransportError::TruncatedFrame { received: 14, expected: 1004 }), "{e:?}");
    assert!(matches!(within("recv after an error", server.recv()).await, Err(TransportError::Broken)));
    assert!(matches!(within("send after an error", server.send(&Msg::Nothing)).await, Err(TransportError::Broken)));
    assert_still_serves(&mut listener).await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_length_prefix_of_4_gib_is_refused_without_allocating() {
    let mut listener = listener().await;
    let (result, answer) = raw_opening(&mut listener, &[0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3]).await;
    let e = expect_err(result);
    assert!(matches!(e, TransportError::FrameTooLarge { size: 0xFFFF_FFFF, limit: HANDSHAKE_MAX_FRAME_SIZE }), "{e:?}");
    assert_eq!(e.domain(), ErrorDomain::User);
    // The peer was told why (when it could still read).
    if answer.len() > 4 {
        let reply: HelloReply = rmp_serde::from_slice(&answer[4..]).expect("a reply");
        assert!(matches!(reply, HelloReply::Refused { .. }), "{reply:?}");
    }
    // After the handshake, against the session's limit.
    let (mut server, mut raw) = raw_handshaken(&mut listener).await;
    within("a prefix", raw.writer.get_mut().write_all(&[0xFF; 4])).await.expect("write prefix");
    let e = expect_err(within("a huge prefix", server.recv()).await);
    assert!(matches!(e, TransportError::FrameTooLarge { size: 0xFFFF_FFFF, limit: DEFAULT_MAX_FRAME_SIZE }), "{e:?}");
    assert!(sees_close(&mut raw).await);
    assert_still_serves(&mut listener).await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_wrong_magic_is_refused() {
    let mut listener = listener().await;
    let addr = listener.local_addr();
    let hello = Hello { magic: *b"NOTRIFLE", ..Hello::new("stranger") };
    let (server, client) = within("a foreign hello", async {
        tokio::join!(listener.accept::<Msg>(), connect::<Msg>(addr, hello, timeouts()))
    })
    .await;
    let e = expect_err(server);
    assert!(matches!(e, TransportError::BadMagic { found } if &found == b"NOTRIFLE"), "{e:?}");
    assert!(e.to_string().contains("NOTRIFLE"), "{e}");
    let e = expect_err(client);
    assert!(matches!(&e, TransportError::Refused { reason } if reason.contains("magic")), "{e:?}");
    assert!(!e.is_retryable());
    assert_still_serves(&mut listener).await;
}

#[tokio::test(flavor = "current_thread")]
async fn another_protocol_version_is_refused() {
    let mut listener = listener().await;
    let addr = listener.local_addr();
    let hello = Hello { protocol: PROTOCOL_VERSION + 1, ..Hello::new("future") };
    let (server, client) = within("a newer hello", async {
        tokio::join!(listener.accept::<Msg>(), connect::<Msg>(addr, hello, timeouts()))
    })
    .await;
    let e = expect_err(server);
    assert!(
        matches!(e, TransportError::ProtocolMismatch { ours, theirs } if ours == PROTOCOL_VERSION && theirs == PROTOCOL_VERSION + 1),
        "{e:?}"
    );
    let e = expect_err(client);
    assert!(
        matches!(&e, TransportError::Refused { reason } if reason.contains(&(PROTOCOL_VERSION + 1).to_string())),
        "{e:?}"
    );
    // A future hello with more fields still reads as a version mismatch, not as garbage.
    let future_hello = rmp_serde::to_vec(&(MAGIC, PROTOCOL_VERSION + 7, "9.0.0", "future", vec![1, 2, 3], "new field"))
        .expect("encode");
    let mut bytes = (future_hello.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(&future_hello);
    let e = expect_err(raw_opening(&mut listener, &bytes).await.0);
    assert!(matches!(e, TransportError::ProtocolMismatch { theirs, .. } if theirs == PROTOCOL_VERSION + 7), "{e:?}");
    assert_still_serves(&mut listener).await;
}

#[tokio::test(flavor = "current_thread")]
async fn an_undecodable_message_after_the_handshake_drops_that_connection_only() {
    let mut listener = listener().await;
    let (mut good_server, mut good_client) = pair(&mut listener).await;
    let encoded = rmp_serde::to_vec(&Msg::Ping(3)).expect("encode");
    let mut trailing = encoded.clone();
    trailing.push(0xC0);
    let payloads: [&[u8]; 4] =
        [b"\xC1 definitely not msgpack", &rmp_serde::to_vec(&"a string, not a Msg").expect("encode"), &trailing, &[]];
    for payload in payloads {
        let (mut server, mut raw) = raw_handshaken(&mut listener).await;
        within("a good frame", raw.writer.write_frame(&encoded)).await.expect("send");
        assert_eq!(within("a good message", server.recv()).await.expect("recv"), Some(Msg::Ping(3)));
        within("a bad frame", raw.writer.write_frame(payload)).await.expect("send");
        let e = expect_err(within("an undecodable message", server.recv()).await);
        assert!(matches!(e, TransportError::Undecodable { stage: Stage::Session, .. }), "{payload:?}: {e:?}");
        assert_eq!(e.domain(), ErrorDomain::Internal);
        assert!(matches!(within("recv after an error", server.recv()).await, Err(TransportError::Broken)));
        assert!(sees_close(&mut raw).await, "the bad peer's connection is closed");
    }
    // The connection that was open all along is untouched, and new ones are served.
    within("send", good_client.send(&Msg::Nothing)).await.expect("send on the untouched connection");
    assert_eq!(within("recv", good_server.recv()).await.expect("recv"), Some(Msg::Nothing));
    assert_still_serves(&mut listener).await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_silent_peer_times_out_without_holding_up_others() {
    let short = Timeouts { connect: Duration::from_secs(5), handshake: Duration::from_millis(300) };
    let mut listener = Listener::bind("127.0.0.1:0", "server", short).await.expect("bind");
    let addr = listener.local_addr();
    let silent = within("a silent connect", TcpStream::connect(addr)).await.expect("connect");
    let (server, client) = within("a good client", async {
        tokio::join!(listener.accept::<Msg>(), connect::<Msg>(addr, Hello::new("c"), timeouts()))
    })
    .await;
    // The good client came after the silent one and is served first.
    let (mut server, mut client) = (server.expect("server"), client.expect("client"));
    within("send", client.send(&Msg::Ping(1))).await.expect("send");
    assert_eq!(within("recv", server.recv()).await.expect("recv"), Some(Msg::Ping(1)));
    let e = expect_err(within("the silent peer's timeout", listener.accept::<Msg>()).await);
    assert!(matches!(e, TransportError::Timeout { after, .. } if after == Duration::from_millis(300)), "{e:?}");
    assert!(e.is_retryable());
    drop(silent);
    assert_still_serves(&mut listener).await;

    // The initiator's side: a server that accepts TCP and never answers.
    let mute = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let mute_addr = mute.local_addr().expect("addr");
    let (client, _held) = within("a mute server", async {
        tokio::join!(connect::<Msg>(mute_addr, Hello::new("c"), short), mute.accept())
    })
    .await;
    let e = expect_err(client);
    assert!(matches!(e, TransportError::Timeout { .. }), "{e:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn nobody_listening_is_a_retryable_io_error() {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = tcp.local_addr().expect("addr");
    drop(tcp);
    let e = expect_err(within("a refused connect", connect::<Msg>(addr, Hello::new("c"), timeouts())).await);
    assert!(matches!(e, TransportError::Io(_)), "{e:?}");
    assert!(e.is_retryable());
    assert_eq!(e.domain(), ErrorDomain::External);
}

/// A `Text` whose encoding has exactly `size` bytes.
fn text_of_encoded_size(size: usize) -> Msg {
    let overhead = rmp_serde::to_vec(&Msg::Text { id: 1, body: "x".repeat(size) }).expect("encode").len() - size;
    let msg = Msg::Text { id: 1, body: "x".repeat(size - overhead) };
    assert_eq!(rmp_serde::to_vec(&msg).expect("encode").len(), size);
    msg
}

#[tokio::test(flavor = "current_thread")]
async fn a_message_at_the_limit_passes_and_one_over_fails() {
    const LIMIT: u32 = 1024 * 1024;
    let mut listener = listener().await;
    listener.set_max_frame_size(LIMIT);
    let (mut server, mut client) = pair(&mut listener).await;
    client.set_max_frame_size(LIMIT);
    assert_eq!(server.max_frame_size(), LIMIT);

    let at_limit = text_of_encoded_size(LIMIT as usize);
    let (sent, got) =
        within("a message at the limit", async { tokio::join!(client.send(&at_limit), server.recv()) }).await;
    sent.expect("send at the limit");
    assert_eq!(got.expect("recv at the limit").as_ref(), Some(&at_limit));

    // Over the limit: refused before anything is written, the connection stays usable.
    let over = text_of_encoded_size(LIMIT as usize + 1);
    let e = expect_err(within("a message over the limit", client.send(&over)).await);
    assert!(matches!(e, TransportError::FrameTooLarge { size, limit: LIMIT } if size == u64::from(LIMIT) + 1), "{e:?}");
    within("send", client.send(&Msg::Ping(2))).await.expect("send after a refused one");
    assert_eq!(within("recv", server.recv()).await.expect("recv"), Some(Msg::Ping(2)));

    // A sender with a larger limit than the receiver: the receiver refuses the frame.
    client.set_max_frame_size(2 * LIMIT);
    let (sent, got) = within("an oversized frame", async { tokio::join!(client.send(&over), server.recv()) }).await;
    sent.expect("the sender's own limit allows it");
    let e = expect_err(got);
    assert!(matches!(e, TransportError::FrameTooLarge { limit: LIMIT, .. }), "{e:?}");
    assert!(matches!(within("recv after an error", server.recv()).await, Err(TransportError::Broken)));
    assert_still_serves(&mut listener).await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_message_near_the_default_limit_passes() {
    let mut listener = listener().await;
    let (mut server, mut client) = pair(&mut listener).await;
    let big = text_of_encoded_size(DEFAULT_MAX_FRAME_SIZE as usize - 64);
    let (sent, got) = within("a 64 MiB message", async { tokio::join!(client.send(&big), server.recv()) }).await;
    sent.expect("send");
    assert_eq!(got.expect("recv").as_ref(), Some(&big));
}

#[tokio::test(flavor = "current_thread")]
async fn frames_over_an_in_memory_pipe() {
    let (a, b) = tokio::io::duplex(64);
    let mut writer = FrameWriter::new(a, 1 << 20);
    let mut reader = FrameReader::new(b, 1 << 20);
    let sizes = [0usize, 1, 3, 4, 5, 63, 64, 65, 4096, 200_000, 7, 0, 1 << 20];
    within("frames", async {
        tokio::join!(
            async {
                for (i, &n) in sizes.iter().enumerate() {
                    writer.write_frame(&vec![i as u8; n]).await.expect("write");
                }
                writer.shutdown().await.expect("shutdown");
            },
            async {
                for (i, &n) in sizes.iter().enumerate() {
                    let f = reader.read_frame().await.expect("read").expect("a frame");
                    assert_eq!(f.len(), n);
                    assert!(f.iter().all(|&x| x == i as u8));
                }
                assert!(reader.read_frame().await.expect("clean end").is_none());
            }
        )
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn frames_read_into_given_buffers_with_headers_read_ahead_mixed_with_plain_reads() {
    // Big writes so that several frames (and the next frame's header) sit in the pipe at once.
    let (a, b) = tokio::io::duplex(1 << 16);
    let mut writer = FrameWriter::new(a, 1 << 20);
    let mut reader = FrameReader::new(b, 1 << 20);
    let sizes = [5usize, 0, 1, 3, 4, 4096, 4092, 4100, 200_000, 7, 1, 1 << 20, 2];
    // Buffers of a 4 KiB "segment" granularity, as the network pool gives them.
    let give =
        |len: usize| async move { Ok::<_, TransportError>(Vec::with_capacity(len.div_ceil(4096).max(1) * 4096)) };
    within("frames into buffers", async {
        tokio::join!(
            async {
                for (i, &n) in sizes.iter().enumerate() {
                    writer.write_frame(&vec![i as u8; n]).await.expect("write");
                }
                writer.shutdown().await.expect("shutdown");
            },
            async {
                for (i, &n) in sizes.iter().enumerate() {
                    // Every third frame through the plain path: both share the read-ahead header.
                    if i % 3 == 2 {
                        let f = reader.read_frame().await.expect("read").expect("a frame");
                        assert_eq!((i, f.len()), (i, n));
                        assert!(f.iter().all(|&x| x == i as u8));
                    } else {
                        let f = reader.read_frame_into(give).await.expect("read").expect("a frame");
                        assert_eq!((i, f.len()), (i, n));
                        assert!(f.iter().all(|&x| x == i as u8), "frame {i}");
                    }
                }
                assert!(reader.read_frame_into(give).await.expect("clean end").is_none());
            }
        )
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_frame_cut_short_is_an_error_when_read_into_a_buffer() {
    let (mut a, b) = tokio::io::duplex(1024);
    let mut reader = FrameReader::new(b, 1024);
    let mut bytes = 10u32.to_be_bytes().to_vec();
    bytes.extend_from_slice(b"01234");
    a.write_all(&bytes).await.expect("write");
    drop(a);
    let r = within("a truncated frame", reader.read_frame_into(|n| async move { Ok(Vec::with_capacity(n)) })).await;
    assert!(matches!(r, Err(TransportError::TruncatedFrame { received: 9, expected: 14 })), "{r:?}");
    // A length over the limit is refused before any buffer is asked for.
    let (mut a, b) = tokio::io::duplex(1024);
    let mut reader = FrameReader::new(b, 16);
    a.write_all(&1000u32.to_be_bytes()).await.expect("write");
    let r =
        within("a huge frame", reader.read_frame_into(|_| async { Err::<Vec<u8>, _>(TransportError::Broken) })).await;
    assert!(matches!(r, Err(TransportError::FrameTooLarge { size: 1000, limit: 16 })), "{r:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn reading_a_frame_is_cancel_safe() {
    let (mut a, b) = tokio::io::duplex(1024);
    let mut reader = FrameReader::new(b, 1024);
    let mut frame = 10u32.to_be_bytes().to_vec();
    frame.extend_from_slice(b"0123456789");
    frame.extend_from_slice(&3u32.to_be_bytes());
    frame.extend_from_slice(b"abc");
    let mut got = Vec::new();
    within("dribbled frames", async {
        for byte in frame {
            a.write_all(&[byte]).await.expect("write");
            // Give up on every read at once: progress must survive the cancellation.
            if let Ok(r) = tokio::time::timeout(Duration::from_millis(1), reader.read_frame()).await {
                got.push(r.expect("read").expect("a frame").to_vec());
            }
        }
    })
    .await;
    assert_eq!(got, vec![b"0123456789".to_vec(), b"abc".to_vec()]);
}

#[test]
fn errors_have_domains() {
    let cases = [
        (TransportError::Timeout { after: Duration::from_secs(1), waiting_for: "x" }, ErrorDomain::External, true),
        (TransportError::TruncatedFrame { received: 1, expected: 4 }, ErrorDomain::External, true),
        (TransportError::FrameTooLarge { size: 9, limit: 8 }, ErrorDomain::User, false),
        (TransportError::ProtocolMismatch { ours: 1, theirs: 2 }, ErrorDomain::User, false),
        (TransportError::BadMagic { found: *b"GET / HT" }, ErrorDomain::User, false),
        (TransportError::Refused { reason: "no".into() }, ErrorDomain::User, false),
        (TransportError::Undecodable { stage: Stage::Handshake, detail: "x".into() }, ErrorDomain::User, false),
        (TransportError::Undecodable { stage: Stage::Session, detail: "x".into() }, ErrorDomain::Internal, false),
        (TransportError::Encode("x".into()), ErrorDomain::Internal, false),
        (TransportError::Broken, ErrorDomain::Internal, false),
    ];
    for (e, domain, retryable) in cases {
        assert_eq!(e.domain(), domain, "{e}");
        assert_eq!(e.is_retryable(), retryable, "{e}");
    }
}

#[test]
fn deeply_nested_garbage_does_not_overflow_a_small_stack() {
    // Actor and runtime worker threads have 2 MiB stacks; the decoder's depth limit must hold
    // well within that, in a debug build too.
    let worker = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async {
                let mut listener = listener().await;
                let mut nested = vec![0x91u8; 60_000]; // [[[[...]]]]
                nested.push(0xC0);
                // A hello whose head is right and whose rest nests deep: skipped field by field.
                let mut hello = vec![0x93, 0x98];
                hello.extend_from_slice(&MAGIC);
                hello.push(PROTOCOL_VERSION as u8);
                hello.extend_from_slice(&nested);
                let mut bytes = (hello.len() as u32).to_be_bytes().to_vec();
                bytes.extend_from_slice(&hello);
                let e = expect_err(raw_opening(&mut listener, &bytes).await.0);
                assert!(
                    matches!(&e, TransportError::Undecodable { stage: Stage::Handshake, detail } if detail.contains("depth")),
                    "{e:?}"
                );
                // A message type that may nest (as a tree of values would): the limit holds.
                #[derive(Debug, Serialize, Deserialize)]
                enum Tree {
                    Leaf,
                    Node(Vec<Tree>),
                }
                let addr = listener.local_addr();
                let (server, raw) = within("a hand-made handshake", async {
                    tokio::join!(listener.accept::<Tree>(), async {
                        let (r, w) = TcpStream::connect(addr).await.expect("tcp connect").into_split();
                        let mut reader = FrameReader::new(r, DEFAULT_MAX_FRAME_SIZE);
                        let mut writer = FrameWriter::new(w, DEFAULT_MAX_FRAME_SIZE);
                        let hello = rmp_serde::to_vec(&Hello::new("raw")).expect("encode hello");
                        writer.write_frame(&hello).await.expect("send hello");
                        reader.read_frame().await.expect("read reply").expect("a reply frame");
                        writer
                    })
                })
                .await;
                let (mut server, mut writer) = (server.expect("handshake"), raw);
                let mut deep = Vec::new();
                for _ in 0..20_000 {
                    deep.extend_from_slice(&[0x81, 0xA4]); // {"Node": [ ...
                    deep.extend_from_slice(b"Node");
                    deep.push(0x91);
                }
                deep.extend_from_slice(&[0xA4]);
                deep.extend_from_slice(b"Leaf");
                within("a deep frame", writer.write_frame(&deep)).await.expect("send");
                let e = expect_err(within("a deep message", server.recv()).await);
                assert!(
                    matches!(&e, TransportError::Undecodable { stage: Stage::Session, detail } if detail.contains("depth")),
                    "{e:?}"
                );
                // A tree within the limit still decodes.
                let (mut server, mut client) = within("a handshake", async {
                    let (s, c) = tokio::join!(listener.accept::<Tree>(), connect::<Tree>(addr, Hello::new("c"), timeouts()));
                    (s.expect("server"), c.expect("client"))
                })
                .await;
                let mut tree = Tree::Leaf;
                for _ in 0..40 {
                    tree = Tree::Node(vec![tree]);
                }
                within("send", client.send(&tree)).await.expect("send a 40-deep tree");
                let got = within("recv", server.recv()).await.expect("recv").expect("a tree");
                assert_eq!(format!("{got:?}"), format!("{tree:?}"));
            });
        })
        .expect("spawn");
    worker.join().expect("the worker survived");
}
