//! High availability against a real ZooKeeper (Debian's 3.8, started by the repository's
//! `scripts/zookeeper.sh`; `scripts/setup-tests` installs it).
//!
//! Every test starts its own server(s) on its own loopback ports and data directory, and a
//! guard stops them on drop (also when the test fails). Sessions are 2 s, so a lost leader is
//! replaced within about 2 s; every wait below has a bound.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use riffle_actors::exception_history::{ExceptionEntry, ExceptionHistory};
use riffle_cluster::ha::{
    fenced_write, leader_address, CheckpointIdCounter, CompletedCheckpointStore, ExceptionHistoryStore, Fence,
    FencedOp, HaConfig, HaError, JobGraphStore, LeaderElection, Leadership, ZkClient, ZooKeeperHaConfig,
};
use riffle_cluster::{Configuration, JobId};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

const SESSION: &str = "2 s";
/// Longest wait for anything that should happen within a session timeout or two.
const WAIT: Duration = Duration::from_secs(10);

// --- ZooKeeper servers ------------------------------------------------------------------------

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/zookeeper.sh")
}

/// Fails the test in one line when ZooKeeper is not installed.
fn require_zookeeper() {
    let ok = Command::new(script()).arg("check").output().is_ok_and(|o| o.status.success());
    assert!(ok, "ZooKeeper is not installed: run scripts/setup-tests once");
}

/// Runs `zookeeper.sh args...` under `timeout`, returning its stdout or a readable failure.
fn zk_script(args: &[&str]) -> Result<String, String> {
    let out = Command::new("timeout")
        .arg("90")
        .arg(script())
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script().display()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "zookeeper.sh {} failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish()
}

fn port_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A standalone server on a random free loopback port, stopped on drop.
struct ZkServer {
    port: u16,
    dir: TempDir,
    address: String,
}

impl ZkServer {
    fn start() -> Self {
        require_zookeeper();
        let mut last = String::new();
        for _ in 0..5 {
            let port = match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
                Ok(a) => a.port(),
                Err(e) => panic!("no free port: {e}"),
            };
            let dir = tempfile::tempdir().expect("temp dir");
            let d = dir.path().to_str().expect("utf-8 temp dir").to_string();
            let p = port.to_string();
            match zk_script(&["start", "--port", &p, "--dir", &d, "--fresh"]) {
                Ok(address) => return Self { port, dir, address },
                Err(e) => {
                    let _ = zk_script(&["stop", "--port", &p, "--dir", &d]);
                    last = e;
                }
            }
        }
        panic!("ZooKeeper did not start: {last}");
    }
}

impl Drop for ZkServer {
    fn drop(&mut self) {
        let d = self.dir.path().to_str().unwrap_or_default().to_string();
        if let Err(e) = zk_script(&["stop", "--port", &self.port.to_string(), "--dir", &d]) {
            eprintln!("{e}");
        }
    }
}

/// A 3-member ensemble (client ports base..base+2, peer ports +1000, election ports +2000),
/// stopped on drop.
struct Ensemble {
    dir: TempDir,
    base: u16,
    address: String,
}

impl Ensemble {
    fn start() -> Self {
        require_zookeeper();
        let mut last = String::new();
        for _ in 0..5 {
            let base = 15_000 + (random_u64() % 10_000) as u16;
            let ports = (0..3).flat_map(|i| [base + i, base + 1000 + i, base + 2000 + i]);
            if !ports.into_iter().all(port_free) {
                continue;
            }
            let dir = tempfile::tempdir().expect("temp dir");
            let d = dir.path().to_str().expect("utf-8 temp dir").to_string();
            match zk_script(&["ensemble", "start", "3", "--base-port", &base.to_string(), "--dir", &d, "--fresh"]) {
                Ok(address) => return Self { dir, base, address },
                Err(e) => {
                    let _ = zk_script(&["ensemble", "stop", "--dir", &d]);
                    last = e;
                }
            }
        }
        panic!("the ZooKeeper ensemble did not start: {last}");
    }

    fn dir(&self) -> String {
        self.dir.path().to_str().unwrap_or_default().to_string()
    }

    /// The member (1-based) that is ZooKeeper's own leader, asked with `srvr`.
    fn leader_member(&self) -> Option<u16> {
        (0..3u16)
            .find(|i| {
                let mode = std::net::TcpStream::connect(("127.0.0.1", self.base + i)).and_then(|mut s| {
                    s.set_read_timeout(Some(Duration::from_secs(3)))?;
                    s.write_all(b"srvr")?;
                    let mut out = String::new();
                    std::io::Read::read_to_string(&mut s, &mut out)?;
                    Ok(out)
                });
                mode.map(|m| m.contains("Mode: leader")).unwrap_or(false)
            })
            .map(|i| i + 1)
    }

