//! Key-grouped state (a [`KeyGroupedState`]) as pieces for incremental checkpoints: one piece
//! per key group, kept (same id, same bytes) while nothing of the group changed. Used for the
//! timers of process functions and the accumulators of the keyed `reduce` family.
//!
//! A full snapshot holds such state as a [`KeyGroupedState`]: in MessagePack, an array of one
//! field, the list of `(key group, count, entries)` groups. Each group is a piece here; the
//! two array headers are a fresh piece before them. The owner reports what changed
//! ([`KeyGroupPieces::changed`]) and encodes the groups asked for.

use std::hash::Hash;
use std::sync::Arc;

use riffle_state::{assign_to_key_group, key_hash, StateKey, TimerService};
use serde_bytes::ByteBuf;

use crate::error::TaskError;
use crate::snapshot::{encode_state, msgpack_array_header, Segment};

#[cfg(doc)]
use crate::snapshot::KeyGroupedState;

/// Timer piece ids have the top bit set, so they never meet the keyed state store's ids
/// (which count up from 1) in the same operator.
pub(crate) const TIMER_IDS: u64 = 1 << 63;

/// A kept piece: its id and bytes.
type Kept = (u64, Arc<Vec<u8>>);

/// What an owner encodes for the groups asked for: `wanted[kg]` says which; `out[kg]` gets
/// the entry count and the consecutive MessagePack encodings of the group's entries.
pub(crate) type EncodeGroups<'a> = &'a mut dyn FnMut(&[bool], &mut [(u32, Vec<u8>)]) -> Result<(), TaskError>;

/// The encoded pieces of the key groups that did not change.
#[derive(Debug, Default)]
pub(crate) struct KeyGroupPieces {
    max_parallelism: u32,
    /// Per key group: `None` changed (or never encoded); `Some(None)` empty.
    kept: Vec<Option<Option<Kept>>>,
    next_id: u64,
    /// Or-ed into every id (so that two users in one operator never share one).
    id_tag: u64,
    /// Whether pieces are kept between snapshots (checkpoints are incremental); if not, each
    /// snapshot encodes every group and nothing stays in memory.
    keep: bool,
}

impl KeyGroupPieces {
    /// Pieces whose ids carry `id_tag`, kept between snapshots if `keep`
    /// (`state.backend.incremental`).
    pub(crate) fn new(id_tag: u64, keep: bool) -> Self {
        Self { id_tag, keep, ..Self::default() }
    }

    /// Something of `key`'s group changed.
    pub(crate) fn changed<K: Hash>(&mut self, key: &K) {
        if !self.kept.is_empty() {
            self.changed_hash(key_hash(key));
        }
    }

    /// Something of the group of a key with hash `hash` changed.
    #[inline]
    pub(crate) fn changed_hash(&mut self, hash: u64) {
        if self.kept.is_empty() {
            return;
        }
        let kg = assign_to_key_group(hash, self.max_parallelism) as usize;
        if let Some(slot) = self.kept.get_mut(kg) {
            *slot = None;
        }
    }

    /// Whether no piece is kept.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// Forgets every kept piece (a restore changed unknown groups).
    pub(crate) fn reset(&mut self) {
        self.kept.clear();
    }

    /// The state as pieces: the headers (to go into a fresh piece), then one piece per key
    /// group holding entries, in key group order. `encode` is called only if a group changed.
    pub(crate) fn segments(
        &mut self,
        max_parallelism: u32,
        name: &str,
        encode: EncodeGroups<'_>,
    ) -> Result<(Vec<u8>, Vec<Segment>), TaskError> {
        let mp = max_parallelism.max(1);
        if self.max_parallelism != mp {
            self.kept.clear();
            self.max_parallelism = mp;
        }
        self.kept.resize(mp as usize, None);
        if self.kept.iter().any(Option::is_none) {
            let wanted: Vec<bool> = self.kept.iter().map(Option::is_none).collect();
            let mut fresh: Vec<(u32, Vec<u8>)> = vec![(0, Vec::new()); mp as usize];
            encode(&wanted, &mut fresh)?;
            for (kg, (n, buf)) in fresh.into_iter().enumerate() {
                if !wanted[kg] {
                    continue;
                }
                self.kept[kg] = Some(if n == 0 {
                    None
                } else {
                    self.next_id += 1;
                    let bytes = encode_state(&(kg as u32, n, ByteBuf::from(buf)), name)?;
                    Some((self.id_tag | self.next_id, Arc::new(bytes)))
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
        if !self.keep {
            self.kept = Vec::new();
        }
        let mut head = msgpack_array_header(1);
        head.extend(msgpack_array_header(pieces.len()));
        Ok((head, pieces))
    }
}

/// The timers of a process function as pieces (entries `(key, (domain, timestamp))`, as
/// `ProcessState` has them).
pub(crate) fn timer_segments<K: StateKey>(
    pieces: &mut KeyGroupPieces,
    timers: &TimerService<K, ()>,
    max_parallelism: u32,
    name: &str,
) -> Result<(Vec<u8>, Vec<Segment>), TaskError> {
    let mp = max_parallelism.max(1);
    pieces.segments(mp, name, &mut |wanted, out| {
        let mut result = Ok(());
        timers.for_each(|d, ts, k, _| {
            let kg = assign_to_key_group(key_hash(k), mp) as usize;
            if wanted[kg] && result.is_ok() {
                let (n, buf) = &mut out[kg];
                *n += 1;
                result = rmp_serde::encode::write(buf, &(k, (d, ts)))
                    .map_err(|e| TaskError::msg(name, format!("cannot snapshot timers: {e}")));
            }
        });
        result
    })
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
        let mut p = KeyGroupPieces::new(TIMER_IDS, true);
        let (head, one) = timer_segments(&mut p, &timers, 128, "t").unwrap();
        let groups: std::collections::BTreeSet<u32> =
            (0..500u64).map(|k| assign_to_key_group(key_hash(&k), 128)).collect();
        assert_eq!(one.len(), groups.len(), "one piece per key group with timers");
        assert_eq!(concat(&head, &one), full(&timers), "byte for byte the full encoding");
        let (_, two) = timer_segments(&mut p, &timers, 128, "t").unwrap();
        assert!(one.iter().zip(&two).all(|(a, b)| a.id == b.id && Arc::ptr_eq(&a.bytes, &b.bytes)));

        // The timer of key 0 fires, one of key 8 is deleted: their groups only.
        let t = timers.pop_due(TimeDomain::EventTime, 1007).unwrap();
        assert_eq!(t.key, 0);
        p.changed(&t.key);
        timers.delete(TimeDomain::EventTime, 1008, &8, &());
        p.changed(&8u64);
        let (head, three) = timer_segments(&mut p, &timers, 128, "t").unwrap();
        let new: Vec<_> = three.iter().filter(|s| !one.iter().any(|o| o.id == s.id)).collect();
        let kgs = |k: u64| assign_to_key_group(key_hash(&k), 128);
        let expect = if kgs(0) == kgs(8) { 1 } else { 2 };
        assert_eq!(new.len(), expect);
        // The same timers as a full encoding (in another order within a group, if any).
        let back: KeyGroupedState = rmp_serde::from_slice(&concat(&head, &three)).unwrap();
        assert_eq!(back.len(), 498);
        p.reset();
        let (_, four) = timer_segments(&mut p, &timers, 128, "t").unwrap();
        assert!(four.iter().all(|s| !three.iter().any(|o| o.id == s.id)), "a reset encodes every group anew");
    }
}
