//! The file sink's options, with the names and defaults of Flink's filesystem connector.

use std::time::Duration;

use riffle_api::{ConfigOption, Group, MemorySize};

/// Where the sink writes: a local directory, or a `file://` URL.
pub const PATH: ConfigOption<Option<String>> = ConfigOption::optional(
    Group::Formats,
    "path",
    "the file sink's base directory: a local path, a `file://` URL, or `s3://`, `gs://`, `az://` with the crate's `s3`, `gcs`, `azure` features",
);

/// A part file rolls once it holds this many bytes.
pub const ROLLING_FILE_SIZE: ConfigOption<MemorySize> = ConfigOption::new(
    Group::Formats,
    "sink.rolling-policy.file-size",
    MemorySize::mib(128),
    "the file sink closes a part file once it reached this size (bytes handed to the file; Parquet and ORC count at row group and stripe flushes)",
);

/// A part file rolls once it has been open this long.
pub const ROLLOVER_INTERVAL: ConfigOption<Duration> = ConfigOption::new(
    Group::Formats,
    "sink.rolling-policy.rollover-interval",
    Duration::from_secs(30 * 60),
    "the file sink closes a part file open this long (checked at most every check-interval, when records arrive; every checkpoint closes it anyway)",
);

/// A part file rolls once no record was written to it for this long.
pub const INACTIVITY_INTERVAL: ConfigOption<Duration> = ConfigOption::new(
    Group::Formats,
    "sink.rolling-policy.inactivity-interval",
    Duration::from_secs(30 * 60),
    "the file sink closes a part file that received no record for this long (checked like the rollover interval)",
);

/// How often the time-based rolling rules are checked.
pub const CHECK_INTERVAL: ConfigOption<Duration> = ConfigOption::new(
    Group::Formats,
    "sink.rolling-policy.check-interval",
    Duration::from_secs(60),
    "how often the file sink checks the rollover and inactivity intervals of its open part files",
);

/// The columns whose values name the partition directories.
pub const PARTITION_BY: ConfigOption<Option<String>> = ConfigOption::optional(
    Group::Formats,
    "sink.partition-by",
    "riffle's (Flink's `PARTITIONED BY`): comma-separated columns whose values name Hive-style partition directories (`dt=2026-12-03/hour=07`); they are not written inside the files",
);

/// The directory name of a null or empty partition value.
pub const DEFAULT_PARTITION_NAME: ConfigOption<String> = ConfigOption::new(
    Group::Formats,
    "partition.default-name",
    "__DEFAULT_PARTITION__",
    "the partition value written for a null or empty partition column",
);

/// How the partition time is built from the partition values.
pub const TIMESTAMP_PATTERN: ConfigOption<Option<String>> = ConfigOption::optional(
    Group::Formats,
    "partition.time-extractor.timestamp-pattern",
    "how partition values make the partition time, e.g. `$dt $hour:00:00` (default: the first partition value)",
);

/// How the partition time string is parsed.
pub const TIMESTAMP_FORMATTER: ConfigOption<String> = ConfigOption::new(
    Group::Formats,
    "partition.time-extractor.timestamp-formatter",
    "yyyy-MM-dd HH:mm:ss",
    "the pattern the partition time string is parsed with (letters yyyy, MM, dd, HH, mm, ss; with the default a bare `yyyy-MM-dd` is midnight)",
);

/// When a partition is committed.
pub const COMMIT_TRIGGER: ConfigOption<String> = ConfigOption::new(
    Group::Formats,
    "sink.partition-commit.trigger",
    "process-time",
    "when a partition is committed: `process-time` (its creation time plus the delay has passed) or `partition-time` (the watermark passed its partition time plus the delay)",
);

/// How long after its time a partition is committed.
pub const COMMIT_DELAY: ConfigOption<Duration> = ConfigOption::new(
    Group::Formats,
    "sink.partition-commit.delay",
    Duration::ZERO,
    "how long after its creation (process-time) or its partition time (partition-time) a partition is committed",
);

/// What committing a partition does.
pub const COMMIT_POLICY_KIND: ConfigOption<Option<String>> = ConfigOption::optional(
    Group::Formats,
    "sink.partition-commit.policy.kind",
    "what committing a partition does: `success-file` (writes the success file); unset: partitions are not committed",
);

/// The success file's name.
pub const SUCCESS_FILE_NAME: ConfigOption<String> = ConfigOption::new(
    Group::Formats,
    "sink.partition-commit.success-file.name",
    "_SUCCESS",
    "the file the `success-file` policy writes into a committed partition",
);

/// The time zone partition times are in, to compare them with the watermark.
pub const WATERMARK_TIME_ZONE: ConfigOption<String> = ConfigOption::new(
    Group::Formats,
    "sink.partition-commit.watermark-time-zone",
    "UTC",
    "the time zone of partition times, to compare them with the (UTC) watermark: `UTC` or a fixed offset such as `+08:00` or `GMT-05:00`",
);

/// Every sink option, for the crate's `options()`.
pub(crate) fn options() -> Vec<&'static dyn riffle_api::OptionInfo> {
    vec![
        &PATH,
        &ROLLING_FILE_SIZE,
        &ROLLOVER_INTERVAL,
        &INACTIVITY_INTERVAL,
        &CHECK_INTERVAL,
        &PARTITION_BY,
        &DEFAULT_PARTITION_NAME,
        &TIMESTAMP_PATTERN,
        &TIMESTAMP_FORMATTER,
        &COMMIT_TRIGGER,
        &COMMIT_DELAY,
        &COMMIT_POLICY_KIND,
        &SUCCESS_FILE_NAME,
        &WATERMARK_TIME_ZONE,
    ]
}
