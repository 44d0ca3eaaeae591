//! A ZooKeeper session as the HA services use it: every call bounded by
//! `connection-timeout` (a request sent while disconnected otherwise waits for the reconnect,
//! seconds or forever), failures retried with doubling backoff up to `max-retry-attempts`,
//! and each failed attempt logged with the quorum it was for, so "ZooKeeper is down" is one
//! glance at the log.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use zookeeper_client::{Client, Error as ZkError, SessionState};

use super::config::{ZooKeeperHaConfig, CLIENT_SECURE};
use super::error::HaError;
use super::paths::HaPaths;
use super::tls::{diagnose, Diagnosis, TlsMaterial};

/// The longest wait between two retries, however many attempts came before.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// A connected ZooKeeper session with this cluster's settings and paths. Cheap to clone; the
/// session closes (and this contender's ephemeral nodes vanish) when the last clone, including
/// those held by a running [`LeaderElection`](super::LeaderElection), is dropped.
#[derive(Clone, Debug)]
pub struct ZkClient {
    inner: Client,
    config: Arc<ZooKeeperHaConfig>,
    paths: Arc<HaPaths>,
}

impl ZkClient {
    /// Connects to `config.quorum` (over TLS with `client.secure`), each attempt bounded by
    /// `connection-timeout`, retrying with backoff; fails with [`HaError::Unreachable`] after
    /// `1 + max-retry-attempts`, at once with [`HaError::TlsFile`] for an unusable PEM file,
    /// and with [`HaError::Tls`] after a failed attempt that a TLS handshake explains (see
    /// `tls.rs`: a certificate refused either way, or TLS on one side only).
    pub async fn connect(config: &ZooKeeperHaConfig) -> Result<Self, HaError> {
        let attempts = config.max_retry_attempts.saturating_add(1);
        let mut last = String::new();
        // Probe after failed attempts until a probe reaches a member (see `tls.rs`).
        let mut probe = true;
        for attempt in 1..=attempts {
            // Read each attempt: a renewed certificate is picked up without a restart.
            let tls = config.tls.as_ref().map(|t| TlsMaterial::load(t).map(|m| (t, m))).transpose()?;
            let mut connector = Client::connector().with_session_timeout(config.session_timeout).with_fail_eagerly();
            let session = match &tls {
                Some((files, material)) => {
                    connector = connector.with_tls(material.options(files)?);
                    tokio::time::timeout(config.connection_timeout, connector.secure_connect(&config.quorum)).await
                }
                None => tokio::time::timeout(config.connection_timeout, connector.connect(&config.quorum)).await,
            };
            // With fail-eagerly, an error (rather than our timeout) means the client tried every
            // member and each one failed, which is what a TLS mismatch looks like.
            let refused = matches!(session, Ok(Err(_)));
            match session {
                Ok(Ok(client)) => {
                    let granted = client.session_timeout();
                    if granted != config.session_timeout {
                        tracing::warn!(
                            quorum = %config.quorum,
                            "ZooKeeper {} granted a session timeout of {granted:?} instead of the {:?} asked for \
                             (its minSessionTimeout/maxSessionTimeout); failover takes about {granted:?}",
                            config.quorum,
                            config.session_timeout
                        );
                    }
                    tracing::info!(
                        quorum = %config.quorum,
                        session = %client.session_id(),
                        "connected to ZooKeeper {} (session timeout {granted:?})",
                        config.quorum
                    );
                    return Ok(Self::from_client(client, config));
                }
                Ok(Err(e)) => last = e.to_string(),
                Err(_) => last = format!("no session within {:?}", config.connection_timeout),
            }
            if refused && probe {
                let material = tls.as_ref().map(|(_, m)| m);
                match diagnose(&config.quorum, material, CLIENT_SECURE.key(), config.connection_timeout).await {
                    Diagnosis::Explained(e) => {
                        tracing::warn!(quorum = %config.quorum, "could not connect to ZooKeeper {}: {e}", config.quorum);
                        return Err(e);
                    }
                    Diagnosis::NotTls => probe = false,
                    Diagnosis::NoneReached => {}
                }
            }
            if attempt < attempts {
                let wait = backoff(config.retry_wait, attempt);
                tracing::warn!(
                    quorum = %config.quorum,
                    attempt,
                    "could not connect to ZooKeeper {} (attempt {attempt}/{attempts}): {last}; retrying in {wait:?}",
                    config.quorum
                );
                tokio::time::sleep(wait).await;
            } else {
                tracing::warn!(
                    quorum = %config.quorum,
                    attempt,
                    "could not connect to ZooKeeper {} (attempt {attempt}/{attempts}): {last}; giving up",
                    config.quorum
                );
            }
        }
        Err(HaError::Unreachable { quorum: config.quorum.clone(), attempts, last })
    }

