//! Avro object container files (`arrow-avro`). Split by byte range realigned to sync markers:
//! a block belongs to the split its first byte is in (a block starts right after the header or
//! after a sync marker), so a reader of `[start, end)` looks for the first sync marker ending
//! at or after `start` and reads the blocks starting before `end`. A position is a block's
//! offset and the records of it already read.

use std::fs::File;
use std::io::{BufReader, Cursor, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow_avro::compression::CompressionCodec;
use arrow_avro::reader::{read_header_info, Reader, ReaderBuilder};
use arrow_avro::writer::{AvroWriter, WriterBuilder};
use riffle_api::{ConfigOption, Configuration, Group};

use crate::error::{ConnectorError, Location, Result};
use crate::format::{check_schema, file_len, BatchReader, BatchWriter, Format, BATCH_SIZE};
use crate::split::{byte_range_splits, FileSplit, Position};

/// Flink's `avro.codec`.
pub const CODEC: ConfigOption<String> = ConfigOption::new(
    Group::Formats,
    "avro.codec",
    "snappy",
    "the Avro codec of files written: `null`, `deflate`, `snappy` or `zstandard` (the same are read)",
);

pub(crate) fn options() -> Vec<&'static dyn riffle_api::OptionInfo> {
    vec![&CODEC]
}

/// Avro object container files with their options.
#[derive(Debug, Clone)]
pub struct AvroFormat {
    codec: Option<CompressionCodec>,
    batch_size: usize,
}

impl AvroFormat {
    /// The format with `config`'s options.
    pub fn from_config(config: &Configuration) -> Result<Self> {
        let name = config.get(&CODEC)?;
        let codec = match name.trim().to_ascii_lowercase().as_str() {
            "null" | "none" => None,
            "deflate" => Some(CompressionCodec::Deflate),
            "snappy" => Some(CompressionCodec::Snappy),
            "zstandard" | "zstd" => Some(CompressionCodec::ZStandard),
            _ => {
                return Err(riffle_api::ConfigError {
                    key: CODEC.key().into(),
                    value: name,
                    reason: "expected null, deflate, snappy or zstandard".into(),
                }
                .into())
            }
        };
        Ok(Self { codec, batch_size: config.get(&BATCH_SIZE)?.max(1) })
    }
}

/// What a split reader needs of the file's header.
struct Header {
    bytes: Vec<u8>,
    sync: [u8; 16],
}

fn read_header(path: &Path) -> Result<Header> {
    let mut file = File::open(path).map_err(|e| ConnectorError::io(path, e))?;
    let info =
        read_header_info(BufReader::new(&mut file)).map_err(|e| ConnectorError::malformed(path, Location::File, e))?;
    let len = usize::try_from(info.header_len()).map_err(|e| ConnectorError::malformed(path, Location::File, e))?;
    let mut bytes = vec![0; len];
    file.seek(SeekFrom::Start(0)).map_err(|e| ConnectorError::io(path, e))?;
    file.read_exact(&mut bytes).map_err(|e| ConnectorError::io(path, e))?;
    Ok(Header { bytes, sync: info.sync() })
}

impl Format for AvroFormat {
    fn name(&self) -> &'static str {
        "avro"
    }

    fn infer_schema(&self, path: &Path) -> Result<SchemaRef> {
        let file = File::open(path).map_err(|e| ConnectorError::io(path, e))?;
        let reader = ReaderBuilder::new()
            .build(BufReader::new(file))
            .map_err(|e| ConnectorError::malformed(path, Location::File, e))?;
        Ok(reader.schema())
    }

    fn splits(&self, path: &Path, split_size: u64) -> Result<Vec<FileSplit>> {
        Ok(byte_range_splits(path, file_len(path)?, split_size))
    }

    fn open(&self, split: &FileSplit, schema: SchemaRef) -> Result<Box<dyn BatchReader>> {
        let path = &split.path;
        let header = read_header(path)?;
        let len = file_len(path)?;
        let header_len = header.bytes.len() as u64;
        let first = if split.start <= header_len {
            Some(header_len)
        } else {
            find_sync(path, &header.sync, split.start - 16, split.end)?.map(|p| p + 16)
        };
        let blocks = match first {
            Some(first) => walk_blocks(path, &header.sync, first, split.end, len)?,
            None => Vec::new(),
        };
        let data_end = blocks.last().map_or(split.start.max(header_len), |b| b.end);
        let mut r = AvroSplitReader {
            split: split.clone(),
            schema,
            batch_size: self.batch_size,
            header,
            blocks,
            data_end,
            reader: None,
            block: 0,
            row: 0,
            pending_skip: 0,
        };
        let start = r.blocks.first().map_or(data_end, |b| b.start);
        r.seek(Position::new(start, 0))?;
        Ok(Box::new(r))
    }

    fn writer(&self, path: &Path, out: Box<dyn Write + Send>, schema: SchemaRef) -> Result<Box<dyn BatchWriter>> {
        let writer = WriterBuilder::new(schema.as_ref().clone())
            .with_compression(self.codec)
            .build(out)
            .map_err(|e| ConnectorError::encode(path, e))?;
        Ok(Box::new(AvroFileWriter { path: path.to_path_buf(), writer }))
    }
}

