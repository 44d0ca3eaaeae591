//! What travels on a data connection: one channel per connection, the producer's elements one
//! way and the consumer's credits the other. A frame is a tag byte, then either a protocol
//! message (MessagePack) or a batch of records (the count, then the job graph's encoding).

use riffle_actors::JobId;
use riffle_api::{ChannelKey, CheckpointBarrier, Element, JobGraph};

use crate::transport::{Stage, TransportError};
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
    #[serde(default)]
    incremental: bool,
    #[serde(default)]
    base: Option<u64>,
}

impl From<&CheckpointBarrier> for WireBarrier {
    fn from(b: &CheckpointBarrier) -> Self {
        WireBarrier {
            id: b.id,
            aligned: b.aligned,
            unaligned: b.unaligned,
            target: b.target.as_deref().map(str::to_string),
            inline_threshold: b.inline_threshold as u64,
            incremental: b.incremental,
            base: b.base,
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
            incremental: b.incremental,
            base: b.base,
        }
    }
}

/// The first byte of a data frame: what follows.
const TAG_MESSAGE: u8 = 0;
/// A records frame: the count (4 bytes, little endian), then the batch as the job graph
/// encodes it — written straight into the frame's buffer and decoded straight from the
/// received frame, with no copy in between.
const TAG_RECORDS: u8 = 1;
/// The bytes of a records frame before the batch itself (tag and count).
pub const RECORDS_HEADER: usize = 5;

/// A received data frame.
pub enum Frame<'a> {
    /// A protocol message.
    Message(DataMessage),
    /// A batch of records, still encoded.
    Records {
        /// Records in it.
        count: u32,
        /// The encoded batch (borrowed from the frame).
        bytes: &'a [u8],
    },
}

/// Writes `m` as a frame's payload.
pub fn write_message(buf: &mut Vec<u8>, m: &DataMessage) -> Result<(), TransportError> {
    buf.push(TAG_MESSAGE);
    crate::transport::message::encode_into(buf, m)
}

/// Writes element `e` of channel `edge` as a frame's payload (records encoded by `graph`).
pub fn write_element(buf: &mut Vec<u8>, graph: &JobGraph, edge: u32, e: &Element) -> Result<(), TransportError> {
    let m = match e {
        Element::Records { count, batch } => {
            buf.push(TAG_RECORDS);
            buf.extend_from_slice(&count.to_le_bytes());
            return graph
                .encode_edge_batch_into(edge, batch.as_ref(), buf)
                .map_err(|err| TransportError::Encode(err.to_string()));
        }
        Element::Watermark(w) => DataMessage::Watermark(*w),
        Element::Idle(b) => DataMessage::Idle(*b),
        Element::EndOfPartition => DataMessage::EndOfPartition,
        Element::Barrier(b) => DataMessage::Barrier(b.into()),
    };
    write_message(buf, &m)
}

/// Reads a frame's payload.
pub fn read_frame(payload: &[u8]) -> Result<Frame<'_>, TransportError> {
    match payload.split_first() {
        Some((&TAG_MESSAGE, rest)) => Ok(Frame::Message(crate::transport::message::decode(rest, Stage::Session)?)),
        Some((&TAG_RECORDS, rest)) if rest.len() >= RECORDS_HEADER - 1 => {
            let (count, bytes) = rest.split_at(4);
            let count = u32::from_le_bytes([count[0], count[1], count[2], count[3]]);
            Ok(Frame::Records { count, bytes })
        }
        _ => Err(TransportError::Undecodable { stage: Stage::Session, detail: "not a data frame".into() }),
    }
}

/// A protocol message as the element it carries (None: not an element).
pub fn element_of(m: DataMessage) -> Option<Element> {
    Some(match m {
        DataMessage::Watermark(w) => Element::Watermark(w),
        DataMessage::Idle(b) => Element::Idle(b),
        DataMessage::EndOfPartition => Element::EndOfPartition,
        DataMessage::Barrier(b) => Element::Barrier(b.into()),
        _ => return None,
    })
}
