//! Every format: write then read back exact values (ints, floats, strings, timestamps,
//! decimals, nulls), over any split size; positions seek back to the same records.

mod common;

use common::{batch, format, read_all, schema, write};
use riffle_connectors::Position;

/// A format's name, its options, and whether it holds decimals.
type Case = (&'static str, Vec<(&'static str, &'static str)>, bool);

fn formats() -> Vec<Case> {
    vec![
        ("csv", vec![], true),
        ("csv", vec![("csv.header", "true"), ("csv.field-delimiter", ";"), ("csv.null-literal", "\\N")], true),
        ("json", vec![], true),
        ("json", vec![("json.timestamp-format.standard", "ISO-8601")], true),
        ("avro", vec![], true),
        ("avro", vec![("avro.codec", "null")], true),
        ("avro", vec![("avro.codec", "deflate")], true),
        ("avro", vec![("avro.codec", "zstandard")], true),
        ("parquet", vec![("parquet.max-row-group-size", "100")], true),
        ("parquet", vec![("parquet.compression", "ZSTD"), ("parquet.max-row-group-size", "64")], true),
        ("parquet", vec![("parquet.compression", "GZIP")], true),
        ("parquet", vec![("parquet.compression", "LZ4_RAW")], true),
        ("orc", vec![], false),
        ("orc", vec![("orc.compress", "SNAPPY"), ("orc.stripe.size", "1")], false),
    ]
}

#[test]
fn every_format_round_trips_exact_values_over_any_split_size() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (name, options, decimal)) in formats().into_iter().enumerate() {
        let f = format(name, &options);
        let path = dir.path().join(format!("data-{i}.{name}"));
        // Several writes: several Avro blocks, Parquet row groups, ORC stripes.
        let batches: Vec<_> = (0..5).map(|k| batch(k * 200, (k + 1) * 200, decimal)).collect();
        write(f.as_ref(), &path, &batches);
        let expected = batch(0, 1000, decimal);
        let len = std::fs::metadata(&path).unwrap().len();
        for split_size in [13, 97, 4096, len / 3 + 1, u64::MAX / 2] {
            let got = read_all(f.as_ref(), &path, schema(decimal), split_size);
            assert_eq!(got, expected, "{name} {options:?} split size {split_size}");
        }
    }
}

#[test]
fn an_empty_file_reads_as_no_rows() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (name, options, decimal)) in formats().into_iter().enumerate() {
        let f = format(name, &options);
        let path = dir.path().join(format!("empty-{i}.{name}"));
        let mut w = f.create(&path, schema(decimal)).unwrap();
        w.write(&batch(0, 0, decimal)).unwrap();
        w.finish().unwrap();
        let got = read_all(f.as_ref(), &path, schema(decimal), 10);
        assert_eq!(got.num_rows(), 0, "{name}");
    }
}

#[test]
fn a_reader_seeks_back_to_its_position_without_rereading_the_split() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (name, mut options, decimal)) in formats().into_iter().enumerate() {
        options.push(("source.batch-size", "7"));
        let f = format(name, &options);
        let path = dir.path().join(format!("seek-{i}.{name}"));
        let batches: Vec<_> = (0..4).map(|k| batch(k * 250, (k + 1) * 250, decimal)).collect();
        write(f.as_ref(), &path, &batches);
        let len = std::fs::metadata(&path).unwrap().len();
        for split in f.splits(&path, len / 2 + 1).unwrap() {
            // Positions after 0, 1, 5 and 40 batches, each resumed by a fresh reader.
            let mut r = f.open(&split, schema(decimal)).unwrap();
            let mut seen = Vec::new();
            let mut positions: Vec<(Position, usize)> = vec![(r.position(), 0)];
            while let Some(b) = r.next_batch().unwrap() {
                seen.push(b);
                if [1, 5, 40].contains(&seen.len()) {
                    positions.push((r.position(), seen.len()));
                }
            }
            let all = arrow::compute::concat_batches(&schema(decimal), &seen).unwrap();
            for (pos, after) in positions {
                let done: usize = seen[..after].iter().map(|b| b.num_rows()).sum();
                let mut again = f.open(&split, schema(decimal)).unwrap();
                again.seek(pos).unwrap();
                assert_eq!(again.position(), pos, "{name}");
                let mut rest = Vec::new();
                while let Some(b) = again.next_batch().unwrap() {
                    rest.push(b);
                }
                let rest = arrow::compute::concat_batches(&schema(decimal), &rest).unwrap();
                assert_eq!(rest, all.slice(done, all.num_rows() - done), "{name} {options:?} from {pos}");
            }
            // A position outside the split is refused.
            let mut r = f.open(&split, schema(decimal)).unwrap();
            assert!(r.seek(Position::new(u64::MAX / 4, 3)).is_err(), "{name}");
        }
    }
}

