//! Arrow rows through real jobs in a MiniCluster: CSV files read by the `FileSource` as
//! `DataStream<Rows>`, keyed by a column, summed per user in keyed state; the exact sums after
//! a failure (exactly once) and after a savepoint restored at another parallelism (key groups
//! move with their rows' state); Rust structs to rows and back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use riffle_api::{
    CollectStream, Configuration, KeyedProcessFunction, ProcessContext, RichMapFunction, RuntimeContext,
    StreamEnvironment, TimeDomain, UserError, MAX_WATERMARK,
};
use riffle_cluster::{JobHandle, JobStatus, MiniCluster, MiniClusterConfig};
use riffle_connectors::{FileSource, KeyedRows, RecordStreamExt, RowStreamExt, Rows};
use serde::{Deserialize, Serialize};

const WAIT: Option<Duration> = Some(Duration::from_secs(90));
const USERS: u64 = 30;
const FILES: u64 = 4;
const ROWS_PER_FILE: u64 = 6000;

/// A row of the input files, and a user's sum in the output.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct UserAmount {
    user: String,
    amount: i64,
}

/// Writes the CSV files (with a header) and returns the exact sum per user.
fn write_input(dir: &Path) -> BTreeMap<String, i64> {
    let mut sums = BTreeMap::new();
    for f in 0..FILES {
        let mut text = String::from("user,amount\n");
        for i in 0..ROWS_PER_FILE {
            let n = f * ROWS_PER_FILE + i;
            let user = format!("user-{:02}", (n * 7 + n / 13) % USERS);
            let amount = ((n * 7919) % 1000) as i64 - 300;
            *sums.entry(user.clone()).or_insert(0) += amount;
            text.push_str(&format!("{user},{amount}\n"));
        }
        std::fs::write(dir.join(format!("part-{f}.csv")), text).unwrap();
    }
    sums
}

/// Keeps a running sum per user (a `MapState` by the rows' encoded key, under the key
/// group's representative key) and emits the sums as rows once, at the end of the input: a
/// job cancelled before its end emits nothing, a restored one the exact sums.
#[derive(Clone)]
struct UserSums;

impl KeyedProcessFunction<u32, KeyedRows, Rows> for UserSums {
    fn process_element(&mut self, k: KeyedRows, ctx: &mut ProcessContext<'_, u32, Rows>) -> Result<(), UserError> {
        let sums = ctx.state().map_state::<Vec<u8>, UserAmount>("sums")?;
        if sums.entries(ctx.state())?.is_empty() {
            ctx.register_event_time_timer(MAX_WATERMARK - 1);
        }
        let keys = k.row_keys()?;
        let rows: Vec<UserAmount> = k.rows.to_records()?;
        for (key, row) in keys.into_iter().zip(rows) {
            let mut sum = sums.get(ctx.state(), &key)?.cloned().unwrap_or(UserAmount { user: row.user, amount: 0 });
            sum.amount += row.amount;
            sums.put(ctx.state(), key, sum)?;
        }
        Ok(())
    }

    fn on_timer(&mut self, _: i64, _: TimeDomain, ctx: &mut ProcessContext<'_, u32, Rows>) -> Result<(), UserError> {
        let sums = ctx.state().map_state::<Vec<u8>, UserAmount>("sums")?;
        let out: Vec<UserAmount> = sums.entries(ctx.state())?.into_iter().map(|(_, v)| v).collect();
        ctx.collect(Rows::from_records(&out)?);
        Ok(())
    }
}

/// Failure injection: raised, `armed` makes the next batch fail its task (once: `failed`).
#[derive(Clone, Copy)]
struct Inject {
    armed: &'static AtomicBool,
    failed: &'static AtomicBool,
    /// Rows the subtasks of the restarted attempt read.
    rows_after_restart: &'static AtomicU64,
}

/// Sleeps a little per batch (so checkpoints and savepoints land mid-way) and injects the
/// failure.
#[derive(Clone)]
struct Slow {
    inject: Option<Inject>,
    /// Built after the failure: a subtask of the restarted attempt.
    restarted: bool,
}

impl RichMapFunction<Rows, Rows> for Slow {
    type State = ();

    fn open(&mut self, _: &RuntimeContext) -> Result<(), UserError> {
        self.restarted = self.inject.is_some_and(|i| i.failed.load(Ordering::SeqCst));
        Ok(())
    }

