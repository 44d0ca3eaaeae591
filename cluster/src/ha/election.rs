//! Leader election among JobManagers with ZooKeeper's ephemeral sequential nodes.
//!
//! Each contender creates `leader-latch/latch-<nonce>-<seq>` holding its address; the lowest
//! sequence number leads. A non-leader watches only the node just before its own, so a
//! leader's departure wakes one contender, not all of them. The node is ephemeral: when a
//! contender's session ends (clean close, crash plus session timeout) ZooKeeper deletes it and
//! the next contender takes over. The sequence number is the fencing token: a later leader
//! always has a larger one.
//!
//! Leadership is given up locally at the first sign of trouble — `Disconnected` as well as
//! `Expired` — because a disconnected leader cannot know whether its session still lives; it
//! is taken back when the session reconnects and the node is still the lowest. The nonce in
//! the node's name lets a create whose answer was lost find its node instead of leaving an
//! orphan that would hold the lead until the session ends (Curator's "protected" mode).
//!
//! The leader's address is the data of its election node, so [`leader_address`] (what
//! TaskManagers and REST clients use) always names the contender ZooKeeper considers leader.
//! The data is the RPC address, then, on a second line, the REST URL when the contender
//! publishes one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use zookeeper_client::{Acls, CreateMode, CreateOptions, SessionState, StateWatcher};

use super::client::ZkClient;
use super::error::HaError;
use super::fenced::Fence;

const EPHEMERAL_SEQUENTIAL: CreateOptions<'static> = CreateMode::EphemeralSequential.with_acls(Acls::anyone_all());

/// Prefix of every election node's name.
const NODE_PREFIX: &str = "latch-";

/// Makes election node names unique within this process (with the session id: everywhere).
static NONCE: AtomicU64 = AtomicU64::new(0);

/// Whether this contender leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leadership {
    /// Not the leader (or not sure: disconnected).
    NotLeader,
    /// The leader, with its fencing token (the election node's sequence number).
    Leader {
        /// Grows with every new leadership; attach it to what the leader sends out.
        fencing_token: i64,
    },
}

impl Leadership {
    /// Whether this is [`Leadership::Leader`].
    pub fn is_leader(&self) -> bool {
        matches!(self, Leadership::Leader { .. })
    }
}

/// The current leader as ZooKeeper sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderInfo {
    /// The address the leader published (its RPC endpoint).
    pub address: String,
    /// Its REST API (`http://host:port/`), when it published one.
    pub rest_url: Option<String>,
    /// Its fencing token.
    pub fencing_token: i64,
}