/// One block of an Avro file: where it starts, where the next one does, its records.
#[derive(Debug, Clone, Copy)]
struct Block {
    start: u64,
    end: u64,
    count: u64,
}

/// The offset of the first sync marker at or after `from` that ends before `end`, if any.
fn find_sync(path: &Path, sync: &[u8; 16], from: u64, end: u64) -> Result<Option<u64>> {
    let mut file = File::open(path).map_err(|e| ConnectorError::io(path, e))?;
    file.seek(SeekFrom::Start(from)).map_err(|e| ConnectorError::io(path, e))?;
    let mut buf = Vec::with_capacity(1 << 16);
    let mut buf_offset = from;
    let finder = memchr::memmem::Finder::new(sync);
    loop {
        if buf_offset + 16 >= end {
            return Ok(None);
        }
        let keep = buf.len().saturating_sub(15);
        buf.drain(..keep);
        buf_offset += keep as u64;
        let mut chunk = [0u8; 1 << 16];
        let n = file.read(&mut chunk).map_err(|e| ConnectorError::io(path, e))?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = finder.find(&buf) {
            let at = buf_offset + i as u64;
            return Ok((at + 16 < end).then_some(at));
        }
    }
}

/// Zig-zag varint of Avro's `long`.
fn read_long(r: &mut impl Read) -> std::io::Result<(i64, u64)> {
    let (mut value, mut shift, mut read) = (0u64, 0u32, 0u64);
    loop {
        let mut b = [0u8];
        r.read_exact(&mut b)?;
        read += 1;
        if shift >= 64 {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "varint too long"));
        }
        value |= u64::from(b[0] & 0x7f) << shift;
        if b[0] & 0x80 == 0 {
            return Ok((((value >> 1) as i64) ^ -((value & 1) as i64), read));
        }
        shift += 7;
    }
}

/// The blocks starting in `[first, end)`, each checked to be whole and to end with the sync.
fn walk_blocks(path: &Path, sync: &[u8; 16], first: u64, end: u64, len: u64) -> Result<Vec<Block>> {
    let file = File::open(path).map_err(|e| ConnectorError::io(path, e))?;
    let mut r = BufReader::with_capacity(64, file);
    let mut out = Vec::new();
    let mut at = first;
    while at < end && at < len {
        let bad = |reason: String| ConnectorError::malformed(path, Location::Offset(at), reason);
        r.seek(SeekFrom::Start(at)).map_err(|e| ConnectorError::io(path, e))?;
        let (count, n1) = read_long(&mut r).map_err(|e| bad(format!("block header: {e}")))?;
        let (size, n2) = read_long(&mut r).map_err(|e| bad(format!("block header: {e}")))?;
        if count < 0 || size < 0 {
            return Err(bad(format!("negative block count {count} or size {size}")));
        }
        let sync_at = at.saturating_add(n1 + n2).saturating_add(size as u64);
        if sync_at.saturating_add(16) > len {
            return Err(bad(format!("block of {size} bytes runs past the end of the file ({len} bytes)")));
        }
        r.seek(SeekFrom::Start(sync_at)).map_err(|e| ConnectorError::io(path, e))?;
        let mut marker = [0u8; 16];
        r.read_exact(&mut marker).map_err(|e| ConnectorError::io(path, e))?;
        if &marker != sync {
            return Err(bad("the block does not end with the file's sync marker".into()));
        }
        out.push(Block { start: at, end: sync_at + 16, count: count as u64 });
        at = sync_at + 16;
    }
    Ok(out)
}

