//! The built-in programs users can submit by name over REST (`/programs`): word count,
//! Nexmark queries and a failover demo, each with `--name value` arguments; and [`programs`],
//! those with plugin jobs as the one [`Programs`] every part of riffle builds jobs through.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use riffle_api::{
    ApiError, Configuration, JobGraph, JobOrigin, ProgramArg, ProgramError, ProgramInfo, ProgramSet, ProgramSource,
    Programs,
};

/// The scenarios as programs: built-in origins only (see [`programs`] for plugins too).
#[derive(Debug, Default, Clone)]
pub struct BuiltinPrograms;

/// The built-in programs and plugin jobs (riffle-cluster's loader: each library loaded once,
/// kept for the life of the process) as one [`Programs`]: what the `riffle` binary hands the
/// REST API, its TaskManagers, HA recovery, application mode and `riffle run --plugin`.
pub fn programs() -> Arc<dyn Programs> {
    Arc::new(ProgramSet::new(Arc::new(BuiltinPrograms), Arc::new(riffle_cluster::plugin::LoadedPlugins::default())))
}

fn arg(name: &str, default: &str, help: &str) -> ProgramArg {
    ProgramArg { name: name.into(), default: default.into(), help: help.into() }
}

/// A user's mistake in naming a program or its arguments.
fn invalid(why: String) -> ApiError {
    ProgramError::Invalid(why).into()
}

/// `--name value` pairs, each name one of `known`.
fn parse_args(args: &[String], known: &[ProgramArg]) -> Result<BTreeMap<String, String>, ApiError> {
    let mut out: BTreeMap<String, String> = known.iter().map(|a| (a.name.clone(), a.default.clone())).collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let Some(name) = a.strip_prefix("--") else {
            return Err(invalid(format!("expected --name value, got '{a}'")));
        };
        let (name, value) = match name.split_once('=') {
            Some((n, v)) => (n.to_string(), v.to_string()),
            None => (name.to_string(), it.next().cloned().ok_or_else(|| invalid(format!("--{name} needs a value")))?),
        };
        if !known.iter().any(|k| k.name == name) {
            let names: Vec<_> = known.iter().map(|k| format!("--{}", k.name)).collect();
            return Err(invalid(format!("unknown argument --{name}; this program takes {}", names.join(", "))));
        }
        out.insert(name, value);
    }
    Ok(out)
}

fn number(args: &BTreeMap<String, String>, name: &str) -> Result<u64, ApiError> {
    let v = args.get(name).map(String::as_str).unwrap_or("0");
    v.parse().map_err(|_| invalid(format!("--{name} must be a non-negative integer, got '{v}'")))
}

fn output(args: &BTreeMap<String, String>, program: &str) -> Result<PathBuf, ApiError> {
    match args.get("output").filter(|s| !s.is_empty()) {
        Some(p) if p.starts_with('/') => Ok(PathBuf::from(p)),
        Some(p) => Err(invalid(format!("--output must be an absolute path, got '{p}'"))),
        None => {
            let dir = std::env::temp_dir().join("riffle-programs");
            std::fs::create_dir_all(&dir)
                .map_err(|source| ProgramError::Io { what: format!("cannot create {}", dir.display()), source })?;
            Ok(dir.join(format!("{program}-{}", riffle_api::time::now_ms())))
        }
    }
}

impl BuiltinPrograms {
    fn infos() -> Vec<ProgramInfo> {
        vec![
            ProgramInfo {
                name: "wordcount".into(),
                description: "Counts words of generated text (or a file) and writes word,count lines".into(),
                args: vec![
                    arg("events", "1000000", "generated words, when there is no --input"),
                    arg("input", "", "a text file or directory to read instead"),
                    arg("output", "", "where the counts go (default: a new file under the temp directory)"),
                ],
            },
            ProgramInfo {
                name: "nexmark".into(),
                description: "A Nexmark query (q1, q2 or q5) over generated bids".into(),
                args: vec![
                    arg("query", "q5", "q1, q2 or q5"),
                    arg("events", "1000000", "bids generated"),
                    arg("output", "", "where results go (default: a new file under the temp directory)"),
                ],
            },
            ProgramInfo {
                name: "failover-demo".into(),
                description: "Counts a throttled stream per key with checkpoints while failures are injected \
                              ('injected failure #k'); restarts resume from the latest checkpoint"
                    .into(),
                args: vec![
                    arg("failures", "5", "failures to inject"),
                    arg("interval-ms", "500", "time between failures"),
                    arg("seconds", "30", "how long the input lasts"),
                    arg("rate", "20", "records per millisecond"),
                ],
            },
            ProgramInfo {
                name: "bench".into(),
                description: "A workload of the Flink comparison (W1 word count, W2 Nexmark q1, W3 10 s windows, \
                              W4 W3 with checkpoints), results discarded"
                    .into(),
                args: vec![arg("workload", "W1", "W1, W2, W3 or W4"), arg("events", "10000000", "events generated")],
            },
            ProgramInfo {
                name: "exactly-once-drill".into(),
                description: "Counts events per key with checkpoints into exactly-once part files (key,count \
                              per event): kill TaskManagers while it runs, the committed output stays exact"
                    .into(),
                args: vec![
                    arg("events", "1000000", "events generated"),
                    arg("keys", "100", "distinct keys"),
                    arg("rate", "0", "records per millisecond per source subtask (0: unthrottled)"),
                    arg(
                        "source-rate",
                        "0",
                        "records per second per source subtask, paced in the source without blocking its slot (0: unpaced)",
                    ),
                    arg("output", "", "directory of the part files (default: a new one under the temp directory)"),
                    arg("sink", "text", "text, parquet or csv-partitioned (riffle-connectors' file sink)"),
                ],
            },
        ]
    }
}

