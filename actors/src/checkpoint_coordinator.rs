//! The CheckpointCoordinator (one per job attempt, a child of the JobMaster): triggers
//! checkpoints at the sources on a timer and savepoints on demand, collects every subtask's
//! acknowledgement, writes the metadata when all acknowledged, and tells every subtask that
//! the checkpoint completed — or, on decline, timeout or when the attempt ends, that it was
//! aborted, deleting whatever was written for it.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use riffle_api::{ConfigError, Configuration};
use riffle_state::checkpoint_metadata::{CheckpointKind, CheckpointMetadata, StateHandle, SubtaskState, VertexInfo};
use tokio::sync::oneshot;

use crate::checkpoint_storage;
use crate::gateway::{AcknowledgeCheckpoint, DeclineCheckpoint, NotifyCheckpoint, TriggerCheckpoint};
use crate::ids::{ExecutionId, JobId, ResourceId};
use crate::registry::RuntimeShared;

/// Checkpointing settings (`execution.checkpointing.*`, `state.checkpoints.*`).
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointSettings {
    /// `execution.checkpointing.interval`; none: no periodic checkpoints (savepoints still work).
    pub interval: Option<Duration>,
    /// `execution.checkpointing.timeout` (10 min).
    pub timeout: Duration,
    /// `execution.checkpointing.min-pause` (0).
    pub min_pause: Duration,
    /// `execution.checkpointing.max-concurrent-checkpoints` (1).
    pub max_concurrent: usize,
    /// `execution.checkpointing.mode`: EXACTLY_ONCE (aligned barriers) or AT_LEAST_ONCE.
    pub aligned: bool,
    /// `execution.checkpointing.unaligned` (false): exactly-once checkpoints whose barriers
    /// overtake in-flight data (FLIP-76). Savepoints are always aligned, as in Flink.
    pub unaligned: bool,
    /// `state.checkpoints.dir`: where metadata goes; none keeps checkpoints in memory only.
    pub dir: Option<PathBuf>,
    /// `state.checkpoints.num-retained` (1).
    pub retained: usize,
    /// `state.savepoints.dir`: the default target of savepoints.
    pub savepoint_dir: Option<PathBuf>,
    /// `state.storage.fs.memory-threshold` (20 KiB): smaller state is inlined in the metadata.
    pub inline_threshold: usize,
    /// `execution.checkpointing.externalized-checkpoint-retention`.
    pub retention: Retention,
}

/// What happens to a job's checkpoints when it ends
/// (`execution.checkpointing.externalized-checkpoint-retention`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// `NO_EXTERNALIZED_CHECKPOINTS` (default): deleted when the job ends, however it ends.
    None,
    /// `DELETE_ON_CANCELLATION`: kept when the job fails, deleted when it is cancelled or finishes.
    DeleteOnCancellation,
    /// `RETAIN_ON_CANCELLATION`: always kept, for a later `--from-savepoint`.
    RetainOnCancellation,
}

impl Retention {
    /// Whether a job ending with `failed` deletes its checkpoints.
    pub fn deletes_on_end(self, failed: bool) -> bool {
        match self {
            Retention::None => true,
            Retention::DeleteOnCancellation => !failed,
            Retention::RetainOnCancellation => false,
        }
    }
}

