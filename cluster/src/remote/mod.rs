//! Remote actors: TaskManager processes linked to the JobManager process.
//!
//! A TaskManager process connects to the JobManager's RPC address (`jobmanager.rpc.address`
//! and `.port`, the advertised ones), registers its TaskExecutor and slots, and from then on
//! both sides heartbeat every `heartbeat.interval`; silence for `heartbeat.timeout`, or a
//! broken link, ends it. The JobManager then unregisters the TaskExecutor, whose subtasks fail
//! (the job restarts elsewhere); the TaskManager cancels everything it ran and connects
//! again, as a new registration.
//!
//! Over the link travel the gateway messages of `riffle_actors::peers` ([`protocol`]). A job
//! graph cannot travel (it holds user code): before a job's first task the JobManager sends
//! the graph's origin, and the TaskManager builds the same graph with the
//! [`riffle_api::Programs`] it was started with. Commands carry the JobManager's session, so a
//! TaskManager never obeys a JobManager it has left.
//!
//! - [`jobmanager_side`]: the listener and one task per TaskManager link.
//! - [`taskmanager_side`]: the TaskManager's link, reconnecting with backoff.

pub mod jobmanager_side;
pub mod protocol;
pub mod slot_instances;
pub mod taskmanager_side;

/// Which job holds which slot of a linked TaskExecutor, as the commands on the link say. Both
/// ends of a link keep one, fed the same commands in the same order, so they agree on when a
/// job has left the TaskExecutor: the TaskManager then forgets the job's graph, counters and
/// plugin, and the JobManager sends the job's origin again before its next task there.
#[derive(Debug, Default)]
pub struct SlotHolders {
    slots: std::collections::HashMap<u32, riffle_actors::JobId>,
}

impl SlotHolders {
    /// Follows one command; the job that no longer holds any slot here, if this freed its last.
    pub fn follow(&mut self, command: &riffle_actors::peers::ToTaskExecutor) -> Option<riffle_actors::JobId> {
        use riffle_actors::peers::ToTaskExecutor;
        match command {
            ToTaskExecutor::AllocateSlot(a) => {
                self.slots.insert(a.slot_index, a.job_id);
                None
            }
            ToTaskExecutor::FreeSlot(f) => {
                let job = self.slots.remove(&f.slot_index)?;
                (!self.slots.values().any(|j| *j == job)).then_some(job)
            }
            _ => None,
        }
    }

    /// The job holding `slot`, if any.
    pub fn holder(&self, slot: u32) -> Option<riffle_actors::JobId> {
        self.slots.get(&slot).copied()
    }
}

/// How long a new link may take to register before it is dropped.
pub const REGISTRATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use riffle_actors::gateway::{AllocateSlot, FreeSlot};
    use riffle_actors::ids::AllocationId;
    use riffle_actors::peers::ToTaskExecutor;
    use riffle_actors::JobId;

    use super::SlotHolders;

    fn alloc(job: u128, slot: u32) -> ToTaskExecutor {
        ToTaskExecutor::AllocateSlot(AllocateSlot {
            job_id: JobId(job),
            slot_index: slot,
            allocation_id: AllocationId(1),
        })
    }

    fn free(slot: u32) -> ToTaskExecutor {
        ToTaskExecutor::FreeSlot(FreeSlot { slot_index: slot })
    }

    #[test]
    fn a_job_leaves_when_its_last_slot_is_freed() {
        let mut h = SlotHolders::default();
        assert_eq!(h.follow(&alloc(1, 0)), None);
        assert_eq!(h.follow(&alloc(1, 1)), None);
        assert_eq!(h.follow(&alloc(2, 2)), None);
        assert_eq!(h.holder(1), Some(JobId(1)));
        assert_eq!(h.follow(&free(0)), None, "job 1 still holds slot 1");
        assert_eq!(h.follow(&free(1)), Some(JobId(1)));
        assert_eq!(h.follow(&free(1)), None, "a slot freed twice");
        assert_eq!(h.follow(&free(2)), Some(JobId(2)));
    }
}
