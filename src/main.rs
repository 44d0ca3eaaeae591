//! The `riffle` command line: runs the built-in scenarios and benchmarks on the embedded
//! runtime, starts cluster processes and talks to running clusters. `cli` is its shape,
//! `commands` one module per command.

use std::process::ExitCode;

use clap::Parser;

mod application;
mod bench_cluster;
mod chaos_drill;
mod cli;
mod commands;
mod local_cluster;
mod rest_client;
mod supervisor;

use cli::{Cli, Command};
use commands::config;

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
            config(cli.config.as_deref(), &cli.define).and_then(|c| Ok(c.get(&riffle_web::config::LOG_DIR)?))
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
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, each cause once: a cause whose text the message holds
/// already (an error that prints its source) is not repeated.
fn one_line(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    msg.replace('\n', " ")
}
