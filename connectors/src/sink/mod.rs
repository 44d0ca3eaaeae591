//! The file sink: [`Rows`] into part files of any format (CSV, JSON, Avro, Parquet, ORC,
//! raw), exactly once, optionally in Hive-style partition directories with partition commit
//! (success files), with the options of Flink's filesystem connector.
//!
//! - [`rolling`]: when a part file rolls (pure decisions);
//! - [`partition`]: which directory a row goes to, and hostile values escaped;
//! - [`commit`]: when a partition is committed (pure tracker and trigger);
//! - [`global_commit`]: the same decision over every subtask's commit marker;
//! - [`writers`]: the encoders on a thread of their own;
//! - [`location`]: what `path` may name;
//! - [`file_sink`]: the two-phase-commit sink gluing them.
//!
//! ```no_run
//! use riffle_api::StreamEnvironment;
//! use riffle_connectors::sink::{FileSink, FileSinkExt};
//! use riffle_connectors::Rows;
//! # #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)] struct Bid { dt: String, price: f64 }
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let env = StreamEnvironment::new();
//! let bids = env.from_collection(vec![Bid { dt: "2026-12-03".into(), price: 2.5 }]);
//! let rows = bids.map(|b| Rows::from_records(&[b]).expect("a struct converts"));
//! rows.sink_to_file_sink(
//!     FileSink::builder("/data/bids").format("parquet").partition_by(["dt"]).build()?,
//! );
//! # Ok(()) }
//! ```

pub mod commit;
pub mod file_sink;
pub mod global_commit;
pub mod location;
pub mod options;
pub mod partition;
pub mod rolling;
pub mod writers;

use riffle_api::stream::{DataStream, SinkHandle};
use riffle_api::Configuration;

pub use file_sink::{FileSink, FileSinkSpec, FileSinkTxn, PartFile};

use crate::error::Result;
use crate::rows::Rows;

/// Builds a [`FileSinkSpec`] in code: the same options a table's configuration gives.
#[derive(Debug, Clone)]
pub struct FileSinkBuilder {
    config: Configuration,
}

impl FileSink {
    /// A builder of a file sink writing under `path` (a directory or `file://` URL).
    pub fn builder(path: impl Into<String>) -> FileSinkBuilder {
        let mut config = Configuration::new();
        config.set(options::PATH.key(), path.into());
        FileSinkBuilder { config }
    }
}

impl FileSinkBuilder {
    /// The format (`csv`, `json`, `avro`, `parquet`, `orc`, `raw`).
    pub fn format(mut self, name: &str) -> Self {
        self.config.set(crate::format::FORMAT.key(), name);
        self
    }

    /// Any option by its key (a format's, `sink.rolling-policy.*`, `sink.partition-commit.*`).
    pub fn option(mut self, key: &str, value: impl Into<String>) -> Self {
        self.config.set(key, value.into());
        self
    }

    /// The partition columns, in directory order.
    pub fn partition_by<I, S>(mut self, columns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let cols: Vec<String> = columns.into_iter().map(|c| c.as_ref().to_string()).collect();
        self.config.set(options::PARTITION_BY.key(), cols.join(","));
        self
    }

    /// Validates the options.
    pub fn build(self) -> Result<FileSinkSpec> {
        FileSinkSpec::from_config(&self.config)
    }
}

/// Ends a stream of [`Rows`] in a [`FileSink`].
pub trait FileSinkExt {
    /// Writes the rows as `config` says (`path`, `format`, ... see docs/connectors.md).
    fn sink_to_files(&self, config: &Configuration) -> Result<SinkHandle>;

    /// Writes the rows into the sink `spec` describes.
    fn sink_to_file_sink(&self, spec: FileSinkSpec) -> SinkHandle;
}

impl FileSinkExt for DataStream<Rows> {
    fn sink_to_files(&self, config: &Configuration) -> Result<SinkHandle> {
        Ok(self.sink_to_file_sink(FileSinkSpec::from_config(config)?))
    }

    fn sink_to_file_sink(&self, spec: FileSinkSpec) -> SinkHandle {
        let name = format!("File Sink ({})", spec.dir().display());
        self.add_two_phase_commit_sink(&name, move |ctx| {
            Ok(FileSink::new(spec.clone(), &format!("{} {}/{}", ctx.name, ctx.subtask + 1, ctx.parallelism)))
        })
    }
}
