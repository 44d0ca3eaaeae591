//! The checkpoint protocol without actors: each case is a table of (event, time, the
//! commands expected), the commands shown in a compact form.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use riffle_state::checkpoint_metadata::{CheckpointKind, StateHandle};
use serde_bytes::ByteBuf;

use super::core::{
    Ack, Clock, CoordinatorCommand as C, CoordinatorCore, CoordinatorEvent as E, IdRequest, StatsUpdate,
    TriggerRequest, WaiterId, REMEMBERED_ABORTED_DIRS, STOPPED,
};
use super::settings::{CheckpointSettings, Retention};
use crate::error::RuntimeError;
use crate::ids::{ExecutionId, JobId};

const JOB: JobId = JobId(0xabcdef << 104);

fn settings() -> CheckpointSettings {
    CheckpointSettings {
        interval: Some(Duration::from_secs(1)),
        timeout: Duration::from_secs(60),
        min_pause: Duration::ZERO,
        max_concurrent: 1,
        aligned: true,
        unaligned: false,
        dir: Some("/ckpt".into()),
        retained: 3,
        savepoint_dir: None,
        inline_threshold: 1024,
        retention: Retention::None,
        after_tasks_finish: true,
        incremental: true,
    }
}

fn exec(vertex: u32, subtask: u32) -> ExecutionId {
    ExecutionId { job: JOB, vertex, subtask, attempt: 2 }
}

/// A core for two subtasks (a source and a sink), checkpoints under `/ckpt/job`.
fn core(s: CheckpointSettings) -> CoordinatorCore {
    let job_dir = s.dir.as_ref().map(|_| PathBuf::from("/ckpt/job"));
    CoordinatorCore::new(JOB, s, job_dir, [exec(0, 0), exec(1, 0)], Vec::new(), 128)
        .with_upstream([(exec(1, 0), vec![exec(0, 0)])].into_iter().collect())
}

fn tick() -> E {
    E::Tick
}
fn checkpoint_now(w: u64) -> E {
    E::Trigger(TriggerRequest::checkpoint(Some(WaiterId(w))))
}
fn savepoint(dir: Option<&str>, stop_sources: bool, w: u64) -> E {
    E::Trigger(TriggerRequest {
        kind: CheckpointKind::Savepoint,
        savepoint_dir: dir.map(PathBuf::from),
        stop_sources,
        waiter: Some(WaiterId(w)),
    })
}
fn reserved(request: u64, id: u64) -> E {
    E::IdReserved { request: IdRequest(request), id }
}
fn refused(request: u64, error: &str) -> E {
    E::IdRefused { request: IdRequest(request), error: error.into() }
}
fn ack_with(e: ExecutionId, id: u64, state: StateHandle) -> E {
    E::Acknowledged(Ack {
        execution: e,
        checkpoint_id: id,
        state,
        source: None,
        sync_ms: 1,
        async_ms: 2,
        persisted_bytes: 0,
        alignment_ms: 0,
    })
}
/// An inline acknowledgement of `len` bytes.
fn ack(vertex: u32, id: u64) -> E {
    ack_with(exec(vertex, 0), id, StateHandle::Inline(ByteBuf::from(vec![0; 4])))
}
/// An acknowledgement whose state went to a file.
fn ack_file(vertex: u32, id: u64) -> E {
    ack_with(exec(vertex, 0), id, StateHandle::File { name: format!("{vertex}-0.state"), len: 10 })
}
fn decline(vertex: u32, id: u64) -> E {
    E::Declined { execution: exec(vertex, 0), checkpoint_id: id, reason: "no space".into() }
}
fn timed_out(id: u64) -> E {
    E::TimedOut { checkpoint_id: id }
}
fn written(id: u64, r: Result<(), &str>) -> E {
    E::MetadataWritten { checkpoint_id: id, result: r.map_err(|e| RuntimeError::Checkpoint(e.to_string())) }
}
fn stop() -> E {
    E::Stop { reason: "the job attempt is ending".into(), keep_files: false }
}
fn suspend() -> E {
    E::Stop { reason: "the job is suspended".into(), keep_files: true }
}

fn path(p: &Option<PathBuf>) -> String {
    p.as_ref().map_or("-".into(), |d| d.display().to_string())
}

