//! The coordinator's settings, read from the job's configuration; kept apart from the core
//! and the shell because the JobMaster, the REST API and the metrics read them too.

use std::path::PathBuf;
use std::time::Duration;

use riffle_api::{ConfigError, ConfigOption, ConfigValue, Configuration, Group, MemorySize, OptionInfo};

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
    /// `execution.checkpointing.checkpoints-after-tasks-finish` (true): checkpoints go on
    /// after some tasks finished, and tasks whose operators commit through checkpoints wait
    /// for one after their end of input (FLIP-147). False: checkpointing stops when the
    /// first task finishes, as in Flink 1.11.
    pub after_tasks_finish: bool,
    /// `state.backend.incremental` (true): checkpoints (never savepoints) write only what
    /// changed since the latest completed one.
    pub incremental: bool,
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

const fn option<T: ConfigValue>(key: &'static str, default: T::Default, what: &'static str) -> ConfigOption<T> {
    ConfigOption::new(Group::Checkpointing, key, default, what)
}

/// `execution.checkpointing.interval`: periodic checkpoints are off when it is unset.
pub const INTERVAL: ConfigOption<Option<Duration>> = ConfigOption::optional(
    Group::Checkpointing,
    "execution.checkpointing.interval",
    "checkpoint every interval (off when unset)",
);
/// `execution.checkpointing.mode`.
pub const MODE: ConfigOption<String> =
    option("execution.checkpointing.mode", "EXACTLY_ONCE", "EXACTLY_ONCE (aligned) or AT_LEAST_ONCE");
/// `execution.checkpointing.unaligned`.
pub const UNALIGNED: ConfigOption<bool> =
    option("execution.checkpointing.unaligned", false, "barriers overtake in-flight data (FLIP-76)");
/// `execution.checkpointing.timeout`.
pub const TIMEOUT: ConfigOption<Duration> =
    option("execution.checkpointing.timeout", Duration::from_secs(600), "abort a checkpoint not complete by then");
/// `execution.checkpointing.min-pause`.
pub const MIN_PAUSE: ConfigOption<Duration> =
    option("execution.checkpointing.min-pause", Duration::ZERO, "least time between two checkpoints");
/// `execution.checkpointing.max-concurrent-checkpoints`.
pub const MAX_CONCURRENT: ConfigOption<usize> =
    option("execution.checkpointing.max-concurrent-checkpoints", 1, "checkpoints in progress at once");
/// `execution.checkpointing.externalized-checkpoint-retention`, see [`Retention`].
pub const RETENTION: ConfigOption<String> = option(
    "execution.checkpointing.externalized-checkpoint-retention",
    "NO_EXTERNALIZED_CHECKPOINTS",
    "keep checkpoints when the job ends: NO_EXTERNALIZED_CHECKPOINTS, DELETE_ON_CANCELLATION or \
     RETAIN_ON_CANCELLATION",
);
/// `state.checkpoints.dir` (a `file://` prefix is accepted).
pub const CHECKPOINTS_DIR: ConfigOption<Option<String>> = ConfigOption::optional(
    Group::Checkpointing,
    "state.checkpoints.dir",
    "where checkpoints are written (in memory when unset)",
);
/// `state.checkpoints.num-retained`.
pub const NUM_RETAINED: ConfigOption<usize> = option("state.checkpoints.num-retained", 1, "completed checkpoints kept");
/// `state.savepoints.dir` (a `file://` prefix is accepted).
pub const SAVEPOINTS_DIR: ConfigOption<Option<String>> =
    ConfigOption::optional(Group::Checkpointing, "state.savepoints.dir", "default target of savepoints");
