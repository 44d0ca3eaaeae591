//! The built-in sources: a collection, a parallel number sequence, and text files.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Assignment, Boundedness, ReadStatus, Source, SourceOutput, SourceReader, Split, SplitEnumerator};
use crate::error::UserError;
use crate::record::Data;

/// Records emitted per poll: big enough to amortize the poll, small enough to stay responsive.
const POLL_BATCH: usize = 4096;

/// Hands a fixed list of splits to readers: split k preferably to subtask k (so that a
/// range split into contiguous pieces maps piece k to subtask k, as Flink's sequence source
/// ends up doing), otherwise to whoever asks first.
pub struct StaticEnumerator<S> {
    pending: Vec<Option<S>>,
    returned: VecDeque<S>,
}

impl<S> StaticEnumerator<S> {
    /// An enumerator over `splits`.
    pub fn new(splits: Vec<S>) -> Self {
        Self { pending: splits.into_iter().map(Some).collect(), returned: VecDeque::new() }
    }
}

impl<S: Split> SplitEnumerator<S> for StaticEnumerator<S> {
    fn handle_split_request(&mut self, subtask: u32) -> Result<Assignment<S>, UserError> {
        if let Some(s) = self.returned.pop_front() {
            return Ok(Assignment { splits: vec![s], no_more_splits: false });
        }
        let own = self.pending.get_mut(subtask as usize).and_then(Option::take);
        let split = own.or_else(|| self.pending.iter_mut().find_map(Option::take));
        Ok(match split {
            Some(s) => Assignment { splits: vec![s], no_more_splits: false },
            None => Assignment { splits: vec![], no_more_splits: true },
        })
    }
    fn add_splits_back(&mut self, splits: Vec<S>, _subtask: u32) {
        self.returned.extend(splits);
    }
}

/// A reader over splits that are themselves iterators of records.
struct QueueReader<S, I> {
    splits: VecDeque<S>,
    current: Option<I>,
    open: fn(S) -> Result<I, UserError>,
    no_more: bool,
    requested: bool,
}

impl<T, S: Split, I: Iterator<Item = Result<T, UserError>>> SourceReader<T, S> for QueueReader<S, I> {
    fn add_splits(&mut self, splits: Vec<S>) {
        self.requested = false;
        self.splits.extend(splits);
    }
    fn notify_no_more_splits(&mut self) {
        self.requested = false;
        self.no_more = true;
    }
    fn poll_next(&mut self, output: &mut dyn SourceOutput<T>) -> Result<ReadStatus, UserError> {
        loop {
            if let Some(it) = &mut self.current {
                for _ in 0..POLL_BATCH {
                    match it.next() {
                        Some(r) => output.collect(r?),
                        None => {
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
                Some(s) => self.current = Some((self.open)(s)?),
                None if self.no_more => return Ok(ReadStatus::EndOfInput),
                None if self.requested => return Ok(ReadStatus::NothingAvailable),
                None => {
                    self.requested = true;
                    return Ok(ReadStatus::NeedSplits);
                }
            }
        }
    }
}

/// A bounded source over a fixed list of records (one split; read by one subtask).
pub struct CollectionSource<T> {
    items: Vec<T>,
}

impl<T> CollectionSource<T> {
    /// A source emitting `items` in order.
    pub fn new(items: Vec<T>) -> Self {
        Self { items }
    }
}

impl<T: Data + Sync> Source<T> for CollectionSource<T> {
    type Split = Vec<T>;
    fn boundedness(&self) -> Boundedness {
        Boundedness::Bounded
    }
    fn create_enumerator(&self, _parallelism: u32) -> Result<Box<dyn SplitEnumerator<Vec<T>>>, UserError> {
        Ok(Box::new(StaticEnumerator::new(vec![self.items.clone()])))
    }
    fn create_reader(&self, _subtask: u32) -> Result<Box<dyn SourceReader<T, Vec<T>>>, UserError> {
        type Items<T> = std::iter::Map<std::vec::IntoIter<T>, fn(T) -> Result<T, UserError>>;
        fn open<T>(s: Vec<T>) -> Result<Items<T>, UserError> {
            Ok(s.into_iter().map(Ok as fn(T) -> Result<T, UserError>))
        }
        Ok(Box::new(QueueReader {
            splits: VecDeque::new(),
            current: None,
            open: open::<T>,
            no_more: false,
            requested: false,
        }))
    }
}

/// A range of the number sequence: `[from, to]` inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceSplit {
    /// First number (inclusive).
    pub from: u64,
    /// Last number (inclusive).
    pub to: u64,
}

/// The numbers `from..=to`, cut into one contiguous split per reader (Flink's
/// `NumberSequenceSource`): reader k of p reads about `[k·N/p, (k+1)·N/p)`.
pub struct SequenceSource {
    from: u64,
    to: u64,
}

impl SequenceSource {
    /// The numbers `from..=to`.
    pub fn new(from: u64, to: u64) -> Self {
        Self { from, to }
    }

    /// The contiguous splits for `parallelism` readers.
    pub fn splits(&self, parallelism: u32) -> Vec<SequenceSplit> {
        if self.to < self.from {
            return vec![];
        }
        let n = u128::from(self.to - self.from) + 1;
        let p = u128::from(parallelism.max(1));
        (0..p)
            .filter_map(|k| {
                let lo = k * n / p;
                let hi = (k + 1) * n / p;
                (hi > lo).then(|| SequenceSplit { from: self.from + lo as u64, to: self.from + (hi - 1) as u64 })
            })
            .collect()
    }
}

struct SequenceReader {
    splits: VecDeque<SequenceSplit>,
    next: u64,
    end: u64,
    active: bool,
    no_more: bool,
    requested: bool,
}

impl SourceReader<u64, SequenceSplit> for SequenceReader {
    fn add_splits(&mut self, splits: Vec<SequenceSplit>) {
        self.requested = false;
        self.splits.extend(splits);
    }
    fn notify_no_more_splits(&mut self) {
        self.requested = false;
        self.no_more = true;
    }
    fn poll_next(&mut self, output: &mut dyn SourceOutput<u64>) -> Result<ReadStatus, UserError> {
        if !self.active {
            match self.splits.pop_front() {
                Some(s) => {
                    self.next = s.from;
                    self.end = s.to;
                    self.active = true;
                }
                None if self.no_more => return Ok(ReadStatus::EndOfInput),
                None if self.requested => return Ok(ReadStatus::NothingAvailable),
                None => {
                    self.requested = true;
                    return Ok(ReadStatus::NeedSplits);
                }
            }
        }
        let last = self.end.min(self.next.saturating_add(POLL_BATCH as u64 - 1));
        for i in self.next..=last {
            output.collect(i);
        }
        if last >= self.end {
            self.active = false;
        } else {
            self.next = last + 1;
        }
        Ok(ReadStatus::MoreAvailable)
    }
}

impl Source<u64> for SequenceSource {
    type Split = SequenceSplit;
    fn boundedness(&self) -> Boundedness {
        Boundedness::Bounded
    }
    fn create_enumerator(&self, parallelism: u32) -> Result<Box<dyn SplitEnumerator<SequenceSplit>>, UserError> {
        Ok(Box::new(StaticEnumerator::new(self.splits(parallelism))))
    }
    fn create_reader(&self, _subtask: u32) -> Result<Box<dyn SourceReader<u64, SequenceSplit>>, UserError> {
        Ok(Box::new(SequenceReader {
            splits: VecDeque::new(),
            next: 0,
            end: 0,
            active: false,
            no_more: false,
            requested: false,
        }))
    }
}

/// One text file to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSplit {
    /// The file's path.
    pub path: PathBuf,
}

/// The lines of a text file, or of every regular file in a directory (one split per file).
pub struct TextFileSource {
    path: PathBuf,
}

impl TextFileSource {
    /// Lines of `path` (a file or a directory of files).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    fn files(&self) -> Result<Vec<FileSplit>, UserError> {
        let meta =
            std::fs::metadata(&self.path).map_err(|e| format!("cannot read input '{}': {e}", self.path.display()))?;
        if meta.is_file() {
            return Ok(vec![FileSplit { path: self.path.clone() }]);
        }
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&self.path)
            .map_err(|e| format!("cannot list input directory '{}': {e}", self.path.display()))?
        {
            let entry = entry?;
            let name = entry.file_name();
            let hidden = name.to_string_lossy().starts_with(['.', '_']);
            if entry.file_type()?.is_file() && !hidden {
                files.push(FileSplit { path: entry.path() });
            }
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }
}

