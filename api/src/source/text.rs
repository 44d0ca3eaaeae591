//! Text files as lines (`read_text_file`): files, directories or globs (found by the shared
//! [`super::file_enumerator`], once or continuously), cut into byte ranges so that one large
//! file is read by every subtask.
//!
//! A split is a byte range of one file (`source.split-size`); a line belongs to the split its
//! first byte is in, so a reader whose range does not start a file skips the rest of the line
//! it starts in, and reads past its end to finish the last line it began. Every line is read
//! exactly once, whatever the split size. A reader's position is the byte offset of its next
//! line: a checkpoint records it and a restore seeks there, reading nothing twice.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::file_enumerator::{FileDiscovery, FileEnumerator, FileSplitter};
use super::{Boundedness, ReadStatus, ReaderState, Source, SourceOutput, SourceReader, Split, SplitEnumerator};
use crate::config::{ConfigOption, Group, MemorySize};
use crate::error::UserError;

/// `source.split-size`: the byte ranges files are cut into (riffle's key: Flink's file source
/// splits local files by the file system's block size, 32 MiB, which is the default here).
pub const SPLIT_SIZE: ConfigOption<MemorySize> = ConfigOption::new(
    Group::Pipeline,
    "source.split-size",
    MemorySize::mib(32),
    "riffle's: the size of the byte ranges a file is cut into (text lines, CSV, JSON, Avro; Parquet and ORC group row groups and stripes up to it), so that several readers share one file",
);

/// Lines emitted per poll.
const POLL_BATCH: usize = 4096;

/// A byte range of one text file, and where its reader is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSplit {
    /// The file's path.
    pub path: PathBuf,
    /// Lines already read (checkpoints of riffle before byte ranges; 0 otherwise).
    #[serde(default)]
    pub skip: u64,
    /// Where the range starts (its id).
    #[serde(default)]
    pub first: u64,
    /// Where the reader goes on: the range's start, or the next line after a checkpoint.
    #[serde(default)]
    pub offset: u64,
    /// Whether `offset` is a line start (false only at a range's start inside a file).
    #[serde(default = "yes")]
    pub aligned: bool,
    /// Where the range ends (exclusive; lines starting before it are read whole); none: the
    /// end of the file.
    #[serde(default)]
    pub end: Option<u64>,
}

fn yes() -> bool {
    true
}

impl FileSplit {
    /// All of `path`.
    pub fn whole(path: PathBuf) -> Self {
        Self { path, skip: 0, first: 0, offset: 0, aligned: true, end: None }
    }

    /// Bytes `start..end` of `path`.
    pub fn range(path: PathBuf, start: u64, end: u64) -> Self {
        Self { path, skip: 0, first: start, offset: start, aligned: start == 0, end: Some(end) }
    }
}

impl Split for FileSplit {
    fn split_id(&self) -> String {
        match (self.first, self.end) {
            (0, None) => self.path.display().to_string(),
            (first, _) => format!("{}@{first}", self.path.display()),
        }
    }
}

/// Lines of text files: files, directories (their files, nested ones too, not hidden: `.` or
/// `_` first) and globs, listed once or every `source.monitor-interval` (see
/// [`super::file_enumerator`]).
pub struct TextFileSource {
    discovery: FileDiscovery,
    split_size: u64,
}

/// Cuts a text file into byte ranges of the split size.
pub struct LineSplitter {
    split_size: u64,
}

impl LineSplitter {
    /// Ranges of `bytes` (at least 1).
    pub fn new(bytes: u64) -> Self {
        Self { split_size: bytes.max(1) }
    }
}

impl FileSplitter<FileSplit> for LineSplitter {
    fn split_file(&self, path: &Path, len: u64) -> Result<Vec<FileSplit>, UserError> {
        if len <= self.split_size {
            return Ok(vec![FileSplit::whole(path.to_path_buf())]);
        }
        let mut splits = Vec::new();
        let mut start = 0;
        while start < len {
            let end = start.saturating_add(self.split_size).min(len);
            let path = path.to_path_buf();
            // The last range reads to the end of the file, whatever it holds by then.
            splits.push(match end == len {
                true => FileSplit { end: None, ..FileSplit::range(path, start, end) },
                false => FileSplit::range(path, start, end),
            });
            start = end;
        }
        Ok(splits)
    }
}

