//! Checkpoints under backpressure: a fast source feeds a deliberately slow keyed operator, so
//! every channel between them is full. An aligned barrier queues behind that backlog and the
//! checkpoint takes as long as the backlog needs to drain; an unaligned barrier (FLIP-76)
//! overtakes it on the priority lane and takes the in-flight records along as channel state,
//! so the checkpoint completes in milliseconds. [`measure`] takes checkpoints both ways on the
//! same job and reports their durations and sizes; [`resume_check`] proves that restoring
//! from an unaligned checkpoint with records in flight loses and duplicates nothing.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use riffle_api::{Configuration, KeyedProcessFunction, ProcessContext, UserError};
use riffle_cluster::{JobStatus, MiniCluster, MiniClusterConfig};

use crate::drill::{committed_lines, expected_lines, RunningCount};
use crate::ScenarioError;

/// How to run the scenario.
#[derive(Debug, Clone)]
pub struct BackpressureOptions {
    /// Parallelism of source and slow operator (each slow subtask reads `parallelism` channels).
    pub parallelism: u32,
    /// Distinct keys.
    pub keys: u64,
    /// Busy time the slow operator spends per record, in microseconds.
    pub slow_micros: u64,
    /// Checkpoints taken per mode.
    pub checkpoints: u32,
    /// How long the backlog builds up before the first checkpoint.
    pub warm_up: Duration,
}

impl Default for BackpressureOptions {
    fn default() -> Self {
        Self { parallelism: 2, keys: 100, slow_micros: 200, checkpoints: 3, warm_up: Duration::from_millis(500) }
    }
}

/// The checkpoints of one mode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModeFigures {
    /// Trigger-to-completion time of each checkpoint, ms.
    pub durations_ms: Vec<u64>,
    /// State size of each checkpoint (channel state included), bytes.
    pub sizes: Vec<u64>,
    /// In-flight batches persisted as channel state, per checkpoint.
    pub channel_batches: Vec<usize>,
}

impl ModeFigures {
    /// The median duration, ms.
    pub fn median_ms(&self) -> u64 {
        let mut d = self.durations_ms.clone();
        d.sort_unstable();
        d.get(d.len() / 2).copied().unwrap_or(0)
    }
}

/// Both modes' figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackpressureReport {
    /// Aligned (exactly-once) checkpoints.
    pub aligned: ModeFigures,
    /// Unaligned checkpoints.
    pub unaligned: ModeFigures,
}

/// Counts like the drill's running count, slowly.
#[derive(Clone)]
struct SlowCount {
    micros: u64,
    inner: RunningCount,
}

impl KeyedProcessFunction<u64, u64, String> for SlowCount {
    fn process_element(&mut self, v: u64, ctx: &mut ProcessContext<'_, u64, String>) -> Result<(), UserError> {
        // Busy, not asleep: a sleeping operator would not be what backpressure usually is.
        let until = Instant::now() + Duration::from_micros(self.micros);
        while Instant::now() < until {
            std::hint::spin_loop();
        }
        self.inner.process_element(v, ctx)
    }
}

fn config(unaligned: bool, checkpoint_dir: &Path, user: &Configuration) -> Configuration {
    let mut c = Configuration::new();
    c.set("execution.checkpointing.unaligned", unaligned.to_string())
        .set("state.checkpoints.dir", checkpoint_dir.display().to_string())
        // Every subtask's state in a file, so channel state can be counted from the files.
        .set("state.storage.fs.memory-threshold", "0")
        .set("execution.checkpointing.externalized-checkpoint-retention", "RETAIN_ON_CANCELLATION")
        .set("state.checkpoints.num-retained", "100")
        .set("restart-strategy", "none");
    c.merge(user);
    c
}

fn start(c: &Configuration, parallelism: u32) -> Result<MiniCluster, ScenarioError> {
    let mut cfg = MiniClusterConfig::from_config(c.clone())?;
    cfg.slots_per_executor = cfg.slots_per_executor.max(parallelism);
    Ok(MiniCluster::start(cfg)?)
}

/// The job: `events` numbers (unbounded for `None`), keyed, counted slowly, written exactly
/// once to `output`.
fn job(
    c: &Configuration,
    parallelism: u32,
    events: Option<u64>,
    keys: u64,
    micros: u64,
    output: &Path,
) -> Result<riffle_api::JobGraph, ScenarioError> {
    let env = crate::environment(parallelism, c);
    let keys = keys.max(1);
    env.from_sequence(0, events.map_or(u64::MAX - 1, |n| n.saturating_sub(1)))
        .key_by(move |i: &u64| i % keys)
        .process(SlowCount { micros, inner: RunningCount })
        .name("Slow Count")
        .write_as_text_exactly_once(output.to_path_buf(), |s: &String| s.clone());
    Ok(env.build_job_graph("checkpoints under backpressure")?)
}

