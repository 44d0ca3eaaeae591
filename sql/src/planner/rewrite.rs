//! Where Flink's SQL means something else than DataFusion's, rewritten before planning:
//!
//! - `a % b` is Flink's `MOD(a, b)` (typed as `b`): the AST's `%` becomes a call of the
//!   registered `MOD` (`functions/flink_mod.rs`).
//! - An integer literal that fits 32 bits is an `INT` in Flink (DataFusion: `BIGINT`), so
//!   `MOD(id, 1000)` is `INT` and `1 + 1` is `INT`, as in Flink; `0.908` is `DECIMAL(4, 3)`
//!   (DataFusion: `(3, 3)`): a rewrite of the logical plan's literals before type coercion.

use std::ops::ControlFlow;

use datafusion_common::tree_node::{Transformed, TreeNode};
use datafusion_common::ScalarValue;
use datafusion_expr::expr_rewriter::NamePreserver;
use datafusion_expr::{Expr, LogicalPlan};
use datafusion_sql::sqlparser::ast::{
    self, BinaryOperator, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments, Ident, ObjectName,
};

/// `%` → `MOD(..)` in every expression of a query.
pub fn flink_query(mut query: ast::Query) -> Box<ast::Query> {
    let _ = ast::visit_expressions_mut(&mut query, |e| {
        rewrite_modulo(e);
        ControlFlow::<()>::Continue(())
    });
    Box::new(query)
}

/// `%` → `MOD(..)` in a statement (an `INSERT`'s query).
pub fn flink_statement(mut statement: ast::Statement) -> ast::Statement {
    let _ = ast::visit_expressions_mut(&mut statement, |e| {
        rewrite_modulo(e);
        ControlFlow::<()>::Continue(())
    });
    statement
}

/// `%` → `MOD(..)` in one expression tree (a computed column, a watermark).
pub fn flink_expr(mut expr: ast::Expr) -> ast::Expr {
    let _ = ast::visit_expressions_mut(&mut expr, |e| {
        rewrite_modulo(e);
        ControlFlow::<()>::Continue(())
    });
    expr
}

fn rewrite_modulo(e: &mut ast::Expr) {
    if let ast::Expr::BinaryOp { op: BinaryOperator::Modulo, left, right } = e {
        let arg = |x: &ast::Expr| FunctionArg::Unnamed(FunctionArgExpr::Expr(x.clone()));
        let call = ast::Function {
            name: ObjectName::from(vec![Ident::new("MOD")]),
            uses_odbc_syntax: false,
            parameters: FunctionArguments::None,
            args: FunctionArguments::List(FunctionArgumentList {
                duplicate_treatment: None,
                args: vec![arg(left), arg(right)],
                clauses: vec![],
            }),
            filter: None,
            null_treatment: None,
            over: None,
            within_group: vec![],
        };
        *e = ast::Expr::Function(call);
    }
}

/// Integer literals that fit 32 bits become `INT` in projections and filters (Flink's literal
/// typing); schemas are recomputed on the way up.
pub fn flink_literals(plan: LogicalPlan) -> datafusion_common::Result<LogicalPlan> {
    plan.transform_up_with_subqueries(|node| {
        if !matches!(node, LogicalPlan::Projection(_) | LogicalPlan::Filter(_)) {
            return node.recompute_schema().map(Transformed::yes);
        }
        // A rewritten expression keeps its old name: a parent refers to an unaliased
        // expression's output column by the expression's text.
        let names = NamePreserver::new(&node);
        let rewritten = node.map_expressions(|e| {
            let saved = names.save(&e);
            e.transform_up(int_literal)?.map_data(|e| Ok(saved.restore(e)))
        })?;
        rewritten.map_data(|p| p.recompute_schema())
    })
    .map(|t| t.data)
}

/// A literal typed as Flink types it: an integer that fits 32 bits is an `INT`; a decimal
/// below 1 counts its leading zero in the precision (`0.908` is `DECIMAL(4, 3)`).
pub fn int_literal(e: Expr) -> datafusion_common::Result<Transformed<Expr>> {
    Ok(match e {
        Expr::Literal(ScalarValue::Int64(Some(v)), meta) if i32::try_from(v).is_ok() => {
            Transformed::yes(Expr::Literal(ScalarValue::Int32(Some(v as i32)), meta))
        }
        Expr::Literal(ScalarValue::Decimal128(v, p, s), meta) if s >= 0 && p as i16 <= s as i16 && p < 38 => {
            Transformed::yes(Expr::Literal(ScalarValue::Decimal128(v, s as u8 + 1, s), meta))
        }
        other => Transformed::no(other),
    })
}