impl CheckpointSettings {
    /// The settings, or `None` when checkpointing is off (no interval set).
    pub fn from_config(c: &Configuration) -> Result<Self, ConfigError> {
        let interval = match c.get_str("execution.checkpointing.interval") {
            Some(_) => Some(
                c.get_duration("execution.checkpointing.interval", Duration::from_secs(1))?
                    .max(Duration::from_millis(1)),
            ),
            None => None,
        };
        let mode = c.get_str("execution.checkpointing.mode").unwrap_or("EXACTLY_ONCE").trim().to_ascii_uppercase();
        let aligned = match mode.as_str() {
            "EXACTLY_ONCE" => true,
            "AT_LEAST_ONCE" => false,
            _ => {
                return Err(ConfigError {
                    key: "execution.checkpointing.mode".into(),
                    value: mode,
                    reason: "use EXACTLY_ONCE or AT_LEAST_ONCE".into(),
                })
            }
        };
        let unaligned = c.get("execution.checkpointing.unaligned", false)?;
        if unaligned && !aligned {
            return Err(ConfigError {
                key: "execution.checkpointing.unaligned".into(),
                value: "true".into(),
                reason: "unaligned checkpoints need execution.checkpointing.mode EXACTLY_ONCE".into(),
            });
        }
        let key = "execution.checkpointing.externalized-checkpoint-retention";
        let retention = match c.get_str(key).map(|v| v.trim().to_ascii_uppercase()) {
            None => Retention::None,
            Some(v) if v == "NO_EXTERNALIZED_CHECKPOINTS" => Retention::None,
            Some(v) if v == "DELETE_ON_CANCELLATION" => Retention::DeleteOnCancellation,
            Some(v) if v == "RETAIN_ON_CANCELLATION" => Retention::RetainOnCancellation,
            Some(v) => {
                return Err(ConfigError {
                    key: key.into(),
                    value: v,
                    reason: "use RETAIN_ON_CANCELLATION, DELETE_ON_CANCELLATION or NO_EXTERNALIZED_CHECKPOINTS".into(),
                })
            }
        };
        let threshold_key = "state.storage.fs.memory-threshold";
        let inline_threshold = c.get_bytes(threshold_key, 20 << 10)?;
        let dir = |k: &str| c.get_str(k).map(|d| PathBuf::from(d.strip_prefix("file://").unwrap_or(d)));
        Ok(Self {
            interval,
            timeout: c.get_duration("execution.checkpointing.timeout", Duration::from_secs(600))?,
            min_pause: c.get_duration("execution.checkpointing.min-pause", Duration::ZERO)?,
            max_concurrent: c.get("execution.checkpointing.max-concurrent-checkpoints", 1usize)?.max(1),
            aligned,
            unaligned,
            dir: dir("state.checkpoints.dir"),
            retained: c.get("state.checkpoints.num-retained", 1usize)?.max(1),
            savepoint_dir: dir("state.savepoints.dir"),
            inline_threshold,
            retention,
        })
    }

    /// The directory of `job`'s checkpoints, if checkpoints go to storage.
    pub fn job_dir(&self, job: JobId) -> Option<PathBuf> {
        let base = self.dir.as_ref()?;
        Some(checkpoint_storage::absolute(base).unwrap_or_else(|_| base.clone()).join(job.to_string()))
    }
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

/// Stops triggering and aborts what is pending (the attempt ends, or a task finished).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct StopCheckpointing {
    /// Why, for the log.
    pub reason: String,
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
    pub reply: oneshot::Sender<Result<PathBuf, String>>,
}

/// Triggers a checkpoint now (besides the periodic ones); answers with its id when it
/// completed.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct TriggerCheckpointNow {
    /// Gets the checkpoint's id, or why it failed.
    pub reply: oneshot::Sender<Result<u64, String>>,
}

/// What is asked of one trigger.
struct Trigger {
    kind: CheckpointKind,
    /// A savepoint's directory, when the caller chose one.
    savepoint_dir: Option<PathBuf>,
    /// Stop-with-savepoint: the sources end after the barrier.
    stop_sources: bool,
    waiter: Waiter,
}

impl Trigger {
    fn checkpoint(waiter: Waiter) -> Self {
        Trigger { kind: CheckpointKind::Checkpoint, savepoint_dir: None, stop_sources: false, waiter }
    }
}

enum Waiter {
    None,
    Savepoint(oneshot::Sender<Result<PathBuf, String>>),
    Checkpoint(oneshot::Sender<Result<u64, String>>),
}

