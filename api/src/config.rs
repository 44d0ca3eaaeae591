//! Configuration: Flink's key names (`parallelism.default`, `taskmanager.numberOfTaskSlots`,
//! `slot.request.timeout`, ...) with string values, read only through declared options.
//!
//! A [`ConfigOption`] is one key with its value type, default, description and the older or
//! fallback keys it is also read from. Each crate declares the options it reads next to the
//! code that reads them; [`Configuration::get`] parses an option's value (or hands out its
//! default), so a default is written once and a key that is read is a key that is declared.
//! The raw string lookups are private to this module: an undeclared read does not compile.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::path::PathBuf;
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

/// The section of docs/configuration.md an option is listed in (the order of the variants is
/// the order of the sections), so options declared in different crates are documented
/// together by topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Group {
    /// Parallelism, watermarks and data channels of a job.
    Pipeline,
    /// Checkpoints and savepoints.
    Checkpointing,
    /// Where keyed state lives.
    StateBackend,
    /// What a job does when a task fails.
    RestartStrategy,
    /// Slots, timeouts and failure history of the JobManager.
    Scheduling,
    /// Addresses, ports and directories of the JobManager and TaskManager processes.
    Processes,
    /// Network buffers and channel credit.
    Network,
    /// The REST API and the web UI.
    Rest,
    /// ZooKeeper-based high availability.
    HighAvailability,
    /// Heartbeats and messages between processes.
    Rpc,
    /// Log files.
    Logging,
    /// File formats and file connectors (`riffle-connectors`): a table's or a source's
    /// options, Flink's format option names.
    Formats,
}

impl Group {
    /// Every group, in documentation order.
    pub const ALL: [Group; 12] = [
        Group::Pipeline,
        Group::Checkpointing,
        Group::StateBackend,
        Group::RestartStrategy,
        Group::Scheduling,
        Group::Processes,
        Group::Network,
        Group::Rest,
        Group::HighAvailability,
        Group::Rpc,
        Group::Logging,
        Group::Formats,
    ];

    /// The section title.
    pub fn title(self) -> &'static str {
        match self {
            Group::Pipeline => "Pipeline and execution",
            Group::Checkpointing => "Checkpoints and savepoints",
            Group::StateBackend => "State backends",
            Group::RestartStrategy => "Restart strategies",
            Group::Scheduling => "Scheduling",
            Group::Processes => "JobManager and TaskManager processes",
            Group::Network => "Network buffers",
            Group::Rest => "REST API and web UI",
            Group::HighAvailability => "High availability",
            Group::Rpc => "Heartbeats and RPC",
            Group::Logging => "Logging",
            Group::Formats => "Formats and file connectors",
        }
    }
}

/// Why a configured value does not parse as its option's type (the key and value are added
/// by [`Configuration::get`], which turns it into a [`ConfigError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct ValueError {
    /// What is wrong, for the user.
    pub reason: String,
}

impl ValueError {
    /// A value error saying `reason`.
    pub fn new(reason: impl Into<String>) -> Self {
        Self { reason: reason.into() }
    }
}

/// A type an option's value can have: how a configured string is parsed, and how a default
/// is written in a `const` and in the documentation.
pub trait ConfigValue: Sized {
    /// How a default is written in a `const`: the value itself, `&'static str` for strings
    /// and paths, `()` for options without a default.
    type Default: Copy + Send + Sync + 'static;
    /// The type's name in the documentation.
    const TYPE_NAME: &'static str;
    /// Parses a configured value; the error is the reason shown to the user.
    fn parse_value(raw: &str) -> Result<Self, ValueError>;
    /// The value of a default.
    fn from_default(default: Self::Default) -> Self;
    /// A default as written in a configuration file, for the documentation (`None`: no
    /// default).
    fn default_text(default: Self::Default) -> Option<String>;
}

