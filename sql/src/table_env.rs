//! `TableEnvironment` (FLIP-84): `execute_sql` runs DDL, catalog and session statements at
//! once and DML (`INSERT INTO`, a statement set, a query) as a riffle job on an embedded
//! MiniCluster, waiting for its end; a query's rows come back as the result.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arrow::record_batch::RecordBatch;
use riffle_api::{Configuration, StreamEnvironment};
use riffle_cluster::{MiniCluster, MiniClusterConfig};

use crate::catalog::{Catalogs, ColumnKind, Entry, TableDef, ViewDef};
use crate::connectors::{Connectors, RowConsumer, SinkOutput};
use crate::error::{Result, SqlError};
use crate::functions::Functions;
use crate::options;
use crate::planner::translate::Translator;
use crate::planner::{self, PlanContext};
use crate::result::{JobInfo, TableResult};
use crate::statement::{parse_one, parse_script, Hints, Insert, ShowKind, Statement};
use crate::types::flink_name;

/// A SQL session: catalog, functions, connectors, settings.
pub struct TableEnvironment {
    catalogs: Catalogs,
    functions: Functions,
    connectors: Connectors,
    /// The configuration the session started with (`-D`, a file).
    base: Configuration,
    /// `SET` keys over `base`.
    settings: BTreeMap<String, String>,
}

impl Default for TableEnvironment {
    fn default() -> Self {
        Self::new(Configuration::new())
    }
}

/// A collecting sink's rows go to a `collect()` result.
struct Collector(Arc<Mutex<Vec<RecordBatch>>>);

impl RowConsumer for Collector {
    fn accept(&mut self, batch: &RecordBatch) -> Result<()> {
        self.0.lock().map_err(|_| SqlError::Internal("a poisoned result buffer".into()))?.push(batch.clone());
        Ok(())
    }
    fn finish(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}

impl TableEnvironment {
    /// A session over `config` (engine and SQL options, Flink's names).
    pub fn new(config: Configuration) -> Self {
        TableEnvironment {
            catalogs: Catalogs::default(),
            functions: Functions::default(),
            connectors: Connectors::default(),
            base: config,
            settings: BTreeMap::new(),
        }
    }

    /// The connectors, to register more (a plugin's).
    pub fn connectors_mut(&mut self) -> &mut Connectors {
        &mut self.connectors
    }

    /// The functions, to register more.
    pub fn functions_mut(&mut self) -> &mut Functions {
        &mut self.functions
    }

    /// The catalog.
    pub fn catalogs(&self) -> &Catalogs {
        &self.catalogs
    }

    /// The configuration a job gets: the session's start configuration with `SET` over it.
    pub fn config(&self) -> Configuration {
        let mut c = self.base.clone();
        for (k, v) in &self.settings {
            c.set(k.clone(), v.clone());
        }
        c
    }

    /// The parallelism of every operator: `table.exec.resource.default-parallelism`, else
    /// `parallelism.default`.
    pub fn parallelism(&self) -> Result<u32> {
        let c = self.config();
        let p = match c.get(&options::DEFAULT_PARALLELISM).map_err(|e| SqlError::invalid(e.to_string()))? {
            Some(p) => p,
            None => c.get(&riffle_api::environment::PARALLELISM).map_err(|e| SqlError::invalid(e.to_string()))?,
        };
        if p == 0 {
            return Err(SqlError::invalid("the parallelism must be at least 1"));
        }
        Ok(p)
    }

    /// Runs one statement (a trailing `;` is allowed).
    pub fn execute_sql(&mut self, sql: &str) -> Result<TableResult> {
        let statement = parse_one(sql)?;
        self.execute(statement)
    }

    /// Runs every statement of a script in order; the results of all.
    pub fn execute_script(&mut self, sql: &str) -> Result<Vec<TableResult>> {
        parse_script(sql)?.into_iter().map(|s| self.execute(s)).collect()
    }