struct Pending {
    kind: CheckpointKind,
    triggered_ms: i64,
    dir: Option<PathBuf>,
    acked: HashMap<ExecutionId, SubtaskState>,
    waiter: Waiter,
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

/// The CheckpointCoordinator actor.
pub struct CheckpointCoordinator {
    job: JobId,
    settings: CheckpointSettings,
    shared: Arc<RuntimeShared>,
    sources: Vec<(ExecutionId, ResourceId)>,
    tasks: Vec<(ExecutionId, ResourceId)>,
    vertices: Vec<VertexInfo>,
    max_parallelism: u32,
    ids: Arc<AtomicU64>,
    /// Checkpoints whose id is being reserved in the job store (highly available): they count
    /// as pending for `max-concurrent-checkpoints`.
    reserving: usize,
    stats: Arc<CheckpointStats>,
    pending: BTreeMap<u64, Pending>,
    /// Directories of recently aborted checkpoints: a subtask may still write its state file
    /// there after the abort (its acknowledgement comes late), and then it must go too.
    aborted_dirs: BTreeMap<u64, PathBuf>,
    last_completion: Option<Instant>,
    stopped: bool,
    /// Metadata writes under way: a stop waits for them, so a checkpoint every subtask
    /// acknowledged is not lost.
    writes_in_flight: usize,
    on_complete: Recipient<CheckpointCompleted>,
}

/// What a coordinator needs to know of the job attempt it serves.
pub struct CoordinatorTasks {
    /// Source subtasks: they get the triggers.
    pub sources: Vec<(ExecutionId, ResourceId)>,
    /// Every subtask: all must acknowledge.
    pub tasks: Vec<(ExecutionId, ResourceId)>,
    /// The job's vertices, recorded in the metadata.
    pub vertices: Vec<VertexInfo>,
    /// The job's number of key groups.
    pub max_parallelism: u32,
}

impl CheckpointCoordinator {
    /// A coordinator for one attempt.
    pub fn new(
        job: JobId,
        settings: CheckpointSettings,
        shared: Arc<RuntimeShared>,
        tasks: CoordinatorTasks,
        ids: Arc<AtomicU64>,
        on_complete: Recipient<CheckpointCompleted>,
    ) -> Self {
        let stats = shared.checkpoint_stats(job);
        Self {
            job,
            settings,
            shared,
            sources: tasks.sources,
            tasks: tasks.tasks,
            vertices: tasks.vertices,
            max_parallelism: tasks.max_parallelism,
            ids,
            reserving: 0,
            stats,
            pending: BTreeMap::new(),
            aborted_dirs: BTreeMap::new(),
            last_completion: None,
            stopped: false,
            writes_in_flight: 0,
            on_complete,
        }
    }

    fn periodic(&mut self, ctx: &mut Context<Self>) {
        if self.pending.len() + self.reserving >= self.settings.max_concurrent {
            return;
        }
        if self.last_completion.is_some_and(|t| t.elapsed() < self.settings.min_pause) {
            return;
        }
        self.trigger(Trigger::checkpoint(Waiter::None), ctx);
    }

    fn trigger(&mut self, t: Trigger, ctx: &mut Context<Self>) {
        if self.stopped {
            return fail_waiter(t.waiter, STOPPED);
        }
        // A highly available job's ids come from the store's counter, shared by every leader
        // the job ever has: an id is never handed out twice, whichever leader asks.
        let Some(store) = self.shared.job_store() else {
            let id = self.ids.fetch_add(1, Ordering::Relaxed);
            return self.trigger_as(id, t, ctx);
        };
        self.reserving += 1;
        let at_least = self.ids.load(Ordering::Relaxed);
        store
            .next_checkpoint_id(self.job, at_least)
            .into_actor(self)
            .map(move |r, act, ctx| {
                act.reserving -= 1;
                match r {
                    Ok(id) => {
                        act.ids.fetch_max(id + 1, Ordering::Relaxed);
                        act.trigger_as(id, t, ctx)
                    }
                    Err(e) => {
                        tracing::warn!(job = %act.job, "no checkpoint id: {e}");
                        fail_waiter(t.waiter, &format!("no checkpoint id from the job store: {e}"));
                    }
                }
            })
            .spawn(ctx);
    }

