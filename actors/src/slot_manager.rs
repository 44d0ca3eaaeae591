//! The ResourceManager's bookkeeping of slots, as pure decisions: which slots a request gets,
//! whether it must wait, or whether it can never be served. No actors, no timers here.

use std::collections::BTreeMap;

use crate::gateway::{SlotAssignment, SlotError, SlotReport};
use crate::ids::{AllocationId, JobId, ResourceId};

#[derive(Debug, Clone, PartialEq, Eq)]
enum SlotState {
    Free,
    Allocated(JobId, AllocationId),
}

/// Slots of all registered TaskExecutors.
#[derive(Debug, Default)]
pub struct SlotManager {
    slots: BTreeMap<(ResourceId, u32), SlotState>,
    max_slots: Option<u32>,
    next_allocation: u64,
}

impl SlotManager {
    /// A slot manager that hands out at most `max_slots` slots at once
    /// (`slotmanager.number-of-slots.max`).
    pub fn new(max_slots: Option<u32>) -> Self {
        Self { slots: BTreeMap::new(), max_slots, next_allocation: 1 }
    }

    /// Adds an executor's slots.
    pub fn register(&mut self, rid: &ResourceId, slots: u32) {
        for i in 0..slots {
            self.slots.entry((rid.clone(), i)).or_insert(SlotState::Free);
        }
    }

    /// Removes an executor; returns the jobs that had slots there.
    pub fn unregister(&mut self, rid: &ResourceId) -> Vec<JobId> {
        let mut jobs = Vec::new();
        self.slots.retain(|(r, _), s| {
            if r != rid {
                return true;
            }
            if let SlotState::Allocated(j, _) = s {
                jobs.push(*j);
            }
            false
        });
        jobs.sort();
        jobs.dedup();
        jobs
    }

    fn allocated(&self) -> u32 {
        self.slots.values().filter(|s| **s != SlotState::Free).count() as u32
    }

    /// Current occupancy.
    pub fn report(&self, task_executors: u32) -> SlotReport {
        let total = self.slots.len() as u32;
        SlotReport { total, free: total - self.allocated(), task_executors }
    }

    /// The cap as text for messages.
    pub fn max_text(&self) -> String {
        self.max_slots.map_or("unlimited".to_string(), |m| m.to_string())
    }

    /// Tries to allocate `count` slots to `job`: `Ok(Some)` if granted now, `Ok(None)` if the
    /// request must wait, `Err` if it can never be granted.
    pub fn try_allocate(&mut self, job: JobId, count: u32) -> Result<Option<Vec<SlotAssignment>>, SlotError> {
        if let Some(max) = self.max_slots {
            if count > max {
                return Err(SlotError::AboveMax { needed: count, max });
            }
            if self.allocated() + count > max {
                return Ok(None);
            }
        }
        let all_free: Vec<&(ResourceId, u32)> =
            self.slots.iter().filter(|(_, s)| **s == SlotState::Free).map(|(k, _)| k).collect();
        if (all_free.len() as u32) < count {
            return Ok(None);
        }
        // A job fits in one TaskExecutor when one has enough free slots: its channels then
        // stay inside one process. Otherwise it spreads, in TaskExecutor order.
        let mut per_executor: BTreeMap<&ResourceId, u32> = BTreeMap::new();
        for (r, _) in &all_free {
            *per_executor.entry(r).or_default() += 1;
        }
        let packed = per_executor.into_iter().find(|(_, n)| *n >= count).map(|(r, _)| r.clone());
        let free: Vec<(ResourceId, u32)> = all_free
            .into_iter()
            .filter(|(r, _)| packed.as_ref().is_none_or(|p| p == r))
            .take(count as usize)
            .cloned()
            .collect();
        let mut out = Vec::with_capacity(free.len());
        for key in free {
            let alloc = AllocationId(self.next_allocation);
            self.next_allocation += 1;
            self.slots.insert(key.clone(), SlotState::Allocated(job, alloc));
            out.push(SlotAssignment { resource_id: key.0, slot_index: key.1, allocation_id: alloc });
        }
        Ok(Some(out))
    }

    /// Frees the job's slots; returns them.
    pub fn release(&mut self, job: JobId) -> Vec<(ResourceId, u32)> {
        let mut freed = Vec::new();
        for (k, s) in self.slots.iter_mut() {
            if matches!(s, SlotState::Allocated(j, _) if *j == job) {
                *s = SlotState::Free;
                freed.push(k.clone());
            }
        }
        freed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_respects_free_slots_and_the_cap() {
        let mut m = SlotManager::new(Some(3));
        let te = ResourceId("te".into());
        m.register(&te, 4);
        assert_eq!(m.try_allocate(JobId(1), 5), Err(SlotError::AboveMax { needed: 5, max: 3 }));
        assert_eq!(m.try_allocate(JobId(1), 2).unwrap().map(|v| v.len()), Some(2));
        assert_eq!(m.try_allocate(JobId(2), 2).unwrap(), None, "cap of 3 reached");
        assert_eq!(m.release(JobId(1)).len(), 2);
        assert_eq!(m.try_allocate(JobId(2), 2).unwrap().map(|v| v.len()), Some(2));
        assert_eq!(m.report(1), SlotReport { total: 4, free: 2, task_executors: 1 });
        assert_eq!(m.unregister(&te), vec![JobId(2)]);
    }

    #[test]
    fn a_job_is_packed_into_one_task_executor_when_one_has_room() {
        let mut m = SlotManager::new(None);
        let (a, b) = (ResourceId("a".into()), ResourceId("b".into()));
        m.register(&a, 2);
        m.register(&b, 2);
        let first = m.try_allocate(JobId(1), 1).unwrap().unwrap();
        assert_eq!(first[0].resource_id, a);
        // a has one free slot left, b two: a two-slot job goes to b alone.
        let second = m.try_allocate(JobId(2), 2).unwrap().unwrap();
        assert!(second.iter().all(|s| s.resource_id == b), "{second:?}");
        // Nobody has two free slots now... one each on a (1) and none on b: a 1-slot job fits a.
        assert_eq!(m.try_allocate(JobId(3), 2).unwrap(), None);
        m.release(JobId(2));
        // Three slots free (a:1, b:2); three needed spreads over both.
        let third = m.try_allocate(JobId(3), 3).unwrap().unwrap();
        assert_eq!(third.iter().filter(|s| s.resource_id == a).count(), 1);
        assert_eq!(third.iter().filter(|s| s.resource_id == b).count(), 2);
    }
}