macro_rules! from_str_value {
    ($name:literal: $($t:ty),*) => {$(
        impl ConfigValue for $t {
            type Default = $t;
            const TYPE_NAME: &'static str = $name;
            fn parse_value(raw: &str) -> Result<Self, ValueError> {
                raw.trim().parse::<$t>().map_err(|e| ValueError::new(e.to_string()))
            }
            fn from_default(default: Self::Default) -> Self {
                default
            }
            fn default_text(default: Self::Default) -> Option<String> {
                Some(format!("{default:?}"))
            }
        }
    )*};
}

from_str_value!("integer": u16, u32, u64, usize);
from_str_value!("number": f64);
from_str_value!("boolean": bool);

/// Taken as written (not trimmed): what the value means is the reading code's to decide.
impl ConfigValue for String {
    type Default = &'static str;
    const TYPE_NAME: &'static str = "string";
    fn parse_value(raw: &str) -> Result<Self, ValueError> {
        Ok(raw.to_string())
    }
    fn from_default(default: Self::Default) -> Self {
        default.to_string()
    }
    fn default_text(default: Self::Default) -> Option<String> {
        Some(default.to_string())
    }
}

/// Taken as written.
impl ConfigValue for PathBuf {
    type Default = &'static str;
    const TYPE_NAME: &'static str = "path";
    fn parse_value(raw: &str) -> Result<Self, ValueError> {
        Ok(PathBuf::from(raw))
    }
    fn from_default(default: Self::Default) -> Self {
        PathBuf::from(default)
    }
    fn default_text(default: Self::Default) -> Option<String> {
        Some(default.to_string())
    }
}

/// Flink's syntax: `10 s`, `500ms`, `2 min`, a bare number is milliseconds.
impl ConfigValue for Duration {
    type Default = Duration;
    const TYPE_NAME: &'static str = "duration";
    fn parse_value(raw: &str) -> Result<Self, ValueError> {
        parse_duration(raw)
    }
    fn from_default(default: Self::Default) -> Self {
        default
    }
    fn default_text(default: Self::Default) -> Option<String> {
        Some(format_duration(default))
    }
}

/// A size in bytes, written `123`, `20kb`, `4 MiB`, `1g` (powers of 1024): a type of its own
/// so that a plain count (`usize`) and a size are parsed differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemorySize(usize);

impl MemorySize {
    /// `n` bytes.
    pub const fn bytes(n: usize) -> Self {
        MemorySize(n)
    }

    /// `n` KiB.
    pub const fn kib(n: usize) -> Self {
        MemorySize(n << 10)
    }

    /// `n` MiB.
    pub const fn mib(n: usize) -> Self {
        MemorySize(n << 20)
    }

    /// `n` GiB.
    pub const fn gib(n: usize) -> Self {
        MemorySize(n << 30)
    }

    /// The size in bytes.
    pub const fn as_bytes(self) -> usize {
        self.0
    }
}

impl ConfigValue for MemorySize {
    type Default = MemorySize;
    const TYPE_NAME: &'static str = "memory size";
    fn parse_value(raw: &str) -> Result<Self, ValueError> {
        parse_bytes(raw).map(MemorySize).ok_or_else(|| ValueError::new("use a size like 20kb or 1mb"))
    }
    fn from_default(default: Self::Default) -> Self {
        default
    }
    fn default_text(default: Self::Default) -> Option<String> {
        Some(format_bytes(default.0))
    }
}

/// An option without a default: `None` when the key is not set.
impl<T: ConfigValue> ConfigValue for Option<T> {
    type Default = ();
    const TYPE_NAME: &'static str = T::TYPE_NAME;
    fn parse_value(raw: &str) -> Result<Self, ValueError> {
        T::parse_value(raw).map(Some)
    }
    fn from_default(_: ()) -> Self {
        None
    }
    fn default_text(_: ()) -> Option<String> {
        None
    }
}

