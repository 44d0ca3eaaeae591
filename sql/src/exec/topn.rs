//! Regular Top-N over an insert-only input: `ROW_NUMBER() OVER (PARTITION BY k ORDER BY …)
//! <= N` (Flink's `AppendOnlyTopNFunction`), an updating result.
//!
//! Per batch (the rows of one key group) the key group's current top rows and the batch are
//! sorted once by (partition, order) and cut to the first N per partition; the difference
//! with the previous top is emitted as a changelog: without the rank number, `+I` for a row
//! that entered and `-D` for one pushed out; with it (`rn` as the last value column), for
//! every rank whose row changed `-U` of the old (row, rank) and `+U` of the new one, or `+I`
//! for a rank that was empty. The materialized table is Flink's; fewer intermediate changes
//! than a change per row, as with mini-batches.
//!
//! State per key group: its top rows (Arrow rows), in memory and written into keyed state at
//! each checkpoint for the key groups that changed (`snapshot_state`). Input rows that never
//! enter the top are not kept.

use std::sync::{Arc, Mutex};

use arrow::array::{ArrayRef, Int64Array, Int8Array, UInt32Array};
use arrow::compute::{concat_batches, lexsort_to_indices, take, take_record_batch, SortColumn, SortOptions};
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use riffle_api::{DataStream, KeyedStateStore, ProcessContext, ValueState};
use riffle_connectors::{KeyedRows, RowStreamExt, Rows};
use rustc_hash::{FxHashMap, FxHashSet};

use super::error::{ExecError, Result};
use super::key_table::KeyCodec;
use super::subtask_key::key_by_nothing;
use crate::changelog::{op_field, RowKind};

/// A regular Top-N as the planner describes it.
#[derive(Debug, Clone)]
pub struct TopNSpec {
    /// PARTITION BY columns (empty: one partition, at parallelism 1).
    pub partition_columns: Vec<usize>,
    /// ORDER BY columns, each with `true` for DESC.
    pub order_by: Vec<(usize, bool)>,
    /// N of `rn <= N`.
    pub limit: usize,
    /// Whether the output carries the rank number (`rn`, BIGINT) after the input columns.
    pub with_rank_number: bool,
    /// The input rows' schema (insert-only).
    pub input_schema: SchemaRef,
}

impl TopNSpec {
    /// The output: the input fields, `rn` if asked, the row kind.
    pub fn output_schema(&self) -> SchemaRef {
        let mut fields: Vec<FieldRef> = self.input_schema.fields().iter().cloned().collect();
        if self.with_rank_number {
            fields.push(Arc::new(Field::new("rn", DataType::Int64, false)));
        }
        fields.push(Arc::new(op_field()));
        Arc::new(Schema::new(fields))
    }