/// A command in a compact form (times and sizes are checked in tests of their own).
fn show(c: &C) -> String {
    match c {
        C::ReserveId { request } => format!("reserve {}", request.0),
        C::SnapshotEnumerators { checkpoint_id } => format!("snapshot enumerators {checkpoint_id}"),
        C::SendTrigger { checkpoint_id, to, target, aligned, unaligned, stop_sources, .. } => {
            let mode = match (aligned, unaligned) {
                (_, true) => "unaligned",
                (true, false) => "aligned",
                (false, false) => "at-least-once",
            };
            let stop = if *stop_sources { " stop" } else { "" };
            // To the source alone unless the case says otherwise.
            let to = if to.as_slice() == [exec(0, 0)] {
                String::new()
            } else {
                let names: Vec<String> = to.iter().map(|e| format!("{}/{}", e.vertex, e.subtask)).collect();
                format!(" to {}", names.join(","))
            };
            format!("trigger {checkpoint_id} {} {mode}{stop}{to}", target.as_deref().unwrap_or("-"))
        }
        C::ScheduleTimeout { checkpoint_id, after } => format!("timeout {checkpoint_id} {after:?}"),
        C::RecordStats(StatsUpdate::Triggered { checkpoint_id, savepoint, num_subtasks, .. }) => {
            let kind = if *savepoint { "savepoint" } else { "checkpoint" };
            format!("stats triggered {checkpoint_id} {kind} of {num_subtasks}")
        }
        C::RecordStats(StatsUpdate::Acknowledged { checkpoint_id, vertex, bytes, .. }) => {
            format!("stats ack {checkpoint_id} v{vertex} {bytes}B")
        }
        C::RecordStats(StatsUpdate::Completed { checkpoint_id, .. }) => format!("stats completed {checkpoint_id}"),
        C::RecordStats(StatsUpdate::Failed { checkpoint_id, why, .. }) => {
            format!("stats failed {checkpoint_id}: {why}")
        }
        C::Notify { checkpoint_id, completed: true } => format!("notify {checkpoint_id} completed"),
        C::Notify { checkpoint_id, completed: false } => format!("notify {checkpoint_id} aborted"),
        C::WriteMetadata { meta, dir, retain: Some((job_dir, n)) } => {
            format!("write {} {} retain {n} in {}", meta.checkpoint_id, dir.display(), job_dir.display())
        }
        C::WriteMetadata { meta, dir, retain: None } => format!("write {} {}", meta.checkpoint_id, dir.display()),
        C::DeleteDir(d) => format!("delete {}", d.display()),
        C::Completed { meta, dir } => format!("completed {} {}", meta.checkpoint_id, path(dir)),
        C::Answer { waiter, result: Ok(c) } => format!("answer w{} ok {} {}", waiter.0, c.checkpoint_id, path(&c.dir)),
        C::Answer { waiter, result: Err(e) } => format!("answer w{} err {e}", waiter.0),
        C::StopActor => "stop".into(),
    }
}

/// One step: an event, when (ms after the start), the commands expected.
type Step = (E, u64, &'static [&'static str]);

fn at(t0: Instant, ms: u64) -> Clock {
    Clock { now: t0 + Duration::from_millis(ms), epoch_ms: 1_000_000 + ms as i64 }
}

/// Runs `steps` on `core`, failing with the case's name and the step's index.
fn run(name: &str, mut core: CoordinatorCore, steps: Vec<Step>) {
    let t0 = Instant::now();
    for (i, (event, ms, expected)) in steps.into_iter().enumerate() {
        let what = format!("{event:?}");
        let got: Vec<String> = core.on(event, at(t0, ms)).iter().map(show).collect();
        assert_eq!(got, expected.to_vec(), "case {name:?}, step {i} ({what})");
    }
}

const TRIGGER_1: &[&str] = &["stats triggered 1 checkpoint of 2", "trigger 1 /ckpt/job/chk-1 aligned", "timeout 1 60s"];
const TRIGGER_2: &[&str] = &["stats triggered 2 checkpoint of 2", "trigger 2 /ckpt/job/chk-2 aligned", "timeout 2 60s"];

