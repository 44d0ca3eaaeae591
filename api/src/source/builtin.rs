//! The built-in sources: a collection and a parallel number sequence (text files: `text.rs`).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::{
    Assignment, Boundedness, ReadStatus, ReaderState, Source, SourceOutput, SourceReader, Split, SplitEnumerator,
};
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
    /// The splits not handed out yet (by preferred subtask) and those given back.
    fn snapshot_state(&mut self) -> Result<Option<Vec<u8>>, UserError> {
        let returned: Vec<&S> = self.returned.iter().collect();
        super::encode_enumerator_state(&(&self.pending, returned)).map(Some)
    }
    fn restore_state(&mut self, state: &[u8]) -> Result<(), UserError> {
        let (pending, returned): (Vec<Option<S>>, Vec<S>) = super::decode_enumerator_state(state)?;
        self.pending = pending;
        self.returned = returned.into();
        Ok(())
    }
    fn restore(&mut self, consumed: &[String]) {
        for p in self.pending.iter_mut() {
            if p.as_ref().is_some_and(|s| consumed.contains(&s.split_id())) {
                *p = None;
            }
        }
        self.returned.retain(|s| !consumed.contains(&s.split_id()));
    }
}

/// A split a [`QueueReader`] can resume: it knows how many records of it were read.
pub trait Resumable: Split {
    /// Records already read (skipped when the split is opened again).
    fn skip(&self) -> u64;
    /// The same split with `n` records read.
    fn with_skip(&self, n: u64) -> Self;
}

/// A reader over splits that are themselves iterators of records; it counts what it read of
/// the current split so a checkpoint can resume there.
struct QueueReader<S, I> {
    splits: VecDeque<S>,
    current: Option<(S, u64, I)>,
    open: fn(&S) -> Result<I, UserError>,
    finished: Vec<String>,
    no_more: bool,
    requested: bool,
}

impl<S, I> QueueReader<S, I> {
    fn new(open: fn(&S) -> Result<I, UserError>) -> Self {
        Self { splits: VecDeque::new(), current: None, open, finished: Vec::new(), no_more: false, requested: false }
    }
}

impl<T, S: Resumable, I: Iterator<Item = Result<T, UserError>>> SourceReader<T, S> for QueueReader<S, I> {
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
            if let Some((split, read, it)) = &mut self.current {
                let mut done = false;
                for _ in 0..POLL_BATCH {
                    match it.next() {
                        Some(r) => {
                            output.collect(r?);
                            *read += 1;
                        }
                        None => {
                            done = true;
                            break;
                        }
                    }
                }
                if !done {
                    return Ok(ReadStatus::MoreAvailable);
                }
                self.finished.push(split.split_id());
                self.current = None;
            }
            match self.splits.pop_front() {
                Some(s) => {
                    let mut it = (self.open)(&s)?;
                    for _ in 0..s.skip() {
                        if it.next().transpose()?.is_none() {
                            break;
                        }
                    }
                    let read = s.skip();
                    self.current = Some((s, read, it));
                }
                None if self.no_more => return Ok(ReadStatus::EndOfInput),
                None if self.requested => return Ok(ReadStatus::NothingAvailable),
                None => {
                    self.requested = true;
                    return Ok(ReadStatus::NeedSplits);
                }
            }
        }
    }

    fn snapshot_state(&mut self) -> ReaderState<S> {
        let mut unfinished: Vec<S> = self.current.iter().map(|(s, read, _)| s.with_skip(*read)).collect();
        unfinished.extend(self.splits.iter().cloned());
        ReaderState { unfinished, finished: self.finished.clone() }
    }
}

/// The single split of a collection source: the records and how many were read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionSplit<T> {
    /// The records.
    pub items: Vec<T>,
    /// Records already read.
    pub skip: u64,
}

impl<T: Data> Split for CollectionSplit<T> {
    fn split_id(&self) -> String {
        "collection".into()
    }
}

impl<T: Data> Resumable for CollectionSplit<T> {
    fn skip(&self) -> u64 {
        self.skip
    }
    fn with_skip(&self, n: u64) -> Self {
        Self { items: self.items.clone(), skip: n }
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
    type Split = CollectionSplit<T>;
    fn boundedness(&self) -> Boundedness {
        Boundedness::Bounded
    }
    fn create_enumerator(&self, _parallelism: u32) -> Result<Box<dyn SplitEnumerator<CollectionSplit<T>>>, UserError> {
        Ok(Box::new(StaticEnumerator::new(vec![CollectionSplit { items: self.items.clone(), skip: 0 }])))
    }
    fn create_reader(&self, _subtask: u32) -> Result<Box<dyn SourceReader<T, CollectionSplit<T>>>, UserError> {
        type Items<T> = std::iter::Map<std::vec::IntoIter<T>, fn(T) -> Result<T, UserError>>;
        fn open<T: Clone>(s: &CollectionSplit<T>) -> Result<Items<T>, UserError> {
            Ok(s.items.clone().into_iter().map(Ok as fn(T) -> Result<T, UserError>))
        }
        Ok(Box::new(QueueReader::new(open::<T>)))
    }
}

/// A range of the number sequence: `[from, to]` inclusive, read up to `next`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceSplit {
    /// First number (inclusive).
    pub from: u64,
    /// Last number (inclusive).
    pub to: u64,
    /// The next number to emit (`from` for a fresh split).
    pub next: u64,
}

