//! What a statement gives back (Flink's `TableResult`): rows with a schema (a query's result,
//! `SHOW`, `DESCRIBE`, `SET`), text (`EXPLAIN`, `SHOW CREATE TABLE`), or a finished job.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::error::Result;

/// A job a statement ran.
#[derive(Debug, Clone, PartialEq)]
pub struct JobInfo {
    /// The job's name.
    pub name: String,
    /// From scheduling to the end (Flink's net runtime).
    pub duration: Duration,
}

/// The result of one statement.
#[derive(Debug, Clone)]
pub struct TableResult {
    /// The rows' schema (empty for `OK`).
    pub schema: SchemaRef,
    /// The rows.
    pub batches: Vec<RecordBatch>,
    /// The job that ran, for DML and queries.
    pub job: Option<JobInfo>,
}

impl TableResult {
    /// Flink's `OK` of a DDL statement: no rows.
    pub fn ok() -> Self {
        TableResult { schema: Arc::new(Schema::empty()), batches: Vec::new(), job: None }
    }

    /// String columns `names` with `rows`.
    pub fn strings(names: &[&str], rows: Vec<Vec<String>>) -> Result<Self> {
        let schema =
            Arc::new(Schema::new(names.iter().map(|n| Field::new(*n, DataType::Utf8, true)).collect::<Vec<_>>()));
        let columns = (0..names.len())
            .map(|i| Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r[i].as_str()))) as ArrayRef)
            .collect::<Vec<_>>();
        let batch = RecordBatch::try_new(schema.clone(), columns)?;
        Ok(TableResult { schema, batches: vec![batch], job: None })
    }

    /// One string column of one value per line (EXPLAIN, SHOW CREATE TABLE).
    pub fn text(name: &str, text: String) -> Result<Self> {
        Self::strings(&[name], vec![vec![text]])
    }

    /// Rows in all.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// The rows (Flink's `collect()`).
    pub fn collect(&self) -> &[RecordBatch] {
        &self.batches
    }

    /// The rows as text, one `Vec` of displayed values per row (NULL as `NULL`).
    pub fn rows_as_strings(&self) -> Result<Vec<Vec<String>>> {
        let options = FormatOptions::default().with_null("NULL");
        let mut out = Vec::new();
        for b in &self.batches {
            let f = b
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
                .collect::<Result<Vec<_>, _>>()?;
            for row in 0..b.num_rows() {
                out.push(f.iter().map(|f| f.value(row).to_string()).collect());
            }
        }
        Ok(out)
    }

    /// Flink's SQL client "tableau" form: a boxed table, or `[INFO] ...` lines.
    pub fn to_tableau(&self) -> Result<String> {
        if self.schema.fields().is_empty() {
            return Ok(match &self.job {
                Some(j) => format!("[INFO] Job '{}' finished in {:.3} s.\n", j.name, j.duration.as_secs_f64()),
                None => "[INFO] Execute statement succeeded.\n".into(),
            });
        }
        let names: Vec<String> = self.schema.fields().iter().map(|f| f.name().clone()).collect();
        let rows = self.rows_as_strings()?;
        // A one-cell text result (EXPLAIN) is printed as is.
        if names.len() == 1 && rows.len() == 1 && rows[0][0].contains('\n') {
            return Ok(format!("{}\n", rows[0][0]));
        }
        let mut widths: Vec<usize> = names.iter().map(|n| n.chars().count()).collect();
        for r in &rows {
            for (w, v) in widths.iter_mut().zip(r) {
                *w = (*w).max(v.chars().count());
            }
        }
        let line = format!("+{}+\n", widths.iter().map(|w| "-".repeat(w + 2)).collect::<Vec<_>>().join("+"));
        let render = |values: &[String]| {
            let cells: Vec<String> = values.iter().zip(&widths).map(|(v, w)| format!(" {v:<w$} ")).collect();
            format!("|{}|\n", cells.join("|"))
        };
        let mut out = String::new();
        out.push_str(&line);
        out.push_str(&render(&names));
        out.push_str(&line);
        for r in &rows {
            out.push_str(&render(r));
        }
        out.push_str(&line);
        out.push_str(&format!("{} row{} in set\n", rows.len(), if rows.len() == 1 { "" } else { "s" }));
        Ok(out)
    }
}
