//! How records of one edge are spread over the consumer's subtasks, and the writer that
//! batches them into [`Element::Records`] for the data channels.
//!
//! The writer never blocks: it appends full batches to the subtask's [`Outbox`], and the
//! runtime drains the outbox into bounded channels (awaiting free capacity, which is where
//! backpressure comes from) before it hands the chain more input.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;

use crate::error::TaskResult;
use crate::link::Input;
use crate::record::{Element, StreamRecord};
use riffle_state::{assign_to_key_group, subtask_for_key_group};

/// How an edge connects producer subtasks to consumer subtasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PartitionKind {
    /// Producer i sends to consumer i (equal parallelism); what chaining needs.
    Forward,
    /// Round-robin over all consumers.
    Rebalance,
    /// Round-robin over a local subset of consumers (no all-to-all connections).
    Rescale,
    /// By key group of the record's key.
    Hash,
    /// Every record to every consumer.
    Broadcast,
}

/// The consumer subtasks producer `producer` (of `p`) is connected to, for `q` consumers.
/// Producers and consumers both derive their channels from this one function.
pub fn consumers_of(kind: PartitionKind, producer: u32, p: u32, q: u32) -> Vec<u32> {
    match kind {
        PartitionKind::Forward => vec![producer],
        PartitionKind::Rescale => {
            if p <= q {
                let lo = producer * q / p;
                let hi = (producer + 1) * q / p;
                (lo..hi.max(lo + 1)).collect()
            } else {
                vec![producer * q / p]
            }
        }
        _ => (0..q).collect(),
    }
}

/// The producer subtasks consumer `consumer` (of `q`) receives from, for `p` producers.
pub fn producers_of(kind: PartitionKind, consumer: u32, p: u32, q: u32) -> Vec<u32> {
    (0..p).filter(|&i| consumers_of(kind, i, p, q).contains(&consumer)).collect()
}

/// Picks the target of a record among the writer's channels.
pub enum Partitioner<T> {
    /// One channel.
    Forward,
    /// Round-robin, starting at the given position.
    RoundRobin(usize),
    /// By key hash: `hash(record)` → key group → consumer subtask.
    Hash(KeyGroupRouter<T>),
    /// Every channel.
    Broadcast,
}

/// Routes a record to its consumer by key group, without divisions on the hot path: the key
/// group is a mask when the number of key groups is a power of two, and the key group's
/// subtask comes from a table.
pub struct KeyGroupRouter<T> {
    hash: Arc<dyn Fn(&T) -> u64 + Send + Sync>,
    max_parallelism: u32,
    mask: Option<u64>,
    table: Vec<u32>,
}

impl<T> KeyGroupRouter<T> {
    /// A router for `parallelism` consumers over `max_parallelism` key groups.
    pub fn new(hash: Arc<dyn Fn(&T) -> u64 + Send + Sync>, max_parallelism: u32, parallelism: u32) -> Self {
        let max_parallelism = max_parallelism.max(1);
        let mask = max_parallelism.is_power_of_two().then(|| u64::from(max_parallelism) - 1);
        let table = (0..max_parallelism).map(|kg| subtask_for_key_group(max_parallelism, parallelism, kg)).collect();
        Self { hash, max_parallelism, mask, table }
    }

    /// The consumer subtask of `value`.
    #[inline]
    pub fn route(&self, value: &T) -> u32 {
        let h = (self.hash)(value);
        let kg = match self.mask {
            Some(m) => (h & m) as u32,
            None => assign_to_key_group(h, self.max_parallelism),
        };
        self.table[kg as usize]
    }
}

/// Where a subtask's writers leave finished batches and events, in order, for the runtime to
/// send: `(channel index in the subtask's output channel list, element)`.
#[derive(Default)]
pub struct Outbox {
    /// Elements waiting to be sent, oldest first.
    pub queue: VecDeque<(usize, Element)>,
    /// Records written so far (metrics).
    pub records_out: u64,
}

/// A shared handle to a subtask's outbox (chain links and the runtime loop both hold it).
pub type SharedOutbox = Rc<RefCell<Outbox>>;

/// The tail of a chain for one outgoing edge: partitions, batches, and queues records.
pub struct EdgeWriter<T> {
    partitioner: Partitioner<T>,
    /// Consumer subtask index per local channel.
    targets: Vec<u32>,
    /// First index of this edge's channels in the subtask's output channel list.
    channel_base: usize,
    buffers: Vec<Vec<StreamRecord<T>>>,
    batch_size: usize,
    outbox: SharedOutbox,
    registry: FlushRegistry,
    registered: bool,
}

/// The set of writers with unflushed records: the runtime flushes them when it is about to
/// wait for input, so that low-rate streams see no batching delay.
#[derive(Clone, Default)]
pub struct FlushRegistry(Rc<RefCell<Vec<FlushFn>>>);

type FlushFn = Box<dyn FnMut()>;

impl FlushRegistry {
    /// Runs every registered flush.
    pub fn flush_all(&self) {
        let mut fs = std::mem::take(&mut *self.0.borrow_mut());
        for f in fs.iter_mut() {
            f();
        }
        let mut cur = self.0.borrow_mut();
        fs.append(&mut cur);
        *cur = fs;
    }
}

