//! The FLIP-27 file source: readers share every split of the files, and after a failure a
//! restored reader resumes each split at its checkpointed position; every row arrives exactly
//! once across the checkpoint, in every format.

mod common;

use std::collections::VecDeque;

use arrow::array::Int64Array;
use arrow::record_batch::RecordBatch;
use common::{batch, format, schema, write};
use riffle_api::source::{ReadStatus, ReaderState, Source, SourceOutput, SourceReader, SplitEnumerator};
use riffle_connectors::{FileSource, FileSourceSplit, Rows};

struct Out(Vec<RecordBatch>);

impl SourceOutput<Rows> for Out {
    fn collect(&mut self, value: Rows) {
        self.0.push(value.0);
    }
    fn collect_with_timestamp(&mut self, value: Rows, _timestamp: i64) {
        self.0.push(value.0);
    }
}

type Reader = Box<dyn SourceReader<Rows, FileSourceSplit>>;

/// Polls the readers round-robin, serving split requests, for `polls` polls or to the end.
fn run(enumerator: &mut dyn SplitEnumerator<FileSourceSplit>, readers: &mut [Reader], out: &mut Out, polls: usize) {
    let mut active: VecDeque<usize> = (0..readers.len()).collect();
    let mut done = 0;
    while let Some(i) = active.pop_front() {
        if done == polls {
            return;
        }
        done += 1;
        match readers[i].poll_next(out).expect("poll") {
            ReadStatus::MoreAvailable | ReadStatus::NothingAvailable => active.push_back(i),
            ReadStatus::NeedSplits => {
                let a = enumerator.handle_split_request(i as u32).expect("request");
                readers[i].add_splits(a.splits);
                if a.no_more_splits {
                    readers[i].notify_no_more_splits();
                }
                active.push_back(i);
            }
            ReadStatus::EndOfInput => {}
        }
    }
}

fn ids(batches: &[RecordBatch]) -> Vec<i64> {
    let mut out: Vec<i64> = batches
        .iter()
        .flat_map(|b| b.column(0).as_any().downcast_ref::<Int64Array>().expect("id column").values().to_vec())
        .collect();
    out.sort_unstable();
    out
}

#[test]
fn every_row_arrives_once_across_a_checkpoint_and_a_restore() {
    let dir = tempfile::tempdir().unwrap();
    let rows = 3000;
    let cases = [
        ("csv", vec![]),
        ("json", vec![]),
        ("avro", vec![]),
        ("parquet", vec![("parquet.max-row-group-size", "256")]),
        ("orc", vec![("orc.stripe.size", "1")]),
    ];
    for (name, mut options) in cases {
        let decimal = name != "orc";
        options.push(("source.batch-size", "90"));
        let f = format(name, &options);
        // Two files in a directory (and a hidden one the source skips).
        let data = dir.path().join(name);
        std::fs::create_dir(&data).unwrap();
        write(f.as_ref(), &data.join("a"), &[batch(0, rows / 2, decimal)]);
        write(f.as_ref(), &data.join("b"), &[batch(rows / 2, rows, decimal)]);
        std::fs::write(data.join(".hidden"), b"not data").unwrap();
        let len = std::fs::metadata(data.join("a")).unwrap().len();
        let source = FileSource::new(std::slice::from_ref(&data), f.clone(), schema(decimal), len / 5).unwrap();
        for stop_after in [0, 3, 17, 40] {
            let mut enumerator = source.create_enumerator(3).unwrap();
            let mut readers: Vec<Reader> = (0..3).map(|i| source.create_reader(i).unwrap()).collect();
            let mut before = Out(Vec::new());
            run(enumerator.as_mut(), &mut readers, &mut before, stop_after);
            let states: Vec<ReaderState<FileSourceSplit>> = readers.iter_mut().map(|r| r.snapshot_state()).collect();
            // The job fails; a new attempt restores the readers' states.
            let mut enumerator = source.create_enumerator(3).unwrap();
            let consumed: Vec<String> = states
                .iter()
                .flat_map(|s| s.finished.iter().cloned().chain(s.unfinished.iter().map(|u| u.split.id())))
                .collect();
            enumerator.restore(&consumed);
            let mut readers: Vec<Reader> = (0..3).map(|i| source.create_reader(i).unwrap()).collect();
            for (r, s) in readers.iter_mut().zip(states) {
                r.add_splits(s.unfinished);
            }
            let mut after = Out(Vec::new());
            run(enumerator.as_mut(), &mut readers, &mut after, usize::MAX);
            let mut all = before.0;
            all.extend(after.0);
            assert_eq!(ids(&all), (0..rows).collect::<Vec<_>>(), "{name}, checkpoint after {stop_after} polls");
        }
    }
}

