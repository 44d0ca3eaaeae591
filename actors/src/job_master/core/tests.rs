//! Every transition of the job lifecycle as a table: a job is brought into a state by a
//! sequence of inputs, one more input is fed, and the commands that come out are compared
//! with the expected ones, written as short words (`status:RESTARTING`, `cancel:3`, ...).

use std::time::{Duration, Instant};

use super::*;
use crate::gateway::SlotAssignment;
use crate::ids::AllocationId;
use crate::restart_strategy::RestartStrategy;

const JOB: JobId = JobId(7);

/// Two vertices (source at parallelism 2, sink at parallelism 2): four subtasks in two slots.
/// Checkpointing stops when a task finishes (Flink 1.11; FLIP-147's cases are below).
fn new_core(strategy: RestartStrategy) -> JobCore {
    let vertices = vec![
        VertexSummary { id: 0, parallelism: 2, name: "Source: numbers".into() },
        VertexSummary { id: 1, parallelism: 2, name: "Sink: print".into() },
    ];
    let mut core = JobCore::new(JOB, vertices, RestartTracker::new(strategy), Duration::from_secs(5));
    core.enable_checkpointing(false);
    core
}

fn clock() -> Clock {
    Clock { now: Instant::now(), epoch_ms: 1_700_000_000_000 }
}

fn slots(executors: &[&str]) -> Vec<SlotAssignment> {
    executors
        .iter()
        .enumerate()
        .map(|(i, r)| SlotAssignment {
            resource_id: ResourceId(r.to_string()),
            slot_index: i as u32,
            allocation_id: AllocationId(i as u64),
        })
        .collect()
}

fn exec(vertex: u32, subtask: u32, attempt: u32) -> ExecutionId {
    ExecutionId { job: JOB, vertex, subtask, attempt }
}

fn report(vertex: u32, subtask: u32, attempt: u32, state: impl Into<TaskState>) -> JobInput {
    let location = ResourceId(if subtask == 0 { "te-a" } else { "te-b" }.to_string());
    JobInput::TaskUpdate(TaskStateUpdate {
        execution: exec(vertex, subtask, attempt),
        state: state.into(),
        location,
        final_source: None,
    })
}

fn failed(vertex: u32, subtask: u32, attempt: u32) -> JobInput {
    report(vertex, subtask, attempt, TaskOutcome::Failed(riffle_api::TaskError::msg("map", "boom")))
}

const ALL: [(u32, u32); 4] = [(0, 0), (0, 1), (1, 0), (1, 1)];

/// The inputs that take a new job to every subtask of attempt 0 running.
fn to_running() -> Vec<JobInput> {
    let mut v = vec![
        JobInput::Start,
        JobInput::Ready,
        JobInput::AttemptPrepared { result: Ok(()), executors_present: true },
        JobInput::SlotsGranted(slots(&["te-a", "te-b"])),
    ];
    v.extend(ALL.iter().map(|&(vx, s)| report(vx, s, 0, TaskState::Running)));
    v
}

/// After the first failure (source subtask 0) with one restart allowed and the other three
/// subtasks cancelled: RESTARTING, waiting for the restart delay.
fn to_restart_delay() -> Vec<JobInput> {
    let mut v = to_running();
    v.push(failed(0, 0, 0));
    v.extend([(0, 1), (1, 0), (1, 1)].iter().map(|&(vx, s)| report(vx, s, 0, TaskOutcome::Canceled)));
    v
}

fn one_restart() -> RestartStrategy {
    RestartStrategy::FixedDelay { attempts: 1, delay: Duration::from_millis(10) }
}

