//! The CheckpointCoordinator (one per job attempt, a child of the JobMaster): triggers
//! checkpoints at the sources on a timer, collects every subtask's acknowledgement, writes the
//! metadata when all acknowledged, and tells every subtask that the checkpoint completed — or,
//! on timeout or when the attempt ends, that it was aborted.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use riffle_api::{ConfigError, Configuration};
use riffle_state::checkpoint_metadata::{self, CheckpointMetadata, SubtaskState};

use crate::gateway::{AcknowledgeCheckpoint, NotifyCheckpoint, TriggerCheckpoint};
use crate::ids::{ExecutionId, JobId, ResourceId};
use crate::registry::RuntimeShared;

/// Checkpointing settings (`execution.checkpointing.*`, `state.checkpoints.*`).
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointSettings {
    /// `execution.checkpointing.interval`.
    pub interval: Duration,
    /// `execution.checkpointing.timeout` (10 min).
    pub timeout: Duration,
    /// `execution.checkpointing.min-pause` (0).
    pub min_pause: Duration,
    /// `execution.checkpointing.max-concurrent-checkpoints` (1).
    pub max_concurrent: usize,
    /// `execution.checkpointing.mode`: EXACTLY_ONCE (aligned barriers) or AT_LEAST_ONCE.
    pub aligned: bool,
    /// `state.checkpoints.dir`: where metadata goes; none keeps checkpoints in memory only.
    pub dir: Option<PathBuf>,
    /// `state.checkpoints.num-retained` (1).
    pub retained: usize,
}

impl CheckpointSettings {
    /// The settings, or `None` when checkpointing is off (no interval set).
    pub fn from_config(c: &Configuration) -> Result<Option<Self>, ConfigError> {
        if c.get_str("execution.checkpointing.interval").is_none() {
            return Ok(None);
        }
        let interval = c.get_duration("execution.checkpointing.interval", Duration::from_secs(1))?;
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
        Ok(Some(Self {
            interval: interval.max(Duration::from_millis(1)),
            timeout: c.get_duration("execution.checkpointing.timeout", Duration::from_secs(600))?,
            min_pause: c.get_duration("execution.checkpointing.min-pause", Duration::ZERO)?,
            max_concurrent: c.get("execution.checkpointing.max-concurrent-checkpoints", 1usize)?.max(1),
            aligned,
            dir: c.get_str("state.checkpoints.dir").map(|d| PathBuf::from(d.strip_prefix("file://").unwrap_or(d))),
            retained: c.get("state.checkpoints.num-retained", 1usize)?.max(1),
        }))
    }
}

/// Counters of a job's checkpoints, shared with whoever asks (MiniCluster, later REST).
#[derive(Debug, Default)]
pub struct CheckpointStats {
    /// Checkpoints triggered.
    pub triggered: AtomicU64,
    /// Checkpoints completed.
    pub completed: AtomicU64,
    /// Checkpoints aborted (timeout, failure, attempt ended).
    pub aborted: AtomicU64,
    /// The id of the latest completed checkpoint (0: none).
    pub last_completed: AtomicU64,
}

/// Stops triggering and aborts what is pending (the attempt ends, or a task finished).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct StopCheckpointing {
    /// Why, for the log.
    pub reason: String,
}

struct Pending {
    triggered_ms: i64,
    acked: HashMap<ExecutionId, Vec<u8>>,
}

/// CheckpointCoordinator → JobMaster: a checkpoint completed; restarts resume from it.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct CheckpointCompleted(pub Arc<CheckpointMetadata>);

/// The CheckpointCoordinator actor.
pub struct CheckpointCoordinator {
    job: JobId,
    settings: CheckpointSettings,
    shared: Arc<RuntimeShared>,
    sources: Vec<(ExecutionId, ResourceId)>,
    tasks: Vec<(ExecutionId, ResourceId)>,
    ids: Arc<AtomicU64>,
    stats: Arc<CheckpointStats>,
    pending: BTreeMap<u64, Pending>,
    last_completion: Option<Instant>,
    stopped: bool,
    /// Metadata writes under way: a stop waits for them, so a checkpoint every subtask
    /// acknowledged is not lost.
    writes_in_flight: usize,
    on_complete: Recipient<CheckpointCompleted>,
}

impl CheckpointCoordinator {
    /// A coordinator for one attempt: `sources` get the triggers, all `tasks` must acknowledge.
    pub fn new(
        job: JobId,
        settings: CheckpointSettings,
        shared: Arc<RuntimeShared>,
        sources: Vec<(ExecutionId, ResourceId)>,
        tasks: Vec<(ExecutionId, ResourceId)>,
        ids: Arc<AtomicU64>,
        on_complete: Recipient<CheckpointCompleted>,
    ) -> Self {
        let stats = shared.checkpoint_stats(job);
        Self {
            job,
            settings,
            shared,
            sources,
            tasks,
            ids,
            stats,
            pending: BTreeMap::new(),
            last_completion: None,
            stopped: false,
            writes_in_flight: 0,
            on_complete,
        }
    }

