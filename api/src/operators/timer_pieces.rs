//! The timers of a keyed process function as pieces for incremental checkpoints: one piece
//! per key group, kept (same id, same bytes) while no timer of the group was registered,
//! deleted or fired.
//!
//! A full snapshot holds the timers as a [`KeyGroupedState`]: in MessagePack, an array of one
//! field, the list of `(key group, count, entries)` groups. Each group is a piece here; the
//! two array headers are a fresh piece before them. The operator reports the keys whose
//! timers changed ([`TimerPieces::changed`]); the service's change counter tells it when.

use std::sync::Arc;

use riffle_state::{assign_to_key_group, key_hash, StateKey, TimerService};
use serde_bytes::ByteBuf;

use crate::error::TaskError;
use crate::snapshot::{encode_state, msgpack_array_header, Segment};

#[cfg(doc)]
use crate::snapshot::KeyGroupedState;

/// Timer piece ids have the top bit set, so they never meet the keyed state store's ids
/// (which count up from 1) in the same operator.
const TIMER_IDS: u64 = 1 << 63;

/// A kept timer piece: its id and bytes.
type Kept = (u64, Arc<Vec<u8>>);

/// The encoded timers of the key groups that did not change.
#[derive(Debug, Default)]
pub(crate) struct TimerPieces {
    max_parallelism: u32,
    /// Per key group: `None` changed (or never encoded); `Some(None)` no timers.
    kept: Vec<Option<Option<Kept>>>,
    next_id: u64,
}

impl TimerPieces {
    /// `key`'s timers changed.
    pub(crate) fn changed<K: StateKey>(&mut self, key: &K) {
        if self.kept.is_empty() {
            return;
        }
        let kg = assign_to_key_group(key_hash(key), self.max_parallelism) as usize;
        if let Some(slot) = self.kept.get_mut(kg) {
            *slot = None;
        }
    }

    /// Forgets every kept piece (a restore registered timers of unknown groups).
    pub(crate) fn reset(&mut self) {
        self.kept.clear();
    }

    /// The timers as pieces: a fresh piece with the headers, then one piece per key group
    /// holding timers (in key group order). Encodes only the groups that changed.
    pub(crate) fn segments<K: StateKey>(
        &mut self,
        timers: &TimerService<K, ()>,
        max_parallelism: u32,
        name: &str,
    ) -> Result<(Vec<u8>, Vec<Segment>), TaskError> {
        let mp = max_parallelism.max(1);
        if self.max_parallelism != mp {
            self.kept.clear();
            self.max_parallelism = mp;
        }
        self.kept.resize(mp as usize, None);
        if self.kept.iter().any(Option::is_none) {
            let mut fresh: Vec<(u32, Vec<u8>)> = vec![(0, Vec::new()); mp as usize];
            let mut result = Ok(());
            timers.for_each(|d, ts, k, _| {
                let kg = assign_to_key_group(key_hash(k), mp) as usize;
                if self.kept[kg].is_none() && result.is_ok() {
                    let (n, buf) = &mut fresh[kg];
                    *n += 1;
                    result = rmp_serde::encode::write(buf, &(k, (d, ts)))
                        .map_err(|e| TaskError::msg(name, format!("cannot snapshot timers: {e}")));
                }
            });
            result?;
            for (kg, (n, buf)) in fresh.into_iter().enumerate() {
                if self.kept[kg].is_some() {
                    continue;
                }
                self.kept[kg] = Some(if n == 0 {
                    None
                } else {
                    self.next_id += 1;
                    let bytes = encode_state(&(kg as u32, n, ByteBuf::from(buf)), name)?;
                    Some((TIMER_IDS | self.next_id, Arc::new(bytes)))
                });
            }
        }
        let pieces: Vec<Segment> = self
            .kept
            .iter()
            .flatten()
            .flatten()
            .map(|(id, bytes)| Segment { id: Some(*id), bytes: bytes.clone() })
            .collect();
        let mut head = msgpack_array_header(1);
        head.extend(msgpack_array_header(pieces.len()));
        Ok((head, pieces))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::KeyGroupedState;
    use riffle_state::TimeDomain;

    fn concat(head: &[u8], pieces: &[Segment]) -> Vec<u8> {
        let mut out = head.to_vec();
        pieces.iter().for_each(|p| out.extend_from_slice(&p.bytes));
        out
    }

    fn full(timers: &TimerService<u64, ()>) -> Vec<u8> {
        let all = timers.snapshot();
        let g = KeyGroupedState::encode(all.iter().map(|(d, ts, k, _)| (k, (*d, *ts))), 128, "t").unwrap();
        encode_state(&g, "t").unwrap()
    }

    #[test]
    fn timer_pieces_are_the_key_grouped_timers_and_change_only_where_timers_did() {
        let mut timers = TimerService::<u64, ()>::new();
        for k in 0..500u64 {
            timers.register(TimeDomain::EventTime, 1000 + k as i64, k, ());
        }
        let mut p = TimerPieces::default();
        let (head, one) = p.segments(&timers, 128, "t").unwrap();
        let groups: std::collections::BTreeSet<u32> =
            (0..500u64).map(|k| assign_to_key_group(key_hash(&k), 128)).collect();
        assert_eq!(one.len(), groups.len(), "one piece per key group with timers");
        assert_eq!(concat(&head, &one), full(&timers), "byte for byte the full encoding");
        let (_, two) = p.segments(&timers, 128, "t").unwrap();
        assert!(one.iter().zip(&two).all(|(a, b)| a.id == b.id && Arc::ptr_eq(&a.bytes, &b.bytes)));

        // The timer of key 0 fires, one of key 8 is deleted: their groups only.
        let t = timers.pop_due(TimeDomain::EventTime, 1007).unwrap();
        assert_eq!(t.key, 0);
        p.changed(&t.key);
        timers.delete(TimeDomain::EventTime, 1008, &8, &());
        p.changed(&8u64);
        let (head, three) = p.segments(&timers, 128, "t").unwrap();
        let new: Vec<_> = three.iter().filter(|s| !one.iter().any(|o| o.id == s.id)).collect();
        let kgs = |k: u64| assign_to_key_group(key_hash(&k), 128);
        let expect = if kgs(0) == kgs(8) { 1 } else { 2 };
        assert_eq!(new.len(), expect);
        // The same timers as a full encoding (in another order within a group, if any).
        let back: KeyGroupedState = rmp_serde::from_slice(&concat(&head, &three)).unwrap();
        assert_eq!(back.len(), 498);
        p.reset();
        let (_, four) = p.segments(&timers, 128, "t").unwrap();
        assert!(four.iter().all(|s| !three.iter().any(|o| o.id == s.id)), "a reset encodes every group anew");
    }
}
