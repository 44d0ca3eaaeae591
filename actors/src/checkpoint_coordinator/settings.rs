//! The coordinator's settings, read from the job's configuration; kept apart from the core
//! and the shell because the JobMaster, the REST API and the metrics read them too.

use std::path::PathBuf;
use std::time::Duration;

use riffle_api::{ConfigError, Configuration};

use crate::checkpoint_storage;
use crate::ids::JobId;

/// Checkpointing settings (`execution.checkpointing.*`, `state.checkpoints.*`).
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointSettings {
    /// `execution.checkpointing.interval`; none: no periodic checkpoints (savepoints still work).
    pub interval: Option<Duration>,
    /// `execution.checkpointing.timeout` (10 min).
    pub timeout: Duration,
    /// `execution.checkpointing.min-pause` (0).
    pub min_pause: Duration,
    /// `execution.checkpointing.max-concurrent-checkpoints` (1).
    pub max_concurrent: usize,
    /// `execution.checkpointing.mode`: EXACTLY_ONCE (aligned barriers) or AT_LEAST_ONCE.
    pub aligned: bool,
    /// `execution.checkpointing.unaligned` (false): exactly-once checkpoints whose barriers
    /// overtake in-flight data (FLIP-76). Savepoints are always aligned, as in Flink.
    pub unaligned: bool,
    /// `state.checkpoints.dir`: where metadata goes; none keeps checkpoints in memory only.
    pub dir: Option<PathBuf>,
    /// `state.checkpoints.num-retained` (1).
    pub retained: usize,
    /// `state.savepoints.dir`: the default target of savepoints.
    pub savepoint_dir: Option<PathBuf>,
    /// `state.storage.fs.memory-threshold` (20 KiB): smaller state is inlined in the metadata.
    pub inline_threshold: usize,
    /// `execution.checkpointing.externalized-checkpoint-retention`.
    pub retention: Retention,
}

/// What happens to a job's checkpoints when it ends
/// (`execution.checkpointing.externalized-checkpoint-retention`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// `NO_EXTERNALIZED_CHECKPOINTS` (default): deleted when the job ends, however it ends.
    None,
    /// `DELETE_ON_CANCELLATION`: kept when the job fails, deleted when it is cancelled or finishes.
    DeleteOnCancellation,
    /// `RETAIN_ON_CANCELLATION`: always kept, for a later `--from-savepoint`.
    RetainOnCancellation,
}

impl Retention {
    /// Whether a job ending with `failed` deletes its checkpoints.
    pub fn deletes_on_end(self, failed: bool) -> bool {
        match self {
            Retention::None => true,
            Retention::DeleteOnCancellation => !failed,
            Retention::RetainOnCancellation => false,
        }
    }
}

impl CheckpointSettings {
    /// The settings, or `None` when checkpointing is off (no interval set).
    pub fn from_config(c: &Configuration) -> Result<Self, ConfigError> {
        let interval = match c.get_str("execution.checkpointing.interval") {
            Some(_) => Some(
                c.get_duration("execution.checkpointing.interval", Duration::from_secs(1))?
                    .max(Duration::from_millis(1)),
            ),
            None => None,
        };
        let mode = c.get_str("execution.checkpointing.mode").unwrap_or("EXACTLY_ONCE").trim().to_ascii_uppercase();
        let aligned = match mode.as_str() {
            "EXACTLY_ONCE" => true,
            "AT_LEAST_ONCE" => false,
            _ => {
                return Err(ConfigError {
                    key: "execution.checkpointing.mode".into(),
                    value: mode,
                    reason: "use EXACTLY_ONCE or AT_LEAST_ONCE".into(),
                })
            }
        };
        let unaligned = c.get("execution.checkpointing.unaligned", false)?;
        if unaligned && !aligned {
            return Err(ConfigError {
                key: "execution.checkpointing.unaligned".into(),
                value: "true".into(),
                reason: "unaligned checkpoints need execution.checkpointing.mode EXACTLY_ONCE".into(),
            });
        }
        let key = "execution.checkpointing.externalized-checkpoint-retention";
        let retention = match c.get_str(key).map(|v| v.trim().to_ascii_uppercase()) {
            None => Retention::None,
            Some(v) if v == "NO_EXTERNALIZED_CHECKPOINTS" => Retention::None,
            Some(v) if v == "DELETE_ON_CANCELLATION" => Retention::DeleteOnCancellation,
            Some(v) if v == "RETAIN_ON_CANCELLATION" => Retention::RetainOnCancellation,
            Some(v) => {
                return Err(ConfigError {
                    key: key.into(),
                    value: v,
                    reason: "use RETAIN_ON_CANCELLATION, DELETE_ON_CANCELLATION or NO_EXTERNALIZED_CHECKPOINTS".into(),
                })
            }
        };
        let threshold_key = "state.storage.fs.memory-threshold";
        let inline_threshold = c.get_bytes(threshold_key, 20 << 10)?;
        let dir = |k: &str| c.get_str(k).map(|d| PathBuf::from(d.strip_prefix("file://").unwrap_or(d)));
        Ok(Self {
            interval,
            timeout: c.get_duration("execution.checkpointing.timeout", Duration::from_secs(600))?,
            min_pause: c.get_duration("execution.checkpointing.min-pause", Duration::ZERO)?,
            max_concurrent: c.get("execution.checkpointing.max-concurrent-checkpoints", 1usize)?.max(1),
            aligned,
            unaligned,
            dir: dir("state.checkpoints.dir"),
            retained: c.get("state.checkpoints.num-retained", 1usize)?.max(1),
            savepoint_dir: dir("state.savepoints.dir"),
            inline_threshold,
            retention,
        })
    }

    /// The directory of `job`'s checkpoints, if checkpoints go to storage.
    pub fn job_dir(&self, job: JobId) -> Option<PathBuf> {
        let base = self.dir.as_ref()?;
        Some(checkpoint_storage::absolute(base).unwrap_or_else(|_| base.clone()).join(job.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_from_flink_keys() {
        let mut c = Configuration::new();
        let s = CheckpointSettings::from_config(&c).unwrap();
        assert_eq!(s.interval, None);
        assert_eq!(s.inline_threshold, 20 * 1024);
        assert_eq!(s.retention, Retention::None);
        c.set("execution.checkpointing.interval", "2s")
            .set("state.storage.fs.memory-threshold", "1kb")
            .set("execution.checkpointing.externalized-checkpoint-retention", "retain_on_cancellation");
        let s = CheckpointSettings::from_config(&c).unwrap();
        assert_eq!(s.interval, Some(Duration::from_secs(2)));
        assert_eq!(s.inline_threshold, 1024);
        assert_eq!(s.retention, Retention::RetainOnCancellation);
        assert!(!s.retention.deletes_on_end(false));
        assert!(Retention::DeleteOnCancellation.deletes_on_end(false));
        assert!(!Retention::DeleteOnCancellation.deletes_on_end(true));
        c.set("state.storage.fs.memory-threshold", "lots");
        assert!(CheckpointSettings::from_config(&c).is_err());
        c.set("state.storage.fs.memory-threshold", "0");
        c.set("execution.checkpointing.externalized-checkpoint-retention", "KEEP");
        assert!(CheckpointSettings::from_config(&c).is_err());
    }
}
