//! The benchmark event generators, exactly as the Flink baseline harness defines them
//! (`shared/bench/flink/README.md`): event `i` is a pure function of `i`, so every engine and
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
    }
}