#[test]
fn trigger_gating() {
    let min_pause = CheckpointSettings { min_pause: Duration::from_millis(500), ..settings() };
    let two = CheckpointSettings { max_concurrent: 2, ..settings() };
    let no_dir = CheckpointSettings { dir: None, ..min_pause.clone() };
    let cases: Vec<(&str, CheckpointSettings, Vec<Step>)> = vec![
        (
            "a tick reserves an id, then triggers",
            settings(),
            vec![(tick(), 0, &["reserve 0"]), (reserved(0, 1), 1, TRIGGER_1)],
        ),
        (
            "an id being reserved counts for max-concurrent",
            settings(),
            vec![(tick(), 0, &["reserve 0"]), (tick(), 1, &[]), (reserved(0, 1), 2, TRIGGER_1), (tick(), 3, &[])],
        ),
        (
            "max-concurrent 2 lets a second one start, not a third",
            two,
            vec![
                (tick(), 0, &["reserve 0"]),
                (tick(), 1, &["reserve 1"]),
                (tick(), 2, &[]),
                (reserved(1, 2), 3, TRIGGER_2),
                (reserved(0, 1), 4, TRIGGER_1),
                (tick(), 5, &[]),
            ],
        ),
        (
            "a refused id frees its place",
            settings(),
            vec![(tick(), 0, &["reserve 0"]), (refused(0, "zk down"), 1, &[]), (tick(), 2, &["reserve 1"])],
        ),
        (
            "min-pause counts from the last completion",
            no_dir,
            vec![
                (tick(), 0, &["reserve 0"]),
                (reserved(0, 1), 0, &["stats triggered 1 checkpoint of 2", "trigger 1 - aligned", "timeout 1 60s"]),
                (ack(0, 1), 50, &["stats ack 1 v0 4B"]),
                (ack(1, 1), 100, &["stats ack 1 v1 4B", "completed 1 -", "stats completed 1", "notify 1 completed"]),
                (tick(), 599, &[]),
                (tick(), 600, &["reserve 1"]),
            ],
        ),
        (
            "savepoints and checkpoints on demand pass max-concurrent and min-pause",
            min_pause,
            vec![
                (tick(), 0, &["reserve 0"]),
                (reserved(0, 1), 0, TRIGGER_1),
                (checkpoint_now(7), 1, &["reserve 1"]),
                (savepoint(Some("/sp"), false, 8), 2, &["reserve 2"]),
                (tick(), 3, &[]),
            ],
        ),
        (
            "stopped: nothing is triggered, callers are answered",
            settings(),
            vec![
                (stop(), 0, &["stop"]),
                (tick(), 1, &[]),
                (
                    checkpoint_now(1),
                    2,
                    &["answer w1 err checkpointing has stopped (the job attempt ended or a task finished)"],
                ),
                (
                    savepoint(Some("/sp"), true, 2),
                    3,
                    &["answer w2 err checkpointing has stopped (the job attempt ended or a task finished)"],
                ),
            ],
        ),
        (
            "an id reserved after the stop triggers nothing",
            settings(),
            vec![
                (checkpoint_now(4), 0, &["reserve 0"]),
                (stop(), 1, &["stop"]),
                (
                    reserved(0, 1),
                    2,
                    &["answer w4 err checkpointing has stopped (the job attempt ended or a task finished)"],
                ),
            ],
        ),
        (
            "a refused id answers the caller",
            settings(),
            vec![
                (checkpoint_now(3), 0, &["reserve 0"]),
                (refused(0, "zk down"), 1, &["answer w3 err no checkpoint id from the job store: zk down"]),
                (reserved(0, 1), 2, &[]),
            ],
        ),
    ];
    for (name, s, steps) in cases {
        run(name, core(s), steps);
    }
}

