//! A FLIP-27 file source over the formats: riffle-api's shared file enumerator finds the files
//! (once, or continuously) and hands out the splits of every file (byte ranges, row groups,
//! stripes), each reader decodes its splits into record batches and
//! checkpoints each unfinished split with its [`Position`], so a restored reader seeks back
//! instead of reading the split again. Its records are [`Rows`] (a batch each), so
//! `env.from_source(file_source, "files")` is a `DataStream<Rows>`.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use riffle_api::source::file_enumerator::{FileDiscovery, FileEnumerator, FileSplitter, MONITOR_INTERVAL};
use riffle_api::source::{
    Boundedness, ReadStatus, ReaderState, Source, SourceOutput, SourceReader, Split, SplitEnumerator,
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
/// Files, directories and globs, listed once or every `source.monitor-interval` by riffle-api's
/// shared [`FileEnumerator`] (which files are read and when: see its module).
#[derive(Debug, Clone)]
pub struct FileSource {
    discovery: FileDiscovery,
    format: Arc<dyn Format>,
    schema: SchemaRef,
    split_size: u64,
}

impl FileSource {
    /// A source of `paths` (files; directories stand for the files under them; globs for what
    /// they match) in `format` with rows of `schema`, cut into splits of `split_size`, read
    /// once. The inputs are listed now, so a missing one is an error here.
    pub fn new(paths: &[PathBuf], format: Arc<dyn Format>, schema: SchemaRef, split_size: u64) -> Result<Self> {
        let discovery = FileDiscovery::new(paths.to_vec());
        discovery.scan()?;
        Ok(Self { discovery, format, schema, split_size })
    }

    /// A source of `paths` with the format, split size, monitor interval and options of
    /// `config` (`format`, `source.split-size`, `source.monitor-interval`, the format's keys);
    /// the schema is `schema`, or inferred from the first file there now.
    pub fn from_config(paths: &[PathBuf], config: &Configuration, schema: Option<SchemaRef>) -> Result<Self> {
        let format = format::from_config(config)?;
        let discovery = FileDiscovery::new(paths.to_vec()).monitor_every(config.get(&MONITOR_INTERVAL)?);
        let files = discovery.scan()?;
        let schema = match schema {
            Some(s) => s,
            None => match files.first() {
                Some((f, _)) => format.infer_schema(f)?,
                None => return Err(ConnectorError::schema(discovery.describe(), "no file to infer a schema from")),
            },
        };
        Ok(Self { discovery, format, schema, split_size: config.get(&SPLIT_SIZE)?.as_bytes() as u64 })
    }

    /// Lists the inputs again every `interval` for new files (continuous mode: the source
    /// never ends, each new file is read exactly once); `None`: once.
    pub fn monitor_every(mut self, interval: Option<Duration>) -> Self {
        self.discovery = self.discovery.monitor_every(interval);
        self
    }

    /// The rows' schema.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

/// Cuts a file into its format's splits.
#[derive(Debug)]
pub struct FormatSplitter {
    format: Arc<dyn Format>,
    split_size: u64,
}

impl FileSplitter<FileSourceSplit> for FormatSplitter {
    fn split_file(&self, path: &Path, _len: u64) -> Result<Vec<FileSourceSplit>, UserError> {
        let splits = self.format.splits(path, self.split_size)?;
        Ok(splits.into_iter().map(|split| FileSourceSplit { split, position: None }).collect())
    }
}

impl Source<Rows> for FileSource {
    type Split = FileSourceSplit;

    fn boundedness(&self) -> Boundedness {
        self.discovery.boundedness()
    }

    fn create_enumerator(&self, _parallelism: u32) -> Result<Box<dyn SplitEnumerator<FileSourceSplit>>, UserError> {
        let splitter = FormatSplitter { format: self.format.clone(), split_size: self.split_size };
        Ok(Box::new(FileEnumerator::new(self.discovery.clone(), Arc::new(splitter))?))
    }

    fn create_reader(&self, _subtask: u32) -> Result<Box<dyn SourceReader<Rows, FileSourceSplit>>, UserError> {
        Ok(Box::new(FileReader {
            format: self.format.clone(),
            schema: self.schema.clone(),
            queue: VecDeque::new(),
            current: None,
            finished: Vec::new(),
            no_more_splits: false,
            skipped_before: 0,
        }))
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
    /// Malformed records skipped in splits already read to their end.
    skipped_before: u64,
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
                    self.skipped_before += reader.skipped();
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

    fn records_skipped(&self) -> u64 {
        self.skipped_before + self.current.as_ref().map_or(0, |(_, r)| r.skipped())
    }
}
