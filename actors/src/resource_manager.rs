//! The ResourceManager: registry of TaskExecutors and their slots, and the place where jobs
//! ask for slots. Requests that cannot be served yet wait, up to `slot.request.timeout`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::gateway::{
    AllocateSlot, FreeSlot, GetSlotReport, RegisterTaskExecutor, ReleaseSlots, RequestSlots, SlotAssignment, SlotError,
    UnregisterTaskExecutor,
};
use crate::ids::JobId;
use crate::services::Directory;
use crate::slot_manager::SlotManager;
use crate::supervision::{ChildExited, ExitReason};

struct Pending {
    id: u64,
    job: JobId,
    count: u32,
    timeout_ms: u64,
    reply: oneshot::Sender<Result<Vec<SlotAssignment>, SlotError>>,
}

/// The ResourceManager actor.
pub struct ResourceManager {
    /// Where the TaskExecutors and JobMasters are; slot counts are published there.
    directory: Arc<Directory>,
    parent: Recipient<ChildExited>,
    exit: ExitReason,
    slots: SlotManager,
    pending: VecDeque<Pending>,
    next_pending: u64,
}

impl ResourceManager {
    /// A ResourceManager capping slots at `max_slots`.
    pub fn new(directory: Arc<Directory>, max_slots: Option<u32>, parent: Recipient<ChildExited>) -> Self {
        Self {
            directory,
            parent,
            exit: ExitReason::Normal,
            slots: SlotManager::new(max_slots),
            pending: VecDeque::new(),
            next_pending: 0,
        }
    }

    fn executors(&self) -> u32 {
        self.directory.task_executors.len() as u32
    }

    fn grant(&self, assignments: &[SlotAssignment], job: JobId) {
        for a in assignments {
            if let Some(te) = self.directory.task_executors.get(&a.resource_id) {
                te.do_send(AllocateSlot { job_id: job, slot_index: a.slot_index, allocation_id: a.allocation_id });
            }
        }
    }

    /// Publishes slot occupancy for readers that must not wait on this actor.
    fn publish(&self) {
        let r = self.slots.report(self.executors());
        self.directory.slots.total.store(r.total as u64, std::sync::atomic::Ordering::Relaxed);
        self.directory.slots.free.store(r.free as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// Serves waiting requests in arrival order while slots allow.
    fn serve_pending(&mut self) {
        self.serve_waiting();
        self.publish();
    }

    fn serve_waiting(&mut self) {
        while let Some(p) = self.pending.pop_front() {
            match self.slots.try_allocate(p.job, p.count) {
                Ok(Some(a)) => {
                    self.grant(&a, p.job);
                    if p.reply.send(Ok(a)).is_err() {
                        // The requester is gone: give the slots back.
                        self.slots.release(p.job);
                    }
                }
                Ok(None) => {
                    self.pending.push_front(p);
                    return;
                }
                Err(e) => {
                    let _ = p.reply.send(Err(e));
                }
            }
        }
    }
}

// Senders reach it through a `Probed` address: thread dumps show its mailbox.
crate::counted_mailbox!(ResourceManager);

impl Actor for ResourceManager {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Self::Context) {
        for p in self.pending.drain(..) {
            let _ = p.reply.send(Err(SlotError::ShuttingDown));
        }
        self.parent
            .do_send(ChildExited { child: crate::supervision::ChildId::ResourceManager, reason: self.exit.clone() });
    }
}

impl Handler<RegisterTaskExecutor> for ResourceManager {
    type Result = ();
    fn handle(&mut self, msg: RegisterTaskExecutor, _: &mut Self::Context) {
        tracing::info!(executor = %msg.resource_id, slots = msg.slots, "task executor registered");
        self.slots.register(&msg.resource_id, msg.slots);
        self.serve_pending();
    }
}

impl Handler<UnregisterTaskExecutor> for ResourceManager {
    type Result = ();
    fn handle(&mut self, msg: UnregisterTaskExecutor, _: &mut Self::Context) {
        let jobs = self.slots.unregister(&msg.resource_id);
        tracing::info!(executor = %msg.resource_id, affected_jobs = jobs.len(), "task executor unregistered");
        for job in jobs {
            if let Some(jm) = self.directory.job_masters.get(&job) {
                jm.do_send(crate::job_master::TaskExecutorLost {
                    resource_id: msg.resource_id.clone(),
                    reason: msg.reason.clone(),
                });
            }
        }
        self.publish();
    }
}

impl Handler<RequestSlots> for ResourceManager {
    type Result = ResponseFuture<Result<Vec<SlotAssignment>, SlotError>>;
    fn handle(&mut self, msg: RequestSlots, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        match self.slots.try_allocate(msg.job_id, msg.count) {
            Ok(Some(a)) => {
                self.grant(&a, msg.job_id);
                let _ = tx.send(Ok(a));
                self.publish();
            }
            Err(e) => {
                let _ = tx.send(Err(e));
            }
            Ok(None) => {
                let id = self.next_pending;
                self.next_pending += 1;
                self.pending.push_back(Pending {
                    id,
                    job: msg.job_id,
                    count: msg.count,
                    timeout_ms: msg.timeout_ms,
                    reply: tx,
                });
                ctx.run_later(Duration::from_millis(msg.timeout_ms), move |act, _| {
                    if let Some(pos) = act.pending.iter().position(|p| p.id == id) {
                        if let Some(p) = act.pending.remove(pos) {
                            let r = act.slots.report(act.executors());
                            let _ = p.reply.send(Err(SlotError::Timeout {
                                needed: p.count,
                                free: r.free,
                                total: r.total,
                                max: act.slots.max_text(),
                                timeout_ms: p.timeout_ms,
                            }));
                        }
                    }
                });
            }
        }
        Box::pin(async move { rx.await.unwrap_or(Err(SlotError::ShuttingDown)) })
    }
}

impl Handler<ReleaseSlots> for ResourceManager {
    type Result = ();
    fn handle(&mut self, msg: ReleaseSlots, _: &mut Self::Context) {
        self.pending.retain(|p| p.job != msg.job_id);
        for (rid, slot) in self.slots.release(msg.job_id) {
            if let Some(te) = self.directory.task_executors.get(&rid) {
                te.do_send(FreeSlot { slot_index: slot });
            }
        }
        self.serve_pending();
    }
}

impl Handler<GetSlotReport> for ResourceManager {
    type Result = MessageResult<GetSlotReport>;
    fn handle(&mut self, _: GetSlotReport, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.slots.report(self.executors()))
    }
}

/// A fault injected for supervision tests and chaos drills: the handler panics.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct InjectResourceManagerFault;

impl Handler<InjectResourceManagerFault> for ResourceManager {
    type Result = ();
    fn handle(&mut self, _: InjectResourceManagerFault, ctx: &mut Self::Context) {
        if let Err(msg) = crate::supervision::catch_panic(|| panic!("injected fault in the resource manager")) {
            self.exit = ExitReason::Panicked(msg.to_string());
            ctx.stop();
        }
    }
}

/// Stops the ResourceManager.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct StopResourceManager;

impl Handler<StopResourceManager> for ResourceManager {
    type Result = ();
    fn handle(&mut self, _: StopResourceManager, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
