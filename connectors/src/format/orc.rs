//! ORC (`orc-rust`). Split by stripe; a position is a stripe and the rows of it already read.
//! Timestamps are read at microsecond precision (Flink's `TIMESTAMP(6)`). orc-rust writes no
//! decimal, list, map or struct columns yet; it reads them.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use orc_rust::arrow_reader::{ArrowReader, ArrowReaderBuilder};
use orc_rust::arrow_writer::{ArrowWriter, ArrowWriterBuilder};
use orc_rust::compression::CompressionType;
use orc_rust::row_selection::{RowSelection, RowSelector};
use orc_rust::schema::TimestampPrecision;
use riffle_api::{ConfigOption, Configuration, Group, MemorySize};

use crate::error::{ConnectorError, Location, Result};
use crate::format::{check_schema, BatchReader, BatchWriter, Format, BATCH_SIZE};
use crate::split::{FileSplit, Position, SplitUnit};

/// ORC's `orc.compress`, which Flink passes through.
pub const COMPRESS: ConfigOption<String> = ConfigOption::new(
    Group::Formats,
    "orc.compress",
    "ZLIB",
    "the ORC codec of files written: `NONE`, `ZLIB`, `SNAPPY`, `LZ4` or `ZSTD` (all of them and LZO are read)",
);
/// ORC's `orc.stripe.size`.
pub const STRIPE_SIZE: ConfigOption<MemorySize> = ConfigOption::new(
    Group::Formats,
    "orc.stripe.size",
    MemorySize::mib(64),
    "the approximate size of a stripe of an ORC file written (a stripe is the unit of a split)",
);

pub(crate) fn options() -> Vec<&'static dyn riffle_api::OptionInfo> {
    vec![&COMPRESS, &STRIPE_SIZE]
}

/// ORC with its options.
#[derive(Debug, Clone)]
pub struct OrcFormat {
    compression: Option<CompressionType>,
    stripe_size: usize,
    batch_size: usize,
}

impl OrcFormat {
    /// The format with `config`'s options.
    pub fn from_config(config: &Configuration) -> Result<Self> {
        let name = config.get(&COMPRESS)?;
        let compression = match name.trim().to_ascii_uppercase().as_str() {
            "NONE" | "UNCOMPRESSED" => None,
            "ZLIB" => Some(CompressionType::Zlib),
            "SNAPPY" => Some(CompressionType::Snappy),
            "LZ4" => Some(CompressionType::Lz4),
            "ZSTD" => Some(CompressionType::Zstd),
            _ => {
                return Err(riffle_api::ConfigError {
                    key: COMPRESS.key().into(),
                    value: name,
                    reason: "expected NONE, ZLIB, SNAPPY, LZ4 or ZSTD".into(),
                }
                .into())
            }
        };
        Ok(Self {
            compression,
            stripe_size: config.get(&STRIPE_SIZE)?.as_bytes().max(1),
            batch_size: config.get(&BATCH_SIZE)?.max(1),
        })
    }
}

fn builder(path: &Path) -> Result<ArrowReaderBuilder<File>> {
    let file = File::open(path).map_err(|e| ConnectorError::io(path, e))?;
    let b = ArrowReaderBuilder::try_new(file).map_err(|e| ConnectorError::malformed(path, Location::File, e))?;
    Ok(b.with_timestamp_precision(TimestampPrecision::Microsecond))
}

impl Format for OrcFormat {
    fn name(&self) -> &'static str {
        "orc"
    }

    fn infer_schema(&self, path: &Path) -> Result<SchemaRef> {
        Ok(builder(path)?.schema())
    }

    fn splits(&self, path: &Path, split_size: u64) -> Result<Vec<FileSplit>> {
        let b = builder(path)?;
        let stripes = b.file_metadata().stripe_metadatas();
        let mut out = Vec::new();
        let (mut start, mut bytes) = (0u64, 0u64);
        for (i, s) in stripes.iter().enumerate() {
            bytes += s.index_length() + s.data_length() + s.footer_length();
            if bytes >= split_size || i + 1 == stripes.len() {
                out.push(FileSplit::new(path, start, i as u64 + 1, SplitUnit::Stripes));
                (start, bytes) = (i as u64 + 1, 0);
            }
        }
        Ok(out)
    }

    fn open(&self, split: &FileSplit, schema: SchemaRef) -> Result<Box<dyn BatchReader>> {
        let mut r = OrcSplitReader {
            split: split.clone(),
            schema,
            batch_size: self.batch_size,
            stripe_rows: Vec::new(),
            reader: None,
            position: Position::new(split.start, 0),
        };
        r.seek(Position::new(split.start, 0))?;
        Ok(Box::new(r))
    }

    fn writer(&self, path: &Path, out: Box<dyn Write + Send>, schema: SchemaRef) -> Result<Box<dyn BatchWriter>> {
        let out = SharedOut(std::sync::Arc::new(std::sync::Mutex::new(out)));
        let mut b = ArrowWriterBuilder::new(out.clone(), schema).with_stripe_byte_size(self.stripe_size);
        if let Some(c) = self.compression {
            b = b.with_compression(c);
        }
        let writer = b.try_build().map_err(|e| ConnectorError::encode(path, e))?;
        Ok(Box::new(OrcWriter { path: path.to_path_buf(), writer, out }))
    }
}