    /// Triggers checkpoint `id`.
    fn trigger_as(&mut self, id: u64, t: Trigger, ctx: &mut Context<Self>) {
        let Trigger { kind, savepoint_dir, stop_sources, waiter } = t;
        if self.stopped {
            return fail_waiter(waiter, STOPPED);
        }
        let dir = match kind {
            CheckpointKind::Checkpoint => self.settings.job_dir(self.job).map(|d| d.join(format!("chk-{id}"))),
            CheckpointKind::Savepoint => {
                let Some(base) = savepoint_dir.or_else(|| self.settings.savepoint_dir.clone()) else {
                    return fail_waiter(waiter, "no savepoint directory: give one or set state.savepoints.dir");
                };
                let base = checkpoint_storage::absolute(&base).unwrap_or(base);
                let job = self.job.to_string();
                Some(base.join(format!("savepoint-{}-{id}", &job[..job.len().min(6)])))
            }
        };
        let target = dir.as_ref().map(|d| d.display().to_string());
        let triggered_ms = riffle_api::time::now_ms();
        let n = self.tasks.len() as u32;
        let savepoint = kind == CheckpointKind::Savepoint;
        self.stats.with_history(|h| h.triggered(id, savepoint, triggered_ms, n, target.clone()));
        self.pending.insert(id, Pending { kind, triggered_ms, dir, acked: HashMap::new(), waiter });
        for (e, rid) in &self.sources {
            if let Some(te) = self.shared.task_executors.get(rid) {
                te.do_send(TriggerCheckpoint {
                    execution: *e,
                    checkpoint_id: id,
                    aligned: self.settings.aligned || kind != CheckpointKind::Checkpoint,
                    unaligned: self.settings.unaligned && kind == CheckpointKind::Checkpoint,
                    target: target.clone(),
                    inline_threshold: self.settings.inline_threshold,
                    stop_source: stop_sources,
                });
            }
        }
        ctx.run_later(self.settings.timeout, move |act, _| {
            if act.pending.contains_key(&id) {
                act.abort(id, "it timed out");
            }
        });
    }

    fn notify(&self, id: u64, completed: bool) {
        for (e, rid) in &self.tasks {
            if let Some(te) = self.shared.task_executors.get(rid) {
                te.do_send(NotifyCheckpoint { execution: *e, checkpoint_id: id, completed });
            }
        }
    }

    fn abort(&mut self, id: u64, why: &str) {
        if let Some(p) = self.pending.remove(&id) {
            tracing::warn!(job = %self.job, checkpoint = id, "checkpoint aborted: {why}");
            self.aborted(id, p.dir, p.waiter, why);
        }
    }

    /// Tells every subtask, deletes what was written, answers a waiting caller.
    fn aborted(&mut self, id: u64, dir: Option<PathBuf>, waiter: Waiter, why: &str) {
        self.stats.with_history(|h| h.failed(id, riffle_api::time::now_ms(), why));
        self.notify(id, false);
        if let Some(dir) = dir {
            self.aborted_dirs.insert(id, dir.clone());
            while self.aborted_dirs.len() > REMEMBERED_ABORTED_DIRS {
                self.aborted_dirs.pop_first();
            }
            delete_aborted_dir(dir);
        }
        fail_waiter(waiter, &format!("checkpoint {id} was aborted: {why}"));
    }

