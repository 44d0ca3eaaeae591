//! A Slot: one OS thread (an actix Arbiter) that runs the subtasks of the job holding it.
//! Its children are Subtasks; a subtask's exit escalates to the TaskExecutor, which reports
//! it to the JobMaster (the JobMaster decides about the job, not the slot).

use std::collections::HashMap;

use actix::prelude::*;

use crate::gateway::TaskOutcome;
use crate::ids::ExecutionId;
use crate::subtask::{CancelSubtask, Subtask, SubtaskControl, SubtaskExited, SubtaskSpec};
use crate::supervision::{catch_panic, ChildExited, ExitReason};

/// Starts a subtask in this slot.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DeploySubtask(pub SubtaskSpec);

/// Cancels a subtask of this slot.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct CancelInSlot(pub ExecutionId);

/// Passes a control message to a subtask of this slot.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct ControlInSlot(pub ExecutionId, pub SubtaskControl);

/// A fault injected for supervision tests and chaos drills: the slot's handler panics.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct InjectSlotFault;

/// How many subtasks run in the slot.
#[derive(Debug, Clone, Message)]
#[rtype(result = "usize")]
pub struct CountSubtasks;

/// The Slot actor.
pub struct Slot {
    index: u32,
    parent: Recipient<SubtaskExited>,
    on_exit: Recipient<ChildExited>,
    subtasks: HashMap<ExecutionId, Addr<Subtask>>,
    reason: ExitReason,
}

impl Slot {
    /// Slot `index`, reporting subtask exits to `parent` and its own exit to `on_exit`.
    pub fn new(index: u32, parent: Recipient<SubtaskExited>, on_exit: Recipient<ChildExited>) -> Self {
        Self { index, parent, on_exit, subtasks: HashMap::new(), reason: ExitReason::Normal }
    }
}

impl Actor for Slot {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Self::Context) {
        for (_, s) in self.subtasks.drain() {
            s.do_send(CancelSubtask);
        }
        self.on_exit
            .do_send(ChildExited { child: crate::supervision::ChildId::Slot(self.index), reason: self.reason.clone() });
    }
}

impl Handler<DeploySubtask> for Slot {
    type Result = ();
    fn handle(&mut self, msg: DeploySubtask, ctx: &mut Self::Context) {
        let id = msg.0.execution;
        tracing::info!(
            job = %id.job, vertex = id.vertex, subtask = id.subtask, attempt = id.attempt, slot = self.index,
            "deploying subtask"
        );
        // Started on the current arbiter: the slot's own thread.
        let addr = Subtask::new(msg.0, ctx.address().recipient()).start();
        self.subtasks.insert(id, addr);
    }
}

impl Handler<SubtaskExited> for Slot {
    type Result = ();
    fn handle(&mut self, msg: SubtaskExited, _: &mut Self::Context) {
        self.subtasks.remove(&msg.execution);
        let e = msg.execution;
        match &msg.outcome {
            TaskOutcome::Failed(err) => tracing::warn!(
                job = %e.job, vertex = e.vertex, subtask = e.subtask, attempt = e.attempt, "subtask failed: {err}"
            ),
            outcome => tracing::info!(
                job = %e.job, vertex = e.vertex, subtask = e.subtask, attempt = e.attempt, "subtask ended: {outcome:?}"
            ),
        }
        // Strategy for subtasks: escalate, always. The JobMaster owns failover.
        self.parent.do_send(msg);
    }
}

impl Handler<CancelInSlot> for Slot {
    type Result = ();
    fn handle(&mut self, msg: CancelInSlot, _: &mut Self::Context) {
        if let Some(s) = self.subtasks.get(&msg.0) {
            s.do_send(CancelSubtask);
        }
    }
}

impl Handler<ControlInSlot> for Slot {
    type Result = ();
    fn handle(&mut self, msg: ControlInSlot, _: &mut Self::Context) {
        if let Some(s) = self.subtasks.get(&msg.0) {
            s.do_send(msg.1);
        }
    }
}

impl Handler<CountSubtasks> for Slot {
    type Result = usize;
    fn handle(&mut self, _: CountSubtasks, _: &mut Self::Context) -> usize {
        self.subtasks.len()
    }
}

impl Handler<InjectSlotFault> for Slot {
    type Result = ();
    fn handle(&mut self, _: InjectSlotFault, ctx: &mut Self::Context) {
        if let Err(msg) = catch_panic(|| panic!("injected fault in slot {}", self.index)) {
            self.reason = ExitReason::Panicked(msg.to_string());
            ctx.stop();
        }
    }
}
