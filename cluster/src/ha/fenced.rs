//! Fenced writes: a leader's write is applied only while its election node still exists.
//!
//! Knowing locally that we lead is not enough: a paused or partitioned leader still believes
//! it leads until it hears from ZooKeeper again, while a successor has already taken over.
//! So every leader write goes to ZooKeeper as one multi-operation whose first step checks our
//! ephemeral election node; once the session has expired (or we resigned) the node is gone
//! and the whole write is refused by the server, never half applied. The local leadership
//! view is checked first as well, so a leader that knows it is disconnected stops at once
//! without a round trip.

use std::sync::Arc;

use tokio::sync::watch;
use zookeeper_client::{CheckWriteError, Error as ZkError, MultiWriteResult};

use super::client::ZkClient;
use super::election::Leadership;
use super::error::HaError;
use super::PERSISTENT;

/// Proof of leadership to attach to writes: the election node and its sequence number (the
/// fencing token, which grows with every new leadership).
#[derive(Clone, Debug)]
pub struct Fence {
    node: Arc<str>,
    token: i64,
    leadership: Option<watch::Receiver<Leadership>>,
}

impl Fence {
    /// A fence checked by ZooKeeper only (for a node path handed over from elsewhere); fences
    /// from [`LeaderElection::fence`](super::LeaderElection::fence) also check the local view.
    pub fn new(node_path: impl Into<String>, fencing_token: i64) -> Self {
        Self { node: Arc::from(node_path.into()), token: fencing_token, leadership: None }
    }

    pub(crate) fn with_leadership(node_path: Arc<str>, token: i64, leadership: watch::Receiver<Leadership>) -> Self {
        Self { node: node_path, token, leadership: Some(leadership) }
    }

    /// The election node whose existence the writes check.
    pub fn node_path(&self) -> &str {
        &self.node
    }

    /// The fencing token: the election node's sequence number.
    pub fn token(&self) -> i64 {
        self.token
    }

    /// Whether the local view still says we lead with this token (no round trip).
    pub fn check_local(&self, op: &str) -> Result<(), HaError> {
        match &self.leadership {
            None => Ok(()),
            Some(rx) => match &*rx.borrow() {
                Leadership::Leader { fencing_token } if *fencing_token == self.token => Ok(()),
                Leadership::Leader { fencing_token } => {
                    Err(HaError::not_leader(op, format!("leadership {} was replaced by {fencing_token}", self.token)))
                }
                Leadership::NotLeader => Err(HaError::not_leader(
                    op,
                    format!("leadership {} is lost (resigned, disconnected or expired)", self.token),
                )),
            },
        }
    }
}

/// One step of a fenced write.
#[derive(Debug, Clone, Copy)]
pub enum FencedOp<'a> {
    /// Create a persistent node (its parent must exist).
    Create {
        /// Node path.
        path: &'a str,
        /// Its data.
        data: &'a [u8],
    },
    /// Replace a node's data, optionally only at the given version (compare-and-set).
    SetData {
        /// Node path.
        path: &'a str,
        /// New data.
        data: &'a [u8],
        /// Expected version, `None` for any.
        version: Option<i32>,
    },
    /// Delete a node (it must have no children), optionally only at the given version.
    Delete {
        /// Node path.
        path: &'a str,
        /// Expected version, `None` for any.
        version: Option<i32>,
    },
}

/// Why a fenced write failed, for callers that react to a specific step (a lost
/// compare-and-set, a node already there).
#[derive(Debug)]
pub(crate) enum FencedFailure {
    /// Step `index` of the given ops was refused with this ZooKeeper error; nothing applied.
    Step { index: usize, source: ZkError, error: HaError },
    /// Anything else, including [`HaError::NotLeader`].
    Other(HaError),
}

impl FencedFailure {
    pub(crate) fn into_error(self) -> HaError {
        match self {
            FencedFailure::Step { error, .. } | FencedFailure::Other(error) => error,
        }
    }
}

