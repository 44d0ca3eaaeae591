//! `raw`: text lines as one string column (what `read_text_file` reads). A line is decoded as
//! UTF-8 without its terminator (`\n` or `\r\n`); invalid UTF-8 is a malformed line.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, StringArray, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use riffle_api::Configuration;

use crate::error::{ConnectorError, Result};
use crate::format::line_based::{LineBatchReader, LineDecoder};
use crate::format::{file_len, BatchReader, BatchWriter, Format, BATCH_SIZE};
use crate::split::{byte_range_splits, FileSplit};

/// Text lines, one string column.
#[derive(Debug, Clone)]
pub struct TextFormat {
    batch_size: usize,
}

impl TextFormat {
    /// The format with `config`'s options.
    pub fn from_config(config: &Configuration) -> Result<Self> {
        Ok(Self { batch_size: config.get(&BATCH_SIZE)? })
    }

    /// The schema of a text file: one non-null string column `line`.
    pub fn line_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("line", DataType::Utf8, false)]))
    }
}

fn check_one_string_column(path: &Path, schema: &SchemaRef) -> Result<()> {
    match schema.fields().as_ref() {
        [f] if f.data_type() == &DataType::Utf8 => Ok(()),
        _ => Err(ConnectorError::schema(path, "the raw format has exactly one string column")),
    }
}

impl Format for TextFormat {
    fn name(&self) -> &'static str {
        "raw"
    }

    fn infer_schema(&self, _path: &Path) -> Result<SchemaRef> {
        Ok(Self::line_schema())
    }

    fn splits(&self, path: &Path, split_size: u64) -> Result<Vec<FileSplit>> {
        Ok(byte_range_splits(path, file_len(path)?, split_size))
    }

    fn open(&self, split: &FileSplit, schema: SchemaRef) -> Result<Box<dyn BatchReader>> {
        check_one_string_column(&split.path, &schema)?;
        let decoder = LineDecoderImpl { schema: schema.clone() };
        Ok(Box::new(LineBatchReader::open(split, schema, decoder, self.batch_size, false, false)?))
    }

    fn writer(&self, path: &Path, out: Box<dyn Write + Send>, schema: SchemaRef) -> Result<Box<dyn BatchWriter>> {
        check_one_string_column(path, &schema)?;
        Ok(Box::new(TextWriter { path: path.to_path_buf(), out }))
    }
}

struct LineDecoderImpl {
    schema: SchemaRef,
}

impl LineDecoder for LineDecoderImpl {
    fn decode(&mut self, bytes: &[u8]) -> std::result::Result<RecordBatch, String> {
        let text = std::str::from_utf8(bytes).map_err(|e| format!("invalid UTF-8: {e}"))?;
        let mut b = StringBuilder::with_capacity(64, bytes.len());
        for line in text.split_inclusive('\n') {
            let l = line.strip_suffix('\n').unwrap_or(line);
            b.append_value(l.strip_suffix('\r').unwrap_or(l));
        }
        RecordBatch::try_new(self.schema.clone(), vec![Arc::new(b.finish())]).map_err(|e| e.to_string())
    }
}

struct TextWriter {
    path: PathBuf,
    out: Box<dyn Write + Send>,
}

impl BatchWriter for TextWriter {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let col = batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| ConnectorError::encode(&self.path, "the raw format writes one string column"))?;
        for i in 0..col.len() {
            // A null is an empty line: a line has no other way to say it.
            let v = if col.is_null(i) { "" } else { col.value(i) };
            self.out.write_all(v.as_bytes()).map_err(|e| ConnectorError::io(&self.path, e))?;
            self.out.write_all(b"\n").map_err(|e| ConnectorError::io(&self.path, e))?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        self.out.flush().map_err(|e| ConnectorError::io(&self.path, e))
    }
}