impl Programs for BuiltinPrograms {
    fn list(&self) -> Vec<ProgramInfo> {
        Self::infos()
    }

    /// A user error (unknown program, bad argument) is [`ProgramError::Invalid`] with its message.
    fn build(&self, origin: &JobOrigin) -> Result<JobGraph, ApiError> {
        match &origin.program {
            ProgramSource::Builtin(name) => build(name, &origin.args, origin.parallelism),
            ProgramSource::Plugin { path, entry, .. } => {
                Err(ProgramError::Invalid(format!("job '{entry}' of plugin '{path}' is not a built-in program")).into())
            }
        }
    }
}

/// Builds program `name`; an unknown program or a bad argument is [`ProgramError::Invalid`].
fn build(name: &str, args: &[String], parallelism: Option<u32>) -> Result<JobGraph, ApiError> {
    let info = BuiltinPrograms::infos()
        .into_iter()
        .find(|p| p.name == name)
        .ok_or_else(|| invalid(format!("no program named '{name}'")))?;
    let mut a = parse_args(args, &info.args)?;
    let p = parallelism.unwrap_or(1).max(1);
    // The generated default output path is fixed now, so a TaskManager process that builds
    // this job again from its origin writes to the same file.
    let mut resolved: Vec<String> = args.to_vec();
    if info.args.iter().any(|x| x.name == "output") && a.get("output").is_none_or(|s| s.is_empty()) {
        let path = output(&a, name)?.display().to_string();
        a.insert("output".into(), path.clone());
        resolved.extend(["--output".to_string(), path]);
    }
    let graph = match name {
        "wordcount" => {
            let env = crate::environment(p, &Configuration::new());
            let input = match a.get("input").filter(|s| !s.is_empty()) {
                Some(f) => {
                    let path = PathBuf::from(f);
                    std::fs::metadata(&path).map_err(|e| invalid(format!("cannot read --input '{f}': {e}")))?;
                    crate::wordcount::Input::File(path)
                }
                None => crate::wordcount::Input::Generated(number(&a, "events")?),
            };
            crate::wordcount::define(&env, input, output(&a, "wordcount")?);
            env.build_job_graph("wordcount")
        }
        "nexmark" => {
            let q: crate::nexmark::Query = a
                .get("query")
                .map(String::as_str)
                .unwrap_or("q5")
                .parse()
                .map_err(|e: crate::ScenarioError| invalid(e.to_string()))?;
            let env = crate::environment(p, &Configuration::new());
            crate::nexmark::define(&env, q, number(&a, "events")?, Some(output(&a, "nexmark")?));
            env.build_job_graph(&format!("nexmark {}", a.get("query").map(String::as_str).unwrap_or("q5")))
        }
        "failover-demo" => failover_demo(
            p,
            number(&a, "failures")?,
            number(&a, "interval-ms")?,
            number(&a, "seconds")?,
            number(&a, "rate")?,
        ),
        "bench" => {
            let w: crate::bench::Workload = a
                .get("workload")
                .map(String::as_str)
                .unwrap_or("W1")
                .parse()
                .map_err(|e: crate::ScenarioError| invalid(e.to_string()))?;
            return finish(
                crate::bench::graph(w, number(&a, "events")?, p).map_err(|e| invalid(e.to_string()))?,
                name,
                resolved,
                p,
            );
        }
        "exactly-once-drill" => {
            let o = crate::drill::DrillOptions {
                events: number(&a, "events")?.max(1),
                keys: number(&a, "keys")?.max(1),
                failures: 0,
                seed: 0,
                parallelism: p,
                output: output(&a, name)?,
                rate_per_ms: number(&a, "rate")?,
                source_rate_per_s: number(&a, "source-rate")?,
                sink: a
                    .get("sink")
                    .map(String::as_str)
                    .unwrap_or("text")
                    .parse()
                    .map_err(|e: crate::ScenarioError| invalid(e.to_string()))?,
            };
            crate::drill::graph(&o, &Configuration::new())
        }
        other => return Err(invalid(format!("no program named '{other}'"))),
    };
    finish(graph?, name, resolved, p)
}

