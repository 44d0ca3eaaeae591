//! Runnable end-to-end jobs: what the `riffle` CLI runs, what the README shows, what the
//! tests check exactly and what the benchmarks time. Each scenario builds its job on a
//! [`riffle_api::StreamEnvironment`]; [`run_job`] runs one on an embedded cluster.

pub mod backpressure;
pub mod bench;
pub mod catalog;
pub mod drill;
pub mod nexmark;
pub mod progress;
pub mod wordcount;

use std::time::Duration;

use riffle_api::{Configuration, JobGraph, StreamEnvironment};
use riffle_cluster::{JobResult, JobStatus, MiniCluster, MiniClusterConfig};

/// What can go wrong running a scenario.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// Bad arguments or input (user domain).
    #[error("{0}")]
    Invalid(String),
    /// The job could not be built.
    #[error(transparent)]
    Graph(#[from] riffle_api::GraphError),
    /// The cluster failed or refused.
    #[error(transparent)]
    Cluster(#[from] riffle_cluster::ClusterError),
    /// The job ended FAILED or CANCELED.
    #[error("job {status}: {cause}")]
    JobFailed {
        /// How it ended.
        status: JobStatus,
        /// The root cause.
        cause: String,
    },
    /// A self-check found wrong results.
    #[error("check failed: {0}")]
    Check(String),
    /// Reading or writing files.
    #[error("{0}")]
    Io(String),
}

/// Starts an embedded cluster with `slots` slots (one TaskExecutor), runs the job defined on
/// `env`, optionally reporting progress on stderr, and returns its result; a job that did not
/// finish is an error.
pub fn run_job(env: &StreamEnvironment, name: &str, slots: u32, progress: bool) -> Result<JobResult, ScenarioError> {
    run_graph(env.config(), env.build_job_graph(name)?, slots, progress)
}

/// Runs a built job graph on an embedded cluster configured by `config` until it ends; an
/// error unless it finished.
pub fn run_job_graph(config: &Configuration, graph: JobGraph, slots: u32) -> Result<JobResult, ScenarioError> {
    run_graph(config, graph, slots, false)
}

/// Runs a built job graph on an embedded cluster configured by `config` (with at least
/// `slots` slots), optionally reporting progress on stderr; an error unless it finished.
pub fn run_graph(
    config: &Configuration,
    graph: JobGraph,
    slots: u32,
    progress: bool,
) -> Result<JobResult, ScenarioError> {
    let mut cfg = MiniClusterConfig::from_config(config.clone())?;
    cfg.slots_per_executor = cfg.slots_per_executor.max(slots);
    // `rest.enabled` (the CLI's --web): serve the REST API and UI while the job runs.
    let web = config.get(&riffle_web::config::REST_ENABLED).map_err(riffle_cluster::ClusterError::from)?;
    if web {
        cfg = cfg.with_rest().with_programs(catalog::programs());
    }
    let cluster = MiniCluster::start(cfg)?;
    if let Some(url) = cluster.rest_url() {
        eprintln!("[riffle] web UI and REST API at {url}");
    }
    let job = cluster.submit(graph)?;
    let reporter = progress.then(|| progress::Progress::start(job.counters()));
    let result = job.wait(None);
    if let Some(r) = reporter {
        r.finish();
    }
    let result = result?;
    if web {
        eprintln!(
            "[riffle] job {}; the web UI stays at {} until interrupted (Ctrl-C)",
            result.status,
            cluster.rest_url().unwrap_or_default()
        );
        serve_until_interrupted();
    }
    cluster.shutdown();
    if result.status != JobStatus::Finished {
        return Err(ScenarioError::JobFailed {
            status: result.status,
            cause: result.error.clone().unwrap_or_else(|| "no cause recorded".into()),
        });
    }
    Ok(result)
}

/// Blocks until the process is interrupted (SIGINT or SIGTERM end it), for a cluster that
/// serves the web UI.
pub fn serve_until_interrupted() {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// An environment with `parallelism` and the user's `-D` settings.
pub fn environment(parallelism: u32, config: &Configuration) -> StreamEnvironment {
    let mut env = StreamEnvironment::with_config(config.clone());
    env.set_parallelism(parallelism.max(1));
    env
}

/// How long the final progress line waits at most before the result is printed.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