#[test]
fn acknowledgements_decline_timeout_and_subsumption() {
    let two = CheckpointSettings { max_concurrent: 2, ..settings() };
    let cases: Vec<(&str, CheckpointSettings, Vec<Step>)> = vec![
        (
            "every subtask acknowledges: metadata written with the retained count, then completed",
            settings(),
            vec![
                (checkpoint_now(5), 0, &["reserve 0"]),
                (reserved(0, 1), 0, TRIGGER_1),
                (ack(0, 1), 1, &["stats ack 1 v0 4B"]),
                (ack(0, 1), 2, &["stats ack 1 v0 4B"]),
                (ack_with(exec(9, 0), 1, StateHandle::Inline(ByteBuf::new())), 3, &[]),
                (ack_with(ExecutionId { attempt: 1, ..exec(1, 0) }, 1, StateHandle::Inline(ByteBuf::new())), 4, &[]),
                (ack(1, 1), 5, &["stats ack 1 v1 4B", "write 1 /ckpt/job/chk-1 retain 3 in /ckpt/job"]),
                (
                    written(1, Ok(())),
                    6,
                    &[
                        "completed 1 /ckpt/job/chk-1",
                        "stats completed 1",
                        "notify 1 completed",
                        "answer w5 ok 1 /ckpt/job/chk-1",
                    ],
                ),
                (written(1, Ok(())), 7, &[]),
                (ack(1, 1), 8, &[]),
                (timed_out(1), 9, &[]),
            ],
        ),
        (
            "a decline aborts, notifies, deletes and answers; later messages for it do nothing",
            settings(),
            vec![
                (checkpoint_now(5), 0, &["reserve 0"]),
                (reserved(0, 1), 0, TRIGGER_1),
                (ack(0, 1), 1, &["stats ack 1 v0 4B"]),
                (
                    decline(1, 1),
                    2,
                    &[
                        "stats failed 1: subtask 0 of vertex 1 declined: no space",
                        "notify 1 aborted",
                        "delete /ckpt/job/chk-1",
                        "answer w5 err checkpoint 1 was aborted: subtask 0 of vertex 1 declined: no space",
                    ],
                ),
                (decline(0, 1), 3, &[]),
                (timed_out(1), 4, &[]),
                (tick(), 5, &["reserve 1"]),
            ],
        ),
        (
            "a timeout aborts a pending checkpoint",
            settings(),
            vec![
                (tick(), 0, &["reserve 0"]),
                (reserved(0, 1), 0, TRIGGER_1),
                (timed_out(1), 60_000, &["stats failed 1: it timed out", "notify 1 aborted", "delete /ckpt/job/chk-1"]),
                (timed_out(1), 60_001, &[]),
            ],
        ),
        (
            "a completed checkpoint subsumes older pending ones; late acks delete again",
            two.clone(),
            vec![
                (tick(), 0, &["reserve 0"]),
                (reserved(0, 1), 0, TRIGGER_1),
                (checkpoint_now(6), 1, &["reserve 1"]),
                (reserved(1, 2), 1, TRIGGER_2),
                (ack(0, 2), 2, &["stats ack 2 v0 4B"]),
                (
                    ack(1, 2),
                    3,
                    &[
                        "stats ack 2 v1 4B",
                        "stats failed 1: a newer checkpoint completed",
                        "notify 1 aborted",
                        "delete /ckpt/job/chk-1",
                        "write 2 /ckpt/job/chk-2 retain 3 in /ckpt/job",
                    ],
                ),
                (ack_file(0, 1), 4, &["delete /ckpt/job/chk-1"]),
                (ack(1, 1), 5, &[]),
                (ack_file(1, 1), 6, &["delete /ckpt/job/chk-1"]),
                (ack_file(1, 99), 7, &[]),
                (
                    written(2, Ok(())),
                    8,
                    &[
                        "completed 2 /ckpt/job/chk-2",
                        "stats completed 2",
                        "notify 2 completed",
                        "answer w6 ok 2 /ckpt/job/chk-2",
                    ],
                ),
            ],
        ),
        (
            "a failed metadata write aborts and deletes the checkpoint's directory",
            settings(),
            vec![
                (checkpoint_now(1), 0, &["reserve 0"]),
                (reserved(0, 1), 0, TRIGGER_1),
                (ack_file(0, 1), 1, &["stats ack 1 v0 10B"]),
                (ack_file(1, 1), 2, &["stats ack 1 v1 10B", "write 1 /ckpt/job/chk-1 retain 3 in /ckpt/job"]),
                (
                    written(1, Err("disk full")),
                    3,
                    &[
                        "stats failed 1: disk full",
                        "notify 1 aborted",
                        "delete /ckpt/job/chk-1",
                        "answer w1 err checkpoint 1 was aborted: disk full",
                    ],
                ),
                (ack_file(1, 1), 4, &["delete /ckpt/job/chk-1"]),
            ],
        ),
        (
            "a stop aborts every pending checkpoint and waits for metadata writes in flight",
            two,
            vec![
                (tick(), 0, &["reserve 0"]),
                (reserved(0, 1), 0, TRIGGER_1),
                (tick(), 1, &["reserve 1"]),
                (reserved(1, 2), 1, TRIGGER_2),
                (ack(0, 1), 2, &["stats ack 1 v0 4B"]),
                (ack(1, 1), 3, &["stats ack 1 v1 4B", "write 1 /ckpt/job/chk-1 retain 3 in /ckpt/job"]),
                (
                    stop(),
                    4,
                    &["stats failed 2: the job attempt is ending", "notify 2 aborted", "delete /ckpt/job/chk-2"],
                ),
                (tick(), 5, &[]),
                (
                    written(1, Ok(())),
                    6,
                    &["completed 1 /ckpt/job/chk-1", "stats completed 1", "notify 1 completed", "stop"],
                ),
            ],
        ),
        (
            "a suspension aborts the pending checkpoint but keeps its files, even a late ack's",
            settings(),
            vec![
                (tick(), 0, &["reserve 0"]),
                (reserved(0, 1), 0, TRIGGER_1),
                (ack_file(0, 1), 1, &["stats ack 1 v0 10B"]),
                (suspend(), 2, &["stats failed 1: the job is suspended", "notify 1 aborted", "stop"]),
                (ack_file(1, 1), 3, &[]),
                (tick(), 4, &[]),
            ],
        ),
        (
            "a stop after a failed write in flight stops too",
            settings(),
            vec![
                (tick(), 0, &["reserve 0"]),
                (reserved(0, 1), 0, TRIGGER_1),
                (ack(0, 1), 1, &["stats ack 1 v0 4B"]),
                (ack(1, 1), 2, &["stats ack 1 v1 4B", "write 1 /ckpt/job/chk-1 retain 3 in /ckpt/job"]),
                (stop(), 3, &[]),
                (
                    written(1, Err("disk full")),
                    4,
                    &["stats failed 1: disk full", "notify 1 aborted", "delete /ckpt/job/chk-1", "stop"],
                ),
            ],
        ),
    ];
    for (name, s, steps) in cases {
        run(name, core(s), steps);
    }
}

