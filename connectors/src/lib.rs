//! riffle's formats and file connectors on Apache Arrow.
//!
//! Untyped rows are Arrow [`RecordBatch`]es with a schema (the representation the SQL layer
//! will execute on). A [`Format`] decodes a split of a file into batches and encodes batches
//! into a file: CSV, newline-delimited JSON, Avro object container files, Parquet, ORC and raw
//! text lines, with Flink's option names. Files are cut into [`FileSplit`]s so that several
//! readers share one file (byte ranges realigned to line starts or Avro sync markers, Parquet
//! row groups, ORC stripes), and a reader's [`Position`] is what it seeks back to after a
//! failure.
//!
//! This crate knows nothing of actors, subtasks or checkpoints: [`FileSource`] implements
//! riffle-api's FLIP-27 `Source` traits over the splits and keeps positions in the readers'
//! split state; the engine drives it. [`FileSink`] implements riffle-api's
//! `TwoPhaseCommitSink` over the writers (exactly-once part files, partitions, partition
//! commit), wired into a `DataStream<Rows>` by [`FileSinkExt`].
//!
//! ```
//! use riffle_api::Configuration;
//! use riffle_connectors::format;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("people.csv");
//! std::fs::write(&path, "ada,36\ngrace,45\n")?;
//! let mut options = Configuration::new();
//! options.set("format", "csv");
//! let csv = format::from_config(&options)?;
//! let schema = csv.infer_schema(&path)?;
//! let mut rows = 0;
//! for split in csv.splits(&path, 8)? {
//!     let mut reader = csv.open(&split, schema.clone())?;
//!     while let Some(batch) = reader.next_batch()? {
//!         rows += batch.num_rows();
//!     }
//! }
//! assert_eq!(rows, 2);
//! # Ok(()) }
//! ```

pub mod error;
pub mod format;
pub mod keyed_rows;
pub mod lines;
pub mod rows;
pub mod sink;
pub mod source;
pub mod split;
pub mod stream;

pub use arrow::datatypes::{Schema, SchemaRef};
pub use arrow::record_batch::RecordBatch;
pub use error::{ConnectorError, Location, Result};
pub use format::{BatchReader, BatchWriter, Format};
pub use keyed_rows::{KeyEncoder, KeySplitter, KeyedRows};
pub use rows::{Rows, RowsError};
pub use sink::{FileSink, FileSinkExt};
pub use source::{FileSource, FileSourceSplit};
pub use split::{FileSplit, Position, SplitUnit};
pub use stream::{RecordStreamExt, RowStreamExt};

/// Every option this crate declares, for the configuration registry and docs/connectors.md
/// (it also reads `source.split-size`, declared by riffle-api for `read_text_file` too).
pub fn options() -> Vec<&'static dyn riffle_api::OptionInfo> {
    let mut out = format::options();
    out.extend(sink::options::options());
    out
}
