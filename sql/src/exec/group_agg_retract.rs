//! GROUP BY over a changelog input (Flink's `GroupAggregate` with retraction): `+I`/`+U` rows
//! add to their group, `-U`/`-D` rows retract from it.
//!
//! DataFusion's `GroupsAccumulator`s cannot retract, and MAX/MIN with retraction must keep
//! every value anyway (Flink's `MaxWithRetractAggFunction` keeps a map of value counts), so
//! each group keeps the multiset of its rows' aggregate arguments (arrow-row bytes → count).
//! Per batch, the counts are updated row by row (one hash lookup each), then every group the
//! batch touched is aggregated afresh from its multiset — all touched groups in one
//! `update_batch` per aggregate over the decoded values — and emits one change: `+I` for a
//! group that was empty, `-U` (with `emit_update_before`) and `+U` for one that changed, `-D`
//! (its last row) for one that became empty. A batch costs in proportion to the rows of
//! the groups it touches.
//!
//! State per key group: the keys, each group's value counts and the last emitted values, in
//! memory and written into keyed state at each checkpoint for the key groups that changed
//! (`snapshot_state`), read back lazily after a restore.

use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, BinaryArray, Int64Array, Int8Array, UInt32Array};
use arrow::compute::{concat, interleave, take};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
use datafusion_expr::EmitTo;
use riffle_api::{KeyedStateStore, ProcessContext, ValueState};
use riffle_connectors::{KeyedRows, Rows};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

use super::error::{ExecError, Result};
use super::key_table::{KeyCodec, KeyTable};
use super::window_agg::conform;
use super::window_state::Aggs;
use crate::changelog::RowKind;

/// What every subtask shares.
#[derive(Debug)]
pub(crate) struct RetractPlan {
    pub key_columns: Vec<usize>,
    pub aggs: Aggs,
    pub codec: KeyCodec,
    pub output_schema: SchemaRef,
    pub emit_update_before: bool,
    /// The row-kind column of the input (its last).
    pub op_column: usize,
    /// The types of every aggregate's arguments, in order (all aggregates' together).
    pub argument_types: Vec<Vec<DataType>>,
    /// The aggregates' result types.
    pub result_types: Vec<DataType>,
}

/// The groups of one key group.
struct Groups {
    keys: KeyTable,
    /// Per group, its argument rows with their counts.
    values: Vec<FxHashMap<Box<[u8]>, i64>>,
    /// Per group, its number of rows (0: the group is empty, emitted as deleted).
    rows: Vec<i64>,
    /// Per aggregate, the values last emitted (one per group; stale for empty groups).
    emitted: Vec<ArrayRef>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredGroups {
    /// `__group` (UInt32 as Int64), `__value` (binary), `__count`.
    values: Rows,
    /// `__key` (binary), `__rows`, then the emitted values.
    groups: Rows,
}

const GROUPS: &str = "group-agg-retract.groups";

#[derive(Default)]
struct Work {
    groups: FxHashMap<u32, Groups>,
    dirty: FxHashSet<u32>,
    converter: Option<RowConverter>,
}

/// The aggregation over a changelog as a process function over key-group sub-batches.
pub(crate) struct RetractGroupAggFn {
    plan: Arc<RetractPlan>,
    work: Mutex<Work>,
}

impl Clone for RetractGroupAggFn {
    fn clone(&self) -> Self {
        Self { plan: self.plan.clone(), work: Mutex::new(Work::default()) }
    }
}

impl RetractGroupAggFn {
    pub(crate) fn new(plan: RetractPlan) -> Self {
        Self { plan: Arc::new(plan), work: Mutex::new(Work::default()) }
    }

    fn work(&mut self) -> Result<&mut Work> {
        self.work.get_mut().map_err(|_| ExecError::Input("a previous failure poisoned the group state".into()))
    }

    fn empty_groups(plan: &RetractPlan) -> Groups {
        let emitted = plan.result_types.iter().map(|t| arrow::array::new_empty_array(t)).collect();
        Groups { keys: KeyTable::default(), values: Vec::new(), rows: Vec::new(), emitted }
    }