/// A command as a short word, so that tables stay readable.
fn word(c: &JobCommand) -> String {
    match c {
        JobCommand::PublishStatus(s) => format!("status:{s}"),
        JobCommand::RecordException(e) => {
            format!("exception:{}@{}", if e.is_root_cause { "root" } else { "concurrent" }, e.attempt)
        }
        JobCommand::ShowTaskState { .. } => "show".into(),
        JobCommand::PrepareAttempt { attempt, previous } => match previous {
            Some(p) => format!("prepare:{attempt}<-{p}"),
            None => format!("prepare:{attempt}"),
        },
        JobCommand::RequestSlots => "request-slots".into(),
        JobCommand::ReleaseSlots => "release-slots".into(),
        JobCommand::Deploy { attempt, assignments } => format!("deploy:{attempt}x{}", assignments.len()),
        JobCommand::CancelTasks(t) => format!("cancel:{}", t.len()),
        JobCommand::StartTimer { timer: JobTimer::CancelTimedOut { attempt }, .. } => format!("timer:cancel@{attempt}"),
        JobCommand::StartTimer { timer: JobTimer::RestartDue { attempt }, .. } => format!("timer:restart@{attempt}"),
        JobCommand::StartCheckpointing { tasks, ended } if ended.is_empty() => format!("checkpointing:{}", tasks.len()),
        JobCommand::StartCheckpointing { tasks, ended } => {
            let ended: Vec<String> = ended.iter().map(|(e, end)| end_word(e, end)).collect();
            format!("checkpointing:{}:{}", tasks.len(), ended.join(","))
        }
        JobCommand::TaskEnded { execution, end } => format!("ended:{}", end_word(execution, end)),
        JobCommand::StopCheckpointing(_) => "stop-checkpointing".into(),
        JobCommand::SuspendCheckpointing(_) => "suspend-checkpointing".into(),
        JobCommand::DropChannels { attempt } => format!("drop:{attempt}"),
        // A job that ended for good cleans up; one that did not says so (`+keep-ha-data`).
        JobCommand::Terminate { status, error, clean_up } => {
            let keep = if *clean_up { "" } else { "+keep-ha-data" };
            match error {
                Some(e) => format!("end:{status}:{e}{keep}"),
                None => format!("end:{status}{keep}"),
            }
        }
    }
}

fn end_word(e: &ExecutionId, end: &TaskEnd) -> String {
    match end {
        TaskEnd::InputEnded => format!("{}/{}-input", e.vertex, e.subtask),
        TaskEnd::Finished { source: Some(_) } => format!("{}/{}-finished+source", e.vertex, e.subtask),
        TaskEnd::Finished { source: None } => format!("{}/{}-finished", e.vertex, e.subtask),
    }
}

fn words(cs: &[JobCommand]) -> Vec<String> {
    cs.iter().map(word).filter(|w| w != "show").collect()
}

struct Case {
    name: &'static str,
    strategy: RestartStrategy,
    before: Vec<JobInput>,
    input: JobInput,
    expect: &'static [&'static str],
    status: JobStatus,
}

fn run(case: Case) {
    let mut core = new_core(case.strategy);
    for i in case.before {
        core.on(i, clock());
    }
    let got = words(&core.on(case.input, clock()));
    assert_eq!(got, case.expect, "{}", case.name);
    assert_eq!(core.status(), case.status, "{}", case.name);
}

#[test]
fn scheduling() {
    use JobStatus::*;
    let cases = vec![
        Case {
            name: "start: RUNNING (scheduling)",
            strategy: RestartStrategy::None,
            before: vec![],
            input: JobInput::Start,
            expect: &["status:RUNNING"],
            status: Running,
        },
        Case {
            name: "ready: the enumerators of attempt 0",
            strategy: RestartStrategy::None,
            before: vec![JobInput::Start],
            input: JobInput::Ready,
            expect: &["prepare:0"],
            status: Running,
        },
        Case {
            name: "enumerators started: slots",
            strategy: RestartStrategy::None,
            before: vec![JobInput::Start, JobInput::Ready],
            input: JobInput::AttemptPrepared { result: Ok(()), executors_present: true },
            expect: &["request-slots"],
            status: Running,
        },
        Case {
            name: "slots granted: deploy every subtask",
            strategy: RestartStrategy::None,
            before: to_running()[..3].to_vec(),
            input: JobInput::SlotsGranted(slots(&["te-a", "te-b"])),
            expect: &["deploy:0x2"],
            status: Running,
        },
        Case {
            name: "the last subtask runs: checkpointing starts",
            strategy: RestartStrategy::None,
            before: to_running()[..7].to_vec(),
            input: report(1, 1, 0, TaskState::Running),
            expect: &["checkpointing:4"],
            status: Running,
        },
        Case {
            name: "bad settings fail the job at once, even with restarts allowed",
            strategy: one_restart(),
            before: vec![JobInput::Start],
            input: JobInput::SchedulingFailed(RuntimeError::Unavailable("bad key".into())),
            expect: &[
                "exception:root@0",
                "status:FAILING",
                "status:FAILED",
                "release-slots",
                "drop:0",
                "end:FAILED:bad key",
            ],
            status: Failed,
        },
        Case {
            name: "no slots: the job fails, no restart",
            strategy: one_restart(),
            before: to_running()[..3].to_vec(),
            input: JobInput::SchedulingFailed(RuntimeError::Unavailable("not enough slots".into())),
            expect: &[
                "exception:root@0",
                "status:FAILING",
                "status:FAILED",
                "release-slots",
                "drop:0",
                "end:FAILED:not enough slots",
            ],
            status: Failed,
        },
        Case {
            name: "the enumerators do not start: the job fails",
            strategy: one_restart(),
            before: vec![JobInput::Start, JobInput::Ready],
            input: JobInput::AttemptPrepared {
                result: Err(RuntimeError::Unavailable("no such file".into())),
                executors_present: true,
            },
            expect: &[
                "exception:root@0",
                "status:FAILING",
                "status:FAILED",
                "release-slots",
                "drop:0",
                "end:FAILED:no such file",
            ],
            status: Failed,
        },
        Case {
            name: "slots on both kinds of TaskExecutor: nothing deployed, no restart",
            strategy: one_restart(),
            before: to_running()[..4].to_vec(),
            input: JobInput::PlacementFailed("spread".into()),
            expect: &[
                "exception:root@0",
                "status:FAILING",
                "status:FAILED",
                "release-slots",
                "drop:0",
                "end:FAILED:spread",
            ],
            status: Failed,
        },
        Case {
            name: "a TaskExecutor gone while deploying: a failover like any failure",
            strategy: one_restart(),
            before: to_running()[..4].to_vec(),
            input: JobInput::DeployFailed("task executor te-b is gone".into()),
            expect: &["exception:root@0", "status:RESTARTING", "cancel:4", "timer:cancel@0"],
            status: Restarting,
        },
        Case {
            name: "cancelled while the savepoint loads: CANCELED when ready",
            strategy: RestartStrategy::None,
            before: vec![JobInput::Start, JobInput::Cancel],
            input: JobInput::Ready,
            expect: &["status:CANCELED", "release-slots", "drop:0", "end:CANCELED"],
            status: Canceled,
        },
        Case {
            name: "cancelled while waiting for slots: CANCELED when they come",
            strategy: RestartStrategy::None,
            before: vec![
                JobInput::Start,
                JobInput::Ready,
                JobInput::AttemptPrepared { result: Ok(()), executors_present: true },
                JobInput::Cancel,
            ],
            input: JobInput::SlotsGranted(slots(&["te-a", "te-b"])),
            expect: &["status:CANCELED", "release-slots", "drop:0", "end:CANCELED"],
            status: Canceled,
        },
    ];
    for c in cases {
        run(c);
    }
}

