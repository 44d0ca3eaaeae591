//! `riffle sql`: Flink SQL scripts (`-f`) or statements from stdin, run by a
//! `riffle::sql::TableEnvironment` on the embedded cluster; results printed as Flink's SQL
//! client prints them (tableau), job summaries and timings on stderr.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use riffle::sql::statement::{parse_script, Statement};
use riffle::sql::TableEnvironment;
use riffle::Configuration;

/// Runs `file` (or stdin) with `conf`; `parallelism` sets every operator's; `result` swaps
/// the INSERT's target for a canonical CSV of its result.
pub fn run(
    file: Option<&Path>,
    parallelism: Option<u32>,
    result: Option<&Path>,
    mut conf: Configuration,
) -> Result<()> {
    if let Some(p) = parallelism {
        conf.set(riffle::sql::options::DEFAULT_PARALLELISM.key(), p.to_string());
    }
    let mut env = TableEnvironment::new(conf);
    match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            run_script(&mut env, &text, result)
        }
        None if result.is_some() => bail!("--result needs a script (-f)"),
        None => shell(&mut env),
    }
}

/// Runs every statement of `text`, printing results.
fn run_script(env: &mut TableEnvironment, text: &str, result: Option<&Path>) -> Result<()> {
    let statements = parse_script(text)?;
    if result.is_some() {
        let targets: Vec<&Vec<String>> = statements
            .iter()
            .flat_map(|s| match s {
                Statement::Insert(i) => vec![&i.target],
                Statement::StatementSet(set) => set.iter().map(|i| &i.target).collect(),
                _ => vec![],
            })
            .collect();
        if targets.len() != 1 {
            bail!("--result needs exactly one INSERT in the script, found {}", targets.len());
        }
    }
    for statement in statements {
        if let Some(file) = result {
            let targets: Vec<&Vec<String>> = match &statement {
                Statement::Insert(i) => vec![&i.target],
                Statement::StatementSet(set) => set.iter().map(|i| &i.target).collect(),
                _ => vec![],
            };
            for target in targets {
                let path = file.to_string_lossy().replace('\'', "''");
                let name = target.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(".");
                env.execute_sql(&format!("ALTER TABLE {name} SET ('connector' = 'canonical-csv', 'path' = '{path}')"))?;
            }
        }
        let started = Instant::now();
        let r = env.execute(statement)?;
        if let Some(job) = &r.job {
            eprintln!(
                "[riffle] job '{}' finished: net runtime {:.3} s (statement {:.3} s)",
                job.name,
                job.duration.as_secs_f64(),
                started.elapsed().as_secs_f64()
            );
        }
        if !r.schema.fields().is_empty() {
            print!("{}", r.to_tableau()?);
        }
    }
    Ok(())
}

/// Reads statements from stdin (a prompt on a terminal); an error is printed and the shell
/// goes on.
fn shell(env: &mut TableEnvironment) -> Result<()> {
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    let mut pending = String::new();
    let prompt = |pending: &str| {
        if interactive {
            print!("{}", if pending.trim().is_empty() { "Flink SQL> " } else { "> " });
            let _ = std::io::stdout().flush();
        }
    };
    prompt(&pending);
    for line in stdin.lock().lines() {
        let line = line?;
        if pending.trim().is_empty()
            && matches!(line.trim().to_ascii_lowercase().as_str(), "quit;" | "exit;" | "quit" | "exit")
        {
            break;
        }
        pending.push_str(&line);
        pending.push('\n');
        if line.trim_end().ends_with(';') {
            match parse_script(&pending) {
                Ok(statements) => {
                    for s in statements {
                        match env.execute(s) {
                            Ok(r) => print!("{}", r.to_tableau()?),
                            Err(e) => println!("[ERROR] {e}"),
                        }
                    }
                    pending.clear();
                }
                // An unfinished statement (a `;` inside a statement set): read on.
                Err(_)
                    if pending.to_ascii_uppercase().contains("BEGIN")
                        && !pending.to_ascii_uppercase().contains("END") => {}
                Err(e) => {
                    println!("[ERROR] {e}");
                    pending.clear();
                }
            }
        }
        prompt(&pending);
    }
    if !pending.trim().is_empty() {
        for s in parse_script(&pending)? {
            print!("{}", env.execute(s)?.to_tableau()?);
        }
    }
    Ok(())
}
