//! The TaskExecutor: owns slots (each an Arbiter thread), registers them with the
//! ResourceManager, deploys subtasks into them and reports their states to JobMasters.
//! It supervises its Slots: a crashed slot is restarted with backoff; past the restart
//! limit the executor stops (escalation).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::gateway::{
    AllocateSlot, CancelTask, DeployTask, FreeSlot, NotifyCheckpoint, RegisterTaskExecutor, TaskOutcome, TaskState,
    TaskStateUpdate, TriggerCheckpoint, UnregisterTaskExecutor,
};
use crate::ids::{AllocationId, ExecutionId, JobId, ResourceId};
use crate::local_recovery::LocalSnapshots;
use crate::mailbox::Probed;
use crate::peers::TaskExecutorGateway;
use crate::services::{DataServices, Directory, JobCode, JobRecords, RuntimeShared, TaskServices};
use crate::slot::{CancelInSlot, ControlInSlot, CountSubtasks, DeploySubtask, InjectSlotFault, Slot};
use crate::subtask::{SubtaskControl, SubtaskExited, SubtaskSpec};
use crate::supervision::{ChildExited, Decision, Strategy, SupervisorState};

struct SlotHandle {
    arbiter: Arbiter,
    addr: Option<Addr<Slot>>,
    supervisor: SupervisorState,
    allocation: Option<(JobId, AllocationId)>,
}

/// Settings of a TaskExecutor.
#[derive(Debug, Clone)]
pub struct TaskExecutorSettings {
    /// Slots (`taskmanager.numberOfTaskSlots`).
    pub slots: u32,
    /// Records per batch on data channels.
    pub batch_size: usize,
    /// Batches per data channel: the most a channel's queue holds.
    pub channel_capacity: usize,
    /// Buffer debloating: how much of its queue a channel may use (None: all of it).
    pub debloat: Option<crate::debloat::DebloatSettings>,
    /// Buffer timeout in ms (`execution.buffer-timeout`).
    pub buffer_timeout_ms: i64,
    /// How slots are supervised.
    pub slot_strategy: Strategy,
}

/// The TaskExecutor actor.
pub struct TaskExecutor {
    id: ResourceId,
    /// The cluster configuration (a subtask merges its job's options over it).
    config: riffle_api::Configuration,
    /// Where the ResourceManager and each job's JobMaster are.
    directory: Arc<Directory>,
    /// Job counters and the views subtasks count into.
    jobs: Arc<JobRecords>,
    /// The graphs subtasks are built from.
    code: Arc<JobCode>,
    /// Data channels, handed on to subtasks.
    data: Arc<DataServices>,
    settings: TaskExecutorSettings,
    slots: Vec<SlotHandle>,
    tasks: HashMap<ExecutionId, u32>,
    slot_restarts: u32,
    /// Local copies of the snapshots of the subtasks it runs (local recovery).
    local: Arc<LocalSnapshots>,
}

/// Registers the slots again (the ResourceManager was restarted and lost its registry).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Reregister;

/// Injects a crash into one slot (supervision tests, chaos drills).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct CrashSlot(pub u32);

/// How many slots are alive and how many subtasks run in them.
#[derive(Debug, Clone, Message)]
#[rtype(result = "TaskExecutorReport")]
pub struct GetTaskExecutorReport;

/// A TaskExecutor's view of itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TaskExecutorReport {
    /// Slots whose actor is alive.
    pub live_slots: u32,
    /// Slots allocated to a job.
    pub allocated_slots: u32,
    /// Subtasks running.
    pub running_subtasks: usize,
    /// Slot restarts so far.
    pub slot_restarts: u32,
}

