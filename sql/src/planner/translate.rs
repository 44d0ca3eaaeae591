//! An optimized logical plan as a riffle job on `DataStream<Rows>`: each node becomes a stream
//! of batches with the node's schema. Every operator runs at the job's parallelism, so a
//! stateless query (source → computed columns → calc → sink) is one chain of plain calls.

use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion_common::{DFSchema, ScalarValue};
use datafusion_expr::execution_props::ExecutionProps;
use datafusion_expr::logical_plan::{DmlStatement, WriteOp};
use datafusion_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion_expr::{Expr, LogicalPlan};
use datafusion_physical_expr::{create_physical_expr, PhysicalExpr};
use riffle_api::{DataStream, StreamEnvironment};
use riffle_connectors::Rows;

use super::calc::Calc;
use super::computed::plan_columns;
use super::context::{CatalogTable, PlanContext};
use crate::catalog::TableDef;
use crate::connectors::{Connectors, SinkContext, SinkOutput, SourceContext};
use crate::error::{Result, SqlError};

/// Builds a job's streams from plans.
pub struct Translator<'a> {
    /// The job being built.
    pub env: &'a StreamEnvironment,
    /// The session's connectors.
    pub connectors: &'a Connectors,
    /// The planning context (for computed columns).
    pub ctx: &'a PlanContext<'a>,
    /// Every operator's parallelism.
    pub parallelism: u32,
    /// One line per operator, in the order they were added (EXPLAIN's job section).
    pub operators: Vec<String>,
    props: ExecutionProps,
}

/// The schema of a node's batches: its fields, all nullable (a batch never fails on a
/// nullability DataFusion could not prove).
fn batch_schema(schema: &DFSchema) -> SchemaRef {
    Arc::new(Schema::new(
        schema.fields().iter().map(|f| Field::new(f.name(), f.data_type().clone(), true)).collect::<Vec<_>>(),
    ))
}

impl<'a> Translator<'a> {
    /// A translator adding to `env`.
    pub fn new(
        env: &'a StreamEnvironment,
        connectors: &'a Connectors,
        ctx: &'a PlanContext<'a>,
        parallelism: u32,
    ) -> Self {
        Translator { env, connectors, ctx, parallelism, operators: Vec::new(), props: ExecutionProps::new() }
    }

    fn physical(&self, e: &Expr, input: &DFSchema) -> Result<Arc<dyn PhysicalExpr>> {
        Ok(create_physical_expr(e, input, &self.props, &PhysicalPlanningContext::default())?)
    }

    fn calc(&mut self, input: DataStream<Rows>, name: &str, calc: Calc) -> DataStream<Rows> {
        self.operators.push(name.to_string());
        input.process(calc).set_parallelism(self.parallelism).name(name)
    }

