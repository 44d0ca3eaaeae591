//! The state of windowed aggregation: aggregates as DataFusion `GroupsAccumulator`s over dense
//! group indices, per slice of time, and the form a key group's slices take in keyed state.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BinaryArray, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion_expr::{EmitTo, GroupsAccumulator};
use datafusion_functions_aggregate_common::aggregate::groups_accumulator::GroupsAccumulatorAdapter;
use datafusion_physical_expr::aggregate::AggregateFunctionExpr;
use riffle_connectors::Rows;
use serde::{Deserialize, Serialize};

use super::error::{ExecError, Result};
use super::key_table::{EncodedKeys, KeyTable};

/// A query's aggregates: how to make their accumulators, evaluate their arguments and lay out
/// their partial state as columns.
#[derive(Debug, Clone)]
pub struct Aggs {
    exprs: Vec<Arc<AggregateFunctionExpr>>,
    /// The partial state's fields, per aggregate (renamed `__s<i>_<j>`: unique).
    state_fields: Vec<Vec<FieldRef>>,
}

impl Aggs {
    /// The aggregates `exprs`, in output order.
    pub fn new(exprs: Vec<Arc<AggregateFunctionExpr>>) -> Result<Self> {
        let mut state_fields = Vec::with_capacity(exprs.len());
        for (i, e) in exprs.iter().enumerate() {
            let fields = e
                .state_fields()?
                .iter()
                .enumerate()
                .map(|(j, f)| Arc::new(Field::new(format!("__s{i}_{j}"), f.data_type().clone(), true)))
                .collect();
            state_fields.push(fields);
        }
        Ok(Self { exprs, state_fields })
    }

    /// Every aggregate's partial state fields, in order.
    pub fn state_fields(&self) -> impl Iterator<Item = &FieldRef> {
        self.state_fields.iter().flatten()
    }

    /// Fresh accumulators, one per aggregate: DataFusion's vectorized one where the function
    /// has it, its row accumulator behind the adapter otherwise.
    pub fn accumulators(&self) -> Result<Vec<Box<dyn GroupsAccumulator>>> {
        self.exprs
            .iter()
            .map(|e| {
                if e.groups_accumulator_supported() {
                    Ok(e.create_groups_accumulator()?)
                } else {
                    let e = e.clone();
                    Ok(Box::new(GroupsAccumulatorAdapter::new(move || e.create_accumulator()))
                        as Box<dyn GroupsAccumulator>)
                }
            })
            .collect()
    }

    /// Each aggregate's arguments evaluated on raw input rows.
    pub fn arguments(&self, batch: &RecordBatch) -> Result<Vec<Vec<ArrayRef>>> {
        self.exprs
            .iter()
            .map(|e| e.expressions().iter().map(|x| Ok(x.evaluate(batch)?.into_array(batch.num_rows())?)).collect())
            .collect()
    }

    /// Each aggregate's argument types over `schema`.
    pub fn argument_types(&self, schema: &Schema) -> Result<Vec<Vec<DataType>>> {
        self.exprs.iter().map(|e| e.expressions().iter().map(|x| Ok(x.data_type(schema)?)).collect()).collect()
    }

    /// Each aggregate's partial state columns of a partial batch, starting at column `first`.
    pub fn partial_columns(&self, batch: &RecordBatch, first: usize) -> Result<Vec<Vec<ArrayRef>>> {
        let mut at = first;
        let mut out = Vec::with_capacity(self.exprs.len());
        for fields in &self.state_fields {
            let cols = batch
                .columns()
                .get(at..at + fields.len())
                .ok_or_else(|| ExecError::Input(format!("a partial batch of {} columns", batch.num_columns())))?;
            out.push(cols.to_vec());
            at += fields.len();
        }
        Ok(out)
    }
}

/// Rows of `values` at `rows` (all of them when `None`).
fn take_rows(values: &[Vec<ArrayRef>], rows: Option<&[u32]>) -> Result<Vec<Vec<ArrayRef>>> {
    match rows {
        None => Ok(values.to_vec()),
        Some(rows) => {
            let idx = UInt32Array::from(rows.to_vec());
            values.iter().map(|vs| vs.iter().map(|v| Ok(take(v, &idx, None)?)).collect()).collect()
        }
    }
}

/// Groups of one slice, still taking rows.
pub struct LiveSlice {
    pub keys: KeyTable,
    pub accs: Vec<Box<dyn GroupsAccumulator>>,
}

/// Groups of a slice that takes no more rows: its partial state, read by every window it is in.
pub struct FrozenSlice {
    pub keys: KeyTable,
    /// Per aggregate, its state columns (one row per group).
    pub state: Vec<Vec<ArrayRef>>,
}

/// A slice, live or frozen.
pub enum Slice {
    Live(LiveSlice),
    Frozen(FrozenSlice),
}

impl LiveSlice {
    /// An empty slice.
    pub fn new(aggs: &Aggs) -> Result<Self> {
        Ok(Self { keys: KeyTable::default(), accs: aggs.accumulators()? })
    }

