//! The sink driven by hand through the two-phase protocol: what is visible when, what a
//! restore cleans, when partitions are committed.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use arrow::array::{Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;

use super::*;
use futures::TryStreamExt;

fn ctx(subtask: u32, parallelism: u32) -> SinkContext {
    SinkContext { subtask, parallelism, name: "sink".into() }
}

fn rows(ids: std::ops::Range<i64>, dt: impl Fn(i64) -> String) -> Rows {
    let schema =
        Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false), Field::new("dt", DataType::Utf8, true)]));
    let ids: Vec<i64> = ids.collect();
    let dts: Vec<String> = ids.iter().map(|i| dt(*i)).collect();
    Rows(RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(ids)), Arc::new(StringArray::from(dts))]).unwrap())
}

fn spec(dir: &Path, kv: &[(&str, &str)]) -> FileSinkSpec {
    let mut c = Configuration::new();
    c.set("path", dir.to_string_lossy().to_string()).set("format", "csv");
    for (k, v) in kv {
        c.set(*k, *v);
    }
    FileSinkSpec::from_config(&c).unwrap()
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                dirs.push(e.path());
            } else {
                out.push(e.path().strip_prefix(dir).unwrap().to_string_lossy().to_string());
            }
        }
    }
    out.sort();
    out
}

/// The visible CSV lines under `dir` (hidden files skipped), sorted.
fn visible_lines(dir: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    for f in files(dir) {
        let name = f.rsplit('/').next().unwrap();
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        lines.extend(std::fs::read_to_string(dir.join(&f)).unwrap().lines().map(str::to_string));
    }
    lines.sort();
    lines
}

fn expected(ids: std::ops::Range<i64>, dt: impl Fn(i64) -> String) -> Vec<String> {
    let mut v: Vec<String> = ids.map(|i| format!("{i},{}", dt(i))).collect();
    v.sort();
    v
}

fn day(_: i64) -> String {
    "d".into()
}

#[test]
fn files_become_visible_when_their_checkpoint_completes_and_roll_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = FileSink::new(spec(dir.path(), &[("sink.rolling-policy.file-size", "64b")]), "t");
    s.initialize(&ctx(0, 1), &Recovery::fresh()).unwrap();
    let mut t = s.begin(&ctx(0, 1)).unwrap();
    for k in 0..5 {
        s.write(&mut t, rows(k * 10..k * 10 + 10, day), 0).unwrap();
    }
    // Batches of 40, 50, 50, 50, 50 bytes ("0,d\n"...): a file rolls after the write that
    // takes it to 64 bytes or more.
    assert_eq!(t.files.iter().map(|f| f.part).collect::<Vec<_>>(), [0, 1, 2]);
    let sizes: Vec<u64> =
        t.files.iter().map(|f| std::fs::metadata(s.in_progress_path(&t.uuid, 0, f)).unwrap().len()).collect();
    assert_eq!(sizes, [90, 100, 50]);
    assert!(visible_lines(dir.path()).is_empty());
    s.pre_commit(&mut t).unwrap();
    assert!(files(dir.path()).iter().all(|f| f.starts_with(".part-")), "pending, still hidden");
    s.commit(t.clone()).unwrap();
    assert_eq!(visible_lines(dir.path()), expected(0..50, day));
    for f in files(dir.path()) {
        let (uuid, sub, _, in_progress) = parse_part_name(&f).unwrap();
        assert_eq!((uuid, sub, in_progress), (s.uuid(), 0, false));
    }
    s.commit(t).unwrap();
    assert_eq!(visible_lines(dir.path()).len(), 50, "a commit again changes nothing");
}

#[test]
fn an_empty_transaction_writes_nothing_and_aborted_files_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = FileSink::new(spec(dir.path(), &[]), "t");
    s.initialize(&ctx(0, 1), &Recovery::fresh()).unwrap();
    let mut t = s.begin(&ctx(0, 1)).unwrap();
    s.write(&mut t, rows(0..0, day), 0).unwrap();
    s.pre_commit(&mut t).unwrap();
    s.commit(t).unwrap();
    assert!(files(dir.path()).is_empty());
    let mut t = s.begin(&ctx(0, 1)).unwrap();
    s.write(&mut t, rows(0..3, day), 0).unwrap();
    s.abort(t).unwrap();
    assert!(files(dir.path()).is_empty());
}