    fn validate(&self) -> Result<()> {
        let n = self.input_schema.fields().len();
        let cols = self.partition_columns.iter().chain(self.order_by.iter().map(|(c, _)| c));
        if let Some(c) = cols.into_iter().find(|c| **c >= n) {
            return Err(ExecError::Spec(format!("column {c} of {n}")));
        }
        if self.limit == 0 || self.order_by.is_empty() {
            return Err(ExecError::Spec("a Top-N needs an ORDER BY and N > 0".into()));
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Plan {
    spec: TopNSpec,
    codec: KeyCodec,
    output_schema: SchemaRef,
}

const TOP: &str = "topn.rows";

#[derive(Default)]
struct Work {
    tops: FxHashMap<u32, RecordBatch>,
    dirty: FxHashSet<u32>,
}

struct TopNFn {
    plan: Arc<Plan>,
    work: Mutex<Work>,
}

impl Clone for TopNFn {
    fn clone(&self) -> Self {
        Self { plan: self.plan.clone(), work: Mutex::new(Work::default()) }
    }
}

/// Rows of a sorted batch: per partition, the row indices in rank order.
fn ranked(plan: &Plan, all: &RecordBatch) -> Result<Vec<Vec<u32>>> {
    let s = &plan.spec;
    let mut sort: Vec<SortColumn> =
        s.partition_columns.iter().map(|&c| SortColumn { values: all.column(c).clone(), options: None }).collect();
    sort.extend(s.order_by.iter().map(|&(c, descending)| SortColumn {
        values: all.column(c).clone(),
        options: Some(SortOptions { descending, nulls_first: !descending }),
    }));
    // Ties keep their arrival order (the kept top rows come first), as in Flink's TopN
    // buffer: ranks never swap between equal rows.
    sort.push(SortColumn { values: Arc::new(UInt32Array::from_iter_values(0..all.num_rows() as u32)), options: None });
    let order = lexsort_to_indices(&sort, None)?;
    let cols: Vec<ArrayRef> = s.partition_columns.iter().map(|&c| all.column(c).clone()).collect();
    let keys = plan.codec.encode(&cols, all.num_rows())?;
    let mut parts: Vec<Vec<u32>> = Vec::new();
    let mut prev: Option<usize> = None;
    for &i in order.values() {
        let same = prev.is_some_and(|p| keys.get(p) == keys.get(i as usize));
        if !same {
            parts.push(Vec::new());
        }
        prev = Some(i as usize);
        if let Some(p) = parts.last_mut() {
            if p.len() < s.limit {
                p.push(i);
            }
        }
    }
    Ok(parts)
}

impl TopNFn {
    fn work(&mut self) -> Result<&mut Work> {
        self.work.get_mut().map_err(|_| ExecError::Input("a previous failure poisoned the Top-N state".into()))
    }

    fn process(&mut self, k: KeyedRows, ctx: &mut ProcessContext<'_, u32, Rows>) -> Result<()> {
        let plan = self.plan.clone();
        let s = &plan.spec;
        let work = self.work()?;
        let old = match work.tops.get(&k.key) {
            Some(b) => b.clone(),
            None => {
                let stored: ValueState<Rows> = ctx.state().value_state(TOP)?;
                stored
                    .get(ctx.state())?
                    .map(|r| r.batch().clone())
                    .unwrap_or_else(|| RecordBatch::new_empty(s.input_schema.clone()))
            }
        };
        let old_len = old.num_rows() as u32;
        let all = concat_batches(&s.input_schema, [&old, k.rows.batch()])?;
        let parts = ranked(&plan, &all)?;
        // The old top of each partition, by partition key (the old rows are the first of `all`).
        let old_tops: FxHashMap<Vec<u8>, Vec<u32>> = if s.with_rank_number && old_len > 0 {
            let cols: Vec<ArrayRef> = s.partition_columns.iter().map(|&c| all.column(c).clone()).collect();
            let keys = plan.codec.encode(&cols, all.num_rows())?;
            ranked(&plan, &old)?
                .into_iter()
                .filter_map(|p| p.first().map(|&f| (keys.get(f as usize).to_vec(), p.clone())))
                .collect()
        } else {
            FxHashMap::default()
        };
        let part_keys = if s.with_rank_number {
            let cols: Vec<ArrayRef> = s.partition_columns.iter().map(|&c| all.column(c).clone()).collect();
            Some(plan.codec.encode(&cols, all.num_rows())?)
        } else {
            None
        };
        let mut out_rows: Vec<u32> = Vec::new();
        let mut out_rn: Vec<i64> = Vec::new();
        let mut out_ops: Vec<i8> = Vec::new();
        let mut keep: Vec<u32> = Vec::new();
        for new_top in &parts {
            keep.extend(new_top);
            if let Some(keys) = &part_keys {
                let empty = Vec::new();
                let old_top = new_top.first().and_then(|&f| old_tops.get(keys.get(f as usize))).unwrap_or(&empty);
                for (r, &row) in new_top.iter().enumerate() {
                    match old_top.get(r) {
                        Some(&o) if o == row => {}
                        Some(&o) => {
                            out_rows.extend([o, row]);
                            out_rn.extend([r as i64 + 1, r as i64 + 1]);
                            out_ops.extend([RowKind::UpdateBefore as i8, RowKind::UpdateAfter as i8]);
                        }
                        None => {
                            out_rows.push(row);
                            out_rn.push(r as i64 + 1);
                            out_ops.push(RowKind::Insert as i8);
                        }
                    }
                }
            } else {
                for &row in new_top.iter().filter(|&&r| r >= old_len) {
                    out_rows.push(row);
                    out_ops.push(RowKind::Insert as i8);
                }
            }
        }
        if !s.with_rank_number {
            // Old rows no longer in any top were pushed out.
            let mut kept_old: Vec<bool> = vec![false; old_len as usize];
            for &r in keep.iter().filter(|&&r| r < old_len) {
                kept_old[r as usize] = true;
            }
            for (r, kept) in kept_old.iter().enumerate() {
                if !kept {
                    out_rows.push(r as u32);
                    out_ops.push(RowKind::Delete as i8);
                }
            }
        }
        keep.sort_unstable();
        let top = take_record_batch(&all, &UInt32Array::from(keep))?;
        let work = self.work()?;
        work.tops.insert(k.key, top);
        work.dirty.insert(k.key);
        if !out_rows.is_empty() {
            let idx = UInt32Array::from(out_rows);
            let mut cols: Vec<ArrayRef> =
                all.columns().iter().map(|c| take(c, &idx, None)).collect::<Result<_, _>>()?;
            if s.with_rank_number {
                cols.push(Arc::new(Int64Array::from(out_rn)));
            }
            cols.push(Arc::new(Int8Array::from(out_ops)));
            ctx.collect(Rows(RecordBatch::try_new(plan.output_schema.clone(), cols)?));
        }
        Ok(())
    }

    fn snapshot(&mut self, state: &mut KeyedStateStore<u32>) -> Result<()> {
        let work = self.work()?;
        let stored: ValueState<Rows> = state.value_state(TOP)?;
        let mut dirty: Vec<u32> = work.dirty.drain().collect();
        dirty.sort_unstable();
        for rep in dirty {
            state.try_set_current_key(rep)?;
            match work.tops.get(&rep) {
                Some(b) => stored.set(state, Rows(b.clone()))?,
                None => {
                    stored.clear(state)?;
                }
            }
        }
        Ok(())
    }
}

keyed_row_operator!(TopNFn, no_timers);

/// The Top-N of `stream` as a changelog of [`TopNSpec::output_schema`].
pub fn top_n(stream: &DataStream<Rows>, spec: &TopNSpec) -> Result<DataStream<Rows>> {
    spec.validate()?;
    let key_fields: Vec<FieldRef> =
        spec.partition_columns.iter().map(|&i| spec.input_schema.fields()[i].clone()).collect();
    let key_types: Vec<DataType> = key_fields.iter().map(|f| f.data_type().clone()).collect();
    let f = TopNFn {
        plan: Arc::new(Plan {
            spec: spec.clone(),
            codec: KeyCodec::new(&key_types)?,
            output_schema: spec.output_schema(),
        }),
        work: Mutex::new(Work::default()),
    };
    let names: Vec<&str> = key_fields.iter().map(|f| f.name().as_str()).collect();
    Ok(if names.is_empty() {
        key_by_nothing(stream).process(f).name("Rank").set_parallelism(1)
    } else {
        stream.key_by_columns(&names).process(f).name("Rank")
    })
}
