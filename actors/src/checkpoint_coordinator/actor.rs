//! The CheckpointCoordinator actor: the shell around [`CoordinatorCore`]. It turns messages,
//! timers and finished futures into [`CoordinatorEvent`]s and runs the core's
//! [`CoordinatorCommand`]s: gateway messages to the subtasks, metadata writes and directory
//! deletes through `checkpoint_storage`, id reservations in the HA job store, the history in
//! `CheckpointStats`, and the answers to callers (their reply channels kept here, under the
//! core's waiter tokens). It decides nothing itself.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use riffle_state::checkpoint_metadata::{CheckpointKind, CheckpointMetadata, VertexInfo};
use tokio::sync::oneshot;

use super::core::{
    Clock, Completion, CoordinatorCommand, CoordinatorCore, CoordinatorEvent, StatsUpdate, TaskEnd, TriggerRequest,
    WaiterId,
};
use super::settings::CheckpointSettings;
use crate::checkpoint_storage;
use crate::error::RuntimeError;
use crate::gateway::{AcknowledgeCheckpoint, DeclineCheckpoint, NotifyCheckpoint, TriggerCheckpoint};
use crate::ids::{ExecutionId, JobId, ResourceId};
use crate::services::{Directory, JobRecords};
use crate::shared_state_registry::SharedStateRegistry;

fn lock(r: &std::sync::Mutex<SharedStateRegistry>) -> std::sync::MutexGuard<'_, SharedStateRegistry> {
    // Every update leaves the registry consistent: a panic elsewhere does not spoil it.
    r.lock().unwrap_or_else(|e| e.into_inner())
}

/// A job's checkpoint statistics (counts, the newest checkpoints, the settings), outliving
/// its attempts; read by the MiniCluster API, the REST API and the metrics.
#[derive(Debug, Default)]
pub struct CheckpointStats {
    /// Counts over the job's life and the newest checkpoints one by one.
    pub history: std::sync::Mutex<crate::checkpoint_history::CheckpointHistory>,
    /// The settings the job's checkpoints run with (none until the job is scheduled).
    pub settings: std::sync::Mutex<Option<CheckpointSettings>>,
}

impl CheckpointStats {
    /// Runs `f` on the history (a panic elsewhere while it was held does not make it unreadable:
    /// every update leaves it consistent).
    pub fn with_history<R>(&self, f: impl FnOnce(&mut crate::checkpoint_history::CheckpointHistory) -> R) -> R {
        let mut g = self.history.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut g)
    }

    /// The settings the job's checkpoints run with.
    pub fn settings(&self) -> Option<CheckpointSettings> {
        self.settings.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// JobMaster → CheckpointCoordinator: a subtask's input ended or it finished (FLIP-147).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct TaskEndedForCheckpoints {
    /// Which execution.
    pub execution: ExecutionId,
    /// How far it got.
    pub end: TaskEnd,
}

/// Stops triggering and aborts what is pending (the attempt ends, or a task finished).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct StopCheckpointing {
    /// Why, for the log.
    pub reason: String,
    /// The job is suspended: aborted checkpoints keep their files (see
    /// [`super::core::CoordinatorEvent::Stop`]).
    pub keep_files: bool,
}

/// Triggers a savepoint; answers with its directory when it completed.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct TriggerSavepoint {
    /// Where the `savepoint-…` directory goes (else `state.savepoints.dir`).
    pub target: Option<PathBuf>,
    /// Stop-with-savepoint: sources stop after the barrier and end once it completed.
    pub stop_sources: bool,
    /// Gets the savepoint's directory, or why there is none.
    pub reply: oneshot::Sender<Result<PathBuf, RuntimeError>>,
}

/// Triggers a checkpoint now (besides the periodic ones); answers with its id when it
/// completed.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct TriggerCheckpointNow {
    /// Gets the checkpoint's id, or why it failed.
    pub reply: oneshot::Sender<Result<u64, RuntimeError>>,
}

/// CheckpointCoordinator → JobMaster: a checkpoint completed; restarts resume from it.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct CheckpointCompleted {
    /// What it consists of.
    pub meta: Arc<CheckpointMetadata>,
    /// Its directory (none: kept in memory only).
    pub dir: Option<PathBuf>,
}