impl TextFileSource {
    /// Lines of `path` (a file, a directory or a glob), read once, in splits of the default
    /// size.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self::of(FileDiscovery::new(vec![path.into()]))
    }

    /// Lines of what `discovery` finds (once, or continuously).
    pub fn of(discovery: FileDiscovery) -> Self {
        Self { discovery, split_size: SPLIT_SIZE.default_value().as_bytes() as u64 }
    }

    /// Cuts files into ranges of `bytes` (at least 1).
    pub fn with_split_size(mut self, bytes: u64) -> Self {
        self.split_size = bytes.max(1);
        self
    }

    /// Lists the inputs again every `interval` for new files (continuous mode: the source
    /// never ends); `None`: once.
    pub fn monitor_every(mut self, interval: Option<Duration>) -> Self {
        self.discovery = self.discovery.monitor_every(interval);
        self
    }

    fn enumerator(&self) -> Result<FileEnumerator<FileSplit, LineSplitter>, UserError> {
        FileEnumerator::new(self.discovery.clone(), Arc::new(LineSplitter::new(self.split_size)))
    }

    /// The splits of the files there now: each file in ranges of the split size, files in
    /// path order.
    pub fn splits(&self) -> Result<Vec<FileSplit>, UserError> {
        Ok(self.enumerator()?.pending().cloned().collect())
    }
}

impl Source<String> for TextFileSource {
    type Split = FileSplit;
    fn boundedness(&self) -> Boundedness {
        self.discovery.boundedness()
    }
    fn create_enumerator(&self, _parallelism: u32) -> Result<Box<dyn SplitEnumerator<FileSplit>>, UserError> {
        Ok(Box::new(self.enumerator()?))
    }
    fn create_reader(&self, _subtask: u32) -> Result<Box<dyn SourceReader<String, FileSplit>>, UserError> {
        Ok(Box::new(LineReader::default()))
    }
}

/// The split being read: its file at the reader's offset.
struct Open {
    split: FileSplit,
    file: BufReader<File>,
}

/// Reads its splits' lines in turn; its state is each split with the offset of its next line.
#[derive(Default)]
pub struct LineReader {
    splits: VecDeque<FileSplit>,
    current: Option<Open>,
    finished: Vec<String>,
    no_more: bool,
    requested: bool,
    line: Vec<u8>,
}

impl LineReader {
    /// Opens `split` at its offset; a range starting inside a line skips to the next one, and
    /// a split of an older checkpoint (`skip` lines of a whole file) skips those lines.
    fn open(mut split: FileSplit) -> Result<Open, UserError> {
        let path = split.path.clone();
        let err = |e: std::io::Error| format!("cannot read '{}': {e}", path.display());
        let f = File::open(&split.path).map_err(|e| format!("cannot open '{}': {e}", split.path.display()))?;
        let mut file = BufReader::with_capacity(1 << 16, f);
        if !split.aligned {
            // The line holding byte `offset - 1` belongs to the split before (or ends there).
            let from = split.offset.saturating_sub(1);
            file.seek(SeekFrom::Start(from)).map_err(err)?;
            let mut rest = Vec::new();
            let n = file.read_until(b'\n', &mut rest).map_err(err)?;
            split.offset = from + n as u64;
            split.aligned = true;
        } else if split.offset > 0 {
            file.seek(SeekFrom::Start(split.offset)).map_err(err)?;
        }
        let mut open = Open { split, file };
        let mut line = Vec::new();
        while open.split.skip > 0 {
            open.split.skip -= 1;
            if Self::next_line(&mut open, &mut line)?.is_none() {
                break;
            }
        }
        Ok(open)
    }

