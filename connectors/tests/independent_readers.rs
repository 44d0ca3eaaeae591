//! Files riffle writes are read by readers no one here wrote, and riffle reads theirs: pyarrow
//! (Parquet, ORC, CSV, JSON) and fastavro (Avro, with cramjam for snappy), installed from PyPI into a virtual
//! environment under `${RIFFLE_TEST_DEPS:-$HOME/.cache/riffle-test-deps}/pyenv` (made here on
//! first use, or by `scripts/setup-tests`). Same rows, same types, exact values.

mod common;
#[path = "common/pyenv.rs"]
mod pyenv;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pyenv::run;

use common::{batch, format, read_all, schema, write, TS0};
use serde_json::{json, Value};

/// The virtual environment's python (made once); without `python3` these tests fail, naming
/// the set-up script (they are the proof that other readers agree).
fn python() -> &'static Path {
    match pyenv::python() {
        Some(p) => p,
        None => panic!("no python3: the independent readers need it (run scripts/setup-tests)"),
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/formats.py")
}

/// The rows 0..n as the script prints them.
fn expected(n: i64, decimal: bool) -> Value {
    let rows: Vec<Value> = (0..n)
        .map(|i| {
            let score = (i % 4 != 1).then_some(i as f64 * 1.5 - 0.25);
            let ts = (i % 6 != 3).then_some(TS0 + i * 1_000_123);
            let amount = (decimal && i % 7 != 4).then(|| {
                let cents = i * 101 - 5;
                format!("{}{}.{:02}", if cents < 0 { "-" } else { "" }, cents.abs() / 100, cents.abs() % 100)
            });
            json!([i, score, common::name(i), ts, amount])
        })
        .collect();
    Value::Array(rows)
}

const ROWS: i64 = 200;

/// riffle's format, its options when riffle writes, whether it holds decimals.
type Case = (&'static str, &'static [(&'static str, &'static str)], bool);

const CASES: [Case; 5] = [
    ("parquet", &[("parquet.max-row-group-size", "64")], true),
    ("orc", &[], false),
    ("csv", &[], true),
    ("json", &[], true),
    ("avro", &[], true),
];

#[test]
fn pyarrow_and_fastavro_read_what_riffle_writes() {
    let dir = tempfile::tempdir().unwrap();
    for (name, options, decimal) in CASES {
        let f = format(name, options);
        let path = dir.path().join(format!("riffle.{name}"));
        write(f.as_ref(), &path, &[batch(0, ROWS / 2, decimal), batch(ROWS / 2, ROWS, decimal)]);
        let mut cmd = Command::new(python());
        cmd.arg(script()).arg("read").arg(name).arg(&path);
        let got: Value = serde_json::from_str(&run(cmd, Duration::from_secs(120))).expect("JSON rows");
        assert_eq!(got, expected(ROWS, decimal), "{name}: what pyarrow/fastavro read from riffle's file");
    }
}

#[test]
fn riffle_reads_what_pyarrow_and_fastavro_write() {
    let dir = tempfile::tempdir().unwrap();
    for (name, _, decimal) in CASES {
        let path = dir.path().join(format!("python.{name}"));
        let mut cmd = Command::new(python());
        cmd.arg(script()).arg("write").arg(name).arg(&path).arg(ROWS.to_string());
        run(cmd, Duration::from_secs(120));
        let f = format(name, &[]);
        for split_size in [512, 1 << 30] {
            let got = read_all(f.as_ref(), &path, schema(decimal), split_size);
            assert_eq!(got, batch(0, ROWS, decimal), "{name}: what riffle read from the Python-written file");
        }
    }
}

/// pyarrow's CSV writer quotes fields holding line breaks: with `csv.allow-quoted-newlines`
/// riffle reads such a file back exactly, whatever the split size (each file is one split).
#[test]
fn riffle_reads_pyarrows_csv_with_line_breaks_in_quoted_fields() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("multiline.csv");
    let texts: Vec<String> = (0..300)
        .map(|i| match i % 5 {
            0 => format!("plain {i}"),
            1 => format!("two\nlines {i}"),
            2 => format!("crlf\r\nand \"quotes\", commas {i}"),
            3 => format!("\n\nbreaks first {i}\n"),
            _ => format!("é {i}"),
        })
        .collect();
    let script = "import json, sys, pyarrow as pa, pyarrow.csv as c\n\
                  texts = json.load(open(sys.argv[2]))\n\
                  c.write_csv(pa.table({'id': list(range(len(texts))), 'text': texts}), sys.argv[1])\n";
    let texts_path = dir.path().join("texts.json");
    std::fs::write(&texts_path, serde_json::to_vec(&texts).expect("json")).expect("write");
    let mut cmd = Command::new(python());
    cmd.arg("-c").arg(script).arg(&path).arg(&texts_path);
    run(cmd, Duration::from_secs(120));

    let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new("id", arrow::datatypes::DataType::Int64, false),
        arrow::datatypes::Field::new("text", arrow::datatypes::DataType::Utf8, true),
    ]));
    let f = format("csv", &[("csv.header", "true"), ("csv.allow-quoted-newlines", "true"), ("source.batch-size", "7")]);
    for split_size in [16, 1 << 20] {
        let b = read_all(f.as_ref(), &path, schema.clone(), split_size);
        let ids = b.column(0).as_any().downcast_ref::<arrow::array::Int64Array>().expect("ids");
        let got = b.column(1).as_any().downcast_ref::<arrow::array::StringArray>().expect("texts");
        assert_eq!(ids.values().to_vec(), (0..300).collect::<Vec<i64>>());
        let got: Vec<String> = got.iter().map(|t| t.unwrap_or_default().to_string()).collect();
        assert_eq!(got, texts, "split size {split_size}");
    }
    // Without the option the same file is refused, not cut.
    let plain = format("csv", &[("csv.header", "true")]);
    let split = plain.splits(&path, 1 << 20).expect("splits").remove(0);
    let mut r = plain.open(&split, schema).expect("open");
    let err = r.next_batch().expect_err("refused").to_string();
    assert!(err.contains("line 3") && err.contains("csv.allow-quoted-newlines"), "{err}");
}
