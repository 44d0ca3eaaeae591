//! From a statement to a riffle job: sqlparser's AST (with Flink's rewrites, `rewrite.rs`) →
//! DataFusion's `SqlToRel` over the session's catalog (`context.rs`) → DataFusion's analyzer
//! (type coercion) and optimizer → a `DataStream<Rows>` per plan node (`translate.rs`): the
//! table's connector, its computed columns (`computed.rs`), projections and filters as
//! [`calc::Calc`] operators evaluating DataFusion physical expressions on each batch, and the
//! sink. Stateful nodes (aggregates, windows, joins) go to `stateful.rs`, one place.

pub mod calc;
pub mod computed;
pub mod context;
pub mod rewrite;
pub mod stateful;
pub mod translate;

use datafusion_expr::LogicalPlan;
use datafusion_optimizer::analyzer::Analyzer;
use datafusion_optimizer::optimizer::{Optimizer, OptimizerContext};
use datafusion_sql::planner::{ParserOptions, SqlToRel};
use datafusion_sql::sqlparser::ast;

pub use context::PlanContext;

use crate::error::Result;

/// How DataFusion reads Flink's SQL: `0.908` is a `DECIMAL(4, 3)` (Flink's exact literal),
/// identifiers keep their case (Flink's are case-sensitive), strings are `Utf8`.
pub fn parser_options() -> ParserOptions {
    let mut o = ParserOptions::new();
    o.parse_float_as_decimal = true;
    o.enable_ident_normalization = false;
    o.enable_options_value_normalization = false;
    o.support_varchar_with_length = true;
    o.map_string_types_to_utf8view = false;
    // Spans let DataFusion's errors say where in the statement (an unknown column).
    o.collect_spans = true;
    o
}

/// A statement (a query or an `INSERT`) as DataFusion's logical plan, before analysis.
pub fn logical_plan(ctx: &PlanContext<'_>, statement: ast::Statement) -> Result<LogicalPlan> {
    let planner = SqlToRel::new_with_options(ctx, parser_options());
    let plan = planner.sql_statement_to_plan(rewrite::flink_statement(statement))?;
    Ok(rewrite::flink_literals(plan)?)
}

/// A query as DataFusion's logical plan, before analysis.
pub fn query_plan(ctx: &PlanContext<'_>, query: ast::Query) -> Result<LogicalPlan> {
    logical_plan(ctx, ast::Statement::Query(rewrite::flink_query(query)))
}

/// Type coercion, then DataFusion's optimizer (projection and filter push-down, constant
/// folding, ...).
pub fn optimize(ctx: &PlanContext<'_>, plan: LogicalPlan) -> Result<LogicalPlan> {
    let analyzed = Analyzer::new().execute_and_check(plan, &ctx.options, |_, _| {})?;
    let optimized = Optimizer::new().optimize(analyzed, &OptimizerContext::new(), |_, _| {})?;
    Ok(optimized)
}

/// Type coercion alone (what the computed columns need).
pub fn analyze(ctx: &PlanContext<'_>, plan: LogicalPlan) -> Result<LogicalPlan> {
    Ok(Analyzer::new().execute_and_check(plan, &ctx.options, |_, _| {})?)
}
