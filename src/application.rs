//! `riffle run-application` (FLIP-85 application mode): a cluster that exists for one job. This
//! process is its JobManager: it builds the plugin's job itself, starts TaskManager processes
//! (children that end with it), runs the job, and shuts the whole cluster down when the job
//! ends; the exit status is the job's.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use riffle::{Configuration, JobStatus};
use riffle_cluster::remote::jobmanager_side::{RPC_ADDRESS, RPC_PORT};

use crate::local_cluster::{defines, spawn};

/// Runs job `entry` of the plugin at `library` (a file, a directory of libraries, or a remote
/// artifact's URL such as `file:///shared/lib.so` or `https://host/lib.so`) with `args` on a cluster of `taskmanagers` TaskManager processes
/// of `slots` slots each.
pub fn run(
    library: &Path,
    entry: &str,
    args: &[String],
    taskmanagers: u32,
    slots: u32,
    conf: &Configuration,
) -> Result<()> {
    if taskmanagers == 0 || slots == 0 {
        bail!("an application cluster needs at least one TaskManager with at least one slot");
    }
    let programs = riffle::programs();
    let location = library.to_string_lossy().into_owned();
    let graph = if riffle_cluster::artifacts::is_url(&location) {
        // A remote artifact (FLINK-17632): the loader reads it (an http(s) URL once into the
        // artifact cache), and the job's origin keeps the URL, so every TaskManager fetches
        // it from where it lives, not from here.
        programs.build(&riffle::JobOrigin::plugin(&location, entry, args))?
    } else {
        let library =
            library.canonicalize().with_context(|| format!("cannot read the plugin '{}'", library.display()))?;
        programs.build(&riffle::JobOrigin::plugin(&library.display().to_string(), entry, args))?
    };
    let mut cfg = riffle::MiniClusterConfig::new(0, 1).with_rpc();
    cfg.config = conf.clone();
    if !cfg.config.contains(&RPC_ADDRESS) {
        cfg.config.set(RPC_ADDRESS.key(), "127.0.0.1");
    }
    if !cfg.config.contains(&RPC_PORT) {
        cfg.config.set(RPC_PORT.key(), "0");
    }
    if cfg.config.get(&riffle_web::config::REST_ENABLED)? {
        cfg = cfg.with_rest().with_config_registry(riffle::config_options());
    }
    let cluster = riffle::MiniCluster::start(cfg)?;
    let rpc = cluster.rpc_address().context("the JobManager has no RPC address")?;
    let (host, port) = rpc.rsplit_once(':').context("a malformed RPC address")?;
    let mut base = defines(conf);
    base.extend([
        "-D".into(),
        format!("jobmanager.rpc.address={host}"),
        "-D".into(),
        format!("jobmanager.rpc.port={port}"),
    ]);
    let mut members = Vec::new();
    for i in 0..taskmanagers {
        let mut a = vec!["taskmanager".to_string()];
        a.extend(base.iter().cloned());
        a.extend(["-D".into(), format!("taskmanager.numberOfTaskSlots={slots}")]);
        a.extend(["-D".into(), format!("taskmanager.resource-id=application-taskmanager-{i}")]);
        if !conf.contains(&riffle_cluster::taskmanager::HOST) {
            a.extend(["-D".into(), "taskmanager.host=127.0.0.1".to_string()]);
        }
        members.push(spawn(&format!("application-taskmanager-{i}"), &a)?);
    }
    let want = taskmanagers * slots;
    let deadline = Instant::now() + Duration::from_secs(60);
    while cluster.slot_report()?.total < want {
        if Instant::now() > deadline {
            bail!("the TaskManagers did not register within 60 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let job = cluster.submit(graph)?;
    eprintln!("[riffle] application job {} ({entry}) running on {taskmanagers} TaskManagers", job.job_id());
    let result = job.wait(None)?;
    cluster.shutdown();
    drop(members);
    match result.status {
        JobStatus::Finished => {
            eprintln!("[riffle] application job finished in {:.3}s; cluster shut down", result.duration.as_secs_f64());
            Ok(())
        }
        other => bail!("the application job ended {other}: {}", result.error.unwrap_or_default()),
    }
}