#[test]
fn parquet_and_orc_split_by_row_group_and_stripe() {
    let dir = tempfile::tempdir().unwrap();
    let pq = format("parquet", &[("parquet.max-row-group-size", "100")]);
    let path = dir.path().join("p.parquet");
    write(pq.as_ref(), &path, &[batch(0, 1000, true)]);
    let splits = pq.splits(&path, 1).unwrap();
    assert_eq!(splits.len(), 10);
    assert_eq!((splits[3].start, splits[3].end), (3, 4));
    assert_eq!(pq.splits(&path, u64::MAX).unwrap().len(), 1);

    let orc = format("orc", &[("orc.stripe.size", "1")]);
    let path = dir.path().join("o.orc");
    write(orc.as_ref(), &path, &[batch(0, 3000, false)]);
    let splits = orc.splits(&path, 1).unwrap();
    assert!(splits.len() >= 3, "{splits:?}");
    assert!(splits.iter().all(|s| s.end == s.start + 1));
}

#[test]
fn schemas_are_inferred_from_files() {
    let dir = tempfile::tempdir().unwrap();
    for (name, decimal) in [("parquet", true), ("avro", true), ("orc", false)] {
        let f = format(name, &[]);
        let path = dir.path().join(format!("i.{name}"));
        write(f.as_ref(), &path, &[batch(0, 10, decimal)]);
        let inferred = f.infer_schema(&path).unwrap();
        let names: Vec<_> = inferred.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names[..4], ["id", "score", "name", "ts"], "{name}");
        assert_eq!(read_all(f.as_ref(), &path, inferred.clone(), 1 << 20).num_rows(), 10, "{name}");
    }
    let csv = format("csv", &[("csv.header", "true")]);
    let path = dir.path().join("i.csv");
    std::fs::write(&path, "id,price,label\n1,2.5,x\n2,3.0,y\n").unwrap();
    let s = csv.infer_schema(&path).unwrap();
    let got: Vec<_> = s.fields().iter().map(|f| (f.name().clone(), f.data_type().to_string())).collect();
    assert_eq!(
        got,
        [("id".into(), "Int64".into()), ("price".into(), "Float64".into()), ("label".into(), "Utf8".into())]
    );
    let json = format("json", &[]);
    let path = dir.path().join("i.json");
    std::fs::write(&path, "{\"a\": 1, \"b\": \"x\"}\n{\"a\": 2, \"c\": 1.5}\n").unwrap();
    let s = json.infer_schema(&path).unwrap();
    let got: Vec<_> = s.fields().iter().map(|f| (f.name().clone(), f.data_type().to_string())).collect();
    assert_eq!(got, [("a".into(), "Int64".into()), ("b".into(), "Utf8".into()), ("c".into(), "Float64".into())]);
}

#[test]
fn raw_text_lines_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let f = format("raw", &[]);
    let path = dir.path().join("t.txt");
    std::fs::write(&path, "alpha\r\nbeta\n\ngamma").unwrap();
    let schema = f.infer_schema(&path).unwrap();
    for split_size in [1, 3, 100] {
        let got = read_all(f.as_ref(), &path, schema.clone(), split_size);
        let col = got.column(0).as_any().downcast_ref::<arrow::array::StringArray>().unwrap();
        assert_eq!(col.iter().map(|v| v.unwrap()).collect::<Vec<_>>(), ["alpha", "beta", "", "gamma"]);
    }
    let out = dir.path().join("out.txt");
    let b = read_all(f.as_ref(), &path, schema, 100);
    write(f.as_ref(), &out, &[b]);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "alpha\nbeta\n\ngamma\n");
}