#[test]
fn running_and_ending() {
    use JobStatus::*;
    let mut finishing = to_running();
    finishing.extend(ALL[..3].iter().map(|&(v, s)| report(v, s, 0, TaskOutcome::Finished)));
    let cases = vec![
        Case {
            name: "the first subtask finishes: no more checkpoints (Flink 1.11)",
            strategy: RestartStrategy::None,
            before: to_running(),
            input: report(0, 0, 0, TaskOutcome::Finished),
            expect: &["stop-checkpointing"],
            status: Running,
        },
        Case {
            name: "the last subtask finishes: FINISHED",
            strategy: RestartStrategy::None,
            before: finishing,
            input: report(1, 1, 0, TaskOutcome::Finished),
            expect: &["status:FINISHED", "release-slots", "drop:0", "end:FINISHED"],
            status: Finished,
        },
        Case {
            name: "a report of a superseded attempt is ignored",
            strategy: one_restart(),
            before: {
                let mut v = to_restart_delay();
                v.push(JobInput::Timer(JobTimer::RestartDue { attempt: 0 }));
                v.push(JobInput::AttemptPrepared { result: Ok(()), executors_present: true });
                v
            },
            input: failed(1, 0, 0),
            expect: &[],
            status: Running,
        },
        Case {
            name: "a second report of an ended subtask is ignored",
            strategy: RestartStrategy::None,
            before: {
                let mut v = to_running();
                v.push(report(0, 0, 0, TaskOutcome::Finished));
                v
            },
            input: failed(0, 0, 0),
            expect: &[],
            status: Running,
        },
        Case {
            name: "a subtask cancelled by nobody fails the job",
            strategy: RestartStrategy::None,
            before: to_running(),
            input: report(1, 0, 0, TaskOutcome::Canceled),
            expect: &["exception:root@0", "status:FAILING", "stop-checkpointing", "cancel:3", "timer:cancel@0"],
            status: Failing,
        },
        Case {
            name: "cancel: every running subtask is cancelled",
            strategy: RestartStrategy::None,
            before: to_running(),
            input: JobInput::Cancel,
            expect: &["status:CANCELLING", "stop-checkpointing", "cancel:4", "timer:cancel@0"],
            status: Cancelling,
        },
        Case {
            name: "cancel of an ended job does nothing",
            strategy: RestartStrategy::None,
            before: vec![JobInput::Start, JobInput::SchedulingFailed(RuntimeError::Unavailable("x".into()))],
            input: JobInput::Cancel,
            expect: &[],
            status: Failed,
        },
        Case {
            name: "the cancel timeout ends a cancelling job without the stragglers",
            strategy: RestartStrategy::None,
            before: {
                let mut v = to_running();
                v.push(JobInput::Cancel);
                v
            },
            input: JobInput::Timer(JobTimer::CancelTimedOut { attempt: 0 }),
            expect: &["status:CANCELED", "release-slots", "drop:0", "end:CANCELED"],
            status: Canceled,
        },
    ];
    for c in cases {
        run(c);
    }
}