/// One contender's participation in the election. It contends from [`start`](Self::start)
/// until [`resign`](Self::resign), drop (which resigns in the background), or the loss of its
/// session or node; in the last case the leadership channel closes (`changed()` returns an
/// error) and the owner has to contend again with a new [`ZkClient`].
#[derive(Debug)]
pub struct LeaderElection {
    zk: ZkClient,
    node: Arc<str>,
    token: i64,
    address: String,
    leadership: watch::Receiver<Leadership>,
    resign: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl LeaderElection {
    /// Joins the election under `<root>/<cluster-id>/leader-latch`, publishing `address`.
    /// Returns once the node exists; leadership follows on the [`leadership`](Self::leadership)
    /// channel (see [`wait_for_leadership`](Self::wait_for_leadership)).
    pub async fn start(zk: &ZkClient, address: &str) -> Result<Self, HaError> {
        Self::start_publishing(zk, address, None).await
    }

    /// [`start`](Self::start), publishing the contender's REST URL beside its address (the
    /// standbys redirect REST clients to the leader's).
    pub async fn start_publishing(zk: &ZkClient, address: &str, rest_url: Option<&str>) -> Result<Self, HaError> {
        let data = match rest_url {
            Some(url) => format!("{address}\n{url}"),
            None => address.to_string(),
        };
        let latch = zk.paths().leader_latch();
        zk.ensure_path(&latch).await?;
        let nonce = format!("{:x}.{:x}", zk.raw().session_id().0 as u64, NONCE.fetch_add(1, Ordering::Relaxed));
        let prefix = format!("{NODE_PREFIX}{nonce}-");
        let (name, token) = create_node(zk, &latch, &prefix, &data).await?;
        let node: Arc<str> = Arc::from(format!("{latch}/{name}"));
        tracing::info!(quorum = %zk.quorum(), "{address} contends for leadership as {node}");
        let (tx, rx) = watch::channel(Leadership::NotLeader);
        let (resign_tx, resign_rx) = oneshot::channel();
        let contender =
            Contender { zk: zk.clone(), latch, name, node: node.clone(), token, address: address.to_string(), tx };
        let task = tokio::spawn(contender.run(resign_rx));
        Ok(Self {
            zk: zk.clone(),
            node,
            token,
            address: address.to_string(),
            leadership: rx,
            resign: Some(resign_tx),
            task: Some(task),
        })
    }

    /// The leadership channel: `NotLeader` / `Leader { fencing_token }`, updated as soon as it
    /// changes (at once on `Disconnected`); closed when the election is over.
    pub fn leadership(&self) -> watch::Receiver<Leadership> {
        self.leadership.clone()
    }

    /// The current leadership.
    pub fn current(&self) -> Leadership {
        *self.leadership.borrow()
    }

    /// Whether this contender leads right now.
    pub fn is_leader(&self) -> bool {
        self.current().is_leader()
    }

    /// This contender's fencing token (its node's sequence number), led or not.
    pub fn fencing_token(&self) -> i64 {
        self.token
    }

    /// This contender's election node.
    pub fn node_path(&self) -> &str {
        &self.node
    }

    /// The address this contender published.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// A fence for leader writes, or [`HaError::NotLeader`] if this contender does not lead.
    pub fn fence(&self) -> Result<Fence, HaError> {
        let fence = Fence::with_leadership(self.node.clone(), self.token, self.leadership.clone());
        fence.check_local("take a fence")?;
        Ok(fence)
    }

    /// Waits until this contender leads, at most `timeout`.
    pub async fn wait_for_leadership(&self, timeout: Duration) -> Result<Fence, HaError> {
        let mut rx = self.leadership.clone();
        let won = tokio::time::timeout(timeout, rx.wait_for(Leadership::is_leader)).await.map(|r| r.is_ok());
        match won {
            Ok(true) => self.fence(),
            Ok(false) => Err(HaError::not_leader("wait for leadership", "the election ended (session or node lost)")),
            Err(_) => Err(HaError::Timeout {
                op: format!("wait for leadership of {}", self.node),
                after: timeout,
                quorum: self.zk.quorum().to_string(),
            }),
        }
    }

    /// Leaves the election: leadership turns to `NotLeader` first, then the node is deleted so
    /// the next contender takes over at once (no session timeout to wait for).
    pub async fn resign(mut self) -> Result<(), HaError> {
        if let Some(tx) = self.resign.take() {
            let _ = tx.send(());
        }
        let Some(task) = self.task.take() else { return Ok(()) };
        let bound = self.zk.call_timeout().saturating_mul(2);
        match tokio::time::timeout(bound, task).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(HaError::Internal(e.to_string())),
            Err(_) => Err(HaError::Timeout {
                op: format!("resign {}", self.node),
                after: bound,
                quorum: self.zk.quorum().to_string(),
            }),
        }
    }
}

impl Drop for LeaderElection {
    /// Resigns in the background: the contender task sees its resign channel close.
    fn drop(&mut self) {
        self.resign.take();
    }
}