type BlockStream = BufReader<std::io::Chain<Cursor<Vec<u8>>, std::io::Take<File>>>;

struct AvroSplitReader {
    split: FileSplit,
    schema: SchemaRef,
    batch_size: usize,
    header: Header,
    blocks: Vec<Block>,
    /// The end of the split's last block.
    data_end: u64,
    reader: Option<Reader<BlockStream>>,
    /// The block of the next record (an index in `blocks`; `blocks.len()` at the end).
    block: usize,
    /// Records of that block already returned.
    row: u64,
    /// Records the reader still decodes but must not return (a seek inside a block).
    pending_skip: u64,
}

impl AvroSplitReader {
    fn advance(&mut self, mut n: u64) {
        while let Some(b) = self.blocks.get(self.block) {
            let left = b.count - self.row;
            if n < left {
                self.row += n;
                return;
            }
            n -= left;
            self.block += 1;
            self.row = 0;
        }
    }

    fn location(&self) -> Location {
        Location::Offset(self.blocks.get(self.block).map_or(self.data_end, |b| b.start))
    }
}

impl BatchReader for AvroSplitReader {
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
            Some(Err(e)) => Err(ConnectorError::malformed(&self.split.path, self.location(), e)),
            Some(Ok(batch)) => {
                // A seek lands inside a block: drop the records before the position.
                let skip = self.pending_skip.min(batch.num_rows() as u64);
                self.pending_skip -= skip;
                let batch = batch.slice(skip as usize, batch.num_rows() - skip as usize);
                self.advance(batch.num_rows() as u64);
                if batch.num_rows() == 0 {
                    return self.next_batch();
                }
                Ok(Some(batch))
            }
        }
    }

    fn position(&self) -> Position {
        Position::new(self.blocks.get(self.block).map_or(self.data_end, |b| b.start), self.row)
    }

    fn seek(&mut self, position: Position) -> Result<()> {
        let path = &self.split.path;
        let idx = self.blocks.iter().position(|b| b.start == position.offset);
        let at_end = position.offset == self.data_end && position.row == 0;
        let valid = at_end || idx.is_some_and(|i| position.row < self.blocks[i].count.max(1));
        if !valid {
            return Err(ConnectorError::Seek {
                path: path.clone(),
                position: position.to_string(),
                reason: format!("not a block start of the split {}", self.split.id()),
            });
        }
        self.block = idx.unwrap_or(self.blocks.len());
        self.row = if at_end { 0 } else { position.row };
        self.pending_skip = self.row;
        self.reader = None;
        let mut file = File::open(path).map_err(|e| ConnectorError::io(path, e))?;
        file.seek(SeekFrom::Start(position.offset)).map_err(|e| ConnectorError::io(path, e))?;
        let blocks = file.take(self.data_end.saturating_sub(position.offset));
        let stream = BufReader::with_capacity(256 * 1024, Cursor::new(self.header.bytes.clone()).chain(blocks));
        let reader = ReaderBuilder::new()
            .with_batch_size(self.batch_size)
            .build(stream)
            .map_err(|e| ConnectorError::malformed(path, Location::File, e))?;
        check_schema(path, &self.schema, &reader.schema())?;
        if self.block < self.blocks.len() {
            self.reader = Some(reader);
        }
        Ok(())
    }

    fn skipped(&self) -> u64 {
        0
    }
}

struct AvroFileWriter {
    path: PathBuf,
    writer: AvroWriter<Box<dyn Write + Send>>,
}

impl BatchWriter for AvroFileWriter {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer.write(batch).map_err(|e| ConnectorError::encode(&self.path, e))
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        self.writer.finish().map_err(|e| ConnectorError::encode(&self.path, e))?;
        self.writer.into_inner().flush().map_err(|e| ConnectorError::io(&self.path, e))
    }
}