struct OrcSplitReader {
    split: FileSplit,
    schema: SchemaRef,
    batch_size: usize,
    /// Rows of each stripe of the split, `split.start` first.
    stripe_rows: Vec<u64>,
    reader: Option<ArrowReader<File>>,
    position: Position,
}

impl OrcSplitReader {
    fn advance(&mut self, n: u64) {
        self.position.advance_units(n, self.split.start, &self.stripe_rows);
    }

    fn skip_empty_stripes(&mut self) {
        self.position.skip_empty_units(self.split.start, &self.stripe_rows);
    }
}

impl BatchReader for OrcSplitReader {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let Some(reader) = self.reader.as_mut() else { return Ok(None) };
        match reader.next() {
            None => {
                self.reader = None;
                Ok(None)
            }
            Some(Err(e)) => Err(ConnectorError::malformed(&self.split.path, Location::Stripe(self.position.offset), e)),
            Some(Ok(batch)) => {
                self.advance(batch.num_rows() as u64);
                Ok(Some(batch))
            }
        }
    }

    fn position(&self) -> Position {
        self.position
    }

    fn seek(&mut self, position: Position) -> Result<()> {
        let path = &self.split.path;
        let b = builder(path)?;
        check_schema(path, &self.schema, &b.schema())?;
        let stripes = b.file_metadata().stripe_metadatas().to_vec();
        let end = self.split.end.min(stripes.len() as u64);
        let in_split = position.offset >= self.split.start && position.offset <= end;
        let rows_there = stripes.get(position.offset as usize).map_or(0, |s| s.number_of_rows());
        if !in_split
            || (position.offset < end && position.row > rows_there)
            || (position.offset == end && position.row > 0)
        {
            return Err(ConnectorError::Seek {
                path: path.clone(),
                position: position.to_string(),
                reason: format!("not a row of the split {}", self.split.id()),
            });
        }
        self.stripe_rows = (self.split.start.min(end)..end).map(|i| stripes[i as usize].number_of_rows()).collect();
        self.position = position;
        self.reader = if position.offset < end {
            // Stripes are selected by the byte offset they start at.
            let from = stripes[position.offset as usize].offset() as usize;
            let to = stripes[end as usize - 1].offset() as usize + 1;
            let left: u64 = self.stripe_rows[(position.offset - self.split.start) as usize..].iter().sum();
            let selection: RowSelection =
                vec![RowSelector::skip(position.row as usize), RowSelector::select((left - position.row) as usize)]
                    .into();
            Some(
                b.with_file_byte_range(from..to).with_row_selection(selection).with_batch_size(self.batch_size).build(),
            )
        } else {
            None
        };
        self.skip_empty_stripes();
        Ok(())
    }

    fn skipped(&self) -> u64 {
        0
    }
}

/// The output, also held by the writer: orc-rust's `close` drops its writer unflushed, and a
/// buffered file's flush error must not be lost in a drop.
#[derive(Clone)]
struct SharedOut(std::sync::Arc<std::sync::Mutex<Box<dyn Write + Send>>>);

impl Write for SharedOut {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.flush()
    }
}

struct OrcWriter {
    path: PathBuf,
    writer: ArrowWriter<SharedOut>,
    out: SharedOut,
}

impl BatchWriter for OrcWriter {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer.write(batch).map_err(|e| ConnectorError::encode(&self.path, e))
    }

    fn finish(self: Box<Self>) -> Result<()> {
        let (path, mut out) = (self.path, self.out);
        self.writer.close().map_err(|e| ConnectorError::encode(&path, e))?;
        out.flush().map_err(|e| ConnectorError::io(&path, e))
    }
}