#[test]
fn time_rolls_are_checked_at_the_check_interval() {
    let dir = tempfile::tempdir().unwrap();
    let now = Arc::new(AtomicI64::new(0));
    let clock = now.clone();
    let spec = spec(
        dir.path(),
        &[
            ("sink.rolling-policy.rollover-interval", "10 s"),
            ("sink.rolling-policy.inactivity-interval", "1 h"),
            ("sink.rolling-policy.check-interval", "4 s"),
        ],
    )
    .with_clock(Arc::new(move || clock.load(Ordering::SeqCst)));
    let mut s = FileSink::new(spec, "t");
    s.initialize(&ctx(0, 1), &Recovery::fresh()).unwrap();
    let mut t = s.begin(&ctx(0, 1)).unwrap();
    for (k, at) in [0, 3_000, 9_000, 11_000, 12_000].into_iter().enumerate() {
        now.store(at, Ordering::SeqCst);
        s.write(&mut t, rows(k as i64..k as i64 + 1, day), 0).unwrap();
    }
    // Checks at 0 and 9 s (3 s is within the interval); 9 s: open 9 s, keeps; 11 s: no check
    // due; 12 s... is 3 s after 9 s: no check either. One file.
    assert_eq!(t.files.len(), 1);
    now.store(13_000, Ordering::SeqCst);
    s.write(&mut t, rows(5..6, day), 0).unwrap();
    assert_eq!(t.files.len(), 2, "checked at 13 s: open 13 s, rolled");
    s.pre_commit(&mut t).unwrap();
    s.commit(t).unwrap();
    assert_eq!(visible_lines(dir.path()), expected(0..6, day));
}

#[test]
fn a_restore_commits_pending_deletes_what_came_after_and_the_replay_reuses_the_names() {
    let dir = tempfile::tempdir().unwrap();
    let sp = spec(dir.path(), &[("sink.rolling-policy.file-size", "40b")]);
    // Attempt 1: checkpoint 1 covers 0..20; then 20..40 in the open transaction, and (as at
    // an end of input without a final checkpoint) committed; then 40..60 in progress.
    let mut a = FileSink::new(sp.clone(), "t");
    a.initialize(&ctx(0, 1), &Recovery::fresh()).unwrap();
    let mut t1 = a.begin(&ctx(0, 1)).unwrap();
    a.write(&mut t1, rows(0..20, day), 0).unwrap();
    a.pre_commit(&mut t1).unwrap();
    let mut t2 = a.begin(&ctx(0, 1)).unwrap();
    let state = (t1.clone(), t2.clone()); // what checkpoint 1 stored
    a.write(&mut t2, rows(20..40, day), 0).unwrap();
    a.pre_commit(&mut t2).unwrap();
    a.commit(t2).unwrap();
    let mut t3 = a.begin(&ctx(0, 1)).unwrap();
    a.write(&mut t3, rows(40..60, day), 0).unwrap();
    drop(a);
    assert_eq!(visible_lines(dir.path()).len(), 20, "t2 visible, t1 pending");

    // Attempt 2 restores checkpoint 1.
    let mut b = FileSink::new(sp, "t");
    b.recover_and_commit(&ctx(0, 1), state.0.clone()).unwrap();
    b.recover_and_abort(&ctx(0, 1), state.1.clone()).unwrap();
    let recovery = Recovery {
        restored: true,
        restored_from: vec![0],
        committed: vec![state.0.clone()],
        aborted: vec![state.1.clone()],
    };
    b.initialize(&ctx(0, 1), &recovery).unwrap();
    assert_eq!(visible_lines(dir.path()), expected(0..20, day), "only checkpoint 1's records");
    assert!(files(dir.path()).iter().all(|f| !f.starts_with('.')), "no in-progress file left");
    assert_eq!(b.uuid(), state.0.uuid);
    let mut r = b.begin(&ctx(0, 1)).unwrap();
    assert_eq!((r.seq, r.first_part), (state.1.seq, state.1.first_part));
    b.write(&mut r, rows(20..60, day), 0).unwrap();
    b.pre_commit(&mut r).unwrap();
    b.commit(r).unwrap();
    assert_eq!(visible_lines(dir.path()), expected(0..60, day), "each record once");
}

