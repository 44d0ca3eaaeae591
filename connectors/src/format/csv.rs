//! CSV (`arrow-csv`) with Flink's option names. Files are split by byte range at line starts,
//! which needs one record per line: a quoted field holding a line break fails the read, naming
//! its line and `csv.allow-quoted-newlines`. With that option set, each file is one split (read
//! whole by one reader) and such records are read (Flink's CSV source never splits a file).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use riffle_api::{ConfigOption, Configuration, Group};

use crate::error::{ConnectorError, Result};
use crate::format::csv_records::QuoteRules;
use crate::format::line_based::{LineBatchReader, LineDecoder};
use crate::format::{byte_option, file_len, BatchReader, BatchWriter, Format, BATCH_SIZE};
use crate::split::{byte_range_splits, FileSplit};

/// Flink's `csv.field-delimiter`.
pub const FIELD_DELIMITER: ConfigOption<String> = ConfigOption::new(
    Group::Formats,
    "csv.field-delimiter",
    ",",
    "the CSV field delimiter, one character (`\\t` for a tab)",
);
/// Flink's `csv.quote-character`.
pub const QUOTE_CHARACTER: ConfigOption<String> =
    ConfigOption::new(Group::Formats, "csv.quote-character", "\"", "the character enclosing CSV field values");
/// Flink's `csv.disable-quote-character`.
pub const DISABLE_QUOTE_CHARACTER: ConfigOption<bool> = ConfigOption::new(
    Group::Formats,
    "csv.disable-quote-character",
    false,
    "no quoting of CSV values (then `csv.quote-character` is not used)",
);
/// Flink's `csv.allow-comments`.
pub const ALLOW_COMMENTS: ConfigOption<bool> = ConfigOption::new(
    Group::Formats,
    "csv.allow-comments",
    false,
    "CSV lines starting with `#` are comments and skipped",
);
/// Flink's `csv.ignore-parse-errors`.
pub const IGNORE_PARSE_ERRORS: ConfigOption<bool> = ConfigOption::new(
    Group::Formats,
    "csv.ignore-parse-errors",
    false,
    "a malformed CSV line is skipped and counted instead of failing the read",
);
/// Flink's `csv.null-literal`.
pub const NULL_LITERAL: ConfigOption<Option<String>> = ConfigOption::optional(
    Group::Formats,
    "csv.null-literal",
    "the CSV text that stands for null (read and written); unset: an empty field is null",
);
/// Flink's `csv.escape-character`.
pub const ESCAPE_CHARACTER: ConfigOption<Option<String>> =
    ConfigOption::optional(Group::Formats, "csv.escape-character", "the CSV escape character (none by default)");
/// riffle's: Flink's CSV format has no header line.
pub const HEADER: ConfigOption<bool> = ConfigOption::new(
    Group::Formats,
    "csv.header",
    false,
    "riffle's: the first line of a CSV file names the columns (skipped when reading, written when writing)",
);

/// riffle's: Flink's CSV source reads each file whole, riffle's splits them at line starts.
pub const ALLOW_QUOTED_NEWLINES: ConfigOption<bool> = ConfigOption::new(
    Group::Formats,
    "csv.allow-quoted-newlines",
    false,
    "riffle's: quoted CSV fields may hold line breaks; each file is then read whole by one reader instead of being split at line starts (unset, such a record fails the read naming its line)",
);

pub(crate) fn options() -> Vec<&'static dyn riffle_api::OptionInfo> {
    vec![
        &FIELD_DELIMITER,
        &QUOTE_CHARACTER,
        &DISABLE_QUOTE_CHARACTER,
        &ALLOW_COMMENTS,
        &IGNORE_PARSE_ERRORS,
        &NULL_LITERAL,
        &ESCAPE_CHARACTER,
        &HEADER,
        &ALLOW_QUOTED_NEWLINES,
    ]
}

/// Lines the schema is inferred from.
const INFER_RECORDS: usize = 1000;

/// CSV with its options.
#[derive(Debug, Clone)]
pub struct CsvFormat {
    delimiter: u8,
    quote: Option<u8>,
    escape: Option<u8>,
    comments: bool,
    ignore_parse_errors: bool,
    null_literal: Option<String>,
    header: bool,
    quoted_newlines: bool,
    batch_size: usize,
}

impl CsvFormat {
    /// The format with `config`'s options.
    pub fn from_config(config: &Configuration) -> Result<Self> {
        let delimiter = byte_option(FIELD_DELIMITER.key(), &config.get(&FIELD_DELIMITER)?)?;
        let quote = if config.get(&DISABLE_QUOTE_CHARACTER)? {
            None
        } else {
            Some(byte_option(QUOTE_CHARACTER.key(), &config.get(&QUOTE_CHARACTER)?)?)
        };
        let escape = config.get(&ESCAPE_CHARACTER)?.map(|e| byte_option(ESCAPE_CHARACTER.key(), &e)).transpose()?;
        Ok(Self {
            delimiter,
            quote,
            escape,
            comments: config.get(&ALLOW_COMMENTS)?,
            ignore_parse_errors: config.get(&IGNORE_PARSE_ERRORS)?,
            null_literal: config.get(&NULL_LITERAL)?,
            header: config.get(&HEADER)?,
            quoted_newlines: config.get(&ALLOW_QUOTED_NEWLINES)?,
            batch_size: config.get(&BATCH_SIZE)?,
        })
    }