    fn kill_member(&self, k: u16) {
        zk_script(&["kill-member", &k.to_string(), "--dir", &self.dir()]).expect("member killed");
    }
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        if let Err(e) = zk_script(&["ensemble", "stop", "--dir", &self.dir()]) {
            eprintln!("{e}");
        }
    }
}

// --- helpers ----------------------------------------------------------------------------------

fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "riffle_cluster=info".into()))
        .try_init();
}

fn ha_config(quorum: &str, storage: &Path, extra: &[(&str, &str)]) -> ZooKeeperHaConfig {
    let mut c = Configuration::new();
    c.set("high-availability", "zookeeper")
        .set("high-availability.zookeeper.quorum", quorum)
        .set("high-availability.storageDir", storage.to_str().expect("utf-8 dir"))
        .set("high-availability.cluster-id", "test-cluster")
        .set("high-availability.zookeeper.client.session-timeout", SESSION)
        .set("high-availability.zookeeper.client.connection-timeout", "3 s")
        .set("high-availability.zookeeper.client.retry-wait", "100 ms")
        .set("high-availability.zookeeper.client.max-retry-attempts", "4");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    HaConfig::from_config(&c).and_then(HaConfig::require_zookeeper).expect("valid HA config")
}

async fn connect(config: &ZooKeeperHaConfig) -> ZkClient {
    ZkClient::connect(config).await.expect("connected to ZooKeeper")
}

