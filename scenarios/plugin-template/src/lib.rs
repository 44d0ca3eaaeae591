//! A riffle plugin: jobs built with riffle's DataStream API, shipped as a shared library and
//! loaded by riffle (`riffle_cluster::plugin::load`). Copy this crate, keep the `riffle-api`
//! dependency on the same riffle you run, and build with the same compiler: riffle refuses a
//! plugin built against anything else.

use riffle_api::plugin::PluginRegistrar;
use riffle_api::{JobGraph, StreamEnvironment};

/// Sums `0..n` per key `i % k` and writes `key,sum` lines to a file.
fn sums(args: &[String]) -> Result<JobGraph, String> {
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
    env.build_job_graph("plugin sums").map_err(|e| e.to_string())
}

fn register(r: &mut dyn PluginRegistrar) {
    r.register("sums", "sums 0..n per key i % k: <events> <keys> <output file>", sums);
}

riffle_api::export_plugin!(register);