    /// Runs a parsed statement.
    pub fn execute(&mut self, statement: Statement) -> Result<TableResult> {
        match statement {
            Statement::CreateTable(c) => {
                let path = self.catalogs.resolve(&c.name)?;
                if self.catalogs.get(&path).is_some() {
                    if c.if_not_exists {
                        return Ok(TableResult::ok());
                    }
                    return Err(SqlError::invalid(format!("table '{path}' already exists")));
                }
                let hints = Hints::new();
                let table = {
                    let ctx = PlanContext::new(&self.catalogs, &self.functions, &hints);
                    planner::computed::type_columns(&ctx, c.table)?
                };
                self.catalogs.create(&path, Entry::Table(Arc::new(table)), c.if_not_exists)?;
                Ok(TableResult::ok())
            }
            Statement::CreateView { name, query, columns, if_not_exists, temporary } => {
                let path = self.catalogs.resolve(&name)?;
                let view = ViewDef { name: path.name.clone(), query: query.to_string(), columns, temporary };
                // Planned once now, so a wrong view fails at CREATE VIEW.
                {
                    let hints = Hints::new();
                    let ctx = PlanContext::new(&self.catalogs, &self.functions, &hints);
                    planner::query_plan(&ctx, *query)?;
                }
                self.catalogs.create(&path, Entry::View(Arc::new(view)), if_not_exists)?;
                Ok(TableResult::ok())
            }
            Statement::Drop { name, view, if_exists } => {
                let path = self.catalogs.resolve(&name)?;
                self.catalogs.drop(&path, view, if_exists)?;
                Ok(TableResult::ok())
            }
            Statement::AlterTableSet { name, options } => {
                let path = self.catalogs.resolve(&name)?;
                let mut table = (*self.catalogs.table(&path)?).clone();
                table.options.extend(options);
                self.catalogs.replace_table(&path, table)?;
                Ok(TableResult::ok())
            }
            Statement::AlterTableRename { name, to } => {
                let path = self.catalogs.resolve(&name)?;
                let mut table = (*self.catalogs.table(&path)?).clone();
                let new_path = self.catalogs.resolve(&to)?;
                table.name = new_path.name.clone();
                self.catalogs.create(&new_path, Entry::Table(Arc::new(table)), false)?;
                self.catalogs.drop(&path, false, false)?;
                Ok(TableResult::ok())
            }
            Statement::Set(None) => {
                let rows = self.config().entries().map(|(k, v)| vec![k.to_string(), v.to_string()]).collect::<Vec<_>>();
                let mut rows = rows;
                rows.sort();
                TableResult::strings(&["key", "value"], rows)
            }
            Statement::Set(Some((k, v))) => {
                if k == options::LOCAL_TIME_ZONE.key() && v != "UTC" {
                    return Err(SqlError::unsupported(format!("table.local-time-zone '{v}' (only 'UTC')")));
                }
                if k == options::RUNTIME_MODE.key() && !v.eq_ignore_ascii_case("streaming") {
                    return Err(SqlError::unsupported(format!("execution.runtime-mode '{v}' (only 'streaming')")));
                }
                self.settings.insert(k, v);
                Ok(TableResult::ok())
            }
            Statement::Reset(None) => {
                self.settings.clear();
                Ok(TableResult::ok())
            }
            Statement::Reset(Some(k)) => {
                self.settings.remove(&k);
                Ok(TableResult::ok())
            }
            Statement::Show(kind) => self.show(kind),
            Statement::ShowCreate { name, view } => {
                let path = self.catalogs.resolve(&name)?;
                match (self.catalogs.get(&path), view) {
                    (Some(Entry::Table(t)), false) => {
                        TableResult::text("result", show_create_table(&path.to_string(), t))
                    }
                    (Some(Entry::View(v)), true) => {
                        let cols =
                            if v.columns.is_empty() { String::new() } else { format!("({})", v.columns.join(", ")) };
                        TableResult::text("result", format!("CREATE VIEW {path}{cols} AS\n{}", v.query))
                    }
                    (Some(_), _) => {
                        Err(SqlError::invalid(format!("'{path}' is not a {}", if view { "view" } else { "table" })))
                    }
                    (None, _) => Err(SqlError::invalid(format!("'{path}' does not exist"))),
                }
            }
            Statement::Describe(name) => self.describe(&name),
            Statement::Explain(inner) => self.explain(*inner),
            Statement::CreateCatalog { name, options, if_not_exists } => {
                self.catalogs.create_catalog(&name, options, if_not_exists)?;
                Ok(TableResult::ok())
            }
            Statement::UseCatalog(name) => {
                self.catalogs.use_catalog(&name)?;
                Ok(TableResult::ok())
            }
            Statement::CreateDatabase { name, if_not_exists } => {
                self.catalogs.create_database(&name, if_not_exists)?;
                Ok(TableResult::ok())
            }
            Statement::DropDatabase { name, if_exists } => {
                self.catalogs.drop_database(&name, if_exists)?;
                Ok(TableResult::ok())
            }
            Statement::UseDatabase(name) => {
                self.catalogs.use_database(&name)?;
                Ok(TableResult::ok())
            }
            Statement::Insert(insert) => self.run_inserts(vec![*insert]),
            Statement::StatementSet(inserts) => self.run_inserts(inserts),
            Statement::Query { query, hints } => self.run_query(*query, &hints),
        }
    }