/// `execution.checkpointing.checkpoints-after-tasks-finish` (Flink 1.14's
/// `...checkpoints-after-tasks-finish.enabled` is read too).
pub const AFTER_TASKS_FINISH: ConfigOption<bool> = option(
    "execution.checkpointing.checkpoints-after-tasks-finish",
    true,
    "checkpoints go on after some tasks finished, and a final checkpoint commits two-phase-commit sinks (FLIP-147)",
)
.with_deprecated_keys(&["execution.checkpointing.checkpoints-after-tasks-finish.enabled"]);
/// `state.storage.fs.memory-threshold`.
pub const MEMORY_THRESHOLD: ConfigOption<MemorySize> = option(
    "state.storage.fs.memory-threshold",
    MemorySize::kib(20),
    "state smaller than this is inlined in the metadata",
);

/// The options [`CheckpointSettings::from_config`] reads.
pub(crate) const OPTIONS: &[&dyn OptionInfo] = &[
    &INTERVAL,
    &MODE,
    &UNALIGNED,
    &TIMEOUT,
    &MIN_PAUSE,
    &MAX_CONCURRENT,
    &RETENTION,
    &CHECKPOINTS_DIR,
    &NUM_RETAINED,
    &SAVEPOINTS_DIR,
    &MEMORY_THRESHOLD,
    &AFTER_TASKS_FINISH,
];

impl CheckpointSettings {
    /// The settings, or `None` when checkpointing is off (no interval set).
    pub fn from_config(c: &Configuration) -> Result<Self, ConfigError> {
        let interval = c.get(&INTERVAL)?.map(|i| i.max(Duration::from_millis(1)));
        let mode = c.get(&MODE)?.trim().to_ascii_uppercase();
        let aligned = match mode.as_str() {
            "EXACTLY_ONCE" => true,
            "AT_LEAST_ONCE" => false,
            _ => {
                return Err(ConfigError {
                    key: MODE.key().into(),
                    value: mode,
                    reason: "use EXACTLY_ONCE or AT_LEAST_ONCE".into(),
                })
            }
        };
        let unaligned = c.get(&UNALIGNED)?;
        if unaligned && !aligned {
            return Err(ConfigError {
                key: UNALIGNED.key().into(),
                value: "true".into(),
                reason: "unaligned checkpoints need execution.checkpointing.mode EXACTLY_ONCE".into(),
            });
        }
        let retention = match c.get(&RETENTION)?.trim().to_ascii_uppercase() {
            v if v == "NO_EXTERNALIZED_CHECKPOINTS" => Retention::None,
            v if v == "DELETE_ON_CANCELLATION" => Retention::DeleteOnCancellation,
            v if v == "RETAIN_ON_CANCELLATION" => Retention::RetainOnCancellation,
            v => {
                return Err(ConfigError {
                    key: RETENTION.key().into(),
                    value: v,
                    reason: "use RETAIN_ON_CANCELLATION, DELETE_ON_CANCELLATION or NO_EXTERNALIZED_CHECKPOINTS".into(),
                })
            }
        };
        let inline_threshold = c.get(&MEMORY_THRESHOLD)?.as_bytes();
        let dir = |o: &ConfigOption<Option<String>>| {
            c.get(o).map(|d| d.map(|d| PathBuf::from(d.strip_prefix("file://").unwrap_or(&d))))
        };
        Ok(Self {
            interval,
            timeout: c.get(&TIMEOUT)?,
            min_pause: c.get(&MIN_PAUSE)?,
            max_concurrent: c.get(&MAX_CONCURRENT)?.max(1),
            aligned,
            unaligned,
            dir: dir(&CHECKPOINTS_DIR)?,
            retained: c.get(&NUM_RETAINED)?.max(1),
            savepoint_dir: dir(&SAVEPOINTS_DIR)?,
            inline_threshold,
            retention,
            after_tasks_finish: c.get(&AFTER_TASKS_FINISH)?,
            incremental: c.get(&crate::state_backend::INCREMENTAL)?,
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
        assert!(s.after_tasks_finish);
        c.set("execution.checkpointing.checkpoints-after-tasks-finish.enabled", "false");
        assert!(!CheckpointSettings::from_config(&c).unwrap().after_tasks_finish);
        assert!(s.incremental, "incremental by default");
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