/// The address and fencing token of the current leader, `None` if nobody contends.
pub async fn leader_address(zk: &ZkClient) -> Result<Option<LeaderInfo>, HaError> {
    const RACES: u32 = 5;
    let latch = zk.paths().leader_latch();
    for _ in 0..RACES {
        let children = zk.children(&latch).await?;
        let Some((fencing_token, name)) = children.iter().filter_map(|c| parse_node(c).map(|s| (s, c))).min() else {
            return Ok(None);
        };
        let path = format!("{latch}/{name}");
        // None: the leader left between the listing and the read; look again.
        if let Some((data, _)) = zk.get_data_opt(&path).await? {
            let data = String::from_utf8(data)
                .map_err(|_| HaError::corrupt(format!("leader node {path}"), "the address is not UTF-8"))?;
            let (address, rest_url) = match data.split_once('\n') {
                Some((a, url)) => (a.to_string(), Some(url.to_string())),
                None => (data, None),
            };
            return Ok(Some(LeaderInfo { address, rest_url, fencing_token }));
        }
    }
    Err(HaError::Contention { op: format!("read the leader of {latch}"), attempts: RACES })
}

/// The sequence number of an election node's name (`latch-<nonce>-<seq>`).
fn parse_node(name: &str) -> Option<i64> {
    let rest = name.strip_prefix(NODE_PREFIX)?;
    let (_, seq) = rest.rsplit_once('-')?;
    (!seq.is_empty() && seq.bytes().all(|b| b.is_ascii_digit())).then(|| seq.parse().ok()).flatten()
}

/// Creates the election node; after a lost answer, first looks for the node the lost create
/// may have made (it carries our nonce) before creating another.
async fn create_node(zk: &ZkClient, latch: &str, prefix: &str, address: &str) -> Result<(String, i64), HaError> {
    let op = format!("create {latch}/{prefix}<seq>");
    let base = format!("{latch}/{prefix}");
    let tried = std::cell::Cell::new(false);
    zk.retrying(&op, || async {
        if tried.replace(true) {
            let children = zk.call(&format!("list {latch}"), zk.raw().list_children(latch)).await?;
            if let Some(mine) = children.into_iter().find(|c| c.starts_with(prefix)) {
                if let Some(seq) = parse_node(&mine) {
                    return Ok((mine, seq));
                }
            }
        }
        let (_, seq) = zk.call(&op, zk.raw().create(&base, address.as_bytes(), &EPHEMERAL_SEQUENTIAL)).await?;
        Ok((format!("{prefix}{seq}"), seq.into_i64()))
    })
    .await
}

/// What ended a contender's participation.
enum End {
    Resigned,
    SessionLost(SessionState),
    NodeGone,
}

/// What one look at the latch concluded.
enum Step {
    /// Something changed: look again.
    Again,
    /// Our node is gone while the session lives (deleted by someone).
    Gone,
    /// A call failed.
    Failed(HaError),
}

/// The background half of a [`LeaderElection`].
struct Contender {
    zk: ZkClient,
    latch: String,
    name: String,
    node: Arc<str>,
    token: i64,
    address: String,
    tx: watch::Sender<Leadership>,
}

