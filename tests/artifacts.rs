//! Plugin libraries reach TaskManagers through their artifact cache: a TaskManager fetches a
//! job's library from the JobManager once, stores it under its SHA-256, builds the job from
//! that copy, and reuses it for the next job of the same library.

use std::path::{Path, PathBuf};

mod common;

use common::{sums_totals, template_plugin};
use std::sync::Arc;
use std::time::{Duration, Instant};

use riffle::{Configuration, JobOrigin, JobStatus, MiniCluster, MiniClusterConfig, ProgramSource, Programs};
use riffle_cluster::plugin::LoadedPlugins;
use riffle_cluster::taskmanager::TaskManager;

#[test]
fn a_task_manager_fetches_a_plugin_library_once_into_its_cache_and_builds_from_it() {
    let dir = tempfile::tempdir().unwrap();
    // The JobManager's copy, somewhere the TaskManager is not allowed to read from.
    let upload = dir.path().join("upload");
    std::fs::create_dir_all(&upload).unwrap();
    let lib = upload.join("sums.so");
    std::fs::copy(template_plugin(), &lib).unwrap();
    let mut cfg = MiniClusterConfig::new(0, 1).with_rpc();
    cfg.config.set("jobmanager.rpc.address", "127.0.0.1").set("jobmanager.rpc.port", "0");
    let jm = MiniCluster::start(cfg).unwrap();
    let (host, port) = jm.rpc_address().unwrap().rsplit_once(':').map(|(h, p)| (h.to_string(), p.to_string())).unwrap();
    let blob = dir.path().join("blob");
    let plugins = Arc::new(LoadedPlugins::default());
    let cache = blob.clone();
    let tm_plugins = plugins.clone();
    let programs: Arc<dyn Programs> = Arc::new(move |o: &JobOrigin| match &o.program {
        ProgramSource::Plugin { path, .. } if Path::new(path).starts_with(&cache) => tm_plugins.build(o),
        other => Err(riffle::ProgramError::Invalid(format!("not from the artifact cache: {other:?}")).into()),
    });
    let mut c = Configuration::new();
    c.set("jobmanager.rpc.address", &host)
        .set("jobmanager.rpc.port", &port)
        .set("taskmanager.resource-id", "tm-blob")
        .set("taskmanager.numberOfTaskSlots", "2")
        .set("blob.storage.directory", blob.display().to_string());
    let tm = TaskManager::start(c, programs).unwrap();
    tm.wait_registered(Duration::from_secs(10)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while jm.slot_report().unwrap().total < 2 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    let jm_plugins = LoadedPlugins::default();
    let mut modified = None;
    for round in 0..2 {
        let out = dir.path().join(format!("sums-{round}.txt"));
        let args = ["100".to_string(), "3".to_string(), out.display().to_string()];
        let graph = jm_plugins.build(&JobOrigin::plugin(lib.to_str().unwrap(), "sums", &args)).unwrap();
        let r = jm.submit(graph).unwrap().wait(Some(Duration::from_secs(60))).unwrap();
        assert_eq!(r.status, JobStatus::Finished, "{:?}", r.error);
        assert_eq!(sums_totals(&out), [(0, 1683), (1, 1617), (2, 1650)]);
        let cached: Vec<PathBuf> =
            std::fs::read_dir(&blob).unwrap().flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
        assert_eq!(cached.len(), 1, "{cached:?}");
        let name = cached[0].file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(name, format!("{}.so", riffle_cluster::artifacts::digest(&std::fs::read(&lib).unwrap())));
        let m = std::fs::metadata(&cached[0]).unwrap().modified().unwrap();
        // The second job finds the library in the cache: not fetched (rewritten) again.
        assert!(modified.is_none_or(|prev| prev == m));
        modified = Some(m);
    }
    drop(tm);
}

fn start_cluster(dir: &Path, slots: u32) -> (MiniCluster, TaskManager, PathBuf) {
    let mut cfg = MiniClusterConfig::new(0, 1).with_rpc();
    cfg.config.set("jobmanager.rpc.address", "127.0.0.1").set("jobmanager.rpc.port", "0");
    let jm = MiniCluster::start(cfg).unwrap();
    let (host, port) = jm.rpc_address().unwrap().rsplit_once(':').map(|(h, p)| (h.to_string(), p.to_string())).unwrap();
    let blob = dir.join("blob");
    let programs: Arc<dyn Programs> = Arc::new(LoadedPlugins::default());
    let mut c = Configuration::new();
    c.set("jobmanager.rpc.address", &host)
        .set("jobmanager.rpc.port", &port)
        .set("taskmanager.resource-id", "tm-slots")
        .set("taskmanager.numberOfTaskSlots", slots.to_string())
        .set("blob.storage.directory", blob.display().to_string());
    let tm = TaskManager::start(c, programs).unwrap();
    tm.wait_registered(Duration::from_secs(10)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while jm.slot_report().unwrap().total < slots {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    (jm, tm, blob)
}

#[test]
fn a_slot_keeps_its_plugin_instance_across_restarts_and_the_next_job_gets_a_fresh_one() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("restarts.so");
    std::fs::copy(template_plugin(), &lib).unwrap();
    let (jm, tm, blob) = start_cluster(dir.path(), 1);
    let jm_plugins = LoadedPlugins::default();
    for round in 0..2 {
        let out = dir.path().join(format!("starts-{round}.txt"));
        let origin = JobOrigin::plugin(lib.to_str().unwrap(), "restarts", &[out.display().to_string()]);
        let graph = jm_plugins.build(&origin).unwrap();
        let r = jm.submit(graph).unwrap().wait(Some(Duration::from_secs(60))).unwrap();
        // The first attempt fails on purpose; the restart in the same slot sees the instance's
        // count of 1 and writes 2. A second job must not see the first one's statics (3).
        assert_eq!(r.status, JobStatus::Finished, "round {round}: {:?}", r.error);
        assert_eq!(std::fs::read_to_string(&out).unwrap().trim(), "2", "round {round}");
        // The job gave its slot back: the slot's instance is unloaded and its copy deleted.
        let slots_dir = blob.join("slots");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_dir(&slots_dir).map(|d| d.count()).unwrap_or(0) > 0 {
            assert!(Instant::now() < deadline, "the slot's copy of the library is still there");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    drop(tm);
}

/// The embedded cluster (`riffle serve`, the MiniCluster) keeps per-slot plugin instances as a
/// TaskManager process does: the restart runs in the slot's instance (2), and the next job gets
/// a fresh one instead of the first job's statics (which would write 3).
#[test]
fn embedded_slots_keep_their_plugin_instance_across_restarts_and_the_next_job_gets_a_fresh_one() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("restarts-embedded.so");
    std::fs::copy(template_plugin(), &lib).unwrap();
    let mc = MiniCluster::start(MiniClusterConfig::new(1, 1)).unwrap();
    let jm_plugins = LoadedPlugins::default();
    for round in 0..2 {
        let out = dir.path().join(format!("embedded-starts-{round}.txt"));
        let origin = JobOrigin::plugin(lib.to_str().unwrap(), "restarts", &[out.display().to_string()]);
        let graph = jm_plugins.build(&origin).unwrap();
        let r = mc.submit(graph).unwrap().wait(Some(Duration::from_secs(60))).unwrap();
        assert_eq!(r.status, JobStatus::Finished, "round {round}: {:?}", r.error);
        assert_eq!(std::fs::read_to_string(&out).unwrap().trim(), "2", "round {round}");
    }
}
