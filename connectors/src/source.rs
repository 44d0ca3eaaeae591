//! A FLIP-27 file source over the formats: the enumerator hands out the splits of every file
//! (byte ranges, row groups, stripes), each reader decodes its splits into record batches and
//! checkpoints each unfinished split with its [`Position`], so a restored reader seeks back
//! instead of reading the split again. Its records are [`Rows`] (a batch each), so
//! `env.from_source(file_source, "files")` is a `DataStream<Rows>`.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use riffle_api::source::{
    Assignment, Boundedness, ReadStatus, ReaderState, Source, SourceOutput, SourceReader, Split, SplitEnumerator,
};
use riffle_api::{Configuration, UserError};

use crate::error::{ConnectorError, Result};
use crate::format::{self, BatchReader, Format};
use crate::rows::Rows;
use crate::split::{FileSplit, Position, SPLIT_SIZE};

/// A split of the file source: a [`FileSplit`] and, once a reader checkpointed it, where that
/// reader stood.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileSourceSplit {
    /// The piece of the file.
    pub split: FileSplit,
    /// Where to resume; `None`: from the split's start.
    pub position: Option<Position>,
}

impl Split for FileSourceSplit {
    fn split_id(&self) -> String {
        self.split.id()
    }
}

/// Reads files of one format as record batches, all splits of all files shared by the readers.
#[derive(Debug, Clone)]
pub struct FileSource {
    files: Vec<PathBuf>,
    format: Arc<dyn Format>,
    schema: SchemaRef,
    split_size: u64,
}

impl FileSource {
    /// A source of `files` (a directory stands for the files in it) in `format` with rows of
    /// `schema`, cut into splits of `split_size`.
    pub fn new(paths: &[PathBuf], format: Arc<dyn Format>, schema: SchemaRef, split_size: u64) -> Result<Self> {
        Ok(Self { files: list_files(paths)?, format, schema, split_size })
    }

    /// A source of `paths` with the format, split size and options of `config` (`format`,
    /// `source.split-size`, the format's keys); the schema is `schema`, or inferred from the
    /// first file.
    pub fn from_config(paths: &[PathBuf], config: &Configuration, schema: Option<SchemaRef>) -> Result<Self> {
        let format = format::from_config(config)?;
        let files = list_files(paths)?;
        let schema = match schema {
            Some(s) => s,
            None => match files.first() {
                Some(f) => format.infer_schema(f)?,
                None => {
                    let shown = paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
                    return Err(ConnectorError::schema(shown, "no file to infer a schema from"));
                }
            },
        };
        Ok(Self { files, format, schema, split_size: config.get(&SPLIT_SIZE)?.as_bytes() as u64 })
    }

    /// The rows' schema.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

/// The files of `paths`: files as given, directories' files (not hidden, not starting with
/// `_` or `.`, as Flink skips them), sorted within a directory.
fn list_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| ConnectorError::io(p, e))?;
        if !meta.is_dir() {
            out.push(p.clone());
            continue;
        }
        let mut files = Vec::new();
        for entry in std::fs::read_dir(p).map_err(|e| ConnectorError::io(p, e))? {
            let entry = entry.map_err(|e| ConnectorError::io(p, e))?;
            let name = entry.file_name();
            let hidden = name.to_string_lossy().starts_with(['.', '_']);
            let is_file = entry.file_type().map_err(|e| ConnectorError::io(entry.path(), e))?.is_file();
            if is_file && !hidden {
                files.push(entry.path());
            }
        }
        files.sort();
        out.extend(files);
    }
    Ok(out)
}

impl Source<Rows> for FileSource {
    type Split = FileSourceSplit;

    fn boundedness(&self) -> Boundedness {
        Boundedness::Bounded
    }

    fn create_enumerator(&self, _parallelism: u32) -> Result<Box<dyn SplitEnumerator<FileSourceSplit>>, UserError> {
        let mut pending = VecDeque::new();
        for f in &self.files {
            for split in self.format.splits(f, self.split_size)? {
                pending.push_back(FileSourceSplit { split, position: None });
            }
        }
        Ok(Box::new(FileEnumerator { pending }))
    }

    fn create_reader(&self, _subtask: u32) -> Result<Box<dyn SourceReader<Rows, FileSourceSplit>>, UserError> {
        Ok(Box::new(FileReader {
            format: self.format.clone(),
            schema: self.schema.clone(),
            queue: VecDeque::new(),
            current: None,
            finished: Vec::new(),
            no_more_splits: false,
        }))
    }
}

/// Hands out one split per request, in file order; its state is derived from what readers
/// hold (every split is known from the files), so it keeps none of its own.
struct FileEnumerator {
    pending: VecDeque<FileSourceSplit>,
}

impl SplitEnumerator<FileSourceSplit> for FileEnumerator {
    fn handle_split_request(&mut self, _subtask: u32) -> Result<Assignment<FileSourceSplit>, UserError> {
        let split = self.pending.pop_front();
        let no_more_splits = split.is_none();
        Ok(Assignment { splits: split.into_iter().collect(), no_more_splits })
    }

    fn add_splits_back(&mut self, splits: Vec<FileSourceSplit>, _subtask: u32) {
        for s in splits.into_iter().rev() {
            self.pending.push_front(s);
        }
    }

    fn restore(&mut self, consumed: &[String]) {
        self.pending.retain(|s| !consumed.contains(&s.split_id()));
    }
}

/// Reads its splits one after the other, a batch per poll.
struct FileReader {
    format: Arc<dyn Format>,
    schema: SchemaRef,
    queue: VecDeque<FileSourceSplit>,
    current: Option<(FileSourceSplit, Box<dyn BatchReader>)>,
    finished: Vec<String>,
    no_more_splits: bool,
}

impl FileReader {
    fn open(&self, s: &FileSourceSplit) -> Result<Box<dyn BatchReader>> {
        let mut r = self.format.open(&s.split, self.schema.clone())?;
        if let Some(p) = s.position {
            r.seek(p)?;
        }
        Ok(r)
    }
}

impl SourceReader<Rows, FileSourceSplit> for FileReader {
    fn add_splits(&mut self, splits: Vec<FileSourceSplit>) {
        self.queue.extend(splits);
    }

    fn notify_no_more_splits(&mut self) {
        self.no_more_splits = true;
    }

    fn poll_next(&mut self, output: &mut dyn SourceOutput<Rows>) -> Result<ReadStatus, UserError> {
        loop {
            if self.current.is_none() {
                let Some(next) = self.queue.pop_front() else {
                    return Ok(if self.no_more_splits { ReadStatus::EndOfInput } else { ReadStatus::NeedSplits });
                };
                let reader = self.open(&next)?;
                self.current = Some((next, reader));
            }
            let Some((split, reader)) = self.current.as_mut() else { continue };
            match reader.next_batch()? {
                Some(batch) => {
                    output.collect(Rows(batch));
                    return Ok(ReadStatus::MoreAvailable);
                }
                None => {
                    self.finished.push(split.split_id());
                    self.current = None;
                }
            }
        }
    }

    fn snapshot_state(&mut self) -> ReaderState<FileSourceSplit> {
        let mut unfinished: Vec<_> = self
            .current
            .iter()
            .map(|(s, r)| FileSourceSplit { split: s.split.clone(), position: Some(r.position()) })
            .collect();
        unfinished.extend(self.queue.iter().cloned());
        ReaderState { unfinished, finished: self.finished.clone() }
    }
}
