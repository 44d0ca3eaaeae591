//! Commands that start cluster processes: a JobManager, a TaskManager, an embedded cluster
//! serving the REST API and web UI.

use anyhow::Result;
use riffle::scenarios;
use riffle::Configuration;

/// A JobManager process (with ZooKeeper HA when configured), serving until interrupted. Highly
/// available, it stands by, leads, and after a lost leadership suspends its jobs and stands by
/// again, for as long as the process runs.
pub fn jobmanager(conf: Configuration) -> Result<()> {
    let mut cfg = riffle::MiniClusterConfig::new(0, 1)
        .with_rest()
        .with_rpc()
        .with_programs(riffle::programs())
        .with_config_registry(riffle::config_options());
    let ha = riffle_cluster::ha::HaConfig::from_config(&conf).map_err(|e| anyhow::anyhow!("{e}"))?;
    cfg.config = conf;
    if ha.zookeeper().is_some() {
        use riffle_cluster::ha::job_manager::{serve, Role};
        let never = serve(cfg, riffle::programs(), |role| match role {
            Role::Standby(n) => println!("riffle jobmanager: standby ({n}), waiting for leadership"),
            Role::Leading { leader, again } => {
                if again {
                    println!("riffle jobmanager: leading again");
                }
                serving(&leader.cluster, leader.recovered.len())
            }
            Role::Suspended(jobs) => {
                let ids: Vec<String> = jobs.iter().map(|j| j.to_string()).collect();
                println!(
                    "riffle jobmanager: leadership lost: suspended {} jobs ({}); the runtime stopped",
                    jobs.len(),
                    ids.join(", ")
                )
            }
        })?;
        match never {}
    }
    let cluster = riffle::MiniCluster::start(cfg)?;
    serving(&cluster, 0);
    scenarios::serve_until_interrupted();
    Ok(())
}

/// The line a JobManager prints once it serves.
fn serving(cluster: &riffle::MiniCluster, recovered: usize) {
    let url = cluster.rest_url().unwrap_or_default();
    let rpc = cluster.rpc_address().unwrap_or_default();
    let bound = cluster.rpc_bound_address().map(|a| a.to_string()).unwrap_or_default();
    println!(
        "riffle jobmanager: REST API and web UI at {url}, TaskManagers register at {rpc} (bound on {bound}); \
         {recovered} jobs recovered"
    );
}

/// A TaskManager process, registered at its JobManager until it ends.
pub fn taskmanager(conf: Configuration) -> Result<()> {
    let tm = riffle_cluster::taskmanager::TaskManager::start(conf, riffle::programs())?;
    println!("riffle taskmanager {}: registering at its JobManager", tm.resource_id());
    tm.join();
    Ok(())
}

/// An embedded cluster with the REST API and web UI, serving until interrupted.
pub fn serve(taskmanagers: u32, slots: u32, conf: Configuration) -> Result<()> {
    let mut cfg = riffle::MiniClusterConfig::new(taskmanagers, slots)
        .with_rest()
        .with_programs(riffle::programs())
        .with_config_registry(riffle::config_options());
    cfg.config = conf;
    let cluster = riffle::MiniCluster::start(cfg)?;
    let url = cluster.rest_url().unwrap_or_default();
    println!("riffle is serving the REST API and web UI at {url} (Ctrl-C stops it)");
    scenarios::serve_until_interrupted();
    Ok(())
}