    /// The stream of a query plan's rows.
    pub fn query(&mut self, plan: &LogicalPlan) -> Result<DataStream<Rows>> {
        match plan {
            LogicalPlan::Projection(p) => {
                let input = self.query(&p.input)?;
                // A projection that only renames (an INSERT's aliases) passes batches on as
                // they are: columns are found by position.
                let renames_only = p.expr.len() == p.input.schema().fields().len()
                    && p.expr.iter().enumerate().all(|(i, e)| match e.clone().unalias() {
                        Expr::Column(c) => p.input.schema().index_of_column(&c).ok() == Some(i),
                        _ => false,
                    });
                if renames_only {
                    return Ok(input);
                }
                let exprs = p.expr.iter().map(|e| self.physical(e, p.input.schema())).collect::<Result<Vec<_>>>()?;
                let name =
                    format!("Calc(select=[{}])", p.expr.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", "));
                Ok(self.calc(
                    input,
                    &name,
                    Calc { filter: None, projection: Some(exprs), schema: batch_schema(&p.schema) },
                ))
            }
            LogicalPlan::Filter(f) => {
                let input = self.query(&f.input)?;
                let predicate = self.physical(&f.predicate, f.input.schema())?;
                let name = format!("Calc(where=[{}])", f.predicate);
                Ok(self.calc(
                    input,
                    &name,
                    Calc { filter: Some(predicate), projection: None, schema: batch_schema(f.input.schema()) },
                ))
            }
            LogicalPlan::SubqueryAlias(a) => self.query(&a.input),
            LogicalPlan::TableScan(scan) => self.scan(scan),
            LogicalPlan::Union(u) => {
                let inputs = u.inputs.iter().map(|i| self.query(i)).collect::<Result<Vec<_>>>()?;
                let Some((first, rest)) = inputs.split_first() else {
                    return Err(SqlError::Internal("a UNION without inputs".into()));
                };
                self.operators.push("Union".into());
                Ok(first.union(rest))
            }
            LogicalPlan::Values(v) => {
                let empty = DFSchema::empty();
                let one_row = RecordBatch::try_new_with_options(
                    Arc::new(Schema::empty()),
                    vec![],
                    &RecordBatchOptions::new().with_row_count(Some(1)),
                )?;
                let schema = batch_schema(&v.schema);
                let mut columns: Vec<Vec<ScalarValue>> = vec![Vec::new(); schema.fields().len()];
                for row in &v.values {
                    for (i, e) in row.iter().enumerate() {
                        let value = self.physical(e, &empty)?.evaluate(&one_row)?.into_array(1)?;
                        let value = arrow::compute::cast(&value, schema.field(i).data_type())?;
                        columns[i].push(ScalarValue::try_from_array(&value, 0)?);
                    }
                }
                let arrays = columns
                    .into_iter()
                    .zip(schema.fields())
                    .map(|(values, f)| {
                        if values.is_empty() {
                            Ok(arrow::array::new_empty_array(f.data_type()))
                        } else {
                            ScalarValue::iter_to_array(values)
                        }
                    })
                    .collect::<datafusion_common::Result<Vec<_>>>()?;
                let batch = RecordBatch::try_new_with_options(
                    schema,
                    arrays,
                    &RecordBatchOptions::new().with_row_count(Some(v.values.len())),
                )?;
                self.operators.push(format!("Values(rows={})", v.values.len()));
                Ok(self.env.from_collection(vec![Rows(batch)]))
            }
            LogicalPlan::EmptyRelation(e) => {
                let rows = usize::from(e.produce_one_row);
                let batch = RecordBatch::try_new_with_options(
                    batch_schema(&e.schema),
                    vec![],
                    &RecordBatchOptions::new().with_row_count(Some(rows)),
                )
                .or_else(|_| Ok::<_, SqlError>(RecordBatch::new_empty(batch_schema(&e.schema))))?;
                self.operators.push(format!("Values(rows={rows})"));
                Ok(self.env.from_collection(vec![Rows(batch)]))
            }
            LogicalPlan::Aggregate(_)
            | LogicalPlan::Window(_)
            | LogicalPlan::Join(_)
            | LogicalPlan::Sort(_)
            | LogicalPlan::Limit(_)
            | LogicalPlan::Distinct(_)
            | LogicalPlan::Unnest(_)
            | LogicalPlan::RecursiveQuery(_) => {
                let inputs = plan.inputs().into_iter().map(|i| self.query(i)).collect::<Result<Vec<_>>>()?;
                super::stateful::translate(plan, inputs)
            }
            other => Err(SqlError::unsupported(format!("the plan node {}", other.display()))),
        }
    }

    fn scan(&mut self, scan: &datafusion_expr::TableScan) -> Result<DataStream<Rows>> {
        let Some(table) = scan.source.downcast_ref::<CatalogTable>() else {
            return Err(SqlError::Internal(format!("table '{}' is not a catalog table", scan.table_name)));
        };
        let def: &TableDef = &table.def;
        if !scan.filters.is_empty() || scan.fetch.is_some() {
            return Err(SqlError::Internal("a filter or limit was pushed into a scan".into()));
        }
        let connector = self.connectors.of(def)?;
        let source =
            connector.create_source(&SourceContext { env: self.env, table: def, parallelism: self.parallelism })?;
        self.operators.push(format!("TableSourceScan(table=[{}], connector=[{}])", table.path, connector.name()));
        let all: Vec<usize> = (0..def.columns.len()).collect();
        let wanted = scan.projection.clone().unwrap_or(all);
        // The physical columns in declared order, as the source gives them: nothing to compute.
        let physical: Vec<usize> = def
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.kind == crate::catalog::ColumnKind::Physical)
            .map(|(i, _)| i)
            .collect();
        // The watermark assigner (`WATERMARK FOR`) goes right after the computed columns once
        // the streaming operators are wired in (`stateful.rs`); a stateless query needs none.
        if wanted == physical {
            return Ok(source);
        }
        let planned = plan_columns(self.ctx, def)?;
        let mut exprs = Vec::with_capacity(wanted.len());
        let mut names = Vec::with_capacity(wanted.len());
        for &i in &wanted {
            let column = &def.columns[i];
            let Some(e) = planned.exprs.get(i).cloned().flatten() else {
                return Err(SqlError::unsupported(format!(
                    "metadata column '{}' of table '{}' (connector '{}' offers no metadata)",
                    column.name,
                    def.name,
                    connector.name()
                )));
            };
            names.push(e.to_string());
            exprs.push(self.physical(&e, &planned.physical)?);
        }
        let name = format!("Calc(select=[{}])", names.join(", "));
        Ok(self.calc(
            source,
            &name,
            Calc { filter: None, projection: Some(exprs), schema: batch_schema(&scan.projected_schema) },
        ))
    }

    /// Ends an `INSERT`'s rows in its table: the rows are cast to the sink's declared column
    /// types first (the INSERT's implicit cast; DataFusion already planned it, this only
    /// guarantees the batches' types).
    pub fn insert(&mut self, dml: &DmlStatement) -> Result<(SinkOutput, Arc<TableDef>)> {
        if !matches!(dml.op, WriteOp::Insert(datafusion_expr::logical_plan::dml::InsertOp::Append)) {
            return Err(SqlError::unsupported(format!("{} (only INSERT INTO)", dml.op)));
        }
        let Some(table) = dml.target.downcast_ref::<CatalogTable>() else {
            return Err(SqlError::Internal(format!("table '{}' is not a catalog table", dml.table_name)));
        };
        let def = table.def.clone();
        let input = self.query(&dml.input)?;
        let sink_schema = def.sink_schema();
        let in_schema = dml.input.schema();
        if in_schema.fields().len() != sink_schema.fields().len() {
            return Err(SqlError::invalid(format!(
                "INSERT INTO {} gives {} columns, the table takes {}",
                table.path,
                in_schema.fields().len(),
                sink_schema.fields().len()
            )));
        }
        let needs_cast =
            in_schema.fields().iter().zip(sink_schema.fields()).any(|(a, b)| a.data_type() != b.data_type());
        let input = if needs_cast {
            let exprs = in_schema
                .columns()
                .into_iter()
                .zip(sink_schema.fields())
                .map(|(c, f)| {
                    let e = Expr::Cast(datafusion_expr::Cast::new(Box::new(Expr::Column(c)), f.data_type().clone()));
                    self.physical(&e, in_schema)
                })
                .collect::<Result<Vec<_>>>()?;
            let schema = Arc::new(Schema::new(
                sink_schema.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect::<Vec<_>>(),
            ));
            self.calc(input, "Calc(cast to the sink's types)", Calc { filter: None, projection: Some(exprs), schema })
        } else {
            input
        };
        let connector = self.connectors.of(&def)?;
        self.operators.push(format!("Sink(table=[{}], connector=[{}])", table.path, connector.name()));
        let out = connector.create_sink(&SinkContext { table: &def, parallelism: self.parallelism }, input)?;
        Ok((out, def))
    }
}