/// What a coordinator needs to know of the job attempt it serves.
pub struct CoordinatorTasks {
    /// Every subtask: all must acknowledge (or finish).
    pub tasks: Vec<(ExecutionId, ResourceId)>,
    /// Each subtask's upstream subtasks (sources have none): triggers go to the subtasks
    /// with no upstream subtask still running.
    pub upstream: HashMap<ExecutionId, Vec<ExecutionId>>,
    /// Subtasks whose input ended or that finished before checkpointing started.
    pub ended: Vec<(ExecutionId, TaskEnd)>,
    /// The split enumerators, by source vertex: their state goes into every checkpoint.
    pub enumerators: Vec<(u32, Addr<crate::source_coordinator::SourceCoordinator>)>,
    /// The job's vertices, recorded in the metadata.
    pub vertices: Vec<VertexInfo>,
    /// The job's number of key groups.
    pub max_parallelism: u32,
}

/// A caller waiting for a trigger's outcome.
enum Waiter {
    Savepoint(oneshot::Sender<Result<PathBuf, RuntimeError>>),
    Checkpoint(oneshot::Sender<Result<u64, RuntimeError>>),
}

/// The CheckpointCoordinator actor.
pub struct CheckpointCoordinator {
    job: JobId,
    interval: Option<Duration>,
    /// `state.savepoints.dir`, the default target of savepoints.
    savepoint_dir: Option<PathBuf>,
    /// Where the TaskExecutors are (notifications of completion and abort go to them).
    directory: Arc<Directory>,
    /// The job's checkpoint statistics and (HA) store.
    jobs: Arc<JobRecords>,
    tasks: Vec<(ExecutionId, ResourceId)>,
    /// Where each subtask runs.
    located: HashMap<ExecutionId, ResourceId>,
    /// The split enumerators, by source vertex.
    enumerators: Vec<(u32, Addr<crate::source_coordinator::SourceCoordinator>)>,
    /// The job's id counter, shared with the JobMaster (which raises it past a restored id).
    ids: Arc<AtomicU64>,
    stats: Arc<CheckpointStats>,
    core: CoordinatorCore,
    waiters: HashMap<WaiterId, Waiter>,
    next_waiter: u64,
    on_complete: Recipient<CheckpointCompleted>,
    /// The job's checkpoint directory (none: checkpoints in memory).
    job_dir: Option<PathBuf>,
    /// The latest checkpoint completed in this attempt: the base of the next increment.
    latest_completed: Option<u64>,
    /// The base of each pending incremental checkpoint, chosen at its first trigger.
    bases: HashMap<u64, Option<u64>>,
    /// Which shared files the retained checkpoints refer to.
    registry: Arc<std::sync::Mutex<SharedStateRegistry>>,
}

impl CheckpointCoordinator {
    /// A coordinator for one attempt.
    pub fn new(
        job: JobId,
        settings: CheckpointSettings,
        directory: Arc<Directory>,
        jobs: Arc<JobRecords>,
        tasks: CoordinatorTasks,
        ids: Arc<AtomicU64>,
        on_complete: Recipient<CheckpointCompleted>,
    ) -> Self {
        let stats = jobs.checkpoint_stats(job);
        let job_dir = settings.job_dir(job);
        let core = CoordinatorCore::new(
            job,
            settings.clone(),
            settings.job_dir(job),
            tasks.tasks.iter().map(|(e, _)| *e),
            tasks.vertices,
            tasks.max_parallelism,
        )
        .with_upstream(tasks.upstream)
        .with_ended(tasks.ended)
        .with_enumerators(!tasks.enumerators.is_empty());
        Self {
            job,
            interval: settings.interval,
            savepoint_dir: settings.savepoint_dir,
            directory,
            jobs,
            located: tasks.tasks.iter().cloned().collect(),
            enumerators: tasks.enumerators,
            tasks: tasks.tasks,
            ids,
            stats,
            core,
            waiters: HashMap::new(),
            next_waiter: 0,
            on_complete,
            job_dir,
            latest_completed: None,
            bases: HashMap::new(),
            registry: Arc::default(),
        }
    }

    /// Keeps `w`'s reply channel; the core sees only the token.
    fn wait(&mut self, w: Waiter) -> WaiterId {
        let id = WaiterId(self.next_waiter);
        self.next_waiter += 1;
        self.waiters.insert(id, w);
        id
    }