/// Polls `check` every 10 ms until it returns `Some`, at most `bound`.
async fn eventually<T>(what: &str, bound: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(start.elapsed() < bound, "timed out after {bound:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, fut).await.unwrap_or_else(|_| panic!("timed out after {WAIT:?}: {what}"))
}

fn leaders(elections: &[&LeaderElection]) -> Vec<usize> {
    elections.iter().enumerate().filter(|(_, e)| e.is_leader()).map(|(i, _)| i).collect()
}

async fn one_leader(what: &str, elections: &[&LeaderElection]) -> usize {
    eventually(what, WAIT, || match leaders(elections).as_slice() {
        [one] => Some(*one),
        _ => None,
    })
    .await
}

/// Runs `op` as `election`'s leader, again after a transient loss of leadership (a ZooKeeper
/// member going away disconnects its clients for a moment), at most [`WAIT`].
async fn as_leader<T, F, Fut>(election: &LeaderElection, what: &str, mut op: F) -> T
where
    F: FnMut(Fence) -> Fut,
    Fut: Future<Output = Result<T, HaError>>,
{
    let start = Instant::now();
    loop {
        let fence = bounded(what, election.wait_for_leadership(WAIT)).await.expect("leads");
        match op(fence).await {
            Ok(v) => return v,
            Err(e) if (matches!(e, HaError::NotLeader { .. }) || e.is_retryable()) && start.elapsed() < WAIT => {
                eprintln!("{what}: {e}; again");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

fn assert_not_leader<T: std::fmt::Debug>(r: Result<T, HaError>, what: &str) {
    match r {
        Err(HaError::NotLeader { .. }) => {}
        other => panic!("{what}: expected NotLeader, got {other:?}"),
    }
}

async fn read_node(zk: &ZkClient, path: &str) -> Vec<u8> {
    bounded("read", zk.raw().get_data(path)).await.expect("node readable").0
}

/// A loopback TCP proxy that can black-hole traffic, to cut one client off ZooKeeper
/// without closing its connection (as a network partition or a paused process would).
struct Proxy {
    addr: SocketAddr,
    blocked: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let addr = listener.local_addr().expect("proxy address");
        let upstream = upstream.to_string();
        let (blocked, rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let rx = rx.clone();
                let upstream = upstream.clone();
                conns.spawn(async move {
                    if *rx.borrow() {
                        // Partitioned: hold the connection, never answer.
                        std::future::pending::<()>().await;
                    }
                    let Ok(server) = TcpStream::connect(&upstream).await else { return };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::join!(pump(cr, sw, rx.clone()), pump(sr, cw, rx));
                });
            }
        });
        Self { addr, blocked, task }
    }

    fn address(&self) -> String {
        self.addr.to_string()
    }

    fn partition(&self, on: bool) {
        self.blocked.send_replace(on);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies bytes until EOF; once blocked, swallows everything and never forwards again.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    blocked: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if *blocked.borrow() {
            std::future::pending::<()>().await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// A log sink for checking what an operator would read.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().map(|b| b.clone()).unwrap_or_default()).to_string()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// --- tests ------------------------------------------------------------------------------------

#[tokio::test]
async fn three_contenders_elect_exactly_one_leader_and_publish_its_address() {
    init_logging();
    let server = ZkServer::start();
    let storage = tempfile::tempdir().expect("temp dir");
    let config = ha_config(&server.address, storage.path(), &[]);
    let mut clients = Vec::new();
    let mut elections = Vec::new();
    for i in 0..3 {
        let zk = connect(&config).await;
        elections.push(LeaderElection::start(&zk, &format!("jobmanager-{i}:6123")).await.expect("contending"));
        clients.push(zk);
    }
    let refs: Vec<&LeaderElection> = elections.iter().collect();
    let leader = one_leader("a leader", &refs).await;
    // Settled: still exactly one a moment later.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(leaders(&refs), vec![leader]);

    let tokens: Vec<i64> = elections.iter().map(|e| e.fencing_token()).collect();
    assert_eq!(tokens[leader], *tokens.iter().min().expect("tokens"), "the lowest node leads");
    assert_eq!(elections[leader].current(), Leadership::Leader { fencing_token: tokens[leader] });
    for (i, e) in elections.iter().enumerate().filter(|(i, _)| *i != leader) {
        assert_eq!(e.current(), Leadership::NotLeader, "contender {i}");
        assert_not_leader(e.fence(), "a non-leader's fence");
    }
    // Anyone (a TaskManager, a REST client) finds the leader's address.
    let reader = connect(&config).await;
    let info = leader_address(&reader).await.expect("readable").expect("a leader");
    assert_eq!(info.address, format!("jobmanager-{leader}:6123"));
    assert_eq!(info.fencing_token, tokens[leader]);
    assert!(elections[leader].node_path().starts_with("/riffle/test-cluster/leader-latch/"));
}

#[tokio::test]
async fn leadership_moves_on_when_the_leader_resigns_or_drops_its_client() {
    init_logging();
    let server = ZkServer::start();
    let storage = tempfile::tempdir().expect("temp dir");
    let config = ha_config(&server.address, storage.path(), &[]);
    let reader = connect(&config).await;
    let mut contenders: Vec<Option<(ZkClient, LeaderElection)>> = Vec::new();
    for i in 0..3 {
        let zk = connect(&config).await;
        let e = LeaderElection::start(&zk, &format!("jm-{i}")).await.expect("contending");
        contenders.push(Some((zk, e)));
    }
    let live = |c: &[Option<(ZkClient, LeaderElection)>]| -> Vec<usize> {
        c.iter().enumerate().filter(|(_, c)| c.as_ref().is_some_and(|(_, e)| e.is_leader())).map(|(i, _)| i).collect()
    };
    let first = eventually("a first leader", WAIT, || match live(&contenders).as_slice() {
        [one] => Some(*one),
        _ => None,
    })
    .await;

    // 1. The leader resigns: another takes over at once (no session timeout involved).
    let (_zk, election) = contenders[first].take().expect("first leader");
    let start = Instant::now();
    bounded("resign", election.resign()).await.expect("resigned");
    let second = eventually("a second leader", Duration::from_secs(2), || match live(&contenders).as_slice() {
        [one] => Some(*one),
        _ => None,
    })
    .await;
    let handover = start.elapsed();
    assert_ne!(second, first);
    let info = leader_address(&reader).await.expect("readable").expect("a leader");
    assert_eq!(info.address, format!("jm-{second}"));

    // 2. The new leader drops its election and client (a JobManager shutting down).
    let (zk, election) = contenders[second].take().expect("second leader");
    let start = Instant::now();
    drop(election);
    drop(zk);
    let third = eventually("a third leader", Duration::from_secs(2), || match live(&contenders).as_slice() {
        [one] => Some(*one),
        _ => None,
    })
    .await;
    let dropped_handover = start.elapsed();
    assert!(third != first && third != second);
    let info = leader_address(&reader).await.expect("readable").expect("a leader");
    assert_eq!(info.address, format!("jm-{third}"));
    eprintln!("handover after resign: {handover:?}, after drop: {dropped_handover:?}");
}

#[tokio::test]
async fn a_deposed_leaders_fenced_writes_fail_while_the_new_leaders_succeed() {
    init_logging();
    let server = ZkServer::start();
    let storage = tempfile::tempdir().expect("temp dir");
    let config = ha_config(&server.address, storage.path(), &[]);
    let (zk_a, zk_b, admin) = (connect(&config).await, connect(&config).await, connect(&config).await);
    let a = LeaderElection::start(&zk_a, "jm-a").await.expect("a contends");
    let fence_a = bounded("a leads", a.wait_for_leadership(WAIT)).await.expect("a leads");
    let b = LeaderElection::start(&zk_b, "jm-b").await.expect("b contends");

    let target = "/riffle/test-cluster/fenced-target";
    admin
        .raw()
        .mkdir(target, &zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all()))
        .await
        .expect("target node");
    fenced_write(&zk_a, &fence_a, &[FencedOp::SetData { path: target, data: b"a-1", version: None }])
        .await
        .expect("the leader writes");
    assert_eq!(read_node(&admin, target).await, b"a-1");

    // Depose a: an operator (or a bug) deletes its election node while its session lives on.
    let stale = Fence::new(fence_a.node_path(), fence_a.token());
    admin.raw().delete(fence_a.node_path(), None).await.expect("node deleted");
    let fence_b = bounded("b leads", b.wait_for_leadership(WAIT)).await.expect("b leads");
    assert!(fence_b.token() > fence_a.token(), "fencing tokens grow");

    // The deposed leader's writes are refused: by its local view, and by ZooKeeper for a fence
    // that carries no local view (as a write racing the deposition would be).
    assert_not_leader(
        fenced_write(&zk_a, &fence_a, &[FencedOp::SetData { path: target, data: b"a-2", version: None }]).await,
        "deposed leader, local check",
    );
    assert_not_leader(
        fenced_write(&zk_a, &stale, &[FencedOp::SetData { path: target, data: b"a-3", version: None }]).await,
        "deposed leader, ZooKeeper's check",
    );
    let mut rx = a.leadership();
    let closed = bounded("a's election ends", async { while rx.changed().await.is_ok() {} });
    closed.await;
    assert_eq!(a.current(), Leadership::NotLeader);
    // The same goes for the counter and the stores.
    let job = JobId::generate();
    assert_not_leader(CheckpointIdCounter::new(&zk_a, job).get_and_increment(&stale).await, "stale counter");
    assert_not_leader(JobGraphStore::new(&zk_a).put(&stale, job, b"graph").await, "stale job graph");

    // The new leader's write goes through.
    fenced_write(&zk_b, &fence_b, &[FencedOp::SetData { path: target, data: b"b-1", version: None }])
        .await
        .expect("the new leader writes");
    assert_eq!(read_node(&admin, target).await, b"b-1");
    assert_eq!(CheckpointIdCounter::new(&zk_b, job).get_and_increment(&fence_b).await.expect("counter"), 1);
    // No file of the refused job graph put was left behind.
    let jobgraph_files = storage.path().join("test-cluster/jobgraphs");
    let leftovers = std::fs::read_dir(&jobgraph_files).map(|d| d.count()).unwrap_or(0);
    assert_eq!(leftovers, 0, "files in {}", jobgraph_files.display());
}

#[tokio::test]
async fn a_partitioned_leader_steps_down_before_its_successor_takes_over() {
    init_logging();
    let server = ZkServer::start();
    let storage = tempfile::tempdir().expect("temp dir");
    let config = ha_config(&server.address, storage.path(), &[]);
    let proxy = Proxy::start(&server.address).await;
    let config_a =
        ha_config(&proxy.address(), storage.path(), &[("high-availability.zookeeper.client.max-retry-attempts", "0")]);
    let zk_a = connect(&config_a).await;
    let a = LeaderElection::start(&zk_a, "jm-a").await.expect("a contends");
    let fence_a = bounded("a leads", a.wait_for_leadership(WAIT)).await.expect("a leads");
    let zk_b = connect(&config).await;
    let b = LeaderElection::start(&zk_b, "jm-b").await.expect("b contends");
    let job = JobId::generate();
    let counter_b = CheckpointIdCounter::new(&zk_b, job);
    assert_eq!(CheckpointIdCounter::new(&zk_a, job).get_and_increment(&fence_a).await.expect("a counts"), 1);

    // Cut a off without closing its connection: it cannot know whether its session lives.
    let start = Instant::now();
    proxy.partition(true);
    let (mut a_rx, mut b_rx) = (a.leadership(), b.leadership());
    bounded("a steps down", a_rx.wait_for(|l| !l.is_leader())).await.expect("a's channel open");
    let a_down = start.elapsed();
    assert!(!b.is_leader(), "b must not lead while a may still believe it leads");
    bounded("b takes over", b_rx.wait_for(Leadership::is_leader)).await.expect("b's channel open");
    let b_up = start.elapsed();
    assert!(a_down < b_up, "a stepped down at {a_down:?}, b took over at {b_up:?}");

    // a's writes are refused at once (it knows it is disconnected); ZooKeeper refuses a fence
    // without local view, as its node is gone with the expired session.
    let refused = Instant::now();
    assert_not_leader(CheckpointIdCounter::new(&zk_a, job).get_and_increment(&fence_a).await, "partitioned leader");
    assert!(refused.elapsed() < Duration::from_millis(100), "refused locally, without waiting");
    let stale = Fence::new(fence_a.node_path(), fence_a.token());
    assert_not_leader(counter_b.get_and_increment(&stale).await, "expired leader's fence");
    let fence_b = b.fence().expect("b leads");
    assert_eq!(counter_b.get_and_increment(&fence_b).await.expect("b counts"), 2);

    // When the partition heals, a learns that its session expired; its election is over.
    proxy.partition(false);
    bounded("a's election ends", async { while a_rx.changed().await.is_ok() {} }).await;
    assert_not_leader(CheckpointIdCounter::new(&zk_a, job).get_and_increment(&stale).await, "expired session");
    assert_eq!(counter_b.get().await.expect("readable"), 3);
    eprintln!("partitioned leader stepped down after {a_down:?}; successor led after {b_up:?}");
}

#[tokio::test]
async fn the_checkpoint_counter_gives_unique_increasing_ids_to_concurrent_incrementers() {
    init_logging();
    let server = ZkServer::start();
    let storage = tempfile::tempdir().expect("temp dir");
    let config = ha_config(&server.address, storage.path(), &[]);
    let zk = connect(&config).await;
    let election = LeaderElection::start(&zk, "jm").await.expect("contending");
    let fence = bounded("leadership", election.wait_for_leadership(WAIT)).await.expect("leads");
    let job = JobId::generate();
    // Two sessions, so the compare-and-sets really race.
    let (zk1, zk2) = (connect(&config).await, connect(&config).await);
    let (c1, c2) = (CheckpointIdCounter::new(&zk1, job), CheckpointIdCounter::new(&zk2, job));
    assert_eq!(c1.get().await.expect("readable"), 1);
    const N: usize = 40;
    let run = |c: CheckpointIdCounter, fence: Fence| async move {
        let mut ids = Vec::with_capacity(N);
        for _ in 0..N {
            ids.push(c.get_and_increment(&fence).await.expect("incremented"));
        }
        ids
    };
    let start = Instant::now();
    let (ids1, ids2) =
        bounded("increments", async { tokio::join!(run(c1.clone(), fence.clone()), run(c2, fence.clone())) }).await;
    let took = start.elapsed();
    for ids in [&ids1, &ids2] {
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "increasing per incrementer: {ids:?}");
    }
    let mut all: Vec<u64> = ids1.iter().chain(&ids2).copied().collect();
    all.sort_unstable();
    let expected: Vec<u64> = (1..=2 * N as u64).collect();
    assert_eq!(all, expected, "unique, and without gaps when no answer was lost");
    assert_eq!(c1.get().await.expect("readable"), 2 * N as u64 + 1);
    // A new counter object (a new leader) continues where the old one stopped.
    assert_eq!(CheckpointIdCounter::new(&zk, job).get_and_increment(&fence).await.expect("next"), 2 * N as u64 + 1);
    // A job restored from checkpoint 500 continues after it; one restored from an older
    // checkpoint never goes back.
    assert_eq!(c1.get_and_increment_at_least(&fence, 501).await.expect("next"), 501);
    assert_eq!(c1.get_and_increment_at_least(&fence, 3).await.expect("next"), 502);
    c1.remove(&fence).await.expect("removed");
    assert_eq!(c1.get().await.expect("readable"), 1);
    eprintln!("{} increments from two sessions in {took:?}", 2 * N);
}

#[tokio::test]
async fn stores_round_trip_and_a_new_leader_recovers_job_graphs_and_latest_checkpoints() {
    init_logging();
    let server = ZkServer::start();
    let storage = tempfile::tempdir().expect("temp dir");
    let config = ha_config(&server.address, storage.path(), &[]);
    let (job1, job2) = (JobId::generate(), JobId::generate());
    {
        let zk = connect(&config).await;
        let election = LeaderElection::start(&zk, "jm-old").await.expect("contending");
        let fence = bounded("leadership", election.wait_for_leadership(WAIT)).await.expect("leads");
        let (graphs, checkpoints) = (JobGraphStore::new(&zk), CompletedCheckpointStore::new(&zk));
        graphs.put(&fence, job1, b"graph of job 1").await.expect("put graph 1");
        graphs.put(&fence, job2, b"graph of job 2, first version").await.expect("put graph 2");
        graphs.put(&fence, job2, b"graph of job 2, second version").await.expect("replace graph 2");
        assert_eq!(graphs.get(job2).await.expect("get").as_deref(), Some(&b"graph of job 2, second version"[..]));
        for id in 1..=3u64 {
            checkpoints
                .put(&fence, job1, id, format!("checkpoint {id} of job 1").as_bytes())
                .await
                .expect("put checkpoint");
        }
        checkpoints.put(&fence, job2, 7, b"checkpoint 7 of job 2").await.expect("put checkpoint");
        checkpoints.remove(&fence, job1, 1).await.expect("subsumed checkpoint removed");
        assert_eq!(checkpoints.list(job1).await.expect("list"), vec![2, 3]);
        assert_eq!(checkpoints.get(job1, 1).await.expect("get"), None);
        // The replaced job graph's file and the removed checkpoint's file are gone.
        let count = |p: PathBuf| std::fs::read_dir(&p).map(|d| d.count()).unwrap_or(0);
        assert_eq!(count(storage.path().join("test-cluster/jobgraphs")), 2);
        assert_eq!(count(storage.path().join(format!("test-cluster/checkpoints/{job1}"))), 2);
        // The old leader goes away (client and election dropped).
    }

    // A new leader, on a new session, finds everything.
    let zk = connect(&config).await;
    let election = LeaderElection::start(&zk, "jm-new").await.expect("contending");
    let fence = bounded("leadership", election.wait_for_leadership(WAIT)).await.expect("leads");
    let (graphs, checkpoints) = (JobGraphStore::new(&zk), CompletedCheckpointStore::new(&zk));
    let mut expected_jobs = vec![job1, job2];
    expected_jobs.sort();
    assert_eq!(graphs.list().await.expect("list"), expected_jobs);
    assert_eq!(graphs.get(job1).await.expect("get").as_deref(), Some(&b"graph of job 1"[..]));
    assert_eq!(graphs.get(job2).await.expect("get").as_deref(), Some(&b"graph of job 2, second version"[..]));
    let latest = checkpoints.latest(job1).await.expect("latest");
    assert_eq!(latest, Some((3, b"checkpoint 3 of job 1".to_vec())));
    assert_eq!(checkpoints.latest(job2).await.expect("latest").map(|(id, _)| id), Some(7));
    assert_eq!(checkpoints.latest(JobId::generate()).await.expect("latest"), None);
    assert_eq!(graphs.get(JobId::generate()).await.expect("get"), None);

    // It finishes job 2: its graph and checkpoints go, files included.
    graphs.remove(&fence, job2).await.expect("graph removed");
    checkpoints.remove_job(&fence, job2).await.expect("checkpoints removed");
    assert_eq!(graphs.list().await.expect("list"), vec![job1]);
    assert_eq!(checkpoints.list(job2).await.expect("list"), Vec::<u64>::new());
    assert!(!storage.path().join(format!("test-cluster/checkpoints/{job2}")).exists());
    graphs.remove(&fence, job2).await.expect("removing twice is fine");
}

#[tokio::test]
async fn exception_histories_are_stored_bounded_fenced_and_removed_with_the_job() {
    init_logging();
    let server = ZkServer::start();
    let storage = tempfile::tempdir().expect("temp dir");
    let config = ha_config(&server.address, storage.path(), &[]);
    let (zk_a, zk_b, admin) = (connect(&config).await, connect(&config).await, connect(&config).await);
    let a = LeaderElection::start(&zk_a, "jm-a").await.expect("a contends");
    let fence_a = bounded("a leads", a.wait_for_leadership(WAIT)).await.expect("a leads");
    let b = LeaderElection::start(&zk_b, "jm-b").await.expect("b contends");
    let (store_a, store_b) = (ExceptionHistoryStore::new(&zk_a), ExceptionHistoryStore::new(&zk_b));
    let job = JobId::generate();
    let entry = |i: i64, root: bool| ExceptionEntry {
        timestamp_ms: i,
        exception: format!("failure {i}: {}", "x".repeat(100)),
        causes: vec![format!("failure {i}"), "x".repeat(100)],
        task_name: Some("Map".into()),
        subtask_index: Some(1),
        location: Some("tm-1".into()),
        is_root_cause: root,
        attempt: i as u32,
    };
    let files = storage.path().join("test-cluster/exception-history");
    let count = || std::fs::read_dir(&files).map(|d| d.count()).unwrap_or(0);
    assert_eq!(store_a.get(job).await.expect("get"), None, "no history yet");

    // A history bounded at 4 after 30 failures, its first root cause kept; each put replaces
    // the previous one (file included).
    let mut history = ExceptionHistory::new(4);
    history.push(entry(0, true));
    for i in 1..30 {
        history.push(entry(i, i % 7 == 0));
    }
    store_a.put(&fence_a, job, &history.snapshot()).await.expect("put");
    history.push(entry(30, false));
    store_a.put(&fence_a, job, &history.snapshot()).await.expect("replace");
    assert_eq!(count(), 1, "the replaced history's file is gone");
    let stored = store_a.get(job).await.expect("get").expect("a history");
    assert_eq!(stored, history.snapshot());
    assert_eq!(stored.entries.len(), 4);
    assert!(stored.truncated);
    assert_eq!(stored.entries.first().map(|e| e.timestamp_ms), Some(0), "the first root cause is kept");

    // a is deposed: neither it (local view) nor a fence without local view (ZooKeeper's
    // check) can write or remove the history any more, and no file of theirs is left.
    let stale = Fence::new(fence_a.node_path(), fence_a.token());
    admin.raw().delete(fence_a.node_path(), None).await.expect("node deleted");
    let fence_b = bounded("b leads", b.wait_for_leadership(WAIT)).await.expect("b leads");
    let mut forged = ExceptionHistory::new(4);
    forged.push(entry(99, true));
    assert_not_leader(store_a.put(&fence_a, job, &forged.snapshot()).await, "deposed leader, local check");
    assert_not_leader(store_a.put(&stale, job, &forged.snapshot()).await, "deposed leader, ZooKeeper's check");
    assert_not_leader(store_a.remove(&stale, job).await, "deposed leader removes");
    assert_eq!(count(), 1, "no file of a refused write is left");

    // The new leader reads the same history and continues it, bounded by its own size.
    let read = store_b.get(job).await.expect("get").expect("the history survived");
    assert_eq!(read, history.snapshot());
    let mut continued = ExceptionHistory::restore(3, read);
    assert_eq!(continued.page(0, 10).entries.last().map(|e| e.timestamp_ms), Some(0));
    continued.push(entry(31, true));
    store_b.put(&fence_b, job, &continued.snapshot()).await.expect("the new leader writes");
    let read = store_b.get(job).await.expect("get").expect("a history");
    assert_eq!(read.entries.len(), 3);
    assert_eq!(read.entries.first().map(|e| e.timestamp_ms), Some(0));
    assert_eq!(read.entries.last().map(|e| e.timestamp_ms), Some(31));
    assert_eq!(count(), 1);

    // The job ends: its history goes, file included; nothing to remove is fine.
    store_b.remove(&fence_b, job).await.expect("removed");
    assert_eq!(store_b.get(job).await.expect("get"), None);
    assert_eq!(count(), 0);
    store_b.remove(&fence_b, job).await.expect("removing twice is fine");
}

#[tokio::test]
async fn corrupt_or_missing_state_is_a_clear_error() {
    init_logging();
    let server = ZkServer::start();
    let storage = tempfile::tempdir().expect("temp dir");
    let config = ha_config(&server.address, storage.path(), &[]);
    let zk = connect(&config).await;
    let election = LeaderElection::start(&zk, "jm").await.expect("contending");
    let fence = bounded("leadership", election.wait_for_leadership(WAIT)).await.expect("leads");
    let (graphs, checkpoints) = (JobGraphStore::new(&zk), CompletedCheckpointStore::new(&zk));
    let job = JobId::generate();
    graphs.put(&fence, job, b"a job graph").await.expect("put");
    checkpoints.put(&fence, job, 1, b"checkpoint one").await.expect("put");
    let file_of = |dir: PathBuf| -> PathBuf {
        let entry = std::fs::read_dir(&dir).expect("dir").flatten().next().expect("one file");
        entry.path()
    };
    let graph_file = file_of(storage.path().join("test-cluster/jobgraphs"));

    // Same length, different bytes: the checksum catches it.
    std::fs::write(&graph_file, b"A job graph").expect("overwrite");
    let err = graphs.get(job).await.expect_err("corrupt");
    assert!(matches!(err, HaError::Corrupt { .. }), "{err}");
    assert!(
        err.to_string().contains(graph_file.to_str().expect("utf-8")) && err.to_string().contains("checksum"),
        "{err}"
    );
    // Truncated.
    std::fs::write(&graph_file, b"a job").expect("truncate");
    let err = graphs.get(job).await.expect_err("truncated");
    assert!(err.to_string().contains("5 bytes, expected 11"), "{err}");
    assert!(!err.is_retryable());
    // Missing.
    let checkpoint_file = file_of(storage.path().join(format!("test-cluster/checkpoints/{job}")));
    std::fs::remove_file(&checkpoint_file).expect("delete");
    let err = checkpoints.latest(job).await.expect_err("missing");
    assert!(matches!(err, HaError::MissingFile { .. }), "{err}");
    assert!(err.to_string().contains("does not exist"), "{err}");
    // A pointer that is not one.
    let node = zk.paths().job_graph(job);
    zk.raw().set_data(&node, b"\xc1 garbage", None).await.expect("set");
    let err = graphs.get(job).await.expect_err("corrupt pointer");
    assert!(matches!(err, HaError::Corrupt { .. }) && err.to_string().contains(&node), "{err}");
    // A counter that is not one.
    let counter = CheckpointIdCounter::new(&zk, job);
    counter.get_and_increment(&fence).await.expect("created");
    zk.raw().set_data(counter.path(), b"xyz", None).await.expect("set");
    let err = counter.get_and_increment(&fence).await.expect_err("corrupt counter");
    assert!(matches!(err, HaError::Corrupt { .. }) && err.to_string().contains("8 bytes"), "{err}");
    // A put replaces a corrupt pointer.
    graphs.put(&fence, job, b"a new job graph").await.expect("put over a corrupt pointer");
    assert_eq!(graphs.get(job).await.expect("get").as_deref(), Some(&b"a new job graph"[..]));
}

#[tokio::test]
async fn an_unreachable_quorum_fails_clearly_within_its_timeout() {
    let storage = tempfile::tempdir().expect("temp dir");
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || sink.clone()).finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // Nothing listens: refused at once, retried with backoff (100, 200 ms), then given up.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
    let quorum = format!("127.0.0.1:{closed}");
    let config = ha_config(
        &quorum,
        storage.path(),
        &[
            ("high-availability.zookeeper.client.connection-timeout", "1 s"),
            ("high-availability.zookeeper.client.max-retry-attempts", "2"),
        ],
    );
    let start = Instant::now();
    let err = bounded("connect", ZkClient::connect(&config)).await.expect_err("nothing there");
    let took = start.elapsed();
    assert!(matches!(err, HaError::Unreachable { attempts: 3, .. }), "{err}");
    assert!(err.to_string().contains(&quorum) && err.is_retryable(), "{err}");
    assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(4), "took {took:?}");
    let log = captured.text();
    let warnings = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains(&format!("could not connect to ZooKeeper {quorum}")))
        .count();
    assert_eq!(warnings, 3, "one warning per failed attempt naming the quorum:\n{log}");
    assert!(log.contains("attempt 1/3") && log.contains("giving up"), "{log}");

    // Something accepts connections but never answers: each attempt still ends in time.
    let mute = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let quorum = mute.local_addr().expect("address").to_string();
    let config = ha_config(
        &quorum,
        storage.path(),
        &[
            ("high-availability.zookeeper.client.connection-timeout", "1 s"),
            ("high-availability.zookeeper.client.max-retry-attempts", "1"),
        ],
    );
    let start = Instant::now();
    let err = bounded("connect", ZkClient::connect(&config)).await.expect_err("no answer");
    let took = start.elapsed();
    assert!(matches!(err, HaError::Unreachable { attempts: 2, .. }), "{err}");
    assert!(err.to_string().contains(&quorum), "{err}");
    // Each attempt ends at the client's own connection bound or at connection-timeout (1 s).
    assert!(took >= Duration::from_millis(500) && took < Duration::from_secs(4), "took {took:?}");
    drop(mute);
    eprintln!("unreachable quorum reported after {took:?}");
}