impl Split for SequenceSplit {
    fn split_id(&self) -> String {
        format!("{}-{}", self.from, self.to)
    }
}

/// The numbers `from..=to`, cut into one contiguous split per reader (Flink's
/// `NumberSequenceSource`): reader k of p reads about `[k·N/p, (k+1)·N/p)`.
pub struct SequenceSource {
    from: u64,
    to: u64,
    per_second: Option<u64>,
}

impl SequenceSource {
    /// The numbers `from..=to`.
    pub fn new(from: u64, to: u64) -> Self {
        Self { from, to, per_second: None }
    }

    /// At most `per_second` numbers per second from each reader (0: no limit). A reader ahead
    /// of its pace answers `NothingAvailable`, so the subtask waits without holding its
    /// slot's thread (a sleeping operator in the chain would hold it for the whole poll).
    pub fn with_rate(mut self, per_second: u64) -> Self {
        self.per_second = (per_second > 0).then_some(per_second);
        self
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
                (hi > lo).then(|| {
                    let from = self.from + lo as u64;
                    SequenceSplit { from, to: self.from + (hi - 1) as u64, next: from }
                })
            })
            .collect()
    }
}

struct SequenceReader {
    splits: VecDeque<SequenceSplit>,
    current: Option<SequenceSplit>,
    finished: Vec<String>,
    no_more: bool,
    requested: bool,
    pace: Option<Pace>,
}

/// A reader's pace: how many numbers it may have emitted by now.
struct Pace {
    per_second: u64,
    since: std::time::Instant,
    emitted: u64,
}

impl Pace {
    /// Numbers it may emit now (at most `max`). A reader held back (backpressure, a wait for
    /// splits) does not catch up in a burst later: its pace restarts from now.
    fn allowed(&mut self, max: u64) -> u64 {
        let elapsed = self.since.elapsed().as_micros();
        let due = (elapsed * u128::from(self.per_second) / 1_000_000) as u64;
        let ahead = due.saturating_sub(self.emitted);
        if ahead > max.max(self.per_second / 10) {
            self.since = std::time::Instant::now();
            self.emitted = 0;
            return max.min(self.per_second / 100).max(1);
        }
        ahead.min(max)
    }
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
        let split = match &mut self.current {
            Some(s) => s,
            None => match self.splits.pop_front() {
                Some(s) => self.current.insert(s),
                None if self.no_more => return Ok(ReadStatus::EndOfInput),
                None if self.requested => return Ok(ReadStatus::NothingAvailable),
                None => {
                    self.requested = true;
                    return Ok(ReadStatus::NeedSplits);
                }
            },
        };
        if split.next > split.to {
            self.finished.push(split.split_id());
            self.current = None;
            return Ok(ReadStatus::MoreAvailable);
        }
        let mut batch = POLL_BATCH as u64;
        if let Some(p) = &mut self.pace {
            batch = p.allowed(batch);
            if batch == 0 {
                return Ok(ReadStatus::NothingAvailable);
            }
            p.emitted += batch;
        }
        let last = split.to.min(split.next.saturating_add(batch - 1));
        for i in split.next..=last {
            output.collect(i);
        }
        if last >= split.to {
            self.finished.push(split.split_id());
            self.current = None;
        } else {
            split.next = last + 1;
        }
        Ok(ReadStatus::MoreAvailable)
    }
    fn snapshot_state(&mut self) -> ReaderState<SequenceSplit> {
        let mut unfinished: Vec<SequenceSplit> = self.current.iter().copied().collect();
        unfinished.extend(self.splits.iter().copied());
        ReaderState { unfinished, finished: self.finished.clone() }
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
            current: None,
            finished: Vec::new(),
            no_more: false,
            requested: false,
            pace: self.per_second.map(|per_second| Pace { per_second, since: std::time::Instant::now(), emitted: 0 }),
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
                SequenceSplit { from: 0, to: 32, next: 0 },
                SequenceSplit { from: 33, to: 65, next: 33 },
                SequenceSplit { from: 66, to: 99, next: 66 }
            ]
        );
        assert_eq!(SequenceSource::new(5, 6).splits(4).len(), 2);
    }

    #[test]
    fn a_paced_sequence_keeps_to_its_rate_without_blocking() {
        struct Out(Vec<u64>);
        impl SourceOutput<u64> for Out {
            fn collect(&mut self, v: u64) {
                self.0.push(v);
            }
            fn collect_with_timestamp(&mut self, v: u64, _: i64) {
                self.0.push(v);
            }
        }
        let s = SequenceSource::new(0, 999_999).with_rate(10_000);
        let mut r = s.create_reader(0).unwrap();
        r.add_splits(s.splits(1));
        r.notify_no_more_splits();
        let mut out = Out(Vec::new());
        let started = std::time::Instant::now();
        let mut nothing = 0;
        while started.elapsed() < std::time::Duration::from_millis(200) {
            let t = std::time::Instant::now();
            if r.poll_next(&mut out).unwrap() == ReadStatus::NothingAvailable {
                nothing += 1;
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            assert!(t.elapsed() < std::time::Duration::from_millis(50), "a poll must not wait");
        }
        assert!(nothing > 0);
        // 10 per ms over 200 ms, give or take scheduling.
        assert!((1000..=2200).contains(&out.0.len()), "{}", out.0.len());
        assert!(out.0.iter().enumerate().all(|(i, v)| *v == i as u64), "in order, none skipped");
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