/// One configuration key riffle reads: its value type `T`, its default, what it does, and the
/// keys it is also read from. Declared as a `const` next to the code that reads it and listed
/// in its crate's `options()`, which feed the registry ([`crate::config_keys::Registry`]):
/// unknown-key warnings and docs/configuration.md come from the declarations themselves.
///
/// An option without a default has `T = Option<V>` ([`ConfigOption::optional`]).
pub struct ConfigOption<T: ConfigValue> {
    key: &'static str,
    group: Group,
    default: T::Default,
    description: &'static str,
    fallback_keys: &'static [&'static str],
    deprecated_keys: &'static [&'static str],
    value: PhantomData<fn() -> T>,
}

impl<T: ConfigValue> std::fmt::Debug for ConfigOption<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigOption").field("key", &self.key).field("type", &T::TYPE_NAME).finish_non_exhaustive()
    }
}

impl<T: ConfigValue> Clone for ConfigOption<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: ConfigValue> Copy for ConfigOption<T> {}

impl<T: ConfigValue> ConfigOption<T> {
    /// `key` with `default`, listed under `group` with `description` (a short phrase; the
    /// documentation adds the type, the default and the other keys).
    pub const fn new(group: Group, key: &'static str, default: T::Default, description: &'static str) -> Self {
        Self { key, group, default, description, fallback_keys: &[], deprecated_keys: &[], value: PhantomData }
    }

    /// Also read from these other options' keys, in order, when `key` is not set (Flink's
    /// fallback keys: `rest.bind-port` takes `rest.port`'s value).
    pub const fn with_fallback_keys(self, keys: &'static [&'static str]) -> Self {
        Self { fallback_keys: keys, ..self }
    }

    /// Also read from these older names of the key (Flink's deprecated keys), after the
    /// fallback keys; they count as known keys.
    pub const fn with_deprecated_keys(self, keys: &'static [&'static str]) -> Self {
        Self { deprecated_keys: keys, ..self }
    }

    /// The key.
    pub const fn key(&self) -> &'static str {
        self.key
    }

    /// The default value.
    pub fn default_value(&self) -> T {
        T::from_default(self.default)
    }
}

impl<T: ConfigValue> ConfigOption<Option<T>> {
    /// `key` without a default: reading it gives `None` when it is not set.
    pub const fn optional(group: Group, key: &'static str, description: &'static str) -> Self {
        Self::new(group, key, (), description)
    }
}

/// What the registry and the documentation need of an option, whatever its value type.
pub trait OptionInfo: Send + Sync {
    /// The key.
    fn key(&self) -> &'static str;
    /// The documentation section.
    fn group(&self) -> Group;
    /// What it does.
    fn description(&self) -> &'static str;
    /// Other options' keys it falls back to.
    fn fallback_keys(&self) -> &'static [&'static str];
    /// Older names of the key.
    fn deprecated_keys(&self) -> &'static [&'static str];
    /// The value type's name.
    fn type_name(&self) -> &'static str;
    /// The default as written in a configuration file (`None`: no default).
    fn default_text(&self) -> Option<String>;
    /// Whether `value` parses as this option's type: the reason it does not (checked before
    /// a job starts, so a bad value is refused at submission, not at its first read).
    fn check(&self, _value: &str) -> Result<(), String> {
        Ok(())
    }
}

impl<T: ConfigValue> OptionInfo for ConfigOption<T> {
    fn key(&self) -> &'static str {
        self.key
    }
    fn group(&self) -> Group {
        self.group
    }
    fn description(&self) -> &'static str {
        self.description
    }
    fn fallback_keys(&self) -> &'static [&'static str] {
        self.fallback_keys
    }
    fn deprecated_keys(&self) -> &'static [&'static str] {
        self.deprecated_keys
    }
    fn type_name(&self) -> &'static str {
        T::TYPE_NAME
    }
    fn default_text(&self) -> Option<String> {
        T::default_text(self.default)
    }
    fn check(&self, value: &str) -> Result<(), String> {
        T::parse_value(value).map(|_| ()).map_err(|e| e.reason)
    }
}

