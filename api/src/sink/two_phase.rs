//! The chain link that drives a [`TwoPhaseCommitSink`] from checkpoint events.

use std::marker::PhantomData;

use serde::{Deserialize, Serialize};

use super::{Recovery, SinkContext, TwoPhaseCommitSink};
use crate::error::{TaskError, TaskResult};
use crate::link::Input;
use crate::metrics::LocalCounter;
use crate::operators::OpId;
use crate::snapshot::{OperatorRestore, OperatorSnapshots};

/// What the operator stores in a checkpoint (one per subtask).
#[derive(Serialize, Deserialize)]
struct TxnState<Txn> {
    /// The subtask that took the snapshot.
    subtask: u32,
    /// Pre-committed transactions not known to be committed, by checkpoint id, oldest first.
    pending: Vec<(u64, Txn)>,
    /// The transaction opened at the snapshot (`None` after the end of input).
    current: Option<Txn>,
}

/// The same, borrowed, to snapshot without cloning (same field order: rmp encodes structs
/// as arrays).
#[derive(Serialize)]
struct TxnStateRef<'a, Txn> {
    subtask: u32,
    pending: &'a [(u64, Txn)],
    current: Option<&'a Txn>,
}

/// Drives a [`TwoPhaseCommitSink`]: one open transaction for the records since the last
/// checkpoint, pre-committed when the barrier arrives and committed when that checkpoint
/// completes (see the [module docs](super) for the whole protocol).
///
/// Aborted checkpoints leave their transactions pending: without a failover their records
/// are not sent again, so the next completed checkpoint must commit them. After a failover
/// [`Input::restore`] commits what the restored checkpoint had pending and aborts what it had
/// open, whose records the sources replay.
pub struct TwoPhaseCommitOperator<T, S: TwoPhaseCommitSink<T>> {
    sink: S,
    ctx: SinkContext,
    id: OpId,
    /// The open transaction (begun lazily, so a restore can come first).
    current: Option<S::Txn>,
    /// Pre-committed transactions by checkpoint id, ascending.
    pending: Vec<(u64, S::Txn)>,
    /// `initialize` was called (by a restore, or before the first transaction).
    initialized: bool,
    /// The input ended (and everything was committed, unless a final checkpoint commits it).
    finished: bool,
    /// Whether a checkpoint follows the end of input (FLIP-147): then the last transaction
    /// is committed by it, not at the end of input.
    final_checkpoint: Option<crate::final_checkpoint::FinalCheckpoint>,
    counter: Option<LocalCounter>,
    _t: PhantomData<fn(T)>,
}

impl<T, S: TwoPhaseCommitSink<T>> TwoPhaseCommitOperator<T, S> {
    /// An operator driving `sink` in subtask `ctx.subtask`; `id` names it in errors and keys
    /// its state; `counter` counts records (the job's sink-record counter).
    pub fn new(sink: S, ctx: SinkContext, id: OpId, counter: Option<LocalCounter>) -> Self {
        Self {
            sink,
            ctx,
            id,
            current: None,
            pending: Vec::new(),
            initialized: false,
            finished: false,
            final_checkpoint: None,
            counter,
            _t: PhantomData,
        }
    }

    /// Asks for a final checkpoint after the end of input (FLIP-147) and, if the runtime
    /// says one comes, leaves the last transaction for it to commit.
    pub fn with_final_checkpoint(mut self, f: crate::final_checkpoint::FinalCheckpoint) -> Self {
        f.want();
        self.final_checkpoint = Some(f);
        self
    }

    /// The sink, e.g. to inspect it in tests.
    pub fn sink(&self) -> &S {
        &self.sink
    }

    /// How many pre-committed transactions wait for a completed checkpoint.
    pub fn pending_transactions(&self) -> usize {
        self.pending.len()
    }

    fn err(&self, what: &str, e: crate::error::UserError) -> TaskError {
        let inner = TaskError::new(&self.id.name, e.as_ref());
        TaskError::msg(&self.id.name, format!("{what}: {}", inner.message))
    }

    /// Initializes the sink for a fresh start if no restore did.
    fn ensure_initialized(&mut self) -> TaskResult {
        if !self.initialized {
            self.id.enter();
            self.sink
                .initialize(&self.ctx, &Recovery::fresh())
                .map_err(|e| self.err("cannot initialize the sink", e))?;
            self.initialized = true;
        }
        Ok(())
    }

    /// The open transaction, begun if there is none.
    fn ensure_current(&mut self) -> Result<&mut S::Txn, TaskError> {
        self.ensure_initialized()?;
        if self.current.is_none() {
            self.id.enter();
            let txn = self.sink.begin(&self.ctx).map_err(|e| self.err("cannot begin a transaction", e))?;
            self.current = Some(txn);
        }
        match self.current.as_mut() {
            Some(t) => Ok(t),
            None => Err(TaskError::msg(&self.id.name, "internal error: no open transaction")),
        }
    }

    /// Commits the pending transactions filed at or before checkpoint `upto`, oldest first.
    /// A transaction leaves the list only once committed, so a failing commit is retried by
    /// the restore after the failover it causes.
    fn commit_pending(&mut self, upto: u64) -> TaskResult {
        while let Some((cp, txn)) = self.pending.first() {
            if *cp > upto {
                break;
            }
            let txn = txn.clone();
            self.id.enter();
            self.sink.commit(txn).map_err(|e| self.err("cannot commit a transaction", e))?;
            self.pending.remove(0);
        }
        Ok(())
    }
}

