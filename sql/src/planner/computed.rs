//! A table's computed columns, planned by DataFusion over the table's physical columns:
//! `SELECT <physical>, <expr> AS <name>, ... FROM <physical table>` through `SqlToRel` and
//! type coercion. `CREATE TABLE` uses it to type the columns (and reject a wrong
//! expression at once); a scan uses the expressions to compute them after the source.

use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion_common::tree_node::TreeNode;
use datafusion_common::{Column as DfColumn, DFSchema};
use datafusion_expr::logical_plan::builder::LogicalTableSource;
use datafusion_expr::simplify::SimplifyContext;
use datafusion_expr::{Expr, LogicalPlan, LogicalPlanBuilder};
use datafusion_optimizer::simplify_expressions::ExprSimplifier;
use datafusion_sql::planner::{PlannerContext, SqlToRel};

use super::context::PlanContext;
use super::rewrite::{flink_expr, int_literal};
use crate::catalog::{ColumnKind, TableDef};
use crate::error::{Result, SqlError};

/// Every column of a table as an expression over its physical columns (`None` for a
/// metadata column: the connector provides it), and the physical columns' schema the
/// expressions are planned against.
pub struct ColumnExprs {
    /// The physical columns, qualified by the table's name.
    pub physical: DFSchema,
    /// One per declared column.
    pub exprs: Vec<Option<Expr>>,
}

/// Plans the columns of `table` (its computed columns' types need not be known yet).
pub fn plan_columns(ctx: &PlanContext<'_>, table: &TableDef) -> Result<ColumnExprs> {
    let physical_schema = table.physical_schema();
    let physical = DFSchema::try_from_qualified_schema(table.name.as_str(), &physical_schema)?;
    let planner = SqlToRel::new_with_options(ctx, super::parser_options());
    let mut planned = Vec::new();
    for c in &table.columns {
        match &c.kind {
            ColumnKind::Physical => planned
                .push(Expr::Column(DfColumn::new(Some(table.name.as_str()), c.name.as_str())).alias(c.name.as_str())),
            ColumnKind::Computed(sql) => {
                let e = planner
                    .sql_to_expr(flink_expr((**sql).clone()), &physical, &mut PlannerContext::new())
                    .map_err(|e| SqlError::invalid(format!("computed column '{}' ({sql}): {e}", c.name)))?;
                planned.push(e.transform_up(int_literal)?.data.alias(c.name.as_str()));
            }
            ColumnKind::Metadata { .. } => {}
        }
    }
    let scan = LogicalPlanBuilder::scan(table.name.as_str(), Arc::new(LogicalTableSource::new(physical_schema)), None)?
        .project(planned)?
        .build()?;
    let analyzed = super::analyze(ctx, scan)?;
    let LogicalPlan::Projection(p) = analyzed else {
        return Err(SqlError::Internal("computed columns did not plan as a projection".into()));
    };
    // Constants folded once here rather than on every batch (`CAST(7919 AS BIGINT)`).
    let simplifier = ExprSimplifier::new(SimplifyContext::builder().with_schema(Arc::new(physical.clone())).build());
    let simplified =
        p.expr.into_iter().map(|e| simplifier.simplify(e)).collect::<datafusion_common::Result<Vec<_>>>()?;
    let mut typed = simplified.into_iter();
    let mut exprs = Vec::with_capacity(table.columns.len());
    for c in &table.columns {
        exprs.push(match c.kind {
            ColumnKind::Metadata { .. } => None,
            _ => typed.next(),
        });
    }
    Ok(ColumnExprs { physical, exprs })
}

/// `table` with its computed columns typed (`CREATE TABLE`).
pub fn type_columns(ctx: &PlanContext<'_>, mut table: TableDef) -> Result<TableDef> {
    let planned = plan_columns(ctx, &table)?;
    for (c, e) in table.columns.iter_mut().zip(&planned.exprs) {
        if let (ColumnKind::Computed(_), Some(e)) = (&c.kind, e) {
            let (_, field) = datafusion_expr::ExprSchemable::to_field(e, &planned.physical)?;
            c.data_type = field.data_type().clone();
            c.nullable = field.is_nullable();
        }
    }
    if let Some(w) = &table.watermark {
        let rowtime = table.column(&w.rowtime).map(|c| c.data_type.clone()).unwrap_or(DataType::Null);
        if !matches!(rowtime, DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, _)) {
            return Err(SqlError::invalid(format!(
                "the rowtime column '{}' of a WATERMARK must be TIMESTAMP(3) or TIMESTAMP_LTZ(3), not {}",
                w.rowtime,
                crate::types::flink_name(&rowtime)
            )));
        }
    }
    Ok(table)
}