impl TaskExecutor {
    /// A TaskExecutor named `id`, using the parts of `shared` it needs.
    pub fn new(id: ResourceId, shared: &RuntimeShared, settings: TaskExecutorSettings) -> Self {
        let name: String = id.to_string().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        // Unique per instance: several embedded clusters in one process may name their
        // TaskExecutors alike, and each instance removes its directory when dropped.
        static INSTANCES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = INSTANCES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("riffle-local-recovery-{}-{n}-{name}", std::process::id()));
        let local = Arc::new(LocalSnapshots::new(dir));
        Self {
            id,
            config: shared.config.clone(),
            directory: shared.directory.clone(),
            jobs: shared.jobs.clone(),
            code: shared.code.clone(),
            data: shared.data.clone(),
            settings,
            slots: Vec::new(),
            tasks: HashMap::new(),
            slot_restarts: 0,
            local,
        }
    }

    fn start_slot(&self, index: u32, arbiter: &Arbiter, ctx: &mut Context<Self>) -> Addr<Slot> {
        let parent = ctx.address().recipient::<SubtaskExited>();
        let on_exit = ctx.address().recipient::<ChildExited>();
        let id = self.id.to_string();
        Slot::start_in_arbiter(&arbiter.handle(), move |_| {
            // Runs on the slot's own thread: its log lines belong to this TaskExecutor.
            crate::log_context::set_task_executor(&id);
            crate::thread_name::name_current_thread(&crate::thread_name::slot_thread_name(&id, index));
            Slot::new(index, parent, on_exit)
        })
    }

    fn report(&self, execution: ExecutionId, state: TaskState) {
        self.report_with(execution, state, None);
    }

    /// Reports a state with a finished source's last reader position.
    fn report_with(&self, execution: ExecutionId, state: TaskState, final_source: Option<serde_bytes::ByteBuf>) {
        if let Some(jm) = self.directory.job_master(execution.job) {
            jm.do_send(TaskStateUpdate { execution, state, location: self.id.clone(), final_source });
        }
    }
}

// Senders reach it through a `Probed` address: thread dumps show its mailbox.
crate::counted_mailbox!(TaskExecutor);

impl Actor for TaskExecutor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        for i in 0..self.settings.slots {
            let arbiter = Arbiter::new();
            let addr = self.start_slot(i, &arbiter, ctx);
            self.slots.push(SlotHandle {
                arbiter,
                addr: Some(addr),
                supervisor: SupervisorState::new(self.settings.slot_strategy.clone()),
                allocation: None,
            });
        }
        self.directory.task_executors.insert(self.id.clone(), TaskExecutorGateway::Local(Probed::new(ctx.address())));
        if let Some(rm) = self.directory.resource_manager() {
            rm.do_send(RegisterTaskExecutor { resource_id: self.id.clone(), slots: self.settings.slots });
        }
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.directory.task_executors.remove(&self.id);
        if let Some(rm) = self.directory.resource_manager() {
            rm.do_send(UnregisterTaskExecutor { resource_id: self.id.clone(), reason: "it shut down".into() });
        }
        for s in &self.slots {
            s.arbiter.stop();
        }
    }
}

impl Handler<AllocateSlot> for TaskExecutor {
    type Result = ();
    fn handle(&mut self, msg: AllocateSlot, _: &mut Self::Context) {
        if let Some(s) = self.slots.get_mut(msg.slot_index as usize) {
            s.allocation = Some((msg.job_id, msg.allocation_id));
        }
    }
}

impl Handler<FreeSlot> for TaskExecutor {
    type Result = ();
    fn handle(&mut self, msg: FreeSlot, _: &mut Self::Context) {
        if let Some(s) = self.slots.get_mut(msg.slot_index as usize) {
            if let (Some((job, _)), Some(code)) = (s.allocation.take(), self.code.slot_code()) {
                // The job left the slot: its instance of the job's code goes with it.
                self.code.slot_graphs.remove(&(job, msg.slot_index));
                code.release(job, msg.slot_index);
            }
        }
    }
}

