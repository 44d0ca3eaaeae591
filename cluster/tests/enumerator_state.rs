//! FLIP-27 enumerator state (S1): a source whose enumerator discovers its splits over time
//! keeps where discovery got to in the savepoint, and restores exactly: the enumerator's state
//! plus the splits readers hold or finished (a split handed out between the enumerator's
//! snapshot and a reader's is in both, and `restore` drops it).

mod common;

use std::time::Duration;

use common::WAIT;
use riffle_api::source::{
    decode_enumerator_state, encode_enumerator_state, Assignment, Boundedness, ReadStatus, ReaderState, Source,
    SourceOutput, SourceReader, Split, SplitEnumerator,
};
use riffle_api::{CollectStream, StreamEnvironment, UserError};
use riffle_cluster::JobStatus;
use serde::{Deserialize, Serialize};

/// Splits discovered one at a time.
const SPLITS: u32 = 40;
/// Records per split.
const PER_SPLIT: u64 = 250;

/// Split `id`: records `id * PER_SPLIT ..`, of which `done` were read.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Piece {
    id: u32,
    done: u64,
}

impl Split for Piece {
    fn split_id(&self) -> String {
        format!("piece-{}", self.id)
    }
}

/// Discovers split `next` at each request; where discovery got to lives in its state.
struct Discovering {
    next: u32,
    back: Vec<Piece>,
    /// Splits readers hold or finished (restored): a split handed out after the enumerator's
    /// snapshot and before a reader's is in both, and must not be handed out again.
    consumed: std::collections::HashSet<String>,
}

impl SplitEnumerator<Piece> for Discovering {
    fn handle_split_request(&mut self, _: u32) -> Result<Assignment<Piece>, UserError> {
        if let Some(p) = self.back.pop() {
            return Ok(Assignment { splits: vec![p], no_more_splits: false });
        }
        while self.next < SPLITS {
            let piece = Piece { id: self.next, done: 0 };
            self.next += 1;
            if !self.consumed.contains(&piece.split_id()) {
                return Ok(Assignment { splits: vec![piece], no_more_splits: false });
            }
        }
        Ok(Assignment { splits: vec![], no_more_splits: true })
    }
    fn add_splits_back(&mut self, splits: Vec<Piece>, _: u32) {
        self.back.extend(splits);
    }
    fn restore(&mut self, consumed: &[String]) {
        self.consumed.extend(consumed.iter().cloned());
        self.back.retain(|p| !consumed.contains(&p.split_id()));
    }
    fn snapshot_state(&mut self) -> Result<Option<Vec<u8>>, UserError> {
        encode_enumerator_state(&(self.next, &self.back)).map(Some)
    }
    fn restore_state(&mut self, state: &[u8]) -> Result<(), UserError> {
        let (next, back) = decode_enumerator_state(state)?;
        self.next = next;
        self.back = back;
        Ok(())
    }
}

struct PieceReader {
    queue: Vec<Piece>,
    finished: Vec<String>,
    no_more: bool,
    asked: bool,
}

impl SourceReader<u64, Piece> for PieceReader {
    fn add_splits(&mut self, splits: Vec<Piece>) {
        self.asked = false;
        self.queue.extend(splits);
    }
    fn notify_no_more_splits(&mut self) {
        self.asked = false;
        self.no_more = true;
    }
    fn poll_next(&mut self, out: &mut dyn SourceOutput<u64>) -> Result<ReadStatus, UserError> {
        let Some(p) = self.queue.first_mut() else {
            if self.no_more {
                return Ok(ReadStatus::EndOfInput);
            }
            self.asked = true;
            return Ok(ReadStatus::NeedSplits);
        };
        // Slowly: a savepoint lands in the middle.
        std::thread::sleep(Duration::from_micros(300));
        for _ in 0..5 {
            if p.done == PER_SPLIT {
                break;
            }
            out.collect(p.id as u64 * PER_SPLIT + p.done);
            p.done += 1;
        }
        if p.done == PER_SPLIT {
            let done = self.queue.remove(0);
            self.finished.push(done.split_id());
        }
        Ok(ReadStatus::MoreAvailable)
    }
    fn snapshot_state(&mut self) -> ReaderState<Piece> {
        ReaderState { unfinished: self.queue.clone(), finished: self.finished.clone() }
    }
}

struct DiscoveringSource;

impl Source<u64> for DiscoveringSource {
    type Split = Piece;
    fn boundedness(&self) -> Boundedness {
        Boundedness::Bounded
    }
    fn create_enumerator(&self, _: u32) -> Result<Box<dyn SplitEnumerator<Piece>>, UserError> {
        Ok(Box::new(Discovering { next: 0, back: Vec::new(), consumed: Default::default() }))
    }
    fn create_reader(&self, _: u32) -> Result<Box<dyn SourceReader<u64, Piece>>, UserError> {
        Ok(Box::new(PieceReader { queue: Vec::new(), finished: Vec::new(), no_more: false, asked: false }))
    }
}

fn job(savepoint: Option<&std::path::Path>) -> (StreamEnvironment, CollectStream<(u64, u64)>) {
    let mut env = StreamEnvironment::new();
    env.set_parallelism(2);
    if let Some(p) = savepoint {
        env.set_config("execution.savepoint.path", &p.display().to_string());
    }
    let out =
        env.from_source(DiscoveringSource, "discovering").key_by(|v: &u64| v % 10).process(common::FinalSum).collect();
    (env, out)
}

#[test]
fn a_source_that_discovers_its_splits_restores_exactly_from_its_enumerators_state() {
    let mc = common::cluster(1, 4);
    let dir = tempfile::tempdir().unwrap();
    let (env, out) = job(None);
    let h = mc.submit(env.build_job_graph("first run").unwrap()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let sp = common::savepoint_with_retry(|| h.cancel_with_savepoint(Some(dir.path().to_path_buf())));
    assert_eq!(h.wait(WAIT).unwrap().status, JobStatus::Canceled);
    assert!(out.collect::<Vec<_>>().is_empty(), "cancelled before the end");
    let meta_path = sp.join(riffle_state::checkpoint_metadata::METADATA_FILE);
    let meta = riffle_state::checkpoint_metadata::decode(&std::fs::read(&meta_path).unwrap(), &meta_path).unwrap();
    assert_eq!(meta.enumerators.len(), 1, "the enumerator's state is in the savepoint");
    let (next, _): (u32, Vec<Piece>) = decode_enumerator_state(&meta.enumerators[0].state).unwrap();
    assert!(next > 0 && next <= SPLITS, "it records how far discovery got: {next}");

    let (env, out) = job(Some(&sp));
    let h = mc.submit(env.build_job_graph("restored").unwrap()).unwrap();
    let mut got: Vec<(u64, u64)> = out.collect();
    let r = h.wait(WAIT).unwrap();
    assert_eq!(r.status, JobStatus::Finished, "{:?}", r.error);
    got.sort_unstable();
    let total = SPLITS as u64 * PER_SPLIT;
    let expected: Vec<(u64, u64)> = (0..10).map(|k| (k, (0..total).filter(|v| v % 10 == k).sum())).collect();
    assert_eq!(got, expected, "the savepoint's state and the rest of the input: every record once");
    let read = h.counters().records_in();
    assert!(read > 0 && read < total, "resumed: read {read} of {total}");
}
