//! What the REST API and the web UI read about a job: its vertices and how they connect,
//! the status history, where each subtask is in its life, and live record and
//! backpressure counters.
//!
//! The actors that know a fact write it here when it changes (the Dispatcher the job's
//! status, the JobMaster the subtasks' states, subtasks their counters); readers take a
//! copy without sending a message, so a slow or busy actor never stalls a page, and a page
//! can never stall an actor. Counters are per subtask, written only by that subtask.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use riffle_api::JobGraph;
use serde::{Deserialize, Serialize};

use crate::gateway::{TaskOutcome, TaskState};
use crate::ids::JobId;
use crate::job_status::JobStatus;

/// Where one subtask is in its life, with Flink's names (1.11's set). The states before it
/// runs are the JobMaster's to set; from RUNNING on it is what its TaskExecutor reported,
/// through [`ExecutionState::of`] and [`ExecutionState::ended`] alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExecutionState {
    /// Not scheduled yet (or reset for a restart).
    Created,
    /// Waiting for its slot.
    Scheduled,
    /// Sent to its TaskExecutor, not running yet.
    Deploying,
    /// Running.
    Running,
    /// Ended normally.
    Finished,
    /// Being cancelled.
    Canceling,
    /// Cancelled.
    Canceled,
    /// Failed.
    Failed,
}

impl ExecutionState {
    /// Every state, in Flink's order.
    pub const ALL: [ExecutionState; 8] = [
        ExecutionState::Created,
        ExecutionState::Scheduled,
        ExecutionState::Deploying,
        ExecutionState::Running,
        ExecutionState::Finished,
        ExecutionState::Canceling,
        ExecutionState::Canceled,
        ExecutionState::Failed,
    ];

    /// Flink's upper-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionState::Created => "CREATED",
            ExecutionState::Scheduled => "SCHEDULED",
            ExecutionState::Deploying => "DEPLOYING",
            ExecutionState::Running => "RUNNING",
            ExecutionState::Finished => "FINISHED",
            ExecutionState::Canceling => "CANCELING",
            ExecutionState::Canceled => "CANCELED",
            ExecutionState::Failed => "FAILED",
        }
    }

    /// How a reported state shows.
    pub fn of(state: &TaskState) -> Self {
        match state {
            // Waiting for its final checkpoint, it still runs (as in Flink).
            TaskState::Running | TaskState::InputEnded => ExecutionState::Running,
            TaskState::Ended(outcome) => ExecutionState::ended(outcome),
        }
    }

    /// How an outcome shows.
    pub fn ended(outcome: &TaskOutcome) -> Self {
        match outcome {
            TaskOutcome::Finished => ExecutionState::Finished,
            TaskOutcome::Canceled => ExecutionState::Canceled,
            TaskOutcome::Failed(_) => ExecutionState::Failed,
        }
    }

    /// Its position in [`ExecutionState::ALL`].
    pub fn ordinal(self) -> usize {
        ExecutionState::ALL.iter().position(|s| *s == self).unwrap_or(0)
    }

    /// Whether the subtask ended.
    pub fn is_terminal(self) -> bool {
        matches!(self, ExecutionState::Finished | ExecutionState::Canceled | ExecutionState::Failed)
    }
}

/// The value of a watermark gauge no watermark reached yet (Flink's `Long.MIN_VALUE`).
pub const NO_WATERMARK: i64 = i64::MIN;

fn no_watermark() -> i64 {
    NO_WATERMARK
}