    fn complete(&mut self, id: u64, p: Pending, ctx: &mut Context<Self>) {
        // Older pending checkpoints are subsumed by this one.
        let older: Vec<u64> = self.pending.range(..id).map(|(k, _)| *k).collect();
        for o in older {
            self.abort(o, "a newer checkpoint completed");
        }
        let mut subtasks: Vec<SubtaskState> = p.acked.into_values().collect();
        subtasks.sort_by_key(|s| (s.vertex, s.subtask));
        let meta = Arc::new(CheckpointMetadata {
            job_id: self.job.to_string(),
            checkpoint_id: id,
            kind: p.kind,
            trigger_timestamp_ms: p.triggered_ms,
            completion_timestamp_ms: riffle_api::time::now_ms(),
            max_parallelism: self.max_parallelism,
            vertices: self.vertices.clone(),
            subtasks,
        });
        let Some(dir) = p.dir.clone() else {
            return self.completed(meta, None, p.waiter);
        };
        let retain = match p.kind {
            CheckpointKind::Checkpoint => self.settings.job_dir(self.job).map(|d| (d, self.settings.retained)),
            CheckpointKind::Savepoint => None,
        };
        let m2 = meta.clone();
        self.writes_in_flight += 1;
        let waiter = p.waiter;
        async move {
            checkpoint_storage::write_metadata(&dir, &m2).await?;
            if let Some((job_dir, n)) = retain {
                checkpoint_storage::retain(&job_dir, id, n).await?;
            }
            Ok::<_, riffle_state::checkpoint_metadata::MetadataError>(dir)
        }
        .into_actor(self)
        .map(move |r, act, ctx| {
            act.writes_in_flight -= 1;
            match r {
                Ok(dir) => act.completed(meta, Some(dir), waiter),
                Err(e) => {
                    tracing::warn!(job = %act.job, checkpoint = id, "cannot store checkpoint: {e}");
                    let dir = act.settings.job_dir(act.job).map(|d| d.join(format!("chk-{id}")));
                    let dir = if meta.kind == CheckpointKind::Checkpoint { dir } else { None };
                    act.aborted(id, dir, waiter, &e.to_string());
                }
            }
            if act.stopped && act.writes_in_flight == 0 {
                ctx.stop();
            }
        })
        .spawn(ctx);
    }

    fn completed(&mut self, meta: Arc<CheckpointMetadata>, dir: Option<PathBuf>, waiter: Waiter) {
        let id = meta.checkpoint_id;
        let duration = (meta.completion_timestamp_ms - meta.trigger_timestamp_ms).max(0) as u64;
        self.on_complete.do_send(CheckpointCompleted { meta: meta.clone(), dir: dir.clone() });
        self.last_completion = Some(Instant::now());
        let path = dir.as_ref().map(|d| d.display().to_string());
        self.stats.with_history(|h| h.completed(id, meta.completion_timestamp_ms, path));
        tracing::debug!(job = %self.job, checkpoint = id, duration_ms = duration, bytes = meta.state_size(), "checkpoint completed");
        self.notify(id, true);
        match waiter {
            Waiter::None => {}
            Waiter::Savepoint(tx) => {
                let _ = tx.send(dir.ok_or_else(|| "the savepoint has no directory".to_string()));
            }
            Waiter::Checkpoint(tx) => {
                let _ = tx.send(Ok(id));
            }
        }
    }
}

/// Why a checkpoint is not triggered after the coordinator stopped.
const STOPPED: &str = "checkpointing has stopped (the job attempt ended or a task finished)";

fn fail_waiter(w: Waiter, why: &str) {
    match w {
        Waiter::None => {}
        Waiter::Savepoint(tx) => {
            let _ = tx.send(Err(why.to_string()));
        }
        Waiter::Checkpoint(tx) => {
            let _ = tx.send(Err(why.to_string()));
        }
    }
}

impl Actor for CheckpointCoordinator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(interval) = self.settings.interval {
            ctx.run_interval(interval, |act, ctx| act.periodic(ctx));
        }
    }
}