/// Applies `ops` atomically if and only if `fence`'s election node exists. Not retried:
/// callers decide (a lost connection leaves it unknown whether the write was applied).
pub(crate) async fn commit_once(
    zk: &ZkClient,
    fence: &Fence,
    op: &str,
    ops: &[FencedOp<'_>],
) -> Result<Vec<MultiWriteResult>, FencedFailure> {
    fence.check_local(op).map_err(FencedFailure::Other)?;
    let client = zk.raw();
    let mut writer = client.new_check_writer(fence.node_path(), None).map_err(|e| other(op, e))?;
    for step in ops {
        let added = match *step {
            FencedOp::Create { path, data } => writer.add_create(path, data, &PERSISTENT),
            FencedOp::SetData { path, data, version } => writer.add_set_data(path, data, version),
            FencedOp::Delete { path, version } => writer.add_delete(path, version),
        };
        added.map_err(|e| other(op, e))?;
    }
    let result = match tokio::time::timeout(zk.call_timeout(), writer.commit()).await {
        Ok(r) => r,
        Err(_) => {
            return Err(FencedFailure::Other(HaError::Timeout {
                op: op.to_string(),
                after: zk.call_timeout(),
                quorum: zk.quorum().to_string(),
            }))
        }
    };
    result.map_err(|e| match e {
        CheckWriteError::CheckFailed { source: ZkError::NoNode | ZkError::BadVersion } => {
            FencedFailure::Other(HaError::not_leader(op, format!("election node {} is gone", fence.node_path())))
        }
        CheckWriteError::RequestFailed { source: ZkError::SessionExpired } => {
            FencedFailure::Other(HaError::not_leader(op, "the ZooKeeper session expired"))
        }
        CheckWriteError::RequestFailed { source: ZkError::ClientClosed } => {
            FencedFailure::Other(HaError::not_leader(op, "the ZooKeeper session is closed"))
        }
        CheckWriteError::CheckFailed { source } | CheckWriteError::RequestFailed { source } => other(op, source),
        CheckWriteError::OperationFailed { index, source } => {
            let error = HaError::zk(format!("{op} (step {index})"), source.clone());
            FencedFailure::Step { index, source, error }
        }
    })
}

/// [`commit_once`] retried on lost connections and timeouts with backoff. Only for writes
/// whose repetition is harmless (a repeated compare-and-set fails its version check, a
/// repeated create finds the node) and whose callers handle those outcomes.
pub(crate) async fn commit_retrying(
    zk: &ZkClient,
    fence: &Fence,
    op: &str,
    ops: &[FencedOp<'_>],
) -> Result<Vec<MultiWriteResult>, FencedFailure> {
    // The step that refused the last attempt, if that is how it failed (a refused step is
    // never retryable, so it always ends the retries).
    let step_failure = std::cell::Cell::new(None);
    let result = zk
        .retrying(op, || async {
            step_failure.set(None);
            match commit_once(zk, fence, op, ops).await {
                Ok(r) => Ok(r),
                Err(FencedFailure::Other(e)) => Err(e),
                Err(FencedFailure::Step { index, source, error }) => {
                    step_failure.set(Some((index, source)));
                    Err(error)
                }
            }
        })
        .await;
    match (result, step_failure.take()) {
        (Ok(r), _) => Ok(r),
        (Err(error), Some((index, source))) => Err(FencedFailure::Step { index, source, error }),
        (Err(error), None) => Err(FencedFailure::Other(error)),
    }
}

/// Applies `ops` atomically if and only if `fence`'s election node exists; a lost
/// connection or a timeout is retried with backoff. Fails with [`HaError::NotLeader`] when
/// the fence no longer holds.
pub async fn fenced_write(zk: &ZkClient, fence: &Fence, ops: &[FencedOp<'_>]) -> Result<(), HaError> {
    let op = match ops.first() {
        Some(FencedOp::Create { path, .. }) => format!("fenced create {path}"),
        Some(FencedOp::SetData { path, .. }) => format!("fenced set {path}"),
        Some(FencedOp::Delete { path, .. }) => format!("fenced delete {path}"),
        None => return Ok(()),
    };
    commit_retrying(zk, fence, &op, ops).await.map(|_| ()).map_err(FencedFailure::into_error)
}

/// For the steps of a fenced operation that are not the fenced commit itself (reads, parent
/// directories): a session that expired or was closed means leadership is lost too.
pub(crate) fn session_loss_is_not_leader(e: HaError) -> HaError {
    match e {
        HaError::ZooKeeper { op, source: ZkError::SessionExpired } => {
            HaError::not_leader(op, "the ZooKeeper session expired")
        }
        HaError::ZooKeeper { op, source: ZkError::ClientClosed } => {
            HaError::not_leader(op, "the ZooKeeper session is closed")
        }
        other => other,
    }
}

fn other(op: &str, e: ZkError) -> FencedFailure {
    FencedFailure::Other(HaError::zk(op, e))
}