/// Live counters of one subtask, written by that subtask only.
#[derive(Debug)]
pub struct SubtaskIo {
    /// Records taken from input channels.
    pub records_in: AtomicU64,
    /// Records put into output channels.
    pub records_out: AtomicU64,
    /// Nanoseconds spent waiting for room in a full output channel (backpressure).
    pub backpressured_ns: AtomicU64,
    /// Whether it waits for room right now.
    pub backpressured: AtomicBool,
    /// When it last started or stopped waiting for room, epoch ms (0: never waited).
    pub since_ms: std::sync::atomic::AtomicI64,
    /// Input elements (batches) queued for it, as last published (every few ms while busy).
    pub queued_in: AtomicU64,
    /// Whether it waits for input right now.
    pub idle: AtomicBool,
    /// When it last started or stopped waiting for input, epoch ms.
    pub idle_since_ms: std::sync::atomic::AtomicI64,
    /// Bytes it received over the network (channels from other TaskManager processes; channels
    /// inside a process move records without encoding them, and count no bytes).
    pub bytes_in: AtomicU64,
    /// Bytes it sent over the network.
    pub bytes_out: AtomicU64,
    /// Milliseconds it spent waiting for input, summed over its waits that ended (Flink's
    /// `accumulatedIdleTime`; busy time is what is neither idle nor backpressured).
    pub idle_ms: AtomicU64,
    /// The watermark its inputs last released to its operators (Flink's
    /// `currentInputWatermark`); [`NO_WATERMARK`] before the first and for sources.
    pub input_watermark: std::sync::atomic::AtomicI64,
    /// The watermark it last sent downstream (Flink's `currentOutputWatermark`).
    pub output_watermark: std::sync::atomic::AtomicI64,
    /// The checkpoint its inputs last aligned on, and how long that took (first barrier to
    /// last), ms: what its acknowledgement reports as alignment time.
    pub alignment: Mutex<(u64, u64)>,
}

impl Default for SubtaskIo {
    fn default() -> Self {
        Self {
            records_in: AtomicU64::new(0),
            records_out: AtomicU64::new(0),
            backpressured_ns: AtomicU64::new(0),
            backpressured: AtomicBool::new(false),
            since_ms: std::sync::atomic::AtomicI64::new(0),
            queued_in: AtomicU64::new(0),
            idle: AtomicBool::new(false),
            idle_since_ms: std::sync::atomic::AtomicI64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            idle_ms: AtomicU64::new(0),
            input_watermark: std::sync::atomic::AtomicI64::new(NO_WATERMARK),
            output_watermark: std::sync::atomic::AtomicI64::new(NO_WATERMARK),
            alignment: Mutex::new((0, 0)),
        }
    }
}

impl SubtaskIo {
    /// Records the watermark released to its operators.
    #[inline]
    pub fn set_input_watermark(&self, w: i64) {
        self.input_watermark.store(w, Ordering::Relaxed);
    }

    /// Its inputs aligned on checkpoint `id` in `ms`.
    pub fn set_alignment(&self, id: u64, ms: u64) {
        *self.alignment.lock().unwrap_or_else(|e| e.into_inner()) = (id, ms);
    }

    /// How long its inputs took to align on checkpoint `id`, ms (0: they did not align on it).
    pub fn alignment_ms(&self, id: u64) -> u64 {
        let (at, ms) = *self.alignment.lock().unwrap_or_else(|e| e.into_inner());
        if at == id {
            ms
        } else {
            0
        }
    }

    /// Records a watermark sent downstream.
    #[inline]
    pub fn set_output_watermark(&self, w: i64) {
        self.output_watermark.store(w, Ordering::Relaxed);
    }

    /// Adds `n` records read.
    #[inline]
    pub fn read(&self, n: u64) {
        self.records_in.fetch_add(n, Ordering::Relaxed);
    }

    /// Marks the start or end of a wait for input, with the backlog left.
    pub fn set_idle(&self, idle: bool, queued: usize) {
        let now = riffle_api::time::now_ms();
        let was_idle = self.idle.swap(idle, Ordering::Relaxed);
        if was_idle && !idle {
            let since = self.idle_since_ms.load(Ordering::Relaxed);
            self.idle_ms.fetch_add((now - since).max(0) as u64, Ordering::Relaxed);
        }
        self.queued_in.store(queued as u64, Ordering::Relaxed);
        self.idle_since_ms.store(now, Ordering::Relaxed);
    }