    fn load<'w>(
        plan: &RetractPlan,
        groups: &'w mut FxHashMap<u32, Groups>,
        rep: u32,
        state: &mut KeyedStateStore<u32>,
    ) -> Result<&'w mut Groups> {
        match groups.entry(rep) {
            std::collections::hash_map::Entry::Occupied(o) => Ok(o.into_mut()),
            std::collections::hash_map::Entry::Vacant(v) => {
                let stored: ValueState<StoredGroups> = state.value_state(GROUPS)?;
                let g = match stored.get(state)? {
                    Some(s) => load_groups(plan, s)?,
                    None => Self::empty_groups(plan),
                };
                Ok(v.insert(g))
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
        let ops = batch
            .column(plan.op_column)
            .as_any()
            .downcast_ref::<Int8Array>()
            .ok_or_else(|| ExecError::Input("a changelog without its Int8 row-kind column".into()))?
            .clone();
        let cols: Vec<ArrayRef> = plan.key_columns.iter().map(|&i| batch.column(i).clone()).collect();
        let keys = plan.codec.encode(&cols, n)?;
        let args: Vec<ArrayRef> = plan.aggs.arguments(batch)?.into_iter().flatten().collect();
        let work = self.work()?;
        if work.converter.is_none() {
            let fields = plan.argument_types.iter().flatten().map(|t| SortField::new(t.clone())).collect();
            work.converter = Some(RowConverter::new(fields)?);
        }
        let Some(converter) = work.converter.as_ref() else { return Ok(()) };
        let values = converter.convert_columns(&args)?;
        let g = Self::load(&plan, &mut work.groups, k.key, ctx.state())?;
        // Per touched group, its row count before the batch.
        let mut rows_before: FxHashMap<usize, i64> = FxHashMap::default();
        for i in 0..n {
            let kind = RowKind::from_byte(ops.value(i))
                .ok_or_else(|| ExecError::Input(format!("row kind {} is none of Flink's", ops.value(i))))?;
            let group = g.keys.group_of(keys.get(i));
            if group >= g.values.len() {
                g.values.push(FxHashMap::default());
                g.rows.push(0);
            }
            rows_before.entry(group).or_insert(g.rows[group]);
            let delta = if kind.is_accumulate() { 1 } else { -1 };
            let count = g.values[group].entry(values.row(i).data().into()).or_insert(0);
            *count += delta;
            if *count == 0 {
                g.values[group].remove(values.row(i).data());
            }
            g.rows[group] += delta;
        }
        let mut touched: Vec<usize> = rows_before.keys().copied().collect();
        touched.sort_unstable();
        // Every touched group aggregated afresh from its multiset.
        let (mut value_rows, mut value_groups) = (Vec::new(), Vec::new());
        let live: Vec<usize> = touched.iter().copied().filter(|&t| g.rows[t] > 0).collect();
        for (slot, &t) in live.iter().enumerate() {
            for (v, &c) in &g.values[t] {
                for _ in 0..c.max(0) {
                    value_rows.push(v.clone());
                    value_groups.push(slot);
                }
            }
        }
        let parser = converter.parser();
        let decoded = converter.convert_rows(value_rows.iter().map(|v| parser.parse(v)))?;
        let mut results: Vec<ArrayRef> = Vec::with_capacity(plan.aggs_len());
        let mut accs = plan.aggs.accumulators()?;
        let mut at = 0;
        for (acc, types) in accs.iter_mut().zip(&plan.argument_types) {
            let vals = &decoded[at..at + types.len()];
            at += types.len();
            acc.update_batch(vals, &value_groups, None, live.len())?;
            results.push(acc.evaluate(EmitTo::All)?);
        }
        // Changes: per touched group, by its state before and after.
        let (mut before_rows, mut after_rows) = (Vec::new(), Vec::new());
        for &t in &touched {
            let (was, is) = (rows_before.get(&t).is_some_and(|r| *r > 0), g.rows[t] > 0);
            let slot = live.binary_search(&t).ok();
            match (was, is, slot) {
                (true, true, Some(s)) => {
                    if plan.emit_update_before {
                        before_rows.push((t, RowKind::UpdateBefore));
                    }
                    after_rows.push((t, s, RowKind::UpdateAfter));
                }
                (false, true, Some(s)) => after_rows.push((t, s, RowKind::Insert)),
                (true, false, _) => before_rows.push((t, RowKind::Delete)),
                _ => {}
            }
        }
        let out = changes(&plan, g, &results, &before_rows, &after_rows)?;
        // The emitted values: the new ones of live touched groups, the old ones otherwise.
        let total = g.keys.len();
        let mut emitted = Vec::with_capacity(results.len());
        for (old, new) in g.emitted.iter().zip(&results) {
            let mut idx: Vec<(usize, usize)> =
                (0..total).map(|t| if t < old.len() { (0, t) } else { (2, 0) }).collect();
            for (s, &t) in live.iter().enumerate() {
                idx[t] = (1, s);
            }
            let nulls = arrow::array::new_null_array(new.data_type(), 1);
            emitted.push(interleave(&[old.as_ref(), new.as_ref(), nulls.as_ref()], &idx)?);
        }
        g.emitted = emitted;
        work.dirty.insert(k.key);
        if let Some(b) = out {
            ctx.collect(Rows(b));
        }
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
            match work.groups.get(&rep) {
                Some(g) => stored.set(state, store_groups(&plan, g)?)?,
                None => {
                    stored.clear(state)?;
                }
            }
        }
        Ok(())
    }
}

impl RetractPlan {
    fn aggs_len(&self) -> usize {
        self.result_types.len()
    }
}