    /// Hands `event` to the core at the current time and runs what it decides.
    fn on(&mut self, event: CoordinatorEvent, ctx: &mut Context<Self>) {
        let now = Clock::system();
        for c in self.core.on(event, now) {
            self.run(c, ctx);
        }
    }

    fn run(&mut self, command: CoordinatorCommand, ctx: &mut Context<Self>) {
        match command {
            CoordinatorCommand::ReserveId { request } => self.reserve_id(request, ctx),
            CoordinatorCommand::SnapshotEnumerators { checkpoint_id } => self.snapshot_enumerators(checkpoint_id, ctx),
            CoordinatorCommand::SendTrigger {
                checkpoint_id,
                to,
                target,
                aligned,
                unaligned,
                inline_threshold,
                incremental,
                stop_sources,
            } => {
                // The base is chosen once per checkpoint (its later triggers, to subtasks whose
                // upstream ended, build on the same one), and its files stay until this
                // checkpoint is settled, whatever retention discards meanwhile.
                let latest = self.latest_completed;
                let registry = &self.registry;
                let base = *self
                    .bases
                    .entry(checkpoint_id)
                    .or_insert_with(|| latest.filter(|base| incremental && lock(registry).pin(checkpoint_id, *base)));
                for e in &to {
                    let Some(rid) = self.located.get(e) else { continue };
                    if let Some(te) = self.directory.task_executors.get(rid) {
                        te.do_send(TriggerCheckpoint {
                            execution: *e,
                            checkpoint_id,
                            aligned,
                            unaligned,
                            target: target.clone(),
                            inline_threshold,
                            incremental,
                            base,
                            stop_source: stop_sources,
                        });
                    }
                }
            }
            CoordinatorCommand::ScheduleTimeout { checkpoint_id, after } => {
                ctx.run_later(after, move |act, ctx| act.on(CoordinatorEvent::TimedOut { checkpoint_id }, ctx));
            }
            CoordinatorCommand::RecordStats(u) => self.record(u),
            CoordinatorCommand::Notify { checkpoint_id, completed } => {
                self.bases.remove(&checkpoint_id);
                let unused = lock(&self.registry).unpin(checkpoint_id);
                self.delete_shared(unused);
                for (e, rid) in &self.tasks {
                    if let Some(te) = self.directory.task_executors.get(rid) {
                        te.do_send(NotifyCheckpoint { execution: *e, checkpoint_id, completed });
                    }
                }
            }
            CoordinatorCommand::WriteMetadata { meta, dir, retain } => self.write_metadata(meta, dir, retain, ctx),
            CoordinatorCommand::DeleteDir(dir) => delete_aborted_dir(dir),
            CoordinatorCommand::Completed { meta, dir } => {
                let duration = (meta.completion_timestamp_ms - meta.trigger_timestamp_ms).max(0) as u64;
                let (id, bytes) = (meta.checkpoint_id, meta.state_size());
                if meta.kind == CheckpointKind::Checkpoint {
                    self.latest_completed = self.latest_completed.max(Some(id));
                }
                self.on_complete.do_send(CheckpointCompleted { meta, dir });
                tracing::debug!(job = %self.job, checkpoint = id, duration_ms = duration, bytes, "checkpoint completed");
            }
            CoordinatorCommand::Answer { waiter, result } => answer(self.waiters.remove(&waiter), result),
            CoordinatorCommand::StopActor => ctx.stop(),
        }
    }

    /// A highly available job's ids come from the store's counter, shared by every leader
    /// the job ever has: an id is never handed out twice, whichever leader asks. Otherwise
    /// from the job's own counter, at once.
    fn reserve_id(&mut self, request: super::core::IdRequest, ctx: &mut Context<Self>) {
        let Some(store) = self.jobs.job_store() else {
            let id = self.ids.fetch_add(1, Ordering::Relaxed);
            return self.on(CoordinatorEvent::IdReserved { request, id }, ctx);
        };
        let at_least = self.ids.load(Ordering::Relaxed);
        store
            .next_checkpoint_id(self.job, at_least)
            .into_actor(self)
            .map(move |r, act, ctx| match r {
                Ok(id) => {
                    act.ids.fetch_max(id + 1, Ordering::Relaxed);
                    act.on(CoordinatorEvent::IdReserved { request, id }, ctx);
                }
                Err(error) => {
                    tracing::warn!(job = %act.job, "no checkpoint id: {error}");
                    act.on(CoordinatorEvent::IdRefused { request, error: error.to_string() }, ctx);
                }
            })
            .spawn(ctx);
    }

