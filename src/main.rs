//! The `riffle` command line: runs the built-in scenarios and benchmarks on the embedded
//! runtime.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use riffle::scenarios::{self, bench, nexmark, wordcount};
use riffle::Configuration;

mod application;
mod bench_cluster;
mod local_cluster;
mod rest_client;
mod supervisor;

#[derive(Parser)]
#[command(name = "riffle", version, about = "A stream processor built as an actor runtime")]
struct Cli {
    /// A configuration file (Flink's YAML: flat `key: value` lines or nested sections).
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// Configuration, Flink key names: -D key=value (repeatable; over --config).
    #[arg(short = 'D', value_name = "KEY=VALUE", global = true)]
    define: Vec<String>,
    /// Resume from a savepoint, a checkpoint (`…/chk-<n>`) or a job's checkpoint directory
    /// (its newest usable checkpoint); the parallelism may differ from the original run.
    #[arg(long, value_name = "PATH", global = true)]
    from_savepoint: Option<PathBuf>,
    /// With --from-savepoint: skip state of operators this job no longer has.
    #[arg(long, global = true)]
    allow_non_restored_state: bool,
    /// Serve the REST API and web UI (rest.bind-address:rest.port, default 127.0.0.1:8081)
    /// while the job runs, and keep serving after it ended until interrupted.
    #[arg(long, global = true)]
    web: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a built-in scenario on the embedded cluster.
    /// Runs a built-in scenario, or a job of a plugin (`--plugin lib.so --entry NAME [ARGS]`),
    /// on the embedded cluster.
    #[command(args_conflicts_with_subcommands = true)]
    Run {
        /// A plugin library (a cdylib built with riffle_api::export_plugin!).
        #[arg(long, requires = "entry")]
        plugin: Option<PathBuf>,
        /// The plugin's job to run.
        #[arg(long, requires = "plugin")]
        entry: Option<String>,
        /// Slots of the embedded cluster for a plugin's job.
        #[arg(long, default_value_t = 2)]
        slots: u32,
        /// Run the plugin's job on a running cluster (its REST address, host:port) instead of
        /// an embedded one: the library is uploaded and the job submitted.
        #[arg(short = 'm', long = "jobmanager", value_name = "HOST:PORT", requires = "plugin")]
        jobmanager: Option<String>,
        /// With -m: return once the job is submitted instead of waiting for its end.
        #[arg(short = 'd', long, requires = "jobmanager")]
        detached: bool,
        /// Arguments of the plugin's job.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
        #[command(subcommand)]
        scenario: Option<Scenario>,
    },
    /// Starts an embedded cluster with the REST API and web UI and serves until interrupted:
    /// submit the built-in programs from the browser, `curl` or the `flink` CLI.
    Serve {
        /// TaskManagers (TaskExecutors) to start.
        #[arg(long, default_value_t = 1)]
        taskmanagers: u32,
        /// Slots per TaskManager.
        #[arg(long, default_value_t = 4)]
        slots: u32,
    },
    /// Starts a JobManager process: Dispatcher, ResourceManager, REST API and web UI
    /// (rest.port), accepting TaskManager processes on jobmanager.rpc.address:port (6123;
    /// bound on jobmanager.bind-host:jobmanager.rpc.bind-port when those differ).
    Jobmanager,
    /// Starts a TaskManager process with taskmanager.numberOfTaskSlots slots, registered at
    /// the JobManager on jobmanager.rpc.address:port (reconnecting whenever it is lost).
    Taskmanager,
    /// Starts a JobManager and N TaskManager processes on this machine; stops them all when it
    /// is stopped (Ctrl-C, SIGTERM, or however it ends). A TaskManager that dies is replaced.
    LocalCluster {
        /// TaskManager processes.
        #[arg(long, default_value_t = 2)]
        taskmanagers: u32,
        /// Slots per TaskManager.
        #[arg(long, default_value_t = 1)]
        slots: u32,
    },
    /// Application mode: starts a cluster for one plugin job (this process is its JobManager,
    /// plus TaskManager processes), runs the job and shuts the cluster down when it ends.
    RunApplication {
        /// The plugin library.
        #[arg(long)]
        plugin: PathBuf,
        /// The plugin's job to run.
        #[arg(long)]
        entry: String,
        /// TaskManager processes.
        #[arg(long, default_value_t = 1)]
        taskmanagers: u32,
        /// Slots per TaskManager.
        #[arg(long, default_value_t = 2)]
        slots: u32,
        /// Arguments of the plugin's job.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Lists the jobs of a running cluster.
    List {
        /// The cluster's REST address, host:port.
        #[arg(short = 'm', long = "jobmanager", default_value = "127.0.0.1:8081")]
        address: String,
    },
    /// Cancels a job of a running cluster.
    Cancel {
        /// The cluster's REST address, host:port.
        #[arg(short = 'm', long = "jobmanager", default_value = "127.0.0.1:8081")]
        address: String,
        /// The job id.
        job: String,
    },
    /// Takes a savepoint of a running job (the job runs on).
    Savepoint {
        /// The cluster's REST address, host:port.
        #[arg(short = 'm', long = "jobmanager", default_value = "127.0.0.1:8081")]
        address: String,
        /// The job id.
        job: String,
        /// Where the savepoint goes (default: the cluster's state.savepoints.dir).
        target: Option<String>,
    },
    /// Stops a running job with a savepoint: it ends FINISHED, resumable from the savepoint.
    Stop {
        /// The cluster's REST address, host:port.
        #[arg(short = 'm', long = "jobmanager", default_value = "127.0.0.1:8081")]
        address: String,
        /// The job id.
        job: String,
        /// Where the savepoint goes (default: the cluster's state.savepoints.dir).
        #[arg(long = "savepoint-path", short = 'p')]
        target: Option<String>,
    },
    /// Runs a benchmark workload (W1, W2, W3 of the Flink comparison) and prints one result line.
    Bench {
        /// W1, W2, W3 or W4.
        workload: String,
        /// Number of events.
        events: u64,
        /// Parallelism.
        parallelism: u32,
        /// Collect and verify the results instead of discarding them (not for timing).
        #[arg(long)]
        check: bool,
    },
    /// Runs a benchmark workload on a local-cluster of `parallelism` one-slot TaskManager
    /// processes (all keyed data over the network) and prints one result line.
    BenchCluster {
        /// W1, W2, W3 or W4.
        workload: String,
        /// Number of events.
        events: u64,
        /// Parallelism (= TaskManager processes).
        parallelism: u32,
    },
}

#[derive(Subcommand)]
enum Scenario {
    /// Counts events per key while failures are injected; exits non-zero unless the committed
    /// output equals the failure-free result exactly.
    #[command(name = "exactly-once-drill")]
    ExactlyOnceDrill {
        /// Events generated.
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Distinct keys.
        #[arg(long, default_value_t = 1000)]
        keys: u64,
        /// Failures injected at random points.
        #[arg(long, default_value_t = 3)]
        failures: usize,
        /// Seed of the failure points.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Parallelism.
        #[arg(long, short = 'p', default_value_t = 2)]
        parallelism: u32,
        /// Output directory for the committed part files (default: a fresh temporary one).
        #[arg(long)]
        output: Option<PathBuf>,
        /// Records per millisecond per source subtask (0: unthrottled).
        #[arg(long, default_value_t = 200)]
        rate: u64,
    },
    /// Takes aligned and unaligned checkpoints of a job whose slow operator keeps every
    /// channel full, and prints how long each took and what it held.
    #[command(name = "backpressure-checkpoints")]
    BackpressureCheckpoints {
        /// Parallelism of the source and of the slow operator.
        #[arg(long, short = 'p', default_value_t = 2)]
        parallelism: u32,
        /// Busy time of the slow operator per record, microseconds.
        #[arg(long, default_value_t = 200)]
        slow_micros: u64,
        /// Checkpoints per mode.
        #[arg(long, default_value_t = 3)]
        checkpoints: u32,
    },
    /// Counts words: one `word,count` line per distinct word.
    Wordcount {
        /// Text file or directory to read; without it, a generated stream of words.
        #[arg(long)]
        input: Option<PathBuf>,
        /// Where to write the counts (default: stdout).
        #[arg(long)]
        output: Option<PathBuf>,
        /// Generated words, when there is no --input.
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Parallelism.
        #[arg(long, short = 'p', default_value_t = 1)]
        parallelism: u32,
    },
    /// Runs a Nexmark query over generated bids.
    Nexmark {
        /// q1, q2 or q5.
        #[arg(long)]
        query: String,
        /// Number of bids.
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Parallelism.
        #[arg(long, short = 'p', default_value_t = 1)]
        parallelism: u32,
        /// Where to write results (default: stdout).
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

/// The configuration: `--config FILE` (Flink's YAML, flat or nested), then `-D key=value`.
fn config(file: Option<&std::path::Path>, defines: &[String]) -> Result<Configuration> {
    let mut c = match file {
        Some(p) => riffle_cluster::config_file::load(p)?,
        None => Configuration::new(),
    };
    for d in defines {
        let Some((k, v)) = d.split_once('=') else { bail!("-D expects key=value, got '{d}'") };
        if k.trim().is_empty() {
            bail!("-D expects key=value, got '{d}'");
        }
        c.set(k.trim(), v.trim());
    }
    Ok(c)
}

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn stdout_or(output: Option<PathBuf>) -> Result<(PathBuf, Option<tempfile_guard::Guard>)> {
    match output {
        Some(p) => Ok((p, None)),
        None => {
            let g = tempfile_guard::Guard::new()?;
            Ok((g.path(), Some(g)))
        }
    }
}

/// A temporary output file whose content goes to stdout at the end.
mod tempfile_guard {
    use std::path::PathBuf;

    pub struct Guard(PathBuf);

    impl Guard {
        pub fn new() -> anyhow::Result<Self> {
            let p = std::env::temp_dir().join(format!("riffle-out-{}-{}", std::process::id(), riffle::time::now_ms()));
            Ok(Self(p))
        }
        pub fn path(&self) -> PathBuf {
            self.0.clone()
        }
        pub fn print(&self) -> anyhow::Result<()> {
            use std::io::Write;
            let content = std::fs::read(&self.0).unwrap_or_default();
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&content);
            Ok(())
        }
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let mut conf = config(cli.config.as_deref(), &cli.define)?;
    let cli_defines = cli.define.clone();
    for warning in riffle_cluster::config_file::unknown_keys(&conf) {
        eprintln!("warning: {warning}");
    }
    if let Some(p) = &cli.from_savepoint {
        if !p.exists() {
            bail!("no savepoint or checkpoint at '{}'", p.display());
        }
        conf.set("execution.savepoint.path", p.display().to_string());
    }
    if cli.allow_non_restored_state {
        conf.set("execution.savepoint.ignore-unclaimed-state", "true");
    }
    if cli.web {
        conf.set("rest.enabled", "true");
    }
    match cli.command {
        Command::Run {
            plugin: Some(path),
            entry: Some(entry),
            jobmanager: Some(address),
            detached,
            args,
            scenario: None,
            ..
        } => {
            let jar = rest_client::upload(&address, &path)?;
            let body = serde_json::json!({ "entryClass": entry, "programArgsList": args });
            let a = rest_client::call(&address, "POST", &format!("/jars/{jar}/run"), Some(&body))?;
            let job = a.body["jobid"].as_str().context("the cluster sent no job id")?.to_string();
            println!("job {job} submitted to {address}");
            if !detached {
                let status = rest_client::await_job(&address, &job)?;
                println!("job {job} ended {status}");
                if status != "FINISHED" {
                    bail!("job {job} ended {status}");
                }
            }
        }
        Command::Run { plugin: Some(path), entry: Some(entry), slots, args, scenario: None, .. } => {
            // Kept until the job ended: the job runs the library's code.
            let plugin = riffle_cluster::plugin::load(&path)?;
            let graph = plugin.build(&entry, &args)?;
            let r = scenarios::run_job_graph(&conf, graph, slots)?;
            eprintln!("[riffle] plugin job '{entry}' finished in {:.3}s", r.duration.as_secs_f64());
            drop(plugin);
        }
        Command::Run { scenario: None, .. } => {
            bail!("run needs a scenario (see `riffle run --help`) or --plugin <lib> --entry <name>")
        }
        Command::List { address } => {
            let a = rest_client::call(&address, "GET", "/jobs/overview", None)?;
            let jobs = a.body["jobs"].as_array().cloned().unwrap_or_default();
            if jobs.is_empty() {
                println!("no jobs");
            }
            for j in jobs {
                println!(
                    "{} : {} ({})",
                    j["jid"].as_str().unwrap_or("?"),
                    j["name"].as_str().unwrap_or("?"),
                    j["state"].as_str().unwrap_or("?")
                );
            }
        }
        Command::Cancel { address, job } => {
            rest_client::call(&address, "PATCH", &format!("/jobs/{job}?mode=cancel"), Some(&serde_json::json!({})))?;
            println!("cancelled job {job}");
        }
        Command::Savepoint { address, job, target } => {
            let body = serde_json::json!({ "target-directory": target, "cancel-job": false });
            let a = rest_client::call(&address, "POST", &format!("/jobs/{job}/savepoints"), Some(&body))?;
            let trigger = a.body["request-id"].as_str().context("the cluster sent no request-id")?.to_string();
            let loc = rest_client::await_savepoint(&address, &job, &trigger, std::time::Duration::from_secs(600))?;
            println!("savepoint completed: {loc}");
        }
        Command::Stop { address, job, target } => {
            let body = serde_json::json!({ "targetDirectory": target, "drain": false });
            let a = rest_client::call(&address, "POST", &format!("/jobs/{job}/stop"), Some(&body))?;
            let trigger = a.body["request-id"].as_str().context("the cluster sent no request-id")?.to_string();
            let loc = rest_client::await_savepoint(&address, &job, &trigger, std::time::Duration::from_secs(600))?;
            println!("job {job} stopped with savepoint {loc}");
        }
        Command::Jobmanager => {
            let mut cfg = riffle::MiniClusterConfig::new(0, 1)
                .with_rest()
                .with_rpc()
                .with_programs(std::sync::Arc::new(scenarios::catalog::BuiltinPrograms));
            let ha = riffle_cluster::ha::HaConfig::from_config(&conf).map_err(|e| anyhow::anyhow!("{e}"))?;
            cfg.config = conf;
            let (cluster, recovered) = if ha.zookeeper().is_some() {
                let leading =
                    riffle_cluster::ha::job_manager::lead(cfg, std::sync::Arc::new(build_from_origin), |n| {
                        println!("riffle jobmanager: standby ({n}), waiting for leadership")
                    })?;
                (leading.cluster, leading.recovered.len())
            } else {
                (riffle::MiniCluster::start(cfg)?, 0)
            };
            let url = cluster.rest_url().unwrap_or_default();
            let rpc = cluster.rpc_address().unwrap_or_default();
            let bound = cluster.rpc_bound_address().map(|a| a.to_string()).unwrap_or_default();
            println!(
                "riffle jobmanager: REST API and web UI at {url}, TaskManagers register at {rpc} (bound on {bound}); \
                 {recovered} jobs recovered"
            );
            scenarios::serve_until_interrupted();
        }
        Command::Taskmanager => {
            let tm = riffle_cluster::taskmanager::TaskManager::start(conf, std::sync::Arc::new(build_from_origin))?;
            println!("riffle taskmanager {}: registering at its JobManager", tm.resource_id());
            tm.join();
        }
        Command::RunApplication { plugin, entry, taskmanagers, slots, args } => {
            application::run(&plugin, &entry, &args, taskmanagers, slots, &conf)?;
        }
        Command::LocalCluster { taskmanagers, slots } => {
            local_cluster::run(taskmanagers, slots, &conf)?;
        }
        Command::Serve { taskmanagers, slots } => {
            let mut cfg = riffle::MiniClusterConfig::new(taskmanagers, slots)
                .with_rest()
                .with_programs(std::sync::Arc::new(scenarios::catalog::BuiltinPrograms));
            cfg.config = conf;
            let cluster = riffle::MiniCluster::start(cfg)?;
            let url = cluster.rest_url().unwrap_or_default();
            println!("riffle is serving the REST API and web UI at {url} (Ctrl-C stops it)");
            scenarios::serve_until_interrupted();
        }
        Command::Run { scenario: Some(Scenario::Wordcount { input, output, events, parallelism }), .. } => {
            if let Some(i) = &input {
                std::fs::metadata(i).with_context(|| format!("cannot read input '{}'", i.display()))?;
            }
            let env = scenarios::environment(parallelism, &conf);
            let (out, guard) = stdout_or(output.clone())?;
            let source = match input {
                Some(p) => wordcount::Input::File(p),
                None => wordcount::Input::Generated(events),
            };
            wordcount::define(&env, source, out.clone());
            let r = scenarios::run_job(&env, "wordcount", parallelism, true)?;
            if let Some(g) = guard {
                g.print()?;
            } else {
                eprintln!(
                    "[riffle] wordcount finished in {:.3}s; counts in {}",
                    r.duration.as_secs_f64(),
                    out.display()
                );
            }
        }
        Command::Run {
            scenario: Some(Scenario::ExactlyOnceDrill { events, keys, failures, seed, parallelism, output, rate }),
            ..
        } => {
            let temp;
            let output = match output {
                Some(p) => p,
                None => {
                    temp = tempfile::tempdir().context("cannot create a temporary output directory")?;
                    temp.path().join("out")
                }
            };
            let o = scenarios::drill::DrillOptions {
                events,
                keys,
                failures,
                seed,
                parallelism,
                output: output.clone(),
                rate_per_ms: rate,
            };
            let r = scenarios::drill::run(&o, &conf)?;
            println!(
                "exactly-once drill OK: {} lines committed in {} equal the failure-free result after {} injected failures ({} records processed with replays)",
                r.lines,
                output.display(),
                r.failures,
                r.processed
            );
        }
        Command::Run {
            scenario: Some(Scenario::BackpressureCheckpoints { parallelism, slow_micros, checkpoints }),
            ..
        } => {
            use scenarios::backpressure::{measure, BackpressureOptions};
            let o = BackpressureOptions { parallelism, slow_micros, checkpoints, ..BackpressureOptions::default() };
            let r = measure(&o, &conf)?;
            for (mode, f) in [("aligned", &r.aligned), ("unaligned", &r.unaligned)] {
                println!(
                    "{mode:>9} checkpoints under backpressure: median {} ms (each: {:?} ms), sizes {:?} bytes, in-flight batches kept {:?}",
                    f.median_ms(),
                    f.durations_ms,
                    f.sizes,
                    f.channel_batches
                );
            }
        }
        Command::Run { scenario: Some(Scenario::Nexmark { query, events, parallelism, output }), .. } => {
            let q: nexmark::Query = query.parse()?;
            let env = scenarios::environment(parallelism, &conf);
            nexmark::define(&env, q, events, output.clone());
            let r = scenarios::run_job(&env, &format!("nexmark {query}"), parallelism, true)?;
            eprintln!("[riffle] nexmark {query} over {events} bids finished in {:.3}s", r.duration.as_secs_f64());
        }
        Command::BenchCluster { workload, events, parallelism } => {
            let w: bench::Workload = workload.parse()?;
            let (seconds, rate) = bench_cluster::run(&w.to_string(), events, parallelism, &cli_defines)?;
            println!(
                "engine=riffle-cluster workload={w} events={events} parallelism={parallelism} taskmanagers={parallelism} seconds={seconds:.3} events_per_sec={rate:.0}"
            );
        }
        Command::Bench { workload, events, parallelism, check } => {
            let w: bench::Workload = workload.parse()?;
            let r = bench::run_bench_with(w, events, parallelism, check, &conf)?;
            if check {
                eprintln!("bench: check OK {w} events={events} parallelism={parallelism}");
            }
            let checkpoints = match (r.checkpoints_completed, r.checkpoint_last_ms, r.checkpoint_last_bytes) {
                (Some(n), Some(ms), Some(bytes)) => format!(
                    " checkpoints_completed={n} checkpoint_last_ms={ms} checkpoint_last_bytes={bytes} checkpoint_last_sync_ms={} checkpoint_last_async_ms={}",
                    r.checkpoint_last_sync_ms.unwrap_or(0),
                    r.checkpoint_last_async_ms.unwrap_or(0)
                ),
                _ => String::new(),
            };
            println!(
                "engine=riffle workload={w} events={events} parallelism={parallelism} seconds={:.3} events_per_sec={:.0} peak_rss_kb={}{checkpoints}",
                r.seconds,
                r.events_per_sec,
                peak_rss_kb()
            );
        }
    }
    Ok(())
}

/// How a TaskManager process builds a job the JobManager sends it: the built-in programs by
/// name, plugins from their library.
fn build_from_origin(origin: &riffle::JobOrigin) -> Result<riffle::JobGraph, String> {
    static PLUGINS: std::sync::OnceLock<riffle_cluster::plugin::LoadedPlugins> = std::sync::OnceLock::new();
    match &origin.program {
        riffle::ProgramSource::Builtin(name) => {
            scenarios::catalog::BuiltinPrograms::build_program(name, &origin.args, origin.parallelism)
        }
        riffle::ProgramSource::Plugin { path, entry, .. } => {
            PLUGINS.get_or_init(Default::default).build_origin(path, entry, &origin.args).map_err(|e| e.to_string())
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    // Processes started by `local-cluster` end when it ends.
    if supervisor::is_child() && matches!(cli.command, Command::Jobmanager | Command::Taskmanager) {
        supervisor::exit_with_supervisor();
    }
    // A standalone `serve` with log.dir captures its output into <log.dir>/jobmanager.out.
    if matches!(cli.command, Command::Serve { .. }) {
        if supervisor::is_child() {
            supervisor::exit_with_supervisor();
        } else if let Ok(Some(dir)) =
            config(cli.config.as_deref(), &cli.define).map(|c| c.get_str("log.dir").map(PathBuf::from))
        {
            return match supervisor::run(&dir) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
                    ExitCode::FAILURE
                }
            };
        }
    }
    let is_task_manager = matches!(cli.command, Command::Taskmanager);
    let _log_guard = match config(cli.config.as_deref(), &cli.define).and_then(|c| {
        if is_task_manager {
            let s = riffle_cluster::taskmanager::TaskManagerSettings::from_config(&c)?;
            Ok(riffle_cluster::logging::init_task_manager(&c, &s.link.resource_id.to_string())?)
        } else {
            Ok(riffle_cluster::logging::init(&c)?)
        }
    }) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    // Panics in user code are caught at the subtask boundary and fail the job with a clear
    // message; only a panic of the CLI itself (a bug) is reported here, as one line.
    std::panic::set_hook(Box::new(|info| {
        if std::thread::current().name() == Some("main") {
            eprintln!("error: internal error: {}", info.to_string().replace('\n', " "));
        } else {
            tracing::debug!("caught panic: {info}");
        }
    }));
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}
