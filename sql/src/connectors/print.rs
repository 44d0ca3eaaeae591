//! `'connector' = 'print'`: every row on stdout as Flink prints it, `+I[v1, v2, ...]` (the
//! row kind of a changelog first), prefixed with `print-identifier` and, above parallelism
//! 1, the 1-based subtask: `id:2> +I[...]`, `2> +I[...]`, `id> +I[...]`.

use std::io::Write;

use arrow::array::Array;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use riffle_api::{DataStream, RichMapFunction, RuntimeContext, UserError};
use riffle_connectors::Rows;

use super::{SinkContext, SinkOutput, TableConnector};
use crate::changelog::{RowKind, OP_COLUMN};
use crate::error::Result;

/// Flink's print sink.
pub struct Print;

impl TableConnector for Print {
    fn name(&self) -> &str {
        "print"
    }

    fn create_sink(&self, ctx: &SinkContext<'_>, input: DataStream<Rows>) -> Result<SinkOutput> {
        let identifier = super::options::get(ctx.table, &["print-identifier"]).map(str::to_string);
        let to_stderr = super::options::parse::<bool>(ctx.table, &["standard-error"])?.unwrap_or(false);
        let printer = Printer { identifier, prefix: String::new(), to_stderr };
        Ok(SinkOutput::Job(input.map_with_state(printer).discard().name("Sink: print")))
    }
}

#[derive(Clone)]
struct Printer {
    identifier: Option<String>,
    prefix: String,
    to_stderr: bool,
}

/// The lines Flink's print sink writes for `batch` (without prefix).
pub fn lines(batch: &arrow::record_batch::RecordBatch) -> std::result::Result<Vec<String>, arrow::error::ArrowError> {
    let op = batch.schema().index_of(OP_COLUMN).ok();
    let options = FormatOptions::default().with_null("null");
    let formatters = batch
        .columns()
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != op)
        .map(|(_, c)| ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let kinds = op.and_then(|i| batch.column(i).as_any().downcast_ref::<arrow::array::Int8Array>().cloned());
    let mut out = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let kind = kinds.as_ref().and_then(|k| RowKind::from_byte(k.value(row))).unwrap_or(RowKind::Insert);
        let values: Vec<String> = formatters.iter().map(|f| f.value(row).to_string()).collect();
        out.push(format!("{}[{}]", kind.short_string(), values.join(", ")));
    }
    Ok(out)
}

impl RichMapFunction<Rows, ()> for Printer {
    type State = ();

    fn open(&mut self, ctx: &RuntimeContext) -> std::result::Result<(), UserError> {
        self.prefix = match (&self.identifier, ctx.parallelism > 1) {
            (Some(id), true) => format!("{id}:{}> ", ctx.subtask + 1),
            (Some(id), false) => format!("{id}> "),
            (None, true) => format!("{}> ", ctx.subtask + 1),
            (None, false) => String::new(),
        };
        Ok(())
    }

    fn map(&mut self, rows: Rows) -> std::result::Result<(), UserError> {
        let mut text = String::new();
        for line in lines(rows.batch())? {
            text.push_str(&self.prefix);
            text.push_str(&line);
            text.push('\n');
        }
        if self.to_stderr {
            std::io::stderr().lock().write_all(text.as_bytes())?;
        } else {
            std::io::stdout().lock().write_all(text.as_bytes())?;
        }
        Ok(())
    }
}