    fn null_regex(&self) -> Option<regex::Regex> {
        // An escaped literal always compiles.
        self.null_literal.as_ref().and_then(|l| regex::Regex::new(&format!("^{}$", regex::escape(l))).ok())
    }

    fn reader_builder(&self, schema: SchemaRef, batch_size: usize) -> arrow_csv::ReaderBuilder {
        let mut b = arrow_csv::ReaderBuilder::new(schema)
            .with_header(false)
            .with_delimiter(self.delimiter)
            .with_batch_size(batch_size);
        // arrow-csv always quotes with some byte: a delimiter byte can never open a quote.
        b = b.with_quote(self.quote.unwrap_or(self.delimiter));
        if let Some(e) = self.escape {
            b = b.with_escape(e);
        }
        if self.comments {
            b = b.with_comment(b'#');
        }
        if let Some(r) = self.null_regex() {
            b = b.with_null_regex(r);
        }
        b
    }
}

impl Format for CsvFormat {
    fn name(&self) -> &'static str {
        "csv"
    }

    fn infer_schema(&self, path: &Path) -> Result<SchemaRef> {
        let file = std::fs::File::open(path).map_err(|e| ConnectorError::io(path, e))?;
        let mut f = arrow_csv::reader::Format::default()
            .with_header(self.header)
            .with_delimiter(self.delimiter)
            .with_quote(self.quote.unwrap_or(self.delimiter));
        if let Some(e) = self.escape {
            f = f.with_escape(e);
        }
        if self.comments {
            f = f.with_comment(b'#');
        }
        if let Some(r) = self.null_regex() {
            f = f.with_null_regex(r);
        }
        let (schema, _) = f
            .infer_schema(std::io::BufReader::new(file), Some(INFER_RECORDS))
            .map_err(|e| ConnectorError::schema(path, e))?;
        Ok(Arc::new(schema))
    }

    fn splits(&self, path: &Path, split_size: u64) -> Result<Vec<FileSplit>> {
        // A record may span lines: only a reader from the file's start knows where they are.
        let size = if self.quoted_newlines { u64::MAX } else { split_size };
        Ok(byte_range_splits(path, file_len(path)?, size))
    }

    fn open(&self, split: &FileSplit, schema: SchemaRef) -> Result<Box<dyn BatchReader>> {
        let decoder = CsvLineDecoder { format: self.clone(), schema: schema.clone() };
        let rules =
            QuoteRules { delimiter: self.delimiter, quote: self.quote, escape: self.escape, comments: self.comments };
        let reader =
            LineBatchReader::open(split, schema, decoder, self.batch_size, self.header, self.ignore_parse_errors)?;
        Ok(Box::new(reader.with_quotes(rules, self.quoted_newlines)))
    }

    fn writer(&self, path: &Path, out: Box<dyn Write + Send>, _schema: SchemaRef) -> Result<Box<dyn BatchWriter>> {
        let mut b = arrow_csv::WriterBuilder::new().with_header(self.header).with_delimiter(self.delimiter);
        if let Some(q) = self.quote {
            b = b.with_quote(q);
        }
        if let Some(e) = self.escape {
            b = b.with_escape(e).with_double_quote(false);
        }
        if let Some(n) = &self.null_literal {
            b = b.with_null(n.clone());
        }
        Ok(Box::new(CsvWriter { path: path.to_path_buf(), writer: b.build(out) }))
    }
}

struct CsvLineDecoder {
    format: CsvFormat,
    schema: SchemaRef,
}

/// arrow-csv's message without its "at line N": that count starts at the chunk it was handed,
/// and the error names the file's line itself.
fn reason(e: arrow::error::ArrowError) -> String {
    static AT_LINE: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    let text = e.to_string();
    match AT_LINE.get_or_init(|| regex::Regex::new(r" (at|for) line \d+").ok()) {
        Some(r) => r.replace_all(&text, "").into_owned(),
        None => text,
    }
}

impl LineDecoder for CsvLineDecoder {
    fn decode(&mut self, bytes: &[u8]) -> std::result::Result<RecordBatch, String> {
        // One batch for the whole chunk: at most one record per line.
        let lines = memchr::memchr_iter(b'\n', bytes).count() + 1;
        let mut d = self.format.reader_builder(self.schema.clone(), lines).build_decoder();
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = d.decode(rest).map_err(reason)?;
            if n == 0 {
                break;
            }
            rest = &rest[n..];
        }
        // An empty buffer ends the input: a last line without a terminator is a record too.
        d.decode(&[]).map_err(reason)?;
        Ok(d.flush().map_err(reason)?.unwrap_or_else(|| RecordBatch::new_empty(self.schema.clone())))
    }
}

struct CsvWriter {
    path: PathBuf,
    writer: arrow_csv::Writer<Box<dyn Write + Send>>,
}

impl BatchWriter for CsvWriter {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer.write(batch).map_err(|e| ConnectorError::encode(&self.path, e))
    }

    fn finish(self: Box<Self>) -> Result<()> {
        let path = self.path;
        self.writer.into_inner().flush().map_err(|e| ConnectorError::io(&path, e))
    }
}
