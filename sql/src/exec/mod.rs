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
