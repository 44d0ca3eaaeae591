//! A riffle plugin: jobs built with riffle's DataStream API, shipped as a shared library and
//! loaded by riffle (`riffle_cluster::plugin::load`). Copy this crate, keep the `riffle-api`
//! dependency on the same riffle you run, and build with the same compiler: riffle refuses a
//! plugin built against anything else.

use std::sync::atomic::{AtomicU64, Ordering};

use riffle_api::plugin::PluginRegistrar;
use riffle_api::{Configuration, JobGraph, StreamEnvironment, UserError};

/// Sums `0..n` per key `i % k` and writes `key,sum` lines to a file.
fn sums(args: &[String]) -> Result<JobGraph, UserError> {
    let [n, k, output] = args else {
        return Err("expects three arguments: <events> <keys> <output file>".into());
    };
    let n: u64 = n.parse().map_err(|_| format!("events must be a number, got '{n}'"))?;
    let k: u64 = k.parse().map_err(|_| format!("keys must be a number, got '{k}'"))?;
    if n == 0 || k == 0 {
        return Err("events and keys must be at least 1".into());
    }
    let env = StreamEnvironment::new();
    env.from_sequence(0, n - 1)
        .map(move |i| (i % k, i))
        .key_by(|p: &(u64, u64)| p.0)
        .reduce(|a: (u64, u64), b: (u64, u64)| (a.0, a.1 + b.1))
        .write_as_text(std::path::PathBuf::from(output), |p: &(u64, u64)| format!("{},{}", p.0, p.1));
    Ok(env.build_job_graph("plugin sums")?)
}

/// Subtask starts this instance of the library has seen. A static of a plugin belongs to one
/// instance: in a TaskManager process each slot loads its own instance for the job it holds and
/// keeps it across the job's restarts, and unloads it when the job gives the slot back.
static STARTS: AtomicU64 = AtomicU64::new(0);

/// Fails its first attempt on purpose, then writes how many starts this instance of the library
/// saw: 2 when the restart ran in the instance of the first attempt (as a slot keeps it), 1
/// forever (and the job fails) if every attempt got a new instance, more if other jobs shared it.
fn restarts(args: &[String]) -> Result<JobGraph, UserError> {
    let [output] = args else {
        return Err("expects one argument: <output file>".into());
    };
    let mut c = Configuration::new();
    c.set("restart-strategy", "fixed-delay")
        .set("restart-strategy.fixed-delay.attempts", "2")
        .set("restart-strategy.fixed-delay.delay", "10 ms");
    let env = StreamEnvironment::with_config(c);
    env.from_sequence(0, 0)
        .map(|_| {
            let n = STARTS.fetch_add(1, Ordering::SeqCst) + 1;
            if n == 1 {
                panic!("the first attempt fails on purpose");
            }
            n
        })
        .write_as_text(std::path::PathBuf::from(output), |n: &u64| n.to_string());
    Ok(env.build_job_graph("plugin restarts")?)
}

fn register(r: &mut dyn PluginRegistrar) {
    r.register("sums", "sums 0..n per key i % k: <events> <keys> <output file>", sums);
    r.register("restarts", "fails once, then writes the plugin instance's start count: <output file>", restarts);
}

riffle_api::export_plugin!(register);