    /// Wraps a session built elsewhere (TLS, SASL, a detached session in tests) with this
    /// cluster's settings.
    pub fn from_client(client: Client, config: &ZooKeeperHaConfig) -> Self {
        Self { inner: client, config: Arc::new(config.clone()), paths: Arc::new(HaPaths::new(config)) }
    }

    /// The underlying client (for what the HA services do not cover).
    pub fn raw(&self) -> &Client {
        &self.inner
    }

    /// The settings this session was made with.
    pub fn config(&self) -> &ZooKeeperHaConfig {
        &self.config
    }

    /// This cluster's ZooKeeper paths.
    pub fn paths(&self) -> &HaPaths {
        &self.paths
    }

    /// The connection string.
    pub fn quorum(&self) -> &str {
        &self.config.quorum
    }

    /// The session timeout the server granted.
    pub fn session_timeout(&self) -> Duration {
        self.inner.session_timeout()
    }

    /// The bound on each ZooKeeper call.
    pub fn call_timeout(&self) -> Duration {
        self.config.connection_timeout
    }

    /// The session's current state.
    pub fn state(&self) -> SessionState {
        self.inner.state()
    }

    /// One ZooKeeper call, bounded by `connection-timeout`, not retried (for non-idempotent
    /// calls and for callers that handle errors themselves).
    pub(crate) async fn call<T>(&self, op: &str, fut: impl Future<Output = Result<T, ZkError>>) -> Result<T, HaError> {
        match tokio::time::timeout(self.config.connection_timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(HaError::zk(op, e)),
            Err(_) => Err(self.timeout(op)),
        }
    }

    /// A call that is safe to repeat, retried on retryable errors with backoff (a warning per
    /// failed attempt, naming the quorum). `attempt` builds the call afresh each time.
    pub(crate) async fn retrying<T, F, Fut>(&self, op: &str, mut attempt: F) -> Result<T, HaError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, HaError>>,
    {
        let attempts = self.config.max_retry_attempts.saturating_add(1);
        let mut n = 1;
        loop {
            match attempt().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retryable() && n < attempts => {
                    let wait = backoff(self.config.retry_wait, n);
                    tracing::warn!(
                        quorum = %self.config.quorum,
                        attempt = n,
                        "ZooKeeper {} call '{op}' failed (attempt {n}/{attempts}): {e}; retrying in {wait:?}",
                        self.config.quorum
                    );
                    tokio::time::sleep(wait).await;
                    n += 1;
                }
                Err(e) => {
                    if e.is_retryable() {
                        tracing::warn!(
                            quorum = %self.config.quorum,
                            attempt = n,
                            "ZooKeeper {} call '{op}' failed (attempt {n}/{attempts}): {e}; giving up",
                            self.config.quorum
                        );
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Reads a node's data; `None` when it does not exist. Retried.
    pub(crate) async fn get_data_opt(&self, path: &str) -> Result<Option<(Vec<u8>, i32)>, HaError> {
        let op = format!("get {path}");
        self.retrying(&op, || async {
            match self.call(&op, self.inner.get_data(path)).await {
                Ok((data, stat)) => Ok(Some((data, stat.version))),
                Err(e) if e.is_no_node() => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// Lists a node's children (names); empty when it does not exist. Retried.
    pub(crate) async fn children(&self, path: &str) -> Result<Vec<String>, HaError> {
        let op = format!("list {path}");
        self.retrying(&op, || async {
            match self.call(&op, self.inner.list_children(path)).await {
                Ok(children) => Ok(children),
                Err(e) if e.is_no_node() => Ok(Vec::new()),
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// Creates the persistent node `path` and its missing parents (`mkdir -p`). Retried.
    pub(crate) async fn ensure_path(&self, path: &str) -> Result<(), HaError> {
        let op = format!("mkdir {path}");
        self.retrying(&op, || self.call(&op, self.inner.mkdir(path, &super::PERSISTENT))).await
    }

    fn timeout(&self, op: &str) -> HaError {
        HaError::Timeout {
            op: op.to_string(),
            after: self.config.connection_timeout,
            quorum: self.config.quorum.clone(),
        }
    }
}

/// `first`, doubled for every attempt after the first, at most [`MAX_BACKOFF`] (never less
/// than `first`, should `first` be longer).
pub(crate) fn backoff(first: Duration, attempt: u32) -> Duration {
    let factor = 1u32.checked_shl(attempt.saturating_sub(1)).unwrap_or(u32::MAX);
    first.saturating_mul(factor).min(MAX_BACKOFF.max(first))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let w = Duration::from_millis(100);
        assert_eq!(backoff(w, 1), w);
        assert_eq!(backoff(w, 2), w * 2);
        assert_eq!(backoff(w, 4), w * 8);
        assert_eq!(backoff(w, 40), MAX_BACKOFF);
        assert_eq!(backoff(Duration::from_secs(90), 3), Duration::from_secs(90));
        assert_eq!(backoff(Duration::ZERO, 3), Duration::ZERO);
    }
}
