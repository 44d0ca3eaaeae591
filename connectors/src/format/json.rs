//! Newline-delimited JSON (`arrow-json`) with Flink's option names: one object per line,
//! files split by byte range at line starts.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow_json::writer::LineDelimited;
use riffle_api::{ConfigOption, Configuration, Group};

use crate::error::{ConnectorError, Result};
use crate::format::line_based::{LineBatchReader, LineDecoder};
use crate::format::{file_len, BatchReader, BatchWriter, Format, BATCH_SIZE};
use crate::split::{byte_range_splits, FileSplit};

/// Flink's `json.ignore-parse-errors`.
pub const IGNORE_PARSE_ERRORS: ConfigOption<bool> = ConfigOption::new(
    Group::Formats,
    "json.ignore-parse-errors",
    false,
    "a malformed JSON line is skipped and counted instead of failing the read",
);
/// Flink's `json.fail-on-missing-field`.
pub const FAIL_ON_MISSING_FIELD: ConfigOption<bool> = ConfigOption::new(
    Group::Formats,
    "json.fail-on-missing-field",
    false,
    "a JSON object without one of the schema's fields is malformed (otherwise the field is null)",
);
/// Flink's `json.timestamp-format.standard`.
pub const TIMESTAMP_FORMAT_STANDARD: ConfigOption<String> = ConfigOption::new(
    Group::Formats,
    "json.timestamp-format.standard",
    "SQL",
    "how JSON timestamps are written: `SQL` (`2026-12-03 07:00:00.123`) or `ISO-8601` (`2026-12-03T07:00:00.123`); both are read",
);

pub(crate) fn options() -> Vec<&'static dyn riffle_api::OptionInfo> {
    vec![&IGNORE_PARSE_ERRORS, &FAIL_ON_MISSING_FIELD, &TIMESTAMP_FORMAT_STANDARD]
}

/// Lines the schema is inferred from.
const INFER_RECORDS: usize = 1000;

/// How timestamps are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampStandard {
    /// `yyyy-MM-dd HH:mm:ss.s{precision}`.
    Sql,
    /// `yyyy-MM-ddTHH:mm:ss.s{precision}`.
    Iso8601,
}

/// Newline-delimited JSON with its options.
#[derive(Debug, Clone)]
pub struct JsonFormat {
    ignore_parse_errors: bool,
    fail_on_missing_field: bool,
    timestamps: TimestampStandard,
    batch_size: usize,
}

impl JsonFormat {
    /// The format with `config`'s options. As in Flink, ignoring parse errors and failing on
    /// a missing field contradict each other.
    pub fn from_config(config: &Configuration) -> Result<Self> {
        let ignore_parse_errors = config.get(&IGNORE_PARSE_ERRORS)?;
        let fail_on_missing_field = config.get(&FAIL_ON_MISSING_FIELD)?;
        if ignore_parse_errors && fail_on_missing_field {
            return Err(riffle_api::ConfigError {
                key: FAIL_ON_MISSING_FIELD.key().into(),
                value: "true".into(),
                reason: format!("cannot be true together with {}", IGNORE_PARSE_ERRORS.key()),
            }
            .into());
        }
        let standard = config.get(&TIMESTAMP_FORMAT_STANDARD)?;
        let timestamps = match standard.trim().to_ascii_uppercase().as_str() {
            "SQL" => TimestampStandard::Sql,
            "ISO-8601" => TimestampStandard::Iso8601,
            _ => {
                return Err(riffle_api::ConfigError {
                    key: TIMESTAMP_FORMAT_STANDARD.key().into(),
                    value: standard,
                    reason: "expected SQL or ISO-8601".into(),
                }
                .into())
            }
        };
        Ok(Self { ignore_parse_errors, fail_on_missing_field, timestamps, batch_size: config.get(&BATCH_SIZE)? })
    }
}

impl Format for JsonFormat {
    fn name(&self) -> &'static str {
        "json"
    }

    fn infer_schema(&self, path: &Path) -> Result<SchemaRef> {
        let file = std::fs::File::open(path).map_err(|e| ConnectorError::io(path, e))?;
        let (schema, _) = arrow_json::reader::infer_json_schema(std::io::BufReader::new(file), Some(INFER_RECORDS))
            .map_err(|e| ConnectorError::schema(path, e))?;
        Ok(Arc::new(schema))
    }

    fn splits(&self, path: &Path, split_size: u64) -> Result<Vec<FileSplit>> {
        Ok(byte_range_splits(path, file_len(path)?, split_size))
    }

    fn open(&self, split: &FileSplit, schema: SchemaRef) -> Result<Box<dyn BatchReader>> {
        let decoder = JsonLineDecoder { schema: schema.clone(), fail_on_missing_field: self.fail_on_missing_field };
        Ok(Box::new(LineBatchReader::open(split, schema, decoder, self.batch_size, false, self.ignore_parse_errors)?))
    }

    fn writer(&self, path: &Path, out: Box<dyn Write + Send>, _schema: SchemaRef) -> Result<Box<dyn BatchWriter>> {
        let (ts, tz) = match self.timestamps {
            TimestampStandard::Sql => ("%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f%:z"),
            TimestampStandard::Iso8601 => ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f%:z"),
        };
        let writer = arrow_json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .with_timestamp_format(ts.into())
            .with_timestamp_tz_format(tz.into())
            .build::<_, LineDelimited>(out);
        Ok(Box::new(JsonWriter { path: path.to_path_buf(), writer }))
    }
}

struct JsonLineDecoder {
    schema: SchemaRef,
    fail_on_missing_field: bool,
}

impl JsonLineDecoder {
    /// `Err` naming the first of the schema's fields some object in `bytes` lacks.
    fn check_fields(&self, bytes: &[u8]) -> std::result::Result<(), String> {
        let stream = serde_json::Deserializer::from_slice(bytes)
            .into_iter::<std::collections::HashMap<String, serde::de::IgnoredAny>>();
        for object in stream {
            let object = object.map_err(|e| e.to_string())?;
            if let Some(f) = self.schema.fields().iter().find(|f| !object.contains_key(f.name())) {
                return Err(format!("missing field '{}'", f.name()));
            }
        }
        Ok(())
    }
}

impl LineDecoder for JsonLineDecoder {
    fn decode(&mut self, bytes: &[u8]) -> std::result::Result<RecordBatch, String> {
        if self.fail_on_missing_field {
            self.check_fields(bytes)?;
        }
        let lines = memchr::memchr_iter(b'\n', bytes).count() + 1;
        let mut d = arrow_json::ReaderBuilder::new(self.schema.clone())
            .with_batch_size(lines)
            .build_decoder()
            .map_err(|e| e.to_string())?;
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = d.decode(rest).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            rest = &rest[n..];
        }
        if d.has_partial_record() {
            return Err("incomplete JSON object at the end of the line".into());
        }
        Ok(d.flush().map_err(|e| e.to_string())?.unwrap_or_else(|| RecordBatch::new_empty(self.schema.clone())))
    }
}

struct JsonWriter {
    path: PathBuf,
    writer: arrow_json::Writer<Box<dyn Write + Send>, LineDelimited>,
}

impl BatchWriter for JsonWriter {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer.write(batch).map_err(|e| ConnectorError::encode(&self.path, e))
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        self.writer.finish().map_err(|e| ConnectorError::encode(&self.path, e))?;
        self.writer.into_inner().flush().map_err(|e| ConnectorError::io(&self.path, e))
    }
}
