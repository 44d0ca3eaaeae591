//! Key groups: the fixed partitioning of the key space that makes state rescalable.
//!
//! A key hashes to one of `max_parallelism` key groups; key groups map to subtasks in
//! contiguous ranges. Because the hash is deterministic (not seeded per process), every
//! process and every restart agrees on where a key lives.

use std::hash::{Hash, Hasher};

/// Flink's default maximum parallelism for jobs that do not set one.
pub const DEFAULT_MAX_PARALLELISM: u32 = 128;

/// A deterministic hash of a key: the same value in every process and on every run.
///
/// FxHash is used because it is the fastest well-known deterministic hasher for the short
/// keys streaming jobs use; its output is finished with a murmur3 mix so that key groups
/// spread evenly even for sequential integer keys.
pub fn key_hash<K: Hash + ?Sized>(key: &K) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    key.hash(&mut h);
    fmix64(h.finish())
}

fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// The key group of a key hash.
#[inline]
pub fn assign_to_key_group(hash: u64, max_parallelism: u32) -> u32 {
    (hash % u64::from(max_parallelism.max(1))) as u32
}

/// The subtask (of `parallelism`) that owns key group `key_group`.
#[inline]
pub fn subtask_for_key_group(max_parallelism: u32, parallelism: u32, key_group: u32) -> u32 {
    ((u64::from(key_group) * u64::from(parallelism)) / u64::from(max_parallelism.max(1))) as u32
}

/// An inclusive range of key groups, the slice of the key space one subtask owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyGroupRange {
    /// First key group (inclusive).
    pub start: u32,
    /// Last key group (inclusive); `end < start` means the range is empty.
    pub end: u32,
}

impl KeyGroupRange {
    /// Whether `key_group` is in this range.
    pub fn contains(&self, key_group: u32) -> bool {
        key_group >= self.start && key_group <= self.end
    }

    /// Number of key groups in the range.
    pub fn len(&self) -> u32 {
        if self.end < self.start {
            0
        } else {
            self.end - self.start + 1
        }
    }

    /// Whether the range holds no key group.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The key groups subtask `index` of `parallelism` owns; the inverse of
/// [`subtask_for_key_group`].
pub fn key_group_range_for_subtask(max_parallelism: u32, parallelism: u32, index: u32) -> KeyGroupRange {
    let max_p = u64::from(max_parallelism.max(1));
    let p = u64::from(parallelism.max(1));
    let i = u64::from(index);
    let start = (i * max_p).div_ceil(p);
    let end = ((i + 1) * max_p).div_ceil(p);
    KeyGroupRange { start: start as u32, end: (end as u32).wrapping_sub(1) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_all_key_groups_exactly_once() {
        for max_p in [1u32, 7, 128, 1000] {
            for p in 1..=max_p.min(17) {
                let mut owner = vec![u32::MAX; max_p as usize];
                for i in 0..p {
                    let r = key_group_range_for_subtask(max_p, p, i);
                    for kg in r.start..=r.end {
                        if r.is_empty() {
                            break;
                        }
                        assert_eq!(owner[kg as usize], u32::MAX, "kg {kg} owned twice");
                        owner[kg as usize] = i;
                    }
                }
                for (kg, o) in owner.iter().enumerate() {
                    assert_eq!(*o, subtask_for_key_group(max_p, p, kg as u32), "max_p {max_p} p {p} kg {kg}");
                }
            }
        }
    }

    #[test]
    fn hash_is_deterministic() {
        assert_eq!(key_hash("w42"), key_hash(&"w42".to_string()));
        assert_eq!(key_hash(&7u64), key_hash(&7u64));
    }
}