#[test]
fn savepoints() {
    let at_least_once = CheckpointSettings { aligned: false, ..settings() };
    let unaligned = CheckpointSettings { unaligned: true, ..settings() };
    let cases: Vec<(&str, CheckpointSettings, Vec<Step>)> = vec![
        (
            "a savepoint without a directory is refused once it has an id",
            settings(),
            vec![
                (savepoint(None, false, 1), 0, &["reserve 0"]),
                (reserved(0, 1), 1, &["answer w1 err no savepoint directory: give one or set state.savepoints.dir"]),
                (tick(), 2, &["reserve 1"]),
            ],
        ),
        (
            "a savepoint is aligned, keeps nothing retained and answers its directory",
            at_least_once,
            vec![
                (savepoint(Some("/sp"), true, 1), 0, &["reserve 0"]),
                (
                    reserved(0, 4),
                    0,
                    &[
                        "stats triggered 4 savepoint of 2",
                        "trigger 4 /sp/savepoint-abcdef-4 aligned stop",
                        "timeout 4 60s",
                    ],
                ),
                (ack(0, 4), 1, &["stats ack 4 v0 4B"]),
                (ack(1, 4), 2, &["stats ack 4 v1 4B", "write 4 /sp/savepoint-abcdef-4"]),
                (
                    written(4, Ok(())),
                    3,
                    &[
                        "completed 4 /sp/savepoint-abcdef-4",
                        "stats completed 4",
                        "notify 4 completed",
                        "answer w1 ok 4 /sp/savepoint-abcdef-4",
                    ],
                ),
            ],
        ),
        (
            "a savepoint under way when the job is suspended fails naming the suspension",
            settings(),
            vec![
                (savepoint(Some("/sp"), false, 1), 0, &["reserve 0"]),
                (
                    reserved(0, 4),
                    0,
                    &["stats triggered 4 savepoint of 2", "trigger 4 /sp/savepoint-abcdef-4 aligned", "timeout 4 60s"],
                ),
                (ack(0, 4), 1, &["stats ack 4 v0 4B"]),
                (
                    suspend(),
                    2,
                    &[
                        "stats failed 4: the job is suspended",
                        "notify 4 aborted",
                        "answer w1 err checkpoint 4 was aborted: the job is suspended",
                        "stop",
                    ],
                ),
                (
                    savepoint(Some("/sp"), false, 2),
                    3,
                    &["answer w2 err checkpointing has stopped (the job attempt ended or a task finished)"],
                ),
            ],
        ),
        (
            "checkpoints follow the mode, savepoints are never unaligned",
            unaligned,
            vec![
                (tick(), 0, &["reserve 0"]),
                (
                    reserved(0, 1),
                    0,
                    &["stats triggered 1 checkpoint of 2", "trigger 1 /ckpt/job/chk-1 unaligned", "timeout 1 60s"],
                ),
                (savepoint(Some("/sp"), false, 1), 1, &["reserve 1"]),
                (
                    reserved(1, 2),
                    1,
                    &["stats triggered 2 savepoint of 2", "trigger 2 /sp/savepoint-abcdef-2 aligned", "timeout 2 60s"],
                ),
            ],
        ),
        (
            "a savepoint whose metadata cannot be written is aborted, its directory kept",
            settings(),
            vec![
                (savepoint(Some("/sp"), false, 1), 0, &["reserve 0"]),
                (
                    reserved(0, 4),
                    0,
                    &["stats triggered 4 savepoint of 2", "trigger 4 /sp/savepoint-abcdef-4 aligned", "timeout 4 60s"],
                ),
                (ack(0, 4), 1, &["stats ack 4 v0 4B"]),
                (ack(1, 4), 2, &["stats ack 4 v1 4B", "write 4 /sp/savepoint-abcdef-4"]),
                (
                    written(4, Err("read-only")),
                    3,
                    &[
                        "stats failed 4: read-only",
                        "notify 4 aborted",
                        "answer w1 err checkpoint 4 was aborted: read-only",
                    ],
                ),
            ],
        ),
    ];
    for (name, s, steps) in cases {
        run(name, core(s), steps);
    }
}

#[test]
fn at_least_once_checkpoints_and_inline_threshold() {
    let s = CheckpointSettings { aligned: false, inline_threshold: 77, ..settings() };
    let mut c = core(s);
    let now = at(Instant::now(), 0);
    assert_eq!(c.on(tick(), now), vec![C::ReserveId { request: IdRequest(0) }]);
    let out = c.on(reserved(0, 3), now);
    assert!(out.contains(&C::SendTrigger {
        checkpoint_id: 3,
        to: vec![exec(0, 0)],
        target: Some("/ckpt/job/chk-3".into()),
        aligned: false,
        unaligned: false,
        inline_threshold: 77,
        incremental: true,
        stop_sources: false,
    }));
}