    fn show(&self, kind: ShowKind) -> Result<TableResult> {
        let (column, values) = match kind {
            ShowKind::Tables => ("table name", self.catalogs.list(false)?),
            ShowKind::Views => ("view name", self.catalogs.list(true)?),
            ShowKind::Functions => ("function name", self.functions.all_names()),
            ShowKind::Catalogs => ("catalog name", self.catalogs.catalogs()),
            ShowKind::Databases => ("database name", self.catalogs.databases()),
            ShowKind::CurrentCatalog => ("current catalog name", vec![self.catalogs.current_catalog().to_string()]),
            ShowKind::CurrentDatabase => ("current database name", vec![self.catalogs.current_database().to_string()]),
        };
        TableResult::strings(&[column], values.into_iter().map(|v| vec![v]).collect())
    }

    fn describe(&self, name: &[String]) -> Result<TableResult> {
        let path = self.catalogs.resolve(name)?;
        let rows = match self.catalogs.get(&path) {
            Some(Entry::Table(t)) => t
                .columns
                .iter()
                .map(|c| {
                    let key = if t.primary_key.contains(&c.name) {
                        format!("PRI({})", t.primary_key.join(", "))
                    } else {
                        String::new()
                    };
                    let extras = match &c.kind {
                        ColumnKind::Physical => String::new(),
                        ColumnKind::Computed(e) => format!("AS {e}"),
                        ColumnKind::Metadata { key, is_virtual } => {
                            format!("METADATA FROM '{key}'{}", if *is_virtual { " VIRTUAL" } else { "" })
                        }
                    };
                    let watermark = match &t.watermark {
                        Some(w) if w.rowtime == c.name => w.expr.to_string(),
                        _ => String::new(),
                    };
                    let mut ty = flink_name(&c.data_type);
                    if t.watermark.as_ref().is_some_and(|w| w.rowtime == c.name) {
                        ty.push_str(" *ROWTIME*");
                    }
                    vec![c.name.clone(), ty, c.nullable.to_string().to_uppercase(), key, extras, watermark]
                })
                .collect(),
            Some(Entry::View(_)) => {
                let hints = Hints::new();
                let ctx = PlanContext::new(&self.catalogs, &self.functions, &hints);
                let plan = planner::optimize(&ctx, self.view_plan(&ctx, &path)?)?;
                plan.schema()
                    .fields()
                    .iter()
                    .map(|f| {
                        vec![
                            f.name().clone(),
                            flink_name(f.data_type()),
                            f.is_nullable().to_string().to_uppercase(),
                            String::new(),
                            String::new(),
                            String::new(),
                        ]
                    })
                    .collect()
            }
            None => return Err(SqlError::invalid(format!("table or view '{path}' does not exist"))),
        };
        TableResult::strings(&["name", "type", "null", "key", "extras", "watermark"], rows)
    }

    fn view_plan(
        &self,
        ctx: &PlanContext<'_>,
        path: &crate::catalog::ObjectPath,
    ) -> Result<datafusion_expr::LogicalPlan> {
        let sql = format!("SELECT * FROM `{}`.`{}`.`{}`", path.catalog, path.database, path.name);
        let Statement::Query { query, .. } = parse_one(&sql)? else {
            return Err(SqlError::Internal("a view's SELECT did not parse as a query".into()));
        };
        planner::query_plan(ctx, *query)
    }

