//! CSV records whose quoted fields hold line breaks: with `csv.allow-quoted-newlines` each file
//! is one split and such records are read whole (also across a checkpoint); without it the
//! read fails naming the file, the record's line and the option — never a silently cut record.

mod common;

use std::sync::Arc;

use arrow::array::{Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use common::format;
use riffle_connectors::{Format, Position};

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false), Field::new("text", DataType::Utf8, true)]))
}

/// The rows the file below holds.
fn expected() -> Vec<(i64, String)> {
    vec![
        (1, "plain".into()),
        (2, "two\nlines".into()),
        (3, "say \"hi\"\r\nthen\n\nfour lines".into()),
        (4, "after".into()),
        (5, "ends, with a break\n".into()),
        (6, "last".into()),
    ]
}

const FILE: &str = "1,plain\n2,\"two\nlines\"\n3,\"say \"\"hi\"\"\r\nthen\n\nfour lines\"\n4,after\n5,\"ends, with a break\n\"\n6,last\n";

fn rows(batches: &[RecordBatch]) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    for b in batches {
        let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        let texts = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
        for i in 0..b.num_rows() {
            out.push((ids.value(i), texts.value(i).to_string()));
        }
    }
    out
}

fn read(f: &dyn Format, path: &std::path::Path, split_size: u64) -> riffle_connectors::Result<Vec<(i64, String)>> {
    let mut batches = Vec::new();
    for split in f.splits(path, split_size)? {
        let mut r = f.open(&split, schema())?;
        while let Some(b) = r.next_batch()? {
            batches.push(b);
        }
    }
    Ok(rows(&batches))
}

#[test]
fn with_the_option_each_file_is_one_split_and_quoted_line_breaks_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.csv");
    std::fs::write(&path, FILE).unwrap();
    // Batches of 2 lines: the four-line record is completed past the batch's lines.
    let f = format("csv", &[("csv.allow-quoted-newlines", "true"), ("source.batch-size", "2")]);
    // A split size that would cut inside record 2's quoted line break (byte 14) and everywhere.
    for size in [1, 14, 16, 1 << 20] {
        let splits = f.splits(&path, size).unwrap();
        assert_eq!(splits.len(), 1, "one split per file, whatever the split size ({size})");
        assert_eq!(read(f.as_ref(), &path, size).unwrap(), expected(), "split size {size}");
    }
    // A restored reader seeks to its position (a record start) and reads nothing twice.
    let split = &f.splits(&path, 1).unwrap()[0];
    let mut r = f.open(split, schema()).unwrap();
    let first = r.next_batch().unwrap().unwrap();
    let at: Position = r.position();
    let mut restored = f.open(split, schema()).unwrap();
    restored.seek(at).unwrap();
    let mut rest = Vec::new();
    while let Some(b) = restored.next_batch().unwrap() {
        rest.push(b);
    }
    let mut all = rows(&[first]);
    all.extend(rows(&rest));
    assert_eq!(all, expected());
}

#[test]
fn without_the_option_a_quoted_line_break_fails_naming_the_file_the_line_and_the_option() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.csv");
    std::fs::write(&path, FILE).unwrap();
    let f = format("csv", &[]);
    // Split at byte 14, inside record 2's quoted field: the reader of the first split owns
    // record 2 (line 2) and fails; so does a reader of the whole file.
    for size in [14, 1 << 20] {
        let err = read(f.as_ref(), &path, size).unwrap_err().to_string();
        assert!(err.starts_with(&path.display().to_string()), "{err}");
        assert!(err.contains("line 2"), "{err}");
        assert!(err.contains("`csv.allow-quoted-newlines`"), "{err}");
        assert!(err.contains("a quoted field holds a line break"), "{err}");
    }
    // Records on single lines still split anywhere.
    let plain = dir.path().join("plain.csv");
    std::fs::write(&plain, "1,\"a, b\"\n2,\"c \"\"d\"\"\"\n3,e\n").unwrap();
    let got = read(f.as_ref(), &plain, 5).unwrap();
    assert_eq!(got, vec![(1, "a, b".into()), (2, "c \"d\"".into()), (3, "e".into())]);
    assert!(f.splits(&plain, 5).unwrap().len() > 1);
    // A malformed record among multi-line ones is reported at its own line.
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "1,\"x\ny\"\nnot a number,z\n").unwrap();
    let f = format("csv", &[("csv.allow-quoted-newlines", "true")]);
    let err = read(f.as_ref(), &bad, 1).unwrap_err().to_string();
    assert!(err.contains("line 3"), "{err}");
}
