//! The network buffer pool of a TaskManager process (`taskmanager.memory.network.*`): a fixed
//! budget of memory segments that every data frame it sends or receives lives in. A received
//! frame takes as many segments as its length needs before a byte of it is read; when the pool
//! is empty the data connections stop reading, TCP's window closes and the producers in other
//! processes stop (on top of each channel's credit). A sent frame is encoded into segments and
//! holds them until it is written. So however many channels a TaskManager serves, the bytes
//! it has on their way in or out never exceed the pool.
//!
//! The segments are split in two pools, one per direction ([`NetworkBuffers`]): a frame being
//! sent waits for the peer to read, a frame being received for nothing but this process, so
//! with one shared pool two TaskManagers whose senders held all the segments could each wait
//! for the other to read. Apart, receiving always drains, and so sending always completes.
//!
//! A frame is one contiguous buffer of as many segments as it needs (the records are decoded
//! straight from it). Buffers are kept for the next frame of the same size (a channel's
//! batches are much alike), and the kept ones plus those in use never hold more memory than
//! the pool: a new buffer evicts kept ones when it would. A frame larger than the whole pool
//! waits for the whole pool, so it is still read (alone), never refused or awaited forever. Segments are only held while a frame is read and decoded, never
//! while its records wait for room in the consumer's channel, so a full pool always drains.

use std::sync::{Arc, Mutex};

use riffle_api::{ConfigOption, Group, MemorySize, OptionInfo};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Flink's defaults: 32 KiB segments, network memory 10 % of the process, 64 MiB to 1 GiB.
pub const DEFAULT_SEGMENT_SIZE: usize = 32 * 1024;
const DEFAULT_MIN: u64 = 64 << 20;
const DEFAULT_MAX: u64 = 1 << 30;
const DEFAULT_FRACTION: f64 = 0.1;
/// `taskmanager.memory.process.size` when not given (Flink's default configuration file).
const DEFAULT_PROCESS_SIZE: u64 = 1728 << 20;

/// `taskmanager.memory.segment-size`.
pub const SEGMENT_SIZE: ConfigOption<MemorySize> = ConfigOption::new(
    Group::Network,
    "taskmanager.memory.segment-size",
    MemorySize::bytes(DEFAULT_SEGMENT_SIZE),
    "size of a network buffer (4kb to 16mb)",
);
/// `taskmanager.memory.network.fraction`.
pub const NETWORK_FRACTION: ConfigOption<f64> = ConfigOption::new(
    Group::Network,
    "taskmanager.memory.network.fraction",
    DEFAULT_FRACTION,
    "share of taskmanager.memory.process.size for network buffers",
);
/// `taskmanager.memory.network.min`.
pub const NETWORK_MIN: ConfigOption<MemorySize> = ConfigOption::new(
    Group::Network,
    "taskmanager.memory.network.min",
    MemorySize::bytes(DEFAULT_MIN as usize),
    "least network buffer memory of a TaskManager",
);
/// `taskmanager.memory.network.max`.
pub const NETWORK_MAX: ConfigOption<MemorySize> = ConfigOption::new(
    Group::Network,
    "taskmanager.memory.network.max",
    MemorySize::bytes(DEFAULT_MAX as usize),
    "most network buffer memory of a TaskManager",
);
/// `taskmanager.memory.process.size`.
pub const PROCESS_SIZE: ConfigOption<MemorySize> = ConfigOption::new(
    Group::Network,
    "taskmanager.memory.process.size",
    MemorySize::bytes(DEFAULT_PROCESS_SIZE as usize),
    "a TaskManager's memory, the base of the network fraction",
);

/// The options [`PoolSize::from_config`] reads.
pub(crate) const OPTIONS: &[&dyn OptionInfo] =
    &[&SEGMENT_SIZE, &NETWORK_FRACTION, &NETWORK_MIN, &NETWORK_MAX, &PROCESS_SIZE];

/// The pool's shape, from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSize {
    /// Bytes per segment (`taskmanager.memory.segment-size`).
    pub segment_size: usize,
    /// Segments in the pool.
    pub segments: usize,
}

