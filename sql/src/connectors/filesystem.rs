//! `'connector' = 'filesystem'` (FLIP-115) on riffle-connectors: `path` and `format` (`csv`,
//! `json`, `avro`, `parquet`, `orc`, `raw`) with the formats' own options (`csv.*`, `json.*`,
//! ...), read by a `FileSource` (bounded; `source.monitor-interval` makes it continuous) and
//! written by the exactly-once `FileSink` (`sink.rolling-policy.*`; a `PARTITIONED BY` table
//! writes Hive partition directories and commits them by `sink.partition-commit.*`). The table
//! options are handed over as they are: riffle-connectors reads Flink's key names. Flink's old
//! keys are mapped: `connector.path` → `path`, `format.type` → `format`, `format.<k>` →
//! `<format>.<k>`.

use std::path::PathBuf;

use riffle_api::{Configuration, DataStream};
use riffle_connectors::sink::options::PARTITION_BY;
use riffle_connectors::{FileSinkExt, FileSource, Rows};

use super::options::{error, required};
use super::{SinkContext, SinkOutput, SourceContext, TableConnector};
use crate::catalog::TableDef;
use crate::error::Result;

/// Flink's filesystem connector.
pub struct Filesystem;

/// The table's options as riffle-connectors' configuration (old keys mapped to new ones).
pub fn configuration(table: &TableDef) -> Result<Configuration> {
    let mut c = Configuration::new();
    let format = table.options.get("format").or_else(|| table.options.get("format.type")).cloned();
    for (k, v) in &table.options {
        match k.as_str() {
            "connector" | "connector.type" => {}
            "connector.path" => {
                c.set("path", v.clone());
            }
            "format.type" => {}
            other => match (other.strip_prefix("format."), &format) {
                (Some(rest), Some(f)) => {
                    c.set(format!("{f}.{rest}"), v.clone());
                }
                _ => {
                    c.set(other.to_string(), v.clone());
                }
            },
        }
    }
    match format {
        Some(f) => c.set("format", f),
        None => return Err(error(table, "option 'format' is required")),
    };
    if !table.partitioned_by.is_empty() {
        c.set(PARTITION_BY.key(), table.partitioned_by.join(","));
    }
    Ok(c)
}

impl TableConnector for Filesystem {
    fn name(&self) -> &str {
        "filesystem"
    }

    fn create_source(&self, ctx: &SourceContext<'_>) -> Result<DataStream<Rows>> {
        let table = ctx.table;
        if !table.partitioned_by.is_empty() {
            return Err(error(table, "not supported yet: reading a partitioned filesystem table"));
        }
        let path = required(table, &["path", "connector.path"])?;
        let config = configuration(table)?;
        let source = FileSource::from_config(&[PathBuf::from(path)], &config, Some(table.physical_schema()))
            .map_err(|e| error(table, e.to_string()))?;
        let name = format!("Source: filesystem ({})", table.name);
        Ok(ctx.env.from_source(source, &name).set_parallelism(ctx.parallelism).name(&name))
    }

    fn create_sink(&self, ctx: &SinkContext<'_>, input: DataStream<Rows>) -> Result<SinkOutput> {
        required(ctx.table, &["path", "connector.path"])?;
        let config = configuration(ctx.table)?;
        let handle = input.sink_to_files(&config).map_err(|e| error(ctx.table, e.to_string()))?;
        Ok(SinkOutput::Job(handle))
    }
}
