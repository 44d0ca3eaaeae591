//! The reader shared by the line-based formats (raw text, CSV, JSON): lines of a split in
//! chunks of `source.batch-size`, each chunk decoded at once into one batch. When a chunk fails
//! to decode, its lines are decoded one by one to find the malformed one: an error naming its
//! line, or (with the format's ignore option) the line is skipped and counted. A position is
//! the offset of the next line, since a batch always ends at a line end.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use crate::error::{ConnectorError, Location, Result};
use crate::format::csv_records::{QuoteRules, RecordScanner};
use crate::format::BatchReader;
use crate::lines::{line_number, LineChunk, LineReader};
use crate::split::{FileSplit, Position};

/// Turns whole lines into rows: the part each line-based format brings.
pub(crate) trait LineDecoder: Send {
    /// Decodes `bytes` (whole lines, terminators included) into one batch, or says why not.
    fn decode(&mut self, bytes: &[u8]) -> std::result::Result<RecordBatch, String>;
}

/// Reads one byte-range split of a line-based file.
pub(crate) struct LineBatchReader<D> {
    split: FileSplit,
    lines: LineReader,
    chunk: LineChunk,
    decoder: D,
    schema: SchemaRef,
    batch_lines: usize,
    /// Whether the file's first line is a header, not data.
    header: bool,
    ignore_errors: bool,
    skipped: u64,
    /// CSV: where records end (a quoted field may hold a line break), and whether such a
    /// record is read (else it is an error). `None`: a record per line.
    quotes: Option<(RecordScanner, bool)>,
    /// The chunk's records: the line each starts at.
    records: Vec<usize>,
}

/// Why a CSV record that spans lines is refused without the option.
pub(crate) const QUOTED_NEWLINE: &str = "a quoted field holds a line break, so the record spans lines; set `csv.allow-quoted-newlines` to read such records (each file is then read whole, by one reader)";

/// Bytes per chunk at most (besides `batch_lines`), so that long lines do not make huge batches.
const CHUNK_BYTES: usize = 8 << 20;

impl<D: LineDecoder> LineBatchReader<D> {
    pub(crate) fn open(
        split: &FileSplit,
        schema: SchemaRef,
        decoder: D,
        batch_lines: usize,
        header: bool,
        ignore_errors: bool,
    ) -> Result<Self> {
        let lines = LineReader::open(&split.path, split.start, split.end)?;
        Ok(Self {
            split: split.clone(),
            lines,
            chunk: LineChunk::default(),
            decoder,
            schema,
            batch_lines: batch_lines.max(1),
            header,
            ignore_errors,
            skipped: 0,
            quotes: None,
            records: Vec::new(),
        })
    }

    /// Records end where `rules` say (CSV); one spanning lines is read if `allow`, else it
    /// fails the read naming its line.
    pub(crate) fn with_quotes(mut self, rules: QuoteRules, allow: bool) -> Self {
        self.quotes = Some((RecordScanner::new(rules), allow));
        self
    }

    /// Finds the chunk's records; a chunk that ends inside a quoted field is completed with
    /// the lines that close it (or refused).
    fn find_records(&mut self) -> Result<()> {
        self.records.clear();
        let Some((scanner, allow)) = &mut self.quotes else {
            self.records.extend(0..self.chunk.len());
            return Ok(());
        };
        scanner.reset();
        let (mut start, mut i) = (0, 0);
        loop {
            while i < self.chunk.len() {
                if scanner.line_ends_record(self.chunk.raw_line(i)) {
                    self.records.push(start);
                    start = i + 1;
                } else if !*allow {
                    return Err(self.malformed(start, QUOTED_NEWLINE.to_string()));
                }
                i += 1;
            }
            if start == self.chunk.len() {
                return Ok(());
            }
            if self.lines.read_more(self.batch_lines, CHUNK_BYTES, &mut self.chunk)? == 0 {
                // The file ends inside quotes: the decoder says what it makes of that.
                self.records.push(start);
                return Ok(());
            }
        }
    }

    /// Where record `k` of the chunk is in its bytes.
    fn record(&self, k: usize) -> std::ops::Range<usize> {
        let from = self.chunk.starts[self.records[k]];
        let to = self.records.get(k + 1).map_or(self.chunk.bytes.len(), |&l| self.chunk.starts[l]);
        from..to
    }

    fn malformed(&self, line: usize, reason: String) -> ConnectorError {
        let offset = self.chunk.line_offset(line);
        match line_number(&self.split.path, offset) {
            Ok(line) => ConnectorError::malformed(&self.split.path, Location::Line { line, offset }, reason),
            Err(e) => e,
        }
    }
}

impl<D: LineDecoder> BatchReader for LineBatchReader<D> {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            if !self.lines.read_chunk(self.batch_lines, CHUNK_BYTES, &mut self.chunk)? {
                return Ok(None);
            }
            self.find_records()?;
            // The header is the file's first record.
            let first = usize::from(self.header && self.chunk.line_offset(0) == 0);
            let Some(&first_line) = self.records.get(first) else { continue };
            let bytes = &self.chunk.bytes[self.chunk.starts[first_line]..];
            if let Ok(batch) = self.decoder.decode(bytes) {
                if batch.num_rows() > 0 {
                    return Ok(Some(batch));
                }
                continue;
            }
            // Somewhere in the chunk is a malformed record: decode record by record.
            let mut good = Vec::new();
            for k in first..self.records.len() {
                let range = self.record(k);
                match self.decoder.decode(&self.chunk.bytes[range]) {
                    Ok(b) => {
                        if b.num_rows() > 0 {
                            good.push(b)
                        }
                    }
                    // Counted, not logged: a bad file would flood the log.
                    Err(_) if self.ignore_errors => self.skipped += 1,
                    Err(reason) => return Err(self.malformed(self.records[k], reason)),
                }
            }
            if good.is_empty() {
                continue;
            }
            let batch = arrow::compute::concat_batches(&self.schema, &good)
                .map_err(|e| ConnectorError::schema(&self.split.path, e))?;
            return Ok(Some(batch));
        }
    }

    fn position(&self) -> Position {
        Position::new(self.lines.offset(), 0)
    }

    fn seek(&mut self, position: Position) -> Result<()> {
        // The last line of a split may end past the split's end, so may a position.
        if position.row != 0 || position.offset < self.split.start {
            return Err(ConnectorError::Seek {
                path: self.split.path.clone(),
                position: position.to_string(),
                reason: format!("not a line start of the split {}", self.split.id()),
            });
        }
        self.lines = LineReader::open_at(&self.split.path, position.offset, self.split.end)?;
        Ok(())
    }

    fn skipped(&self) -> u64 {
        self.skipped
    }
}