#[test]
fn a_fresh_start_takes_a_new_uuid_and_leaves_other_files_alone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keep.txt"), "mine").unwrap();
    let sp = spec(dir.path(), &[]);
    let mut a = FileSink::new(sp.clone(), "t");
    a.initialize(&ctx(0, 1), &Recovery::fresh()).unwrap();
    let mut t = a.begin(&ctx(0, 1)).unwrap();
    a.write(&mut t, rows(0..3, day), 0).unwrap();
    a.pre_commit(&mut t).unwrap();
    a.commit(t).unwrap();
    let mut b = FileSink::new(sp, "t");
    b.initialize(&ctx(0, 1), &Recovery::fresh()).unwrap();
    assert_ne!(a.uuid(), b.uuid());
    let mut t = b.begin(&ctx(0, 1)).unwrap();
    b.write(&mut t, rows(3..5, day), 0).unwrap();
    b.pre_commit(&mut t).unwrap();
    b.commit(t).unwrap();
    let all = files(dir.path());
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(all.contains(&"keep.txt".to_string()));
}

fn partitioned(dir: &Path, kv: &[(&str, &str)], now: &Arc<AtomicI64>) -> FileSinkSpec {
    let mut all = vec![("sink.partition-by", "dt"), ("sink.partition-commit.policy.kind", "success-file")];
    all.extend_from_slice(kv);
    let clock = now.clone();
    spec(dir, &all).with_clock(Arc::new(move || clock.load(Ordering::SeqCst)))
}

#[test]
fn partitions_are_directories_without_the_column_and_hostile_values_stay_inside() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("out");
    let now = Arc::new(AtomicI64::new(0));
    let mut s = FileSink::new(partitioned(&base, &[], &now), "t");
    s.initialize(&ctx(0, 1), &Recovery::fresh()).unwrap();
    let mut t = s.begin(&ctx(0, 1)).unwrap();
    let dts = ["2026-12-03", "../x", "/", "a=b", ""];
    s.write(&mut t, rows(0..10, |i| dts[i as usize % 5].to_string()), 0).unwrap();
    s.pre_commit(&mut t).unwrap();
    s.commit(t).unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "nothing beside the base directory");
    let mut dirs: Vec<String> = files(&base).iter().map(|f| f.rsplit_once('/').unwrap().0.to_string()).collect();
    dirs.dedup();
    assert_eq!(dirs, ["dt=%2F", "dt=..%2Fx", "dt=2026-12-03", "dt=__DEFAULT_PARTITION__", "dt=a%3Db"]);
    let in_dir = |d: &str| {
        let mut l = visible_lines(&base.join(d));
        l.sort();
        l
    };
    assert_eq!(in_dir("dt=2026-12-03"), ["0", "5"], "the partition column is not in the file");
    assert_eq!(in_dir("dt=..%2Fx"), ["1", "6"]);
    for d in &dirs {
        assert!(base.join(d).join("_SUCCESS").is_file(), "{d} committed (process-time, no delay)");
    }
}

