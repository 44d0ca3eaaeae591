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
    let (job, attempt, key) = match tokio::time::timeout(settings.timeouts.handshake, reader.recv()).await {
        Ok(Ok(Some(DataMessage::Open { job, attempt, key }))) => (job, attempt, key),
        Ok(Ok(Some(_))) => {
            tracing::warn!(%peer, "a data connection must start with Open");
            return;
        }
        _ => return,
    };
    // The producer may be deployed before this TaskManager learnt the job.
    let deadline = Instant::now() + settings.patience;
    let graph = loop {
        if let Some(g) = shared.graph(job) {
            break g;
        }
        if Instant::now() > deadline {
            let _ = writer.send(&DataMessage::Refused(format!("job {job} is unknown here"))).await;
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    };
    let id = ChannelId { job, attempt, key };
    let Some((tx, ptx)) = shared.exchange.take_sender(id, settings.capacity) else {
        let _ = writer.send(&DataMessage::Refused(format!("channel {key:?} is served already"))).await;
        return;
    };
    if writer.send(&DataMessage::Credit(settings.capacity as u32)).await.is_err() {
        return;
    }
    let io =
        graph.edge_vertices(key.edge).and_then(|(_, consumer)| shared.view(job)?.io(consumer as u32, key.consumer));
    loop {
        let m = match reader.recv().await {
            Ok(Some(m)) => m,
            // The producer closed (after its end of partition) or vanished: either way the
            // local end goes, and the consumer sees what it got.
            Ok(None) | Err(_) => return,
        };
        if let (Some(io), DataMessage::Records { bytes, .. }) = (&io, &m) {
            io.bytes_in.fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
        if let DataMessage::PriorityBarrier(b) = m {
            let _ = ptx.send(b.into());
            continue;
        }
        match protocol::decode(&graph, key.edge, m) {
            Ok(Some(e)) => {
                // Credit guarantees room; this waits only while the consumer catches up.
                if tx.send(e).await.is_err() {
                    return;
                }
                if writer.send(&DataMessage::Credit(1)).await.is_err() {
                    return;
                }
            }
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(%peer, channel = ?key, "dropping a data connection: {err}");
                return;
            }
        }
    }
}