impl Handler<DeployTask> for TaskExecutor {
    type Result = ();
    fn handle(&mut self, msg: DeployTask, _: &mut Self::Context) {
        let e = msg.execution;
        let fail = |this: &Self, why: String| {
            let error = riffle_api::TaskError::msg(format!("task executor {}", this.id), why);
            this.report(e, TaskOutcome::Failed(error).into());
        };
        if self.tasks.contains_key(&e) {
            // Attempts count from 0 under each leader: a former leader's instance of the same
            // execution, cancelled when its link ended, has not stopped yet. Two instances
            // would share its channels and its slot's bookkeeping (the cancel of one reaching
            // neither); the new leader's JobMaster fails over to the next attempt instead.
            return fail(
                self,
                format!(
                    "subtask {} of vertex {} (attempt {}) still runs here from an earlier deployment (a former \
                     leader's) and is being cancelled",
                    e.subtask, e.vertex, e.attempt
                ),
            );
        }
        let slot_graph = self.code.slot_graphs.get(&(e.job, msg.slot_index)).map(|g| g.clone());
        let Some(mut graph) = slot_graph.clone().or_else(|| self.code.graph(e.job)) else {
            return fail(self, format!("job {} is unknown to this task executor", e.job));
        };
        if let (None, Some(code)) = (slot_graph, self.code.slot_code()) {
            // An embedded cluster: a plugin job runs its slot's own instance of its code.
            match code.graph_for(e.job, msg.slot_index, &graph) {
                Ok(Some(g)) => {
                    self.code.slot_graphs.insert((e.job, msg.slot_index), g.clone());
                    graph = g;
                }
                Ok(None) => {}
                Err(why) => return fail(self, format!("slot {} cannot load the job's plugin: {why}", msg.slot_index)),
            }
        }
        let Some(slot) = self.slots.get(msg.slot_index as usize).and_then(|s| s.addr.clone()) else {
            return fail(self, format!("slot {} is not available", msg.slot_index));
        };
        // The subtask talks to the JobMaster that deploys it, and to no other.
        let Some(job_master) = self.directory.job_master(e.job) else {
            return fail(self, format!("job {} has no job master here", e.job));
        };
        let io = self.jobs.view(e.job).and_then(|v| v.io(e.vertex, e.subtask)).unwrap_or_default();
        let services = TaskServices {
            config: self.config.clone(),
            job_master,
            counters: self.jobs.counters(e.job),
            io,
            data: self.data.clone(),
        };
        let spec = SubtaskSpec {
            execution: e,
            location: self.id.clone(),
            graph,
            services,
            batch_size: self.settings.batch_size,
            channel_capacity: self.settings.channel_capacity,
            debloat: self.settings.debloat,
            buffer_timeout_ms: self.settings.buffer_timeout_ms,
            restore: msg.restore,
            local: Some(self.local.clone()),
            remote_slots: Arc::new(
                msg.peers
                    .unwrap_or_default()
                    .into_iter()
                    .map(|p| if p.resource_id == self.id { None } else { p.data_address })
                    .collect(),
            ),
        };
        self.tasks.insert(e, msg.slot_index);
        slot.do_send(DeploySubtask(spec));
        self.report(e, TaskState::Running);
    }
}

impl Handler<CancelTask> for TaskExecutor {
    type Result = ();
    fn handle(&mut self, msg: CancelTask, _: &mut Self::Context) {
        match self.tasks.get(&msg.execution).and_then(|i| self.slots.get(*i as usize)).and_then(|s| s.addr.clone()) {
            Some(slot) => slot.do_send(CancelInSlot(msg.execution)),
            None => self.report(msg.execution, TaskOutcome::Canceled.into()),
        }
    }
}

impl TaskExecutor {
    fn control(&self, e: ExecutionId, c: SubtaskControl) {
        if let Some(slot) = self.tasks.get(&e).and_then(|i| self.slots.get(*i as usize)).and_then(|s| s.addr.clone()) {
            slot.do_send(ControlInSlot(e, c));
        }
    }
}

impl Handler<TriggerCheckpoint> for TaskExecutor {
    type Result = ();
    fn handle(&mut self, msg: TriggerCheckpoint, _: &mut Self::Context) {
        let barrier = riffle_api::CheckpointBarrier {
            id: msg.checkpoint_id,
            aligned: msg.aligned,
            unaligned: msg.unaligned,
            target: msg.target.map(Into::into),
            inline_threshold: msg.inline_threshold,
            incremental: msg.incremental,
            base: msg.base,
        };
        self.control(msg.execution, SubtaskControl::TriggerCheckpoint { barrier, stop_source: msg.stop_source });
    }
}

impl Handler<NotifyCheckpoint> for TaskExecutor {
    type Result = ();
    fn handle(&mut self, msg: NotifyCheckpoint, _: &mut Self::Context) {
        self.control(msg.execution, SubtaskControl::CheckpointDone { id: msg.checkpoint_id, completed: msg.completed });
    }
}

impl Handler<SubtaskExited> for TaskExecutor {
    type Result = ();
    fn handle(&mut self, msg: SubtaskExited, _: &mut Self::Context) {
        self.tasks.remove(&msg.execution);
        self.report_with(msg.execution, msg.outcome.into(), msg.final_source);
    }
}

