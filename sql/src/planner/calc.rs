//! `Calc`: a filter and/or a projection evaluated on each batch with DataFusion's physical
//! expressions (Flink's `Calc` node). It is a non-keyed process function, so an evaluation
//! error fails the task with its message instead of panicking; an empty result is not sent.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, RecordBatchOptions};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion_physical_expr::PhysicalExpr;
use riffle_api::{KeyedProcessFunction, ProcessContext, UserError};
use riffle_connectors::Rows;

/// A filter and a projection over batches of one schema.
#[derive(Clone, Debug)]
pub struct Calc {
    /// Rows kept (NULL drops a row).
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    /// The output columns; `None` keeps the input's.
    pub projection: Option<Vec<Arc<dyn PhysicalExpr>>>,
    /// The output schema (with a projection).
    pub schema: SchemaRef,
}

impl Calc {
    /// The rows of `batch` the filter keeps, projected; `None` when no row is left.
    pub fn apply(&self, batch: &RecordBatch) -> datafusion_common::Result<Option<RecordBatch>> {
        let filtered;
        let batch = match &self.filter {
            None => batch,
            Some(f) => {
                let mask = f.evaluate(batch)?.into_array(batch.num_rows())?;
                let Some(mask) = mask.as_boolean_opt() else {
                    return datafusion_common::exec_err!("a filter gave {}, not BOOLEAN", mask.data_type());
                };
                filtered = arrow::compute::filter_record_batch(batch, mask)?;
                &filtered
            }
        };
        if batch.num_rows() == 0 {
            return Ok(None);
        }
        let Some(projection) = &self.projection else { return Ok(Some(batch.clone())) };
        let columns = projection
            .iter()
            .map(|e| e.evaluate(batch).and_then(|v| v.into_array(batch.num_rows())))
            .collect::<datafusion_common::Result<Vec<ArrayRef>>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        Ok(Some(RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)?))
    }
}

impl KeyedProcessFunction<(), Rows, Rows> for Calc {
    fn process_element(&mut self, value: Rows, ctx: &mut ProcessContext<'_, (), Rows>) -> Result<(), UserError> {
        if let Some(out) = self.apply(value.batch())? {
            ctx.collect(Rows(out));
        }
        Ok(())
    }
}
