//! Unbounded GROUP BY aggregation (Flink's `GroupAggregate`): an updating result, emitted as a
//! changelog (see [`crate::changelog`]).
//!
//! Each batch (the rows of one key group) is accumulated at once in DataFusion
//! `GroupsAccumulator`s over the key group's dense group indices; then every group the batch
//! touched emits one change: `+I` for a new group, `-U` (its previous row, only with
//! `emit_update_before`) then `+U` for an existing one — one change per key per batch, like
//! Flink's mini-batch mode; the materialized table is the same as with a change per row.
//! The accumulators' results are read by taking their state and merging it back (their
//! evaluation is destructive), so a batch costs in proportion to the groups of its key group.
//!
//! State: per key group, the keys, the accumulators' partial state and the last emitted
//! values, in memory and written into keyed state (Arrow rows) at each checkpoint for the key
//! groups that changed (`snapshot_state`); read back lazily after a restore.
//!
//! A changelog *input* (retractions) goes to `group_agg_retract`. Not yet:
//! `table.exec.state.ttl` (the engine's keyed state has no TTL).

use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, BinaryArray, Int8Array, UInt32Array};
use arrow::compute::{concat, take};
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion_expr::{EmitTo, GroupsAccumulator};
use datafusion_physical_expr::aggregate::AggregateFunctionExpr;
use riffle_api::{DataStream, KeyedStateStore, ProcessContext, ValueState};
use riffle_connectors::{KeyedRows, RowStreamExt, Rows};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

use super::error::{ExecError, Result};
use super::group_agg_retract::{RetractGroupAggFn, RetractPlan};
use super::key_table::{KeyCodec, KeyTable};
use super::subtask_key::key_by_nothing;
use super::window_agg::conform;
use super::window_state::Aggs;
use crate::changelog::{op_field, RowKind};

/// A GROUP BY aggregate as the planner describes it.
#[derive(Debug, Clone)]
pub struct GroupAggSpec {
    /// The GROUP BY columns of the input, in output order (empty: one global group, at
    /// parallelism 1).
    pub key_columns: Vec<usize>,
    /// The aggregates (built with `AggregateExprBuilder` on the input schema), in output order.
    pub aggregates: Vec<Arc<AggregateFunctionExpr>>,
    /// The input rows' schema (insert-only).
    pub input_schema: SchemaRef,
    /// The output: keys…, aggregates…, and the row-kind column last
    /// ([`crate::changelog::OP_COLUMN`]). Values are cast to these types where they differ.
    pub output_schema: SchemaRef,
    /// Whether the input is a changelog (its last column the row kind): `-U`/`-D` rows retract
    /// (see `group_agg_retract`).
    pub input_changelog: bool,
    /// Emit `-U` before each `+U` (a retracting sink); without it, an upsert stream of `+I`
    /// and `+U` (what Flink sends a sink with a primary key that does not ask for `-U`).
    pub emit_update_before: bool,
}

impl GroupAggSpec {
    fn validate(&self) -> Result<()> {
        if self.input_changelog {
            let last = self.input_schema.fields().last().map(|f| (f.name().as_str(), f.data_type().clone()));
            if last != Some((crate::changelog::OP_COLUMN, DataType::Int8)) {
                return Err(ExecError::Spec(format!(
                    "a changelog input ends in its Int8 row-kind column '{}'",
                    crate::changelog::OP_COLUMN
                )));
            }
        }
        let n = self.input_schema.fields().len();
        if let Some(k) = self.key_columns.iter().find(|k| **k >= n) {
            return Err(ExecError::Spec(format!("key column {k} of {n}")));
        }
        let want = self.key_columns.len() + self.aggregates.len() + 1;
        if self.output_schema.fields().len() != want {
            return Err(ExecError::Spec(format!(
                "the output has {} columns, the aggregate makes {want} (keys, aggregates, row kind)",
                self.output_schema.fields().len()
            )));
        }
        Ok(())
    }
}

