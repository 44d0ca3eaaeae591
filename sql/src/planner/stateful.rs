//! The one place where plan nodes that need state meet riffle's streaming operators
//! (`sql/src/exec/`: window aggregates, GROUP BY changelog aggregation, Top-N, deduplication,
//! OVER, joins). Until they are wired in, each such node is a clear planning error.

use datafusion_expr::LogicalPlan;
use riffle_api::DataStream;
use riffle_connectors::Rows;

use crate::error::{Result, SqlError};

/// A stream for a stateful node whose inputs are already translated.
pub fn translate(node: &LogicalPlan, _inputs: Vec<DataStream<Rows>>) -> Result<DataStream<Rows>> {
    let what = match node {
        LogicalPlan::Aggregate(a) if a.group_expr.is_empty() => {
            "an aggregation without GROUP BY on a stream".to_string()
        }
        LogicalPlan::Aggregate(_) => "GROUP BY aggregation (and window aggregation) on a stream".to_string(),
        LogicalPlan::Window(_) => "OVER windows (ROW_NUMBER, OVER aggregates: Top-N, deduplication)".to_string(),
        LogicalPlan::Join(_) => "joins".to_string(),
        LogicalPlan::Sort(_) => "ORDER BY on a stream".to_string(),
        LogicalPlan::Limit(_) => "LIMIT on a stream".to_string(),
        LogicalPlan::Distinct(_) => "DISTINCT on a stream".to_string(),
        LogicalPlan::Unnest(_) => "UNNEST".to_string(),
        LogicalPlan::RecursiveQuery(_) => "recursive queries".to_string(),
        other => format!("the plan node {}", other.display()),
    };
    Err(SqlError::unsupported(what))
}