    /// Takes back `n` records read but put back unprocessed (they will be read again).
    #[inline]
    pub fn read_back(&self, n: u64) {
        self.records_in.fetch_sub(n, Ordering::Relaxed);
    }

    /// Adds `n` records written.
    #[inline]
    pub fn wrote(&self, n: u64) {
        self.records_out.fetch_add(n, Ordering::Relaxed);
    }

    /// Marks the start or end of a wait for room downstream; at the end, adds the wait.
    pub fn set_backpressured(&self, waiting: bool, waited_ns: u64) {
        self.backpressured.store(waiting, Ordering::Relaxed);
        self.since_ms.store(riffle_api::time::now_ms(), Ordering::Relaxed);
        if waited_ns > 0 {
            self.backpressured_ns.fetch_add(waited_ns, Ordering::Relaxed);
        }
    }

    /// A copy of the counters, to ship to the JobManager's view.
    pub fn sample(&self, vertex: u32, subtask: u32) -> IoSample {
        IoSample {
            vertex,
            subtask,
            records_in: self.records_in.load(Ordering::Relaxed),
            records_out: self.records_out.load(Ordering::Relaxed),
            backpressured_ns: self.backpressured_ns.load(Ordering::Relaxed),
            backpressured: self.backpressured.load(Ordering::Relaxed),
            since_ms: self.since_ms.load(Ordering::Relaxed),
            queued_in: self.queued_in.load(Ordering::Relaxed),
            idle: self.idle.load(Ordering::Relaxed),
            idle_since_ms: self.idle_since_ms.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            idle_ms: self.idle_ms.load(Ordering::Relaxed),
            input_watermark: self.input_watermark.load(Ordering::Relaxed),
            output_watermark: self.output_watermark.load(Ordering::Relaxed),
        }
    }

    /// Takes over the counters of a sample (the subtask runs in another process).
    pub fn apply(&self, s: &IoSample) {
        self.records_in.store(s.records_in, Ordering::Relaxed);
        self.records_out.store(s.records_out, Ordering::Relaxed);
        self.backpressured_ns.store(s.backpressured_ns, Ordering::Relaxed);
        self.backpressured.store(s.backpressured, Ordering::Relaxed);
        self.since_ms.store(s.since_ms, Ordering::Relaxed);
        self.queued_in.store(s.queued_in, Ordering::Relaxed);
        self.idle.store(s.idle, Ordering::Relaxed);
        self.idle_since_ms.store(s.idle_since_ms, Ordering::Relaxed);
        self.bytes_in.store(s.bytes_in, Ordering::Relaxed);
        self.bytes_out.store(s.bytes_out, Ordering::Relaxed);
        self.idle_ms.store(s.idle_ms, Ordering::Relaxed);
        self.input_watermark.store(s.input_watermark, Ordering::Relaxed);
        self.output_watermark.store(s.output_watermark, Ordering::Relaxed);
    }
}

/// A subtask's counters as a TaskManager process reports them with its heartbeats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoSample {
    /// The vertex.
    pub vertex: u32,
    /// The subtask.
    pub subtask: u32,
    /// See [`SubtaskIo`].
    pub records_in: u64,
    /// See [`SubtaskIo`].
    pub records_out: u64,
    /// See [`SubtaskIo`].
    pub backpressured_ns: u64,
    /// See [`SubtaskIo`].
    pub backpressured: bool,
    /// See [`SubtaskIo`].
    pub since_ms: i64,
    /// See [`SubtaskIo`].
    pub queued_in: u64,
    /// See [`SubtaskIo`].
    pub idle: bool,
    /// See [`SubtaskIo`].
    pub idle_since_ms: i64,
    /// See [`SubtaskIo`].
    #[serde(default)]
    pub bytes_in: u64,
    /// See [`SubtaskIo`].
    #[serde(default)]
    pub bytes_out: u64,
    /// See [`SubtaskIo`].
    #[serde(default)]
    pub idle_ms: u64,
    /// See [`SubtaskIo`].
    #[serde(default = "no_watermark")]
    pub input_watermark: i64,
    /// See [`SubtaskIo`].
    #[serde(default = "no_watermark")]
    pub output_watermark: i64,
}