/// How many aborted checkpoints' directories the coordinator remembers for late acks.
const REMEMBERED_ABORTED_DIRS: usize = 64;

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
        let id = msg.checkpoint_id;
        let Some(p) = self.pending.get_mut(&id) else {
            // Late for an aborted checkpoint: what it wrote may have come after the directory
            // was deleted.
            if matches!(msg.state, StateHandle::File { .. }) {
                if let Some(dir) = self.aborted_dirs.get(&id) {
                    delete_aborted_dir(dir.clone());
                }
            }
            return;
        };
        let e = msg.execution;
        let bytes = msg.state.size() + msg.source.as_ref().map_or(0, |b| b.len() as u64);
        let timings = (msg.sync_ms, msg.async_ms);
        let now = riffle_api::time::now_ms();
        self.stats.with_history(|h| h.acknowledged(id, e.vertex, bytes, msg.persisted_bytes, timings, now));
        p.acked.insert(e, SubtaskState { vertex: e.vertex, subtask: e.subtask, state: msg.state, source: msg.source });
        if p.acked.len() >= self.tasks.len() {
            if let Some(p) = self.pending.remove(&id) {
                self.complete(id, p, ctx);
            }
        }
    }
}

impl Handler<DeclineCheckpoint> for CheckpointCoordinator {
    type Result = ();
    fn handle(&mut self, msg: DeclineCheckpoint, _: &mut Self::Context) {
        let why =
            format!("subtask {} of vertex {} declined: {}", msg.execution.subtask, msg.execution.vertex, msg.reason);
        self.abort(msg.checkpoint_id, &why);
    }
}

impl Handler<TriggerSavepoint> for CheckpointCoordinator {
    type Result = ();
    fn handle(&mut self, msg: TriggerSavepoint, ctx: &mut Self::Context) {
        let t = Trigger {
            kind: CheckpointKind::Savepoint,
            savepoint_dir: msg.target,
            stop_sources: msg.stop_sources,
            waiter: Waiter::Savepoint(msg.reply),
        };
        self.trigger(t, ctx);
    }
}

impl Handler<TriggerCheckpointNow> for CheckpointCoordinator {
    type Result = ();
    fn handle(&mut self, msg: TriggerCheckpointNow, ctx: &mut Self::Context) {
        self.trigger(Trigger::checkpoint(Waiter::Checkpoint(msg.reply)), ctx);
    }
}

impl Handler<StopCheckpointing> for CheckpointCoordinator {
    type Result = ();
    fn handle(&mut self, msg: StopCheckpointing, ctx: &mut Self::Context) {
        self.stopped = true;
        let ids: Vec<u64> = self.pending.keys().copied().collect();
        for id in ids {
            self.abort(id, &msg.reason);
        }
        if self.writes_in_flight == 0 {
            ctx.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_from_flink_keys() {
        let mut c = Configuration::new();
        let s = CheckpointSettings::from_config(&c).unwrap();
        assert_eq!(s.interval, None);
        assert_eq!(s.inline_threshold, 20 * 1024);
        assert_eq!(s.retention, Retention::None);
        c.set("execution.checkpointing.interval", "2s")
            .set("state.storage.fs.memory-threshold", "1kb")
            .set("execution.checkpointing.externalized-checkpoint-retention", "retain_on_cancellation");
        let s = CheckpointSettings::from_config(&c).unwrap();
        assert_eq!(s.interval, Some(Duration::from_secs(2)));
        assert_eq!(s.inline_threshold, 1024);
        assert_eq!(s.retention, Retention::RetainOnCancellation);
        assert!(!s.retention.deletes_on_end(false));
        assert!(Retention::DeleteOnCancellation.deletes_on_end(false));
        assert!(!Retention::DeleteOnCancellation.deletes_on_end(true));
        c.set("state.storage.fs.memory-threshold", "lots");
        assert!(CheckpointSettings::from_config(&c).is_err());
        c.set("state.storage.fs.memory-threshold", "0");
        c.set("execution.checkpointing.externalized-checkpoint-retention", "KEEP");
        assert!(CheckpointSettings::from_config(&c).is_err());
    }
}
