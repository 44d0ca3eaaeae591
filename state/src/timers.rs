//! Timers: callbacks a keyed operator asks for at an event time or processing time.
//!
//! Timers are per (key, namespace, timestamp) and deduplicated: registering the same timer
//! twice fires it once, as in Flink. They are ordered by timestamp so that advancing the
//! watermark pops exactly the due ones.

use std::collections::BTreeMap;
use std::hash::Hash;

use rustc_hash::FxHashSet;

/// Which clock a timer follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum TimeDomain {
    /// Fires when the watermark passes the timestamp.
    EventTime,
    /// Fires when the wall clock passes the timestamp.
    ProcessingTime,
}

/// A due timer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer<K, N> {
    /// When it was due.
    pub timestamp: i64,
    /// The key it was registered under.
    pub key: K,
    /// Its namespace (a window, or `()`).
    pub namespace: N,
}

#[derive(Debug)]
struct Queue<K, N> {
    by_time: BTreeMap<i64, Vec<(K, N)>>,
    /// Registered timers, for deduplication; `None` when the owner guarantees that it never
    /// registers a timer twice (the window operator), which saves a hash insert and remove
    /// per timer.
    set: Option<FxHashSet<(i64, K, N)>>,
    len: usize,
}

impl<K: Hash + Eq + Clone, N: Hash + Eq + Clone> Queue<K, N> {
    fn new(dedup: bool) -> Self {
        Self { by_time: BTreeMap::new(), set: dedup.then(FxHashSet::default), len: 0 }
    }

    fn register(&mut self, ts: i64, key: K, ns: N) -> bool {
        if let Some(set) = &mut self.set {
            if !set.insert((ts, key.clone(), ns.clone())) {
                return false;
            }
        }
        self.by_time.entry(ts).or_default().push((key, ns));
        self.len += 1;
        true
    }

    fn delete(&mut self, ts: i64, key: &K, ns: &N) -> bool {
        if let Some(set) = &mut self.set {
            if !set.remove(&(ts, key.clone(), ns.clone())) {
                return false;
            }
        }
        let Some(v) = self.by_time.get_mut(&ts) else { return false };
        let Some(pos) = v.iter().position(|(k, n)| k == key && n == ns) else { return false };
        v.swap_remove(pos);
        if v.is_empty() {
            self.by_time.remove(&ts);
        }
        self.len -= 1;
        true
    }

    fn pop_due(&mut self, up_to: i64) -> Option<Timer<K, N>> {
        let mut entry = self.by_time.first_entry()?;
        let ts = *entry.key();
        if ts > up_to {
            return None;
        }
        let (key, namespace) = entry.get_mut().pop()?;
        if entry.get().is_empty() {
            entry.remove();
        }
        if let Some(set) = &mut self.set {
            set.remove(&(ts, key.clone(), namespace.clone()));
        }
        self.len -= 1;
        Some(Timer { timestamp: ts, key, namespace })
    }

    fn next(&self) -> Option<i64> {
        self.by_time.keys().next().copied()
    }

    fn len(&self) -> usize {
        self.len
    }
}

/// The timers of one keyed operator instance, in both time domains.
#[derive(Debug)]
pub struct TimerService<K, N> {
    event: Queue<K, N>,
    processing: Queue<K, N>,
    /// Timers registered, deleted or popped so far: an owner compares it around a callback to
    /// learn whether the callback's key changed its timers (incremental checkpoints).
    changes: u64,
}

impl<K: Hash + Eq + Clone, N: Hash + Eq + Clone> Default for TimerService<K, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Hash + Eq + Clone, N: Hash + Eq + Clone> TimerService<K, N> {
    /// An empty timer service that deduplicates registrations.
    pub fn new() -> Self {
        Self { event: Queue::new(true), processing: Queue::new(true), changes: 0 }
    }

    /// An empty timer service for an owner that never registers the same timer twice: no
    /// deduplication set to maintain. Registering a timer twice fires it twice.
    pub fn without_dedup() -> Self {
        Self { event: Queue::new(false), processing: Queue::new(false), changes: 0 }
    }

    fn queue(&mut self, domain: TimeDomain) -> &mut Queue<K, N> {
        match domain {
            TimeDomain::EventTime => &mut self.event,
            TimeDomain::ProcessingTime => &mut self.processing,
        }
    }

    /// Registers a timer; returns false if the same timer was already registered.
    pub fn register(&mut self, domain: TimeDomain, timestamp: i64, key: K, namespace: N) -> bool {
        let new = self.queue(domain).register(timestamp, key, namespace);
        self.changes += u64::from(new);
        new
    }

    /// Deletes a timer; returns false if there was none.
    pub fn delete(&mut self, domain: TimeDomain, timestamp: i64, key: &K, namespace: &N) -> bool {
        let gone = self.queue(domain).delete(timestamp, key, namespace);
        self.changes += u64::from(gone);
        gone
    }