impl Contender {
    async fn run(self, mut resign: oneshot::Receiver<()>) {
        let mut states = self.zk.raw().state_watcher();
        let mut last_state = SessionState::SyncConnected;
        let end = loop {
            let state = self.zk.state();
            if state != last_state {
                tracing::info!(quorum = %self.zk.quorum(), "{}: ZooKeeper session is {state:?}", self.node);
                last_state = state;
            }
            match state {
                SessionState::SyncConnected => {}
                SessionState::Disconnected | SessionState::ConnectedReadOnly => {
                    self.set(Leadership::NotLeader, "disconnected from ZooKeeper");
                    tokio::select! {
                        _ = &mut resign => break End::Resigned,
                        _ = states.changed() => continue,
                    }
                }
                SessionState::Expired | SessionState::Closed | SessionState::AuthFailed => {
                    break End::SessionLost(state);
                }
            }
            let step = tokio::select! {
                biased;
                _ = &mut resign => break End::Resigned,
                step = self.step(&mut states) => step,
            };
            match step {
                Step::Again => {}
                Step::Gone => break End::NodeGone,
                Step::Failed(e) => {
                    self.set(Leadership::NotLeader, "ZooKeeper did not answer");
                    let wait = self.zk.config().retry_wait.min(Duration::from_secs(1));
                    tracing::warn!(quorum = %self.zk.quorum(), "{}: election step failed: {e}; again in {wait:?}", self.node);
                    tokio::select! {
                        _ = &mut resign => break End::Resigned,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        };
        match end {
            End::Resigned => {
                self.set(Leadership::NotLeader, "resigned");
                let op = format!("delete {}", self.node);
                match self.zk.call(&op, self.zk.raw().delete(&self.node, None)).await {
                    Ok(()) => tracing::info!("{} resigned ({})", self.address, self.node),
                    Err(e) if e.is_no_node() => {}
                    Err(e) => tracing::warn!(
                        quorum = %self.zk.quorum(),
                        "{}: could not delete the election node on resigning: {e}; it goes with the session",
                        self.node
                    ),
                }
            }
            End::SessionLost(state) => {
                self.set(Leadership::NotLeader, "the ZooKeeper session ended");
                tracing::warn!(
                    quorum = %self.zk.quorum(),
                    "{}: ZooKeeper session {state:?}; this contender is out of the election",
                    self.node
                );
            }
            End::NodeGone => {
                self.set(Leadership::NotLeader, "the election node was deleted");
                tracing::warn!(
                    quorum = %self.zk.quorum(),
                    "{}: the election node was deleted; this contender is out of the election",
                    self.node
                );
            }
        }
    }

    /// Lists the contenders, takes or gives up the lead accordingly, and waits for the next
    /// relevant change: the watched node (ours if leading, our predecessor's otherwise) or the
    /// session state.
    async fn step(&self, states: &mut StateWatcher) -> Step {
        let op = format!("list {}", self.latch);
        let children = match self.zk.call(&op, self.zk.raw().list_children(&self.latch)).await {
            Ok(c) => c,
            Err(e) if e.is_no_node() => return Step::Gone,
            Err(e) => return Step::Failed(e),
        };
        let mut contenders: Vec<(i64, String)> =
            children.into_iter().filter_map(|c| parse_node(&c).map(|seq| (seq, c))).collect();
        contenders.sort();
        let Some(position) = contenders.iter().position(|(_, name)| *name == self.name) else {
            return Step::Gone;
        };
        let watched = if position == 0 {
            self.set(Leadership::Leader { fencing_token: self.token }, "");
            self.node.to_string()
        } else {
            self.set(Leadership::NotLeader, "another contender has a lower node");
            format!("{}/{}", self.latch, contenders[position - 1].1)
        };
        let op = format!("watch {watched}");
        let watcher = match self.zk.call(&op, self.zk.raw().check_and_watch_stat(&watched)).await {
            Ok((Some(_), watcher)) => watcher,
            // Gone already: the next listing shows the new order.
            Ok((None, _)) => return Step::Again,
            Err(e) => return Step::Failed(e),
        };
        tokio::select! {
            event = watcher.changed() => {
                tracing::debug!("{}: {:?} on {}", self.node, event.event_type, watched);
            }
            state = states.changed() => {
                tracing::debug!("{}: session {state:?}", self.node);
            }
        }
        Step::Again
    }

    fn set(&self, new: Leadership, why: &str) {
        let changed = self.tx.send_if_modified(|current| {
            let changed = *current != new;
            *current = new;
            changed
        });
        if !changed {
            return;
        }
        match new {
            Leadership::Leader { fencing_token } => tracing::info!(
                quorum = %self.zk.quorum(),
                "{} is the leader ({}, fencing token {fencing_token})",
                self.address,
                self.node
            ),
            Leadership::NotLeader => tracing::warn!(
                quorum = %self.zk.quorum(),
                "{} is no longer the leader ({}): {why}",
                self.address,
                self.node
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names() {
        assert_eq!(parse_node("latch-1a2b3-0000000042"), Some(42));
        assert_eq!(parse_node("latch-x-y-0000000007"), Some(7));
        assert_eq!(parse_node("other-0000000001"), None);
        assert_eq!(parse_node("latch-abc-"), None);
        assert_eq!(parse_node("latch-abc-12x"), None);
    }
}
