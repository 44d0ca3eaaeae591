//! Configuration: Flink's key names (`parallelism.default`, `taskmanager.numberOfTaskSlots`,
//! `slot.request.timeout`, ...) with string values, parsed where they are used.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

/// A bad configuration value: the user's to fix.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid value '{value}' for configuration key '{key}': {reason}")]
pub struct ConfigError {
    /// The key.
    pub key: String,
    /// The value given.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Key/value configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Configuration {
    entries: BTreeMap<String, String>,
}

impl Configuration {
    /// An empty configuration (every key at its default).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a key.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.entries.insert(key.into(), value.into());
        self
    }

    /// The raw value of a key.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    /// All entries.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Adds every entry of `other`, overriding.
    pub fn merge(&mut self, other: &Configuration) {
        for (k, v) in other.entries() {
            self.set(k, v);
        }
    }

    /// A parsed value, or `default` if the key is not set.
    pub fn get<T: FromStr>(&self, key: &str, default: T) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.entries.get(key) {
            None => Ok(default),
            Some(v) => v.trim().parse::<T>().map_err(|e| ConfigError {
                key: key.to_string(),
                value: v.clone(),
                reason: e.to_string(),
            }),
        }
    }

    /// A size in bytes (`123`, `20kb`, `4 MiB`, `1g`: powers of 1024), or `default`.
    pub fn get_bytes(&self, key: &str, default: usize) -> Result<usize, ConfigError> {
        match self.entries.get(key) {
            None => Ok(default),
            Some(v) => parse_bytes(v).ok_or_else(|| ConfigError {
                key: key.to_string(),
                value: v.clone(),
                reason: "use a size like 20kb or 1mb".into(),
            }),
        }
    }

    /// A duration in Flink's syntax (`10 s`, `500ms`, `2 min`, a bare number = ms).
    pub fn get_duration(&self, key: &str, default: Duration) -> Result<Duration, ConfigError> {
        match self.entries.get(key) {
            None => Ok(default),
            Some(v) => {
                parse_duration(v).map_err(|reason| ConfigError { key: key.to_string(), value: v.clone(), reason })
            }
        }
    }
}

/// Parses `"10 s"`, `"500ms"`, `"2min"`, `"1h"`, `"3 d"`, or a bare number of milliseconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 =
        num.parse().map_err(|_| "expected a number followed by an optional unit (ms, s, min, h, d)".to_string())?;
    let ms = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => n,
        "s" | "sec" | "secs" | "second" | "seconds" => n.saturating_mul(1000),
        "m" | "min" | "mins" | "minute" | "minutes" => n.saturating_mul(60_000),
        "h" | "hour" | "hours" => n.saturating_mul(3_600_000),
        "d" | "day" | "days" => n.saturating_mul(86_400_000),
        other => return Err(format!("unknown time unit '{other}' (use ms, s, min, h or d)")),
    };
    Ok(Duration::from_millis(ms))
}

/// Parses a size: `123`, `4k`, `4 kb`, `4kib`, `64mb`, `1 GB` (powers of 1024).
pub fn parse_bytes(v: &str) -> Option<usize> {
    let t = v.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let shift = match unit.trim() {
        "" | "b" | "bytes" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return None,
    };
    num.parse::<usize>().ok()?.checked_mul(1usize << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_errors() {
        assert_eq!(parse_duration("10 s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2min"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("ten").is_err());
        let mut c = Configuration::new();
        c.set("parallelism.default", "x");
        assert!(c.get::<u32>("parallelism.default", 1).is_err());
        assert_eq!(c.get::<u32>("missing", 7), Ok(7));
    }
}
