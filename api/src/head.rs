//! The entry of a vertex (a chain of operators) for the runtime: batches come in type-erased
//! with the index of the logical input they belong to, and are unpacked here into typed calls.

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
}

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
}
