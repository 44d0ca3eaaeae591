//! The SourceCoordinator: runs a FLIP-27 split enumerator for one source vertex, under its
//! JobMaster, and answers readers' split requests.

use actix::prelude::*;
use riffle_api::source::ErasedEnumerator;

use crate::error::RuntimeError;
use crate::gateway::{SplitRequest, SplitResponse};
use crate::supervision::catch_panic;

/// The SourceCoordinator actor.
pub struct SourceCoordinator {
    enumerator: Box<dyn ErasedEnumerator>,
    readers: std::collections::HashSet<u32>,
}

impl SourceCoordinator {
    /// A coordinator driving `enumerator`.
    pub fn new(enumerator: Box<dyn ErasedEnumerator>) -> Self {
        Self { enumerator, readers: Default::default() }
    }
}

impl Actor for SourceCoordinator {
    type Context = Context<Self>;
}

/// CheckpointCoordinator → SourceCoordinator: the enumerator's state for a checkpoint, taken
/// before any reader is triggered (so a split handed out after it is either in the
/// enumerator's state or in a reader's, never in neither).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<Option<Vec<u8>>, RuntimeError>")]
pub struct SnapshotEnumerator {
    /// The checkpoint.
    pub checkpoint_id: u64,
}

impl Handler<SnapshotEnumerator> for SourceCoordinator {
    type Result = Result<Option<Vec<u8>>, RuntimeError>;
    fn handle(&mut self, _: SnapshotEnumerator, _: &mut Self::Context) -> Self::Result {
        let e = &mut self.enumerator;
        Ok(catch_panic(|| e.snapshot_state()).map_err(|p| p.context("enumerator panicked"))??)
    }
}

impl Handler<SplitRequest> for SourceCoordinator {
    type Result = Result<SplitResponse, RuntimeError>;
    fn handle(&mut self, msg: SplitRequest, _: &mut Self::Context) -> Self::Result {
        let subtask = msg.execution.subtask;
        let e = &mut self.enumerator;
        if self.readers.insert(subtask) {
            catch_panic(|| e.add_reader(subtask)).map_err(|p| p.context("enumerator panicked"))?;
        }
        let (splits, no_more_splits) =
            catch_panic(|| e.handle_split_request(subtask)).map_err(|p| p.context("enumerator panicked"))??;
        Ok(SplitResponse { splits, no_more_splits })
    }
}
