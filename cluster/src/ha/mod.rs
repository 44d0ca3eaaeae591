//! High availability with ZooKeeper (`high-availability: zookeeper`): the building blocks a
//! JobManager needs to survive its own loss.
//!
//! - [`HaConfig`] reads Flink's `high-availability.*` keys.
//! - [`ZkClient`] is the session: every call bounded, failures retried with backoff and logged
//!   with the quorum's address; over TLS with `high-availability.zookeeper.client.secure`
//!   (PEM files, rustls on ring), a refused certificate or TLS on one side only is a
//!   [`HaError::Tls`] naming the member, not an endless retry.
//! - [`LeaderElection`] elects one leader among the JobManagers (ephemeral sequential nodes),
//!   publishes its address ([`leader_address`], for TaskManagers and REST clients) and hands
//!   out a [`Fence`]: leader writes are applied only while its election node exists
//!   ([`fenced_write`]), so a deposed leader never commits.
//! - [`CheckpointIdCounter`] (versioned compare-and-set), [`JobGraphStore`] and
//!   [`CompletedCheckpointStore`] (files in `storageDir`, pointers in ZooKeeper) are what a
//!   new leader reads to recover every job from its latest completed checkpoint;
//!   [`ExceptionHistoryStore`] (the same way) keeps each job's exception history for it.
//!
//! ZooKeeper layout: see [`paths`]. ZooKeeper itself is not part of riffle; tests start one
//! with `scripts/zookeeper.sh`.

mod checksum;
mod client;
pub mod config;
mod counter;
mod election;
mod error;
mod fenced;
pub mod files;
pub mod job_manager;
pub mod paths;
mod stores;
mod tls;

use zookeeper_client::{Acls, CreateMode, CreateOptions};

pub use client::ZkClient;
pub use config::{ClientIdentity, HaConfig, ZooKeeperHaConfig, ZooKeeperTlsConfig};
pub use counter::{CheckpointIdCounter, INITIAL_CHECKPOINT_ID};
pub use election::{leader_address, LeaderElection, LeaderInfo, Leadership};
pub use error::HaError;
pub use fenced::{fenced_write, Fence, FencedOp};
pub use paths::HaPaths;
pub use stores::{CompletedCheckpointStore, ExceptionHistoryStore, JobGraphStore};

/// Options of the persistent nodes the HA services create (open ACLs: the quorum is expected
/// to be reachable by the cluster only, as in Flink's default).
pub(crate) const PERSISTENT: CreateOptions<'static> = CreateMode::Persistent.with_acls(Acls::anyone_all());