impl PoolSize {
    /// `taskmanager.memory.network.fraction` of `taskmanager.memory.process.size`, kept within
    /// `taskmanager.memory.network.min` and `.max`, in segments of
    /// `taskmanager.memory.segment-size`. Malformed values are refused with their key.
    pub fn from_config(c: &riffle_api::Configuration) -> Result<Self, riffle_api::ConfigError> {
        let bytes = |o: &ConfigOption<MemorySize>| c.get(o).map(|b| b.as_bytes() as u64);
        let segment_size = bytes(&SEGMENT_SIZE)?;
        if !(4096..=(16 << 20)).contains(&segment_size) {
            return Err(riffle_api::ConfigError {
                key: SEGMENT_SIZE.key().into(),
                value: segment_size.to_string(),
                reason: "must be between 4kb and 16mb".into(),
            });
        }
        let min = bytes(&NETWORK_MIN)?;
        let max = bytes(&NETWORK_MAX)?;
        if min > max {
            return Err(riffle_api::ConfigError {
                key: NETWORK_MIN.key().into(),
                value: min.to_string(),
                reason: format!("is above taskmanager.memory.network.max ({max})"),
            });
        }
        let fraction = c.get(&NETWORK_FRACTION)?;
        if !(0.0..1.0).contains(&fraction) {
            return Err(riffle_api::ConfigError {
                key: NETWORK_FRACTION.key().into(),
                value: fraction.to_string(),
                reason: "must be at least 0 and below 1".into(),
            });
        }
        let process = bytes(&PROCESS_SIZE)?;
        let network = ((process as f64 * fraction) as u64).clamp(min, max);
        let segments = (network / segment_size).max(1);
        Ok(PoolSize { segment_size: segment_size as usize, segments: segments as usize })
    }
}

/// A TaskManager's network buffers: the pool's segments, half for each direction.
#[derive(Debug, Clone)]
pub struct NetworkBuffers {
    /// What received frames are read into.
    pub receive: NetworkBufferPool,
    /// What frames to send are encoded into.
    pub send: NetworkBufferPool,
}

impl NetworkBuffers {
    /// `size.segments` segments, half (at least one) for each direction.
    pub fn new(size: PoolSize) -> Self {
        let receive = (size.segments / 2).max(1);
        let send = size.segments.saturating_sub(receive).max(1);
        Self {
            receive: NetworkBufferPool::new(PoolSize { segments: receive, ..size }),
            send: NetworkBufferPool::new(PoolSize { segments: send, ..size }),
        }
    }

    /// Both directions' segments, and how many are free now (Flink's `nettyShuffleMemory*`).
    pub fn sample(&self) -> riffle_actors::peers::NetworkSample {
        let (r, s) = (self.receive.size(), self.send.size());
        riffle_actors::peers::NetworkSample {
            segment_size: r.segment_size as u64,
            total: (r.segments + s.segments) as u64,
            available: (self.receive.available() + self.send.available()) as u64,
        }
    }
}

/// A pool of network segments. Clones share it.
#[derive(Debug, Clone)]
pub struct NetworkBufferPool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    size: PoolSize,
    permits: Arc<Semaphore>,
    /// Buffers given back, ready for the next frame of their size.
    free: Mutex<FreeBuffers>,
}

/// Kept buffers by their size in segments, and their bytes.
#[derive(Debug, Default)]
struct FreeBuffers {
    by_segments: std::collections::BTreeMap<usize, Vec<Vec<u8>>>,
    bytes: usize,
}

impl FreeBuffers {
    /// Frees kept buffers, largest first, until at most `budget` bytes are kept.
    fn shrink_to(&mut self, budget: usize) {
        while self.bytes > budget {
            let Some(mut largest) = self.by_segments.last_entry() else { return };
            match largest.get_mut().pop() {
                Some(b) => self.bytes = self.bytes.saturating_sub(b.capacity()),
                None => {
                    largest.remove();
                }
            }
        }
    }
}

/// The pool was closed (the TaskManager is stopping).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the network buffer pool is closed")]
pub struct PoolClosed;

