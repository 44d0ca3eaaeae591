//! Partition commit: when a partition the sink wrote is complete enough to tell readers
//! (Flink's `sink.partition-commit.*`), as pure decisions on the partitions' times, the
//! processing time and the watermark; and what committing does (a success file).

use std::collections::BTreeMap;

use riffle_api::{ConfigError, Configuration};
use serde::{Deserialize, Serialize};

use super::options::{
    COMMIT_DELAY, COMMIT_POLICY_KIND, COMMIT_TRIGGER, SUCCESS_FILE_NAME, TIMESTAMP_FORMATTER, TIMESTAMP_PATTERN,
    WATERMARK_TIME_ZONE,
};
use super::partition::PartitionSpec;
use crate::error::{ConnectorError, Result};

/// When a partition may be committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Once its creation time (the processing time of its first record) plus the delay has
    /// passed.
    ProcessTime,
    /// Once the watermark reached its partition time (from its values) plus the delay.
    PartitionTime,
}

/// `sink.partition-commit.*`: the trigger, the delay and what committing does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitPolicy {
    /// The trigger.
    pub trigger: Trigger,
    /// The delay in milliseconds.
    pub delay_ms: i64,
    /// The success file's name (the `success-file` policy).
    pub success_file: String,
    /// How partition times are extracted (partition-time trigger).
    pub extractor: TimeExtractor,
}

fn config_err(key: &str, value: &str, reason: impl Into<String>) -> ConnectorError {
    ConfigError { key: key.into(), value: value.into(), reason: reason.into() }.into()
}

impl CommitPolicy {
    /// The policy `config` sets; `None` when `sink.partition-commit.policy.kind` is not set
    /// (partitions are written but not committed).
    pub fn from_config(config: &Configuration) -> Result<Option<Self>> {
        let trigger_text = config.get(&COMMIT_TRIGGER)?;
        let trigger = match trigger_text.trim() {
            "process-time" => Trigger::ProcessTime,
            "partition-time" => Trigger::PartitionTime,
            other => return Err(config_err(COMMIT_TRIGGER.key(), other, "expected process-time or partition-time")),
        };
        let delay_ms = i64::try_from(config.get(&COMMIT_DELAY)?.as_millis()).unwrap_or(i64::MAX);
        let extractor = TimeExtractor::from_config(config)?;
        let Some(kinds) = config.get(&COMMIT_POLICY_KIND)? else {
            return Ok(None);
        };
        let mut success = false;
        for kind in kinds.split(',').map(str::trim).filter(|k| !k.is_empty()) {
            match kind {
                "success-file" => success = true,
                "metastore" | "custom" => {
                    return Err(config_err(
                        COMMIT_POLICY_KIND.key(),
                        &kinds,
                        format!("riffle has no `{kind}` partition commit policy (only success-file)"),
                    ))
                }
                other => return Err(config_err(COMMIT_POLICY_KIND.key(), other, "unknown policy (success-file)")),
            }
        }
        if !success {
            return Ok(None);
        }
        let success_file = config.get(&SUCCESS_FILE_NAME)?;
        let bad = success_file.is_empty()
            || success_file.contains(['/', '\\'])
            || success_file == "."
            || success_file == ".."
            || success_file.starts_with("part-")
            || success_file.starts_with(".part-");
        if bad {
            return Err(config_err(
                SUCCESS_FILE_NAME.key(),
                &success_file,
                "expected a plain file name, not a part file's",
            ));
        }
        Ok(Some(Self { trigger, delay_ms, success_file, extractor }))
    }
}

/// How a partition's time is built from its values (Flink's default extractor): the
/// `timestamp-pattern` with `$column` replaced by the values, or the first value, parsed with
/// the `timestamp-formatter` and read in the watermark time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeExtractor {
    pattern: Option<String>,
    formatter: String,
    /// The time zone's offset from UTC in seconds.
    offset_s: i64,
}