/// Checkpoints with a directory may be increments; savepoints, checkpoints kept in memory and
/// the option turned off never are.
#[test]
fn only_checkpoints_with_a_directory_are_incremental() {
    let incremental = |out: &[C]| {
        out.iter()
            .find_map(|c| match c {
                C::SendTrigger { incremental, .. } => Some(*incremental),
                _ => None,
            })
            .expect("a trigger")
    };
    let now = at(Instant::now(), 0);
    let cases: [(&str, CheckpointSettings, E, bool); 4] = [
        ("checkpoint", settings(), tick(), true),
        ("savepoint", settings(), savepoint(Some("/sp"), false, 1), false),
        ("option off", CheckpointSettings { incremental: false, ..settings() }, tick(), false),
        ("no directory", CheckpointSettings { dir: None, ..settings() }, tick(), false),
    ];
    for (name, s, trigger, expected) in cases {
        let mut c = core(s);
        c.on(trigger, now);
        let out = c.on(reserved(0, 5), now);
        assert_eq!(incremental(&out), expected, "{name}");
    }
}

#[test]
fn metadata_and_statistics_carry_the_events_times() {
    let mut c = CoordinatorCore::new(JOB, settings(), None, [exec(1, 1), exec(1, 0), exec(0, 0)], Vec::new(), 64);
    let t0 = Instant::now();
    c.on(tick(), at(t0, 0));
    let out = c.on(reserved(0, 9), at(t0, 10));
    assert_eq!(
        out[0],
        C::RecordStats(StatsUpdate::Triggered {
            checkpoint_id: 9,
            savepoint: false,
            trigger_ms: 1_000_010,
            num_subtasks: 3,
            path: None
        })
    );
    c.on(ack_with(exec(1, 1), 9, StateHandle::Inline(ByteBuf::from(vec![1]))), at(t0, 20));
    c.on(ack_with(exec(0, 0), 9, StateHandle::Inline(ByteBuf::from(vec![2]))), at(t0, 30));
    let out = c.on(
        E::Acknowledged(Ack {
            execution: exec(1, 0),
            checkpoint_id: 9,
            state: StateHandle::Inline(ByteBuf::from(vec![3])),
            source: Some(ByteBuf::from(vec![0; 5])),
            sync_ms: 4,
            async_ms: 6,
            persisted_bytes: 2,
            alignment_ms: 3,
        }),
        at(t0, 40),
    );
    assert_eq!(
        out[0],
        C::RecordStats(StatsUpdate::Acknowledged {
            checkpoint_id: 9,
            vertex: 1,
            subtask: 0,
            bytes: 6,
            persisted: 2,
            timings: (4, 6),
            alignment_ms: 3,
            now_ms: 1_000_040
        })
    );
    let C::Completed { meta, dir: None } = &out[1] else { panic!("not completed: {out:?}") };
    assert_eq!(meta.job_id, JOB.to_string());
    assert_eq!((meta.checkpoint_id, meta.kind, meta.max_parallelism), (9, CheckpointKind::Checkpoint, 64));
    assert_eq!((meta.trigger_timestamp_ms, meta.completion_timestamp_ms), (1_000_010, 1_000_040));
    let order: Vec<(u32, u32)> = meta.subtasks.iter().map(|s| (s.vertex, s.subtask)).collect();
    assert_eq!(order, vec![(0, 0), (1, 0), (1, 1)], "sorted by vertex and subtask");
    assert_eq!(
        out[2],
        C::RecordStats(StatsUpdate::Completed { checkpoint_id: 9, completion_ms: 1_000_040, path: None })
    );
}

#[test]
fn only_the_newest_aborted_directories_are_remembered() {
    let s = CheckpointSettings { max_concurrent: usize::MAX, ..settings() };
    let mut c = core(s);
    let now = at(Instant::now(), 0);
    let n = REMEMBERED_ABORTED_DIRS as u64 + 1;
    for id in 1..=n {
        c.on(tick(), now);
        c.on(reserved(id - 1, id), now);
    }
    c.on(stop(), now);
    assert_eq!(c.on(ack_file(0, 1), now), vec![], "the oldest is forgotten");
    assert_eq!(c.on(ack_file(0, 2), now), vec![C::DeleteDir("/ckpt/job/chk-2".into())]);
    assert_eq!(c.on(ack_file(0, n), now), vec![C::DeleteDir(format!("/ckpt/job/chk-{n}").into())]);
    assert_eq!(STOPPED, "checkpointing has stopped (the job attempt ended or a task finished)");
}

// ---- checkpoints after tasks finish (FLIP-147) ------------------------------------------

/// Two source subtasks (0/0, 0/1) feeding one sink subtask (1/0), checkpoints in memory.
fn fan_in() -> CoordinatorCore {
    let s = CheckpointSettings { dir: None, ..settings() };
    CoordinatorCore::new(JOB, s, None, [exec(0, 0), exec(0, 1), exec(1, 0)], Vec::new(), 128)
        .with_upstream([(exec(1, 0), vec![exec(0, 0), exec(0, 1)])].into_iter().collect())
}

