//! `riffle run`: the built-in scenarios and plugin jobs, on the embedded cluster or on a
//! running one.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use riffle::scenarios::{self, nexmark};
use riffle::Configuration;

use crate::cli::Scenario;
use crate::rest_client;

/// Runs a plugin's job on a running cluster (waits for its end unless `detached`): a library
/// file is uploaded and run (`/jars/upload`, `/jars/{id}/run`); a directory's libraries are all
/// uploaded and the job run from the one offering it; a URL (`http://`, `https://`, `file://`)
/// is not uploaded: the cluster fetches it (`/jars/run` with `jarUrl`).
pub fn plugin_on_cluster(address: &str, path: &Path, entry: &str, args: &[String], detached: bool) -> Result<()> {
    let location = path.to_string_lossy();
    let a = if riffle_cluster::artifacts::is_url(&location) {
        let body = serde_json::json!({ "jarUrl": location, "entryClass": entry, "programArgsList": args });
        rest_client::call(address, "POST", "/jars/run", Some(&body))?
    } else {
        let jar =
            if path.is_dir() { upload_directory(address, path, entry)? } else { rest_client::upload(address, path)? };
        let body = serde_json::json!({ "entryClass": entry, "programArgsList": args });
        rest_client::call(address, "POST", &format!("/jars/{jar}/run"), Some(&body))?
    };
    let job = a.body["jobid"].as_str().context("the cluster sent no job id")?.to_string();
    println!("job {job} submitted to {address}");
    if !detached {
        let status = rest_client::await_job(address, &job)?;
        println!("job {job} ended {status}");
        if status != "FINISHED" {
            bail!("job {job} ended {status}");
        }
    }
    Ok(())
}

/// Uploads every library of directory `dir` (see `riffle_cluster::artifacts::libraries_in`);
/// the id of the one that offers job `entry`.
fn upload_directory(address: &str, dir: &Path, entry: &str) -> Result<String> {
    let mut ids = Vec::new();
    for library in riffle_cluster::artifacts::libraries_in(dir)? {
        ids.push(rest_client::upload(address, &library)?);
    }
    let listed = rest_client::call(address, "GET", "/jars", None)?;
    let offering: Vec<String> = listed.body["files"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["entry"].as_array().is_some_and(|e| e.iter().any(|j| j["name"] == entry)))
        .filter_map(|f| f["id"].as_str())
        .filter(|id| ids.iter().any(|i| i == id))
        .map(str::to_string)
        .collect();
    match offering.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("no library in {} has a job '{entry}'", dir.display()),
        _ => bail!("job '{entry}' is offered by more than one library in {}: {}", dir.display(), offering.join(", ")),
    }
}

/// Runs a plugin's job on an embedded cluster. `path` is a library, a directory of libraries, or
/// a URL (`file://`, `http://`, `https://`; a remote one is fetched into the artifact cache once).
pub fn plugin_embedded(path: &Path, entry: &str, args: &[String], slots: u32, conf: &Configuration) -> Result<()> {
    // The library stays loaded (the job runs its code).
    let graph = riffle::programs().build(&riffle::JobOrigin::plugin(&path.display().to_string(), entry, args))?;
    let r = scenarios::run_job_graph(conf, graph, slots)?;
    eprintln!("[riffle] plugin job '{entry}' finished in {:.3}s", r.duration.as_secs_f64());
    Ok(())
}

/// Runs built-in scenario `s` on the embedded cluster.
pub fn run(s: Scenario, conf: &Configuration) -> Result<()> {
    match s {
        Scenario::Wordcount { input, output, events, parallelism } => {
            wordcount(input, output, events, parallelism, conf)
        }
        Scenario::ExactlyOnceDrill { events, keys, failures, seed, parallelism, output, rate, sink } => {
            let o = DrillArgs { events, keys, failures, seed, parallelism, output, rate, sink };
            exactly_once_drill(o, conf)
        }
        Scenario::BackpressureCheckpoints { parallelism, slow_micros, checkpoints } => {
            backpressure_checkpoints(parallelism, slow_micros, checkpoints, conf)
        }
        Scenario::Nexmark { query, events, parallelism, output } => nexmark(&query, events, parallelism, output, conf),
        Scenario::ChaosDrill {
            duration,
            faults,
            seed,
            events,
            keys,
            rate,
            parallelism,
            zookeeper_script,
            work_dir,
        } => {
            let duration = riffle::config::parse_duration(&duration).map_err(|e| anyhow::anyhow!("--duration: {e}"))?;
            let o = crate::chaos_drill::ChaosOptions {
                duration,
                faults,
                seed,
                events,
                keys,
                rate,
                parallelism,
                zookeeper_script,
                work_dir,
            };
            crate::chaos_drill::run(&o, conf)
        }
    }
}