impl<T, S: TwoPhaseCommitSink<T>> Input<T> for TwoPhaseCommitOperator<T, S> {
    fn push(&mut self, value: T, timestamp: i64) -> TaskResult {
        if self.finished {
            return Err(TaskError::msg(&self.id.name, "a record arrived after the end of input"));
        }
        if let Some(c) = self.counter.as_mut() {
            c.add(1);
        }
        self.ensure_current()?;
        self.id.enter();
        let (sink, current) = (&mut self.sink, &mut self.current);
        let r = match current.as_mut() {
            Some(txn) => sink.write(txn, value, timestamp),
            None => return Err(TaskError::msg(&self.id.name, "internal error: no open transaction")),
        };
        r.map_err(|e| self.err("cannot write a record", e))
    }

    /// Hands the watermark to the sink (event-time decisions such as partition commit).
    fn watermark(&mut self, watermark: i64) -> TaskResult {
        self.id.enter();
        self.sink.watermark(watermark).map_err(|e| self.err("cannot take a watermark", e))
    }

    fn idle(&mut self, _: bool) -> TaskResult {
        Ok(())
    }

    /// Bounded input ended: pre-commit the open transaction. If a final checkpoint follows
    /// (FLIP-147), it is filed under that checkpoint and committed when it completes, like
    /// every other; otherwise no checkpoint comes after this, so commit everything now.
    fn end_input(&mut self) -> TaskResult {
        if let Some(c) = self.counter.as_mut() {
            c.publish();
        }
        if self.finished {
            return Ok(());
        }
        self.ensure_initialized()?;
        if let Some(mut txn) = self.current.take() {
            self.id.enter();
            self.sink.pre_commit(&mut txn).map_err(|e| self.err("cannot pre-commit a transaction", e))?;
            self.pending.push((u64::MAX, txn));
        }
        self.finished = true;
        if self.final_checkpoint.as_ref().is_some_and(|f| f.coming()) {
            return Ok(());
        }
        self.commit_pending(u64::MAX)?;
        Ok(())
    }

    fn processing_time(&mut self, _: i64) -> TaskResult {
        Ok(())
    }

    fn next_processing_time(&self) -> Option<i64> {
        None
    }

    /// Every record before the barrier is in the open transaction: pre-commit it, file it
    /// under this checkpoint, store what is pending, and open the next transaction (stored
    /// too, so that a restore aborts it and the sink can reuse its name for the replay).
    fn snapshot(&mut self, out: &mut OperatorSnapshots) -> TaskResult {
        if !self.finished {
            self.ensure_current()?;
            if let Some(mut txn) = self.current.take() {
                self.id.enter();
                self.sink.pre_commit(&mut txn).map_err(|e| self.err("cannot pre-commit a transaction", e))?;
                self.pending.push((out.checkpoint_id, txn));
            }
            self.ensure_current()?;
        } else {
            // After the end of input: the last transaction waits for this checkpoint.
            for (cp, _) in self.pending.iter_mut().filter(|(cp, _)| *cp == u64::MAX) {
                *cp = out.checkpoint_id;
            }
        }
        let state = TxnStateRef { subtask: self.ctx.subtask, pending: &self.pending, current: self.current.as_ref() };
        out.put(self.id.index, &self.id.name, &state)
    }

    /// Commits what the restored checkpoint(s) had pending (a commit of the same transaction
    /// may have happened before the failure: commits are idempotent) and aborts what they
    /// had open, then initializes the sink with what was done.
    fn restore(&mut self, from: &OperatorRestore) -> TaskResult {
        let mut states: Vec<TxnState<S::Txn>> = from.get(self.id.index, &self.id.name)?;
        states.sort_by_key(|s| s.subtask);
        let mut recovery = Recovery { restored: true, ..Recovery::fresh() };
        self.id.enter();
        for state in states {
            recovery.restored_from.push(state.subtask);
            for (_, txn) in state.pending {
                self.sink
                    .recover_and_commit(&self.ctx, txn.clone())
                    .map_err(|e| self.err("cannot commit a restored transaction", e))?;
                recovery.committed.push(txn);
            }
            if let Some(txn) = state.current {
                self.sink
                    .recover_and_abort(&self.ctx, txn.clone())
                    .map_err(|e| self.err("cannot abort a restored transaction", e))?;
                recovery.aborted.push(txn);
            }
        }
        self.pending.clear();
        self.current = None;
        self.finished = false;
        self.sink.initialize(&self.ctx, &recovery).map_err(|e| self.err("cannot initialize the sink", e))?;
        self.initialized = true;
        Ok(())
    }

    /// `completed`: commit every transaction pending at or before `id` (a later checkpoint
    /// subsumes earlier ones). Aborted: keep them pending, the next completed checkpoint
    /// commits them (no records are replayed without a failover).
    fn notify_checkpoint(&mut self, id: u64, completed: bool) -> TaskResult {
        if completed {
            self.commit_pending(id)
        } else {
            tracing::debug!(operator = %self.id.name, checkpoint = id, pending = self.pending.len(),
                "checkpoint aborted: its transaction stays pending until a later checkpoint completes");
            Ok(())
        }
    }
}