impl TimeExtractor {
    /// The extractor `config` sets (`partition.time-extractor.*`,
    /// `sink.partition-commit.watermark-time-zone`).
    pub fn from_config(config: &Configuration) -> Result<Self> {
        let zone = config.get(&WATERMARK_TIME_ZONE)?;
        let offset_s = parse_zone(&zone).ok_or_else(|| {
            config_err(WATERMARK_TIME_ZONE.key(), &zone, "expected UTC or a fixed offset such as +08:00 or GMT-05:00")
        })?;
        let formatter = config.get(&TIMESTAMP_FORMATTER)?;
        if !formatter.contains("yyyy") || !formatter.contains("MM") || !formatter.contains("dd") {
            return Err(config_err(TIMESTAMP_FORMATTER.key(), &formatter, "a pattern needs yyyy, MM and dd"));
        }
        Ok(Self { pattern: config.get(&TIMESTAMP_PATTERN)?, formatter, offset_s })
    }

    /// The partition time of `spec` in milliseconds since the epoch (UTC).
    pub fn extract(&self, spec: &PartitionSpec) -> Result<i64> {
        let text = match &self.pattern {
            Some(p) => {
                // Longer names first, so `$hour` is not read as `$h` followed by "our".
                let mut by_len: Vec<&(String, String)> = spec.values.iter().collect();
                by_len.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
                let mut s = p.clone();
                for (k, v) in by_len {
                    s = s.replace(&format!("${k}"), v);
                }
                s
            }
            None => match spec.values.first() {
                Some((_, v)) => v.clone(),
                None => return Err(ConnectorError::schema("sink", "partition-time commit needs partition columns")),
            },
        };
        let local = parse_time(&self.formatter, &text).ok_or_else(|| {
            ConnectorError::schema(
                spec.path(),
                format!("the partition time '{text}' does not match the pattern '{}'", self.formatter),
            )
        })?;
        Ok((local - self.offset_s) * 1000)
    }
}

/// A time zone as a fixed offset in seconds: `UTC`, `Z`, `GMT`, `+08:00`, `UTC+8`, `GMT-05:30`.
fn parse_zone(zone: &str) -> Option<i64> {
    let z = zone.trim();
    let rest = ["UTC", "GMT", "Z"].iter().find_map(|p| z.strip_prefix(p)).unwrap_or(z);
    if rest.is_empty() {
        return Some(0);
    }
    let (sign, digits) = match rest.as_bytes().first()? {
        b'+' => (1, &rest[1..]),
        b'-' => (-1, &rest[1..]),
        _ => return None,
    };
    let (h, m) = match digits.split_once(':') {
        Some((h, m)) => (h.parse::<i64>().ok()?, m.parse::<i64>().ok()?),
        None if digits.len() == 4 => (digits[..2].parse().ok()?, digits[2..].parse().ok()?),
        None => (digits.parse::<i64>().ok()?, 0),
    };
    (h <= 18 && m < 60 && !digits.is_empty()).then_some(sign * (h * 3600 + m * 60))
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `text` parsed with a Java-style `pattern` of `yyyy`, `MM`, `dd`, `HH`, `mm`, `ss` and
/// literal characters, as seconds since the epoch of that local time. With the default
/// pattern a bare date (`yyyy-MM-dd`) is midnight, as Flink's default extractor reads it.
pub(crate) fn parse_time(pattern: &str, text: &str) -> Option<i64> {
    if pattern == "yyyy-MM-dd HH:mm:ss" && text.len() == 10 {
        return parse_time("yyyy-MM-dd", text);
    }
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut i, mut j) = (0, 0);
    let mut f = [1970i64, 1, 1, 0, 0, 0];
    while i < p.len() {
        let field = [("yyyy", 0), ("MM", 1), ("dd", 2), ("HH", 3), ("mm", 4), ("ss", 5)]
            .iter()
            .find(|(tok, _)| p[i..].starts_with(tok.as_bytes()));
        match field {
            Some((tok, slot)) => {
                let n = tok.len();
                let digits = t.get(j..j + n)?;
                if !digits.iter().all(u8::is_ascii_digit) {
                    return None;
                }
                f[*slot] = std::str::from_utf8(digits).ok()?.parse().ok()?;
                i += n;
                j += n;
            }
            None => {
                if t.get(j) != Some(&p[i]) {
                    return None;
                }
                i += 1;
                j += 1;
            }
        }
    }
    let [y, mo, d, h, mi, s] = f;
    let valid = j == t.len() && (1..=12).contains(&mo) && (1..=31).contains(&d) && h < 24 && mi < 60 && s < 60;
    valid.then(|| days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s)
}

