//! One module per command of the `riffle` binary; `run` dispatches a parsed command line.

mod bench;
mod cluster;
mod jobs;
mod scenario;
mod sql;

use anyhow::{bail, Result};
use riffle::Configuration;

use crate::cli::{Cli, Command};

/// The configuration: `--config FILE` (Flink's YAML, flat or nested), then `-D key=value`.
pub fn config(file: Option<&std::path::Path>, defines: &[String]) -> Result<Configuration> {
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

/// Runs the command `cli` names with its configuration.
pub fn run(cli: Cli) -> Result<()> {
    let mut conf = config(cli.config.as_deref(), &cli.define)?;
    let cli_defines = cli.define.clone();
    for warning in riffle_cluster::config_file::unknown_keys(&conf, &riffle::config_options()) {
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
    // Where plugin libraries fetched from URLs are cached, and the limits of fetching them.
    riffle_cluster::artifacts::configure_process(riffle_cluster::artifacts::FetchSettings::from_config(&conf)?);
    match cli.command {
        Command::ConfigDocs => print!("{}", riffle::config_docs()),
        Command::Sql { file, parallelism, result } => sql::run(file.as_deref(), parallelism, result.as_deref(), conf)?,
        Command::Run {
            plugin: Some(path),
            entry: Some(entry),
            jobmanager: Some(address),
            detached,
            args,
            scenario: None,
            ..
        } => scenario::plugin_on_cluster(&address, &path, &entry, &args, detached)?,
        Command::Run { plugin: Some(path), entry: Some(entry), slots, args, scenario: None, .. } => {
            scenario::plugin_embedded(&path, &entry, &args, slots, &conf)?
        }
        Command::Run { scenario: None, .. } => {
            bail!("run needs a scenario (see `riffle run --help`) or --plugin <lib> --entry <name>")
        }
        Command::Run { scenario: Some(s), .. } => scenario::run(s, &conf)?,
        Command::List { address } => jobs::list(&address)?,
        Command::Cancel { address, job } => jobs::cancel(&address, &job)?,
        Command::Savepoint { address, job, target } => jobs::savepoint(&address, &job, target)?,
        Command::Stop { address, job, target } => jobs::stop(&address, &job, target)?,
        Command::Jobmanager => cluster::jobmanager(conf)?,
        Command::Taskmanager => cluster::taskmanager(conf)?,
        Command::RunApplication { plugin, entry, taskmanagers, slots, args } => {
            crate::application::run(&plugin, &entry, &args, taskmanagers, slots, &conf)?
        }
        Command::LocalCluster { taskmanagers, slots } => crate::local_cluster::run(taskmanagers, slots, &conf)?,
        Command::Serve { taskmanagers, slots } => cluster::serve(taskmanagers, slots, conf)?,
        Command::BenchCluster { workload, events, parallelism } => {
            bench::bench_cluster(&workload, events, parallelism, &cli_defines)?
        }
        Command::Bench { workload, events, parallelism, check } => {
            bench::bench(&workload, events, parallelism, check, &conf)?
        }
    }
    Ok(())
}