    fn trigger(&mut self, ctx: &mut Context<Self>) {
        if self.stopped || self.pending.len() >= self.settings.max_concurrent {
            return;
        }
        if self.last_completion.is_some_and(|t| t.elapsed() < self.settings.min_pause) {
            return;
        }
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        self.stats.triggered.fetch_add(1, Ordering::Relaxed);
        self.pending.insert(id, Pending { triggered_ms: riffle_api::time::now_ms(), acked: HashMap::new() });
        for (e, rid) in &self.sources {
            if let Some(te) = self.shared.task_executors.get(rid) {
                te.do_send(TriggerCheckpoint { execution: *e, checkpoint_id: id, aligned: self.settings.aligned });
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
        if self.pending.remove(&id).is_some() {
            tracing::warn!(job = %self.job, checkpoint = id, "checkpoint aborted: {why}");
            self.stats.aborted.fetch_add(1, Ordering::Relaxed);
            self.notify(id, false);
        }
    }

    fn complete(&mut self, id: u64, p: Pending, ctx: &mut Context<Self>) {
        // Older pending checkpoints are subsumed by this one.
        let older: Vec<u64> = self.pending.range(..id).map(|(k, _)| *k).collect();
        for o in older {
            self.abort(o, "a newer checkpoint completed");
        }
        let meta = CheckpointMetadata {
            job_id: self.job.to_string(),
            checkpoint_id: id,
            trigger_timestamp_ms: p.triggered_ms,
            completion_timestamp_ms: riffle_api::time::now_ms(),
            subtasks: p
                .acked
                .into_iter()
                .map(|(e, state)| SubtaskState { vertex: e.vertex, subtask: e.subtask, inline_state: state })
                .collect(),
        };
        let meta = Arc::new(meta);
        let Some(dir) = self.settings.dir.clone() else {
            return self.completed(meta);
        };
        let retained = self.settings.retained;
        let job = self.job.to_string();
        // File I/O off the actor's thread.
        let m2 = meta.clone();
        self.writes_in_flight += 1;
        let write = tokio::task::spawn_blocking(move || {
            checkpoint_metadata::write(&dir, &m2)?;
            checkpoint_metadata::retain(&dir, &job, retained)
        });
        write
            .into_actor(self)
            .map(move |r, act, ctx| {
                act.writes_in_flight -= 1;
                if act.stopped && act.writes_in_flight == 0 {
                    ctx.stop();
                }
                act.written(id, meta, r)
            })
            .spawn(ctx);
    }

    fn written(
        &mut self,
        id: u64,
        meta: Arc<CheckpointMetadata>,
        r: Result<Result<Vec<u64>, checkpoint_metadata::MetadataError>, tokio::task::JoinError>,
    ) {
        match r {
            Ok(Ok(_)) => self.completed(meta),
            Ok(Err(e)) => {
                tracing::warn!(job = %self.job, checkpoint = id, "cannot store checkpoint metadata: {e}");
                self.stats.aborted.fetch_add(1, Ordering::Relaxed);
                self.notify(id, false);
            }
            Err(e) => {
                tracing::warn!(job = %self.job, checkpoint = id, "checkpoint writer failed: {e}");
                self.stats.aborted.fetch_add(1, Ordering::Relaxed);
                self.notify(id, false);
            }
        }
    }

    fn completed(&mut self, meta: Arc<CheckpointMetadata>) {
        let id = meta.checkpoint_id;
        self.on_complete.do_send(CheckpointCompleted(meta));
        self.last_completion = Some(Instant::now());
        self.stats.completed.fetch_add(1, Ordering::Relaxed);
        self.stats.last_completed.fetch_max(id, Ordering::Relaxed);
        tracing::debug!(job = %self.job, checkpoint = id, "checkpoint completed");
        self.notify(id, true);
    }
}

impl Actor for CheckpointCoordinator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.settings.interval, |act, ctx| act.trigger(ctx));
    }
}

impl Handler<AcknowledgeCheckpoint> for CheckpointCoordinator {
    type Result = ();
    fn handle(&mut self, msg: AcknowledgeCheckpoint, ctx: &mut Self::Context) {
        let id = msg.checkpoint_id;
        let Some(p) = self.pending.get_mut(&id) else { return };
        p.acked.insert(msg.execution, msg.state);
        if p.acked.len() >= self.tasks.len() {
            if let Some(p) = self.pending.remove(&id) {
                self.complete(id, p, ctx);
            }
        }
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
