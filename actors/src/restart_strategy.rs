//! Restart strategies with Flink's configuration keys, as pure decisions: given the failure
//! history, restart after a delay or give up. The JobMaster applies them; nothing here does
//! I/O or reads a clock by itself.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use riffle_api::{ConfigError, ConfigOption, Configuration, Group, OptionInfo};

/// How a job reacts to a task failure (`restart-strategy`).
#[derive(Debug, Clone, PartialEq)]
pub enum RestartStrategy {
    /// Fail the job (`none`, `off`, `disable`).
    None,
    /// Up to `attempts` restarts, `delay` apart (`fixed-delay`).
    FixedDelay {
        /// `restart-strategy.fixed-delay.attempts` (default 1).
        attempts: u32,
        /// `restart-strategy.fixed-delay.delay` (default 1 s).
        delay: Duration,
    },
    /// Restart with a growing delay, reset after a quiet period (`exponential-delay`).
    ExponentialDelay {
        /// `restart-strategy.exponential-delay.initial-backoff` (1 s).
        initial: Duration,
        /// `restart-strategy.exponential-delay.max-backoff` (5 min).
        max: Duration,
        /// `restart-strategy.exponential-delay.backoff-multiplier` (2.0).
        multiplier: f64,
        /// `restart-strategy.exponential-delay.reset-backoff-threshold` (1 h).
        reset_after: Duration,
        /// `restart-strategy.exponential-delay.jitter-factor` (0.1).
        jitter: f64,
    },
    /// Restart unless more than `max_failures` happened within `interval` (`failure-rate`).
    FailureRate {
        /// `restart-strategy.failure-rate.max-failures-per-interval` (1).
        max_failures: u32,
        /// `restart-strategy.failure-rate.failure-rate-interval` (1 min).
        interval: Duration,
        /// `restart-strategy.failure-rate.delay` (1 s).
        delay: Duration,
    },
}

const fn option<T: riffle_api::ConfigValue>(
    key: &'static str,
    default: T::Default,
    what: &'static str,
) -> ConfigOption<T> {
    ConfigOption::new(Group::RestartStrategy, key, default, what)
}

/// `restart-strategy`: which strategy.
pub const RESTART_STRATEGY: ConfigOption<String> =
    option("restart-strategy", "none", "none, fixed-delay, exponential-delay or failure-rate");
/// `restart-strategy.fixed-delay.attempts`.
pub const FIXED_DELAY_ATTEMPTS: ConfigOption<u32> =
    option("restart-strategy.fixed-delay.attempts", 1, "restarts before the job fails");
/// `restart-strategy.fixed-delay.delay`.
pub const FIXED_DELAY_DELAY: ConfigOption<Duration> =
    option("restart-strategy.fixed-delay.delay", Duration::from_secs(1), "wait before a restart");
/// `restart-strategy.exponential-delay.initial-backoff`.
pub const EXPONENTIAL_INITIAL_BACKOFF: ConfigOption<Duration> =
    option("restart-strategy.exponential-delay.initial-backoff", Duration::from_secs(1), "first wait before a restart");
/// `restart-strategy.exponential-delay.max-backoff`.
pub const EXPONENTIAL_MAX_BACKOFF: ConfigOption<Duration> =
    option("restart-strategy.exponential-delay.max-backoff", Duration::from_secs(300), "longest wait before a restart");
/// `restart-strategy.exponential-delay.backoff-multiplier`.
pub const EXPONENTIAL_BACKOFF_MULTIPLIER: ConfigOption<f64> =
    option("restart-strategy.exponential-delay.backoff-multiplier", 2.0, "growth of the wait (at least 1)");
/// `restart-strategy.exponential-delay.reset-backoff-threshold`.
pub const EXPONENTIAL_RESET_BACKOFF_THRESHOLD: ConfigOption<Duration> = option(
    "restart-strategy.exponential-delay.reset-backoff-threshold",
    Duration::from_secs(3600),
    "calm time that resets the wait",
);
/// `restart-strategy.exponential-delay.jitter-factor`.
pub const EXPONENTIAL_JITTER_FACTOR: ConfigOption<f64> = option(
    "restart-strategy.exponential-delay.jitter-factor",
    0.1,
    "share of the wait added or taken at random (0 to 1)",
);
/// `restart-strategy.failure-rate.max-failures-per-interval`.
pub const FAILURE_RATE_MAX_FAILURES: ConfigOption<u32> =
    option("restart-strategy.failure-rate.max-failures-per-interval", 1, "failures allowed per interval");
