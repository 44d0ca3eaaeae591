//! The entry of a vertex (a chain of operators) for the runtime: batches come in type-erased
//! with the index of the logical input they belong to, and are unpacked here into typed calls.

use bincode::Options;
use std::any::Any;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{TaskError, TaskResult};
use crate::link::Input;
use crate::record::StreamRecord;
use crate::snapshot::{OperatorRestore, OperatorSnapshots};

/// A vertex instance as the runtime drives it (everything but sources).
pub trait VertexHead {
    /// A batch (`Vec<StreamRecord<T>>` of input `input`'s type) arrived.
    fn push_batch(&mut self, input: usize, batch: Box<dyn Any + Send>) -> TaskResult;
    /// The combined watermark over all inputs advanced.
    fn watermark(&mut self, watermark: i64) -> TaskResult;
    /// All inputs became idle (`true`) or one became active again (`false`).
    fn idle(&mut self, idle: bool) -> TaskResult;
    /// Logical input `input` ended (all of its channels delivered end of partition).
    fn end_of_input(&mut self, input: usize) -> TaskResult;
    /// All inputs ended.
    fn end_input(&mut self) -> TaskResult;
    /// The wall clock reached `now`.
    fn processing_time(&mut self, now: i64) -> TaskResult;
    /// The earliest processing-time callback the vertex wants.
    fn next_processing_time(&self) -> Option<i64>;
    /// Snapshots the chain's operator state.
    fn snapshot(&mut self, out: &mut OperatorSnapshots) -> TaskResult;
    /// Restores the chain's operator state.
    fn restore(&mut self, from: &OperatorRestore) -> TaskResult;
    /// A checkpoint completed or was aborted.
    fn notify_checkpoint(&mut self, id: u64, completed: bool) -> TaskResult;
    /// Encodes a batch that arrived on input `input` (not consumed yet) for an unaligned
    /// checkpoint's channel state. Only the head knows its inputs' record types.
    fn encode_batch(&self, input: usize, batch: &(dyn Any + Send)) -> Result<Vec<u8>, TaskError>;
    /// Processes a batch of restored channel state, as [`VertexHead::encode_batch`] wrote it.
    fn push_encoded(&mut self, input: usize, bytes: &[u8]) -> TaskResult;
    /// Like [`VertexHead::push_batch`], but asks `pause` every [`PAUSE_CHECK_RECORDS`]
    /// records and, when it says so, stops and returns the unprocessed rest (record count and
    /// batch), so that an unaligned checkpoint's barrier need not wait for a slow batch.
    fn push_batch_until(
        &mut self,
        input: usize,
        batch: Box<dyn Any + Send>,
        pause: &mut dyn FnMut() -> bool,
    ) -> Result<Option<BatchRest>, TaskError> {
        let _ = pause;
        self.push_batch(input, batch).map(|()| None)
    }
}

/// The unprocessed rest of a batch: its record count and the batch.
pub type BatchRest = (u32, Box<dyn Any + Send>);

/// How many records a head processes between two questions to its `pause` callback.
pub const PAUSE_CHECK_RECORDS: usize = 64;

/// Encodes a type-erased batch of `T` records (channel state of unaligned checkpoints).
pub(crate) fn encode_batch<T: Serialize + 'static>(
    batch: &(dyn Any + Send),
    name: &str,
    input: usize,
) -> Result<Vec<u8>, TaskError> {
    let records = batch.downcast_ref::<Vec<StreamRecord<T>>>().ok_or_else(|| {
        TaskError::msg(
            name,
            format!("input {input} holds a batch of another record type than {}", std::any::type_name::<T>()),
        )
    })?;
    rmp_serde::to_vec(records)
        .map_err(|e| TaskError::msg(name, format!("cannot encode in-flight records of input {input}: {e}")))
}

/// Encodes a type-erased batch of `T` records for the network data plane, appending to
/// `out` (a frame's buffer: no copy of the encoding): postcard (compact,
/// no type markers) decodes about twice as fast as MessagePack, and what crosses the wire is
/// never stored, so it needs no self-describing format.
pub(crate) fn encode_wire_batch_into<T: Serialize + 'static>(
    batch: &(dyn Any + Send),
    name: &str,
    out: &mut Vec<u8>,
) -> Result<(), TaskError> {
    let records = batch.downcast_ref::<Vec<StreamRecord<T>>>().ok_or_else(|| {
        TaskError::msg(name, format!("a batch of another record type than {} on the wire", std::any::type_name::<T>()))
    })?;
    out.reserve(records.len() * (std::mem::size_of::<StreamRecord<T>>() + 4) + 8);
    wire_options()
        .serialize_into(&mut *out, records)
        .map_err(|e| TaskError::msg(name, format!("cannot encode records for the network: {e}")))
}

/// The network encoding of record batches: bincode with fixed-width little-endian integers.
/// Varints (postcard) made frames a third smaller but cost the producer a `memcpy` call per
/// field and the consumer a loop per byte; on loopback and fast links the CPU, not the
/// bytes, is what limits a channel. Decoding is bounded by the frame's length, and lengths
/// inside are checked against what is left, so a hostile frame cannot make it allocate.
fn wire_options() -> impl bincode::Options + Copy {
    bincode::DefaultOptions::new().with_fixint_encoding().with_little_endian()
}

/// Decodes what [`encode_wire_batch_into`] wrote.
pub(crate) fn decode_wire_batch<T: DeserializeOwned + Send + 'static>(
    bytes: &[u8],
    name: &str,
) -> Result<Box<dyn Any + Send>, TaskError> {
    let records: Vec<StreamRecord<T>> = wire_options()
        .with_limit(bytes.len() as u64)
        .deserialize(bytes)
        .map_err(|e| TaskError::msg(name, format!("undecodable records from the network: {e}")))?;
    Ok(Box::new(records))
}

