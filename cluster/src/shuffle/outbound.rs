//! The producer's side of a network channel: read the channel's local end, send with credit.

use std::sync::Arc;
use std::time::Instant;

use riffle_actors::exchange::{ChannelId, ChannelReceiver};
use riffle_api::JobGraph;

use super::protocol::{self, DataMessage};
use super::DataPlaneSettings;
use crate::transport::{connect, Connection, Hello};

async fn connect_with_patience(address: &str, settings: &DataPlaneSettings) -> Result<Connection<DataMessage>, String> {
    let deadline = Instant::now() + settings.patience;
    let mut pause = std::time::Duration::from_millis(20);
    loop {
        match connect::<DataMessage>(address, Hello::new(settings.node.clone()), settings.timeouts).await {
            Ok(mut c) => {
                c.set_max_frame_size(settings.max_frame_size);
                return Ok(c);
            }
            Err(e) if Instant::now() + pause < deadline && e.is_retryable() => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_millis(500));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Ships channel `id` to the TaskManager at `address` until the producer ends it, the
/// consumer refuses it or the connection breaks. Dropping the local end on the way out tells
/// the producer (its next send fails: the consumer is gone).
/// The counters of channel `id`'s producer subtask, if this process has a view of its job.
fn producer_io(
    shared: &riffle_actors::RuntimeShared,
    graph: &JobGraph,
    id: ChannelId,
) -> Option<Arc<riffle_actors::job_view::SubtaskIo>> {
    let vertex = graph.edge_vertices(id.key.edge)?.0;
    shared.jobs.view(id.job)?.io(vertex as u32, id.key.producer)
}

pub async fn run(
    id: ChannelId,
    address: String,
    graph: Arc<JobGraph>,
    ends: ChannelReceiver,
    settings: DataPlaneSettings,
    shared: Arc<riffle_actors::RuntimeShared>,
) {
    let (mut rx, mut priority) = ends;
    let conn = match connect_with_patience(&address, &settings).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(channel = ?id.key, %address, "cannot reach the consumer's TaskManager: {e}");
            return;
        }
    };
    let (mut reader, mut writer) = conn.into_split();
    let open = DataMessage::Open { job: id.job, attempt: id.attempt, key: id.key };
    if writer.send_raw(|buf| protocol::write_message(buf, &open)).await.is_err() {
        return;
    }
    let edge = id.key.edge;
    // The producer's counters in this process's view of the job (its JobManager's view gets
    // them with the heartbeats).
    let io = producer_io(&shared, &graph, id);
    let mut credit = super::credit::ProducerCredit::default();
    let mut priority_open = true;
    // Record frames are encoded into the TaskManager's send buffers, as large as this
    // channel's last one (batches of a channel are much alike).
    let pool = settings.buffers.send.clone();
    let mut last_frame = 0usize;
    loop {
        tokio::select! {
            biased;
            m = reader.recv_raw() => match m.map(|f| f.map(protocol::read_frame)) {
                Ok(Some(Ok(protocol::Frame::Message(DataMessage::Credit(n))))) => credit.grant(n),
                Ok(Some(Ok(protocol::Frame::Message(DataMessage::Refused(why))))) => {
                    tracing::warn!(channel = ?id.key, %address, "the consumer's TaskManager refused the channel: {why}");
                    return;
                }
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(_))) | Ok(None) | Err(_) => return,
            },
            b = priority.recv(), if priority_open => match b {
                Some(b) => {
                    let m = DataMessage::PriorityBarrier((&b).into());
                    if writer.send_raw(|buf| protocol::write_message(buf, &m)).await.is_err() {
                        return;
                    }
                }
                // The producer is gone; the data queue tells the rest.
                None => priority_open = false,
            },
            e = rx.recv(), if credit.available() => match e {
                Some(e) => {
                    let end = matches!(e, riffle_api::Element::EndOfPartition);
                    let mut sent = 0usize;
                    let written = if matches!(e, riffle_api::Element::Records { .. }) {
                        let Ok(mut frame) = pool.acquire(last_frame).await else { return };
                        let buf = frame.as_mut();
                        buf.extend_from_slice(&[0; crate::transport::FRAME_HEADER]);
                        if let Err(err) = protocol::write_element(buf, &graph, edge, &e) {
                            tracing::warn!(channel = ?id.key, "cannot encode a batch for the network: {err}");
                            return;
                        }
                        last_frame = buf.len();
                        sent = last_frame - crate::transport::FRAME_HEADER;
                        if frame.fit().await.is_err() {
                            return;
                        }
                        writer.send_prepared(frame.as_mut()).await
                    } else {
                        writer.send_raw(|buf| protocol::write_element(buf, &graph, edge, &e)).await
                    };
                    match written {
                        Ok(()) => {
                            if let (Some(io), riffle_api::Element::Records { .. }) = (&io, &e) {
                                io.bytes_out.fetch_add(
                                    sent.saturating_sub(protocol::RECORDS_HEADER) as u64,
                                    std::sync::atomic::Ordering::Relaxed,
                                );
                            }
                        }
                        Err(crate::transport::TransportError::Encode(err)) => {
                            tracing::warn!(channel = ?id.key, "cannot encode a batch for the network: {err}");
                            return;
                        }
                        Err(_) => return,
                    }
                    credit.spend();
                    if end {
                        let _ = writer.close().await;
                        // Wait for the consumer to close, so nothing is cut short.
                        while let Ok(Some(_)) = reader.recv_raw().await {}
                        return;
                    }
                }
                None => {
                    let _ = writer.close().await;
                    return;
                }
            },
        }
    }
}