impl NetworkBufferPool {
    /// A pool of `size.segments` segments (allocated on first use, then reused).
    pub fn new(size: PoolSize) -> Self {
        Self {
            inner: Arc::new(Inner {
                size,
                permits: Arc::new(Semaphore::new(size.segments)),
                free: Mutex::new(FreeBuffers::default()),
            }),
        }
    }

    /// The pool's shape.
    pub fn size(&self) -> PoolSize {
        self.inner.size
    }

    /// Segments not taken now (Flink's `AvailableMemorySegments`).
    pub fn available(&self) -> usize {
        self.inner.permits.available_permits()
    }

    /// A buffer with room for `len` bytes, once the pool has the segments for it: waits while
    /// it does not (that wait is the backpressure).
    pub async fn acquire(&self, len: usize) -> Result<PooledBuffer, PoolClosed> {
        let size = self.inner.size;
        let needed = len.div_ceil(size.segment_size).clamp(1, size.segments);
        let permits = u32::try_from(needed).map_err(|_| PoolClosed)?;
        let permit = self.inner.permits.clone().acquire_many_owned(permits).await.map_err(|_| PoolClosed)?;
        let buf = {
            let mut free = self.inner.free.lock().unwrap_or_else(|e| e.into_inner());
            match free.by_segments.get_mut(&needed).and_then(Vec::pop) {
                Some(b) => {
                    free.bytes = free.bytes.saturating_sub(b.capacity());
                    b
                }
                None => {
                    // What is not in use may be kept; make room for this new buffer.
                    free.shrink_to(self.inner.permits.available_permits() * size.segment_size);
                    Vec::with_capacity(len.max(needed * size.segment_size))
                }
            }
        };
        Ok(PooledBuffer { buf, permit, pool: self.inner.clone() })
    }
}

impl AsMut<Vec<u8>> for PooledBuffer {
    fn as_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }
}

/// A frame's buffer, holding its segments of the pool until it is dropped.
#[derive(Debug)]
pub struct PooledBuffer {
    buf: Vec<u8>,
    permit: OwnedSemaphorePermit,
    pool: Arc<Inner>,
}

impl PooledBuffer {
    /// Takes the segments the buffer needs now that it grew (a frame encoded into it came out
    /// larger than asked for). It gives back what it holds and waits for the whole count at
    /// once (the semaphore is fair), so two growing buffers never each hold a part and wait
    /// for the rest.
    pub async fn fit(&mut self) -> Result<(), PoolClosed> {
        let size = self.pool.size;
        let needed = self.buf.capacity().div_ceil(size.segment_size).clamp(1, size.segments);
        let held = self.permit.num_permits();
        if needed <= held {
            return Ok(());
        }
        drop(self.permit.split(held));
        let more = u32::try_from(needed).map_err(|_| PoolClosed)?;
        let permit = self.pool.permits.clone().acquire_many_owned(more).await.map_err(|_| PoolClosed)?;
        self.permit.merge(permit);
        // Fewer segments are free now: the kept buffers must still fit in them.
        let mut free = self.pool.free.lock().unwrap_or_else(|e| e.into_inner());
        free.shrink_to(self.pool.permits.available_permits() * size.segment_size);
        Ok(())
    }

