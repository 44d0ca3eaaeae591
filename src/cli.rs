//! The `riffle` command line's shape: every command, argument and default (clap).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "riffle", version, about = "A stream processor built as an actor runtime")]
pub struct Cli {
    /// A configuration file (Flink's YAML: flat `key: value` lines or nested sections).
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Configuration, Flink key names: -D key=value (repeatable; over --config).
    #[arg(short = 'D', value_name = "KEY=VALUE", global = true)]
    pub define: Vec<String>,
    /// Resume from a savepoint, a checkpoint (`…/chk-<n>`) or a job's checkpoint directory
    /// (its newest usable checkpoint); the parallelism may differ from the original run.
    #[arg(long, value_name = "PATH", global = true)]
    pub from_savepoint: Option<PathBuf>,
    /// With --from-savepoint: skip state of operators this job no longer has.
    #[arg(long, global = true)]
    pub allow_non_restored_state: bool,
    /// Serve the REST API and web UI (rest.bind-address:rest.port, default 127.0.0.1:8081)
    /// while the job runs, and keep serving after it ended until interrupted.
    #[arg(long, global = true)]
    pub web: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Runs a built-in scenario on the embedded cluster.
    /// Runs a built-in scenario, or a job of a plugin (`--plugin lib.so --entry NAME [ARGS]`),
    /// on the embedded cluster.
    #[command(args_conflicts_with_subcommands = true)]
    Run {
        /// A plugin library (a cdylib built with riffle_api::export_plugin!): a file, a directory
        /// of libraries (every *.so in it), or a URL (file://, http://, https://; a remote one is
        /// fetched once into blob.storage.directory, within blob.fetch.max-size and
        /// blob.fetch.timeout).
        #[arg(long, requires = "entry")]
        plugin: Option<PathBuf>,
        /// The plugin's job to run.
        #[arg(long, requires = "plugin")]
        entry: Option<String>,
        /// Slots of the embedded cluster for a plugin's job.
        #[arg(long, default_value_t = 2)]
        slots: u32,
        /// Run the plugin's job on a running cluster (its REST address, host:port) instead of
        /// an embedded one: a library file is uploaded and the job submitted; a URL is not
        /// uploaded, the cluster fetches it.
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
        /// The plugin library: a file, a directory of libraries, or a URL (file://, http://,
        /// https://).
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
    /// Runs Flink SQL (like Flink's SQL client): a script with -f (statements end with `;`),
    /// else statements read from stdin (a `Flink SQL>` prompt on a terminal). DDL runs at
    /// once, each INSERT / statement set / SELECT as a job on the embedded cluster.
    Sql {
        /// The script to run.
        #[arg(short = 'f', long = "file", value_name = "SCRIPT")]
        file: Option<PathBuf>,
        /// Parallelism of every operator (table.exec.resource.default-parallelism).
        #[arg(short = 'p', long)]
        parallelism: Option<u32>,
        /// Swap the target of the script's INSERT for the canonical-csv collecting sink,
        /// writing the materialized, sorted result to FILE (the SQL benchmark's result check).
        #[arg(long, value_name = "FILE")]
        result: Option<PathBuf>,
    },
    /// Prints docs/configuration.md as the declared options generate it (every key riffle
    /// reads, its type, default and description).
    #[command(name = "config-docs", hide = true)]
    ConfigDocs,
}

#[derive(Subcommand)]
pub enum Scenario {
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
        /// The exactly-once sink: text, parquet or csv-partitioned (riffle-connectors' file sink).
        #[arg(long, default_value = "text")]
        sink: String,
    },
    /// The exactly-once drill on a highly available cluster of real processes (a 3-member
    /// ZooKeeper ensemble, two JobManagers, three TaskManagers) while TaskManagers, the leading
    /// JobManager and ZooKeeper members are killed and TaskManagers frozen at random moments;
    /// prints the figures, exits non-zero unless the committed output is exact.
    #[command(name = "chaos-drill")]
    ChaosDrill {
        /// Over how long the faults are spread (from the job's first committed output; then
        /// the job runs to its end), e.g. `3min`, `90s`.
        #[arg(long, default_value = "3min")]
        duration: String,
        /// Faults to inject, spread over --duration.
        #[arg(long, default_value_t = 60)]
        faults: usize,
        /// Seed of the random choices (default: from the clock; printed either way).
        #[arg(long)]
        seed: Option<u64>,
        /// Events of the job (default: what the paced source emits in 1.5 × --duration, so that
        /// the job outlasts the faults).
        #[arg(long)]
        events: Option<u64>,
        /// Distinct keys.
        #[arg(long, default_value_t = 50)]
        keys: u64,
        /// Records per second per source subtask (paced in the source).
        #[arg(long, default_value_t = 2000)]
        rate: u64,
        /// Parallelism of the job (at most 4: three TaskManagers of two slots, one lost).
        #[arg(long, short = 'p', default_value_t = 3)]
        parallelism: u32,
        /// scripts/zookeeper.sh (default: found above the riffle executable or the current
        /// directory).
        #[arg(long, value_name = "PATH")]
        zookeeper_script: Option<PathBuf>,
        /// Where the ensemble, logs, checkpoints and output go (default: a temporary directory,
        /// kept if the drill fails).
        #[arg(long, value_name = "DIR")]
        work_dir: Option<PathBuf>,
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