/// The batch of changes: retracted rows (old values) first, then new rows.
fn changes(
    plan: &RetractPlan,
    g: &Groups,
    results: &[ArrayRef],
    before: &[(usize, RowKind)],
    after: &[(usize, usize, RowKind)],
) -> Result<Option<RecordBatch>> {
    if before.is_empty() && after.is_empty() {
        return Ok(None);
    }
    let all_keys: Vec<&[u8]> = g.keys.keys().collect();
    let idx = |v: Vec<usize>| UInt32Array::from(v.into_iter().map(|i| i as u32).collect::<Vec<_>>());
    let mut key_cols = plan
        .codec
        .decode(before.iter().map(|(t, _)| all_keys[*t]).chain(after.iter().map(|(t, _, _)| all_keys[*t])))?;
    if plan.key_columns.is_empty() {
        key_cols = Vec::new();
    }
    let old_idx = idx(before.iter().map(|(t, _)| *t).collect());
    let new_idx = idx(after.iter().map(|(_, s, _)| *s).collect());
    let mut cols = key_cols;
    for (old, new) in g.emitted.iter().zip(results) {
        let a = take(old, &old_idx, None)?;
        let b = take(new, &new_idx, None)?;
        cols.push(concat(&[a.as_ref(), b.as_ref()])?);
    }
    let ops: Vec<i8> = before.iter().map(|(_, k)| *k as i8).chain(after.iter().map(|(_, _, k)| *k as i8)).collect();
    cols.push(Arc::new(Int8Array::from(ops)));
    Ok(Some(conform(cols, &plan.output_schema)?))
}

fn store_groups(plan: &RetractPlan, g: &Groups) -> Result<StoredGroups> {
    let (mut gi, mut vs, mut cs) = (Vec::new(), Vec::new(), Vec::new());
    for (t, values) in g.values.iter().enumerate() {
        for (v, c) in values {
            gi.push(t as i64);
            vs.push(v.clone());
            cs.push(*c);
        }
    }
    let values_schema = Arc::new(Schema::new(vec![
        Field::new("__group", DataType::Int64, false),
        Field::new("__value", DataType::Binary, false),
        Field::new("__count", DataType::Int64, false),
    ]));
    let values = RecordBatch::try_new(
        values_schema,
        vec![
            Arc::new(Int64Array::from(gi)),
            Arc::new(BinaryArray::from_iter_values(vs.iter())),
            Arc::new(Int64Array::from(cs)),
        ],
    )?;
    let mut fields = vec![Field::new("__key", DataType::Binary, false), Field::new("__rows", DataType::Int64, false)];
    fields.extend(plan.result_types.iter().enumerate().map(|(i, t)| Field::new(format!("__v{i}"), t.clone(), true)));
    let total = g.keys.len();
    let mut cols: Vec<ArrayRef> =
        vec![Arc::new(BinaryArray::from_iter_values(g.keys.keys())), Arc::new(Int64Array::from(g.rows.clone()))];
    for e in &g.emitted {
        // Every group has an emitted slot (stale or null for empty ones).
        let idx: Vec<(usize, usize)> = (0..total).map(|t| if t < e.len() { (0, t) } else { (1, 0) }).collect();
        let nulls = arrow::array::new_null_array(e.data_type(), 1);
        cols.push(interleave(&[e.as_ref(), nulls.as_ref()], &idx)?);
    }
    let groups = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?;
    Ok(StoredGroups { values: Rows(values), groups: Rows(groups) })
}

fn load_groups(plan: &RetractPlan, s: &StoredGroups) -> Result<Groups> {
    let gb = s.groups.batch();
    let bin = |a: &ArrayRef| a.as_any().downcast_ref::<BinaryArray>().cloned();
    let int = |a: &ArrayRef| a.as_any().downcast_ref::<Int64Array>().cloned();
    let bad = || ExecError::Input("stored groups of another shape".into());
    let keys = bin(gb.column(0)).ok_or_else(bad)?;
    let rows = int(gb.column(1)).ok_or_else(bad)?;
    let keys = KeyTable::from_keys(keys.iter().map(|k| k.unwrap_or_default()));
    let mut values = vec![FxHashMap::default(); keys.len()];
    let vb = s.values.batch();
    let (gi, vs, cs) =
        (int(vb.column(0)).ok_or_else(bad)?, bin(vb.column(1)).ok_or_else(bad)?, int(vb.column(2)).ok_or_else(bad)?);
    for i in 0..vb.num_rows() {
        let slot: &mut FxHashMap<Box<[u8]>, i64> = values.get_mut(gi.value(i) as usize).ok_or_else(bad)?;
        slot.insert(vs.value(i).into(), cs.value(i));
    }
    let emitted = gb.columns()[2..].to_vec();
    if emitted.len() != plan.result_types.len() {
        return Err(bad());
    }
    Ok(Groups { keys, values, rows: rows.values().to_vec(), emitted })
}

keyed_row_operator!(RetractGroupAggFn, no_timers);
