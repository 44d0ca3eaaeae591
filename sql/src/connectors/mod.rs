//! Table connectors (FLIP-95): a table's `connector` option (or Flink's old `connector.type`)
//! names a [`TableConnector`] in a [`Connectors`] registry, which a plugin or an embedding
//! program can add to. A connector turns a table into a `DataStream<Rows>` of its physical
//! columns (a source) and ends a stream of the table's sink columns (a sink).

pub mod blackhole;
pub mod canonical;
pub mod datagen;
pub mod filesystem;
pub mod options;
pub mod print;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use riffle_api::{CollectStream, DataStream, SinkHandle, StreamEnvironment};
use riffle_connectors::Rows;

use crate::catalog::TableDef;
use crate::error::{Result, SqlError};

/// What a source is built with.
pub struct SourceContext<'a> {
    /// The job being built.
    pub env: &'a StreamEnvironment,
    /// The table (options merged with the statement's hints).
    pub table: &'a TableDef,
    /// The parallelism of the source.
    pub parallelism: u32,
}

/// What a sink is built with.
pub struct SinkContext<'a> {
    /// The table (options merged with the statement's hints).
    pub table: &'a TableDef,
    /// The parallelism of the sink.
    pub parallelism: u32,
}

/// Takes the rows a collecting sink brings back to the caller, then finishes (writes a
/// file, hands rows to a `collect()` result).
pub trait RowConsumer: Send {
    /// One batch of rows, in the sink table's column types.
    fn accept(&mut self, batch: &RecordBatch) -> Result<()>;
    /// The job finished: every row was accepted.
    fn finish(self: Box<Self>) -> Result<()>;
}

/// How a sink ended the stream.
pub enum SinkOutput {
    /// Inside the job (a file, stdout, nothing).
    Job(SinkHandle),
    /// Back to the caller's process: the collected rows go to `consumer`.
    Collect {
        /// The rows as the job sends them.
        stream: CollectStream<Rows>,
        /// Who takes them.
        consumer: Box<dyn RowConsumer>,
    },
}

/// A table connector: a factory of sources and sinks for tables naming it.
pub trait TableConnector: Send + Sync {
    /// Its `connector` option value.
    fn name(&self) -> &str;
    /// A stream of the table's physical columns (in declared order).
    fn create_source(&self, ctx: &SourceContext<'_>) -> Result<DataStream<Rows>> {
        Err(SqlError::Connector {
            table: ctx.table.name.clone(),
            reason: format!("connector '{}' cannot be read (it is a sink only)", self.name()),
        })
    }
    /// Ends `input` (rows of the table's sink schema) in the table.
    fn create_sink(&self, ctx: &SinkContext<'_>, input: DataStream<Rows>) -> Result<SinkOutput> {
        let _ = input;
        Err(SqlError::Connector {
            table: ctx.table.name.clone(),
            reason: format!("connector '{}' cannot be written (it is a source only)", self.name()),
        })
    }
}

/// The connectors a session knows, by name.
#[derive(Clone)]
pub struct Connectors {
    by_name: BTreeMap<String, Arc<dyn TableConnector>>,
}

impl Default for Connectors {
    /// The built-in ones: `datagen`, `blackhole`, `print`, `filesystem`, `canonical-csv`.
    fn default() -> Self {
        let mut c = Connectors { by_name: BTreeMap::new() };
        c.register(Arc::new(datagen::Datagen));
        c.register(Arc::new(blackhole::Blackhole));
        c.register(Arc::new(print::Print));
        c.register(Arc::new(filesystem::Filesystem));
        c.register(Arc::new(canonical::CanonicalCsv));
        c
    }
}

impl Connectors {
    /// Adds (or replaces) a connector under its name.
    pub fn register(&mut self, connector: Arc<dyn TableConnector>) {
        self.by_name.insert(connector.name().to_string(), connector);
    }

    /// The connector of `table`, or an error naming the table and the known connectors.
    pub fn of(&self, table: &TableDef) -> Result<Arc<dyn TableConnector>> {
        let name = table.connector().ok_or_else(|| SqlError::Connector {
            table: table.name.clone(),
            reason: "no 'connector' option in its WITH clause".into(),
        })?;
        // Flink's old keys: 'connector.type' = 'filesystem'.
        self.by_name.get(name).cloned().ok_or_else(|| SqlError::Connector {
            table: table.name.clone(),
            reason: format!(
                "unknown connector '{name}' (known: {})",
                self.by_name.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        })
    }

    /// Names of the registered connectors.
    pub fn names(&self) -> Vec<String> {
        self.by_name.keys().cloned().collect()
    }
}
