//! A malformed record fails the read with the file, the line (or byte offset, row group) and
//! the reason; with the format's ignore option it is skipped and counted instead.

mod common;

use std::sync::Arc;

use arrow::array::{Array, Int64Array};
use arrow::datatypes::{DataType, Field, Schema};
use common::format;
use riffle_connectors::{ConnectorError, Format, Location};

fn two_ints() -> Arc<Schema> {
    Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true), Field::new("b", DataType::Int64, true)]))
}

/// Reads every split; the rows of column `a`, the skipped count, or the first error.
fn read(f: &dyn Format, path: &std::path::Path, split_size: u64) -> Result<(Vec<i64>, u64), ConnectorError> {
    let (mut rows, mut skipped) = (Vec::new(), 0);
    for split in f.splits(path, split_size)? {
        let mut r = f.open(&split, two_ints())?;
        while let Some(b) = r.next_batch()? {
            let a = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            rows.extend((0..a.len()).map(|i| a.value(i)));
        }
        skipped += r.skipped();
    }
    Ok((rows, skipped))
}

#[test]
fn a_malformed_csv_line_is_named_or_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.csv");
    std::fs::write(&path, "1,10\n2,20\n3,x\n4,40\n5\n6,60\n").unwrap();
    for split_size in [4, 1000] {
        let err = read(format("csv", &[]).as_ref(), &path, split_size).unwrap_err();
        match &err {
            ConnectorError::Malformed { path: p, location, reason } => {
                assert_eq!(p, &path);
                assert_eq!(*location, Location::Line { line: 3, offset: 10 }, "{err}");
                assert_eq!(
                    reason,
                    "Parser error: Error while parsing value 'x' as type 'Int64' for column 1. Row data: '[3,x]'"
                );
            }
            other => panic!("{other}"),
        }
        assert!(err.to_string().starts_with(&format!("{}: malformed record at line 3 (byte 10): ", path.display())));
        assert!(!err.is_retryable());
        let ok = read(format("csv", &[("csv.ignore-parse-errors", "true")]).as_ref(), &path, split_size).unwrap();
        assert_eq!(ok, (vec![1, 2, 4, 6], 2), "split size {split_size}");
    }
}

#[test]
fn csv_options_delimiter_quote_comments_and_null_literal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opts.csv");
    std::fs::write(&path, "# a comment\n1|'7'\nNULL|8\n").unwrap();
    let f = format(
        "csv",
        &[
            ("csv.field-delimiter", "|"),
            ("csv.quote-character", "'"),
            ("csv.allow-comments", "true"),
            ("csv.null-literal", "NULL"),
        ],
    );
    let split = &f.splits(&path, 1 << 20).unwrap()[0];
    let b = f.open(split, two_ints()).unwrap().next_batch().unwrap().unwrap();
    let a = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
    let bcol = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
    assert_eq!((a.len(), a.value(0), a.is_null(1)), (2, 1, true));
    assert_eq!((bcol.value(0), bcol.value(1)), (7, 8));
    let bad = riffle_connectors::format::by_name("csv", &{
        let mut c = riffle_api::Configuration::new();
        c.set("csv.field-delimiter", "ab");
        c
    })
    .unwrap_err();
    assert_eq!(
        bad.to_string(),
        "invalid value 'ab' for configuration key 'csv.field-delimiter': expected a single ASCII character"
    );
}

#[test]
fn a_malformed_json_line_is_named_or_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.json");
    std::fs::write(
        &path,
        "{\"a\":1,\"b\":10}\n{\"a\":2}\n{\"a\":3,\"b\":\n{\"a\":\"four\",\"b\":4}\n{\"a\":5,\"b\":50}\n",
    )
    .unwrap();
    let err = read(format("json", &[]).as_ref(), &path, 1000).unwrap_err();
    assert!(matches!(err, ConnectorError::Malformed { location: Location::Line { line: 3, offset: 23 }, .. }), "{err}");
    let ok = read(format("json", &[("json.ignore-parse-errors", "true")]).as_ref(), &path, 7).unwrap();
    assert_eq!(ok, (vec![1, 2, 5], 2));
    // A missing field is null, unless json.fail-on-missing-field says it is malformed.
    let strict = format("json", &[("json.fail-on-missing-field", "true")]);
    let good = dir.path().join("missing.json");
    std::fs::write(&good, "{\"a\":1,\"b\":10}\n{\"a\":2}\n").unwrap();
    let err = read(strict.as_ref(), &good, 1000).unwrap_err();
    assert!(err.to_string().contains("line 2 (byte 15): missing field 'b'"), "{err}");
    assert_eq!(read(format("json", &[]).as_ref(), &good, 1000).unwrap(), (vec![1, 2], 0));
    // Flink refuses the two options together.
    let both = riffle_connectors::format::by_name("json", &{
        let mut c = riffle_api::Configuration::new();
        c.set("json.fail-on-missing-field", "true").set("json.ignore-parse-errors", "true");
        c
    });
    assert!(both.is_err());
}

#[test]
fn corrupt_binary_files_name_the_place() {
    let dir = tempfile::tempdir().unwrap();
    let schema = common::schema(true);
    for name in ["parquet", "avro"] {
        let f = format(name, &[("parquet.max-row-group-size", "100")]);
        let path = dir.path().join(format!("c.{name}"));
        common::write(f.as_ref(), &path, &[common::batch(0, 300, true), common::batch(300, 600, true)]);
        // Garble the middle of the file (data, not the footer or header).
        let mut bytes = std::fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        for b in &mut bytes[mid - 40..mid + 40] {
            *b = 0xff;
        }
        std::fs::write(&path, &bytes).unwrap();
        let res: Result<Vec<_>, ConnectorError> = (|| {
            let mut out = Vec::new();
            for split in f.splits(&path, 1 << 30)? {
                let mut r = f.open(&split, schema.clone())?;
                while let Some(b) = r.next_batch()? {
                    out.push(b);
                }
            }
            Ok(out)
        })();
        let err = res.expect_err(name);
        let msg = err.to_string();
        assert!(msg.starts_with(&format!("{}: malformed record at ", path.display())), "{msg}");
        match name {
            "parquet" => assert!(msg.contains("row group"), "{msg}"),
            _ => assert!(msg.contains("byte "), "{msg}"),
        }
    }
}