#[test]
fn process_time_commit_waits_for_the_delay_and_survives_a_restore() {
    let dir = tempfile::tempdir().unwrap();
    let now = Arc::new(AtomicI64::new(1_000));
    let sp = partitioned(dir.path(), &[("sink.partition-commit.delay", "10 s")], &now);
    let success = |d: &str| dir.path().join(format!("dt={d}")).join("_SUCCESS").is_file();
    let mut a = FileSink::new(sp.clone(), "t");
    a.initialize(&ctx(0, 1), &Recovery::fresh()).unwrap();
    let mut t1 = a.begin(&ctx(0, 1)).unwrap();
    a.write(&mut t1, rows(0..4, |i| if i < 2 { "a".into() } else { "b".into() }), 0).unwrap();
    a.pre_commit(&mut t1).unwrap();
    let t2 = a.begin(&ctx(0, 1)).unwrap();
    now.store(5_000, Ordering::SeqCst);
    a.commit(t1.clone()).unwrap();
    assert!(!success("a") && !success("b"), "created at 1 s, delay 10 s");
    assert_eq!(a.pending_partitions(), 2);
    drop(a);

    // A failover restores the checkpoint of t1: the partitions are still to commit.
    let mut b = FileSink::new(sp, "t");
    now.store(6_000, Ordering::SeqCst);
    b.recover_and_commit(&ctx(0, 1), t1.clone()).unwrap();
    b.recover_and_abort(&ctx(0, 1), t2.clone()).unwrap();
    let rec = Recovery { restored: true, restored_from: vec![0], committed: vec![t1], aborted: vec![t2] };
    b.initialize(&ctx(0, 1), &rec).unwrap();
    assert_eq!(b.pending_partitions(), 2);
    let mut t = b.begin(&ctx(0, 1)).unwrap();
    b.write(&mut t, rows(4..5, |_| "c".into()), 0).unwrap();
    b.pre_commit(&mut t).unwrap();
    now.store(11_000, Ordering::SeqCst);
    b.commit(t).unwrap();
    assert!(success("a") && success("b"), "11 s >= 1 s + 10 s");
    assert!(!success("c"), "created at 6 s");
    assert_eq!(b.pending_partitions(), 1);
    assert_eq!(visible_lines(dir.path()), ["0", "1", "2", "3", "4"]);
}

#[test]
fn partition_time_commit_follows_the_watermark_at_the_barrier() {
    let dir = tempfile::tempdir().unwrap();
    let now = Arc::new(AtomicI64::new(0));
    let sp = partitioned(
        dir.path(),
        &[("sink.partition-commit.trigger", "partition-time"), ("sink.partition-commit.delay", "1 h")],
        &now,
    );
    let mut s = FileSink::new(sp, "t");
    s.initialize(&ctx(0, 1), &Recovery::fresh()).unwrap();
    let mut t = s.begin(&ctx(0, 1)).unwrap();
    s.write(&mut t, rows(0..2, |i| format!("2026-12-0{}", 3 + i)), 0).unwrap();
    let dec4 = 1_796_342_400_000; // 2026-12-04T00:00Z
    s.watermark(dec4).unwrap();
    s.pre_commit(&mut t).unwrap();
    s.watermark(dec4 + 2 * 86_400_000).unwrap(); // after the barrier: not this checkpoint's
    s.commit(t).unwrap();
    let success = |d: &str| dir.path().join(format!("dt={d}")).join("_SUCCESS").is_file();
    assert!(success("2026-12-03"), "Dec 3 00:00 + 1 h <= watermark Dec 4 00:00");
    assert!(!success("2026-12-04"));
    let mut t = s.begin(&ctx(0, 1)).unwrap();
    s.pre_commit(&mut t).unwrap();
    s.commit(t).unwrap();
    assert!(success("2026-12-04"), "the next checkpoint's watermark passed it");
    assert_eq!(s.pending_partitions(), 0);
    let mut t = s.begin(&ctx(0, 1)).unwrap();
    let err = s.write(&mut t, rows(5..6, |_| "soon".into()), 0).unwrap_err();
    assert!(err.to_string().contains("does not match the pattern"), "{err}");
}

#[test]
fn part_names_parse_back_only_when_canonical() {
    let u = random_uuid(3);
    assert_eq!(u.len(), 36);
    assert_eq!(parse_part_name(&part_name(&u, 3, 17, true)), Some((u.as_str(), 3, 17, true)));
    assert_eq!(parse_part_name(&part_name(&u, 3, 17, false)), Some((u.as_str(), 3, 17, false)));
    for bad in ["part-x-1-2", &format!("part-{u}-01-2"), &format!("part-{u}-1"), "_SUCCESS", &format!(".part-{u}-1-2")]
    {
        assert_eq!(parse_part_name(bad), None, "{bad}");
    }
}