/// Key/value configuration. Values are read through [`ConfigOption`]s.
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

    /// All entries (for listing them, or checking them against the registry).
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Adds every entry of `other`, overriding.
    pub fn merge(&mut self, other: &Configuration) {
        for (k, v) in other.entries() {
            self.set(k, v);
        }
    }

    /// An option's value, or its default when none of its keys is set. A value that does not
    /// parse is a [`ConfigError`] naming the key it was read from.
    pub fn get<T: ConfigValue>(&self, option: &ConfigOption<T>) -> Result<T, ConfigError> {
        match self.lookup(option) {
            None => Ok(option.default_value()),
            Some((key, value)) => T::parse_value(value).map_err(|e| ConfigError {
                key: key.to_string(),
                value: value.to_string(),
                reason: e.reason,
            }),
        }
    }

    /// Whether one of an option's keys is set.
    pub fn contains(&self, option: &dyn OptionInfo) -> bool {
        self.lookup(option).is_some()
    }

    /// An option's value as written, for reading code whose parsing or error messages are
    /// its own.
    pub fn raw(&self, option: &dyn OptionInfo) -> Option<&str> {
        self.lookup(option).map(|(_, v)| v)
    }

    /// The key an option's value is read from (the key itself, a fallback key or a deprecated
    /// key, first set first) and the value as written.
    pub fn lookup(&self, option: &dyn OptionInfo) -> Option<(&'static str, &str)> {
        std::iter::once(option.key())
            .chain(option.fallback_keys().iter().copied())
            .chain(option.deprecated_keys().iter().copied())
            .find_map(|k| self.entries.get(k).map(|v| (k, v.as_str())))
    }
}

/// Parses `"10 s"`, `"500ms"`, `"2min"`, `"1h"`, `"3 d"`, or a bare number of milliseconds.
pub fn parse_duration(s: &str) -> Result<Duration, ValueError> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| ValueError::new("expected a number followed by an optional unit (ms, s, min, h, d)"))?;
    let ms = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => n,
        "s" | "sec" | "secs" | "second" | "seconds" => n.saturating_mul(1000),
        "m" | "min" | "mins" | "minute" | "minutes" => n.saturating_mul(60_000),
        "h" | "hour" | "hours" => n.saturating_mul(3_600_000),
        "d" | "day" | "days" => n.saturating_mul(86_400_000),
        other => return Err(ValueError::new(format!("unknown time unit '{other}' (use ms, s, min, h or d)"))),
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

/// A duration in the largest unit that writes it exactly (`5 min`, `200 ms`), as
/// [`parse_duration`] reads it.
fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    let units = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "min"), (1000, "s")];
    match units.iter().find(|(n, _)| ms > 0 && ms.is_multiple_of(*n)) {
        Some((n, unit)) => format!("{} {unit}", ms / n),
        None => format!("{ms} ms"),
    }
}