/// A partition this subtask wrote to that is not committed yet: kept in the sink's
/// transactions, so it survives a failover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingPartition {
    /// The partition.
    pub spec: PartitionSpec,
    /// The processing time of its first record (ms).
    pub created_ms: i64,
    /// Its partition time (ms; partition-time trigger only).
    pub partition_time_ms: Option<i64>,
    /// The sequence number of the last transaction that wrote to it.
    pub last_txn: u64,
}

/// The partitions written and not yet committed, by relative path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitTracker {
    pending: BTreeMap<String, PendingPartition>,
}

impl CommitTracker {
    /// Notes a write to `spec` in transaction `txn` at `now_ms`; a new partition is created
    /// then (its partition time computed with `extractor`, if given).
    pub fn touch(
        &mut self,
        spec: &PartitionSpec,
        txn: u64,
        now_ms: i64,
        extractor: Option<&TimeExtractor>,
    ) -> Result<()> {
        let path = spec.path();
        if let Some(p) = self.pending.get_mut(&path) {
            p.last_txn = p.last_txn.max(txn);
            return Ok(());
        }
        let partition_time_ms = extractor.map(|x| x.extract(spec)).transpose()?;
        self.pending.insert(
            path,
            PendingPartition { spec: spec.clone(), created_ms: now_ms, partition_time_ms, last_txn: txn },
        );
        Ok(())
    }

    /// The pending partitions, for a transaction to carry.
    pub fn snapshot(&self) -> Vec<PendingPartition> {
        self.pending.values().cloned().collect()
    }

    /// Adds partitions a restored transaction carried (the later write wins).
    pub fn restore(&mut self, partitions: impl IntoIterator<Item = PendingPartition>) {
        for p in partitions {
            let path = p.spec.path();
            match self.pending.get_mut(&path) {
                Some(q) if q.last_txn >= p.last_txn => {}
                _ => {
                    self.pending.insert(path, p);
                }
            }
        }
    }

    /// A partition was committed after transaction `txn`'s files became visible: it leaves
    /// the tracker unless a later transaction wrote to it again (it is committed again then).
    pub fn committed(&mut self, path: &str, txn: u64) {
        if self.pending.get(path).is_some_and(|p| p.last_txn <= txn) {
            self.pending.remove(path);
        }
    }

    /// Whether `path` waits.
    pub fn contains(&self, path: &str) -> bool {
        self.pending.contains_key(path)
    }

