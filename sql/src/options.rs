//! The SQL layer's session options (Flink's names), set with `SET 'k' = 'v'`, `-D k=v` or a
//! configuration file; listed by `riffle config-docs`.

use riffle_api::{ConfigOption, Group, OptionInfo};

/// `table.exec.resource.default-parallelism`: the parallelism of every operator of a SQL
/// job (over `parallelism.default`).
pub const DEFAULT_PARALLELISM: ConfigOption<Option<u32>> = ConfigOption::optional(
    Group::Pipeline,
    "table.exec.resource.default-parallelism",
    "parallelism of every operator of a SQL job (default: parallelism.default)",
);

/// `table.local-time-zone`: the session time zone. riffle keeps `TIMESTAMP_LTZ` values as UTC
/// instants and shows them in UTC; only `UTC` is accepted so far.
pub const LOCAL_TIME_ZONE: ConfigOption<String> =
    ConfigOption::new(Group::Pipeline, "table.local-time-zone", "UTC", "session time zone of SQL (only UTC so far)");

/// `execution.runtime-mode`: `streaming` (the only mode of SQL jobs so far).
pub const RUNTIME_MODE: ConfigOption<String> =
    ConfigOption::new(Group::Pipeline, "execution.runtime-mode", "streaming", "streaming (batch is not supported yet)");

/// `pipeline.name`: the name of the next SQL job.
pub const PIPELINE_NAME: ConfigOption<Option<String>> =
    ConfigOption::optional(Group::Pipeline, "pipeline.name", "name of the next SQL job (default: insert-into_<sink>)");

/// The options this crate reads.
pub fn options() -> Vec<&'static dyn OptionInfo> {
    vec![&DEFAULT_PARALLELISM, &LOCAL_TIME_ZONE, &RUNTIME_MODE, &PIPELINE_NAME]
}