/// The directory of checkpoint `id` under `dir` (`<dir>/<job>/chk-<id>`).
pub fn find_checkpoint(dir: &Path, id: u64) -> Option<PathBuf> {
    let name = format!("chk-{id}");
    std::fs::read_dir(dir).ok()?.filter_map(|e| e.ok()).map(|e| e.path().join(&name)).find(|p| p.is_dir())
}

/// Batches of channel state in a checkpoint's state files (full or incremental: keyed state
/// may be written as increments, channel state never is).
pub fn channel_batches(checkpoint: &Path) -> Result<usize, ScenarioError> {
    let io = |e: String| ScenarioError::Io(format!("cannot read checkpoint '{}': {e}", checkpoint.display()));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| io(e.to_string()))?;
    let mut n = 0;
    for e in std::fs::read_dir(checkpoint).map_err(|e| io(e.to_string()))? {
        let path = e.map_err(|e| io(e.to_string()))?.path();
        if path.extension().is_none_or(|x| x != "state") {
            continue;
        }
        let snap = runtime
            .block_on(riffle_actors::incremental::read_state_file(&path))
            .map_err(|e| io(format!("{}: {e}", path.display())))?;
        n += snap.channels.iter().map(|c| c.batches.len()).sum::<usize>();
    }
    Ok(n)
}

/// Takes `o.checkpoints` checkpoints of one mode on a backpressured job.
fn measure_mode(o: &BackpressureOptions, unaligned: bool, user: &Configuration) -> Result<ModeFigures, ScenarioError> {
    let dir =
        tempfile::tempdir().map_err(|e| ScenarioError::Io(format!("cannot create a temporary directory: {e}")))?;
    let c = config(unaligned, &dir.path().join("checkpoints"), user);
    let cluster = start(&c, o.parallelism)?;
    let graph = job(&c, o.parallelism, None, o.keys, o.slow_micros, &dir.path().join("out"))?;
    let handle = cluster.submit(graph)?;
    std::thread::sleep(o.warm_up);
    let mut figures = ModeFigures::default();
    let result = (|| {
        for _ in 0..o.checkpoints {
            let id = handle.trigger_checkpoint()?;
            let stats = cluster.checkpoint_stats(handle.job_id());
            figures.durations_ms.push(stats.last_duration_ms);
            figures.sizes.push(stats.last_size_bytes);
            let chk = find_checkpoint(&dir.path().join("checkpoints"), id)
                .ok_or_else(|| ScenarioError::Check(format!("checkpoint {id} left no directory")))?;
            figures.channel_batches.push(channel_batches(&chk)?);
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok::<_, ScenarioError>(())
    })();
    let _ = handle.cancel();
    let _ = handle.wait(Some(Duration::from_secs(30)));
    cluster.shutdown();
    result.map(|()| figures)
}

/// Measures aligned, then unaligned checkpoints on the same backpressured job.
pub fn measure(o: &BackpressureOptions, user: &Configuration) -> Result<BackpressureReport, ScenarioError> {
    Ok(BackpressureReport { aligned: measure_mode(o, false, user)?, unaligned: measure_mode(o, true, user)? })
}

/// Runs `events` events through the slow job, takes an unaligned checkpoint while records
/// are in flight, cancels, restores from that checkpoint at full speed and checks that the
/// committed output is exactly the failure-free one. Returns the batches of channel state
/// the checkpoint held (the check is vacuous without any: the caller should insist on some).
pub fn resume_check(
    o: &BackpressureOptions,
    events: u64,
    work: &Path,
    user: &Configuration,
) -> Result<usize, ScenarioError> {
    let (checkpoints, output) = (work.join("checkpoints"), work.join("out"));
    let c = config(true, &checkpoints, user);
    let cluster = start(&c, o.parallelism)?;
    let handle = cluster.submit(job(&c, o.parallelism, Some(events), o.keys, o.slow_micros, &output)?)?;
    std::thread::sleep(o.warm_up);
    let id = handle.trigger_checkpoint()?;
    handle.cancel()?;
    let first = handle.wait(Some(Duration::from_secs(60)))?;
    cluster.shutdown();
    if first.status != JobStatus::Canceled {
        return Err(ScenarioError::Check(format!("the first run ended {} before it was cancelled", first.status)));
    }
    let chk = find_checkpoint(&checkpoints, id)
        .ok_or_else(|| ScenarioError::Check(format!("checkpoint {id} was not retained")))?;
    let batches = channel_batches(&chk)?;
    let mut resumed = c.clone();
    resumed.set("execution.savepoint.path", chk.display().to_string());
    crate::run_job_graph(&resumed, job(&resumed, o.parallelism, Some(events), o.keys, 0, &output)?, o.parallelism)?;
    let (got, want) = (committed_lines(&output)?, expected_lines(events, o.keys));
    if got != want {
        return Err(ScenarioError::Check(format!(
            "after restoring unaligned checkpoint {id} ({batches} in-flight batches): {} committed lines, {} expected",
            got.len(),
            want.len()
        )));
    }
    Ok(batches)
}