    /// Asks every split enumerator for its state; the answers come back as one event.
    fn snapshot_enumerators(&mut self, checkpoint_id: u64, ctx: &mut Context<Self>) {
        let asks: Vec<_> = self
            .enumerators
            .iter()
            .map(|(vertex, addr)| {
                let vertex = *vertex;
                let ask = addr.send(crate::source_coordinator::SnapshotEnumerator { checkpoint_id });
                async move {
                    match ask.await {
                        Ok(Ok(state)) => Ok(state.map(|s| (vertex, s))),
                        Ok(Err(e)) => Err(RuntimeError::Context {
                            context: format!("source vertex {vertex}"),
                            source: Box::new(e),
                        }),
                        Err(e) => Err(RuntimeError::Unavailable(format!(
                            "source vertex {vertex}: its coordinator is gone ({e})"
                        ))),
                    }
                }
            })
            .collect();
        futures::future::join_all(asks)
            .into_actor(self)
            .map(move |answers, act, ctx| {
                let result = answers.into_iter().filter_map(Result::transpose).collect();
                act.on(CoordinatorEvent::EnumeratorsSnapshotted { checkpoint_id, result }, ctx);
            })
            .spawn(ctx);
    }

    fn write_metadata(
        &mut self,
        meta: Arc<CheckpointMetadata>,
        dir: PathBuf,
        retain: Option<(PathBuf, usize)>,
        ctx: &mut Context<Self>,
    ) {
        let id = meta.checkpoint_id;
        let registry = self.registry.clone();
        if retain.is_some() {
            // Its shared files are kept from now on, whatever retention deletes.
            let mut r = lock(&registry);
            r.register_metadata(&meta);
            let unused = r.unpin(id);
            drop(r);
            self.delete_shared(unused);
        }
        let job_dir = retain.as_ref().map(|(d, _)| d.clone());
        async move {
            checkpoint_storage::write_metadata(&dir, &meta).await?;
            if let Some((job_dir, n)) = retain {
                checkpoint_storage::retain(&job_dir, id, n, &registry).await?;
            }
            Ok::<_, riffle_state::checkpoint_metadata::MetadataError>(())
        }
        .into_actor(self)
        .map(move |r, act, ctx| {
            let result = r.map_err(|e| {
                tracing::warn!(job = %act.job, checkpoint = id, "cannot store checkpoint: {e}");
                // Not a checkpoint: what only it referred to goes.
                if job_dir.is_some() {
                    let unused = lock(&act.registry).unregister(id);
                    act.delete_shared(unused);
                }
                RuntimeError::from(e)
            });
            act.on(CoordinatorEvent::MetadataWritten { checkpoint_id: id, result }, ctx);
        })
        .spawn(ctx);
    }

    /// Deletes shared files nothing refers to any more, in the background.
    fn delete_shared(&self, names: Vec<String>) {
        let Some(job_dir) = self.job_dir.clone().filter(|_| !names.is_empty()) else { return };
        actix::spawn(async move { checkpoint_storage::delete_shared(&job_dir, &names).await });
    }

    /// Whether `target` is one of the job's `chk-<n>` directories (not a savepoint's).
    fn record(&self, u: StatsUpdate) {
        match u {
            StatsUpdate::Triggered { checkpoint_id, savepoint, trigger_ms, num_subtasks, path } => {
                self.stats.with_history(|h| h.triggered(checkpoint_id, savepoint, trigger_ms, num_subtasks, path))
            }
            StatsUpdate::Acknowledged {
                checkpoint_id,
                vertex,
                subtask,
                bytes,
                persisted,
                timings,
                alignment_ms,
                now_ms,
            } => {
                let ack = crate::checkpoint_history::SubtaskCheckpoint {
                    ack_ms: now_ms,
                    state_size: bytes,
                    persisted_data: persisted,
                    sync_ms: timings.0,
                    async_ms: timings.1,
                    alignment_ms,
                };
                self.stats.with_history(|h| h.acknowledged(checkpoint_id, vertex, subtask, ack))
            }
            StatsUpdate::Completed { checkpoint_id, completion_ms, path } => {
                self.stats.with_history(|h| h.completed(checkpoint_id, completion_ms, path))
            }
            StatsUpdate::Failed { checkpoint_id, now_ms, why } => {
                tracing::warn!(job = %self.job, checkpoint = checkpoint_id, "checkpoint aborted: {why}");
                self.stats.with_history(|h| h.failed(checkpoint_id, now_ms, &why))
            }
        }
    }
}