    fn map(&mut self, rows: Rows) -> Result<Rows, UserError> {
        std::thread::sleep(Duration::from_millis(8));
        if let Some(i) = self.inject {
            if self.restarted {
                i.rows_after_restart.fetch_add(rows.num_rows() as u64, Ordering::SeqCst);
            } else if i.armed.load(Ordering::SeqCst) && !i.failed.swap(true, Ordering::SeqCst) {
                panic!("injected failure");
            }
        }
        Ok(rows)
    }
}

/// CSV with a header, batches of 100 rows, splits of 16 KiB (about 5 per file).
fn source_options() -> Configuration {
    let mut options = Configuration::new();
    options.set("format", "csv").set("csv.header", "true").set("source.batch-size", "100");
    options.set("source.split-size", "16kb");
    options
}

/// The job: the CSV files at `parallelism` (batches of 100 rows, a short sleep per batch so
/// that checkpoints and savepoints land mid-way), keyed by `user`, summed, back to structs.
/// `inject`: the failure to inject. `rebatch`: the rows go to structs and back into batches
/// of 37 rows (`to_records`, `to_rows`) before they are keyed, so records wait in the
/// batching state at every checkpoint and savepoint.
fn job(
    input: &Path,
    parallelism: u32,
    config: &[(&str, &str)],
    inject: Option<Inject>,
    rebatch: bool,
) -> (StreamEnvironment, CollectStream<UserAmount>) {
    let source = FileSource::from_config(&[input.to_path_buf()], &source_options(), None).unwrap();
    let mut env = StreamEnvironment::new();
    env.set_parallelism(parallelism);
    for (k, v) in config {
        env.set_config(k, v);
    }
    let mut rows = env.from_source(source, "csv files").map_with_state(Slow { inject, restarted: false }).name("slow");
    if rebatch {
        rows = rows.to_records::<UserAmount>().to_rows(37);
    }
    let out = rows.key_by_columns(&["user"]).process(UserSums).name("user sums").to_records::<UserAmount>().collect();
    (env, out)
}

/// How many batches (the source's records) a whole read of the input is, read here through
/// the source traits directly.
fn batches_of_a_full_read(input: &Path) -> u64 {
    use riffle_api::source::{ReadStatus, Source, SourceOutput};
    struct Count(u64);
    impl SourceOutput<Rows> for Count {
        fn collect(&mut self, _: Rows) {
            self.0 += 1;
        }
        fn collect_with_timestamp(&mut self, _: Rows, _: i64) {
            self.0 += 1;
        }
    }
    let source = FileSource::from_config(&[input.to_path_buf()], &source_options(), None).unwrap();
    let mut enumerator = source.create_enumerator(1).unwrap();
    let mut reader = source.create_reader(0).unwrap();
    let mut out = Count(0);
    loop {
        match reader.poll_next(&mut out).unwrap() {
            ReadStatus::MoreAvailable | ReadStatus::NothingAvailable => {}
            ReadStatus::NeedSplits => {
                let a = enumerator.handle_split_request(0).unwrap();
                reader.add_splits(a.splits);
                if a.no_more_splits {
                    reader.notify_no_more_splits();
                }
            }
            ReadStatus::EndOfInput => return out.0,
        }
    }
}

fn by_user(got: Vec<UserAmount>) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for r in got {
        assert!(out.insert(r.user.clone(), r.amount).is_none(), "{} emitted twice: its key was split", r.user);
    }
    out
}

fn cluster(slots: u32, config: &[(&str, &str)]) -> MiniCluster {
    let mut cfg = MiniClusterConfig::new(1, slots);
    for (k, v) in config {
        cfg.config.set(*k, *v);
    }
    MiniCluster::start(cfg).expect("mini cluster starts")
}

#[test]
fn csv_files_keyed_by_a_column_give_exact_sums_per_user() {
    let dir = tempfile::tempdir().unwrap();
    let want = write_input(dir.path());
    let mc = cluster(2, &[]);
    let (env, out) = job(dir.path(), 2, &[], None, false);
    let h = mc.submit(env.build_job_graph("rows").unwrap()).unwrap();
    let got = by_user(out.collect());
    let r = h.wait(WAIT).unwrap();
    assert_eq!(r.status, JobStatus::Finished, "{:?}", r.error);
    assert_eq!(got, want);
    assert_eq!(h.counters().records_in(), batches_of_a_full_read(dir.path()), "every batch read once");
}

