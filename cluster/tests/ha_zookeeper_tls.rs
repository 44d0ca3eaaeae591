//! High availability over TLS against a real ZooKeeper (Debian's 3.8): the test makes its own
//! CA, server and client certificates (`scripts/zookeeper.sh tls-certs`, openssl) and starts a
//! server whose `secureClientPort` (Netty, PEM key and trust stores, `ssl.clientAuth=need`)
//! is on a random loopback port (`scripts/zookeeper.sh start --secure-port`). Every wait has a
//! bound; the server is stopped on drop.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use riffle_api::ErrorDomain;
use riffle_cluster::ha::{
    leader_address, HaConfig, HaError, JobGraphStore, LeaderElection, ZkClient, ZooKeeperHaConfig,
};
use riffle_cluster::{Configuration, JobId};
use tempfile::TempDir;

/// Longest wait for anything below.
const WAIT: Duration = Duration::from_secs(15);

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/zookeeper.sh")
}

/// Fails the test in one line when ZooKeeper or openssl is not installed.
fn require_tools() {
    let ok = Command::new(script()).arg("check").output().is_ok_and(|o| o.status.success());
    assert!(ok, "ZooKeeper is not installed: run scripts/setup-tests once");
    let ok = Command::new("openssl").arg("version").output().is_ok_and(|o| o.status.success());
    assert!(ok, "openssl is not installed: run scripts/setup-tests once");
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

fn path_str(p: &Path) -> String {
    p.to_str().expect("utf-8 temp path").to_string()
}

/// A fresh CA with a server certificate (127.0.0.1, localhost) and a client certificate.
fn certificates(dir: &Path) -> PathBuf {
    let d = path_str(dir);
    zk_script(&["tls-certs", &d]).unwrap_or_else(|e| panic!("{e}"));
    dir.to_path_buf()
}

fn free_port() -> u16 {
    match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(a) => a.port(),
        Err(e) => panic!("no free port: {e}"),
    }
}

/// A standalone server: plain on `port`, TLS only on `secure_port`; stopped on drop.
struct TlsZkServer {
    port: u16,
    dir: TempDir,
    /// `127.0.0.1:<secure port>`.
    secure_address: String,
    /// `127.0.0.1:<plain port>`.
    plain_address: String,
}

impl TlsZkServer {
    fn start(certs: &Path) -> Self {
        let mut last = String::new();
        for _ in 0..5 {
            let (port, secure_port) = (free_port(), free_port());
            if port == secure_port {
                continue;
            }
            let dir = tempfile::tempdir().expect("temp dir");
            let (d, p, s, t) = (path_str(dir.path()), port.to_string(), secure_port.to_string(), path_str(certs));
            let args = ["start", "--port", &p, "--dir", &d, "--fresh", "--secure-port", &s, "--tls-dir", &t];
            match zk_script(&args) {
                Ok(address) => {
                    assert_eq!(
                        address,
                        format!("127.0.0.1:{secure_port}"),
                        "start --secure-port prints the TLS address"
                    );
                    return Self { port, dir, secure_address: address, plain_address: format!("127.0.0.1:{port}") };
                }
                Err(e) => {
                    let _ = zk_script(&["stop", "--port", &p, "--dir", &d]);
                    last = e;
                }
            }
        }
        panic!("ZooKeeper with TLS did not start: {last}");
    }
}

impl Drop for TlsZkServer {
    fn drop(&mut self) {
        let d = path_str(self.dir.path());
        if let Err(e) = zk_script(&["stop", "--port", &self.port.to_string(), "--dir", &d]) {
            eprintln!("{e}");
        }
    }
}

fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "riffle_cluster=info".into()))
        .try_init();
}

/// HA settings for `quorum`; `tls`: the directory whose ca.pem, client.crt and client.key to use.
fn ha_config(quorum: &str, storage: &Path, tls: Option<&Path>, extra: &[(&str, &str)]) -> ZooKeeperHaConfig {
    let mut c = Configuration::new();
    c.set("high-availability", "zookeeper")
        .set("high-availability.zookeeper.quorum", quorum)
        .set("high-availability.storageDir", path_str(storage))
        .set("high-availability.cluster-id", "tls-cluster")
        .set("high-availability.zookeeper.client.session-timeout", "2 s")
        .set("high-availability.zookeeper.client.connection-timeout", "3 s")
        .set("high-availability.zookeeper.client.retry-wait", "100 ms")
        .set("high-availability.zookeeper.client.max-retry-attempts", "2");
    if let Some(dir) = tls {
        c.set("high-availability.zookeeper.client.secure", "true")
            .set("high-availability.zookeeper.client.ssl.truststore", path_str(&dir.join("ca.pem")))
            .set("high-availability.zookeeper.client.ssl.certificate", path_str(&dir.join("client.crt")))
            .set("high-availability.zookeeper.client.ssl.key", path_str(&dir.join("client.key")));
    }
    for (k, v) in extra {
        c.set(*k, *v);
    }
    HaConfig::from_config(&c).and_then(HaConfig::require_zookeeper).expect("valid HA config")
}

async fn bounded<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, fut).await.unwrap_or_else(|_| panic!("timed out after {WAIT:?}: {what}"))
}

