//! Keys a non-keyed row stream by its own subtask, so that per-subtask operator state (a local
//! pre-aggregation's partial slices) is keyed state of a key group the subtask owns: it is
//! checkpointed with it, and a rescaled restore hands it to the key group's new owner.

use riffle_api::{DataStream, KeyedStream, RichMapFunction, RuntimeContext, UserError};
use riffle_connectors::keyed_rows::representatives;
use riffle_connectors::{KeyedRows, Rows};
use riffle_state::key_group_range_for_subtask;

use super::error::ExecError;

/// Pairs each batch with the representative key of the first key group its subtask owns.
#[derive(Clone, Default)]
struct OwnKey {
    key: u32,
}

impl RichMapFunction<Rows, KeyedRows> for OwnKey {
    type State = ();

    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), UserError> {
        let range = key_group_range_for_subtask(ctx.max_parallelism, ctx.parallelism, ctx.subtask);
        self.key = representatives(ctx.max_parallelism).get(range.start as usize).copied().ok_or_else(|| {
            ExecError::Spec(format!("subtask {} of {} owns no key group", ctx.subtask, ctx.parallelism))
        })?;
        Ok(())
    }

    fn map(&mut self, rows: Rows) -> Result<KeyedRows, UserError> {
        Ok(KeyedRows { key: self.key, columns: Vec::new(), rows })
    }
}

/// The stream keyed by its subtask (the exchange stays local at equal parallelism).
pub fn key_by_subtask(stream: &DataStream<Rows>) -> KeyedStream<u32, KeyedRows> {
    stream.map_with_state(OwnKey::default()).name("Subtask Key").key_by(|k: &KeyedRows| k.key)
}

/// The stream keyed by one constant key: every batch goes to one subtask (a global operator
/// runs at parallelism 1).
pub fn key_by_nothing(stream: &DataStream<Rows>) -> KeyedStream<u32, KeyedRows> {
    stream
        .map(|rows: Rows| KeyedRows { key: 0, columns: Vec::new(), rows })
        .name("Global Key")
        .key_by(|k: &KeyedRows| k.key)
}