    /// How many partitions wait.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

/// Of the `candidates` (pending when a transaction was pre-committed, whose files are now
/// committed), those the trigger lets commit at processing time `now_ms` with `watermark`
/// (the watermark at that checkpoint's barrier). The end of input (`i64::MAX` watermark)
/// commits every partition.
pub fn ready<'a>(
    policy: &CommitPolicy,
    candidates: &'a [PendingPartition],
    now_ms: i64,
    watermark: Option<i64>,
) -> Vec<&'a PendingPartition> {
    candidates
        .iter()
        .filter(|p| {
            if watermark == Some(i64::MAX) {
                return true;
            }
            match policy.trigger {
                Trigger::ProcessTime => p.created_ms.saturating_add(policy.delay_ms) <= now_ms,
                Trigger::PartitionTime => match (p.partition_time_ms, watermark) {
                    (Some(t), Some(w)) => t.saturating_add(policy.delay_ms) <= w,
                    _ => false,
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dt: &str, hour: &str) -> PartitionSpec {
        PartitionSpec { values: vec![("dt".into(), dt.into()), ("hour".into(), hour.into())] }
    }

    fn config(kv: &[(&str, &str)]) -> Configuration {
        let mut c = Configuration::new();
        for (k, v) in kv {
            c.set(*k, *v);
        }
        c
    }

    /// 2026-12-03T07:00:00Z in ms.
    const DEC3_07: i64 = 1_796_281_200_000;

    #[test]
    fn civil_dates_and_patterns() {
        assert_eq!(parse_time("yyyy-MM-dd HH:mm:ss", "1970-01-01 00:00:00"), Some(0));
        assert_eq!(parse_time("yyyy-MM-dd HH:mm:ss", "2026-12-03 07:00:00"), Some(DEC3_07 / 1000));
        assert_eq!(parse_time("yyyy-MM-dd HH:mm:ss", "2026-12-03"), Some(DEC3_07 / 1000 - 7 * 3600));
        assert_eq!(parse_time("yyyyMMdd", "20000229"), Some(951_782_400));
        assert_eq!(parse_time("yyyy-MM-dd HH:mm:ss", "2026-13-03 07:00:00"), None);
        assert_eq!(parse_time("yyyy-MM-dd HH:mm:ss", "2026-12-03 07:00"), None);
        assert_eq!(parse_time("yyyy-MM-dd", "2026-12-0x"), None);
    }

    #[test]
    fn pattern_time_zone_and_default_extraction() {
        let x =
            TimeExtractor::from_config(&config(&[("partition.time-extractor.timestamp-pattern", "$dt $hour:00:00")]))
                .unwrap();
        assert_eq!(x.extract(&spec("2026-12-03", "07")).unwrap(), DEC3_07);
        assert!(x.extract(&spec("2026-12-03", "7")).is_err(), "one-digit hour does not fit HH");
        let plus8 = TimeExtractor::from_config(&config(&[
            ("partition.time-extractor.timestamp-pattern", "$dt $hour:00:00"),
            ("sink.partition-commit.watermark-time-zone", "GMT+08:00"),
        ]))
        .unwrap();
        assert_eq!(plus8.extract(&spec("2026-12-03", "15")).unwrap(), DEC3_07);
        let first = TimeExtractor::from_config(&Configuration::new()).unwrap();
        assert_eq!(first.extract(&spec("2026-12-03", "x")).unwrap(), DEC3_07 - 7 * 3_600_000);
        assert!(TimeExtractor::from_config(&config(&[("sink.partition-commit.watermark-time-zone", "Asia/Shanghai")]))
            .is_err());
        assert_eq!(parse_zone("UTC"), Some(0));
        assert_eq!(parse_zone("-05:30"), Some(-(5 * 3600 + 30 * 60)));
        assert_eq!(parse_zone("UTC+8"), Some(8 * 3600));
        assert_eq!(parse_zone("+0800"), Some(8 * 3600));
    }

    #[test]
    fn policies_from_config() {
        assert_eq!(CommitPolicy::from_config(&Configuration::new()).unwrap(), None);
        let p = CommitPolicy::from_config(&config(&[
            ("sink.partition-commit.policy.kind", "success-file"),
            ("sink.partition-commit.delay", "1 h"),
            ("sink.partition-commit.success-file.name", "_DONE"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!((p.trigger, p.delay_ms, p.success_file.as_str()), (Trigger::ProcessTime, 3_600_000, "_DONE"));
        for bad in [
            ("sink.partition-commit.policy.kind", "metastore"),
            ("sink.partition-commit.policy.kind", "email"),
            ("sink.partition-commit.trigger", "soon"),
        ] {
            let c = config(&[("sink.partition-commit.policy.kind", "success-file"), bad]);
            assert!(CommitPolicy::from_config(&c).is_err(), "{bad:?}");
        }
        for name in ["", "../_SUCCESS", "a/b", "part-x"] {
            let c = config(&[
                ("sink.partition-commit.policy.kind", "success-file"),
                ("sink.partition-commit.success-file.name", name),
            ]);
            assert!(CommitPolicy::from_config(&c).is_err(), "{name:?}");
        }
    }

    fn policy(trigger: Trigger, delay_ms: i64) -> CommitPolicy {
        let extractor =
            TimeExtractor::from_config(&config(&[("partition.time-extractor.timestamp-pattern", "$dt $hour:00:00")]))
                .unwrap();
        CommitPolicy { trigger, delay_ms, success_file: "_SUCCESS".into(), extractor }
    }

    #[test]
    fn process_time_commits_after_creation_plus_delay() {
        let p = policy(Trigger::ProcessTime, 1000);
        let mut t = CommitTracker::default();
        t.touch(&spec("2026-12-03", "07"), 1, 5_000, None).unwrap();
        t.touch(&spec("2026-12-03", "07"), 2, 9_000, None).unwrap();
        t.touch(&spec("2026-12-03", "08"), 2, 5_500, None).unwrap();
        let snap = t.snapshot();
        assert_eq!(snap[0].created_ms, 5_000, "created by its first record");
        let names = |r: Vec<&PendingPartition>| r.iter().map(|p| p.spec.path()).collect::<Vec<_>>();
        assert!(ready(&p, &snap, 5_999, None).is_empty());
        assert_eq!(names(ready(&p, &snap, 6_000, None)), ["dt=2026-12-03/hour=07"]);
        assert_eq!(names(ready(&p, &snap, 6_500, None)).len(), 2);
        assert_eq!(names(ready(&p, &snap, 0, Some(i64::MAX))).len(), 2, "the end of input commits all");
    }

    #[test]
    fn partition_time_commits_when_the_watermark_passes_time_plus_delay() {
        let p = policy(Trigger::PartitionTime, 3_600_000);
        let mut t = CommitTracker::default();
        t.touch(&spec("2026-12-03", "07"), 1, 0, Some(&p.extractor)).unwrap();
        t.touch(&spec("2026-12-03", "08"), 1, 0, Some(&p.extractor)).unwrap();
        assert!(t.touch(&spec("someday", "07"), 1, 0, Some(&p.extractor)).is_err());
        let snap = t.snapshot();
        let n = |w| ready(&p, &snap, i64::MAX - 1, w).len();
        assert_eq!(n(None), 0, "no watermark yet: processing time does not matter");
        assert_eq!(n(Some(DEC3_07 + 3_600_000 - 1)), 0);
        assert_eq!(n(Some(DEC3_07 + 3_600_000)), 1);
        assert_eq!(n(Some(DEC3_07 + 7_200_000)), 2);
    }

    #[test]
    fn a_partition_written_again_stays_pending_and_restores_keep_the_latest() {
        let mut t = CommitTracker::default();
        let a = spec("2026-12-03", "07");
        t.touch(&a, 1, 0, None).unwrap();
        let at_txn1 = t.snapshot();
        t.touch(&a, 2, 10, None).unwrap();
        t.committed(&a.path(), 1);
        assert_eq!(t.len(), 1, "written by transaction 2, which is not committed");
        t.committed(&a.path(), 2);
        assert!(t.is_empty());
        let mut r = CommitTracker::default();
        let mut later = at_txn1.clone();
        later[0].last_txn = 5;
        r.restore(later.clone());
        r.restore(at_txn1);
        assert_eq!(r.snapshot(), later);
    }
}