/// Connecting must fail, within `bound`, with a TLS error for `server` whose text has `needle`.
async fn assert_tls_refused(config: &ZooKeeperHaConfig, server: &str, needle: &str, bound: Duration) -> HaError {
    let start = Instant::now();
    let err = bounded("connect", ZkClient::connect(config)).await.expect_err("must not connect");
    let took = start.elapsed();
    eprintln!("refused after {took:?}: {err}");
    match &err {
        HaError::Tls { server: s, reason } => {
            assert_eq!(s, server, "{err}");
            assert!(reason.contains(needle), "expected '{needle}' in: {err}");
        }
        other => panic!("expected HaError::Tls for {server}, got {other:?}"),
    }
    assert!(!err.is_retryable(), "{err}");
    assert_eq!(err.domain(), ErrorDomain::User, "{err}");
    assert!(took < bound, "took {took:?}, more than {bound:?}");
    err
}

#[tokio::test]
async fn ha_works_over_tls_and_a_wrong_ca_or_a_plain_client_fails_clearly() {
    init_logging();
    require_tools();
    let tls = tempfile::tempdir().expect("temp dir");
    let certs = certificates(&tls.path().join("good"));
    // Another CA and its client certificate, made now: openssl blocks the test's runtime for
    // seconds, which would starve the sessions' pings (2 s sessions) if they were open.
    let other = certificates(&tls.path().join("other"));
    let server = TlsZkServer::start(&certs);
    let storage = tempfile::tempdir().expect("temp dir");

    // Over TLS, with the right CA and a client certificate it signed: a leader is elected,
    // publishes its address, and a job graph is stored and read back on another session.
    let config = ha_config(&server.secure_address, storage.path(), Some(&certs), &[]);
    assert!(config.tls.is_some());
    let zk = bounded("connect", ZkClient::connect(&config)).await.expect("connected over TLS");
    let election = LeaderElection::start(&zk, "jm-tls:6123").await.expect("contending");
    let fence = bounded("leadership", election.wait_for_leadership(WAIT)).await.expect("leads");
    let job = JobId::generate();
    JobGraphStore::new(&zk).put(&fence, job, b"a job graph over TLS").await.expect("stored");
    let reader = bounded("connect", ZkClient::connect(&config)).await.expect("second TLS session");
    let graph = JobGraphStore::new(&reader).get(job).await.expect("read back");
    assert_eq!(graph.as_deref(), Some(&b"a job graph over TLS"[..]));
    assert_eq!(JobGraphStore::new(&reader).list().await.expect("listed"), vec![job]);
    let info = leader_address(&reader).await.expect("readable").expect("a leader");
    assert_eq!(info.address, "jm-tls:6123");

    // A trust store of another CA: riffle refuses the server's certificate, at once.
    let wrong_ca = ha_config(
        &server.secure_address,
        storage.path(),
        Some(&certs),
        &[("high-availability.zookeeper.client.ssl.truststore", &path_str(&other.join("ca.pem")))],
    );
    assert_tls_refused(&wrong_ca, &server.secure_address, "not trusted", Duration::from_secs(10)).await;

    // A client certificate of another CA: the server refuses it (ssl.clientAuth=need).
    let wrong_identity = ha_config(
        &server.secure_address,
        storage.path(),
        Some(&certs),
        &[
            ("high-availability.zookeeper.client.ssl.certificate", &path_str(&other.join("client.crt"))),
            ("high-availability.zookeeper.client.ssl.key", &path_str(&other.join("client.key"))),
        ],
    );
    assert_tls_refused(&wrong_identity, &server.secure_address, "refused", Duration::from_secs(10)).await;

    // Plain to the TLS-only port: named as such, not "unreachable" after every retry.
    let plain = ha_config(&server.secure_address, storage.path(), None, &[]);
    assert_tls_refused(&plain, &server.secure_address, "speaks TLS", Duration::from_secs(10)).await;

    // TLS to the plain port: the server does not answer in TLS.
    let tls_to_plain = ha_config(&server.plain_address, storage.path(), Some(&certs), &[]);
    assert_tls_refused(&tls_to_plain, &server.plain_address, "no TLS answer", Duration::from_secs(10)).await;

    // A missing or empty PEM file names its key and path before any connection is tried.
    let empty = tls.path().join("empty.pem");
    std::fs::write(&empty, "").expect("empty file");
    for (key, path) in [
        ("high-availability.zookeeper.client.ssl.truststore", empty.clone()),
        ("high-availability.zookeeper.client.ssl.key", tls.path().join("missing.key")),
    ] {
        let config = ha_config(&server.secure_address, storage.path(), Some(&certs), &[(key, &path_str(&path))]);
        let err = bounded("connect", ZkClient::connect(&config)).await.expect_err("unusable file");
        match &err {
            HaError::TlsFile { key: k, path: p, .. } => assert_eq!((*k, p), (key, &path), "{err}"),
            other => panic!("expected HaError::TlsFile for {key}, got {other:?}"),
        }
        assert!(err.to_string().contains(key), "{err}");
    }

    // The good session still works after all that.
    let graph = JobGraphStore::new(&zk).get(job).await.expect("read again");
    assert_eq!(graph.as_deref(), Some(&b"a job graph over TLS"[..]));
    drop((election, zk, reader));
}
