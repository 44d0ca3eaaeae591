//! Formats: a decoder from a split of a file to Arrow record batches, and an encoder from
//! batches to a file. One [`Format`] per file format, built from a table's options (Flink's
//! names: `format`, `csv.field-delimiter`, ...).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use riffle_api::{ConfigOption, Configuration, Group};

use crate::error::{ConnectorError, Result};
use crate::split::{FileSplit, Position};

pub mod avro;
pub mod csv;
mod csv_records;
mod guard;
pub mod json;
mod line_based;
pub mod orc;
pub mod parquet;
pub mod text;

/// Which format a file is in.
pub const FORMAT: ConfigOption<Option<String>> = ConfigOption::optional(
    Group::Formats,
    "format",
    "the file format: `csv`, `json`, `avro`, `parquet`, `orc` or `raw` (one string column of text lines)",
);

/// Rows per batch a reader hands out (at most; text formats: lines per batch).
pub const BATCH_SIZE: ConfigOption<usize> = ConfigOption::new(
    Group::Formats,
    "source.batch-size",
    8192,
    "riffle's: the most rows (for text formats, lines) a file reader decodes into one Arrow batch",
);

/// A file format: how a file is cut into splits, how a split decodes into batches and how
/// batches encode into a file. Shared by the readers and writers of one table or source.
pub trait Format: Send + Sync + std::fmt::Debug {
    /// The format's name as the `format` option spells it.
    fn name(&self) -> &'static str;

    /// The schema of the data in `path`: from its metadata (Avro, Parquet, ORC) or from its
    /// first records (CSV, JSON).
    fn infer_schema(&self, path: &Path) -> Result<SchemaRef>;

    /// `path` cut into splits: byte ranges of about `split_size` bytes (text formats, Avro),
    /// row groups (Parquet) or stripes (ORC), each group of them about `split_size` bytes.
    fn splits(&self, path: &Path, split_size: u64) -> Result<Vec<FileSplit>>;

    /// A reader of `split` decoding rows of `schema` (declared, or inferred once for the
    /// whole source so that every split agrees).
    fn open(&self, split: &FileSplit, schema: SchemaRef) -> Result<Box<dyn BatchReader>>;

    /// A writer encoding batches of `schema` into `out`; `path` names the file in errors.
    fn writer(&self, path: &Path, out: Box<dyn Write + Send>, schema: SchemaRef) -> Result<Box<dyn BatchWriter>>;

    /// A writer creating the file `path`.
    fn create(&self, path: &Path, schema: SchemaRef) -> Result<Box<dyn BatchWriter>> {
        let file = std::fs::File::create(path).map_err(|e| ConnectorError::io(path, e))?;
        self.writer(path, Box::new(std::io::BufWriter::with_capacity(256 * 1024, file)), schema)
    }
}

/// Reads one split, batch by batch, and knows where it stands.
pub trait BatchReader: Send {
    /// The rows' schema.
    fn schema(&self) -> SchemaRef;

    /// The next batch, `None` at the end of the split. A malformed record is an error naming
    /// the file, the place and the reason, or (with the format's ignore option) is skipped
    /// and counted in [`BatchReader::skipped`].
    fn next_batch(&mut self) -> Result<Option<RecordBatch>>;

    /// Where the next record is: what a checkpoint keeps, so that [`BatchReader::seek`] can
    /// come back to it.
    fn position(&self) -> Position;

    /// Continues from `position` (taken from [`BatchReader::position`] of a reader of the
    /// same split), without reading the split from its start.
    fn seek(&mut self, position: Position) -> Result<()>;

    /// Malformed records skipped so far (only with an ignore option).
    fn skipped(&self) -> u64;
}

/// Encodes batches into one file. Not `Send`: orc-rust's encoder is not, and a sink's writer
/// lives on the subtask thread that opened it.
pub trait BatchWriter {
    /// Appends the rows of `batch`.
    fn write(&mut self, batch: &RecordBatch) -> Result<()>;