#[test]
fn a_rescaled_restore_commits_and_cleans_every_restored_subtask() {
    let dir = tempfile::tempdir().unwrap();
    let sp = spec(dir.path(), &[]);
    // Two subtasks, each with a pending transaction at the checkpoint and records after it.
    let mut states = Vec::new();
    for sub in 0..2u32 {
        let mut s = FileSink::new(sp.clone(), "t");
        s.initialize(&ctx(sub, 2), &Recovery::fresh()).unwrap();
        let base = i64::from(sub) * 100;
        let mut t1 = s.begin(&ctx(sub, 2)).unwrap();
        s.write(&mut t1, rows(base..base + 10, day), 0).unwrap();
        s.pre_commit(&mut t1).unwrap();
        let mut t2 = s.begin(&ctx(sub, 2)).unwrap();
        states.push((t1, t2.clone()));
        s.write(&mut t2, rows(base + 10..base + 20, day), 0).unwrap();
    }
    assert!(visible_lines(dir.path()).is_empty());
    // Restored at parallelism 1: subtask 0 gets both states.
    let mut s = FileSink::new(sp, "t");
    for (pending, open) in &states {
        s.recover_and_commit(&ctx(0, 1), pending.clone()).unwrap();
        s.recover_and_abort(&ctx(0, 1), open.clone()).unwrap();
    }
    let recovery = Recovery {
        restored: true,
        restored_from: vec![0, 1],
        committed: states.iter().map(|s| s.0.clone()).collect(),
        aborted: states.iter().map(|s| s.1.clone()).collect(),
    };
    s.initialize(&ctx(0, 1), &recovery).unwrap();
    let mut want = expected(0..10, day);
    want.extend(expected(100..110, day));
    want.sort();
    assert_eq!(visible_lines(dir.path()), want, "both checkpointed transactions committed");
    assert!(files(dir.path()).iter().all(|f| !f.starts_with('.')), "both subtasks' records after it deleted");
    assert_eq!(s.uuid(), states[0].1.uuid, "subtask 0 continues its names");
    let next = s.begin(&ctx(0, 1)).unwrap();
    assert!(next.seq >= states.iter().map(|s| s.1.seq).max().unwrap(), "numbers continue above every restored one");
}

#[test]
fn partitions_restored_from_another_subtask_are_committed_by_a_later_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let now = Arc::new(AtomicI64::new(0));
    let sp = partitioned(dir.path(), &[("sink.partition-commit.delay", "10 s")], &now);
    // Former subtask 1 wrote partition "a" in its fourth transaction, at 0 s.
    let mut old = FileSink::new(sp.clone(), "t");
    old.initialize(&ctx(1, 2), &Recovery::fresh()).unwrap();
    for _ in 0..3 {
        let mut t = old.begin(&ctx(1, 2)).unwrap();
        old.pre_commit(&mut t).unwrap();
        old.commit(t).unwrap();
    }
    let mut t = old.begin(&ctx(1, 2)).unwrap();
    old.write(&mut t, rows(0..2, |_| "a".into()), 0).unwrap();
    old.pre_commit(&mut t).unwrap();
    let open = old.begin(&ctx(1, 2)).unwrap();
    drop(old);
    // Restored at 1 s into subtask 0 of 1, which has no state of its own (a fresh uuid):
    // the files are committed, the partition is not due yet.
    now.store(1_000, Ordering::SeqCst);
    let mut s = FileSink::new(sp, "t");
    s.recover_and_commit(&ctx(0, 1), t.clone()).unwrap();
    s.recover_and_abort(&ctx(0, 1), open.clone()).unwrap();
    let rec = Recovery { restored: true, restored_from: vec![1], committed: vec![t], aborted: vec![open] };
    s.initialize(&ctx(0, 1), &rec).unwrap();
    assert!(!dir.path().join("dt=a/_SUCCESS").exists());
    assert_eq!(s.pending_partitions(), 1);
    // This subtask writes it too; at 20 s its checkpoint commits the partition for good.
    let mut next = s.begin(&ctx(0, 1)).unwrap();
    s.write(&mut next, rows(2..3, |_| "a".into()), 0).unwrap();
    s.pre_commit(&mut next).unwrap();
    now.store(20_000, Ordering::SeqCst);
    s.commit(next).unwrap();
    assert!(dir.path().join("dt=a/_SUCCESS").is_file());
    assert_eq!(s.pending_partitions(), 0, "no write after this checkpoint's: nothing left to commit");
    assert_eq!(visible_lines(&dir.path().join("dt=a")), ["0", "1", "2"]);
}