/// Records how a built-in program's graph was built, so TaskManager processes can build it.
fn finish(mut graph: JobGraph, name: &str, args: Vec<String>, parallelism: u32) -> Result<JobGraph, ApiError> {
    graph.set_origin(riffle_api::JobOrigin {
        program: riffle_api::ProgramSource::Builtin(name.to_string()),
        args,
        parallelism: Some(parallelism),
        config: Default::default(),
    });
    Ok(graph)
}

/// A job that fails `failures` times, `interval_ms` apart, with messages
/// `injected failure #k` (k from 1), then runs to the end of its input.
pub fn failover_demo(
    parallelism: u32,
    failures: u64,
    interval_ms: u64,
    seconds: u64,
    rate: u64,
) -> Result<JobGraph, riffle_api::GraphError> {
    let mut c = Configuration::new();
    c.set("execution.checkpointing.interval", "100 ms")
        .set("restart-strategy", "fixed-delay")
        .set("restart-strategy.fixed-delay.attempts", (failures + 1).to_string())
        .set("restart-strategy.fixed-delay.delay", "10 ms");
    let env = crate::environment(parallelism, &c);
    let rate = rate.max(1);
    let events = seconds.saturating_mul(1000).saturating_mul(rate).max(1);
    // Shared by every attempt: failures keep counting across restarts.
    let fired = Arc::new(AtomicU64::new(0));
    let last = Arc::new(AtomicU64::new(riffle_api::time::now_ms() as u64));
    env.from_sequence(0, events - 1)
        .map(move |i| {
            if i % rate == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            i
        })
        .name("Throttle")
        .map(move |i| {
            let now = riffle_api::time::now_ms() as u64;
            let prev = last.load(Ordering::SeqCst);
            let k = fired.load(Ordering::SeqCst);
            if k < failures
                && now >= prev + interval_ms
                && last.compare_exchange(prev, now, Ordering::SeqCst, Ordering::SeqCst).is_ok()
            {
                let k = fired.fetch_add(1, Ordering::SeqCst) + 1;
                panic!("injected failure #{k} of {failures} at record {i}");
            }
            i
        })
        .name("Failure Injector")
        // One instance: once it failed, the next failure can only come from the next attempt.
        .set_parallelism(1)
        .key_by(|i: &u64| i % 16)
        .process(crate::drill::RunningCount)
        .name("Running Count")
        .discard();
    env.build_job_graph("failover demo")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(name: &str, args: &[&str], parallelism: Option<u32>) -> Result<JobGraph, ApiError> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        programs().build(&JobOrigin::builtin(name, &args, parallelism))
    }

    #[test]
    fn arguments_are_checked() {
        let g = build("wordcount", &["--events", "10"], Some(1)).unwrap();
        let origin = g.origin().expect("the origin is recorded");
        assert_eq!(origin.program, ProgramSource::Builtin("wordcount".into()));
        assert!(origin.args.iter().any(|a| a == "--output"), "the generated output is resolved: {origin:?}");
        let e = build("wordcount", &["--nope", "1"], None).unwrap_err();
        assert!(
            matches!(&e, ApiError::Program(ProgramError::Invalid(m)) if m.contains("unknown argument --nope")),
            "{e}"
        );
        assert_eq!(e.domain(), riffle_api::ErrorDomain::User);
        let e = build("wordcount", &["--events", "many"], None).unwrap_err();
        assert!(e.to_string().contains("--events"), "{e}");
        assert!(build("nexmark", &["--query=q9"], None).is_err());
        assert!(build("rm -rf", &[], None).is_err());
        assert!(build("wordcount", &["--output", "relative/path"], None).is_err());
        // Plugin origins go to the plugin loader.
        let e = programs().build(&JobOrigin::plugin("/nonexistent/lib.so", "sums", &[])).unwrap_err();
        assert!(e.to_string().contains("is refused as a plugin: cannot read it"), "{e}");
        assert_eq!(programs().list(), BuiltinPrograms::infos());
    }
}
