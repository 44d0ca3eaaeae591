//! `riffle sql`: scripts with -f, settings with -D and -p, the print connector's lines,
//! --result's canonical CSV, statements from stdin, and errors.

use std::io::Write;
use std::process::{Command, Stdio};

fn riffle() -> Command {
    Command::new(env!("CARGO_BIN_EXE_riffle"))
}

const GENERATOR: &str = "CREATE TABLE bids (
  id BIGINT,
  auction AS CAST(MOD(id * 7919, 1000) AS BIGINT),
  price AS CAST(MOD(id * 31, 10000) + 1 AS BIGINT)
) WITH (
  'connector' = 'datagen',
  'rows-per-second' = '1000000000000',
  'fields.id.kind' = 'sequence',
  'fields.id.start' = '0',
  'fields.id.end' = '${END}'
);";

#[test]
fn a_script_prints_rows_with_flinks_print_connector_at_parallelism_2() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("q.sql");
    std::fs::write(
        &script,
        format!(
            "-- a comment; with a semicolon\n{}\nCREATE TABLE out (auction BIGINT, price BIGINT)
               WITH ('connector' = 'print', 'print-identifier' = 'bid');
             INSERT INTO out SELECT auction, price FROM bids WHERE id < 4;",
            GENERATOR.replace("${END}", "9")
        ),
    )
    .unwrap();
    let out = riffle().args(["sql", "-p", "2", "-f"]).arg(&script).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut lines: Vec<&str> = stdout.lines().collect();
    lines.sort();
    // Subtask k of 2 generates ids k, k+2, ...: ids 0, 2 on subtask 1, ids 1, 3 on subtask 2.
    assert_eq!(lines, ["bid:1> +I[0, 1]", "bid:1> +I[838, 63]", "bid:2> +I[757, 94]", "bid:2> +I[919, 32]"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("net runtime"));
}

#[test]
fn result_writes_the_canonical_csv_of_the_insert() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("q.sql");
    let csv = dir.path().join("result.csv");
    std::fs::write(
        &script,
        format!(
            "{}\nCREATE TABLE sink (auction BIGINT, euro DECIMAL(23, 3)) WITH ('connector' = 'blackhole');
             INSERT INTO sink SELECT auction, 0.908 * price FROM bids;",
            GENERATOR.replace("${END}", "2")
        ),
    )
    .unwrap();
    let out = riffle()
        .args(["sql", "-D", "parallelism.default=2", "-f"])
        .arg(&script)
        .arg("--result")
        .arg(&csv)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // ids 0, 1, 2: auction 0, 919, 838; price 1, 32, 63.
    assert_eq!(std::fs::read_to_string(&csv).unwrap(), "auction,euro\n0,0.908\n838,57.204\n919,29.056\n");
}

#[test]
fn statements_from_stdin_show_results_and_errors_and_go_on() {
    let mut child =
        riffle().arg("sql").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"CREATE TABLE t (a INT) WITH ('connector' = 'datagen', 'number-of-rows' = '3');\nSELEC 1;\nSHOW\n TABLES;\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("[INFO] Execute statement succeeded."), "{stdout}");
    assert!(stdout.contains("[ERROR] SQL parse error") && stdout.contains("Line: 1, Column: 1"), "{stdout}");
    assert!(stdout.contains("| table name |\n+------------+\n| t          |"), "{stdout}");
}

#[test]
fn a_bad_script_fails_with_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("bad.sql");
    std::fs::write(&script, "CREATE TABLE t (a INT) WITH ('connector' = 'nope');\nINSERT INTO t SELECT 1;").unwrap();
    let out = riffle().args(["sql", "-f"]).arg(&script).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown connector 'nope'"), "{stderr}");
}

#[test]
fn bench_sql_fills_placeholders_and_prints_one_result_line() {
    if !std::path::Path::new("/usr/bin/time").exists() {
        eprintln!("skipped: scripts/bench-sql measures the peak RSS with GNU time (/usr/bin/time), not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let query = dir.path().join("mini.sql");
    std::fs::write(
        &query,
        format!(
            "-- mini: a harness-shaped query\n{}\nCREATE TABLE mini_sink (auction BIGINT, price BIGINT) WITH ('connector' = 'blackhole');
             INSERT INTO mini_sink SELECT auction, price FROM bids WHERE MOD(auction, 123) = 0;",
            GENERATOR.replace("${END}", "${EVENTS_MINUS_1}")
        ),
    )
    .unwrap();
    let csv = dir.path().join("out.csv");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/bench-sql");
    let out = Command::new(script)
        .env("RIFFLE_BIN", env!("CARGO_BIN_EXE_riffle"))
        .arg(&query)
        .args(["3000", "2", "--result"])
        .arg(&csv)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let line = stdout.trim();
    assert!(line.starts_with("engine=riffle query=mini events=3000 parallelism=2 seconds="), "{line}");
    for key in ["events_per_sec=", "peak_rss_kb=", "result_rows=27"] {
        assert!(line.contains(key), "{line}");
    }
    // 3000 bids: 3 per auction; auctions 0, 123, ..., 984 (9 of them) → 27 rows.
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(text.lines().count(), 28);
    assert!(text.starts_with("auction,price\n0,1\n0,"), "{text}");
}