    /// Pops one timer due at or before `up_to`. Call in a loop: firing a timer may register
    /// new timers that are due as well.
    pub fn pop_due(&mut self, domain: TimeDomain, up_to: i64) -> Option<Timer<K, N>> {
        let t = self.queue(domain).pop_due(up_to);
        self.changes += u64::from(t.is_some());
        t
    }

    /// How many timers were registered, deleted or popped since this service was created.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// Calls `f` for every pending timer, in the order [`TimerService::snapshot`] lists them
    /// (without copying them all).
    pub fn for_each(&self, mut f: impl FnMut(TimeDomain, i64, &K, &N)) {
        for (d, q) in [(TimeDomain::EventTime, &self.event), (TimeDomain::ProcessingTime, &self.processing)] {
            for (ts, v) in &q.by_time {
                for (k, n) in v {
                    f(d, *ts, k, n);
                }
            }
        }
    }

    /// The earliest pending timer of a domain.
    pub fn next_timer(&self, domain: TimeDomain) -> Option<i64> {
        match domain {
            TimeDomain::EventTime => self.event.next(),
            TimeDomain::ProcessingTime => self.processing.next(),
        }
    }

    /// Number of pending timers of a domain.
    pub fn len(&self, domain: TimeDomain) -> usize {
        match domain {
            TimeDomain::EventTime => self.event.len(),
            TimeDomain::ProcessingTime => self.processing.len(),
        }
    }

    /// Every pending timer, for a snapshot (timers are state).
    pub fn snapshot(&self) -> Vec<(TimeDomain, i64, K, N)> {
        let mut out = Vec::with_capacity(self.event.len() + self.processing.len());
        for (d, q) in [(TimeDomain::EventTime, &self.event), (TimeDomain::ProcessingTime, &self.processing)] {
            for (ts, v) in &q.by_time {
                for (k, n) in v {
                    out.push((d, *ts, k.clone(), n.clone()));
                }
            }
        }
        out
    }

    /// Registers restored timers; `keep` selects those of the key groups this instance owns.
    pub fn restore(&mut self, timers: Vec<(TimeDomain, i64, K, N)>, keep: impl Fn(&K) -> bool) {
        for (d, ts, k, n) in timers {
            if keep(&k) {
                self.register(d, ts, k, n);
            }
        }
    }

    /// Whether no timer is pending in either domain.
    pub fn is_empty(&self) -> bool {
        self.event.len() == 0 && self.processing.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_fire_in_order_once() {
        let mut t = TimerService::<u32, ()>::new();
        assert!(t.register(TimeDomain::EventTime, 30, 1, ()));
        assert!(t.register(TimeDomain::EventTime, 10, 2, ()));
        assert!(!t.register(TimeDomain::EventTime, 10, 2, ()), "duplicate");
        assert!(t.register(TimeDomain::EventTime, 20, 3, ()));
        assert!(t.delete(TimeDomain::EventTime, 20, &3, &()));
        assert_eq!(t.pop_due(TimeDomain::EventTime, 25).map(|x| x.key), Some(2));
        assert_eq!(t.pop_due(TimeDomain::EventTime, 25), None);
        assert_eq!(t.next_timer(TimeDomain::EventTime), Some(30));
        assert_eq!(t.pop_due(TimeDomain::EventTime, i64::MAX).map(|x| x.timestamp), Some(30));
        assert!(t.is_empty());
    }

    #[test]
    fn timers_snapshot_and_restore_selectively() {
        let mut t = TimerService::<u32, ()>::new();
        t.register(TimeDomain::EventTime, 10, 1, ());
        t.register(TimeDomain::ProcessingTime, 20, 2, ());
        t.register(TimeDomain::EventTime, 30, 3, ());
        let snap = t.snapshot();
        assert_eq!(snap.len(), 3);
        let mut r = TimerService::<u32, ()>::new();
        r.restore(snap, |k| *k != 3);
        assert_eq!(r.len(TimeDomain::EventTime), 1);
        assert_eq!(r.pop_due(TimeDomain::ProcessingTime, 25).map(|x| x.key), Some(2));
    }

    #[test]
    fn without_dedup_keeps_order_and_deletes() {
        let mut t = TimerService::<u32, u8>::without_dedup();
        t.register(TimeDomain::ProcessingTime, 5, 1, 0);
        t.register(TimeDomain::ProcessingTime, 3, 2, 0);
        t.register(TimeDomain::ProcessingTime, 5, 3, 0);
        assert!(t.delete(TimeDomain::ProcessingTime, 5, &1, &0));
        assert!(!t.delete(TimeDomain::ProcessingTime, 5, &1, &0));
        assert_eq!(t.len(TimeDomain::ProcessingTime), 2);
        assert_eq!(t.pop_due(TimeDomain::ProcessingTime, 10).map(|x| x.key), Some(2));
        assert_eq!(t.pop_due(TimeDomain::ProcessingTime, 10).map(|x| x.key), Some(3));
        assert!(t.is_empty());
    }
}