    /// The next line of the open split (without its line break), or None at its end.
    fn next_line(open: &mut Open, line: &mut Vec<u8>) -> Result<Option<String>, UserError> {
        if open.split.end.is_some_and(|end| open.split.offset >= end) {
            return Ok(None);
        }
        line.clear();
        let n = open
            .file
            .read_until(b'\n', line)
            .map_err(|e| format!("error reading '{}': {e}", open.split.path.display()))?;
        if n == 0 {
            return Ok(None);
        }
        open.split.offset += n as u64;
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        let text = String::from_utf8(std::mem::take(line)).map_err(|e| {
            format!(
                "'{}' holds a line that is not UTF-8 before byte {}: {e}",
                open.split.path.display(),
                open.split.offset
            )
        })?;
        Ok(Some(text))
    }
}

impl SourceReader<String, FileSplit> for LineReader {
    fn add_splits(&mut self, splits: Vec<FileSplit>) {
        self.requested = false;
        self.splits.extend(splits);
    }

    fn notify_no_more_splits(&mut self) {
        self.requested = false;
        self.no_more = true;
    }

    fn poll_next(&mut self, output: &mut dyn SourceOutput<String>) -> Result<ReadStatus, UserError> {
        loop {
            if let Some(open) = &mut self.current {
                for _ in 0..POLL_BATCH {
                    match Self::next_line(open, &mut self.line)? {
                        Some(l) => output.collect(l),
                        None => {
                            self.finished.push(open.split.split_id());
                            self.current = None;
                            break;
                        }
                    }
                }
                if self.current.is_some() {
                    return Ok(ReadStatus::MoreAvailable);
                }
            }
            match self.splits.pop_front() {
                Some(s) => self.current = Some(Self::open(s)?),
                None if self.no_more => return Ok(ReadStatus::EndOfInput),
                None if self.requested => return Ok(ReadStatus::NothingAvailable),
                None => {
                    self.requested = true;
                    return Ok(ReadStatus::NeedSplits);
                }
            }
        }
    }