fn finished(vertex: u32, subtask: u32, source: Option<u8>) -> E {
    E::TaskEnded {
        execution: exec(vertex, subtask),
        end: super::core::TaskEnd::Finished { source: source.map(|b| ByteBuf::from(vec![b])) },
    }
}

fn input_ended(vertex: u32, subtask: u32) -> E {
    E::TaskEnded { execution: exec(vertex, subtask), end: super::core::TaskEnd::InputEnded }
}

fn ack_of(vertex: u32, subtask: u32, id: u64) -> E {
    ack_with(exec(vertex, subtask), id, StateHandle::Inline(ByteBuf::from(vec![0; 4])))
}

#[test]
fn checkpoints_go_on_after_tasks_finish_and_triggers_follow_the_running_tasks() {
    let t0 = Instant::now();
    let steps: Vec<Step> = vec![
        // Source 0/1 had no split and finished at once: triggers go to 0/0 alone.
        (finished(0, 1, Some(7)), 0, &[]),
        (tick(), 10, &["reserve 0"]),
        (reserved(0, 1), 10, &["stats triggered 1 checkpoint of 3", "trigger 1 - aligned", "timeout 1 60s"]),
        (ack_of(0, 0, 1), 20, &["stats ack 1 v0 4B"]),
        // The finished source counts as acknowledged.
        (ack_of(1, 0, 1), 30, &["stats ack 1 v1 4B", "completed 1 -", "stats completed 1", "notify 1 completed"]),
        (tick(), 40, &["reserve 1"]),
        (reserved(1, 2), 40, &["stats triggered 2 checkpoint of 3", "trigger 2 - aligned", "timeout 2 60s"]),
        // The last source finishes before its barrier: no barrier reaches the sink, so the
        // pending checkpoint's trigger goes to the sink itself.
        (finished(0, 0, Some(8)), 50, &["trigger 2 - aligned to 1/0"]),
        (ack_of(1, 0, 2), 60, &["stats ack 2 v1 4B", "completed 2 -", "stats completed 2", "notify 2 completed"]),
        // From now on every trigger goes to the sink.
        (tick(), 70, &["reserve 2"]),
        (reserved(2, 3), 70, &["stats triggered 3 checkpoint of 3", "trigger 3 - aligned to 1/0", "timeout 3 60s"]),
    ];
    let mut c = fan_in();
    for (i, (event, ms, expected)) in steps.into_iter().enumerate() {
        let what = format!("{event:?}");
        let got: Vec<String> = c.on(event, at(t0, ms)).iter().map(show).collect();
        assert_eq!(got, expected.to_vec(), "step {i} ({what})");
    }
}

#[test]
fn a_finished_task_is_recorded_finished_with_its_readers_last_position() {
    let now = at(Instant::now(), 0);
    let mut c =
        fan_in().with_ended([(exec(0, 1), super::core::TaskEnd::Finished { source: Some(ByteBuf::from(vec![5])) })]);
    c.on(tick(), now);
    c.on(reserved(0, 4), now);
    c.on(ack_of(0, 0, 4), now);
    let out = c.on(ack_of(1, 0, 4), now);
    let Some(C::Completed { meta, .. }) = out.iter().find(|c| matches!(c, C::Completed { .. })) else {
        panic!("not completed: {out:?}")
    };
    let parts: Vec<(u32, u32, bool, Option<Vec<u8>>)> = meta
        .subtasks
        .iter()
        .map(|s| (s.vertex, s.subtask, s.finished, s.source.as_ref().map(|b| b.to_vec())))
        .collect();
    assert_eq!(parts, vec![(0, 0, false, None), (0, 1, true, Some(vec![5])), (1, 0, false, None)]);
    assert_eq!(meta.subtasks[1].state, StateHandle::Inline(ByteBuf::new()), "a finished task has no state");
}

#[test]
fn a_pending_checkpoint_completes_when_the_last_missing_task_finishes() {
    let now = at(Instant::now(), 0);
    let mut c = fan_in();
    c.on(tick(), now);
    c.on(reserved(0, 1), now);
    c.on(ack_of(0, 0, 1), now);
    c.on(ack_of(1, 0, 1), now);
    let got: Vec<String> = c.on(finished(0, 1, None), now).iter().map(show).collect();
    assert_eq!(got, ["completed 1 -", "stats completed 1", "notify 1 completed"]);
}