#[test]
fn failover() {
    use JobStatus::*;
    let mut during_restart = to_running();
    during_restart.push(failed(0, 0, 0));
    let cases = vec![
        Case {
            name: "first failure with a restart left: RESTARTING, the rest cancelled",
            strategy: one_restart(),
            before: to_running(),
            input: failed(0, 0, 0),
            expect: &["exception:root@0", "status:RESTARTING", "stop-checkpointing", "cancel:3", "timer:cancel@0"],
            status: Restarting,
        },
        Case {
            name: "first failure without restarts: FAILING",
            strategy: RestartStrategy::None,
            before: to_running(),
            input: failed(0, 0, 0),
            expect: &["exception:root@0", "status:FAILING", "stop-checkpointing", "cancel:3", "timer:cancel@0"],
            status: Failing,
        },
        Case {
            name: "failure during the restart: recorded, not a root cause, nothing else changes",
            strategy: one_restart(),
            before: during_restart.clone(),
            input: failed(1, 1, 0),
            expect: &["exception:concurrent@0", "cancel:2", "timer:cancel@0"],
            status: Restarting,
        },
        Case {
            name: "every subtask stopped: the restart delay",
            strategy: one_restart(),
            before: to_restart_delay()[..to_restart_delay().len() - 1].to_vec(),
            input: report(1, 1, 0, TaskOutcome::Canceled),
            expect: &["timer:restart@0"],
            status: Restarting,
        },
        Case {
            name: "the restart delay passed: attempt 1 on the same slots",
            strategy: one_restart(),
            before: to_restart_delay(),
            input: JobInput::Timer(JobTimer::RestartDue { attempt: 0 }),
            expect: &["prepare:1<-0"],
            status: Restarting,
        },
        Case {
            name: "attempt 1 prepared: RUNNING again, deployed on the slots held",
            strategy: one_restart(),
            before: {
                let mut v = to_restart_delay();
                v.push(JobInput::Timer(JobTimer::RestartDue { attempt: 0 }));
                v
            },
            input: JobInput::AttemptPrepared { result: Ok(()), executors_present: true },
            expect: &["status:RUNNING", "deploy:1x2"],
            status: Running,
        },
        Case {
            name: "a TaskExecutor of the slots is gone: new slots",
            strategy: one_restart(),
            before: {
                let mut v = to_restart_delay();
                v.push(JobInput::Timer(JobTimer::RestartDue { attempt: 0 }));
                v
            },
            input: JobInput::AttemptPrepared { result: Ok(()), executors_present: false },
            expect: &["status:RUNNING", "release-slots", "request-slots"],
            status: Running,
        },
        Case {
            name: "the enumerators of the new attempt do not start: FAILED",
            strategy: one_restart(),
            before: {
                let mut v = to_restart_delay();
                v.push(JobInput::Timer(JobTimer::RestartDue { attempt: 0 }));
                v
            },
            input: JobInput::AttemptPrepared {
                result: Err(RuntimeError::Unavailable("gone".into())),
                executors_present: true,
            },
            expect: &[
                "exception:root@1",
                "status:FAILING",
                "status:FAILED",
                "release-slots",
                "drop:1",
                "end:FAILED:gone",
            ],
            status: Failed,
        },
        Case {
            name: "a stale restart timer (the job was cancelled meanwhile) does nothing",
            strategy: one_restart(),
            before: {
                let mut v = to_restart_delay();
                v.push(JobInput::Cancel);
                v
            },
            input: JobInput::Timer(JobTimer::RestartDue { attempt: 0 }),
            expect: &[],
            status: Canceled,
        },
        Case {
            name: "cancel during the restart delay: CANCELED at once",
            strategy: one_restart(),
            before: to_restart_delay(),
            input: JobInput::Cancel,
            expect: &["status:CANCELLING", "status:CANCELED", "release-slots", "drop:0", "end:CANCELED"],
            status: Canceled,
        },
        Case {
            name: "cancel while cancelling the failed attempt: CANCELLING, the rest still cancelled",
            strategy: one_restart(),
            before: during_restart.clone(),
            input: JobInput::Cancel,
            expect: &["status:CANCELLING", "cancel:3", "timer:cancel@0"],
            status: Cancelling,
        },
        Case {
            name: "stragglers past the cancel timeout: restart without them",
            strategy: one_restart(),
            before: during_restart,
            input: JobInput::Timer(JobTimer::CancelTimedOut { attempt: 0 }),
            expect: &["prepare:1<-0"],
            status: Restarting,
        },
        Case {
            name: "restarts used up: the next failure fails the job with it as root cause",
            strategy: one_restart(),
            before: {
                let mut v = to_restart_delay();
                v.push(JobInput::Timer(JobTimer::RestartDue { attempt: 0 }));
                v.push(JobInput::AttemptPrepared { result: Ok(()), executors_present: true });
                v.extend(ALL.iter().map(|&(vx, s)| report(vx, s, 1, TaskState::Running)));
                v
            },
            input: failed(1, 1, 1),
            expect: &["exception:root@1", "status:FAILING", "stop-checkpointing", "cancel:3", "timer:cancel@1"],
            status: Failing,
        },
        Case {
            name: "a lost TaskExecutor fails the subtasks in its slot",
            strategy: RestartStrategy::None,
            before: to_running(),
            input: JobInput::TaskExecutorLost { resource_id: ResourceId("te-b".into()), reason: "heartbeat".into() },
            expect: &[
                "exception:root@0",
                "status:FAILING",
                "stop-checkpointing",
                "cancel:3",
                "timer:cancel@0",
                "exception:concurrent@0",
                "cancel:2",
                "timer:cancel@0",
            ],
            status: Failing,
        },
    ];
    for c in cases {
        run(c);
    }
}