/// What every subtask shares.
#[derive(Debug)]
struct Plan {
    key_columns: Vec<usize>,
    aggs: Aggs,
    codec: KeyCodec,
    output_schema: SchemaRef,
    stored_schema: SchemaRef,
    emit_update_before: bool,
}

/// The groups of one key group.
struct Groups {
    keys: KeyTable,
    accs: Vec<Box<dyn GroupsAccumulator>>,
    /// Per aggregate, the values last emitted for each group (`emitted_len` groups).
    emitted: Vec<ArrayRef>,
    emitted_len: usize,
}

/// A key group's groups in keyed state: keys (`__key`), partial state, last emitted values.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredGroups {
    rows: Rows,
}

const GROUPS: &str = "group-agg.groups";

#[derive(Default)]
struct Work {
    groups: FxHashMap<u32, Groups>,
    dirty: FxHashSet<u32>,
    indices: Vec<usize>,
}

/// The aggregation as a process function over key-group sub-batches.
struct GroupAggFn {
    plan: Arc<Plan>,
    work: Mutex<Work>,
}

impl Clone for GroupAggFn {
    fn clone(&self) -> Self {
        Self { plan: self.plan.clone(), work: Mutex::new(Work::default()) }
    }
}

/// `state` read into fresh accumulators.
fn accumulators_from(aggs: &Aggs, state: &[Vec<ArrayRef>], n: usize) -> Result<Vec<Box<dyn GroupsAccumulator>>> {
    let mut accs = aggs.accumulators()?;
    let groups: Vec<usize> = (0..n).collect();
    for (acc, vals) in accs.iter_mut().zip(state) {
        acc.merge_batch(vals, &groups, n)?;
    }
    Ok(accs)
}

impl Groups {
    fn new(aggs: &Aggs) -> Result<Self> {
        Ok(Self { keys: KeyTable::default(), accs: aggs.accumulators()?, emitted: Vec::new(), emitted_len: 0 })
    }

    /// Every group's partial state, leaving the accumulators as they were.
    fn state(&mut self, aggs: &Aggs) -> Result<Vec<Vec<ArrayRef>>> {
        let state: Vec<Vec<ArrayRef>> = self.accs.iter_mut().map(|a| a.state(EmitTo::All)).collect::<Result<_, _>>()?;
        self.accs = accumulators_from(aggs, &state, self.keys.len())?;
        Ok(state)
    }

    /// Every group's current values.
    fn results(&mut self, aggs: &Aggs) -> Result<Vec<ArrayRef>> {
        let state = self.state(aggs)?;
        let mut reader = accumulators_from(aggs, &state, self.keys.len())?;
        Ok(reader.iter_mut().map(|a| a.evaluate(EmitTo::All)).collect::<Result<_, _>>()?)
    }
}

impl GroupAggFn {
    fn work(&mut self) -> Result<&mut Work> {
        self.work.get_mut().map_err(|_| ExecError::Input("a previous failure poisoned the group state".into()))
    }

