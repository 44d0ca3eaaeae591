//! riffle's streaming SQL operators: what a planned Flink SQL query runs as, on
//! `DataStream<Rows>` (Arrow record batches).
//!
//! Each operator is a function on a row stream with a plain spec struct (column indices,
//! DataFusion physical expressions and `AggregateFunctionExpr`s, an output schema), so the
//! planner builds a job by calling them in plan order. State lives in riffle's keyed state
//! (under the representative key of each key group, see `riffle_connectors::keyed_rows`):
//! checkpointed, exactly once after a failure, rescaled by key group from a savepoint.
//! Batches are processed whole: group indices per batch and DataFusion's `GroupsAccumulator`s,
//! never a trait object per row.

/// Runs an operator type as riffle's keyed process function over rows keyed by key group: its
/// `process` takes each batch, its `fire(timestamp, ctx)` each event-time timer (with
/// `event_time_timers`), its `snapshot` writes its in-memory state into keyed state at each
/// barrier. One definition, so every operator reports its errors to the task the same way.
macro_rules! keyed_row_operator {
    ($operator:ty, no_timers) => {
        impl riffle_api::KeyedProcessFunction<u32, riffle_connectors::KeyedRows, riffle_connectors::Rows>
            for $operator
        {
            fn process_element(
                &mut self,
                rows: riffle_connectors::KeyedRows,
                ctx: &mut riffle_api::ProcessContext<'_, u32, riffle_connectors::Rows>,
            ) -> std::result::Result<(), riffle_api::UserError> {
                self.process(rows, ctx).map_err(|e| Box::new(e) as riffle_api::UserError)
            }

            fn snapshot_state(
                &mut self,
                state: &mut riffle_api::KeyedStateStore<u32>,
            ) -> std::result::Result<(), riffle_api::UserError> {
                self.snapshot(state).map_err(|e| Box::new(e) as riffle_api::UserError)
            }
        }
    };
    ($operator:ty, event_time_timers) => {
        impl riffle_api::KeyedProcessFunction<u32, riffle_connectors::KeyedRows, riffle_connectors::Rows>
            for $operator
        {
            fn process_element(
                &mut self,
                rows: riffle_connectors::KeyedRows,
                ctx: &mut riffle_api::ProcessContext<'_, u32, riffle_connectors::Rows>,
            ) -> std::result::Result<(), riffle_api::UserError> {
                self.process(rows, ctx).map_err(|e| Box::new(e) as riffle_api::UserError)
            }

            fn on_timer(
                &mut self,
                timestamp: i64,
                domain: riffle_api::TimeDomain,
                ctx: &mut riffle_api::ProcessContext<'_, u32, riffle_connectors::Rows>,
            ) -> std::result::Result<(), riffle_api::UserError> {
                if domain == riffle_api::TimeDomain::EventTime {
                    self.fire(timestamp, ctx).map_err(|e| Box::new(e) as riffle_api::UserError)?;
                }
                Ok(())
            }

            fn snapshot_state(
                &mut self,
                state: &mut riffle_api::KeyedStateStore<u32>,
            ) -> std::result::Result<(), riffle_api::UserError> {
                self.snapshot(state).map_err(|e| Box::new(e) as riffle_api::UserError)
            }
        }
    };
}

pub mod dedup;
pub mod error;
pub mod group_agg;
mod group_agg_retract;
mod key_table;
pub mod over_agg;
pub mod session;
pub mod subtask_key;
pub mod time;
pub mod topn;
pub mod watermark;
pub mod window_agg;
mod window_state;
pub mod window_topn;
pub mod windows;

pub use dedup::{deduplicate_first, DedupSpec};
pub use error::ExecError;
pub use group_agg::{group_aggregate, GroupAggSpec};
pub use over_agg::{over_aggregate, OverAggSpec};
pub use session::{session_aggregate, SessionAggSpec};
pub use topn::{top_n, TopNSpec};
pub use watermark::{assign_watermarks, WatermarkSpec};
pub use window_agg::{window_aggregate, WindowAggSpec};
pub use window_topn::{window_top_n, WindowTopNSpec};
pub use windows::WindowKind;