/// One input of a vertex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VertexInput {
    /// The upstream vertex (index).
    pub upstream: u32,
    /// Flink's ship-strategy name (`FORWARD`, `HASH`, ...).
    pub ship_strategy: String,
}

/// A vertex: a chain of operators run as one subtask per parallel instance.
#[derive(Debug)]
pub struct VertexView {
    /// Its index in the job graph.
    pub index: u32,
    /// The chained operators' names.
    pub name: String,
    /// Number of subtasks.
    pub parallelism: u32,
    /// Whether it reads a source.
    pub is_source: bool,
    /// Its inputs.
    pub inputs: Vec<VertexInput>,
    /// Counters, one per subtask.
    pub subtasks: Vec<Arc<SubtaskIo>>,
}

/// The changing part of a job, under one lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobState {
    /// Current status.
    pub status: JobStatus,
    /// When each status was last entered, epoch ms.
    pub status_times: Vec<(JobStatus, i64)>,
    /// Submission time, epoch ms.
    pub start_ms: i64,
    /// End time, epoch ms (-1 while it runs).
    pub end_ms: i64,
    /// Latest change of anything here, epoch ms.
    pub last_modification_ms: i64,
    /// The current attempt (0 for the first run, +1 per restart).
    pub attempt: u32,
    /// State of each subtask, `[vertex][subtask]`.
    pub tasks: Vec<Vec<ExecutionState>>,
    /// When each vertex's first subtask started running and its last one ended (-1: not yet).
    pub vertex_times: Vec<(i64, i64)>,
    /// The TaskExecutor each subtask was deployed to, `[vertex][subtask]`.
    pub locations: Vec<Vec<Option<String>>>,
    /// When each subtask last entered each state, epoch ms (0: never), `[vertex][subtask]`
    /// indexed by [`ExecutionState::ordinal`] (Flink's `subtasktimes`).
    #[serde(default)]
    pub task_times: Vec<Vec<[i64; 8]>>,
}

impl JobState {
    /// Subtask `subtask` of `vertex` entered `state` at `now`.
    fn stamp(&mut self, vertex: usize, subtask: usize, state: ExecutionState, now: i64) {
        if let Some(t) = self.task_times.get_mut(vertex).and_then(|v| v.get_mut(subtask)) {
            t[state.ordinal()] = now;
        }
    }
}

/// A job as readers see it.
#[derive(Debug)]
pub struct JobView {
    /// The job.
    pub job_id: JobId,
    /// Its name.
    pub name: String,
    /// Its number of key groups.
    pub max_parallelism: u32,
    /// Its vertices, by index.
    pub vertices: Vec<VertexView>,
    /// The job's own configuration (what it was submitted with, over the cluster's).
    pub config: Vec<(String, String)>,
    state: Mutex<JobState>,
}

impl JobView {
    /// The view of a job just submitted with `graph`.
    pub fn new(job_id: JobId, graph: &JobGraph) -> Self {
        let now = riffle_api::time::now_ms();
        let vertices: Vec<VertexView> = graph
            .vertices()
            .iter()
            .map(|v| VertexView {
                index: v.id as u32,
                name: v.name.clone(),
                parallelism: v.parallelism,
                is_source: v.is_source,
                inputs: graph
                    .vertex_inputs(v.id)
                    .into_iter()
                    .map(|(u, s)| VertexInput { upstream: u as u32, ship_strategy: s.to_string() })
                    .collect(),
                subtasks: (0..v.parallelism).map(|_| Arc::new(SubtaskIo::default())).collect(),
            })
            .collect();
        let state = JobState {
            status: JobStatus::Created,
            status_times: vec![(JobStatus::Created, now)],
            start_ms: now,
            end_ms: -1,
            last_modification_ms: now,
            attempt: 0,
            tasks: vertices.iter().map(|v| vec![ExecutionState::Created; v.parallelism as usize]).collect(),
            vertex_times: vec![(-1, -1); vertices.len()],
            locations: vertices.iter().map(|v| vec![None; v.parallelism as usize]).collect(),
            task_times: vertices
                .iter()
                .map(|v| {
                    let mut created = [0; 8];
                    created[ExecutionState::Created.ordinal()] = now;
                    vec![created; v.parallelism as usize]
                })
                .collect(),
        };
        Self {
            job_id,
            name: graph.name.clone(),
            max_parallelism: graph.max_parallelism,
            vertices,
            config: graph.config.entries().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            state: Mutex::new(state),
        }
    }