    /// Writes what the format puts at the end (a footer) and flushes. The file is complete
    /// only after this.
    fn finish(self: Box<Self>) -> Result<()>;
}

/// The format `config`'s `format` option names, with the options of that format.
pub fn from_config(config: &Configuration) -> Result<Arc<dyn Format>> {
    let name = config.get(&FORMAT)?.ok_or_else(|| riffle_api::ConfigError {
        key: FORMAT.key().into(),
        value: String::new(),
        reason: "no format given".into(),
    })?;
    by_name(&name, config)
}

/// The format called `name` (`csv`, `json`, `avro`, `parquet`, `orc`, `raw`), with the options
/// of that format in `config`. A panic in a decoder below it (some format crates still panic
/// on hostile files) is turned into a malformed-file error.
pub fn by_name(name: &str, config: &Configuration) -> Result<Arc<dyn Format>> {
    use guard::Guarded;
    Ok(match name.trim().to_ascii_lowercase().as_str() {
        "csv" => Arc::new(Guarded(csv::CsvFormat::from_config(config)?)),
        "json" => Arc::new(Guarded(json::JsonFormat::from_config(config)?)),
        "avro" => Arc::new(Guarded(avro::AvroFormat::from_config(config)?)),
        "parquet" => Arc::new(Guarded(parquet::ParquetFormat::from_config(config)?)),
        "orc" => Arc::new(Guarded(orc::OrcFormat::from_config(config)?)),
        "raw" => Arc::new(Guarded(text::TextFormat::from_config(config)?)),
        other => {
            return Err(riffle_api::ConfigError {
                key: FORMAT.key().into(),
                value: other.into(),
                reason: "unknown format (csv, json, avro, parquet, orc, raw)".into(),
            }
            .into())
        }
    })
}

/// Every format option, for the crate's `options()`.
pub(crate) fn options() -> Vec<&'static dyn riffle_api::OptionInfo> {
    let mut out: Vec<&'static dyn riffle_api::OptionInfo> = vec![&FORMAT, &BATCH_SIZE];
    out.extend(csv::options());
    out.extend(json::options());
    out.extend(avro::options());
    out.extend(parquet::options());
    out.extend(orc::options());
    out
}

/// The length of `path`.
pub(crate) fn file_len(path: &Path) -> Result<u64> {
    std::fs::metadata(path).map(|m| m.len()).map_err(|e| ConnectorError::io(path, e))
}

/// `Err` unless `got` has the fields (names and types) of the `declared` schema: a file whose
/// own schema disagrees with the source's.
pub(crate) fn check_schema(path: &Path, declared: &SchemaRef, got: &SchemaRef) -> Result<()> {
    let same = declared.fields().len() == got.fields().len()
        && declared
            .fields()
            .iter()
            .zip(got.fields())
            .all(|(d, g)| d.name() == g.name() && d.data_type() == g.data_type());
    if same {
        return Ok(());
    }
    let show = |s: &SchemaRef| {
        s.fields().iter().map(|f| format!("{}: {}", f.name(), f.data_type())).collect::<Vec<_>>().join(", ")
    };
    Err(ConnectorError::schema(path, format!("the file has ({}), the source declares ({})", show(got), show(declared))))
}

/// The single-byte value of a character option (`csv.field-delimiter`, ...), with Flink's
/// escapes `\t` and `\\`; errors name the key.
pub(crate) fn byte_option(key: &str, value: &str) -> Result<u8, riffle_api::ConfigError> {
    let v = match value {
        "\\t" => "\t",
        "\\\\" => "\\",
        v => v,
    };
    match v.as_bytes() {
        [b] if b.is_ascii() => Ok(*b),
        _ => Err(riffle_api::ConfigError {
            key: key.into(),
            value: value.into(),
            reason: "expected a single ASCII character".into(),
        }),
    }
}
