//! A table as `CREATE TABLE` declared it: columns of three kinds, the watermark, the key,
//! the partitioning and the connector options.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion_sql::sqlparser::ast::Expr as SqlExpr;

/// What a column is made of.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnKind {
    /// Read from (or written to) the connector.
    Physical,
    /// `name AS expr`: computed from the physical columns after the source.
    Computed(Box<SqlExpr>),
    /// `name TYPE METADATA [FROM 'key'] [VIRTUAL]`: a connector's metadata (a virtual one is
    /// only read, never written).
    Metadata {
        /// The metadata key (the column name when no `FROM`).
        key: String,
        /// Whether a sink leaves it out.
        is_virtual: bool,
    },
}

/// One column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// The name, case as written (back-quotes removed).
    pub name: String,
    /// The Arrow type (a computed column's is the type of its expression).
    pub data_type: DataType,
    /// Whether NULL is allowed (`NOT NULL` and primary key columns are not).
    pub nullable: bool,
    /// Physical, computed or metadata.
    pub kind: ColumnKind,
    /// `COMMENT '...'`.
    pub comment: Option<String>,
}

/// `WATERMARK FOR rowtime AS expr`: kept for the watermark assigner that runs after the
/// computed columns.
#[derive(Debug, Clone, PartialEq)]
pub struct WatermarkSpec {
    /// The event-time column.
    pub rowtime: String,
    /// The watermark's expression over the table's columns.
    pub expr: SqlExpr,
}

/// A table of the catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct TableDef {
    /// The table's own name.
    pub name: String,
    /// Columns in declared order.
    pub columns: Vec<Column>,
    /// The watermark, if any.
    pub watermark: Option<WatermarkSpec>,
    /// `PRIMARY KEY (..) NOT ENFORCED` columns.
    pub primary_key: Vec<String>,
    /// `PARTITIONED BY (..)` columns.
    pub partitioned_by: Vec<String>,
    /// `WITH (..)` options, keys as written.
    pub options: BTreeMap<String, String>,
    /// `COMMENT '...'` of the table.
    pub comment: Option<String>,
}

impl TableDef {
    /// The schema of every column in declared order: what a query sees.
    pub fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns.iter().map(|c| Field::new(&c.name, c.data_type.clone(), c.nullable)).collect::<Vec<_>>(),
        ))
    }

    /// The schema of the physical columns: what the connector reads and writes.
    pub fn physical_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .filter(|c| c.kind == ColumnKind::Physical)
                .map(|c| Field::new(&c.name, c.data_type.clone(), c.nullable))
                .collect::<Vec<_>>(),
        ))
    }

    /// The schema a sink writes: physical and non-virtual metadata columns.
    pub fn sink_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .filter(|c| !matches!(c.kind, ColumnKind::Computed(_) | ColumnKind::Metadata { is_virtual: true, .. }))
                .map(|c| Field::new(&c.name, c.data_type.clone(), c.nullable))
                .collect::<Vec<_>>(),
        ))
    }

    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The `connector` option, or Flink's old `connector.type`.
    pub fn connector(&self) -> Option<&str> {
        self.options.get("connector").or_else(|| self.options.get("connector.type")).map(String::as_str)
    }
}

/// A view: a query kept as text, planned where it is used.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewDef {
    /// The view's own name.
    pub name: String,
    /// The query (`SELECT ...`) as sqlparser printed it.
    pub query: String,
    /// Column names given as `CREATE VIEW v (a, b) AS`, if any.
    pub columns: Vec<String>,
    /// Whether it was `CREATE TEMPORARY VIEW`.
    pub temporary: bool,
}