#[tokio::test]
async fn a_three_member_ensemble_keeps_electing_and_writing_with_one_member_killed() {
    init_logging();
    let ensemble = Ensemble::start();
    let storage = tempfile::tempdir().expect("temp dir");
    let config = ha_config(&ensemble.address, storage.path(), &[]);
    let (zk_a, zk_b) = (connect(&config).await, connect(&config).await);
    let a = LeaderElection::start(&zk_a, "jm-a").await.expect("a contends");
    let fence_a = bounded("a leads", a.wait_for_leadership(WAIT)).await.expect("a leads");
    let b = LeaderElection::start(&zk_b, "jm-b").await.expect("b contends");
    let job = JobId::generate();
    let (counter, graphs, checkpoints) =
        (CheckpointIdCounter::new(&zk_a, job), JobGraphStore::new(&zk_a), CompletedCheckpointStore::new(&zk_a));
    assert_eq!(counter.get_and_increment(&fence_a).await.expect("count"), 1);
    graphs.put(&fence_a, job, b"graph").await.expect("graph");
    checkpoints.put(&fence_a, job, 1, b"checkpoint 1").await.expect("checkpoint");

    // Kill ZooKeeper's own leader (the harder case: the ensemble elects a new one). Every
    // client is disconnected for a moment: the contender steps down while it cannot tell
    // whether its session lives, and leads again on the same session (its node survived).
    let member = ensemble.leader_member().expect("the ensemble has a leader");
    let start = Instant::now();
    ensemble.kill_member(member);
    let id = as_leader(&a, "count after the kill", |f| {
        let counter = counter.clone();
        async move { counter.get_and_increment(&f).await }
    })
    .await;
    assert!(id >= 2, "ids never repeat: {id}");
    as_leader(&a, "checkpoint after the kill", |f| {
        let checkpoints = checkpoints.clone();
        async move { checkpoints.put(&f, job, 2, b"checkpoint 2").await }
    })
    .await;
    let recovered = start.elapsed();
    assert_eq!(a.fence().expect("a leads").token(), fence_a.token(), "same session, same node");
    assert!(!b.is_leader());

    // Elections still work: a new contender joins, the leader resigns, the next one leads.
    let zk_c = connect(&config).await;
    let c = LeaderElection::start(&zk_c, "jm-c").await.expect("c contends");
    let start = Instant::now();
    bounded("a resigns", a.resign()).await.expect("resigned");
    let fence_b = bounded("b leads", b.wait_for_leadership(Duration::from_secs(2))).await.expect("b leads");
    let handover = start.elapsed();
    assert!(!c.is_leader());
    assert_eq!(leader_address(&zk_c).await.expect("readable").map(|i| i.address), Some("jm-b".to_string()));
    let counter_b = CheckpointIdCounter::new(&zk_b, job);
    assert!(counter_b.get_and_increment(&fence_b).await.expect("count") > id);
    let store_b = CompletedCheckpointStore::new(&zk_b);
    assert_eq!(store_b.latest(job).await.expect("latest"), Some((2, b"checkpoint 2".to_vec())));
    assert_eq!(JobGraphStore::new(&zk_b).get(job).await.expect("graph").as_deref(), Some(&b"graph"[..]));
    eprintln!("member {member} killed: leader writing again after {recovered:?}; handover after resign {handover:?}");
}