/// `restart-strategy.failure-rate.failure-rate-interval`.
pub const FAILURE_RATE_INTERVAL: ConfigOption<Duration> =
    option("restart-strategy.failure-rate.failure-rate-interval", Duration::from_secs(60), "the interval");
/// `restart-strategy.failure-rate.delay`.
pub const FAILURE_RATE_DELAY: ConfigOption<Duration> =
    option("restart-strategy.failure-rate.delay", Duration::from_secs(1), "wait before a restart");

/// The options [`RestartStrategy::from_config`] reads.
pub(crate) const OPTIONS: &[&dyn OptionInfo] = &[
    &RESTART_STRATEGY,
    &FIXED_DELAY_ATTEMPTS,
    &FIXED_DELAY_DELAY,
    &EXPONENTIAL_INITIAL_BACKOFF,
    &EXPONENTIAL_MAX_BACKOFF,
    &EXPONENTIAL_BACKOFF_MULTIPLIER,
    &EXPONENTIAL_RESET_BACKOFF_THRESHOLD,
    &EXPONENTIAL_JITTER_FACTOR,
    &FAILURE_RATE_MAX_FAILURES,
    &FAILURE_RATE_INTERVAL,
    &FAILURE_RATE_DELAY,
];

impl RestartStrategy {
    /// Reads `restart-strategy` and its options (Flink's key names and defaults).
    pub fn from_config(c: &Configuration) -> Result<Self, ConfigError> {
        let name = c.get(&RESTART_STRATEGY)?.trim().to_ascii_lowercase();
        Ok(match name.as_str() {
            "none" | "off" | "disable" => RestartStrategy::None,
            "fixed-delay" | "fixeddelay" => RestartStrategy::FixedDelay {
                attempts: c.get(&FIXED_DELAY_ATTEMPTS)?,
                delay: c.get(&FIXED_DELAY_DELAY)?,
            },
            "exponential-delay" | "exponentialdelay" => {
                let multiplier = c.get(&EXPONENTIAL_BACKOFF_MULTIPLIER)?;
                let jitter = c.get(&EXPONENTIAL_JITTER_FACTOR)?;
                if multiplier < 1.0 || !(0.0..=1.0).contains(&jitter) {
                    return Err(ConfigError {
                        key: "restart-strategy.exponential-delay".into(),
                        value: format!("multiplier {multiplier}, jitter {jitter}"),
                        reason: "the multiplier must be >= 1 and the jitter factor within 0..=1".into(),
                    });
                }
                RestartStrategy::ExponentialDelay {
                    initial: c.get(&EXPONENTIAL_INITIAL_BACKOFF)?,
                    max: c.get(&EXPONENTIAL_MAX_BACKOFF)?,
                    multiplier,
                    reset_after: c.get(&EXPONENTIAL_RESET_BACKOFF_THRESHOLD)?,
                    jitter,
                }
            }
            "failure-rate" | "failurerate" => RestartStrategy::FailureRate {
                max_failures: c.get(&FAILURE_RATE_MAX_FAILURES)?,
                interval: c.get(&FAILURE_RATE_INTERVAL)?,
                delay: c.get(&FAILURE_RATE_DELAY)?,
            },
            other => {
                return Err(ConfigError {
                    key: RESTART_STRATEGY.key().into(),
                    value: other.into(),
                    reason: "use none, fixed-delay, exponential-delay or failure-rate".into(),
                })
            }
        })
    }
}

/// A strategy with the failure history of one job.
#[derive(Debug, Clone)]
pub struct RestartTracker {
    strategy: RestartStrategy,
    restarts: u32,
    failures: VecDeque<Instant>,
    backoff: Option<Duration>,
    last_failure: Option<Instant>,
    seed: u64,
}

impl RestartTracker {
    /// A tracker with no failures yet.
    pub fn new(strategy: RestartStrategy) -> Self {
        Self { strategy, restarts: 0, failures: VecDeque::new(), backoff: None, last_failure: None, seed: 0x9e37_79b9 }
    }

