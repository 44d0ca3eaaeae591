//! Operators with more than one logical input: connect + co-process (two inputs of
//! different types) and the N-input operator of FLIP-92.

use std::any::Any;
use std::sync::Arc;

use riffle_state::{BackendConfig, StateKey};

use super::keyed::{core_events, ProcessCore};
use super::OpId;
use crate::error::{TaskError, TaskResult};
use crate::functions::{CoProcessFunction, MultiInputFunction, SideOutputs};
use crate::head::{decode_batch, downcast_batch, encode_batch, VertexHead};
use crate::link::Input;
use crate::record::Data;

/// Runs a [`CoProcessFunction`] over two inputs.
pub struct CoProcessOp<K, A, B, O, F> {
    f: F,
    key1: Arc<dyn Fn(&A) -> K + Send + Sync>,
    key2: Arc<dyn Fn(&B) -> K + Send + Sync>,
    core: ProcessCore<K, O>,
}

impl<K: StateKey, A: 'static, B: 'static, O, F: CoProcessFunction<K, A, B, O>> CoProcessOp<K, A, B, O, F> {
    pub(crate) fn new(
        mut f: F,
        key1: Arc<dyn Fn(&A) -> K + Send + Sync>,
        key2: Arc<dyn Fn(&B) -> K + Send + Sync>,
        next: Box<dyn Input<O>>,
        side: SideOutputs,
        id: OpId,
        backend: &BackendConfig,
    ) -> Result<Self, TaskError> {
        let mut core = ProcessCore::new(next, side, id, backend)?;
        core.id.enter();
        f.open(&mut core.store).map_err(|e| core.id.err(e))?;
        Ok(Self { f, key1, key2, core })
    }
}

impl<K: StateKey, A: Data, B: Data, O, F: CoProcessFunction<K, A, B, O>> VertexHead for CoProcessOp<K, A, B, O, F> {
    fn encode_batch(&self, input: usize, batch: &(dyn Any + Send)) -> Result<Vec<u8>, TaskError> {
        match input {
            0 => encode_batch::<A>(batch, &self.core.id.name, input),
            _ => encode_batch::<B>(batch, &self.core.id.name, input),
        }
    }
    fn push_encoded(&mut self, input: usize, bytes: &[u8]) -> TaskResult {
        let batch = match input {
            0 => decode_batch::<A>(bytes, &self.core.id.name, input)?,
            _ => decode_batch::<B>(bytes, &self.core.id.name, input)?,
        };
        self.push_batch(input, batch)
    }
    fn push_batch(&mut self, input: usize, batch: Box<dyn Any + Send>) -> TaskResult {
        let f = &mut self.f;
        if input == 0 {
            for r in downcast_batch::<A>(batch, &self.core.id.name, input)? {
                let key = (self.key1)(&r.value);
                self.core.with_context(key, r.timestamp, |ctx| f.process_element1(r.value, ctx))?;
            }
        } else {
            for r in downcast_batch::<B>(batch, &self.core.id.name, input)? {
                let key = (self.key2)(&r.value);
                self.core.with_context(key, r.timestamp, |ctx| f.process_element2(r.value, ctx))?;
            }
        }
        Ok(())
    }
    fn end_of_input(&mut self, _input: usize) -> TaskResult {
        Ok(())
    }
    core_events!();
}

/// Runs a [`MultiInputFunction`] over N inputs of one type.
pub struct MultiInputOp<K, T, O, F> {
    f: F,
    key_of: Arc<dyn Fn(&T) -> K + Send + Sync>,
    core: ProcessCore<K, O>,
}

impl<K: StateKey + Default, T: 'static, O, F: MultiInputFunction<K, T, O>> MultiInputOp<K, T, O, F> {
    pub(crate) fn new(
        mut f: F,
        key_of: Arc<dyn Fn(&T) -> K + Send + Sync>,
        next: Box<dyn Input<O>>,
        side: SideOutputs,
        id: OpId,
        backend: &BackendConfig,
    ) -> Result<Self, TaskError> {
        let mut core = ProcessCore::new(next, side, id, backend)?;
        core.id.enter();
        f.open(&mut core.store).map_err(|e| core.id.err(e))?;
        Ok(Self { f, key_of, core })
    }
}

impl<K: StateKey + Default, T: Data, O, F: MultiInputFunction<K, T, O>> VertexHead for MultiInputOp<K, T, O, F> {
    fn encode_batch(&self, input: usize, batch: &(dyn Any + Send)) -> Result<Vec<u8>, TaskError> {
        encode_batch::<T>(batch, &self.core.id.name, input)
    }
    fn push_encoded(&mut self, input: usize, bytes: &[u8]) -> TaskResult {
        let batch = decode_batch::<T>(bytes, &self.core.id.name, input)?;
        self.push_batch(input, batch)
    }
    fn push_batch(&mut self, input: usize, batch: Box<dyn Any + Send>) -> TaskResult {
        let f = &mut self.f;
        for r in downcast_batch::<T>(batch, &self.core.id.name, input)? {
            let key = (self.key_of)(&r.value);
            self.core.with_context(key, r.timestamp, |ctx| f.process_element(input, r.value, ctx))?;
        }
        Ok(())
    }
    fn end_of_input(&mut self, input: usize) -> TaskResult {
        let f = &mut self.f;
        let wm = self.core.watermark;
        self.core.with_context(K::default(), wm, |ctx| f.end_input(input, ctx))
    }
    core_events!();
}