    fn update(&self, f: impl FnOnce(&mut JobState)) {
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut g);
        g.last_modification_ms = riffle_api::time::now_ms();
    }

    /// A copy of the changing part.
    pub fn state(&self) -> JobState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The job entered `status`.
    pub fn set_status(&self, status: JobStatus) {
        self.update(|s| {
            let now = riffle_api::time::now_ms();
            s.status = status;
            match s.status_times.iter_mut().find(|(st, _)| *st == status) {
                Some(t) => t.1 = now,
                None => s.status_times.push((status, now)),
            }
            if status.is_terminal() {
                s.end_ms = now;
                // Subtasks never reported past this point did not run to the end: they were
                // cancelled, unless the job finished.
                let end = if status == JobStatus::Finished { TaskOutcome::Finished } else { TaskOutcome::Canceled };
                let ended = ExecutionState::ended(&end);
                let mut stamps = Vec::new();
                for (v, tasks) in s.tasks.iter_mut().enumerate() {
                    for (i, t) in tasks.iter_mut().enumerate() {
                        if !t.is_terminal() {
                            *t = ended;
                            stamps.push((v, i));
                        }
                    }
                }
                for (v, i) in stamps {
                    s.stamp(v, i, ended, now);
                }
                for (i, times) in s.vertex_times.iter_mut().enumerate() {
                    if times.1 < 0 && s.tasks.get(i).is_some_and(|v| v.iter().all(|t| t.is_terminal())) {
                        times.1 = now;
                    }
                }
            }
        });
    }

    /// A new attempt starts: every subtask is scheduled again.
    pub fn new_attempt(&self, attempt: u32) {
        self.update(|s| {
            let now = riffle_api::time::now_ms();
            s.attempt = attempt;
            for t in s.tasks.iter_mut().flatten() {
                *t = ExecutionState::Scheduled;
            }
            for t in s.task_times.iter_mut().flatten() {
                // A restart creates new executions; the first attempt's were created with the job.
                let created = if attempt == 0 { t[ExecutionState::Created.ordinal()] } else { now };
                *t = [0; 8];
                t[ExecutionState::Created.ordinal()] = created;
                t[ExecutionState::Scheduled.ordinal()] = now;
            }
            for times in &mut s.vertex_times {
                times.1 = -1;
            }
        });
    }

    /// Subtask `subtask` of `vertex` was deployed to TaskExecutor `location`.
    pub fn set_location(&self, vertex: u32, subtask: u32, location: String) {
        self.update(|s| {
            if let Some(l) = s.locations.get_mut(vertex as usize).and_then(|v| v.get_mut(subtask as usize)) {
                *l = Some(location);
            }
        });
    }

    /// Subtask `subtask` of `vertex` entered `state`.
    pub fn set_task(&self, vertex: u32, subtask: u32, state: ExecutionState) {
        self.update(|s| {
            let now = riffle_api::time::now_ms();
            let Some(tasks) = s.tasks.get_mut(vertex as usize) else { return };
            let Some(t) = tasks.get_mut(subtask as usize) else { return };
            *t = state;
            let all_ended = tasks.iter().all(|t| t.is_terminal());
            s.stamp(vertex as usize, subtask as usize, state, now);
            if let Some(times) = s.vertex_times.get_mut(vertex as usize) {
                if state == ExecutionState::Running && times.0 < 0 {
                    times.0 = now;
                }
                if all_ended && times.1 < 0 {
                    times.1 = now;
                }
            }
        });
    }

    /// Samples of the subtasks that did anything here (a TaskManager's heartbeat).
    pub fn samples(&self) -> Vec<IoSample> {
        let mut out = Vec::new();
        for v in &self.vertices {
            for (s, io) in v.subtasks.iter().enumerate() {
                let sample = io.sample(v.index, s as u32);
                if sample.records_in > 0 || sample.records_out > 0 || sample.since_ms > 0 || sample.idle_since_ms > 0 {
                    out.push(sample);
                }
            }
        }
        out
    }

    /// Takes over the samples a TaskManager reported for the subtasks deployed to it
    /// (`location`); samples of subtasks placed elsewhere since are ignored.
    pub fn apply_samples(&self, samples: &[IoSample], location: &str) {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for s in samples {
            let here = state
                .locations
                .get(s.vertex as usize)
                .and_then(|v| v.get(s.subtask as usize))
                .is_some_and(|l| l.as_deref() == Some(location));
            if here {
                if let Some(io) = self.vertices.get(s.vertex as usize).and_then(|v| v.subtasks.get(s.subtask as usize))
                {
                    io.apply(s);
                }
            }
        }
    }

    /// The counters of one subtask (for the subtask to write).
    pub fn io(&self, vertex: u32, subtask: u32) -> Option<Arc<SubtaskIo>> {
        self.vertices.get(vertex as usize)?.subtasks.get(subtask as usize).cloned()
    }
}

