//! Rich functions with operator state: per-subtask list state, checkpointed and
//! redistributed on rescale (Flink's `CheckpointedFunction` with operator list state).

use serde::{Deserialize, Serialize};

use super::OpId;
use crate::error::TaskResult;
use crate::functions::RichMapFunction;
use crate::link::Input;
use crate::snapshot::{encode_state, OperatorRestore, OperatorSnapshots};

/// `map_with_state`: a [`RichMapFunction`] with its operator state.
pub struct MapWithStateOp<O, F> {
    pub(crate) f: F,
    pub(crate) next: Box<dyn Input<O>>,
    pub(crate) id: OpId,
    pub(crate) subtask: u32,
    pub(crate) parallelism: u32,
}

impl<I, O, F: RichMapFunction<I, O>> Input<I> for MapWithStateOp<O, F> {
    #[inline]
    fn push(&mut self, value: I, timestamp: i64) -> TaskResult {
        self.id.enter();
        let o = self.f.map(value).map_err(|e| self.id.err(e))?;
        self.next.push(o, timestamp)
    }
    fn watermark(&mut self, watermark: i64) -> TaskResult {
        self.next.watermark(watermark)
    }
    fn idle(&mut self, idle: bool) -> TaskResult {
        self.next.idle(idle)
    }
    fn end_input(&mut self) -> TaskResult {
        self.next.end_input()
    }
    fn processing_time(&mut self, now: i64) -> TaskResult {
        self.next.processing_time(now)
    }
    fn next_processing_time(&self) -> Option<i64> {
        self.next.next_processing_time()
    }
    fn snapshot(&mut self, out: &mut OperatorSnapshots) -> TaskResult {
        self.id.enter();
        let items = self.f.snapshot_state(out.checkpoint_id).map_err(|e| self.id.err(e))?;
        let (name, subtask, parallelism) = (self.id.name.clone(), self.subtask, self.parallelism);
        out.put_deferred(
            self.id.index,
            Box::new(move || encode_state(&ListStateOut { subtask, parallelism, items: &items }, &name)),
        );
        self.next.snapshot(out)
    }
    fn restore(&mut self, from: &OperatorRestore) -> TaskResult {
        let parts = from.get::<ListStateIn<F::State>>(self.id.index, &self.id.name)?;
        if !parts.is_empty() {
            let mine = redistribute(parts, self.subtask, self.parallelism);
            self.id.enter();
            self.f.restore_state(mine).map_err(|e| self.id.err(e))?;
        }
        self.next.restore(from)
    }
    fn notify_checkpoint(&mut self, id: u64, completed: bool) -> TaskResult {
        if completed {
            self.id.enter();
            self.f.notify_checkpoint_complete(id).map_err(|e| self.id.err(e))?;
        }
        self.next.notify_checkpoint(id, completed)
    }
}

/// One subtask's operator list state in a snapshot, with where it came from.
#[derive(Serialize)]
struct ListStateOut<'a, S> {
    subtask: u32,
    parallelism: u32,
    items: &'a [S],
}

/// [`ListStateOut`] as read back.
#[derive(Deserialize)]
pub(crate) struct ListStateIn<S> {
    subtask: u32,
    parallelism: u32,
    items: Vec<S>,
}

/// Subtask `subtask`'s share of the list state of the former subtasks `parts`: its own
/// items at the same parallelism, else every former item dealt round-robin.
pub(crate) fn redistribute<S>(mut parts: Vec<ListStateIn<S>>, subtask: u32, parallelism: u32) -> Vec<S> {
    if parts.iter().all(|p| p.parallelism == parallelism) {
        return parts.into_iter().filter(|p| p.subtask == subtask).flat_map(|p| p.items).collect();
    }
    parts.sort_by_key(|p| p.subtask);
    let n = parallelism.max(1) as usize;
    parts
        .into_iter()
        .flat_map(|p| p.items)
        .enumerate()
        .filter(|(j, _)| j % n == subtask as usize)
        .map(|(_, s)| s)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(subtask: u32, parallelism: u32, items: &[u32]) -> ListStateIn<u32> {
        ListStateIn { subtask, parallelism, items: items.to_vec() }
    }

    #[test]
    fn same_parallelism_keeps_each_subtasks_items() {
        assert_eq!(redistribute(vec![part(1, 2, &[3, 4])], 1, 2), vec![3, 4]);
        assert_eq!(redistribute(vec![part(0, 2, &[1]), part(1, 2, &[3, 4])], 0, 2), vec![1]);
    }

    #[test]
    fn another_parallelism_deals_all_items_round_robin() {
        let parts = || vec![part(1, 2, &[4, 5, 6]), part(0, 2, &[1, 2, 3])];
        assert_eq!(redistribute(parts(), 0, 3), vec![1, 4]);
        assert_eq!(redistribute(parts(), 1, 3), vec![2, 5]);
        assert_eq!(redistribute(parts(), 2, 3), vec![3, 6]);
        assert_eq!(redistribute(parts(), 0, 1), vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(redistribute(vec![part(0, 1, &[7, 8, 9])], 1, 2), vec![8]);
    }
}