impl Handler<ChildExited> for TaskExecutor {
    type Result = ();
    fn handle(&mut self, msg: ChildExited, ctx: &mut Self::Context) {
        let crate::supervision::ChildId::Slot(index) = msg.child else { return };
        let Some(handle) = self.slots.get_mut(index as usize) else { return };
        handle.addr = None;
        let decision = handle.supervisor.decide(&msg.child, &msg.reason, Instant::now());
        // The slot's subtasks died with it.
        let lost: Vec<ExecutionId> = self.tasks.iter().filter(|(_, s)| **s == index).map(|(e, _)| *e).collect();
        for e in lost {
            self.tasks.remove(&e);
            let error =
                riffle_api::TaskError::msg(format!("slot {index} of {}", self.id), format!("the slot {}", msg.reason));
            self.report(e, TaskOutcome::Failed(error).into());
        }
        match decision {
            Decision::Ignore | Decision::Stop => {}
            Decision::Restart(delay) => {
                tracing::warn!(executor = %self.id, slot = index, reason = %msg.reason, ?delay, "restarting slot");
                self.slot_restarts += 1;
                ctx.run_later(delay, move |act, ctx| {
                    let arbiter = Arbiter::new();
                    let addr = act.start_slot(index, &arbiter, ctx);
                    if let Some(h) = act.slots.get_mut(index as usize) {
                        h.arbiter.stop();
                        h.arbiter = arbiter;
                        h.addr = Some(addr);
                    }
                });
            }
            Decision::Escalate(why) => {
                tracing::error!(executor = %self.id, "stopping task executor: {why}");
                ctx.stop();
            }
        }
    }
}

impl Handler<Reregister> for TaskExecutor {
    type Result = ();
    fn handle(&mut self, _: Reregister, _: &mut Self::Context) {
        if let Some(rm) = self.directory.resource_manager() {
            rm.do_send(RegisterTaskExecutor { resource_id: self.id.clone(), slots: self.settings.slots });
        }
    }
}

impl Handler<CrashSlot> for TaskExecutor {
    type Result = ();
    fn handle(&mut self, msg: CrashSlot, _: &mut Self::Context) {
        if let Some(a) = self.slots.get(msg.0 as usize).and_then(|s| s.addr.clone()) {
            a.do_send(InjectSlotFault);
        }
    }
}

impl Handler<GetTaskExecutorReport> for TaskExecutor {
    type Result = ResponseFuture<TaskExecutorReport>;
    fn handle(&mut self, _: GetTaskExecutorReport, _: &mut Self::Context) -> Self::Result {
        let addrs: Vec<Addr<Slot>> = self.slots.iter().filter_map(|s| s.addr.clone()).collect();
        let allocated = self.slots.iter().filter(|s| s.allocation.is_some()).count() as u32;
        let restarts = self.slot_restarts;
        Box::pin(async move {
            let mut running = 0;
            let mut live = 0;
            for a in addrs {
                if let Ok(n) = a.send(CountSubtasks).await {
                    running += n;
                    live += 1;
                }
            }
            TaskExecutorReport {
                live_slots: live,
                allocated_slots: allocated,
                running_subtasks: running,
                slot_restarts: restarts,
            }
        })
    }
}

/// Default slot supervision: up to 3 restarts a minute, 100 ms doubling to 5 s.
pub fn default_slot_strategy() -> Strategy {
    Strategy::Restart {
        max_restarts: 3,
        within: Duration::from_secs(60),
        backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(5),
    }
}

/// Stops the TaskExecutor and its slot threads.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct StopTaskExecutor;

impl Handler<StopTaskExecutor> for TaskExecutor {
    type Result = ();
    fn handle(&mut self, _: StopTaskExecutor, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// The JobManager this TaskExecutor served is gone (its link broke or timed out): every task
/// is cancelled and every slot freed, so nothing keeps running for a leader that no longer
/// exists; the TaskExecutor offers its slots again when a link is back.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct ReleaseAllSlots {
    /// Why, for the log.
    pub reason: String,
}

impl Handler<ReleaseAllSlots> for TaskExecutor {
    type Result = ();
    fn handle(&mut self, msg: ReleaseAllSlots, _: &mut Self::Context) {
        if !self.tasks.is_empty() {
            tracing::warn!(executor = %self.id, tasks = self.tasks.len(), "cancelling every task: {}", msg.reason);
        }
        for (e, i) in &self.tasks {
            if let Some(slot) = self.slots.get(*i as usize).and_then(|s| s.addr.clone()) {
                slot.do_send(CancelInSlot(*e));
            }
        }
        for s in &mut self.slots {
            s.allocation = None;
        }
    }
}