#[test]
fn after_an_injected_failure_the_sums_are_exactly_the_same() {
    static ARMED: AtomicBool = AtomicBool::new(false);
    static FAILED: AtomicBool = AtomicBool::new(false);
    static ROWS_AFTER_RESTART: AtomicU64 = AtomicU64::new(0);
    let inject = Inject { armed: &ARMED, failed: &FAILED, rows_after_restart: &ROWS_AFTER_RESTART };
    let dir = tempfile::tempdir().unwrap();
    let want = write_input(dir.path());
    let mc = cluster(
        2,
        &[
            ("execution.checkpointing.interval", "10 ms"),
            ("restart-strategy", "fixed-delay"),
            ("restart-strategy.fixed-delay.attempts", "1"),
            ("restart-strategy.fixed-delay.delay", "10 ms"),
        ],
    );
    let (env, out) = job(dir.path(), 2, &[], Some(inject), false);
    let h = mc.submit(env.build_job_graph("rows exactly once").unwrap()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while mc.checkpoint_stats(h.job_id()).completed < 2 {
        assert!(Instant::now() < deadline, "no checkpoints: {:?}", mc.checkpoint_stats(h.job_id()));
        std::thread::sleep(Duration::from_millis(2));
    }
    ARMED.store(true, Ordering::SeqCst);
    let got = by_user(out.collect());
    let r = h.wait(WAIT).unwrap();
    assert_eq!(r.status, JobStatus::Finished, "{:?}", r.error);
    assert!(FAILED.load(Ordering::SeqCst), "the failure was injected");
    // The restarted attempt resumed from a checkpoint: it read only part of the files.
    let rows = ROWS_AFTER_RESTART.load(Ordering::SeqCst);
    assert!(rows > 0 && rows < FILES * ROWS_PER_FILE, "the restarted attempt read {rows} rows");
    let history = mc.exception_history(h.job_id(), 0, 10).unwrap();
    assert!(history.entries.iter().any(|e| e.is_root_cause && e.exception.contains("injected failure")));
    assert_eq!(got, want, "exactly once: no row lost or counted twice");
}

#[test]
fn records_waiting_for_their_batch_survive_a_failure_exactly_once() {
    static ARMED: AtomicBool = AtomicBool::new(false);
    static FAILED: AtomicBool = AtomicBool::new(false);
    const N: u64 = 100_000;
    let mc = cluster(
        2,
        &[
            ("execution.checkpointing.interval", "10 ms"),
            ("restart-strategy", "fixed-delay"),
            ("restart-strategy.fixed-delay.attempts", "1"),
            ("restart-strategy.fixed-delay.delay", "10 ms"),
            // Short channels: a barrier waits behind little data, so two checkpoints complete
            // early and the failure lands well before the paced input ends.
            ("taskmanager.network.buffers-per-channel", "4"),
        ],
    );
    let mut env = StreamEnvironment::new();
    env.set_parallelism(2);
    let out = env
        .from_sequence(0, N - 1)
        .map(|i| {
            if i % 100 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            if ARMED.load(Ordering::SeqCst) && !FAILED.swap(true, Ordering::SeqCst) {
                panic!("injected failure at record {i}");
            }
            UserAmount { user: format!("user-{}", i % 7), amount: i as i64 }
        })
        .name("slow")
        // 37 does not divide what a subtask reads between two checkpoints: records wait in
        // the batching operator's state at every checkpoint.
        .to_rows(37)
        .key_by_columns(&["user"])
        .process(UserSums)
        .to_records::<UserAmount>()
        .collect();
    let h = mc.submit(env.build_job_graph("to_rows exactly once").unwrap()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while mc.checkpoint_stats(h.job_id()).completed < 2 {
        assert!(Instant::now() < deadline, "no checkpoints: {:?}", mc.checkpoint_stats(h.job_id()));
        std::thread::sleep(Duration::from_millis(2));
    }
    ARMED.store(true, Ordering::SeqCst);
    let got = by_user(out.collect());
    let r = h.wait(WAIT).unwrap();
    assert_eq!(r.status, JobStatus::Finished, "{:?}", r.error);
    assert!(FAILED.load(Ordering::SeqCst), "the failure was injected");
    let mut want = BTreeMap::new();
    for i in 0..N {
        *want.entry(format!("user-{}", i % 7)).or_insert(0) += i as i64;
    }
    assert_eq!(got, want, "exactly once through the batching state");
}

fn wait_running(mc: &MiniCluster, h: &JobHandle) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while mc.list_jobs().unwrap().iter().all(|j| j.job_id != h.job_id() || j.status != JobStatus::Running) {
        assert!(Instant::now() < deadline, "the job does not run");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Retries `f` (a savepoint needs every task running) for up to 30 s.
fn savepoint_with_retry(f: impl Fn() -> Result<PathBuf, riffle_cluster::ClusterError>) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match f() {
            Ok(p) => return p,
            Err(e) => {
                assert!(Instant::now() < deadline, "no savepoint: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

#[test]
fn a_savepoint_at_parallelism_2_restores_at_3_and_at_1_with_the_same_sums_batching_state_included() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    let want = write_input(&input);
    let full = batches_of_a_full_read(&input);
    let savepoints = dir.path().join("savepoints");
    let mc = cluster(3, &[]);
    let (env, out) = job(&input, 2, &[("state.storage.fs.memory-threshold", "0")], None, true);
    let h = mc.submit(env.build_job_graph("rows first run").unwrap()).unwrap();
    wait_running(&mc, &h);
    std::thread::sleep(Duration::from_millis(300));
    let sp = savepoint_with_retry(|| h.cancel_with_savepoint(Some(savepoints.clone())));
    assert_eq!(h.wait(WAIT).unwrap().status, JobStatus::Canceled);
    assert!(out.collect::<Vec<_>>().is_empty(), "cancelled before the end: no sums emitted");
    for parallelism in [3, 1] {
        let (env, out) =
            job(&input, parallelism, &[("execution.savepoint.path", &sp.display().to_string())], None, true);
        let h = mc.submit(env.build_job_graph("rows restored").unwrap()).unwrap();
        let got = by_user(out.collect());
        let r = h.wait(WAIT).unwrap();
        assert_eq!(r.status, JobStatus::Finished, "{:?}", r.error);
        assert_eq!(got, want, "restored at parallelism {parallelism}: state + the rest of the input = the sums");
        // It resumed: the source read only the batches the savepoint had not covered.
        let read = h.counters().records_in();
        assert!(read > 0 && read < full, "read {read} of {full} batches after the restore");
    }
}

/// A struct with the kinds of fields a typed stream carries.
#[derive(Debug, Clone, PartialEq, PartialOrd, Serialize, Deserialize)]
struct Bid {
    auction: u64,
    bidder: String,
    price: f64,
    note: Option<String>,
}

#[test]
fn structs_become_rows_and_come_back_through_a_job() {
    let bids: Vec<Bid> = (0..1000u64)
        .map(|i| Bid {
            auction: i,
            bidder: format!("bidder-{}", i % 17),
            price: i as f64 / 8.0,
            note: (i % 3 == 0).then(|| format!("note {i}")),
        })
        .collect();
    let mc = cluster(2, &[]);
    let mut env = StreamEnvironment::new();
    env.set_parallelism(2);
    let rows = env.from_collection(bids.clone()).to_rows(64);
    let sizes = rows.map(|r: Rows| r.num_rows()).collect();
    let back = rows.rebalance().to_records::<Bid>().collect();
    let h = mc.submit(env.build_job_graph("structs to rows").unwrap()).unwrap();
    let sizes = std::thread::spawn(move || sizes.collect::<Vec<usize>>());
    let mut got: Vec<Bid> = back.collect();
    let sizes = sizes.join().unwrap();
    let r = h.wait(WAIT).unwrap();
    assert_eq!(r.status, JobStatus::Finished, "{:?}", r.error);
    got.sort_by_key(|b| b.auction);
    assert_eq!(got, bids, "every struct back, equal");
    assert_eq!(sizes.iter().sum::<usize>(), bids.len());
    assert!(sizes.iter().all(|&n| (1..=64).contains(&n)), "{sizes:?}");
    assert!(sizes.contains(&64), "records were batched: {sizes:?}");
}

#[test]
fn a_partial_batch_goes_out_after_the_flush_interval() {
    #[derive(Debug, Clone, Serialize, Deserialize)]
    struct N {
        n: u64,
    }
    let mc = cluster(1, &[]);
    let env = StreamEnvironment::new();
    // 30 numbers at 50 a second: 600 ms, so batches of up to 1000 go out by time, several.
    let sizes = env.from_sequence_paced(0, 29, 50).map(|n| N { n }).to_rows(1000).map(|r: Rows| r.num_rows()).collect();
    let h = mc.submit(env.build_job_graph("flush by time").unwrap()).unwrap();
    let sizes: Vec<usize> = sizes.collect();
    assert_eq!(h.wait(WAIT).unwrap().status, JobStatus::Finished);
    assert_eq!(sizes.iter().sum::<usize>(), 30);
    assert!(sizes.len() >= 3, "partial batches went out by time, not only at the end: {sizes:?}");
}

#[test]
fn rows_that_do_not_convert_fail_the_task_with_the_reason() {
    #[derive(Debug, Clone, Serialize, Deserialize)]
    struct Wrong {
        missing_field: i64,
    }
    let mc = cluster(1, &[]);
    let env = StreamEnvironment::new();
    let out = env
        .from_collection(vec![UserAmount { user: "ada".into(), amount: 1 }])
        .to_rows(10)
        .to_records::<Wrong>()
        .collect();
    let h = mc.submit(env.build_job_graph("wrong type").unwrap()).unwrap();
    assert!(out.collect::<Vec<_>>().is_empty());
    let r = h.wait(WAIT).unwrap();
    assert_eq!(r.status, JobStatus::Failed);
    let e = r.error.unwrap_or_default();
    assert!(e.contains("To Records") && e.contains("rows do not convert") && e.contains("missing_field"), "{e}");
}

#[test]
fn a_key_column_the_rows_lack_fails_the_task_naming_it() {
    let mc = cluster(1, &[]);
    let env = StreamEnvironment::new();
    let out = env
        .from_collection(vec![UserAmount { user: "ada".into(), amount: 1 }])
        .to_rows(10)
        .key_by_columns(&["usr"])
        .into_stream()
        .map(|k: KeyedRows| k.rows.num_rows())
        .collect();
    let h = mc.submit(env.build_job_graph("missing key column").unwrap()).unwrap();
    assert!(out.collect::<Vec<_>>().is_empty());
    let r = h.wait(WAIT).unwrap();
    assert_eq!(r.status, JobStatus::Failed);
    let e = r.error.unwrap_or_default();
    assert!(e.contains("key column 'usr' is not in the rows (columns: user, amount)"), "{e}");
}

/// Three malformed lines among 2,000 in two files read at parallelism 2: with
/// `csv.ignore-parse-errors` they are skipped and counted in the job's counters (and the good
/// rows all arrive); without it the job fails naming the file and the line.
#[test]
fn malformed_csv_lines_are_skipped_and_counted_or_fail_the_job_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut want = BTreeMap::new();
    for f in 0..2u64 {
        let mut text = String::from("user,amount\n");
        for i in 0..1000u64 {
            match (f, i) {
                (0, 10) | (1, 500) => text.push_str("user-x,not-a-number\n"),
                (1, 900) => text.push_str("user-y,1,extra,fields\n"),
                _ => {
                    let user = format!("user-{}", i % 5);
                    *want.entry(user.clone()).or_insert(0) += i as i64;
                    text.push_str(&format!("{user},{i}\n"));
                }
            }
        }
        std::fs::write(dir.path().join(format!("part-{f}.csv")), text).unwrap();
    }
    let run = |ignore: bool| {
        let mut options = source_options();
        if ignore {
            options.set("csv.ignore-parse-errors", "true");
        }
        let schema = std::sync::Arc::new(riffle_connectors::Schema::new(vec![
            arrow::datatypes::Field::new("user", arrow::datatypes::DataType::Utf8, true),
            arrow::datatypes::Field::new("amount", arrow::datatypes::DataType::Int64, true),
        ]));
        let source = FileSource::from_config(&[dir.path().to_path_buf()], &options, Some(schema)).unwrap();
        let mut env = StreamEnvironment::new();
        env.set_parallelism(2);
        let out = env
            .from_source(source, "csv files")
            .key_by_columns(&["user"])
            .process(UserSums)
            .to_records::<UserAmount>()
            .collect();
        let mc = cluster(2, &[]);
        let h = mc.submit(env.build_job_graph("malformed").unwrap()).unwrap();
        let got = out.collect::<Vec<_>>();
        let r = h.wait(WAIT).unwrap();
        (r, got, h.counters().records_skipped())
    };
    let (r, got, skipped) = run(true);
    assert_eq!(r.status, JobStatus::Finished, "{:?}", r.error);
    assert_eq!(by_user(got), want);
    assert_eq!(skipped, 3, "every skipped line counted once");

    let (r, _, _) = run(false);
    assert_eq!(r.status, JobStatus::Failed);
    let e = r.error.unwrap_or_default();
    // Both readers run at once: whichever meets its malformed line first fails the job.
    let named = [("part-0.csv", "line 12 "), ("part-1.csv", "line 502 "), ("part-1.csv", "line 902 ")];
    assert!(named.iter().any(|(f, l)| e.contains(f) && e.contains(l)), "file and line named: {e}");
}
