//! Parquet (the `parquet` crate's Arrow reader and writer). Split by row group; a position is
//! a row group and the rows of it already read.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;
use riffle_api::{ConfigOption, Configuration, Group};

use crate::error::{ConnectorError, Location, Result};
use crate::format::{check_schema, BatchReader, BatchWriter, Format, BATCH_SIZE};
use crate::split::{FileSplit, Position, SplitUnit};

/// parquet-mr's `parquet.compression`, which Flink passes through.
pub const COMPRESSION: ConfigOption<String> = ConfigOption::new(
    Group::Formats,
    "parquet.compression",
    "SNAPPY",
    "the Parquet codec of files written: `UNCOMPRESSED`, `SNAPPY`, `GZIP`, `ZSTD` or `LZ4_RAW` (the same are read; not BROTLI or LZO)",
);
/// riffle's: parquet-mr sizes row groups in bytes (`parquet.block.size`), the Rust writer in rows.
pub const MAX_ROW_GROUP_SIZE: ConfigOption<usize> = ConfigOption::new(
    Group::Formats,
    "parquet.max-row-group-size",
    1024 * 1024,
    "riffle's: the most rows in one row group of a Parquet file written (a row group is the unit of a split)",
);

pub(crate) fn options() -> Vec<&'static dyn riffle_api::OptionInfo> {
    vec![&COMPRESSION, &MAX_ROW_GROUP_SIZE]
}

/// Parquet with its options.
#[derive(Debug, Clone)]
pub struct ParquetFormat {
    compression: Compression,
    max_row_group_size: usize,
    batch_size: usize,
}

impl ParquetFormat {
    /// The format with `config`'s options.
    pub fn from_config(config: &Configuration) -> Result<Self> {
        let name = config.get(&COMPRESSION)?;
        let compression = match name.trim().to_ascii_uppercase().as_str() {
            "UNCOMPRESSED" | "NONE" => Compression::UNCOMPRESSED,
            "SNAPPY" => Compression::SNAPPY,
            "ZSTD" => Compression::ZSTD(ZstdLevel::default()),
            "GZIP" => Compression::GZIP(GzipLevel::default()),
            "LZ4_RAW" | "LZ4" => Compression::LZ4_RAW,
            _ => {
                return Err(riffle_api::ConfigError {
                    key: COMPRESSION.key().into(),
                    value: name,
                    reason: "expected UNCOMPRESSED, SNAPPY, GZIP, ZSTD or LZ4_RAW".into(),
                }
                .into())
            }
        };
        Ok(Self {
            compression,
            max_row_group_size: config.get(&MAX_ROW_GROUP_SIZE)?.max(1),
            batch_size: config.get(&BATCH_SIZE)?.max(1),
        })
    }
}

fn builder(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>> {
    let file = File::open(path).map_err(|e| ConnectorError::io(path, e))?;
    ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| ConnectorError::malformed(path, Location::File, e))
}

impl Format for ParquetFormat {
    fn name(&self) -> &'static str {
        "parquet"
    }

    fn infer_schema(&self, path: &Path) -> Result<SchemaRef> {
        Ok(builder(path)?.schema().clone())
    }

    fn splits(&self, path: &Path, split_size: u64) -> Result<Vec<FileSplit>> {
        let b = builder(path)?;
        let mut out = Vec::new();
        let (mut start, mut bytes) = (0u64, 0u64);
        let groups = b.metadata().row_groups();
        for (i, g) in groups.iter().enumerate() {
            bytes += u64::try_from(g.compressed_size()).unwrap_or(0);
            if bytes >= split_size || i + 1 == groups.len() {
                out.push(FileSplit::new(path, start, i as u64 + 1, SplitUnit::RowGroups));
                (start, bytes) = (i as u64 + 1, 0);
            }
        }
        Ok(out)
    }

    fn open(&self, split: &FileSplit, schema: SchemaRef) -> Result<Box<dyn BatchReader>> {
        let mut r = ParquetSplitReader {
            split: split.clone(),
            schema,
            batch_size: self.batch_size,
            group_rows: Vec::new(),
            reader: None,
            position: Position::new(split.start, 0),
        };
        r.seek(Position::new(split.start, 0))?;
        Ok(Box::new(r))
    }

    fn writer(&self, path: &Path, out: Box<dyn Write + Send>, schema: SchemaRef) -> Result<Box<dyn BatchWriter>> {
        let props = WriterProperties::builder()
            .set_compression(self.compression)
            .set_max_row_group_row_count(Some(self.max_row_group_size))
            .build();
        let writer = ArrowWriter::try_new(out, schema, Some(props)).map_err(|e| ConnectorError::encode(path, e))?;
        Ok(Box::new(ParquetWriter { path: path.to_path_buf(), writer }))
    }
}

struct ParquetSplitReader {
    split: FileSplit,
    schema: SchemaRef,
    batch_size: usize,
    /// Rows of each row group of the split, `split.start` first.
    group_rows: Vec<u64>,
    reader: Option<ParquetRecordBatchReader>,
    position: Position,
}

impl ParquetSplitReader {
    /// Moves the position `n` rows on, across row groups.
    fn advance(&mut self, n: u64) {
        self.position.advance_units(n, self.split.start, &self.group_rows);
    }

    fn skip_empty_groups(&mut self) {
        self.position.skip_empty_units(self.split.start, &self.group_rows);
    }
}

impl BatchReader for ParquetSplitReader {
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
            Some(Err(e)) => {
                Err(ConnectorError::malformed(&self.split.path, Location::RowGroup(self.position.offset), e))
            }
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
        check_schema(path, &self.schema, b.schema())?;
        let groups = b.metadata().row_groups();
        let end = self.split.end.min(groups.len() as u64);
        let in_split = position.offset >= self.split.start && position.offset <= end;
        let rows_there = groups.get(position.offset as usize).map_or(0, |g| g.num_rows().max(0) as u64);
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
        self.group_rows =
            (self.split.start.min(end)..end).map(|i| groups[i as usize].num_rows().max(0) as u64).collect();
        let b = b
            .with_row_groups((position.offset..end).map(|i| i as usize).collect())
            .with_offset(position.row as usize)
            .with_batch_size(self.batch_size);
        self.reader =
            Some(b.build().map_err(|e| ConnectorError::malformed(path, Location::RowGroup(position.offset), e))?);
        self.position = position;
        self.skip_empty_groups();
        Ok(())
    }

    fn skipped(&self) -> u64 {
        0
    }
}

struct ParquetWriter {
    path: PathBuf,
    writer: ArrowWriter<Box<dyn Write + Send>>,
}

impl BatchWriter for ParquetWriter {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer.write(batch).map_err(|e| ConnectorError::encode(&self.path, e))
    }

    fn finish(self: Box<Self>) -> Result<()> {
        let path = self.path;
        let mut out = self.writer.into_inner().map_err(|e| ConnectorError::encode(&path, e))?;
        out.flush().map_err(|e| ConnectorError::io(&path, e))
    }
}
