//! Transactional sinks: exactly-once output through two-phase commit tied to checkpoints.
//!
//! A plain sink writes records as they come, so after a failover the records replayed since
//! the last completed checkpoint are written a second time. A [`TwoPhaseCommitSink`] instead
//! writes into a *transaction* that stays invisible until the checkpoint covering its records
//! has completed; the [`TwoPhaseCommitOperator`] drives the transactions from the checkpoint
//! events of the chain (Flink's `TwoPhaseCommitSinkFunction`):
//!
//! - records go into the open transaction;
//! - when the checkpoint barrier reaches the sink, the open transaction is *pre-committed*
//!   (made durable, not yet visible), filed as pending under that checkpoint, stored in the
//!   checkpoint, and a new transaction begins;
//! - when checkpoint `n` completes, every pending transaction filed at or before `n` is
//!   committed (made visible);
//! - when checkpoint `n` is aborted, nothing happens: without a failover its records are not
//!   replayed, so its transaction stays pending and the next completed checkpoint commits it;
//! - on restore after a failover, the transactions pending in the restored checkpoint are
//!   committed (again, possibly: commits are idempotent) and the transaction that was open at
//!   that checkpoint is aborted, since its records are replayed;
//! - at the end of a bounded input everything is pre-committed and committed at once.

mod exactly_once_file;
mod two_phase;

#[cfg(test)]
mod tests;

pub use exactly_once_file::{ExactlyOnceTextFileSink, FileTxn};
pub use two_phase::TwoPhaseCommitOperator;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::UserError;

/// Where a sink instance runs: what it needs to name its transactions so that subtasks do
/// not collide and a restored subtask can find its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkContext {
    /// The subtask index.
    pub subtask: u32,
    /// The sink's parallelism.
    pub parallelism: u32,
    /// The operator's name, for messages.
    pub name: String,
}

/// What a restore did with the restored transactions, handed to
/// [`TwoPhaseCommitSink::initialize`] so the sink can continue its naming where the restored
/// state left off and clean up what no state refers to any more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery<Txn> {
    /// Whether the operator was restored from a checkpoint at all (`false`: a fresh start,
    /// or a restart before any checkpoint completed).
    pub restored: bool,
    /// The subtask indices of the former subtasks whose states were restored here (one, the
    /// own index, without rescaling; several or none after rescaling).
    pub restored_from: Vec<u32>,
    /// Transactions pending in the restored states, committed by the restore.
    pub committed: Vec<Txn>,
    /// Transactions open at the restored checkpoint, aborted by the restore (their records
    /// are replayed).
    pub aborted: Vec<Txn>,
}

impl<Txn> Recovery<Txn> {
    /// A fresh start: nothing restored.
    pub fn fresh() -> Self {
        Self { restored: false, restored_from: Vec::new(), committed: Vec::new(), aborted: Vec::new() }
    }
}

/// A sink whose output becomes visible transaction by transaction, driven by checkpoints
/// ([`TwoPhaseCommitOperator`]), for exactly-once results across failovers.
///
/// Transactions are values ([`TwoPhaseCommitSink::Txn`]) stored in checkpoints, so they must
/// carry everything needed to commit or abort them after a restore in a new process: names,
/// not handles. Every method may be called on a sink instance other than the one that began
/// the transaction.
pub trait TwoPhaseCommitSink<T>: Send + 'static {
    /// A transaction's identity, stored in checkpoints.
    type Txn: Serialize + DeserializeOwned + Clone + Send + 'static;

    /// Called once before the first [`TwoPhaseCommitSink::begin`]: after a restore, with what
    /// the restore committed and aborted; on a fresh start with [`Recovery::fresh`]. Lets the
    /// sink pick up deterministic naming where the restored state left off and clean
    /// leftovers of a failed attempt.
    fn initialize(&mut self, ctx: &SinkContext, recovery: &Recovery<Self::Txn>) -> Result<(), UserError> {
        let _ = (ctx, recovery);
        Ok(())
    }

    /// The watermark of the sink's input advanced to `watermark` (`i64::MAX` at the end of
    /// input). Sinks acting on event time note it, e.g. a file sink committing partitions by
    /// partition time; by default it is ignored.
    fn watermark(&mut self, watermark: i64) -> Result<(), UserError> {
        let _ = watermark;
        Ok(())
    }

    /// Opens a new transaction; records written until the next checkpoint go into it.
    fn begin(&mut self, ctx: &SinkContext) -> Result<Self::Txn, UserError>;

    /// Writes one record into `txn` (not visible yet).
    fn write(&mut self, txn: &mut Self::Txn, value: T, timestamp: i64) -> Result<(), UserError>;

    /// Makes `txn` durable so that a commit can no longer fail for lack of its data; called
    /// when a checkpoint barrier reaches the sink. No record is written to `txn` afterwards.
    fn pre_commit(&mut self, txn: &mut Self::Txn) -> Result<(), UserError>;

    /// Makes a pre-committed `txn` visible. Must be idempotent: after a failover the restore
    /// commits again every transaction pending in the restored checkpoint, some of which may
    /// have been committed already.
    fn commit(&mut self, txn: Self::Txn) -> Result<(), UserError>;

    /// Discards `txn` and its data.
    fn abort(&mut self, txn: Self::Txn) -> Result<(), UserError>;

    /// Commits a transaction found pending in restored state; defaults to
    /// [`TwoPhaseCommitSink::commit`].
    fn recover_and_commit(&mut self, ctx: &SinkContext, txn: Self::Txn) -> Result<(), UserError> {
        let _ = ctx;
        self.commit(txn)
    }

    /// Aborts the transaction that was open at the restored checkpoint (its data may have
    /// grown after the checkpoint; its records are replayed); defaults to
    /// [`TwoPhaseCommitSink::abort`].
    fn recover_and_abort(&mut self, ctx: &SinkContext, txn: Self::Txn) -> Result<(), UserError> {
        let _ = ctx;
        self.abort(txn)
    }
}
