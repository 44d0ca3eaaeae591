//! Buffer debloating (Flink's FLIP-183, on the producer's side): how many batches an output
//! channel may hold right now.
//!
//! A channel's queue is created with room for `taskmanager.network.buffers-per-channel`
//! batches, the most it may ever hold. Few batches per channel stall two slots that exchange
//! all-to-all (each slot thread runs its producer and its consumer in turns, and a producer
//! whose channel to the other slot is full waits for that slot's next turn: a keyed word count
//! at parallelism 2 ran 1.4x parallelism 1 with 4 batches, 1.9x with 16). Many batches make an
//! aligned checkpoint of a backpressured job wait behind all of them (a slow, throttled job
//! completed no checkpoint in a minute with 16). So the producer holds each channel to the
//! batches its consumer takes in `target` (Flink's `buffer-debloat.target`), measured every
//! `period`: a fast consumer gets the whole queue, a slow one only a few batches, and a
//! barrier waits behind about `target` of data whatever the consumer's speed.
//!
//! The decisions are pure functions of the counts and times handed in (tested below); the
//! subtask's drain asks [`Debloater::limit`] before each send and reports each send.

use std::time::{Duration, Instant};

/// Fewest batches a channel may hold: one being consumed, one being filled.
pub const MIN_BATCHES: usize = 2;

/// Flink's `taskmanager.network.memory.buffer-debloat.*` options as riffle reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DebloatSettings {
    /// How much data (as time to consume it) a channel should hold (`.target`, default 1 s).
    pub target: Duration,
    /// How often each channel's consumption rate is measured and its limit recomputed
    /// (`.period`, default 200 ms).
    pub period: Duration,
}

impl Default for DebloatSettings {
    fn default() -> Self {
        Self { target: Duration::from_secs(1), period: Duration::from_millis(200) }
    }
}

/// The batches a channel may hold when its consumer takes `rate` batches a second: enough for
/// `target` of consumption, at least [`MIN_BATCHES`], at most `max` (the queue's room).
pub fn limit_for(rate: f64, target: Duration, max: usize) -> usize {
    let max = max.max(1);
    let wanted = (rate * target.as_secs_f64()).ceil();
    let wanted = if wanted.is_finite() && wanted > 0.0 { wanted.min(max as f64) as usize } else { 0 };
    wanted.clamp(MIN_BATCHES.min(max), max)
}

/// The weight of the newest sample in a channel's rate (an exponential moving average over
/// about five periods, so one idle period does not shrink a busy channel to its minimum).
const NEWEST_SAMPLE_WEIGHT: f64 = 0.3;

/// Each output channel's limit, from the batches sent on it (under backpressure the producer
/// sends exactly what the consumer takes, so sends per second are the consumer's rate).
#[derive(Debug)]
pub struct Debloater {
    settings: Option<DebloatSettings>,
    max: usize,
    sent: Vec<u32>,
    rate: Vec<f64>,
    limit: Vec<usize>,
    last_sample: Instant,
}

impl Debloater {
    /// `channels` output channels whose queues hold `max` batches; `None`: debloating off (every
    /// channel may fill its queue).
    pub fn new(settings: Option<DebloatSettings>, channels: usize, max: usize, now: Instant) -> Self {
        let max = max.max(1);
        // Until the first measurement a channel may fill its queue: a job starts at full speed.
        Self {
            settings,
            max,
            sent: vec![0; channels],
            rate: vec![f64::NAN; channels],
            limit: vec![max; channels],
            last_sample: now,
        }
    }

    /// The batches channel `ch` may hold now.
    #[inline]
    pub fn limit(&self, ch: usize) -> usize {
        self.limit.get(ch).copied().unwrap_or(self.max)
    }

    /// The most any channel may hold (its queue's room).
    pub fn max(&self) -> usize {
        self.max
    }

    /// An element went out on channel `ch`.
    #[inline]
    pub fn sent(&mut self, ch: usize) {
        if let Some(s) = self.sent.get_mut(ch) {
            *s = s.saturating_add(1);
        }
    }

    /// Recomputes every channel's limit if a period passed since the last measurement.
    pub fn sample(&mut self, now: Instant) {
        let Some(settings) = self.settings else { return };
        let elapsed = now.saturating_duration_since(self.last_sample);
        if elapsed < settings.period || elapsed.is_zero() {
            return;
        }
        let secs = elapsed.as_secs_f64();
        for ch in 0..self.sent.len() {
            let newest = f64::from(std::mem::take(&mut self.sent[ch])) / secs;
            let rate = if self.rate[ch].is_nan() {
                newest
            } else {
                NEWEST_SAMPLE_WEIGHT * newest + (1.0 - NEWEST_SAMPLE_WEIGHT) * self.rate[ch]
            };
            self.rate[ch] = rate;
            self.limit[ch] = limit_for(rate, settings.target, self.max);
        }
        self.last_sample = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn the_limit_is_a_targets_worth_of_batches_between_the_minimum_and_the_queue() {
        assert_eq!(limit_for(5.0, SECOND, 16), 5);
        assert_eq!(limit_for(5.2, SECOND, 16), 6, "rounded up: never less than the target");
        assert_eq!(limit_for(2.5, SECOND, 16), 3);
        assert_eq!(limit_for(0.0, SECOND, 16), MIN_BATCHES, "an idle channel keeps two");
        assert_eq!(limit_for(4000.0, SECOND, 16), 16, "a fast consumer gets the whole queue");
        assert_eq!(limit_for(40.0, Duration::from_millis(100), 16), 4);
        assert_eq!(limit_for(f64::NAN, SECOND, 16), MIN_BATCHES);
        assert_eq!(limit_for(f64::INFINITY, SECOND, 16), MIN_BATCHES, "no rate is no evidence");
        assert_eq!(limit_for(100.0, SECOND, 1), 1, "never above the queue, even below the minimum");
    }

    #[test]
    fn limits_follow_each_channels_own_rate_once_per_period() {
        let t0 = Instant::now();
        let mut d = Debloater::new(Some(DebloatSettings::default()), 2, 16, t0);
        assert_eq!((d.limit(0), d.limit(1)), (16, 16), "full queues until the first measurement");
        for _ in 0..1000 {
            d.sent(0);
        }
        d.sent(1);
        d.sample(t0 + Duration::from_millis(100));
        assert_eq!((d.limit(0), d.limit(1)), (16, 16), "not before a period passed");
        d.sample(t0 + Duration::from_millis(200));
        // 1000 in 0.2 s = 5000/s: the queue; 1 in 0.2 s = 5/s: five batches for a second.
        assert_eq!((d.limit(0), d.limit(1)), (16, 5));
        // An idle period moves the rate a third of the way, not to zero.
        d.sample(t0 + Duration::from_millis(400));
        assert_eq!((d.limit(0), d.limit(1)), (16, 4));
        assert_eq!(d.limit(7), 16, "an unknown channel is not limited");
    }

    #[test]
    fn without_debloating_every_channel_may_fill_its_queue() {
        let t0 = Instant::now();
        let mut d = Debloater::new(None, 1, 4, t0);
        d.sent(0);
        d.sample(t0 + Duration::from_secs(10));
        assert_eq!(d.limit(0), 4);
    }
}