/// The objects under `prefix` in `store`: name -> bytes.
fn objects(store: &Arc<dyn ObjectStore>) -> std::collections::BTreeMap<String, Vec<u8>> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let list: Vec<_> = store.list(None).try_collect().await.unwrap();
        let mut out = std::collections::BTreeMap::new();
        for o in list {
            let bytes = store.get(&o.location).await.unwrap().bytes().await.unwrap();
            out.insert(o.location.to_string(), bytes.to_vec());
        }
        out
    })
}

/// The visible CSV lines among `objects` (hidden and `_` names skipped), sorted.
fn visible_object_lines(objects: &std::collections::BTreeMap<String, Vec<u8>>) -> Vec<String> {
    let mut lines: Vec<String> = objects
        .iter()
        .filter(|(k, _)| !k.rsplit('/').next().unwrap().starts_with(['.', '_']))
        .flat_map(|(_, v)| String::from_utf8(v.clone()).unwrap().lines().map(str::to_string).collect::<Vec<_>>())
        .collect();
    lines.sort();
    lines
}

#[test]
fn an_object_store_gets_uploads_at_the_barrier_renames_at_commit_and_a_clean_restore() {
    let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let now = Arc::new(AtomicI64::new(0));
    let scratch = tempfile::tempdir().unwrap();
    let sp = partitioned(scratch.path(), &[], &now).with_object_store(store.clone(), "warehouse/t");
    let mut a = FileSink::new(sp.clone(), "t");
    a.initialize(&ctx(0, 1), &Recovery::fresh()).unwrap();
    let mut t1 = a.begin(&ctx(0, 1)).unwrap();
    a.write(&mut t1, rows(0..4, |i| format!("d{}", i % 2)), 0).unwrap();
    assert!(objects(&store).is_empty(), "nothing uploaded before the part files close");
    a.pre_commit(&mut t1).unwrap();
    let names: Vec<String> = objects(&store).into_keys().collect();
    assert_eq!(names.len(), 2);
    assert!(names.iter().all(|n| n.starts_with("warehouse/t/dt=d") && n.ends_with(".inprogress")), "{names:?}");
    let mut t2 = a.begin(&ctx(0, 1)).unwrap();
    let state = (t1.clone(), t2.clone());
    a.commit(t1).unwrap();
    let after = objects(&store);
    assert_eq!(visible_object_lines(&after), ["0", "1", "2", "3"]);
    assert!(after.contains_key("warehouse/t/dt=d0/_SUCCESS") && after.contains_key("warehouse/t/dt=d1/_SUCCESS"));
    // Records after the checkpoint, uploaded at the next barrier; then a failure before that
    // checkpoint completes.
    a.write(&mut t2, rows(4..6, |_| "d0".into()), 0).unwrap();
    a.pre_commit(&mut t2).unwrap();
    drop(a);
    assert!(objects(&store).keys().any(|k| k.ends_with(".inprogress")));
    let mut b = FileSink::new(sp, "t");
    b.recover_and_commit(&ctx(0, 1), state.0.clone()).unwrap();
    b.recover_and_abort(&ctx(0, 1), state.1.clone()).unwrap();
    let rec = Recovery { restored: true, restored_from: vec![0], committed: vec![state.0], aborted: vec![state.1] };
    b.initialize(&ctx(0, 1), &rec).unwrap();
    assert!(
        objects(&store).keys().all(|k| !k.ends_with(".inprogress")),
        "the restore deleted the uploads after the checkpoint"
    );
    let mut r = b.begin(&ctx(0, 1)).unwrap();
    b.write(&mut r, rows(4..6, |_| "d0".into()), 0).unwrap();
    b.pre_commit(&mut r).unwrap();
    b.commit(r).unwrap();
    assert_eq!(visible_object_lines(&objects(&store)), ["0", "1", "2", "3", "4", "5"]);
    let staging = b.staging.clone().unwrap();
    assert!(staging.is_dir());
    drop(b);
    assert!(!staging.exists(), "the staging directory goes with the sink");
    assert_eq!(std::fs::read_dir(scratch.path()).map(|d| d.count()).unwrap_or(0), 0, "nothing written locally");
}

