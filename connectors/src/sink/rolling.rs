//! When a part file rolls: pure decisions on a file's size and times (Flink's
//! `DefaultRollingPolicy` for row formats and `TableRollingPolicy` for the filesystem table
//! sink). Every checkpoint closes every open part file besides (see [`RollingPolicy`]).

use std::time::Duration;

use riffle_api::Configuration;

use super::options::{CHECK_INTERVAL, INACTIVITY_INTERVAL, ROLLING_FILE_SIZE, ROLLOVER_INTERVAL};
use crate::error::Result;

/// What the policy looks at of an open part file. Times are processing time in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartFileState {
    /// When the file was opened.
    pub created_ms: i64,
    /// When a record was last written to it.
    pub last_write_ms: i64,
    /// Bytes written to it so far.
    pub size: u64,
}

/// When a part file is closed, besides at every checkpoint: a file must be committed whole
/// when the checkpoint covering its records completes, so an exactly-once file sink cannot
/// keep a file open across a checkpoint (for row and bulk formats alike; Flink's bulk formats
/// roll on every checkpoint for the same reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollingPolicy {
    /// `sink.rolling-policy.file-size` in bytes.
    pub file_size: u64,
    /// `sink.rolling-policy.rollover-interval` in milliseconds.
    pub rollover_ms: i64,
    /// `sink.rolling-policy.inactivity-interval` in milliseconds.
    pub inactivity_ms: i64,
    /// `sink.rolling-policy.check-interval` in milliseconds.
    pub check_ms: i64,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Default for RollingPolicy {
    /// Flink's defaults: 128 MiB, 30 min, 30 min, checked every minute.
    fn default() -> Self {
        Self {
            file_size: ROLLING_FILE_SIZE.default_value().as_bytes() as u64,
            rollover_ms: millis(ROLLOVER_INTERVAL.default_value()),
            inactivity_ms: millis(INACTIVITY_INTERVAL.default_value()),
            check_ms: millis(CHECK_INTERVAL.default_value()),
        }
    }
}

impl RollingPolicy {
    /// The policy `config` sets (`sink.rolling-policy.*`).
    pub fn from_config(config: &Configuration) -> Result<Self> {
        Ok(Self {
            file_size: config.get(&ROLLING_FILE_SIZE)?.as_bytes() as u64,
            rollover_ms: millis(config.get(&ROLLOVER_INTERVAL)?),
            inactivity_ms: millis(config.get(&INACTIVITY_INTERVAL)?),
            check_ms: millis(config.get(&CHECK_INTERVAL)?),
        })
    }

    /// After a write: the file has reached the size limit.
    pub fn roll_on_event(&self, file: &PartFileState) -> bool {
        file.size >= self.file_size
    }

    /// On a time check at `now_ms`: the file has been open for the rollover interval, or
    /// idle for the inactivity interval.
    pub fn roll_on_time(&self, file: &PartFileState, now_ms: i64) -> bool {
        now_ms.saturating_sub(file.created_ms) >= self.rollover_ms
            || now_ms.saturating_sub(file.last_write_ms) >= self.inactivity_ms
    }

    /// Whether the time rules are due for a check at `now_ms`, the last check having been
    /// at `last_check_ms`.
    pub fn time_check_due(&self, last_check_ms: i64, now_ms: i64) -> bool {
        now_ms.saturating_sub(last_check_ms) >= self.check_ms
    }

    /// At a checkpoint barrier: always (see the type's docs).
    pub fn roll_on_checkpoint(&self, _file: &PartFileState) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RollingPolicy {
        RollingPolicy { file_size: 1000, rollover_ms: 60_000, inactivity_ms: 10_000, check_ms: 1_000 }
    }

    #[test]
    fn flinks_defaults() {
        let p = RollingPolicy::from_config(&Configuration::new()).unwrap();
        assert_eq!(p, RollingPolicy::default());
        assert_eq!(
            (p.file_size, p.rollover_ms, p.inactivity_ms, p.check_ms),
            (128 << 20, 1_800_000, 1_800_000, 60_000)
        );
    }

    #[test]
    fn options_are_read() {
        let mut c = Configuration::new();
        c.set("sink.rolling-policy.file-size", "1kb")
            .set("sink.rolling-policy.rollover-interval", "2 s")
            .set("sink.rolling-policy.inactivity-interval", "500 ms")
            .set("sink.rolling-policy.check-interval", "10 ms");
        let p = RollingPolicy::from_config(&c).unwrap();
        assert_eq!((p.file_size, p.rollover_ms, p.inactivity_ms, p.check_ms), (1024, 2000, 500, 10));
        c.set("sink.rolling-policy.file-size", "lots");
        assert!(RollingPolicy::from_config(&c).is_err());
    }

    #[test]
    fn rolls_at_the_size_limit_and_not_before() {
        let p = policy();
        let f = |size| PartFileState { created_ms: 0, last_write_ms: 0, size };
        assert!(!p.roll_on_event(&f(0)));
        assert!(!p.roll_on_event(&f(999)));
        assert!(p.roll_on_event(&f(1000)));
        assert!(p.roll_on_event(&f(5000)));
    }

    #[test]
    fn rolls_after_the_rollover_interval_or_inactivity() {
        let p = policy();
        let busy = PartFileState { created_ms: 1_000, last_write_ms: 60_000, size: 1 };
        assert!(!p.roll_on_time(&busy, 60_999), "open 59.999 s, written just now");
        assert!(p.roll_on_time(&busy, 61_000), "open 60 s");
        let idle = PartFileState { created_ms: 1_000, last_write_ms: 5_000, size: 1 };
        assert!(!p.roll_on_time(&idle, 14_999));
        assert!(p.roll_on_time(&idle, 15_000), "idle 10 s");
    }

    #[test]
    fn time_checks_are_spaced_by_the_check_interval_and_checkpoints_always_roll() {
        let p = policy();
        assert!(!p.time_check_due(5_000, 5_999));
        assert!(p.time_check_due(5_000, 6_000));
        assert!(p.roll_on_checkpoint(&PartFileState { created_ms: 0, last_write_ms: 0, size: 0 }));
    }
}