impl<T: Send + 'static> EdgeWriter<T> {
    /// A writer for one edge; `targets` are the consumer subtasks it is connected to, in the
    /// order of its channels starting at `channel_base`.
    pub fn new(
        partitioner: Partitioner<T>,
        targets: Vec<u32>,
        channel_base: usize,
        batch_size: usize,
        outbox: SharedOutbox,
        registry: FlushRegistry,
    ) -> Self {
        let buffers = targets.iter().map(|_| Vec::new()).collect();
        Self {
            partitioner,
            targets,
            channel_base,
            buffers,
            batch_size: batch_size.max(1),
            outbox,
            registry,
            registered: false,
        }
    }

    fn flush_channel(buffers: &mut [Vec<StreamRecord<T>>], ch: usize, base: usize, outbox: &SharedOutbox) {
        let buf = std::mem::take(&mut buffers[ch]);
        if !buf.is_empty() {
            let mut ob = outbox.borrow_mut();
            ob.records_out += buf.len() as u64;
            ob.queue.push_back((base + ch, Element::Records { count: buf.len() as u32, batch: Box::new(buf) }));
        }
    }

    fn flush_all_channels(&mut self) {
        for ch in 0..self.buffers.len() {
            Self::flush_channel(&mut self.buffers, ch, self.channel_base, &self.outbox);
        }
    }

    fn broadcast_event(&mut self, make: impl Fn() -> Element) {
        self.flush_all_channels();
        let mut ob = self.outbox.borrow_mut();
        for ch in 0..self.targets.len() {
            ob.queue.push_back((self.channel_base + ch, make()));
        }
    }

    #[inline]
    fn append(&mut self, ch: usize, rec: StreamRecord<T>) {
        let buf = &mut self.buffers[ch];
        if buf.capacity() == 0 {
            buf.reserve_exact(self.batch_size);
        }
        buf.push(rec);
        if buf.len() >= self.batch_size {
            Self::flush_channel(&mut self.buffers, ch, self.channel_base, &self.outbox);
        }
    }
}

/// A writer that the flush registry can reach after the chain took ownership of it.
pub struct SharedEdgeWriter<T>(pub Rc<RefCell<EdgeWriter<T>>>);

impl<T: Clone + Send + 'static> SharedEdgeWriter<T> {
    /// Wraps `w` and registers its flush with the runtime.
    pub fn new(w: EdgeWriter<T>) -> Self {
        let registry = w.registry.clone();
        let rc = Rc::new(RefCell::new(w));
        let weak = Rc::downgrade(&rc);
        registry.0.borrow_mut().push(Box::new(move || {
            if let Some(w) = weak.upgrade() {
                if let Ok(mut w) = w.try_borrow_mut() {
                    w.flush_all_channels();
                }
            }
        }));
        rc.borrow_mut().registered = true;
        Self(rc)
    }
}

impl<T: Clone + Send + 'static> Input<T> for SharedEdgeWriter<T> {
    #[inline]
    fn push(&mut self, value: T, timestamp: i64) -> TaskResult {
        let mut w = self.0.borrow_mut();
        let n = w.targets.len();
        match &mut w.partitioner {
            Partitioner::Forward => w.append(0, StreamRecord { value, timestamp }),
            Partitioner::RoundRobin(next) => {
                let ch = *next;
                *next = if ch + 1 >= n { 0 } else { ch + 1 };
                w.append(ch, StreamRecord { value, timestamp });
            }
            Partitioner::Hash(router) => {
                // Hash edges connect to all consumers, so the target is the channel index.
                let ch = (router.route(&value) as usize).min(n.saturating_sub(1));
                w.append(ch, StreamRecord { value, timestamp });
            }
            Partitioner::Broadcast => {
                for ch in 0..n {
                    w.append(ch, StreamRecord { value: value.clone(), timestamp });
                }
            }
        }
        Ok(())
    }

    fn watermark(&mut self, watermark: i64) -> TaskResult {
        self.0.borrow_mut().broadcast_event(|| Element::Watermark(watermark));
        Ok(())
    }

    fn idle(&mut self, idle: bool) -> TaskResult {
        self.0.borrow_mut().broadcast_event(|| Element::Idle(idle));
        Ok(())
    }

    fn end_input(&mut self) -> TaskResult {
        self.0.borrow_mut().broadcast_event(|| Element::EndOfPartition);
        Ok(())
    }

    fn processing_time(&mut self, _now: i64) -> TaskResult {
        Ok(())
    }

    fn next_processing_time(&self) -> Option<i64> {
        None
    }

    crate::link::no_state!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rescale_and_forward_connections_are_symmetric() {
        for kind in [PartitionKind::Rescale, PartitionKind::Rebalance, PartitionKind::Hash] {
            for p in 1..6 {
                for q in 1..6 {
                    let mut pairs = 0;
                    for c in 0..q {
                        for prod in producers_of(kind, c, p, q) {
                            assert!(consumers_of(kind, prod, p, q).contains(&c));
                            pairs += 1;
                        }
                    }
                    let total: usize = (0..p).map(|i| consumers_of(kind, i, p, q).len()).sum();
                    assert_eq!(pairs, total);
                    for c in 0..q {
                        assert!(!producers_of(kind, c, p, q).is_empty(), "{kind:?} {p}->{q}: consumer {c} unconnected");
                    }
                }
            }
        }
    }

    #[test]
    fn writer_batches_and_hashes() {
        let outbox = SharedOutbox::default();
        let reg = FlushRegistry::default();
        let part = Partitioner::Hash(KeyGroupRouter::new(Arc::new(|v: &u64| riffle_state::key_hash(v)), 128, 2));
        let mut w = SharedEdgeWriter::new(EdgeWriter::new(part, vec![0, 1], 0, 4, outbox.clone(), reg.clone()));
        for i in 0..10u64 {
            w.push(i, 0).unwrap();
        }
        reg.flush_all();
        let total: u32 = outbox
            .borrow()
            .queue
            .iter()
            .map(|(_, e)| match e {
                Element::Records { count, .. } => *count,
                _ => 0,
            })
            .sum();
        assert_eq!(total, 10);
        assert_eq!(outbox.borrow().records_out, 10);
    }
}