/// Sends a trigger's outcome to its caller, in the shape its message asked for.
fn answer(w: Option<Waiter>, result: Result<Completion, RuntimeError>) {
    match w {
        None => {}
        Some(Waiter::Savepoint(tx)) => {
            let r = result.and_then(|c| {
                c.dir.ok_or_else(|| RuntimeError::Checkpoint("the savepoint has no directory".to_string()))
            });
            let _ = tx.send(r);
        }
        Some(Waiter::Checkpoint(tx)) => {
            let _ = tx.send(result.map(|c| c.checkpoint_id));
        }
    }
}

impl Actor for CheckpointCoordinator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(interval) = self.interval {
            ctx.run_interval(interval, |act, ctx| act.on(CoordinatorEvent::Tick, ctx));
        }
        self.on(CoordinatorEvent::Started, ctx);
    }
}

/// Deletes an aborted checkpoint's directory in the background.
fn delete_aborted_dir(dir: PathBuf) {
    actix::spawn(async move {
        if let Err(e) = checkpoint_storage::delete_dir(&dir).await {
            tracing::warn!("cannot delete aborted checkpoint {}: {e}", dir.display());
        }
    });
}

impl Handler<AcknowledgeCheckpoint> for CheckpointCoordinator {
    type Result = ();
    fn handle(&mut self, msg: AcknowledgeCheckpoint, ctx: &mut Self::Context) {
        self.on(CoordinatorEvent::Acknowledged(msg), ctx);
    }
}

impl Handler<DeclineCheckpoint> for CheckpointCoordinator {
    type Result = ();
    fn handle(&mut self, msg: DeclineCheckpoint, ctx: &mut Self::Context) {
        let event = CoordinatorEvent::Declined {
            execution: msg.execution,
            checkpoint_id: msg.checkpoint_id,
            reason: msg.reason,
        };
        self.on(event, ctx);
    }
}

impl Handler<TriggerSavepoint> for CheckpointCoordinator {
    type Result = ();
    fn handle(&mut self, msg: TriggerSavepoint, ctx: &mut Self::Context) {
        let base = msg.target.or_else(|| self.savepoint_dir.clone());
        let savepoint_dir = base.map(|b| checkpoint_storage::absolute(&b).unwrap_or(b));
        let waiter = Some(self.wait(Waiter::Savepoint(msg.reply)));
        let t =
            TriggerRequest { kind: CheckpointKind::Savepoint, savepoint_dir, stop_sources: msg.stop_sources, waiter };
        self.on(CoordinatorEvent::Trigger(t), ctx);
    }
}

impl Handler<TriggerCheckpointNow> for CheckpointCoordinator {
    type Result = ();
    fn handle(&mut self, msg: TriggerCheckpointNow, ctx: &mut Self::Context) {
        let waiter = Some(self.wait(Waiter::Checkpoint(msg.reply)));
        self.on(CoordinatorEvent::Trigger(TriggerRequest::checkpoint(waiter)), ctx);
    }
}

impl Handler<TaskEndedForCheckpoints> for CheckpointCoordinator {
    type Result = ();
    fn handle(&mut self, msg: TaskEndedForCheckpoints, ctx: &mut Self::Context) {
        self.on(CoordinatorEvent::TaskEnded { execution: msg.execution, end: msg.end }, ctx);
    }
}

impl Handler<StopCheckpointing> for CheckpointCoordinator {
    type Result = ();
    fn handle(&mut self, msg: StopCheckpointing, ctx: &mut Self::Context) {
        self.on(CoordinatorEvent::Stop { reason: msg.reason, keep_files: msg.keep_files }, ctx);
    }
}
