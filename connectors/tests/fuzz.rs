//! Hostile input never panics a reader: truncated files and random bytes, in every format,
//! end in an error or in rows (a skip), never in a crash. A seeded generator, a few hundred
//! cases per format.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use common::{batch, format, schema, write};
use riffle_connectors::Format;

/// A small xorshift generator: reproducible cases without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Reads `path` whole (schema inference, splits, every batch); any outcome but a panic.
fn read_anyhow(f: &dyn Format, path: &Path, split_size: u64, decimal: bool) {
    let _ = f.infer_schema(path);
    let Ok(splits) = f.splits(path, split_size) else { return };
    for split in splits {
        let Ok(mut r) = f.open(&split, schema(decimal)) else { continue };
        for _ in 0..10_000 {
            match r.next_batch() {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
}

#[test]
fn truncated_and_random_files_never_panic_a_reader() {
    let dir = tempfile::tempdir().unwrap();
    type Case = (&'static str, Vec<(&'static str, &'static str)>, bool);
    let cases: [Case; 6] = [
        ("csv", vec![("csv.ignore-parse-errors", "true")], true),
        ("json", vec![], true),
        ("avro", vec![], true),
        ("parquet", vec![("parquet.max-row-group-size", "50")], true),
        ("orc", vec![("orc.stripe.size", "1")], false),
        ("raw", vec![], false),
    ];
    let mut rng = Rng(0x5eed_1234_abcd_9876);
    for (name, options, decimal) in cases {
        let f = format(name, &options);
        let good = dir.path().join(format!("good.{name}"));
        if name == "raw" {
            std::fs::write(&good, "a line\nanother\n").unwrap();
        } else {
            write(f.as_ref(), &good, &[batch(0, 150, decimal), batch(150, 300, decimal)]);
        }
        let bytes = std::fs::read(&good).unwrap();
        let path = dir.path().join(format!("case.{name}"));
        for case in 0..300 {
            let mut data = match case % 3 {
                // Truncated at any length.
                0 => bytes[..rng.below(bytes.len() as u64 + 1) as usize].to_vec(),
                // Random bytes flipped in a good file.
                1 => {
                    let mut d = bytes.clone();
                    for _ in 0..=rng.below(8) {
                        let i = rng.below(d.len() as u64) as usize;
                        d[i] = rng.next() as u8;
                    }
                    d
                }
                // Random bytes, sometimes behind the format's magic.
                _ => {
                    let n = rng.below(600) as usize;
                    let mut d: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                    if rng.below(2) == 0 {
                        let magic: &[u8] = match name {
                            "parquet" => b"PAR1",
                            "orc" => b"ORC",
                            "avro" => b"Obj\x01",
                            _ => b"",
                        };
                        d.splice(0..0, magic.iter().copied());
                    }
                    d
                }
            };
            if name == "parquet" && case % 3 == 2 && data.len() > 8 {
                // A footer-looking tail: length then magic.
                let l = data.len();
                data[l - 4..].copy_from_slice(b"PAR1");
            }
            std::fs::write(&path, &data).unwrap();
            let split_size = 1 + rng.below(bytes.len() as u64);
            let outcome = catch_unwind(AssertUnwindSafe(|| read_anyhow(f.as_ref(), &path, split_size, decimal)));
            if outcome.is_err() {
                let keep = std::env::temp_dir().join(format!("riffle-fuzz-{name}-{case}"));
                let _ = std::fs::write(&keep, &data);
                panic!("{name}: case {case} (split size {split_size}) panicked; input kept at {}", keep.display());
            }
        }
    }
}
