//! Flink SQL on riffle: DataFusion parses, plans, coerces and evaluates expressions on Arrow
//! arrays; riffle's own operators carry the streaming semantics (watermarks, windows,
//! changelogs, state in keyed state and checkpoints).
//!
//! The path of a statement: `statement.rs` (sqlparser's tokenizer and parser, Flink's DDL in
//! `ddl/`) → `table_env.rs` (DDL into the `catalog/`; DML planned) → `planner/` (DataFusion's
//! `SqlToRel`, analyzer and optimizer; the plan translated into a `DataStream<Rows>` job) →
//! `connectors/` (sources and sinks by the `connector` option) → an embedded MiniCluster.
//!
//! Architecture invariant: nothing here parses SQL, plans or evaluates an expression by hand;
//! what Flink means differently from DataFusion is a rewrite or a registered function, never a
//! second evaluator.

pub mod catalog;
pub mod changelog;
pub mod connectors;
pub mod ddl;
pub mod error;
pub mod exec;
pub mod functions;
pub mod options;
pub mod planner;
pub mod result;
pub mod statement;
pub mod table_env;
pub mod types;

pub use error::{Result, SqlError};
pub use options::options;
pub use result::{JobInfo, TableResult};
pub use table_env::TableEnvironment;

/// The DataFusion crates riffle's SQL layer is built on, re-exported so that users of
/// `riffle-sql` (functions, connectors from plugins) name the same versions.
pub mod datafusion {
    pub use datafusion_common as common;
    pub use datafusion_expr as expr;
    pub use datafusion_physical_expr as physical_expr;
    pub use datafusion_sql as sql;
}
