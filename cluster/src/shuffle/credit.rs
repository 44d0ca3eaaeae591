//! Credit-based flow control of one network channel, as pure bookkeeping: the consumer's
//! [`ConsumerCredit`] decides when to grant, the producer's [`ProducerCredit`] when it may
//! send. The [`inbound`](super::inbound) and [`outbound`](super::outbound) tasks only move
//! the grants and elements between them.
//!
//! The rule that bounds memory: the consumer grants the channel's capacity up front, then
//! `batch` more for every `batch` elements its local channel accepted. So the elements on the
//! wire never exceed the capacity (the local channel, bounded by the same capacity, holds the
//! rest), and a producer with data to send always has credit or elements on their way whose
//! acceptance brings credit back (`model` below checks both over random schedules).

/// The consumer's side: when to grant more credit.
#[derive(Debug, Clone)]
pub struct ConsumerCredit {
    batch: u32,
    accepted: u32,
}

impl ConsumerCredit {
    /// The bookkeeping of a channel holding `capacity` elements, and the credit to grant up
    /// front. Credit goes back in batches of half the capacity (one small write per two
    /// frames or more instead of one per frame).
    pub fn new(capacity: usize) -> (Self, u32) {
        let capacity = u32::try_from(capacity.max(1)).unwrap_or(u32::MAX);
        (Self { batch: (capacity / 2).max(1), accepted: 0 }, capacity)
    }

    /// The local channel accepted one element: the credit to grant now, if any.
    #[inline]
    pub fn accepted(&mut self) -> Option<u32> {
        self.accepted += 1;
        if self.accepted == self.batch {
            self.accepted = 0;
            Some(self.batch)
        } else {
            None
        }
    }
}

/// The producer's side: how many elements it may still send.
#[derive(Debug, Clone, Default)]
pub struct ProducerCredit(u64);

impl ProducerCredit {
    /// The consumer granted `n` more.
    #[inline]
    pub fn grant(&mut self, n: u32) {
        self.0 += u64::from(n);
    }

    /// Whether an element may be sent now.
    #[inline]
    pub fn available(&self) -> bool {
        self.0 > 0
    }

    /// One element was sent.
    #[inline]
    pub fn spend(&mut self) {
        self.0 = self.0.saturating_sub(1);
    }
}

#[cfg(test)]
mod model {
    use std::collections::VecDeque;

    use proptest::prelude::*;

    use super::*;

    /// One step of a schedule: who moves next.
    #[derive(Debug, Clone, Copy)]
    enum Step {
        /// The producer sends if it has data and credit.
        Send,
        /// The wire delivers the oldest frame to the consumer's side, which hands it to its
        /// local channel when that has room (else it waits, and so does the wire).
        Deliver,
        /// The wire delivers the oldest grant to the producer.
        Grant,
        /// The consumer's operator takes one element from its local channel.
        Consume,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![Just(Step::Send), Just(Step::Deliver), Just(Step::Grant), Just(Step::Consume)]
    }

    proptest! {
        /// Over any interleaving of sending, delivering, granting and consuming: the wire never
        /// holds more than the capacity, everything arrives once and in order, and the producer
        /// is never stuck without credit while nothing is on its way.
        #[test]
        fn credit_bounds_memory_and_never_deadlocks(
            capacity in 1usize..9,
            total in 0u32..200,
            schedule in proptest::collection::vec(step(), 0..600),
        ) {
            let (mut consumer, initial) = ConsumerCredit::new(capacity);
            let mut producer = ProducerCredit::default();
            let mut grants: VecDeque<u32> = VecDeque::from([initial]);
            let mut wire: VecDeque<u32> = VecDeque::new();
            let mut local: VecDeque<u32> = VecDeque::new();
            let (mut next, mut received) = (0u32, 0u32);
            // The schedule, then a fair drain (every party in turn) that must finish.
            let drain = std::iter::repeat([Step::Grant, Step::Send, Step::Deliver, Step::Consume]).flatten();
            for (i, s) in schedule.into_iter().chain(drain).enumerate() {
                match s {
                    Step::Send if next < total && producer.available() => {
                        producer.spend();
                        wire.push_back(next);
                        next += 1;
                    }
                    Step::Deliver => {
                        if let Some(e) = wire.front().copied().filter(|_| local.len() < capacity) {
                            wire.pop_front();
                            local.push_back(e);
                            if let Some(n) = consumer.accepted() {
                                grants.push_back(n);
                            }
                        }
                    }
                    Step::Grant => {
                        if let Some(n) = grants.pop_front() {
                            producer.grant(n);
                        }
                    }
                    Step::Consume => {
                        if let Some(e) = local.pop_front() {
                            prop_assert_eq!(e, received, "in order");
                            received += 1;
                        }
                    }
                    Step::Send => {}
                }
                prop_assert!(wire.len() <= capacity, "{} in flight", wire.len());
                let stuck = next < total && !producer.available() && wire.is_empty() && grants.is_empty();
                // (Consuming grants nothing: credit comes back when elements are accepted.)
                prop_assert!(!stuck, "the producer waits for credit nobody will grant");
                if received == total {
                    break;
                }
                prop_assert!(i < 1_000_000, "no progress");
            }
            prop_assert_eq!(received, total);
        }
    }
}