    fn explain(&self, inner: Statement) -> Result<TableResult> {
        let mut text = String::new();
        let p = self.parallelism()?;
        let mut env = StreamEnvironment::with_config(self.config());
        env.set_parallelism(p);
        let (hints, statements): (Hints, Vec<datafusion_sql::sqlparser::ast::Statement>) = match inner {
            Statement::Insert(i) => (i.hints, vec![i.statement]),
            Statement::StatementSet(inserts) => {
                let hints = inserts.first().map(|i| i.hints.clone()).unwrap_or_default();
                (hints, inserts.into_iter().map(|i| i.statement).collect())
            }
            Statement::Query { query, hints } => (hints, vec![datafusion_sql::sqlparser::ast::Statement::Query(query)]),
            _ => return Err(SqlError::invalid("EXPLAIN takes a query or an INSERT")),
        };
        let ctx = PlanContext::new(&self.catalogs, &self.functions, &hints);
        let mut translator = Translator::new(&env, &self.connectors, &ctx, p);
        for statement in statements {
            let plan = planner::logical_plan(&ctx, statement)?;
            text.push_str("== Abstract Syntax Tree ==\n");
            text.push_str(&format!("{}\n\n", plan.display_indent()));
            let optimized = planner::optimize(&ctx, plan)?;
            text.push_str("== Optimized Logical Plan ==\n");
            text.push_str(&format!("{}\n\n", optimized.display_indent_schema()));
            match &optimized {
                datafusion_expr::LogicalPlan::Dml(dml) => {
                    translator.insert(dml)?;
                }
                other => {
                    translator.query(other)?;
                }
            }
        }
        text.push_str(&format!("== riffle Job (parallelism {p}) ==\n"));
        for (i, op) in translator.operators.iter().enumerate() {
            text.push_str(&format!("{}{op}\n", "  ".repeat(i.min(1))));
        }
        TableResult::text("plan", text.trim_end().to_string())
    }

    /// Plans and runs the inserts as one job.
    fn run_inserts(&mut self, inserts: Vec<Insert>) -> Result<TableResult> {
        let p = self.parallelism()?;
        let config = self.config();
        let mut env = StreamEnvironment::with_config(config.clone());
        env.set_parallelism(p);
        let mut outputs = Vec::new();
        let mut targets = Vec::new();
        for insert in inserts {
            let ctx = PlanContext::new(&self.catalogs, &self.functions, &insert.hints);
            let plan = planner::optimize(&ctx, planner::logical_plan(&ctx, insert.statement)?)?;
            let datafusion_expr::LogicalPlan::Dml(dml) = &plan else {
                return Err(SqlError::Internal(format!("an INSERT planned as {}", plan.display())));
            };
            let mut translator = Translator::new(&env, &self.connectors, &ctx, p);
            let (out, table) = translator.insert(dml)?;
            targets.push(table.name.clone());
            outputs.push(out);
        }
        let name = config
            .get(&options::PIPELINE_NAME)
            .ok()
            .flatten()
            .unwrap_or_else(|| format!("insert-into_{}", targets.join("_")));
        let job = run_job(&config, env, outputs, &name, p)?;
        Ok(TableResult { job: Some(job), ..TableResult::ok() })
    }

    /// Runs a query to its end and returns its rows.
    fn run_query(&mut self, query: datafusion_sql::sqlparser::ast::Query, hints: &Hints) -> Result<TableResult> {
        let p = self.parallelism()?;
        let config = self.config();
        let mut env = StreamEnvironment::with_config(config.clone());
        env.set_parallelism(p);
        let ctx = PlanContext::new(&self.catalogs, &self.functions, hints);
        let plan = planner::optimize(&ctx, planner::query_plan(&ctx, query)?)?;
        let mut translator = Translator::new(&env, &self.connectors, &ctx, p);
        let stream = translator.query(&plan)?;
        let rows = Arc::new(Mutex::new(Vec::new()));
        let output = SinkOutput::Collect { stream: stream.collect(), consumer: Box::new(Collector(rows.clone())) };
        let job = run_job(&config, env, vec![output], "collect", p)?;
        let batches =
            std::mem::take(&mut *rows.lock().map_err(|_| SqlError::Internal("a poisoned result buffer".into()))?);
        let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(
            plan.schema().fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect::<Vec<_>>(),
        ));
        Ok(TableResult { schema, batches, job: Some(job) })
    }
}