    fn load<'w>(plan: &Plan, work: &'w mut Work, rep: u32, state: &mut KeyedStateStore<u32>) -> Result<&'w mut Groups> {
        match work.groups.entry(rep) {
            std::collections::hash_map::Entry::Occupied(o) => Ok(o.into_mut()),
            std::collections::hash_map::Entry::Vacant(v) => {
                let stored: ValueState<StoredGroups> = state.value_state(GROUPS)?;
                let groups = match stored.get(state)? {
                    Some(s) => load_groups(plan, s)?,
                    None => Groups::new(&plan.aggs)?,
                };
                Ok(v.insert(groups))
            }
        }
    }

    fn process(&mut self, k: KeyedRows, ctx: &mut ProcessContext<'_, u32, Rows>) -> Result<()> {
        let plan = self.plan.clone();
        let batch = k.rows.batch();
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let cols: Vec<ArrayRef> = plan.key_columns.iter().map(|&i| batch.column(i).clone()).collect();
        let keys = plan.codec.encode(&cols, n)?;
        let values = plan.aggs.arguments(batch)?;
        let work = self.work()?;
        let mut indices = std::mem::take(&mut work.indices);
        let g = Self::load(&plan, work, k.key, ctx.state())?;
        g.keys.groups_of(&keys, None, &mut indices);
        let total = g.keys.len();
        for (acc, vals) in g.accs.iter_mut().zip(&values) {
            acc.update_batch(vals, &indices, None, total)?;
        }
        let results = g.results(&plan.aggs)?;
        // The groups the batch touched, ascending: existing ones update, new ones insert.
        let mut touched = indices.clone();
        touched.sort_unstable();
        touched.dedup();
        let split = touched.partition_point(|&i| i < g.emitted_len);
        let (updated, inserted) = touched.split_at(split);
        let out = changes(&plan, g, &results, updated, inserted)?;
        g.emitted = results;
        g.emitted_len = total;
        let work = self.work()?;
        work.indices = indices;
        work.dirty.insert(k.key);
        ctx.collect(Rows(out));
        Ok(())
    }

    fn snapshot(&mut self, state: &mut KeyedStateStore<u32>) -> Result<()> {
        let plan = self.plan.clone();
        let work = self.work()?;
        let stored: ValueState<StoredGroups> = state.value_state(GROUPS)?;
        let mut dirty: Vec<u32> = work.dirty.drain().collect();
        dirty.sort_unstable();
        for rep in dirty {
            state.try_set_current_key(rep)?;
            match work.groups.get_mut(&rep) {
                Some(g) if g.keys.len() > 0 => {
                    let s = store_groups(&plan, g)?;
                    stored.set(state, s)?;
                }
                _ => {
                    stored.clear(state)?;
                }
            }
        }
        Ok(())
    }
}

/// The changes of a batch: `-U` of the updated groups' previous rows (if asked), then `+U` of
/// their new rows and `+I` of the new groups.
fn changes(
    plan: &Plan,
    g: &Groups,
    results: &[ArrayRef],
    updated: &[usize],
    inserted: &[usize],
) -> Result<RecordBatch> {
    let idx = |v: &[usize]| UInt32Array::from(v.iter().map(|&i| i as u32).collect::<Vec<_>>());
    let all_keys: Vec<&[u8]> = g.keys.keys().collect();
    let keys_of = |v: &[usize]| plan.codec.decode(v.iter().map(|&i| all_keys[i]));
    let mut parts: Vec<(Vec<ArrayRef>, Vec<ArrayRef>, RowKind, usize)> = Vec::new();
    if plan.emit_update_before && !updated.is_empty() {
        let old: Vec<ArrayRef> = g.emitted.iter().map(|a| take(a, &idx(updated), None)).collect::<Result<_, _>>()?;
        parts.push((keys_of(updated)?, old, RowKind::UpdateBefore, updated.len()));
    }
    for (rows, kind) in [(updated, RowKind::UpdateAfter), (inserted, RowKind::Insert)] {
        if !rows.is_empty() {
            let new: Vec<ArrayRef> = results.iter().map(|a| take(a, &idx(rows), None)).collect::<Result<_, _>>()?;
            parts.push((keys_of(rows)?, new, kind, rows.len()));
        }
    }
    let width = plan.key_columns.len() + results.len();
    let mut cols = Vec::with_capacity(width + 1);
    for c in 0..width {
        let pieces: Vec<&dyn Array> = parts
            .iter()
            .map(|(k, v, _, _)| if c < k.len() { k[c].as_ref() } else { v[c - k.len()].as_ref() })
            .collect();
        cols.push(concat(&pieces)?);
    }
    let ops: Vec<i8> = parts.iter().flat_map(|(_, _, kind, n)| std::iter::repeat_n(*kind as i8, *n)).collect();
    cols.push(Arc::new(Int8Array::from(ops)));
    conform(cols, &plan.output_schema)
}