/// A size in the largest unit that writes it exactly (`64 mb`, `20 kb`), as [`parse_bytes`]
/// reads it.
fn format_bytes(b: usize) -> String {
    let units = [(30, "gb"), (20, "mb"), (10, "kb")];
    match units.iter().find(|(shift, _)| b > 0 && b.is_multiple_of(1usize << shift)) {
        Some((shift, unit)) => format!("{} {unit}", b >> shift),
        None => b.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLOTS: ConfigOption<u32> = ConfigOption::new(Group::Processes, "test.slots", 1, "slots");
    const BIND_PORT: ConfigOption<u16> =
        ConfigOption::new(Group::Rest, "test.bind-port", 8081, "port to bind").with_fallback_keys(&["test.port"]);
    const MODE: ConfigOption<String> = ConfigOption::new(Group::HighAvailability, "test.mode.type", "NONE", "mode")
        .with_deprecated_keys(&["test.mode"]);
    const INTERVAL: ConfigOption<Option<Duration>> = ConfigOption::optional(Group::Checkpointing, "test.interval", "");
    const SIZE: ConfigOption<MemorySize> = ConfigOption::new(Group::Network, "test.size", MemorySize::kib(20), "");

    #[test]
    fn durations_and_errors() {
        assert_eq!(parse_duration("10 s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2min"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("ten").is_err());
    }

    #[test]
    fn an_unset_option_has_its_default() {
        let c = Configuration::new();
        assert_eq!(c.get(&SLOTS), Ok(1));
        assert_eq!(c.get(&BIND_PORT), Ok(8081));
        assert_eq!(c.get(&MODE).as_deref(), Ok("NONE"));
        assert_eq!(c.get(&INTERVAL), Ok(None));
        assert_eq!(c.get(&SIZE), Ok(MemorySize::bytes(20 * 1024)));
        assert!(!c.contains(&SLOTS));
        assert_eq!(c.raw(&MODE), None);
    }

    #[test]
    fn a_set_option_is_parsed() {
        let mut c = Configuration::new();
        c.set("test.slots", " 4 ").set("test.interval", "2 min").set("test.size", "1 mb");
        assert_eq!(c.get(&SLOTS), Ok(4));
        assert_eq!(c.get(&INTERVAL), Ok(Some(Duration::from_secs(120))));
        assert_eq!(c.get(&SIZE).map(MemorySize::as_bytes), Ok(1 << 20));
        assert!(c.contains(&SLOTS));
    }

    #[test]
    fn fallback_and_deprecated_keys_are_read_after_the_key() {
        let mut c = Configuration::new();
        c.set("test.port", "9000").set("test.mode", "zookeeper");
        assert_eq!(c.get(&BIND_PORT), Ok(9000));
        assert_eq!(c.lookup(&MODE), Some(("test.mode", "zookeeper")));
        c.set("test.bind-port", "9001").set("test.mode.type", "none");
        assert_eq!(c.get(&BIND_PORT), Ok(9001));
        assert_eq!(c.lookup(&MODE), Some(("test.mode.type", "none")));
        // An error names the key the value was read from.
        let mut c = Configuration::new();
        c.set("test.port", "x");
        assert_eq!(c.get(&BIND_PORT).map_err(|e| e.key), Err("test.port".to_string()));
    }

    #[test]
    fn a_bad_value_names_key_value_and_reason() {
        let mut c = Configuration::new();
        c.set("test.slots", "x").set("test.interval", "ten").set("test.size", "lots");
        assert_eq!(
            c.get(&SLOTS).map_err(|e| e.to_string()),
            Err("invalid value 'x' for configuration key 'test.slots': invalid digit found in string".to_string())
        );
        assert_eq!(
            c.get(&INTERVAL).map_err(|e| e.to_string()),
            Err("invalid value 'ten' for configuration key 'test.interval': expected a number followed by an \
                 optional unit (ms, s, min, h, d)"
                .to_string())
        );
        assert_eq!(
            c.get(&SIZE),
            Err(ConfigError {
                key: "test.size".into(),
                value: "lots".into(),
                reason: "use a size like 20kb or 1mb".into()
            })
        );
    }

    #[test]
    fn defaults_are_documented_as_a_config_file_writes_them() {
        let info = |o: &dyn OptionInfo| (o.type_name(), o.default_text());
        assert_eq!(info(&SLOTS), ("integer", Some("1".to_string())));
        assert_eq!(info(&INTERVAL), ("duration", None));
        assert_eq!(info(&SIZE), ("memory size", Some("20 kb".to_string())));
        assert_eq!(format_duration(Duration::from_secs(300)), "5 min");
        assert_eq!(format_duration(Duration::from_millis(200)), "200 ms");
        assert_eq!(format_duration(Duration::ZERO), "0 ms");
        assert_eq!(format_bytes(1728 << 20), "1728 mb");
        assert_eq!(format_bytes(100), "100");
        for d in [Duration::from_secs(3600), Duration::from_millis(1500)] {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
        assert_eq!(parse_bytes(&format_bytes(1 << 30)), Some(1 << 30));
        assert_eq!(MODE.deprecated_keys(), &["test.mode"]);
        assert_eq!(BIND_PORT.fallback_keys(), &["test.port"]);
    }
}
