//! Runs every `tests/slt/*.slt` file, each in a fresh `TableEnvironment`, in the
//! sqllogictest format (a small runner of the same file format: the `sqllogictest` crate is
//! not in the build):
//!
//! ```text
//! # a comment
//! statement ok
//! CREATE TABLE t (...)
//!
//! statement error <text the error message must contain>
//! DROP TABLE nope
//!
//! query <one letter per column> [rowsort]
//! SELECT ...
//! ----
//! value value
//! ```
//!
//! A query's rows are its values separated by one space (NULL as `NULL`, an empty string as
//! `(empty)`); a value with line breaks (EXPLAIN) spans lines, its blank lines left out (a
//! blank line ends a record). `rowsort` sorts the rows
//! first (parallel results come in any order).

use std::path::{Path, PathBuf};

use riffle_sql::TableEnvironment;

#[derive(Debug)]
enum Record {
    Ok { sql: String, line: usize },
    Error { sql: String, expected: String, line: usize },
    Query { sql: String, columns: usize, sort: bool, expected: Vec<String>, line: usize },
}

fn parse(text: &str) -> Vec<Record> {
    let lines: Vec<&str> = text.lines().collect();
    let mut records = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let head = lines[i].trim();
        let line = i + 1;
        i += 1;
        if head.is_empty() || head.starts_with('#') {
            continue;
        }
        let mut sql = Vec::new();
        while i < lines.len() && !lines[i].trim().is_empty() && lines[i].trim() != "----" {
            sql.push(lines[i]);
            i += 1;
        }
        let sql = sql.join("\n");
        if head == "statement ok" {
            records.push(Record::Ok { sql, line });
        } else if let Some(expected) = head.strip_prefix("statement error") {
            records.push(Record::Error { sql, expected: expected.trim().to_string(), line });
        } else if let Some(spec) = head.strip_prefix("query ") {
            let mut parts = spec.split_whitespace();
            let columns = parts.next().map_or(0, str::len);
            let sort = parts.any(|p| p == "rowsort");
            let mut expected = Vec::new();
            if i < lines.len() && lines[i].trim() == "----" {
                i += 1;
                while i < lines.len() && !lines[i].is_empty() {
                    expected.push(lines[i].to_string());
                    i += 1;
                }
            }
            records.push(Record::Query { sql, columns, sort, expected, line });
        } else {
            panic!("line {line}: unknown record '{head}'");
        }
    }
    records
}

fn run_file(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let mut env = TableEnvironment::default();
    let mut failures = Vec::new();
    for record in parse(&text) {
        match record {
            Record::Ok { sql, line } => {
                if let Err(e) = env.execute_sql(&sql) {
                    failures.push(format!("{name}:{line}: expected ok, got error: {e}"));
                }
            }
            Record::Error { sql, expected, line } => match env.execute_sql(&sql) {
                Ok(_) => failures.push(format!("{name}:{line}: expected an error containing '{expected}', got ok")),
                Err(e) if !e.to_string().contains(&expected) => {
                    failures.push(format!("{name}:{line}: expected an error containing '{expected}', got: {e}"))
                }
                Err(_) => {}
            },
            Record::Query { sql, columns, sort, expected, line } => match env.execute_sql(&sql) {
                Err(e) => failures.push(format!("{name}:{line}: query failed: {e}")),
                Ok(r) => {
                    if r.schema.fields().len() != columns {
                        failures.push(format!(
                            "{name}:{line}: {} columns, the record says {columns}",
                            r.schema.fields().len()
                        ));
                    }
                    let mut rows: Vec<String> = r
                        .rows_as_strings()
                        .unwrap()
                        .into_iter()
                        .map(|row| {
                            row.into_iter()
                                .map(|v| if v.is_empty() { "(empty)".to_string() } else { v })
                                .collect::<Vec<_>>()
                                .join(" ")
                        })
                        .collect();
                    if sort {
                        rows.sort();
                    }
                    let actual: Vec<String> =
                        rows.iter().flat_map(|r| r.lines().filter(|l| !l.is_empty()).map(str::to_string)).collect();
                    if actual != expected {
                        failures.push(format!(
                            "{name}:{line}: rows differ\n--- expected\n{}\n--- actual\n{}",
                            expected.join("\n"),
                            actual.join("\n")
                        ));
                    }
                }
            },
        }
    }
    failures
}

fn slt_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_slt_file_passes() {
    let files = slt_files();
    assert!(files.len() >= 4, "found only {} .slt files", files.len());
    let failures: Vec<String> = files.iter().flat_map(|f| run_file(f)).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_runner_reports_a_wrong_row_and_a_missing_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.slt");
    std::fs::write(&file, "query I\nSELECT 1\n----\n2\n\nstatement error nope\nSET 'a' = 'b'\n").unwrap();
    let failures = run_file(&file);
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(failures[0].contains("rows differ"), "{}", failures[0]);
    assert!(failures[1].contains("got ok"), "{}", failures[1]);
}
