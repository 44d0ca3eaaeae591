//! Stateless one-to-one and one-to-many operators.

use std::sync::Arc;

use super::{forward_events, OpId};
use crate::error::TaskResult;
use crate::link::{Collector, Input};

/// `map`: one record in, one out. Generic over the user's closure so it is inlined.
pub struct MapOp<O, F> {
    pub(crate) f: Arc<F>,
    pub(crate) next: Box<dyn Input<O>>,
    pub(crate) id: OpId,
}

impl<I, O, F: Fn(I) -> O> Input<I> for MapOp<O, F> {
    #[inline]
    fn push(&mut self, value: I, timestamp: i64) -> TaskResult {
        self.id.enter();
        let o = (self.f)(value);
        self.next.push(o, timestamp)
    }
    forward_events!();
}

/// `filter`: keeps records the predicate accepts.
pub struct FilterOp<T, F> {
    pub(crate) f: Arc<F>,
    pub(crate) next: Box<dyn Input<T>>,
    pub(crate) id: OpId,
}

impl<T, F: Fn(&T) -> bool> Input<T> for FilterOp<T, F> {
    #[inline]
    fn push(&mut self, value: T, timestamp: i64) -> TaskResult {
        self.id.enter();
        if (self.f)(&value) {
            self.next.push(value, timestamp)
        } else {
            Ok(())
        }
    }
    forward_events!();
}

/// A user's flat-map function.
pub type FlatMapFn<I, O> = Arc<dyn Fn(I, &mut Collector<'_, O>) + Send + Sync>;

/// `flat_map`: one record in, any number out.
pub struct FlatMapOp<I, O> {
    pub(crate) f: FlatMapFn<I, O>,
    pub(crate) next: Box<dyn Input<O>>,
    pub(crate) id: OpId,
}

impl<I, O> Input<I> for FlatMapOp<I, O> {
    #[inline]
    fn push(&mut self, value: I, timestamp: i64) -> TaskResult {
        self.id.enter();
        let mut c = Collector::new(self.next.as_mut(), timestamp);
        (self.f)(value, &mut c);
        c.finish()
    }
    forward_events!();
}

/// A pass-through (union, side-output heads).
pub struct IdentityOp<T> {
    pub(crate) next: Box<dyn Input<T>>,
}

impl<T> Input<T> for IdentityOp<T> {
    #[inline]
    fn push(&mut self, value: T, timestamp: i64) -> TaskResult {
        self.next.push(value, timestamp)
    }
    forward_events!();
}
