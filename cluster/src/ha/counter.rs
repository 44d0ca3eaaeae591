//! The checkpoint id counter of a job, shared by every JobManager that ever leads it: a new
//! leader continues after the last id its predecessors handed out, so a checkpoint id is
//! never reused (reuse would let an old checkpoint's files be taken for a new one's).
//!
//! The node holds the next id to hand out (8 bytes, big endian). An increment is a
//! compare-and-set on the node's version, fenced by the leader's election node: a concurrent
//! incrementer makes it fail with `BadVersion` and it is retried on fresh data; a deposed
//! leader's increment is refused. Ids may skip (an increment whose answer was lost is not
//! known to have happened) but never repeat.

use riffle_actors::JobId;
use zookeeper_client::Error as ZkError;

use super::client::ZkClient;
use super::error::HaError;
use super::fenced::{commit_retrying, session_loss_is_not_leader, FencedFailure, FencedOp};
use super::Fence;

/// The first checkpoint id of a job (as in Flink).
pub const INITIAL_CHECKPOINT_ID: u64 = 1;

/// How many lost compare-and-set races in a row before giving up (with a retryable error).
const MAX_RACES: u32 = 100;

/// A job's checkpoint id counter in ZooKeeper.
#[derive(Debug, Clone)]
pub struct CheckpointIdCounter {
    zk: ZkClient,
    path: String,
}

impl CheckpointIdCounter {
    /// The counter of `job` at `<root>/<cluster-id>/checkpoint-counter/<job-id>` (created on
    /// first use).
    pub fn new(zk: &ZkClient, job: JobId) -> Self {
        Self { zk: zk.clone(), path: zk.paths().checkpoint_counter(job) }
    }

    /// The counter's node.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The next id that [`get_and_increment`](Self::get_and_increment) would return.
    pub async fn get(&self) -> Result<u64, HaError> {
        match self.zk.get_data_opt(&self.path).await? {
            None => Ok(INITIAL_CHECKPOINT_ID),
            Some((data, _)) => decode(&self.path, &data),
        }
    }

    /// Hands out the next checkpoint id; only while `fence` holds.
    pub async fn get_and_increment(&self, fence: &Fence) -> Result<u64, HaError> {
        self.update(fence, "increment", |current| {
            current.checked_add(1).map(|next| (current, next)).ok_or_else(|| {
                HaError::corrupt(format!("checkpoint counter {}", self.path), "the counter is at its maximum")
            })
        })
        .await
    }

    /// Hands out the next checkpoint id, but not below `at_least` (a job restored from
    /// checkpoint `n` continues at `n + 1` at least); only while `fence` holds.
    pub async fn get_and_increment_at_least(&self, fence: &Fence, at_least: u64) -> Result<u64, HaError> {
        self.update(fence, "increment", |current| {
            let id = current.max(at_least);
            id.checked_add(1).map(|next| (id, next)).ok_or_else(|| {
                HaError::corrupt(format!("checkpoint counter {}", self.path), "the counter is at its maximum")
            })
        })
        .await
    }

    /// Sets the next id to hand out (after a restore from a savepoint, say); only while
    /// `fence` holds. Returns the previous value.
    pub async fn set(&self, fence: &Fence, next: u64) -> Result<u64, HaError> {
        self.update(fence, "set", |current| Ok((current, next))).await
    }

    /// Deletes the counter (the job reached a terminal state); only while `fence` holds.
    pub async fn remove(&self, fence: &Fence) -> Result<(), HaError> {
        let op = format!("delete checkpoint counter {}", self.path);
        match commit_retrying(&self.zk, fence, &op, &[FencedOp::Delete { path: &self.path, version: None }]).await {
            Ok(_) => Ok(()),
            Err(FencedFailure::Step { source: ZkError::NoNode, .. }) => Ok(()),
            Err(e) => Err(session_loss_is_not_leader(e.into_error())),
        }
    }

    async fn update(
        &self,
        fence: &Fence,
        what: &str,
        next: impl Fn(u64) -> Result<(u64, u64), HaError>,
    ) -> Result<u64, HaError> {
        self.compare_and_set(fence, what, next).await.map_err(session_loss_is_not_leader)
    }

    /// Compare-and-set loop: reads the value and its version, computes `(result, new value)`,
    /// writes the new value if the version is unchanged, starts over if not.
    async fn compare_and_set(
        &self,
        fence: &Fence,
        what: &str,
        next: impl Fn(u64) -> Result<(u64, u64), HaError>,
    ) -> Result<u64, HaError> {
        let op = format!("{what} checkpoint counter {}", self.path);
        fence.check_local(&op)?;
        let parent = self.zk.paths().checkpoint_counters();
        self.zk.ensure_path(&parent).await?;
        for race in 1..=MAX_RACES {
            let current = self.zk.get_data_opt(&self.path).await?;
            let (value, version) = match &current {
                None => (INITIAL_CHECKPOINT_ID, None),
                Some((data, version)) => (decode(&self.path, data)?, Some(*version)),
            };
            let (result, new_value) = next(value)?;
            let bytes = new_value.to_be_bytes();
            let step = match version {
                None => FencedOp::Create { path: &self.path, data: &bytes },
                Some(v) => FencedOp::SetData { path: &self.path, data: &bytes, version: Some(v) },
            };
            match commit_retrying(&self.zk, fence, &op, &[step]).await {
                Ok(_) => return Ok(result),
                // Someone else wrote (or created) first: start over on fresh data.
                Err(FencedFailure::Step {
                    source: ZkError::BadVersion | ZkError::NodeExists | ZkError::NoNode,
                    ..
                }) => {
                    tracing::debug!("{op}: lost compare-and-set race {race}, retrying");
                }
                Err(e) => return Err(e.into_error()),
            }
        }
        Err(HaError::Contention { op, attempts: MAX_RACES })
    }
}

fn decode(path: &str, data: &[u8]) -> Result<u64, HaError> {
    let bytes: [u8; 8] = data.try_into().map_err(|_| {
        HaError::corrupt(format!("checkpoint counter {path}"), format!("expected 8 bytes, found {}", data.len()))
    })?;
    Ok(u64::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(decode("/c", &7u64.to_be_bytes()).ok(), Some(7));
        let err = decode("/c", b"12").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("/c") && err.contains("8 bytes"), "{err}");
    }
}