    /// The buffer (empty, with room for the frame) to read into.
    pub fn buf_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// What was read.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        let segment = self.pool.size.segment_size;
        let segments = self.buf.capacity() / segment;
        // Kept only when it is exactly its segments (a frame larger than the pool is not) and
        // the kept buffers stay within what is not in use once this one's segments are back.
        if segments == 0 || !self.buf.capacity().is_multiple_of(segment) {
            return;
        }
        let mut free = self.pool.free.lock().unwrap_or_else(|e| e.into_inner());
        let budget = (self.pool.permits.available_permits() + self.permit.num_permits()) * segment;
        if free.bytes + self.buf.capacity() <= budget {
            let mut buf = std::mem::take(&mut self.buf);
            buf.clear();
            free.bytes += buf.capacity();
            free.by_segments.entry(segments).or_default().push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pool(segments: usize) -> NetworkBufferPool {
        NetworkBufferPool::new(PoolSize { segment_size: 4096, segments })
    }

    #[tokio::test]
    async fn frames_take_segments_by_length_and_give_them_back() {
        let p = pool(4);
        let one = p.acquire(10).await.expect("one segment");
        let three = p.acquire(4096 * 2 + 1).await.expect("three segments");
        assert_eq!(p.available(), 0);
        assert!(three.bytes().is_empty() && three.buf.capacity() == 3 * 4096);
        let three_at = three.buf.as_ptr();
        drop(three);
        assert_eq!(p.available(), 3);
        // A frame of the same size takes the same buffer again.
        let again = p.acquire(4096 * 3).await.expect("three segments");
        assert_eq!(again.buf.as_ptr(), three_at);
        drop(again);
        let before = one.buf.as_ptr();
        drop(one);
        // The segment is reused, not allocated again.
        let again = p.acquire(4096).await.expect("one segment");
        assert_eq!(again.buf.as_ptr(), before);
    }

    #[tokio::test]
    async fn kept_buffers_and_those_in_use_never_exceed_the_pool() {
        let p = pool(4);
        drop(p.acquire(4 * 4096).await.expect("four segments"));
        assert_eq!(p.inner.free.lock().map(|f| f.bytes).unwrap_or(0), 4 * 4096);
        // Two one-segment frames: the kept four-segment buffer is freed to make room.
        let (a, b) = (p.acquire(1).await.expect("one"), p.acquire(1).await.expect("one"));
        let kept = p.inner.free.lock().map(|f| f.bytes).unwrap_or(0);
        assert!(kept + a.buf.capacity() + b.buf.capacity() <= 4 * 4096, "kept {kept}");
    }

    #[tokio::test]
    async fn a_grown_buffer_takes_the_segments_it_now_needs() {
        let p = pool(4);
        let mut b = p.acquire(1).await.expect("one segment");
        b.as_mut().extend_from_slice(&[7; 4096 * 2 + 10]);
        b.fit().await.expect("fits");
        assert_eq!((b.permit.num_permits(), p.available()), (3, 1));
        b.fit().await.expect("already fits");
        assert_eq!(p.available(), 1);
        drop(b);
        assert_eq!(p.available(), 4);
        // The directions' pools split the segments.
        let both = NetworkBuffers::new(PoolSize { segment_size: 4096, segments: 5 });
        assert_eq!((both.receive.size().segments, both.send.size().segments), (2, 3));
        let s = both.sample();
        assert_eq!((s.segment_size, s.total, s.available), (4096, 5, 5));
    }

    #[tokio::test]
    async fn an_empty_pool_makes_readers_wait_until_a_frame_is_done() {
        let p = pool(2);
        let held = p.acquire(8192).await.expect("the whole pool");
        let waiting = tokio::time::timeout(Duration::from_millis(50), p.acquire(1)).await;
        assert!(waiting.is_err(), "no segment is free: the reader waits");
        let p2 = p.clone();
        let later = tokio::spawn(async move { p2.acquire(1).await.map(|b| b.bytes().len()) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(held);
        assert_eq!(tokio::time::timeout(Duration::from_secs(5), later).await.ok().and_then(|r| r.ok()), Some(Ok(0)));
    }

    #[tokio::test]
    async fn a_frame_larger_than_the_pool_waits_for_the_whole_pool_and_is_read() {
        let p = pool(2);
        let small = p.acquire(1).await.expect("one segment");
        let p2 = p.clone();
        let big = tokio::spawn(async move { p2.acquire(3 * 4096).await.map(|b| (b.buf.capacity(), b.pool.size)) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!big.is_finished(), "it waits for the whole pool");
        drop(small);
        let (capacity, _) = tokio::time::timeout(Duration::from_secs(5), big)
            .await
            .ok()
            .and_then(|r| r.ok())
            .and_then(|r| r.ok())
            .expect("read alone");
        assert!(capacity >= 3 * 4096);
        assert_eq!(p.available(), 2);
    }

    mod model {
        use futures::FutureExt;
        use proptest::prelude::*;

        use super::*;

        #[derive(Debug, Clone)]
        enum Op {
            /// A frame of this many bytes (taken only if the pool has room now).
            Acquire(usize),
            /// Buffer `i % held` grows by this many bytes and takes its segments (only if they
            /// are free now: a real frame would wait).
            Grow(usize, usize),
            /// Buffer `i % held` is done.
            Release(usize),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                (1usize..6 * 4096).prop_map(Op::Acquire),
                (any::<usize>(), 1usize..3 * 4096).prop_map(|(i, n)| Op::Grow(i, n)),
                any::<usize>().prop_map(Op::Release),
            ]
        }

        fn kept(p: &NetworkBufferPool) -> usize {
            p.inner.free.lock().map(|f| f.bytes).unwrap_or(usize::MAX)
        }

        proptest! {
            /// Over any sequence of frames taken, grown and given back: segments are never
            /// lost or made up (free + held = the pool), kept buffers never hold more than the
            /// free segments (so kept plus in use stay within the pool), and once every frame
            /// is back the whole pool is free.
            #[test]
            fn segments_are_conserved_and_memory_stays_within_the_pool(
                segments in 1usize..8,
                ops in proptest::collection::vec(op(), 0..120),
            ) {
                let p = NetworkBufferPool::new(PoolSize { segment_size: 4096, segments });
                let mut held: Vec<PooledBuffer> = Vec::new();
                for op in ops {
                    match op {
                        Op::Acquire(len) => {
                            if let Some(Ok(b)) = p.acquire(len).now_or_never() {
                                held.push(b);
                            }
                        }
                        Op::Grow(i, n) if !held.is_empty() => {
                            let i = i % held.len();
                            let b = &mut held[i];
                            let len = b.buf.capacity() + n;
                            b.as_mut().resize(len, 1);
                            let needed = b.buf.capacity().div_ceil(4096).clamp(1, segments);
                            if needed <= b.permit.num_permits() + p.available() {
                                prop_assert!(matches!(b.fit().now_or_never(), Some(Ok(()))));
                            } else {
                                // A real frame would wait for its segments; this one is dropped.
                                drop(held.swap_remove(i));
                            }
                        }
                        Op::Release(i) if !held.is_empty() => {
                            let i = i % held.len();
                            drop(held.swap_remove(i));
                        }
                        Op::Grow(..) | Op::Release(_) => {}
                    }
                    let in_use: usize = held.iter().map(|b| b.permit.num_permits()).sum();
                    prop_assert_eq!(p.available() + in_use, segments);
                    prop_assert!(kept(&p) <= p.available() * 4096, "kept {} with {} free", kept(&p), p.available());
                }
                held.clear();
                prop_assert_eq!(p.available(), segments);
                prop_assert!(kept(&p) <= segments * 4096);
            }
        }
    }

    #[test]
    fn sizes_follow_flinks_keys_and_refuse_bad_values_by_name() {
        let mut c = riffle_api::Configuration::new();
        // 10 % of 1728 MiB is 172.8 MiB, within [64 MiB, 1 GiB]: 5529 segments of 32 KiB.
        assert_eq!(PoolSize::from_config(&c).ok(), Some(PoolSize { segment_size: 32768, segments: 5529 }));
        c.set("taskmanager.memory.network.max", "16mb");
        c.set("taskmanager.memory.network.min", "8mb");
        assert_eq!(PoolSize::from_config(&c).ok(), Some(PoolSize { segment_size: 32768, segments: 512 }));
        c.set("taskmanager.memory.segment-size", "64kb");
        assert_eq!(PoolSize::from_config(&c).ok().map(|s| s.segments), Some(256));
        c.set("taskmanager.memory.network.min", "lots");
        let e = PoolSize::from_config(&c).expect_err("refused");
        assert_eq!(e.key, "taskmanager.memory.network.min");
        c.set("taskmanager.memory.network.min", "32mb");
        assert_eq!(PoolSize::from_config(&c).expect_err("min > max").key, "taskmanager.memory.network.min");
        c.set("taskmanager.memory.network.min", "1mb");
        c.set("taskmanager.memory.segment-size", "1kb");
        assert_eq!(PoolSize::from_config(&c).expect_err("too small").key, "taskmanager.memory.segment-size");
    }
}