/// Counts of subtasks per state over a whole job, for the job list.
pub fn task_counts(state: &JobState) -> HashMap<ExecutionState, usize> {
    let mut m = HashMap::new();
    for t in state.tasks.iter().flatten() {
        *m.entry(*t).or_insert(0) += 1;
    }
    m
}

/// The state Flink shows for a vertex: the "most advanced" of its subtasks' states.
pub fn vertex_state(tasks: &[ExecutionState]) -> ExecutionState {
    use ExecutionState::*;
    let has = |x: ExecutionState| tasks.contains(&x);
    if tasks.is_empty() {
        return Created;
    }
    if tasks.iter().all(|t| *t == Finished) {
        return Finished;
    }
    for s in [Failed, Canceling, Canceled, Running, Deploying, Scheduled] {
        if has(s) {
            return s;
        }
    }
    if has(Finished) {
        return Running;
    }
    Created
}

#[cfg(test)]
mod tests {
    use super::*;
    use ExecutionState::*;

    #[test]
    fn a_vertex_shows_its_most_telling_subtask_state() {
        assert_eq!(vertex_state(&[Running, Finished]), Running);
        assert_eq!(vertex_state(&[Finished, Finished]), Finished);
        assert_eq!(vertex_state(&[Running, Failed]), Failed);
        assert_eq!(vertex_state(&[Created, Deploying]), Deploying);
        assert_eq!(vertex_state(&[Created]), Created);
        assert_eq!(vertex_state(&[]), Created);
    }

    #[test]
    fn a_reported_state_shows_with_flinks_name() {
        let failed = TaskOutcome::Failed(riffle_api::TaskError::msg("map", "boom"));
        let shown = [
            (TaskState::Running, "RUNNING"),
            (TaskState::InputEnded, "RUNNING"),
            (TaskState::Ended(TaskOutcome::Finished), "FINISHED"),
            (TaskState::Ended(TaskOutcome::Canceled), "CANCELED"),
            (TaskState::Ended(failed), "FAILED"),
        ];
        for (state, name) in shown {
            let s = ExecutionState::of(&state);
            assert_eq!((s.as_str(), s.is_terminal()), (name, state.is_terminal()));
        }
    }
}