    fn snapshot_state(&mut self) -> ReaderState<FileSplit> {
        let mut unfinished: Vec<FileSplit> = self.current.iter().map(|o| o.split.clone()).collect();
        unfinished.extend(self.splits.iter().cloned());
        ReaderState { unfinished, finished: self.finished.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Lines(Vec<String>);

    impl SourceOutput<String> for Lines {
        fn collect(&mut self, v: String) {
            self.0.push(v);
        }
        fn collect_with_timestamp(&mut self, v: String, _: i64) {
            self.0.push(v);
        }
    }

    /// Reads `splits` to the end with one reader, snapshotting and restoring into a new
    /// reader every `every` polls (0: never).
    fn read_all(splits: Vec<FileSplit>, every: usize) -> Vec<String> {
        let mut out = Lines(Vec::new());
        let mut r = LineReader::default();
        r.add_splits(splits);
        r.notify_no_more_splits();
        let mut polls = 0;
        loop {
            match r.poll_next(&mut out).unwrap() {
                ReadStatus::EndOfInput => return out.0,
                ReadStatus::NeedSplits | ReadStatus::NothingAvailable => unreachable!("all splits were given"),
                ReadStatus::MoreAvailable => {}
            }
            polls += 1;
            if every > 0 && polls % every == 0 {
                let state = r.snapshot_state();
                r = LineReader::default();
                r.add_splits(state.unfinished);
                r.notify_no_more_splits();
            }
        }
    }

    fn file_with(content: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        std::fs::write(&path, content).unwrap();
        (dir, path)
    }

    #[test]
    fn every_line_is_read_once_whatever_the_split_size() {
        let mut content = String::new();
        for i in 0..700u32 {
            // Lines of many lengths, empty ones and a CRLF one among them.
            let len = (i * 7919) % 23;
            content.push_str(&"x".repeat(len as usize));
            content.push_str(&i.to_string());
            content.push_str(if i % 50 == 0 { "\r\n" } else { "\n" });
            if i % 97 == 0 {
                content.push('\n');
            }
        }
        content.push_str("no newline at the end");
        let (_dir, path) = file_with(&content);
        let expected: Vec<String> = content.lines().map(str::to_string).collect();
        for size in [1, 2, 3, 5, 16, 17, 64, 100, 1000, 4096, 1 << 20] {
            let splits = TextFileSource::new(&path).with_split_size(size).splits().unwrap();
            assert_eq!(read_all(splits.clone(), 0), expected, "split size {size}");
            // Each split read on its own (by whichever reader takes it) holds its own lines.
            let each: Vec<String> = splits.iter().flat_map(|s| read_all(vec![s.clone()], 0)).collect();
            assert_eq!(each, expected, "split size {size}, splits read one by one");
        }
    }

    #[test]
    fn a_restored_reader_seeks_to_its_next_line_and_reads_nothing_twice() {
        let content: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
        let (_dir, path) = file_with(&content);
        let expected: Vec<String> = content.lines().map(str::to_string).collect();
        let splits = TextFileSource::new(&path).with_split_size(10_000).splits().unwrap();
        assert!(splits.len() > 10);
        assert_eq!(read_all(splits.clone(), 1), expected);
        assert_eq!(read_all(splits, 3), expected);
        // The state after a poll is a byte offset at a line start inside the range.
        let mut r = LineReader::default();
        r.add_splits(vec![FileSplit::range(path.clone(), 0, content.len() as u64)]);
        r.poll_next(&mut Lines(Vec::new())).unwrap();
        let s = &r.snapshot_state().unfinished[0];
        assert!(s.aligned && s.offset > 0 && content.as_bytes()[s.offset as usize - 1] == b'\n', "{s:?}");
    }

    #[test]
    fn large_files_are_cut_small_ones_stay_whole_and_old_splits_still_resume() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "1\n2\n3\n4\n5\n").unwrap();
        std::fs::write(dir.path().join("b.txt"), "6\n").unwrap();
        std::fs::write(dir.path().join(".hidden"), "7\n").unwrap();
        let splits = TextFileSource::new(dir.path()).with_split_size(4).splits().unwrap();
        let ids: Vec<String> = splits.iter().map(|s| s.split_id()).collect();
        let a = dir.path().join("a.txt").display().to_string();
        let b = dir.path().join("b.txt").display().to_string();
        assert_eq!(ids, vec![format!("{a}@0"), format!("{a}@4"), format!("{a}@8"), b]);
        assert_eq!(read_all(splits, 0), vec!["1", "2", "3", "4", "5", "6"]);
        // A split of a checkpoint from before byte ranges (MessagePack of its two fields): a
        // whole file, lines to skip.
        let old: FileSplit =
            rmp_serde::from_slice(&rmp_serde::to_vec(&(dir.path().join("a.txt"), 3u64)).unwrap()).unwrap();
        assert_eq!(old.split_id(), a);
        assert_eq!(read_all(vec![old], 0), vec!["4", "5"]);
    }

    #[test]
    fn a_file_deleted_between_discovery_and_reading_fails_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone.txt");
        std::fs::write(&path, "1\n").unwrap();
        let splits = TextFileSource::new(dir.path()).splits().unwrap();
        std::fs::remove_file(&path).unwrap();
        let mut r = LineReader::default();
        r.add_splits(splits);
        let e = r.poll_next(&mut Lines(Vec::new())).unwrap_err().to_string();
        assert!(e.starts_with(&format!("cannot open '{}'", path.display())), "{e}");
    }

    #[test]
    fn a_missing_input_and_bad_bytes_are_clear_errors() {
        let e = TextFileSource::new("/nonexistent/riffle").splits().unwrap_err().to_string();
        assert!(e.contains("cannot read input '/nonexistent/riffle'"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bin");
        std::fs::write(&path, [b'o', b'k', b'\n', 0xff, 0xfe, b'\n']).unwrap();
        let mut r = LineReader::default();
        r.add_splits(vec![FileSplit::whole(path)]);
        let e = r.poll_next(&mut Lines(Vec::new())).unwrap_err().to_string();
        assert!(e.contains("not UTF-8 before byte 6"), "{e}");
    }
}