#[test]
fn the_schema_is_inferred_from_the_first_file_when_none_is_declared() {
    let dir = tempfile::tempdir().unwrap();
    let f = format("parquet", &[]);
    let path = dir.path().join("p.parquet");
    write(f.as_ref(), &path, &[batch(0, 10, true)]);
    let mut c = riffle_api::Configuration::new();
    c.set("format", "parquet");
    let source = FileSource::from_config(&[path], &c, None).unwrap();
    assert_eq!(source.schema(), schema(true));
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let err = FileSource::from_config(&[empty], &c, None).unwrap_err();
    assert!(err.to_string().contains("no file to infer a schema from"), "{err}");
}

/// `source.monitor-interval`: the source is unbounded, a file added later (atomically: written
/// hidden, then renamed) is read once, and the enumerator's state (the paths seen) carries
/// over a checkpoint, so a restored source reads no file twice and misses none added since.
#[test]
fn a_continuous_file_source_reads_each_new_file_once_across_a_checkpoint() {
    use riffle_api::source::Boundedness;
    let dir = tempfile::tempdir().unwrap();
    let f = format("parquet", &[("parquet.max-row-group-size", "100")]);
    let add = |name: &str, from: i64, to: i64| {
        let tmp = dir.path().join(format!(".{name}.tmp"));
        write(f.as_ref(), &tmp, &[batch(from, to, true)]);
        std::fs::rename(&tmp, dir.path().join(name)).unwrap();
    };
    add("a.parquet", 0, 500);
    let mut c = riffle_api::Configuration::new();
    c.set("format", "parquet").set("source.monitor-interval", "1 ms").set("source.split-size", "1");
    let glob = dir.path().join("*.parquet");
    let source = FileSource::from_config(std::slice::from_ref(&glob), &c, Some(schema(true))).unwrap();
    assert_eq!(source.boundedness(), Boundedness::Unbounded);
    let mut enumerator = source.create_enumerator(2).unwrap();
    let mut readers: Vec<Reader> = (0..2).map(|i| source.create_reader(i).unwrap()).collect();
    let mut out = Out(Vec::new());
    run(enumerator.as_mut(), &mut readers, &mut out, 100);
    assert_eq!(ids(&out.0), (0..500).collect::<Vec<_>>(), "the first file, and no end");
    add("b.parquet", 500, 800);
    // Not matching the glob.
    write(f.as_ref(), &dir.path().join("c.orc"), &[batch(5000, 5010, true)]);
    std::thread::sleep(std::time::Duration::from_millis(5));
    run(enumerator.as_mut(), &mut readers, &mut out, 3);
    // A checkpoint in the middle of b: the enumerator's state first, then the readers'.
    let state = enumerator.snapshot_state().unwrap().expect("the enumerator keeps state");
    let states: Vec<ReaderState<FileSourceSplit>> = readers.iter_mut().map(|r| r.snapshot_state()).collect();
    // The job fails; meanwhile another file arrives and a read one is rewritten.
    add("d.parquet", 800, 1000);
    add("a.parquet", 9000, 9800);
    let mut enumerator = source.create_enumerator(2).unwrap();
    enumerator.restore_state(&state).unwrap();
    let consumed: Vec<String> = states
        .iter()
        .flat_map(|s| s.finished.iter().cloned().chain(s.unfinished.iter().map(|u| u.split.id())))
        .collect();
    enumerator.restore(&consumed);
    let mut readers: Vec<Reader> = (0..2).map(|i| source.create_reader(i).unwrap()).collect();
    for (r, s) in readers.iter_mut().zip(states) {
        r.add_splits(s.unfinished);
    }
    let mut after = Out(Vec::new());
    run(enumerator.as_mut(), &mut readers, &mut after, 300);
    // Up to the checkpoint (nothing was read after it) and after the restore: each row of a,
    // b and d once; the rewritten a not again.
    let mut all = out.0;
    all.extend(after.0);
    assert_eq!(ids(&all), (0..1000).collect::<Vec<_>>());
}

#[test]
fn a_glob_matching_nothing_and_a_missing_input_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = riffle_api::Configuration::new();
    c.set("format", "csv");
    let glob = dir.path().join("*.csv");
    let err = FileSource::from_config(std::slice::from_ref(&glob), &c, Some(schema(true))).unwrap_err();
    assert_eq!(err.to_string(), format!("the glob '{}' matches no file", glob.display()));
    assert!(!err.is_retryable());
    let missing = dir.path().join("missing");
    let err = FileSource::from_config(std::slice::from_ref(&missing), &c, Some(schema(true))).unwrap_err();
    assert!(err.to_string().starts_with(&format!("cannot read input '{}'", missing.display())), "{err}");
    assert!(err.is_retryable(), "an input may appear later");
    // Continuous: a glob may match nothing yet.
    c.set("source.monitor-interval", "1 s");
    assert!(FileSource::from_config(std::slice::from_ref(&glob), &c, Some(schema(true))).is_ok());
}