    /// Restarts granted so far.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// A failure happened at `now`: `Some(delay)` to restart after `delay`, `None` to fail.
    pub fn on_failure(&mut self, now: Instant) -> Option<Duration> {
        let delay = match &self.strategy {
            RestartStrategy::None => None,
            RestartStrategy::FixedDelay { attempts, delay } => (self.restarts < *attempts).then_some(*delay),
            RestartStrategy::FailureRate { max_failures, interval, delay } => {
                self.failures.push_back(now);
                while self.failures.front().is_some_and(|t| now.duration_since(*t) > *interval) {
                    self.failures.pop_front();
                }
                (self.failures.len() as u32 <= *max_failures).then_some(*delay)
            }
            RestartStrategy::ExponentialDelay { initial, max, multiplier, reset_after, jitter } => {
                let quiet = self.last_failure.is_none_or(|t| now.duration_since(t) >= *reset_after);
                let base = match self.backoff {
                    Some(b) if !quiet => b.mul_f64(*multiplier).min(*max),
                    _ => (*initial).min(*max),
                };
                self.backoff = Some(base);
                // Deterministic jitter (xorshift) within ±jitter·base.
                self.seed ^= self.seed << 13;
                self.seed ^= self.seed >> 7;
                self.seed ^= self.seed << 17;
                let unit = (self.seed % 2001) as f64 / 1000.0 - 1.0;
                let j = base.as_secs_f64() * jitter * unit;
                Some(Duration::from_secs_f64((base.as_secs_f64() + j).max(0.0)))
            }
        };
        self.last_failure = Some(now);
        if delay.is_some() {
            self.restarts += 1;
        }
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(kv: &[(&str, &str)]) -> Configuration {
        let mut c = Configuration::new();
        for (k, v) in kv {
            c.set(*k, *v);
        }
        c
    }

    #[test]
    fn parses_flink_keys_and_rejects_unknown_strategies() {
        assert_eq!(RestartStrategy::from_config(&Configuration::new()), Ok(RestartStrategy::None));
        let s = RestartStrategy::from_config(&conf(&[
            ("restart-strategy", "fixed-delay"),
            ("restart-strategy.fixed-delay.attempts", "3"),
            ("restart-strategy.fixed-delay.delay", "10 ms"),
        ]));
        assert_eq!(s, Ok(RestartStrategy::FixedDelay { attempts: 3, delay: Duration::from_millis(10) }));
        assert!(RestartStrategy::from_config(&conf(&[("restart-strategy", "sometimes")])).is_err());
        assert!(RestartStrategy::from_config(&conf(&[
            ("restart-strategy", "exponential-delay"),
            ("restart-strategy.exponential-delay.backoff-multiplier", "0.5")
        ]))
        .is_err());
    }

    #[test]
    fn fixed_delay_allows_exactly_its_attempts() {
        let mut t = RestartTracker::new(RestartStrategy::FixedDelay { attempts: 2, delay: Duration::from_millis(5) });
        let now = Instant::now();
        assert_eq!(t.on_failure(now), Some(Duration::from_millis(5)));
        assert_eq!(t.on_failure(now), Some(Duration::from_millis(5)));
        assert_eq!(t.on_failure(now), None);
        assert_eq!(t.restarts(), 2);
    }

    #[test]
    fn failure_rate_counts_failures_in_the_interval() {
        let mut t = RestartTracker::new(RestartStrategy::FailureRate {
            max_failures: 2,
            interval: Duration::from_secs(10),
            delay: Duration::ZERO,
        });
        let t0 = Instant::now();
        assert!(t.on_failure(t0).is_some());
        assert!(t.on_failure(t0 + Duration::from_secs(1)).is_some());
        assert!(t.on_failure(t0 + Duration::from_secs(2)).is_none(), "3 failures within 10 s");
        let mut t = RestartTracker::new(RestartStrategy::FailureRate {
            max_failures: 1,
            interval: Duration::from_secs(10),
            delay: Duration::ZERO,
        });
        assert!(t.on_failure(t0).is_some());
        assert!(t.on_failure(t0 + Duration::from_secs(11)).is_some(), "the first failure left the interval");
    }

    #[test]
    fn exponential_delay_grows_caps_and_resets() {
        let mut t = RestartTracker::new(RestartStrategy::ExponentialDelay {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(350),
            multiplier: 2.0,
            reset_after: Duration::from_secs(60),
            jitter: 0.0,
        });
        let t0 = Instant::now();
        let d: Vec<_> = (0..4).map(|i| t.on_failure(t0 + Duration::from_secs(i))).collect();
        assert_eq!(
            d,
            vec![
                Some(Duration::from_millis(100)),
                Some(Duration::from_millis(200)),
                Some(Duration::from_millis(350)),
                Some(Duration::from_millis(350))
            ]
        );
        assert_eq!(t.on_failure(t0 + Duration::from_secs(100)), Some(Duration::from_millis(100)), "reset after quiet");
    }
}
