//! In-process data channels between subtasks: bounded queues of batches.
//!
//! A channel is identified by (job, attempt, edge, producer, consumer). Whichever side comes
//! first creates it; each side takes its own end. Capacity is in batches, so memory between
//! two subtasks is bounded by `capacity × batch size` whatever their speeds.
//!
//! Beside the bounded data queue every channel has a priority lane, unbounded and for
//! checkpoint barriers only: an unaligned checkpoint's barrier overtakes the queued data
//! (FLIP-76), so a backlog does not delay the checkpoint.

use dashmap::DashMap;
use riffle_api::{ChannelKey, CheckpointBarrier, Element};
use tokio::sync::mpsc::{channel, unbounded_channel, Receiver, Sender, UnboundedReceiver, UnboundedSender};

use crate::ids::JobId;

/// Full identity of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChannelId {
    /// The job.
    pub job: JobId,
    /// The job's attempt (a restart gets fresh channels).
    pub attempt: u32,
    /// Edge, producer, consumer.
    pub key: ChannelKey,
}

struct Ends {
    tx: Option<ChannelSender>,
    rx: Option<ChannelReceiver>,
}

/// The producer's end of a channel: the data queue and the priority lane.
pub type ChannelSender = (Sender<Element>, UnboundedSender<CheckpointBarrier>);
/// The consumer's end of a channel: the data queue and the priority lane.
pub type ChannelReceiver = (Receiver<Element>, UnboundedReceiver<CheckpointBarrier>);

/// The channels of this process.
#[derive(Default)]
pub struct LocalExchange {
    channels: DashMap<ChannelId, Ends>,
}

/// Batches a channel holds at most before the producer waits (backpressure). With 4, two slots
/// exchanging all-to-all (a keyed word count at parallelism 2) stall each other: each slot
/// thread runs its source and its consumer in turns, and a producer whose channel to the other
/// slot is full waits for that slot's next turn (1.4x the speed of parallelism 1; 1.9x with
/// 16). How much of it a channel uses is buffer debloating's decision (`crate::debloat`): a
/// slow consumer's channel holds a few batches, so an aligned checkpoint does not wait behind
/// 16 of them.
pub const DEFAULT_CHANNEL_CAPACITY: usize = 16;

impl LocalExchange {
    fn with_ends<R>(&self, id: ChannelId, capacity: usize, f: impl FnOnce(&mut Ends) -> R) -> R {
        let mut e = self.channels.entry(id).or_insert_with(|| {
            let (tx, rx) = channel(capacity.max(1));
            let (ptx, prx) = unbounded_channel();
            Ends { tx: Some((tx, ptx)), rx: Some((rx, prx)) }
        });
        let r = f(&mut e);
        let done = e.tx.is_none() && e.rx.is_none();
        drop(e);
        if done {
            self.channels.remove(&id);
        }
        r
    }

    /// The producer's end (None if it was taken already).
    pub fn take_sender(&self, id: ChannelId, capacity: usize) -> Option<ChannelSender> {
        self.with_ends(id, capacity, |e| e.tx.take())
    }

    /// The consumer's end (None if it was taken already).
    pub fn take_receiver(&self, id: ChannelId, capacity: usize) -> Option<ChannelReceiver> {
        self.with_ends(id, capacity, |e| e.rx.take())
    }

    /// Drops every channel of a job attempt that a side never picked up.
    pub fn remove_attempt(&self, job: JobId, attempt: u32) {
        self.channels.retain(|k, _| !(k.job == job && k.attempt == attempt));
    }

    /// Number of channels not yet picked up by both sides (tests, leak checks).
    pub fn pending(&self) -> usize {
        self.channels.len()
    }
}
