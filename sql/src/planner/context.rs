//! DataFusion's view of the session: tables and views from the catalog, functions from the
//! registry. A table is a [`CatalogTable`] (its schema is every declared column, computed and
//! metadata ones included: the translation computes them after the source); a view is planned
//! where it is used and inlined by DataFusion (`TableSource::get_logical_plan`).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use datafusion_common::config::ConfigOptions;
use datafusion_common::{plan_datafusion_err, plan_err, DataFusionError, TableReference};
use datafusion_expr::planner::ContextProvider;
use datafusion_expr::{AggregateUDF, HigherOrderUDF, LogicalPlan, ScalarUDF, TableSource, WindowUDF};
use datafusion_sql::planner::SqlToRel;

use crate::catalog::{Catalogs, Entry, ObjectPath, TableDef};
use crate::functions::Functions;
use crate::statement::{parse_one, Hints, Statement};

/// A catalog table as DataFusion sees it: its full schema, and the definition the translation
/// needs (with the statement's `OPTIONS` hints merged over its options).
#[derive(Debug)]
pub struct CatalogTable {
    /// Where it is in the catalog.
    pub path: ObjectPath,
    /// The table (options already merged with hints).
    pub def: Arc<TableDef>,
    schema: SchemaRef,
}

impl CatalogTable {
    /// A table source over `def`.
    pub fn new(path: ObjectPath, def: Arc<TableDef>) -> Self {
        let schema = def.schema();
        CatalogTable { path, def, schema }
    }
}

impl TableSource for CatalogTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

/// A view: its planned query, which DataFusion inlines where the view is named.
#[derive(Debug)]
struct ViewSource {
    plan: LogicalPlan,
}

impl TableSource for ViewSource {
    fn schema(&self) -> SchemaRef {
        Arc::new(self.plan.schema().as_arrow().clone())
    }
    fn get_logical_plan(&self) -> Option<Cow<'_, LogicalPlan>> {
        Some(Cow::Borrowed(&self.plan))
    }
}

/// What planning a statement reads: catalog, functions, the statement's hints.
pub struct PlanContext<'a> {
    /// The catalog.
    pub catalogs: &'a Catalogs,
    /// The functions.
    pub functions: &'a Functions,
    /// The statement's `/*+ OPTIONS(..) */` hints.
    pub hints: &'a Hints,
    /// DataFusion's options (defaults).
    pub options: ConfigOptions,
}

impl<'a> PlanContext<'a> {
    /// A context over the session's catalog and functions.
    pub fn new(catalogs: &'a Catalogs, functions: &'a Functions, hints: &'a Hints) -> Self {
        PlanContext { catalogs, functions, hints, options: ConfigOptions::default() }
    }

    fn hint_for(&self, name: &TableReference, path: &ObjectPath) -> Option<&BTreeMap<String, String>> {
        self.hints.get(&name.to_string()).or_else(|| self.hints.get(&path.to_string()))
    }
}

/// The parts of a DataFusion table reference.
pub fn reference_parts(name: &TableReference) -> Vec<String> {
    match name {
        TableReference::Bare { table } => vec![table.to_string()],
        TableReference::Partial { schema, table } => vec![schema.to_string(), table.to_string()],
        TableReference::Full { catalog, schema, table } => {
            vec![catalog.to_string(), schema.to_string(), table.to_string()]
        }
    }
}

impl ContextProvider for PlanContext<'_> {
    fn get_table_source(&self, name: TableReference) -> datafusion_common::Result<Arc<dyn TableSource>> {
        let path = self.catalogs.resolve(&reference_parts(&name)).map_err(|e| plan_datafusion_err!("{e}"))?;
        match self.catalogs.get(&path) {
            Some(Entry::Table(def)) => {
                let def = match self.hint_for(&name, &path) {
                    Some(hint) => {
                        let mut merged = (**def).clone();
                        merged.options.extend(hint.clone());
                        Arc::new(merged)
                    }
                    None => def.clone(),
                };
                Ok(Arc::new(CatalogTable::new(path, def)))
            }
            Some(Entry::View(view)) => {
                let Statement::Query { query, .. } =
                    parse_one(&view.query).map_err(|e| plan_datafusion_err!("view '{path}': {e}"))?
                else {
                    return plan_err!("view '{path}' does not hold a query");
                };
                let planner = SqlToRel::new_with_options(self, super::parser_options());
                let mut plan = planner.sql_statement_to_plan(datafusion_sql::sqlparser::ast::Statement::Query(
                    super::rewrite::flink_query(*query),
                ))?;
                if !view.columns.is_empty() {
                    let fields = plan.schema().fields().clone();
                    if fields.len() != view.columns.len() {
                        return plan_err!(
                            "view '{path}' names {} columns but its query has {}",
                            view.columns.len(),
                            fields.len()
                        );
                    }
                    let exprs = plan
                        .schema()
                        .columns()
                        .into_iter()
                        .zip(&view.columns)
                        .map(|(c, n)| datafusion_expr::Expr::Column(c).alias(n.clone()))
                        .collect::<Vec<_>>();
                    plan = datafusion_expr::LogicalPlanBuilder::from(plan).project(exprs)?.build()?;
                }
                Ok(Arc::new(ViewSource { plan }))
            }
            None => Err(DataFusionError::Plan(format!("table or view '{path}' does not exist"))),
        }
    }

    fn get_expr_planners(&self) -> &[Arc<dyn datafusion_expr::planner::ExprPlanner>] {
        self.functions.expr_planners()
    }

    fn get_function_meta(&self, name: &str) -> Option<Arc<ScalarUDF>> {
        self.functions.scalar(name)
    }

    fn get_higher_order_meta(&self, _name: &str) -> Option<Arc<HigherOrderUDF>> {
        None
    }

    fn get_aggregate_meta(&self, name: &str) -> Option<Arc<AggregateUDF>> {
        self.functions.aggregate(name)
    }

    fn get_window_meta(&self, name: &str) -> Option<Arc<WindowUDF>> {
        self.functions.window(name)
    }

    fn get_variable_type(&self, _variable_names: &[String]) -> Option<DataType> {
        None
    }

    fn options(&self) -> &ConfigOptions {
        &self.options
    }

    fn udf_names(&self) -> Vec<String> {
        self.functions.scalar_names()
    }

    fn higher_order_function_names(&self) -> Vec<String> {
        Vec::new()
    }

    fn udaf_names(&self) -> Vec<String> {
        self.functions.aggregate_names()
    }

    fn udwf_names(&self) -> Vec<String> {
        self.functions.window_names()
    }
}