#[test]
fn the_root_cause_is_the_first_failure() {
    let mut core = new_core(RestartStrategy::None);
    for i in to_running() {
        core.on(i, clock());
    }
    core.on(failed(0, 1, 0), clock());
    core.on(report(1, 0, 0, TaskOutcome::Failed(riffle_api::TaskError::msg("sink", "later"))), clock());
    core.on(report(0, 0, 0, TaskOutcome::Canceled), clock());
    let end = words(&core.on(report(1, 1, 0, TaskOutcome::Canceled), clock()));
    let last = end.last().cloned().unwrap_or_default();
    assert!(last.starts_with("end:FAILED:operator 'map' failed: boom (subtask 2/2 of 'Source: numbers'"), "{last}");
}

#[test]
fn the_cause_chain_reaches_the_exception_history() {
    #[derive(Debug, thiserror::Error)]
    #[error("cannot write the batch")]
    struct Outer(#[source] std::io::Error);
    let mut core = new_core(RestartStrategy::None);
    for i in to_running() {
        core.on(i, clock());
    }
    let err = riffle_api::TaskError::new("sink", &Outer(std::io::Error::other("disk full")));
    let out = core.on(report(1, 0, 0, TaskOutcome::Failed(err)), clock());
    let entry = out
        .iter()
        .find_map(|c| match c {
            JobCommand::RecordException(e) => Some(e.clone()),
            _ => None,
        })
        .expect("the failure is recorded");
    assert_eq!(
        entry.exception,
        "operator 'sink' failed: cannot write the batch: disk full (subtask 1/2 of 'Sink: print', task executor te-a)"
    );
    assert_eq!(
        entry.causes,
        vec![
            "operator 'sink' failed: cannot write the batch (subtask 1/2 of 'Sink: print', task executor te-a)"
                .to_string(),
            "disk full".to_string(),
        ]
    );
    assert_eq!(
        entry.stacktrace(),
        "operator 'sink' failed: cannot write the batch (subtask 1/2 of 'Sink: print', task executor te-a)\ndisk full"
    );
}

#[test]
fn savepoints() {
    let mut core = new_core(RestartStrategy::None);
    assert!(core.begin_savepoint(AfterSavepoint::Continue).is_err(), "not running yet");
    for i in to_running() {
        core.on(i, clock());
    }
    assert_eq!(core.begin_savepoint(AfterSavepoint::Continue), Ok(()));
    assert_eq!(core.begin_savepoint(AfterSavepoint::Cancel), Ok(()));
    assert!(core.begin_savepoint(AfterSavepoint::Stop).is_err(), "one stop/cancel with savepoint at a time");
    let got = words(&core.on(JobInput::SavepointFinished { succeeded: true }, clock()));
    assert_eq!(got, ["status:CANCELLING", "stop-checkpointing", "cancel:4", "timer:cancel@0"]);

    // Stop without draining: every subtask is stopped where it is, and the job FINISHES.
    let mut core = new_core(RestartStrategy::None);
    for i in to_running() {
        core.on(i, clock());
    }
    assert_eq!(core.begin_savepoint(AfterSavepoint::StopWithoutDrain), Ok(()));
    let got = words(&core.on(JobInput::SavepointFinished { succeeded: true }, clock()));
    assert_eq!(got, ["stop-checkpointing", "cancel:4", "timer:cancel@0"]);
    assert_eq!(core.status(), JobStatus::Running);
    for (v, s) in ALL {
        core.on(report(v, s, 0, TaskOutcome::Canceled), clock());
    }
    assert_eq!(core.status(), JobStatus::Finished, "stopped subtasks are no failure");

    // A failed savepoint leaves the job running, and another may be asked for.
    let mut core = new_core(RestartStrategy::None);
    for i in to_running() {
        core.on(i, clock());
    }
    assert_eq!(core.begin_savepoint(AfterSavepoint::Cancel), Ok(()));
    assert!(words(&core.on(JobInput::SavepointFinished { succeeded: false }, clock())).is_empty());
    assert_eq!(core.status(), JobStatus::Running);
    assert_eq!(core.begin_savepoint(AfterSavepoint::Stop), Ok(()));

    // During a failover there is no coordinator: refused.
    let mut core = new_core(one_restart());
    for i in to_running() {
        core.on(i, clock());
    }
    core.on(failed(0, 0, 0), clock());
    let why = core.begin_savepoint(AfterSavepoint::Continue).unwrap_err();
    assert!(why.to_string().contains("not running"), "{why}");
}

#[test]
fn ending_input_is_confirmed_only_for_the_current_attempt_of_a_running_job() {
    let mut core = new_core(one_restart());
    for i in to_restart_delay() {
        core.on(i, clock());
    }
    assert_eq!(core.confirm_end(0), Err(RuntimeError::Refused("the job is RESTARTING now".to_string())));
    core.on(JobInput::Timer(JobTimer::RestartDue { attempt: 0 }), clock());
    core.on(JobInput::AttemptPrepared { result: Ok(()), executors_present: true }, clock());
    assert_eq!(
        core.confirm_end(0),
        Err(RuntimeError::Refused("attempt 0 of the job was superseded by attempt 1".to_string()))
    );
    assert_eq!(core.confirm_end(1), Ok(()));
    core.on(JobInput::Cancel, clock());
    assert!(core.confirm_end(1).is_err());
}

/// FLIP-147: a job whose checkpoints go on after tasks finish.
fn run_after_finish(before: Vec<JobInput>, input: JobInput) -> (Vec<String>, JobCore) {
    let mut core = new_core(RestartStrategy::None);
    core.enable_checkpointing(true);
    for i in before {
        core.on(i, clock());
    }
    (words(&core.on(input, clock())), core)
}

fn finished_with_source(vertex: u32, subtask: u32) -> JobInput {
    let location = ResourceId("te-a".into());
    JobInput::TaskUpdate(TaskStateUpdate {
        execution: exec(vertex, subtask, 0),
        state: TaskOutcome::Finished.into(),
        location,
        final_source: Some(serde_bytes::ByteBuf::from(vec![1])),
    })
}

#[test]
fn checkpoints_after_tasks_finish() {
    let mut first_three = to_running()[..7].to_vec();
    // A source subtask finishes before the last subtask runs: checkpointing still starts, and
    // the coordinator learns of it (with the reader's last position).
    first_three.push(finished_with_source(0, 1));
    let (got, _) = run_after_finish(first_three.clone(), report(1, 1, 0, TaskState::Running));
    assert_eq!(got, ["checkpointing:4:0/1-finished+source"]);

    // Once checkpointing runs, a finished subtask and one whose input ended are handed over;
    // checkpointing goes on.
    let (got, core) = run_after_finish(to_running(), finished_with_source(0, 0));
    assert_eq!(got, ["ended:0/0-finished+source"]);
    assert!(core.is_checkpointing());
    let mut before = to_running();
    before.push(finished_with_source(0, 0));
    let (got, _) = run_after_finish(before.clone(), report(1, 0, 0, TaskState::InputEnded));
    assert_eq!(got, ["ended:1/0-input"]);

    // When every subtask finished, the job ends (and checkpointing with it).
    before.push(report(0, 1, 0, TaskOutcome::Finished));
    before.push(report(1, 0, 0, TaskOutcome::Finished));
    let (got, core) = run_after_finish(before, report(1, 1, 0, TaskOutcome::Finished));
    assert_eq!(
        got,
        ["ended:1/1-finished", "stop-checkpointing", "status:FINISHED", "release-slots", "drop:0", "end:FINISHED"]
    );
    assert!(!core.is_checkpointing());

    // A failure after a task finished still fails over as before (nothing is restarted
    // without a restart strategy), and the next attempt forgets what ended in this one.
    let mut before = to_running();
    before.push(finished_with_source(0, 1));
    let (got, _) = run_after_finish(before, failed(0, 0, 0));
    assert_eq!(got, ["exception:root@0", "status:FAILING", "stop-checkpointing", "cancel:2", "timer:cancel@0"]);

    // A report from a superseded attempt is ignored.
    let (got, _) = run_after_finish(to_running(), report(0, 0, 7, TaskState::InputEnded));
    assert!(got.is_empty(), "{got:?}");
}

/// The inputs that take a job to `to_running` plus `more`.
fn running_then(more: impl IntoIterator<Item = JobInput>) -> Vec<JobInput> {
    let mut v = to_running();
    v.extend(more);
    v
}

/// High availability: a JobManager that lost its leadership suspends its jobs. The job is
/// SUSPENDED at once, checkpointing stops keeping every file, what runs is cancelled, and the
/// JobMaster ends without cleaning up the job's HA data (`+keep-ha-data`).
#[test]
fn suspension() {
    use JobStatus::*;
    let all_cancelled = || ALL.iter().map(|&(v, s)| report(v, s, 0, TaskOutcome::Canceled)).collect::<Vec<_>>();
    let cases = vec![
        Case {
            name: "suspend while running: SUSPENDED, checkpointing suspended, every subtask cancelled",
            strategy: one_restart(),
            before: to_running(),
            input: JobInput::Suspend,
            expect: &["status:SUSPENDED", "suspend-checkpointing", "cancel:4", "timer:cancel@0"],
            status: Suspended,
        },
        Case {
            name: "the last cancelled subtask of a suspended job: it ends, keeping its HA data",
            strategy: one_restart(),
            before: {
                let mut v = running_then([JobInput::Suspend]);
                v.extend(all_cancelled().into_iter().take(3));
                v
            },
            input: report(1, 1, 0, TaskOutcome::Canceled),
            expect: &["release-slots", "drop:0", "end:SUSPENDED+keep-ha-data"],
            status: Suspended,
        },
        Case {
            name: "the cancel timeout ends a suspended job without the stragglers",
            strategy: one_restart(),
            before: running_then([JobInput::Suspend]),
            input: JobInput::Timer(JobTimer::CancelTimedOut { attempt: 0 }),
            expect: &["release-slots", "drop:0", "end:SUSPENDED+keep-ha-data"],
            status: Suspended,
        },
        Case {
            name: "a failure reported while suspending does not restart and is not recorded",
            strategy: one_restart(),
            before: running_then([JobInput::Suspend]),
            input: failed(0, 0, 0),
            expect: &[],
            status: Suspended,
        },
        Case {
            name: "a failure as the last report of a suspending job ends it SUSPENDED",
            strategy: one_restart(),
            before: {
                let mut v = running_then([JobInput::Suspend]);
                v.extend(all_cancelled().into_iter().skip(1));
                v
            },
            input: failed(0, 0, 0),
            expect: &["release-slots", "drop:0", "end:SUSPENDED+keep-ha-data"],
            status: Suspended,
        },
        Case {
            name: "a late report after the suspension ended the JobMaster is ignored",
            strategy: one_restart(),
            before: running_then([JobInput::Suspend, JobInput::Timer(JobTimer::CancelTimedOut { attempt: 0 })]),
            input: report(0, 1, 0, TaskOutcome::Canceled),
            expect: &[],
            status: Suspended,
        },
        Case {
            name: "suspend while waiting for the restart delay: it ends at once",
            strategy: one_restart(),
            before: to_restart_delay(),
            input: JobInput::Suspend,
            expect: &["status:SUSPENDED", "release-slots", "drop:0", "end:SUSPENDED+keep-ha-data"],
            status: Suspended,
        },
        Case {
            name: "the pending restart timer of a suspended job starts no attempt",
            strategy: one_restart(),
            before: {
                let mut v = to_restart_delay();
                v.push(JobInput::Suspend);
                v
            },
            input: JobInput::Timer(JobTimer::RestartDue { attempt: 0 }),
            expect: &[],
            status: Suspended,
        },
        Case {
            name: "suspend while restarting, subtasks still stopping: they are cancelled",
            strategy: one_restart(),
            before: running_then([failed(0, 0, 0)]),
            input: JobInput::Suspend,
            expect: &["status:SUSPENDED", "cancel:3", "timer:cancel@0"],
            status: Suspended,
        },
        Case {
            name: "the cancel timeout of a suspended restart ends it, no new attempt",
            strategy: one_restart(),
            before: running_then([failed(0, 0, 0), JobInput::Suspend]),
            input: JobInput::Timer(JobTimer::CancelTimedOut { attempt: 0 }),
            expect: &["release-slots", "drop:0", "end:SUSPENDED+keep-ha-data"],
            status: Suspended,
        },
        Case {
            name: "suspend during a cancel: SUSPENDED, not CANCELED (the next leader decides)",
            strategy: RestartStrategy::None,
            before: running_then([JobInput::Cancel]),
            input: JobInput::Suspend,
            expect: &["status:SUSPENDED", "cancel:4", "timer:cancel@0"],
            status: Suspended,
        },
        Case {
            name: "a cancelled subtask of a suspended cancel: still SUSPENDED when all stopped",
            strategy: RestartStrategy::None,
            before: {
                let mut v = running_then([JobInput::Cancel, JobInput::Suspend]);
                v.extend(all_cancelled().into_iter().take(3));
                v
            },
            input: report(1, 1, 0, TaskOutcome::Canceled),
            expect: &["release-slots", "drop:0", "end:SUSPENDED+keep-ha-data"],
            status: Suspended,
        },
        Case {
            name: "suspend while failing (no restart): SUSPENDED, the failure is the next leader's",
            strategy: RestartStrategy::None,
            before: running_then([failed(0, 0, 0)]),
            input: JobInput::Suspend,
            expect: &["status:SUSPENDED", "cancel:3", "timer:cancel@0"],
            status: Suspended,
        },
        Case {
            name: "suspend while waiting for slots: it ends at once",
            strategy: one_restart(),
            before: to_running()[..3].to_vec(),
            input: JobInput::Suspend,
            expect: &["status:SUSPENDED", "release-slots", "drop:0", "end:SUSPENDED+keep-ha-data"],
            status: Suspended,
        },
        Case {
            name: "slots granted after the suspension deploy nothing",
            strategy: one_restart(),
            before: {
                let mut v = to_running()[..3].to_vec();
                v.push(JobInput::Suspend);
                v
            },
            input: JobInput::SlotsGranted(slots(&["te-a", "te-b"])),
            expect: &[],
            status: Suspended,
        },
        Case {
            name: "suspend a created job (before scheduling)",
            strategy: RestartStrategy::None,
            before: vec![],
            input: JobInput::Suspend,
            expect: &["status:SUSPENDED", "release-slots", "drop:0", "end:SUSPENDED+keep-ha-data"],
            status: Suspended,
        },
        Case {
            name: "a second suspension does nothing",
            strategy: one_restart(),
            before: running_then([JobInput::Suspend]),
            input: JobInput::Suspend,
            expect: &[],
            status: Suspended,
        },
        Case {
            name: "a finished job is not suspended",
            strategy: RestartStrategy::None,
            before: running_then(ALL.iter().map(|&(v, s)| report(v, s, 0, TaskOutcome::Finished))),
            input: JobInput::Suspend,
            expect: &[],
            status: Finished,
        },
        Case {
            name: "cancel of a suspended job does nothing",
            strategy: RestartStrategy::None,
            before: running_then([JobInput::Suspend]),
            input: JobInput::Cancel,
            expect: &[],
            status: Suspended,
        },
    ];
    for c in cases {
        run(c);
    }
}

/// A savepoint under way when the job is suspended: the coordinator stops (the savepoint's
/// caller gets the coordinator's abort, naming the suspension), its completion cancels
/// nothing, and no new savepoint is taken.
#[test]
fn a_savepoint_during_suspension_fails_with_a_clear_error() {
    let mut core = new_core(RestartStrategy::None);
    for i in to_running() {
        core.on(i, clock());
    }
    assert_eq!(core.begin_savepoint(AfterSavepoint::Cancel), Ok(()));
    let got = core.on(JobInput::Suspend, clock());
    assert!(got.contains(&JobCommand::SuspendCheckpointing(SUSPENDED)), "{got:?}");
    assert_eq!(words(&got), ["status:SUSPENDED", "suspend-checkpointing", "cancel:4", "timer:cancel@0"]);
    // The cancel-with-savepoint is forgotten: even a savepoint that made it cancels nothing.
    assert!(words(&core.on(JobInput::SavepointFinished { succeeded: true }, clock())).is_empty());
    assert_eq!(core.status(), JobStatus::Suspended);
    let why = core.begin_savepoint(AfterSavepoint::Continue).unwrap_err();
    assert_eq!(why, RuntimeError::Refused(SUSPENDED.to_string()));
    assert_eq!(core.confirm_end(0), Err(RuntimeError::Refused("the job is SUSPENDED now".to_string())));
}
