//! The consumer's side of network channels: accept, grant credit, hand elements to the
//! channel's local end.

use std::sync::Arc;
use std::time::Instant;

use riffle_actors::exchange::ChannelId;
use riffle_actors::RuntimeShared;
use tokio::sync::watch;

use super::protocol::{self, DataMessage};
use super::DataPlaneSettings;
use crate::transport::{ConnectionReader, ConnectionWriter, Listener};

/// Accepts data connections until `stop` turns true.
pub async fn serve(
    mut listener: Listener,
    shared: Arc<RuntimeShared>,
    settings: DataPlaneSettings,
    mut stop: watch::Receiver<bool>,
) {
    listener.set_max_frame_size(settings.max_frame_size);
    loop {
        tokio::select! {
            accepted = listener.accept::<DataMessage>() => match accepted {
                Ok(conn) => {
                    let (reader, writer) = conn.into_split();
                    actix::spawn(channel(reader, writer, shared.clone(), settings.clone()));
                }
                Err(_) => continue,
            },
            _ = stop.changed() => return,
        }
    }
}

async fn channel(
    mut reader: ConnectionReader<DataMessage>,
    mut writer: ConnectionWriter<DataMessage>,
    shared: Arc<RuntimeShared>,
    settings: DataPlaneSettings,
) {
    let peer = reader.peer_addr();
    let first = match tokio::time::timeout(settings.timeouts.handshake, reader.recv_raw()).await {
        Ok(Ok(Some(payload))) => protocol::read_frame(payload).ok().map(|f| match f {
            protocol::Frame::Message(DataMessage::Open { job, attempt, key }) => Some((job, attempt, key)),
            _ => None,
        }),
        _ => return,
    };
    let Some(Some((job, attempt, key))) = first else {
        tracing::warn!(%peer, "a data connection must start with Open");
        return;
    };
    let refuse = |why: String| DataMessage::Refused(why);
    // The producer may be deployed before this TaskManager learnt the job.
    let deadline = Instant::now() + settings.patience;
    let graph = loop {
        if let Some(g) = shared.code.graph(job) {
            break g;
        }
        if Instant::now() > deadline {
            let m = refuse(format!("job {job} is unknown here"));
            let _ = writer.send_raw(|buf| protocol::write_message(buf, &m)).await;
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    };
    let id = ChannelId { job, attempt, key };
    let Some((tx, ptx)) = shared.data.exchange.take_sender(id, settings.capacity) else {
        let m = refuse(format!("channel {key:?} is served already"));
        let _ = writer.send_raw(|buf| protocol::write_message(buf, &m)).await;
        return;
    };
    let (mut credit, initial) = super::credit::ConsumerCredit::new(settings.capacity);
    if writer.send_raw(|buf| protocol::write_message(buf, &DataMessage::Credit(initial))).await.is_err() {
        return;
    }
    let pool = settings.buffers.receive.clone();
    let io = graph
        .edge_vertices(key.edge)
        .and_then(|(_, consumer)| shared.jobs.view(job)?.io(consumer as u32, key.consumer));
    loop {
        // Each frame is read straight into buffers of the TaskManager's network pool (waiting
        // for them is backpressure) and its records decoded straight from there; the buffers
        // go back before the records wait for room in the consumer's channel.
        let frame = reader
            .recv_into(|len| {
                let pool = pool.clone();
                async move { pool.acquire(len).await.map_err(|_| crate::transport::TransportError::Broken) }
            })
            .await;
        let element = match &frame {
            Ok(Some(payload)) => match protocol::read_frame(payload.bytes()) {
                Ok(protocol::Frame::Records { count, bytes }) => {
                    if let Some(io) = &io {
                        io.bytes_in.fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    }
                    graph.decode_edge_batch(key.edge, bytes).map(|batch| riffle_api::Element::Records { count, batch })
                }
                Ok(protocol::Frame::Message(DataMessage::PriorityBarrier(b))) => {
                    let _ = ptx.send(b.into());
                    continue;
                }
                Ok(protocol::Frame::Message(m)) => match protocol::element_of(m) {
                    Some(e) => Ok(e),
                    None => continue,
                },
                Err(err) => Err(riffle_api::TaskError::msg("network", err.to_string())),
            },
            // The producer closed (after its end of partition) or vanished: either way the
            // local end goes, and the consumer sees what it got.
            Ok(None) | Err(_) => return,
        };
        drop(frame);
        match element {
            Ok(e) => {
                // Waits while the local channel is full: no credit goes back meanwhile, so the
                // producer stops once what is on the wire (at most the capacity) has arrived.
                if tx.send(e).await.is_err() {
                    return;
                }
                if let Some(n) = credit.accepted() {
                    if writer.send_raw(|buf| protocol::write_message(buf, &DataMessage::Credit(n))).await.is_err() {
                        return;
                    }
                }
            }
            Err(err) => {
                tracing::warn!(%peer, channel = ?key, "dropping a data connection: {err}");
                return;
            }
        }
    }
}