struct Lines {
    inner: std::io::Lines<BufReader<File>>,
    path: PathBuf,
}

impl Iterator for Lines {
    type Item = Result<String, UserError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next().map(|r| r.map_err(|e| format!("error reading '{}': {e}", self.path.display()).into()))
    }
}

fn open_lines(s: FileSplit) -> Result<Lines, UserError> {
    let f = File::open(&s.path).map_err(|e| format!("cannot open '{}': {e}", s.path.display()))?;
    Ok(Lines { inner: BufReader::with_capacity(1 << 16, f).lines(), path: s.path })
}

impl Source<String> for TextFileSource {
    type Split = FileSplit;
    fn boundedness(&self) -> Boundedness {
        Boundedness::Bounded
    }
    fn create_enumerator(&self, _parallelism: u32) -> Result<Box<dyn SplitEnumerator<FileSplit>>, UserError> {
        Ok(Box::new(StaticEnumerator::new(self.files()?)))
    }
    fn create_reader(&self, _subtask: u32) -> Result<Box<dyn SourceReader<String, FileSplit>>, UserError> {
        Ok(Box::new(QueueReader {
            splits: VecDeque::new(),
            current: None,
            open: open_lines,
            no_more: false,
            requested: false,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_splits_are_contiguous_and_complete() {
        let s = SequenceSource::new(0, 99);
        let sp = s.splits(3);
        assert_eq!(
            sp,
            vec![
                SequenceSplit { from: 0, to: 32 },
                SequenceSplit { from: 33, to: 65 },
                SequenceSplit { from: 66, to: 99 }
            ]
        );
        assert_eq!(SequenceSource::new(5, 6).splits(4).len(), 2);
    }

    #[test]
    fn enumerator_prefers_own_split() {
        let mut e = StaticEnumerator::new(vec![10, 20, 30]);
        assert_eq!(e.handle_split_request(2).unwrap().splits, vec![30]);
        assert_eq!(e.handle_split_request(2).unwrap().splits, vec![10]);
        assert_eq!(e.handle_split_request(0).unwrap().splits, vec![20]);
        assert!(e.handle_split_request(0).unwrap().no_more_splits);
    }
}
