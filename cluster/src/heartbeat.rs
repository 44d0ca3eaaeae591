//! Heartbeats between processes as pure decisions (no clock, no I/O): who is monitored, when
//! each was last heard from, and who is dead. The actors that send and receive heartbeats
//! ask it; tests drive it with made-up instants.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use riffle_api::{ConfigError, ConfigOption, Configuration, Group, OptionInfo};

/// `heartbeat.interval`.
pub const INTERVAL: ConfigOption<Duration> =
    ConfigOption::new(Group::Rpc, "heartbeat.interval", Duration::from_secs(10), "how often processes send heartbeats");
/// `heartbeat.timeout`.
pub const TIMEOUT: ConfigOption<Duration> =
    ConfigOption::new(Group::Rpc, "heartbeat.timeout", Duration::from_secs(50), "silence after which a peer is dead");

/// The options [`HeartbeatSettings::from_config`] reads.
pub(crate) const OPTIONS: &[&dyn OptionInfo] = &[&INTERVAL, &TIMEOUT];

/// `heartbeat.interval` and `heartbeat.timeout` (Flink's keys and defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatSettings {
    /// How often each side sends one.
    pub interval: Duration,
    /// Silence after which the peer is dead.
    pub timeout: Duration,
}

impl HeartbeatSettings {
    /// Reads the keys; the timeout must exceed the interval.
    pub fn from_config(c: &Configuration) -> Result<Self, ConfigError> {
        let interval = c.get(&INTERVAL)?;
        let timeout = c.get(&TIMEOUT)?;
        if interval.is_zero() || timeout <= interval {
            return Err(ConfigError {
                key: TIMEOUT.key().into(),
                value: format!("{timeout:?}"),
                reason: format!("must be longer than heartbeat.interval ({interval:?}), which must not be 0"),
            });
        }
        Ok(Self { interval, timeout })
    }
}

/// The peers one side watches.
#[derive(Debug, Clone)]
pub struct HeartbeatMonitor<Id> {
    settings: HeartbeatSettings,
    last_heard: HashMap<Id, Instant>,
}

impl<Id: Eq + Hash + Clone> HeartbeatMonitor<Id> {
    /// Watches nobody yet.
    pub fn new(settings: HeartbeatSettings) -> Self {
        Self { settings, last_heard: HashMap::new() }
    }

    /// Starts watching `id`, as if heard from at `now` (a new peer gets a full timeout).
    pub fn monitor(&mut self, id: Id, now: Instant) {
        self.last_heard.insert(id, now);
    }

    /// Stops watching `id` (it left cleanly).
    pub fn unmonitor(&mut self, id: &Id) {
        self.last_heard.remove(id);
    }

    /// `id` was heard from at `now`; false if it is not watched (a stranger, or declared
    /// dead already: it must register again).
    pub fn heard(&mut self, id: &Id, now: Instant) -> bool {
        match self.last_heard.get_mut(id) {
            Some(t) => {
                if now > *t {
                    *t = now;
                }
                true
            }
            None => false,
        }
    }

    /// The peers silent for longer than the timeout at `now`, no longer watched.
    pub fn expire(&mut self, now: Instant) -> Vec<Id> {
        let timeout = self.settings.timeout;
        let dead: Vec<Id> = self
            .last_heard
            .iter()
            .filter(|(_, t)| now.saturating_duration_since(**t) > timeout)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &dead {
            self.last_heard.remove(id);
        }
        dead
    }

    /// When the next peer would expire if not heard from again.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.last_heard.values().min().map(|t| *t + self.settings.timeout)
    }

    /// Whether `id` is watched.
    pub fn is_monitored(&self, id: &Id) -> bool {
        self.last_heard.contains_key(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> HeartbeatSettings {
        HeartbeatSettings { interval: Duration::from_millis(100), timeout: Duration::from_millis(500) }
    }

    #[test]
    fn a_silent_peer_expires_once_and_must_register_again() {
        let t0 = Instant::now();
        let mut m = HeartbeatMonitor::new(settings());
        m.monitor("tm-1", t0);
        m.monitor("tm-2", t0);
        assert!(m.heard(&"tm-1", t0 + Duration::from_millis(400)));
        assert!(m.expire(t0 + Duration::from_millis(500)).is_empty(), "exactly at the timeout is not dead yet");
        assert_eq!(m.expire(t0 + Duration::from_millis(501)), vec!["tm-2"]);
        assert!(!m.heard(&"tm-2", t0 + Duration::from_millis(600)), "a dead peer is a stranger");
        assert_eq!(m.next_deadline(), Some(t0 + Duration::from_millis(900)));
        assert_eq!(m.expire(t0 + Duration::from_millis(901)), vec!["tm-1"]);
        assert_eq!(m.next_deadline(), None);
    }

    #[test]
    fn late_or_reordered_heartbeats_never_move_time_back() {
        let t0 = Instant::now();
        let mut m = HeartbeatMonitor::new(settings());
        m.monitor(1u32, t0 + Duration::from_millis(300));
        assert!(m.heard(&1, t0));
        assert!(m.expire(t0 + Duration::from_millis(700)).is_empty());
        m.unmonitor(&1);
        assert!(!m.is_monitored(&1));
    }

    #[test]
    fn settings_follow_flinks_keys() {
        let c = Configuration::new();
        let s = HeartbeatSettings::from_config(&c).unwrap();
        assert_eq!((s.interval, s.timeout), (Duration::from_secs(10), Duration::from_secs(50)));
        let mut c = Configuration::new();
        c.set("heartbeat.interval", "2 s").set("heartbeat.timeout", "1 s");
        assert!(HeartbeatSettings::from_config(&c).unwrap_err().to_string().contains("heartbeat.timeout"));
    }
}