/// Runs a built job on an embedded cluster with enough slots, draining collecting sinks
/// while it runs; their consumers finish once the job finished.
fn run_job(
    config: &Configuration,
    env: StreamEnvironment,
    outputs: Vec<SinkOutput>,
    name: &str,
    parallelism: u32,
) -> Result<JobInfo> {
    let graph = env.build_job_graph(name)?;
    let mut cfg = MiniClusterConfig::from_config(config.clone()).map_err(|e| SqlError::invalid(e.to_string()))?;
    cfg.slots_per_executor = cfg.slots_per_executor.max(parallelism);
    let cluster = MiniCluster::start(cfg).map_err(|e| SqlError::Job(e.to_string()))?;
    let job = match cluster.submit(graph) {
        Ok(j) => j,
        Err(e) => {
            cluster.shutdown();
            return Err(SqlError::Job(e.to_string()));
        }
    };
    let drains: Vec<_> = outputs
        .into_iter()
        .filter_map(|o| match o {
            SinkOutput::Job(_) => None,
            SinkOutput::Collect { stream, consumer } => Some(std::thread::spawn(move || {
                let mut consumer = consumer;
                let mut first_error = None;
                // Keep reading after an error: a reader that stops would hold the job back.
                for rows in stream {
                    if first_error.is_none() {
                        if let Err(e) = consumer.accept(rows.batch()) {
                            first_error = Some(e);
                        }
                    }
                }
                (consumer, first_error)
            })),
        })
        .collect();
    let result = job.wait(None);
    cluster.shutdown();
    let mut consumers = Vec::new();
    let mut error = None;
    for d in drains {
        match d.join() {
            Ok((c, e)) => {
                consumers.push(c);
                if error.is_none() {
                    error = e;
                }
            }
            Err(_) => error = error.or(Some(SqlError::Internal("a result reader panicked".into()))),
        }
    }
    let result = result.map_err(|e| SqlError::Job(e.to_string()))?;
    if result.status != riffle_cluster::JobStatus::Finished {
        let cause = result.error.unwrap_or_else(|| "no cause reported".into());
        return Err(SqlError::Job(format!("job '{name}' ended {:?}: {cause}", result.status)));
    }
    if let Some(e) = error {
        return Err(e);
    }
    for c in consumers {
        c.finish()?;
    }
    Ok(JobInfo { name: name.to_string(), duration: result.duration })
}

/// `SHOW CREATE TABLE`: the table's DDL as Flink prints it.
fn show_create_table(path: &str, t: &TableDef) -> String {
    let mut lines = Vec::new();
    for c in &t.columns {
        let mut line = format!("  `{}` ", c.name);
        match &c.kind {
            ColumnKind::Computed(e) => line.push_str(&format!("AS {e}")),
            kind => {
                line.push_str(&flink_name(&c.data_type));
                if !c.nullable {
                    line.push_str(" NOT NULL");
                }
                if let ColumnKind::Metadata { key, is_virtual } = kind {
                    line.push_str(&format!(" METADATA FROM '{key}'"));
                    if *is_virtual {
                        line.push_str(" VIRTUAL");
                    }
                }
            }
        }
        if let Some(comment) = &c.comment {
            line.push_str(&format!(" COMMENT '{}'", comment.replace('\'', "''")));
        }
        lines.push(line);
    }
    if let Some(w) = &t.watermark {
        lines.push(format!("  WATERMARK FOR `{}` AS {}", w.rowtime, w.expr));
    }
    if !t.primary_key.is_empty() {
        lines.push(format!(
            "  CONSTRAINT `PK_{}` PRIMARY KEY ({}) NOT ENFORCED",
            t.primary_key.join("_"),
            t.primary_key.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
        ));
    }
    let mut out = format!("CREATE TABLE {path} (\n{}\n)", lines.join(",\n"));
    if let Some(c) = &t.comment {
        out.push_str(&format!("\nCOMMENT '{}'", c.replace('\'', "''")));
    }
    if !t.partitioned_by.is_empty() {
        out.push_str(&format!(
            "\nPARTITIONED BY ({})",
            t.partitioned_by.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
        ));
    }
    let options: Vec<String> =
        t.options.iter().map(|(k, v)| format!("  '{}' = '{}'", k.replace('\'', "''"), v.replace('\'', "''"))).collect();
    out.push_str(&format!("\nWITH (\n{}\n)", options.join(",\n")));
    out
}
