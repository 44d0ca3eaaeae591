//! Flink SQL on riffle: DataFusion parses, plans, coerces and evaluates expressions on Arrow
//! arrays; riffle's own operators carry the streaming semantics (watermarks, windows,
//! changelogs, state in keyed state and checkpoints).
//!
//! Architecture invariant: nothing here parses SQL, plans or evaluates an expression by hand;
//! what Flink means differently from DataFusion is a rewrite or a registered function, never a
//! second evaluator.

pub mod catalog;
pub mod changelog;
pub mod ddl;
pub mod error;
pub mod statement;
pub mod types;

pub use error::{Result, SqlError};

/// The DataFusion crates riffle's SQL layer is built on, re-exported so that users of
/// `riffle-sql` (functions, connectors from plugins) name the same versions.
pub mod datafusion {
    pub use datafusion_common as common;
    pub use datafusion_expr as expr;
    pub use datafusion_physical_expr as physical_expr;
    pub use datafusion_sql as sql;
}