/// Decodes what [`encode_batch`] wrote, as the batch it was.
pub(crate) fn decode_batch<T: DeserializeOwned + Send + 'static>(
    bytes: &[u8],
    name: &str,
    input: usize,
) -> Result<Box<dyn Any + Send>, TaskError> {
    let records: Vec<StreamRecord<T>> = rmp_serde::from_slice(bytes)
        .map_err(|e| TaskError::msg(name, format!("corrupt channel state of input {input} in the checkpoint: {e}")))?;
    Ok(Box::new(records))
}

/// Unpacks a type-erased batch.
pub(crate) fn downcast_batch<T: 'static>(
    batch: Box<dyn Any + Send>,
    name: &str,
    input: usize,
) -> Result<Vec<StreamRecord<T>>, TaskError> {
    batch.downcast::<Vec<StreamRecord<T>>>().map(|b| *b).map_err(|_| {
        TaskError::msg(
            name,
            format!(
                "input {input} received a batch of the wrong record type (expected {})",
                std::any::type_name::<T>()
            ),
        )
    })
}

/// The head of a one-input vertex (all of whose input edges feed logical input 0).
pub struct OneInputHead<T> {
    pub(crate) link: Box<dyn Input<T>>,
    pub(crate) name: String,
}

impl<T: Serialize + DeserializeOwned + Send + 'static> VertexHead for OneInputHead<T> {
    fn push_batch(&mut self, input: usize, batch: Box<dyn Any + Send>) -> TaskResult {
        for r in downcast_batch::<T>(batch, &self.name, input)? {
            self.link.push(r.value, r.timestamp)?;
        }
        Ok(())
    }
    fn watermark(&mut self, watermark: i64) -> TaskResult {
        self.link.watermark(watermark)
    }
    fn idle(&mut self, idle: bool) -> TaskResult {
        self.link.idle(idle)
    }
    fn end_of_input(&mut self, _input: usize) -> TaskResult {
        Ok(())
    }
    fn end_input(&mut self) -> TaskResult {
        self.link.end_input()
    }
    fn processing_time(&mut self, now: i64) -> TaskResult {
        self.link.processing_time(now)
    }
    fn next_processing_time(&self) -> Option<i64> {
        self.link.next_processing_time()
    }
    fn snapshot(&mut self, out: &mut OperatorSnapshots) -> TaskResult {
        self.link.snapshot(out)
    }
    fn restore(&mut self, from: &OperatorRestore) -> TaskResult {
        self.link.restore(from)
    }
    fn notify_checkpoint(&mut self, id: u64, completed: bool) -> TaskResult {
        self.link.notify_checkpoint(id, completed)
    }
    fn encode_batch(&self, input: usize, batch: &(dyn Any + Send)) -> Result<Vec<u8>, TaskError> {
        encode_batch::<T>(batch, &self.name, input)
    }
    fn push_encoded(&mut self, input: usize, bytes: &[u8]) -> TaskResult {
        let batch = decode_batch::<T>(bytes, &self.name, input)?;
        self.push_batch(input, batch)
    }
    fn push_batch_until(
        &mut self,
        input: usize,
        batch: Box<dyn Any + Send>,
        pause: &mut dyn FnMut() -> bool,
    ) -> Result<Option<BatchRest>, TaskError> {
        let records = downcast_batch::<T>(batch, &self.name, input)?;
        let mut rest = records.into_iter();
        loop {
            for r in rest.by_ref().take(PAUSE_CHECK_RECORDS) {
                self.link.push(r.value, r.timestamp)?;
            }
            if rest.len() == 0 {
                return Ok(None);
            }
            if pause() {
                let rest: Vec<StreamRecord<T>> = rest.collect();
                return Ok(Some((rest.len() as u32, Box::new(rest))));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::link::no_events;

    /// Records what reaches it.
    struct Seen(Arc<Mutex<Vec<u32>>>);

    impl Input<u32> for Seen {
        fn push(&mut self, value: u32, _: i64) -> TaskResult {
            self.0.lock().unwrap().push(value);
            Ok(())
        }
        fn end_input(&mut self) -> TaskResult {
            Ok(())
        }
        no_events!();
    }

    #[test]
    fn a_batch_stops_where_pause_says_and_returns_exactly_the_rest() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut head = OneInputHead { link: Box::new(Seen(seen.clone())), name: "test".into() };
        let batch: Vec<StreamRecord<u32>> = (0..200).map(|value| StreamRecord { value, timestamp: 0 }).collect();
        let mut asked = 0;
        let rest = head
            .push_batch_until(0, Box::new(batch), &mut || {
                asked += 1;
                asked == 2
            })
            .unwrap()
            .expect("paused");
        assert_eq!(*seen.lock().unwrap(), (0..2 * PAUSE_CHECK_RECORDS as u32).collect::<Vec<_>>());
        assert_eq!(rest.0, 200 - 2 * PAUSE_CHECK_RECORDS as u32);
        let rest = *rest.1.downcast::<Vec<StreamRecord<u32>>>().unwrap();
        assert_eq!(rest.first().map(|r| r.value), Some(2 * PAUSE_CHECK_RECORDS as u32));
        assert_eq!(rest.len(), 200 - 2 * PAUSE_CHECK_RECORDS);
        // Without a pause the whole batch goes through.
        let batch: Vec<StreamRecord<u32>> = (0..100).map(|value| StreamRecord { value, timestamp: 0 }).collect();
        assert!(head.push_batch_until(0, Box::new(batch), &mut || false).unwrap().is_none());
        assert_eq!(seen.lock().unwrap().len(), 2 * PAUSE_CHECK_RECORDS + 100);
    }
}
