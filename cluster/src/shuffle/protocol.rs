//! What travels on a data connection: one channel per connection, the producer's elements one
//! way and the consumer's credits the other.

use riffle_actors::JobId;
use riffle_api::{ChannelKey, CheckpointBarrier, Element, JobGraph, TaskError};
use serde::{Deserialize, Serialize};

/// One message of a data connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum DataMessage {
    /// Producer → consumer, first: which channel this connection carries.
    Open {
        /// The job.
        job: JobId,
        /// The job's attempt.
        attempt: u32,
        /// Edge, producer and consumer subtask.
        key: ChannelKey,
    },
    /// Consumer → producer: room for `n` more elements (credit-based flow control: without
    /// credit the producer sends nothing but priority barriers).
    Credit(u32),
    /// Consumer → producer: the channel cannot be served (unknown job, channel taken).
    Refused(String),
    /// A batch of records, encoded by the job graph for the edge's record type.
    Records {
        /// Records in the batch.
        count: u32,
        /// The encoded `Vec<StreamRecord<T>>`.
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// In-band watermark.
    Watermark(i64),
    /// In-band idleness change.
    Idle(bool),
    /// The producer is done with this channel.
    EndOfPartition,
    /// An in-band checkpoint barrier (or an unaligned checkpoint's position marker).
    Barrier(WireBarrier),
    /// An unaligned checkpoint's barrier on the priority lane: sent without credit, ahead of
    /// queued data.
    PriorityBarrier(WireBarrier),
}

/// A checkpoint barrier on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireBarrier {
    id: u64,
    aligned: bool,
    unaligned: bool,
    target: Option<String>,
    inline_threshold: u64,
}

impl From<&CheckpointBarrier> for WireBarrier {
    fn from(b: &CheckpointBarrier) -> Self {
        WireBarrier {
            id: b.id,
            aligned: b.aligned,
            unaligned: b.unaligned,
            target: b.target.as_deref().map(str::to_string),
            inline_threshold: b.inline_threshold as u64,
        }
    }
}

impl From<WireBarrier> for CheckpointBarrier {
    fn from(b: WireBarrier) -> Self {
        CheckpointBarrier {
            id: b.id,
            aligned: b.aligned,
            unaligned: b.unaligned,
            target: b.target.map(std::sync::Arc::from),
            inline_threshold: usize::try_from(b.inline_threshold).unwrap_or(usize::MAX),
        }
    }
}

/// An element of channel `edge` as a message (records encoded by `graph`).
pub fn encode(graph: &JobGraph, edge: u32, e: Element) -> Result<DataMessage, TaskError> {
    Ok(match e {
        Element::Records { count, batch } => {
            DataMessage::Records { count, bytes: graph.encode_edge_batch(edge, batch.as_ref())? }
        }
        Element::Watermark(w) => DataMessage::Watermark(w),
        Element::Idle(b) => DataMessage::Idle(b),
        Element::EndOfPartition => DataMessage::EndOfPartition,
        Element::Barrier(b) => DataMessage::Barrier((&b).into()),
    })
}

/// A message of channel `edge` as the element it carries (None: not an element).
pub fn decode(graph: &JobGraph, edge: u32, m: DataMessage) -> Result<Option<Element>, TaskError> {
    Ok(Some(match m {
        DataMessage::Records { count, bytes } => {
            Element::Records { count, batch: graph.decode_edge_batch(edge, &bytes)? }
        }
        DataMessage::Watermark(w) => Element::Watermark(w),
        DataMessage::Idle(b) => Element::Idle(b),
        DataMessage::EndOfPartition => Element::EndOfPartition,
        DataMessage::Barrier(b) => Element::Barrier(b.into()),
        DataMessage::Open { .. }
        | DataMessage::Credit(_)
        | DataMessage::Refused(_)
        | DataMessage::PriorityBarrier(_) => return Ok(None),
    }))
}