/// Word count over a file, a directory or generated words: the built-in program `wordcount`,
/// built from its origin as every job is.
fn wordcount(
    input: Option<PathBuf>,
    output: Option<PathBuf>,
    events: u64,
    parallelism: u32,
    conf: &Configuration,
) -> Result<()> {
    let (out, guard) = stdout_or(output)?;
    let mut args = vec!["--output".to_string(), absolute(&out)?.display().to_string()];
    match &input {
        Some(i) => {
            std::fs::metadata(i).with_context(|| format!("cannot read input '{}'", i.display()))?;
            args.extend(["--input".to_string(), absolute(i)?.display().to_string()]);
        }
        None => args.extend(["--events".to_string(), events.to_string()]),
    }
    let r = run_builtin("wordcount", args, parallelism, conf)?;
    if let Some(g) = guard {
        g.print()?;
    } else {
        eprintln!("[riffle] wordcount finished in {:.3}s; counts in {}", r.duration.as_secs_f64(), out.display());
    }
    Ok(())
}

/// Builds built-in program `name` from its origin (`args`, `parallelism`, the `-D` options as
/// the job's configuration) through the one program abstraction, and runs it on the embedded
/// cluster with progress on stderr.
fn run_builtin(name: &str, args: Vec<String>, parallelism: u32, conf: &Configuration) -> Result<riffle::JobResult> {
    let origin = riffle::JobOrigin::builtin(name, &args, Some(parallelism)).with_config(conf.clone());
    let graph = riffle::programs().build(&origin)?;
    Ok(scenarios::run_graph(conf, graph, parallelism, true)?)
}

/// `p` made absolute against the working directory (a program's paths must be absolute: other
/// processes may build the job).
fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("cannot make '{}' an absolute path", p.display()))
}

/// The drill's command-line arguments.
struct DrillArgs {
    events: u64,
    keys: u64,
    failures: usize,
    seed: u64,
    parallelism: u32,
    output: Option<PathBuf>,
    rate: u64,
    sink: String,
}

/// The exactly-once drill: injected failures, committed output checked exactly.
fn exactly_once_drill(a: DrillArgs, conf: &Configuration) -> Result<()> {
    let DrillArgs { events, keys, failures, seed, parallelism, output, rate, sink } = a;
    let sink: scenarios::drill::DrillSink = sink.parse()?;
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
        source_rate_per_s: 0,
        sink,
    };
    let r = scenarios::drill::run(&o, conf)?;
    println!(
        "exactly-once drill OK: {} lines committed in {} equal the failure-free result after {} injected failures ({} records processed with replays)",
        r.lines,
        output.display(),
        r.failures,
        r.processed
    );
    Ok(())
}

/// Aligned against unaligned checkpoints under backpressure.
fn backpressure_checkpoints(parallelism: u32, slow_micros: u64, checkpoints: u32, conf: &Configuration) -> Result<()> {
    use scenarios::backpressure::{measure, BackpressureOptions};
    let o = BackpressureOptions { parallelism, slow_micros, checkpoints, ..BackpressureOptions::default() };
    let r = measure(&o, conf)?;
    for (mode, f) in [("aligned", &r.aligned), ("unaligned", &r.unaligned)] {
        println!(
            "{mode:>9} checkpoints under backpressure: median {} ms (each: {:?} ms), sizes {:?} bytes, in-flight batches kept {:?}",
            f.median_ms(),
            f.durations_ms,
            f.sizes,
            f.channel_batches
        );
    }
    Ok(())
}

/// A Nexmark query over generated bids: the built-in program `nexmark`.
fn nexmark(query: &str, events: u64, parallelism: u32, output: Option<PathBuf>, conf: &Configuration) -> Result<()> {
    let _: nexmark::Query = query.parse()?;
    let (out, guard) = stdout_or(output)?;
    let args = vec![
        "--query".to_string(),
        query.to_string(),
        "--events".to_string(),
        events.to_string(),
        "--output".to_string(),
        absolute(&out)?.display().to_string(),
    ];
    let r = run_builtin("nexmark", args, parallelism, conf)?;
    if let Some(g) = guard {
        g.print()?;
    }
    eprintln!("[riffle] nexmark {query} over {events} bids finished in {:.3}s", r.duration.as_secs_f64());
    Ok(())
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