fn store_groups(plan: &Plan, g: &mut Groups) -> Result<StoredGroups> {
    let state = g.state(&plan.aggs)?;
    let mut cols: Vec<ArrayRef> = vec![Arc::new(BinaryArray::from_iter_values(g.keys.keys()))];
    cols.extend(state.into_iter().flatten());
    cols.extend(g.emitted.iter().cloned());
    Ok(StoredGroups { rows: Rows(RecordBatch::try_new(plan.stored_schema.clone(), cols)?) })
}

fn load_groups(plan: &Plan, s: &StoredGroups) -> Result<Groups> {
    let batch = s.rows.batch();
    let key_col = batch
        .column(0)
        .as_any()
        .downcast_ref::<BinaryArray>()
        .ok_or_else(|| ExecError::Input("stored groups without their keys".into()))?;
    let keys = KeyTable::from_keys(key_col.iter().map(|k| k.unwrap_or_default()));
    let n = keys.len();
    let state = plan.aggs.partial_columns(batch, 1)?;
    let at = 1 + state.iter().map(Vec::len).sum::<usize>();
    let emitted = batch.columns()[at..].to_vec();
    Ok(Groups { keys, accs: accumulators_from(&plan.aggs, &state, n)?, emitted, emitted_len: n })
}

keyed_row_operator!(GroupAggFn, no_timers);

/// The GROUP BY aggregate of `stream`: a changelog of `spec.output_schema`.
pub fn group_aggregate(stream: &DataStream<Rows>, spec: &GroupAggSpec) -> Result<DataStream<Rows>> {
    spec.validate()?;
    let aggs = Aggs::new(spec.aggregates.clone())?;
    let key_fields: Vec<FieldRef> = spec.key_columns.iter().map(|&i| spec.input_schema.fields()[i].clone()).collect();
    let key_types: Vec<DataType> = key_fields.iter().map(|f| f.data_type().clone()).collect();
    let mut stored: Vec<FieldRef> = vec![Arc::new(Field::new("__key", DataType::Binary, false))];
    stored.extend(aggs.state_fields().cloned());
    stored.extend(
        spec.aggregates
            .iter()
            .enumerate()
            .map(|(i, a)| Arc::new(Field::new(format!("__v{i}"), a.field().data_type().clone(), true)) as FieldRef),
    );
    let f = GroupAggFn {
        plan: Arc::new(Plan {
            key_columns: spec.key_columns.clone(),
            aggs,
            codec: KeyCodec::new(&key_types)?,
            output_schema: spec.output_schema.clone(),
            stored_schema: Arc::new(Schema::new(stored)),
            emit_update_before: spec.emit_update_before,
        }),
        work: Mutex::new(Work::default()),
    };
    let names: Vec<&str> = key_fields.iter().map(|f| f.name().as_str()).collect();
    let keyed = if names.is_empty() { key_by_nothing(stream) } else { stream.key_by_columns(&names) };
    let out = if spec.input_changelog {
        let r = RetractGroupAggFn::new(RetractPlan {
            key_columns: spec.key_columns.clone(),
            argument_types: f.plan.aggs.argument_types(&spec.input_schema)?,
            result_types: spec.aggregates.iter().map(|a| a.field().data_type().clone()).collect(),
            aggs: f.plan.aggs.clone(),
            codec: f.plan.codec.clone(),
            output_schema: spec.output_schema.clone(),
            emit_update_before: spec.emit_update_before,
            op_column: spec.input_schema.fields().len() - 1,
        });
        keyed.process(r).name("GroupAggregate")
    } else {
        keyed.process(f).name("GroupAggregate")
    };
    Ok(if names.is_empty() { out.set_parallelism(1) } else { out })
}

/// The output schema of a GROUP BY: the key fields, the aggregates' fields as DataFusion types
/// them, and the row kind.
pub fn default_output_schema(
    input: &SchemaRef,
    key_columns: &[usize],
    aggregates: &[Arc<AggregateFunctionExpr>],
) -> SchemaRef {
    let mut fields: Vec<FieldRef> = key_columns.iter().map(|&i| input.fields()[i].clone()).collect();
    fields.extend(aggregates.iter().map(|a| a.field()));
    fields.push(Arc::new(op_field()));
    Arc::new(Schema::new(fields))
}
