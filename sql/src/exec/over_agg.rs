//! Bounded event-time OVER aggregation: `agg(…) OVER (PARTITION BY k ORDER BY ts RANGE
//! BETWEEN INTERVAL … PRECEDING AND CURRENT ROW)` (Flink's `RowTimeRangeBoundedPrecedingFunction`).
//!
//! Each row is emitted once, with its aggregates over the rows of its partition whose time is
//! in `[ts − range, ts]` (both ends included, peers of equal time too), when the watermark
//! reaches `ts`; rows at or behind the watermark when they arrive are dropped as late. Rows
//! wait per key group as Arrow batches; when the watermark passes the earliest one, the key
//! group's rows are sorted by (key, time), every ready row becomes a group whose members are
//! its window's rows (two pointers over the sorted rows) and each aggregate takes all
//! (member, group) pairs in one `update_batch` — no retraction needed, whatever the
//! aggregate. Emitted rows stay as long as a later row's window can reach them.
//!
//! State per key group: the emitted rows still in range and the waiting rows, in memory and
//! written into keyed state at each checkpoint for the key groups that changed
//! (`snapshot_state`); one event-time timer per key group at the earliest waiting time.

use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, UInt32Array};
use arrow::compute::{concat_batches, take, take_record_batch};
use arrow::datatypes::{DataType, FieldRef, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion_expr::EmitTo;
use datafusion_physical_expr::aggregate::AggregateFunctionExpr;
use riffle_api::{DataStream, KeyedStateStore, ProcessContext, ValueState};
use riffle_connectors::{KeyedRows, RowStreamExt, Rows};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

use super::error::{ExecError, Result};
use super::key_table::KeyCodec;
use super::subtask_key::key_by_nothing;
use super::time::{is_time_type, millis};
use super::window_agg::conform;
use super::window_state::Aggs;

/// A bounded OVER aggregate as the planner describes it.
#[derive(Debug, Clone)]
pub struct OverAggSpec {
    /// The PARTITION BY columns (empty: one partition, at parallelism 1).
    pub partition_columns: Vec<usize>,
    /// The ORDER BY time attribute.
    pub time_column: usize,
    /// The RANGE … PRECEDING interval in milliseconds.
    pub preceding_ms: i64,
    /// The aggregates over the window (built on the input schema), in output order.
    pub aggregates: Vec<Arc<AggregateFunctionExpr>>,
    /// The input rows' schema.
    pub input_schema: SchemaRef,
    /// The input columns then the aggregates (cast to these types where they differ).
    pub output_schema: SchemaRef,
}

impl OverAggSpec {
    fn validate(&self) -> Result<()> {
        let n = self.input_schema.fields().len();
        let time = self
            .input_schema
            .fields()
            .get(self.time_column)
            .ok_or_else(|| ExecError::Spec(format!("time column {} of {n}", self.time_column)))?;
        if !is_time_type(time.data_type()) {
            return Err(ExecError::Spec(format!("'{}' is not a time attribute", time.name())));
        }
        if let Some(k) = self.partition_columns.iter().find(|k| **k >= n) {
            return Err(ExecError::Spec(format!("key column {k} of {n}")));
        }
        if self.preceding_ms < 0 {
            return Err(ExecError::Spec(format!("a negative preceding range: {} ms", self.preceding_ms)));
        }
        if self.output_schema.fields().len() != n + self.aggregates.len() {
            return Err(ExecError::Spec("the output must be the input columns then the aggregates".into()));
        }
        Ok(())
    }
}

/// The output of an OVER aggregate: the input fields, then the aggregates' fields.
pub fn over_output_schema(input: &SchemaRef, aggregates: &[Arc<AggregateFunctionExpr>]) -> SchemaRef {
    let mut fields: Vec<FieldRef> = input.fields().iter().cloned().collect();
    fields.extend(aggregates.iter().map(|a| a.field()));
    Arc::new(Schema::new(fields))
}

#[derive(Debug)]
struct Plan {
    spec: OverAggSpec,
    aggs: Aggs,
    codec: KeyCodec,
}

/// A key group's rows: emitted ones a later window may reach, and waiting ones.
#[derive(Default)]
struct Group {
    history: Option<RecordBatch>,
    waiting: Vec<RecordBatch>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredGroup {
    history: Rows,
    waiting: Rows,
}

const OVER: &str = "over-agg.rows";

#[derive(Default)]
struct Work {
    groups: FxHashMap<u32, Group>,
    dirty: FxHashSet<u32>,
}

struct OverFn {
    plan: Arc<Plan>,
    work: Mutex<Work>,
}

impl Clone for OverFn {
    fn clone(&self) -> Self {
        Self { plan: self.plan.clone(), work: Mutex::new(Work::default()) }
    }
}

impl OverFn {
    fn work(&mut self) -> Result<&mut Work> {
        self.work.get_mut().map_err(|_| ExecError::Input("a previous failure poisoned the OVER state".into()))
    }

    fn load<'w>(work: &'w mut Work, rep: u32, state: &mut KeyedStateStore<u32>) -> Result<&'w mut Group> {
        match work.groups.entry(rep) {
            std::collections::hash_map::Entry::Occupied(o) => Ok(o.into_mut()),
            std::collections::hash_map::Entry::Vacant(v) => {
                let stored: ValueState<StoredGroup> = state.value_state(OVER)?;
                let g = match stored.get(state)? {
                    Some(s) => {
                        Group { history: Some(s.history.batch().clone()), waiting: vec![s.waiting.batch().clone()] }
                    }
                    None => Group::default(),
                };
                Ok(v.insert(g))
            }
        }
    }

    fn process(&mut self, k: KeyedRows, ctx: &mut ProcessContext<'_, u32, Rows>) -> Result<()> {
        let plan = self.plan.clone();
        let batch = k.rows.batch();
        let times = millis(batch.column(plan.spec.time_column))?;
        let watermark = ctx.current_watermark();
        let keep: Vec<u32> = (0..batch.num_rows())
            .filter(|&i| times.is_valid(i) && times.value(i) > watermark)
            .map(|i| i as u32)
            .collect();
        let Some(first) = keep.iter().map(|&i| times.value(i as usize)).min() else { return Ok(()) };
        let rows = if keep.len() == batch.num_rows() {
            batch.clone()
        } else {
            take_record_batch(batch, &UInt32Array::from(keep))?
        };
        let work = self.work()?;
        Self::load(work, k.key, ctx.state())?.waiting.push(rows);
        work.dirty.insert(k.key);
        ctx.register_event_time_timer(first);
        Ok(())
    }

    fn fire(&mut self, _timestamp: i64, ctx: &mut ProcessContext<'_, u32, Rows>) -> Result<()> {
        let plan = self.plan.clone();
        let spec = &plan.spec;
        let rep = *ctx.key();
        let watermark = ctx.current_watermark();
        let work = self.work()?;
        let g = Self::load(work, rep, ctx.state())?;
        // Several timers of the key group may be due at once: the first does the work.
        let mut earliest: Option<i64> = None;
        for b in &g.waiting {
            if let Some(m) = super::time::min_millis(b.column(spec.time_column))? {
                earliest = Some(earliest.map_or(m, |e| e.min(m)));
            }
        }
        if earliest.is_none_or(|e| e > watermark) {
            return Ok(());
        }
        let emitted = g.history.as_ref().map_or(0, |h| h.num_rows());
        let mut batches: Vec<RecordBatch> = g.history.take().into_iter().collect();
        batches.append(&mut g.waiting);
        let all = concat_batches(&spec.input_schema, &batches)?;
        let times = millis(all.column(spec.time_column))?;
        let key_cols: Vec<ArrayRef> = spec.partition_columns.iter().map(|&i| all.column(i).clone()).collect();
        let keys = plan.codec.encode(&key_cols, all.num_rows())?;
        let t = |i: u32| times.value(i as usize);
        let mut order: Vec<u32> = (0..all.num_rows() as u32).collect();
        order.sort_unstable_by(|&a, &b| keys.get(a as usize).cmp(keys.get(b as usize)).then(t(a).cmp(&t(b))));
        // Ready rows become groups; (member, group) pairs of their windows.
        let (mut ready, mut members, mut groups) = (Vec::new(), Vec::new(), Vec::new());
        let mut start = 0;
        while start < order.len() {
            let key = keys.get(order[start] as usize);
            let mut end = start;
            while end < order.len() && keys.get(order[end] as usize) == key {
                end += 1;
            }
            let seg = &order[start..end];
            let (mut lo, mut hi) = (0, 0);
            for &j in seg {
                let tj = t(j);
                while hi < seg.len() && t(seg[hi]) <= tj {
                    hi += 1;
                }
                while t(seg[lo]) < tj - spec.preceding_ms {
                    lo += 1;
                }
                if (j as usize) < emitted || tj > watermark {
                    continue;
                }
                let group = ready.len();
                ready.push(j);
                for &m in &seg[lo..hi] {
                    members.push(m);
                    groups.push(group);
                }
            }
            start = end;
        }
        // Rows a later window can reach (time >= watermark + 1 - range), emitted or not.
        let horizon = watermark.saturating_add(1).saturating_sub(spec.preceding_ms);
        let (mut history, mut waiting) = (Vec::new(), Vec::new());
        for &i in &order {
            if t(i) > watermark {
                waiting.push(i);
            } else if t(i) >= horizon {
                history.push(i);
            }
        }
        let next = waiting.iter().map(|&i| t(i)).min();
        let out = if ready.is_empty() {
            None
        } else {
            let member_rows = take_record_batch(&all, &UInt32Array::from(members))?;
            let args = plan.aggs.arguments(&member_rows)?;
            let mut accs = plan.aggs.accumulators()?;
            let ready_idx = UInt32Array::from(ready.clone());
            let mut cols: Vec<ArrayRef> =
                all.columns().iter().map(|c| take(c, &ready_idx, None)).collect::<Result<_, _>>()?;
            for (acc, vals) in accs.iter_mut().zip(&args) {
                acc.update_batch(vals, &groups, None, ready.len())?;
                cols.push(acc.evaluate(EmitTo::All)?);
            }
            Some(conform(cols, &spec.output_schema)?)
        };
        if history.is_empty() && waiting.is_empty() {
            work.groups.remove(&rep);
            work.dirty.remove(&rep);
            let stored: ValueState<StoredGroup> = ctx.state().value_state(OVER)?;
            stored.clear(ctx.state())?;
        } else {
            g.history = Some(take_record_batch(&all, &UInt32Array::from(history))?);
            g.waiting = vec![take_record_batch(&all, &UInt32Array::from(waiting))?];
            work.dirty.insert(rep);
        }
        if let Some(n) = next {
            ctx.register_event_time_timer(n);
        }
        if let Some(b) = out {
            ctx.collect_with_timestamp(Rows(b), watermark);
        }
        Ok(())
    }

    fn snapshot(&mut self, state: &mut KeyedStateStore<u32>) -> Result<()> {
        let schema = self.plan.spec.input_schema.clone();
        let work = self.work()?;
        let stored: ValueState<StoredGroup> = state.value_state(OVER)?;
        let mut dirty: Vec<u32> = work.dirty.drain().collect();
        dirty.sort_unstable();
        for rep in dirty {
            state.try_set_current_key(rep)?;
            match work.groups.get_mut(&rep) {
                Some(g) => {
                    let history = g.history.clone().unwrap_or_else(|| RecordBatch::new_empty(schema.clone()));
                    let waiting = concat_batches(&schema, &g.waiting)?;
                    g.waiting = vec![waiting.clone()];
                    stored.set(state, StoredGroup { history: Rows(history), waiting: Rows(waiting) })?;
                }
                None => {
                    stored.clear(state)?;
                }
            }
        }
        Ok(())
    }
}

keyed_row_operator!(OverFn, event_time_timers);

/// The bounded OVER aggregate of `stream` (rows with watermarks): every input row once, with
/// its aggregates, when the watermark reaches it.
pub fn over_aggregate(stream: &DataStream<Rows>, spec: &OverAggSpec) -> Result<DataStream<Rows>> {
    spec.validate()?;
    let key_fields: Vec<FieldRef> =
        spec.partition_columns.iter().map(|&i| spec.input_schema.fields()[i].clone()).collect();
    let key_types: Vec<DataType> = key_fields.iter().map(|f| f.data_type().clone()).collect();
    let f = OverFn {
        plan: Arc::new(Plan {
            spec: spec.clone(),
            aggs: Aggs::new(spec.aggregates.clone())?,
            codec: KeyCodec::new(&key_types)?,
        }),
        work: Mutex::new(Work::default()),
    };
    let names: Vec<&str> = key_fields.iter().map(|f| f.name().as_str()).collect();
    Ok(if names.is_empty() {
        key_by_nothing(stream).process(f).name("OverAggregate").set_parallelism(1)
    } else {
        stream.key_by_columns(&names).process(f).name("OverAggregate")
    })
}
