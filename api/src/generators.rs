//! The benchmark event generators, exactly as the Flink baseline harness defines them
//! (the README of the Flink harness, `scripts/compare-flink`): event `i` is a pure function of `i`, so every engine and
//! every parallelism sees the same events.

use serde::{Deserialize, Serialize};

/// The epoch-ms event time of bid 0.
pub const BID_BASE_TIME_MS: i64 = 1_700_000_000_000;

/// The word id of event `i`: `(i * 2654435761 mod 2^64) mod 10000`, unsigned.
#[inline]
pub fn word_id(i: u64) -> u64 {
    i.wrapping_mul(2_654_435_761) % 10_000
}

/// The word of event `i`: `"w"` followed by [`word_id`] in decimal.
pub fn word(i: u64) -> String {
    format!("w{}", word_id(i))
}

/// A short word stored inline (up to 15 bytes) whose hash is one 128-bit word: what a
/// benchmark word needs to be cheap to create, hash and compare (the role Java's cached
/// `String.hashCode` plays for Flink). Serialized as a plain string.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Word {
    buf: [u8; 15],
    len: u8,
}

impl Word {
    /// Longest word that fits.
    pub const MAX_LEN: usize = 15;

    /// The word of `s`, or `None` if it is longer than [`Word::MAX_LEN`] bytes.
    pub fn new(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() > Self::MAX_LEN {
            return None;
        }
        let mut buf = [0u8; 15];
        buf[..b.len()].copy_from_slice(b);
        Some(Self { buf, len: b.len() as u8 })
    }

    /// The word of event `i` ([`word`]) without allocating.
    #[inline]
    pub fn of_event(i: u64) -> Self {
        let mut id = word_id(i);
        let mut digits = [0u8; 5];
        let mut n = 0;
        loop {
            digits[n] = b'0' + (id % 10) as u8;
            n += 1;
            id /= 10;
            if id == 0 {
                break;
            }
        }
        let mut buf = [0u8; 15];
        buf[0] = b'w';
        for k in 0..n {
            buf[1 + k] = digits[n - 1 - k];
        }
        Self { buf, len: 1 + n as u8 }
    }

    /// The word as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len as usize]).unwrap_or("")
    }
}

impl std::hash::Hash for Word {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let mut b = [0u8; 16];
        b[..15].copy_from_slice(&self.buf);
        b[15] = self.len;
        state.write_u128(u128::from_le_bytes(b));
    }
}

impl std::fmt::Display for Word {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for Word {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl Serialize for Word {
    /// As bytes: no UTF-8 check on the hot path of the network and of checkpoints (the bytes
    /// came from a `&str`; [`Word::as_str`] checks again when text is needed).
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.buf[..self.len as usize])
    }
}

impl<'de> Deserialize<'de> for Word {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// Reads the string in place (borrowed from the input where the format allows): a word
        /// crossing the network costs no allocation.
        struct WordVisitor;
        impl serde::de::Visitor<'_> for WordVisitor {
            type Value = Word;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "a string of at most {} bytes", Word::MAX_LEN)
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Word, E> {
                Word::new(s).ok_or_else(|| E::custom(format!("word '{s}' is longer than {} bytes", Word::MAX_LEN)))
            }
            fn visit_bytes<E: serde::de::Error>(self, b: &[u8]) -> Result<Word, E> {
                if b.len() > Word::MAX_LEN {
                    return Err(E::custom(format!("a word of {} bytes is longer than {}", b.len(), Word::MAX_LEN)));
                }
                let mut buf = [0u8; 15];
                buf[..b.len()].copy_from_slice(b);
                Ok(Word { buf, len: b.len() as u8 })
            }
        }
        d.deserialize_bytes(WordVisitor)
    }
}

/// A Nexmark-style bid (the fields the workloads use).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Bid {
    /// Auction id, 0..1000.
    pub auction: i64,
    /// Bidder id, 0..100000.
    pub bidder: i64,
    /// Price, 1..=10000.
    pub price: i64,
    /// Event time, epoch ms.
    pub date_time: i64,
}

/// Bid `i`.
#[inline]
pub fn bid(i: u64) -> Bid {
    let i = i as i64;
    Bid {
        auction: (i * 7919) % 1000,
        bidder: (i * 104_729) % 100_000,
        price: ((i * 31) % 10_000) + 1,
        date_time: BID_BASE_TIME_MS + i,
    }
}

/// Nexmark q1's currency conversion: the price times 0.908, truncated toward zero.
#[inline]
pub fn to_euro(price: i64) -> i64 {
    (price as f64 * 0.908) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generators_match_the_harness_definition() {
        let w: Vec<String> = (0..5).map(word).collect();
        assert_eq!(w, ["w0", "w5761", "w1522", "w7283", "w3044"]);
        assert_eq!(bid(1), Bid { auction: 919, bidder: 4729, price: 32, date_time: 1_700_000_000_001 });
        assert_eq!(to_euro(1), 0);
        assert_eq!(to_euro(10_000), 9080);
        let sum: i64 = (0..100_000).map(|i| to_euro(bid(i).price)).sum();
        assert_eq!(sum, 453_995_600);
        // Large i: unsigned arithmetic (the signed product overflows above 3,474,701,543).
        assert_eq!(word_id(4_000_000_000), ((4_000_000_000u128 * 2_654_435_761u128) % 10_000) as u64);
        for i in [0u64, 1, 2, 3, 4, 9_999, 123_456, 4_000_000_000] {
            assert_eq!(Word::of_event(i).as_str(), word(i));
        }
        assert!(Word::new("a-very-long-word-indeed").is_none());
        let w: Word = rmp_serde::from_slice(&rmp_serde::to_vec(&Word::of_event(7)).unwrap()).unwrap();
        assert_eq!(w, Word::of_event(7));
    }
}