#[test]
fn the_final_checkpoint_is_triggered_once_no_task_has_input_left() {
    let now = at(Instant::now(), 0);
    let mut c = fan_in();
    assert!(c.on(finished(0, 0, None), now).is_empty());
    assert!(c.on(finished(0, 1, None), now).is_empty());
    // The sink's input ended and it waits: the final checkpoint goes now, not at the next tick.
    let got: Vec<String> = c.on(input_ended(1, 0), now).iter().map(show).collect();
    assert_eq!(got, ["reserve 0"]);
    let got: Vec<String> = c.on(reserved(0, 9), now).iter().map(show).collect();
    assert_eq!(got, ["stats triggered 9 checkpoint of 3", "trigger 9 - aligned to 1/0", "timeout 9 60s"]);
    let got: Vec<String> = c.on(ack_of(1, 0, 9), now).iter().map(show).collect();
    assert_eq!(got, ["stats ack 9 v1 4B", "completed 9 -", "stats completed 9", "notify 9 completed"]);
    // It finishes; nothing else is triggered.
    assert!(c.on(finished(1, 0, None), now).is_empty());
    let got: Vec<String> = c.on(checkpoint_now(3), now).iter().map(show).collect();
    assert_eq!(got, ["reserve 1"]);
    let got: Vec<String> = c.on(reserved(1, 10), now).iter().map(show).collect();
    assert_eq!(got, ["answer w3 err every task of the job finished"]);
}

#[test]
fn a_task_whose_input_ended_during_a_checkpoint_it_took_before_gets_another_one() {
    let now = at(Instant::now(), 0);
    let mut c = fan_in();
    c.on(finished(0, 1, None), now);
    c.on(tick(), now);
    c.on(reserved(0, 1), now);
    c.on(ack_of(0, 0, 1), now);
    c.on(ack_of(1, 0, 1), now);
    // (completed 1) — now the sources finish and the sink's input ends while 2 is pending,
    // which the sink acknowledged before its end.
    c.on(tick(), now);
    c.on(reserved(1, 2), now);
    c.on(ack_of(1, 0, 2), now);
    assert!(c.on(input_ended(1, 0), now).is_empty(), "2 is still pending");
    let got: Vec<String> = c.on(finished(0, 0, None), now).iter().map(show).collect();
    assert_eq!(got, ["completed 2 -", "stats completed 2", "notify 2 completed", "reserve 2"]);
}

// ---- split enumerators' state (FLIP-27) ---------------------------------------------------

#[test]
fn the_enumerators_state_is_taken_before_the_triggers_and_kept_in_the_metadata() {
    let now = at(Instant::now(), 0);
    let mut c = core(CheckpointSettings { dir: None, ..settings() }).with_enumerators(true);
    c.on(tick(), now);
    let got: Vec<String> = c.on(reserved(0, 1), now).iter().map(show).collect();
    assert_eq!(got, ["stats triggered 1 checkpoint of 2", "snapshot enumerators 1", "timeout 1 60s"]);
    // A source finishing meanwhile does not get a trigger before the enumerators' state.
    let ok = E::EnumeratorsSnapshotted { checkpoint_id: 1, result: Ok(vec![(0, vec![9, 9])]) };
    let got: Vec<String> = c.on(ok, now).iter().map(show).collect();
    assert_eq!(got, ["trigger 1 - aligned"]);
    c.on(ack(0, 1), now);
    let out = c.on(ack(1, 1), now);
    let Some(C::Completed { meta, .. }) = out.iter().find(|c| matches!(c, C::Completed { .. })) else {
        panic!("not completed: {out:?}")
    };
    assert_eq!(meta.enumerators.len(), 1);
    assert_eq!((meta.enumerators[0].vertex, meta.enumerators[0].state.to_vec()), (0, vec![9, 9]));
    // An enumerator that cannot give its state aborts the checkpoint.
    c.on(tick(), now);
    c.on(reserved(1, 2), now);
    let failed =
        E::EnumeratorsSnapshotted { checkpoint_id: 2, result: Err(RuntimeError::Checkpoint("disk full".into())) };
    let got: Vec<String> = c.on(failed, now).iter().map(show).collect();
    assert_eq!(got, ["stats failed 2: a split enumerator's state could not be taken: disk full", "notify 2 aborted"]);
}

#[test]
fn a_task_ending_while_the_enumerators_state_is_taken_gets_no_trigger_before_it() {
    let now = at(Instant::now(), 0);
    let mut c = core(CheckpointSettings { dir: None, ..settings() }).with_enumerators(true);
    c.on(tick(), now);
    c.on(reserved(0, 1), now);
    let done = E::TaskEnded { execution: exec(0, 0), end: super::core::TaskEnd::Finished { source: None } };
    assert!(c.on(done, now).is_empty(), "no trigger before the enumerators' state");
    let ok = E::EnumeratorsSnapshotted { checkpoint_id: 1, result: Ok(vec![]) };
    let got: Vec<String> = c.on(ok, now).iter().map(show).collect();
    assert_eq!(got, ["trigger 1 - aligned to 1/0"], "then to the subtasks no barrier reaches");
}