#[test]
fn with_parallelism_two_a_partition_is_committed_once_every_subtask_made_its_files_visible() {
    let dir = tempfile::tempdir().unwrap();
    let now = Arc::new(AtomicI64::new(0));
    let sp = partitioned(dir.path(), &[("sink.partition-commit.delay", "10 s")], &now);
    let markers = dir.path().join(global_commit::MARKER_DIR);
    let success = |d: &str| dir.path().join(format!("dt={d}")).join("_SUCCESS").is_file();
    let lines = |d: &str| visible_lines(&dir.path().join(format!("dt={d}")));
    // A marker left by a former run at parallelism 3 goes at subtask 0's start.
    std::fs::create_dir_all(&markers).unwrap();
    std::fs::write(markers.join("2.json"), "{}").unwrap();
    let (mut s0, mut s1) = (FileSink::new(sp.clone(), "t0"), FileSink::new(sp, "t1"));
    s0.initialize(&ctx(0, 2), &Recovery::fresh()).unwrap();
    s1.initialize(&ctx(1, 2), &Recovery::fresh()).unwrap();
    let mut names: Vec<String> =
        std::fs::read_dir(&markers).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
    names.sort();
    assert_eq!(names, ["0.json", "1.json"]);

    // Both write partition "a" at 0 s in the same checkpoint.
    let mut t0 = s0.begin(&ctx(0, 2)).unwrap();
    s0.write(&mut t0, rows(0..2, |_| "a".into()), 0).unwrap();
    s0.pre_commit(&mut t0).unwrap();
    let mut t1 = s1.begin(&ctx(1, 2)).unwrap();
    s1.write(&mut t1, rows(2..4, |_| "a".into()), 0).unwrap();
    s1.pre_commit(&mut t1).unwrap();
    now.store(10_000, Ordering::SeqCst);
    s0.commit(t0).unwrap();
    assert_eq!(lines("a"), ["0", "1"]);
    assert!(!success("a"), "subtask 1's files of the partition are not visible yet");
    s1.commit(t1).unwrap();
    assert!(success("a"), "both subtasks' files are visible and 0 s + 10 s <= 10 s");
    assert_eq!(lines("a"), ["0", "1", "2", "3"]);
    assert_eq!((s0.pending_partitions(), s1.pending_partitions()), (1, 0));
    // Subtask 0's next commit sees the partition committed and drops it.
    let mut t0 = s0.begin(&ctx(0, 2)).unwrap();
    s0.pre_commit(&mut t0).unwrap();
    s0.commit(t0).unwrap();
    assert_eq!(s0.pending_partitions(), 0);

    // Subtask 0 ends first, with partition "b" written at 10 s: subtask 1's visible output
    // only reaches 10 s, so "b" waits for subtask 1's end.
    s0.watermark(i64::MAX).unwrap();
    let mut t0 = s0.begin(&ctx(0, 2)).unwrap();
    s0.write(&mut t0, rows(4..5, |_| "b".into()), 0).unwrap();
    s0.pre_commit(&mut t0).unwrap();
    s0.commit(t0).unwrap();
    assert!(!success("b"));
    s1.watermark(i64::MAX).unwrap();
    let mut t1 = s1.begin(&ctx(1, 2)).unwrap();
    s1.write(&mut t1, rows(5..6, |_| "b".into()), 0).unwrap();
    s1.pre_commit(&mut t1).unwrap();
    s1.commit(t1).unwrap();
    assert!(success("b"), "the end of every subtask's input commits everything");
    assert_eq!(lines("b"), ["4", "5"]);
    assert!(!markers.exists(), "the markers go once every subtask finished");
}

