//! Commands that start cluster processes: a JobManager, a TaskManager, an embedded cluster
//! serving the REST API and web UI.

use anyhow::Result;
use riffle::scenarios;
use riffle::Configuration;

/// A JobManager process (with ZooKeeper HA when configured), serving until interrupted.
pub fn jobmanager(conf: Configuration) -> Result<()> {
    let mut cfg = riffle::MiniClusterConfig::new(0, 1).with_rest().with_rpc().with_programs(riffle::programs());
    let ha = riffle_cluster::ha::HaConfig::from_config(&conf).map_err(|e| anyhow::anyhow!("{e}"))?;
    cfg.config = conf;
    let (cluster, recovered) = if ha.zookeeper().is_some() {
        let leading = riffle_cluster::ha::job_manager::lead(cfg, riffle::programs(), |n| {
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
    Ok(())
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
    let mut cfg = riffle::MiniClusterConfig::new(taskmanagers, slots).with_rest().with_programs(riffle::programs());
    cfg.config = conf;
    let cluster = riffle::MiniCluster::start(cfg)?;
    let url = cluster.rest_url().unwrap_or_default();
    println!("riffle is serving the REST API and web UI at {url} (Ctrl-C stops it)");
    scenarios::serve_until_interrupted();
    Ok(())
}