    /// Accumulates rows `rows` (all when `None`) of a batch: `values` are the aggregates'
    /// arguments (raw input) or partial states (`merge`).
    pub fn accumulate(
        &mut self,
        keys: &EncodedKeys,
        values: &[Vec<ArrayRef>],
        rows: Option<&[u32]>,
        merge: bool,
        groups: &mut Vec<usize>,
    ) -> Result<()> {
        self.keys.groups_of(keys, rows, groups);
        let values = take_rows(values, rows)?;
        let n = self.keys.len();
        for (acc, vals) in self.accs.iter_mut().zip(&values) {
            if merge {
                acc.merge_batch(vals, groups, n)?;
            } else {
                acc.update_batch(vals, groups, None, n)?;
            }
        }
        Ok(())
    }

    /// The partial state of every group, taken out (the accumulators are left empty).
    pub fn take_state(&mut self) -> Result<Vec<Vec<ArrayRef>>> {
        Ok(self.accs.iter_mut().map(|a| a.state(EmitTo::All)).collect::<Result<_, _>>()?)
    }

    /// The final values of every group, taken out.
    pub fn take_results(&mut self) -> Result<Vec<ArrayRef>> {
        Ok(self.accs.iter_mut().map(|a| a.evaluate(EmitTo::All)).collect::<Result<_, _>>()?)
    }

    /// A live slice holding `state` (one row per key of `keys`).
    pub fn from_state(aggs: &Aggs, keys: KeyTable, state: &[Vec<ArrayRef>]) -> Result<Self> {
        let mut accs = aggs.accumulators()?;
        let n = keys.len();
        let groups: Vec<usize> = (0..n).collect();
        for (acc, vals) in accs.iter_mut().zip(state) {
            acc.merge_batch(vals, &groups, n)?;
        }
        Ok(Self { keys, accs })
    }
}

impl Slice {
    /// The slice's partial state, freezing it (a frozen slice takes no rows).
    pub fn freeze(&mut self) -> Result<&FrozenSlice> {
        if let Slice::Live(live) = self {
            let state = live.take_state()?;
            *self = Slice::Frozen(FrozenSlice { keys: std::mem::take(&mut live.keys), state });
        }
        match self {
            Slice::Frozen(f) => Ok(f),
            Slice::Live(_) => Err(ExecError::Input("a slice did not freeze".into())),
        }
    }
}

/// One slice in keyed state: its end, whether it was frozen, and its keys (a binary column
/// `__key`) with the partial state columns, as Arrow rows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredSlice {
    pub end: i64,
    pub frozen: bool,
    pub rows: Rows,
}

/// A key group's slices in keyed state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StoredSlices {
    pub slices: Vec<StoredSlice>,
}

/// The schema of a stored slice.
pub fn stored_schema(aggs: &Aggs) -> SchemaRef {
    let mut fields: Vec<FieldRef> = vec![Arc::new(Field::new("__key", DataType::Binary, false))];
    fields.extend(aggs.state_fields().cloned());
    Arc::new(Schema::new(fields))
}

/// A key group's slices, by end.
#[derive(Default)]
pub struct SliceSet {
    pub slices: BTreeMap<i64, Slice>,
}

impl SliceSet {
    /// The slices as stored in keyed state. A live slice's state is read out and merged back
    /// (the accumulators' state is only readable by taking it).
    pub fn store(&mut self, aggs: &Aggs, schema: &SchemaRef) -> Result<StoredSlices> {
        let mut out = StoredSlices::default();
        for (end, slice) in self.slices.iter_mut() {
            let (keys, state, frozen) = match slice {
                Slice::Live(live) => {
                    let state = live.take_state()?;
                    let keys = std::mem::take(&mut live.keys);
                    *live = LiveSlice::from_state(aggs, keys, &state)?;
                    (&live.keys, state, false)
                }
                Slice::Frozen(f) => (&f.keys, f.state.clone(), true),
            };
            let key_col: ArrayRef = Arc::new(BinaryArray::from_iter_values(keys.keys()));
            let mut cols = vec![key_col];
            cols.extend(state.into_iter().flatten());
            let rows = Rows(RecordBatch::try_new(schema.clone(), cols)?);
            out.slices.push(StoredSlice { end: *end, frozen, rows });
        }
        Ok(out)
    }

    /// Slices read back from keyed state.
    pub fn load(aggs: &Aggs, stored: &StoredSlices) -> Result<Self> {
        let mut slices = BTreeMap::new();
        for s in &stored.slices {
            let batch = s.rows.batch();
            let key_col = batch
                .column(0)
                .as_any()
                .downcast_ref::<BinaryArray>()
                .ok_or_else(|| ExecError::Input("a stored slice without its keys".into()))?;
            let keys = KeyTable::from_keys(key_col.iter().map(|k| k.unwrap_or_default()));
            let state = aggs.partial_columns(batch, 1)?;
            let slice = if s.frozen {
                Slice::Frozen(FrozenSlice { keys, state })
            } else {
                Slice::Live(LiveSlice::from_state(aggs, keys, &state)?)
            };
            slices.insert(s.end, slice);
        }
        Ok(Self { slices })
    }
}