#[test]
fn a_rescaled_restore_publishes_the_least_watermark_of_the_former_subtasks() {
    let dir = tempfile::tempdir().unwrap();
    let now = Arc::new(AtomicI64::new(0));
    let sp = partitioned(dir.path(), &[("sink.partition-commit.trigger", "partition-time")], &now);
    let txn = |subtask: u32, seq: u64, watermark: i64| FileSinkTxn {
        uuid: random_uuid(subtask),
        subtask,
        seq,
        first_part: 0,
        files: Vec::new(),
        partitions: Vec::new(),
        watermark: Some(watermark),
    };
    // Former subtask 1 had two pending transactions (the later one counts), former subtask 2
    // is behind: the new subtask 0 of 2 has made visible what both wrote before 10.
    let restored = [txn(1, 3, 5), txn(1, 4, 20), txn(2, 4, 10)];
    let mut s = FileSink::new(sp, "t");
    for t in &restored {
        s.recover_and_commit(&ctx(0, 2), t.clone()).unwrap();
    }
    let rec = Recovery { restored: true, restored_from: vec![1, 2], committed: restored.to_vec(), aborted: vec![] };
    s.initialize(&ctx(0, 2), &rec).unwrap();
    let marker: global_commit::CommitMarker = serde_json::from_slice(
        &std::fs::read(dir.path().join(global_commit::MARKER_DIR).join(global_commit::marker_name(0))).unwrap(),
    )
    .unwrap();
    assert_eq!((marker.subtask, marker.parallelism, marker.watermark), (0, 2, Some(10)));
}

#[test]
fn with_parallelism_two_an_object_store_gets_the_markers_and_the_success_file_after_both() {
    let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let now = Arc::new(AtomicI64::new(0));
    let scratch = tempfile::tempdir().unwrap();
    let sp = partitioned(scratch.path(), &[], &now).with_object_store(store.clone(), "warehouse/t");
    let (mut s0, mut s1) = (FileSink::new(sp.clone(), "t0"), FileSink::new(sp, "t1"));
    s0.initialize(&ctx(0, 2), &Recovery::fresh()).unwrap();
    s1.initialize(&ctx(1, 2), &Recovery::fresh()).unwrap();
    let markers = |store: &Arc<dyn ObjectStore>| {
        objects(store).into_keys().filter(|k| k.starts_with("warehouse/t/_riffle-commits/")).collect::<Vec<_>>()
    };
    assert_eq!(markers(&store), ["warehouse/t/_riffle-commits/0.json", "warehouse/t/_riffle-commits/1.json"]);
    s0.watermark(i64::MAX).unwrap();
    let mut t0 = s0.begin(&ctx(0, 2)).unwrap();
    s0.write(&mut t0, rows(0..2, |_| "d0".into()), 0).unwrap();
    s0.pre_commit(&mut t0).unwrap();
    s1.watermark(i64::MAX).unwrap();
    let mut t1 = s1.begin(&ctx(1, 2)).unwrap();
    s1.write(&mut t1, rows(2..4, |_| "d0".into()), 0).unwrap();
    s1.pre_commit(&mut t1).unwrap();
    s0.commit(t0).unwrap();
    assert!(!objects(&store).contains_key("warehouse/t/dt=d0/_SUCCESS"), "subtask 1 made nothing visible yet");
    s1.commit(t1).unwrap();
    let after = objects(&store);
    assert!(after.contains_key("warehouse/t/dt=d0/_SUCCESS"));
    assert_eq!(visible_object_lines(&after), ["0", "1", "2", "3"]);
    assert!(markers(&store).is_empty(), "both ended: the markers are gone");
}
