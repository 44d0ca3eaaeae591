//! Session window aggregation: `SESSION(TABLE t PARTITION BY keys, DESCRIPTOR(ts), gap)` with
//! keys and aggregates (Flink's unsliced session window aggregate).
//!
//! A session of a key is a run of rows whose windows `[ts, ts + gap)` overlap or touch; its
//! `window_end` is its last row + gap. Rows wait, as Arrow batches per key group, until the
//! watermark reaches a session's end − 1 ms; then the key group's waiting rows are sorted by
//! (key, time), cut into sessions, and every closed session is aggregated at once
//! (DataFusion `GroupsAccumulator`s, one group per session) and emitted, insert-only; the rows
//! of open sessions wait on. Rows whose own window `[ts, ts + gap)` the watermark already
//! passed are late and dropped; a row that arrives after its neighbours' session fired starts
//! a new one (the fired session's state is gone, as in Flink).
//!
//! State: per key group the waiting rows, in memory and written into keyed state at each
//! checkpoint for the key groups that changed (`snapshot_state`); one event-time timer per key
//! group at the earliest end − 1 ms it may have to fire.

use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, TimestampMillisecondArray, UInt32Array};
use arrow::compute::{concat_batches, take, take_record_batch};
use arrow::datatypes::{DataType, FieldRef, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion_expr::EmitTo;
use datafusion_physical_expr::aggregate::AggregateFunctionExpr;
use riffle_api::{DataStream, KeyedStateStore, ProcessContext, ValueState};
use riffle_connectors::{KeyedRows, RowStreamExt, Rows};
use rustc_hash::{FxHashMap, FxHashSet};

use super::error::{ExecError, Result};
use super::key_table::KeyCodec;
use super::subtask_key::key_by_nothing;
use super::time::{is_time_type, millis};
use super::window_agg::conform;
use super::window_state::Aggs;

/// A session window aggregate as the planner describes it.
#[derive(Debug, Clone)]
pub struct SessionAggSpec {
    /// The gap closing a session, in milliseconds.
    pub gap: i64,
    /// The time attribute's column in the input.
    pub time_column: usize,
    /// The PARTITION BY (and GROUP BY) key columns, in output order; empty: one global
    /// session stream at parallelism 1.
    pub key_columns: Vec<usize>,
    /// The aggregates (built on the input schema), in output order.
    pub aggregates: Vec<Arc<AggregateFunctionExpr>>,
    /// The input rows' schema.
    pub input_schema: SchemaRef,
    /// keys…, window_start, window_end, aggregates… (cast to these types where they differ).
    pub output_schema: SchemaRef,
}

impl SessionAggSpec {
    fn validate(&self) -> Result<()> {
        if self.gap <= 0 {
            return Err(ExecError::Spec(format!("a session gap of {} ms", self.gap)));
        }
        let n = self.input_schema.fields().len();
        let time = self
            .input_schema
            .fields()
            .get(self.time_column)
            .ok_or_else(|| ExecError::Spec(format!("time column {} of {n}", self.time_column)))?;
        if !is_time_type(time.data_type()) {
            return Err(ExecError::Spec(format!("'{}' is not a time attribute", time.name())));
        }
        if let Some(k) = self.key_columns.iter().find(|k| **k >= n) {
            return Err(ExecError::Spec(format!("key column {k} of {n}")));
        }
        let want = self.key_columns.len() + 2 + self.aggregates.len();
        if self.output_schema.fields().len() != want {
            return Err(ExecError::Spec(format!(
                "the output has {} columns, the aggregate makes {want}",
                self.output_schema.fields().len()
            )));
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Plan {
    gap: i64,
    time_column: usize,
    key_columns: Vec<usize>,
    aggs: Aggs,
    codec: KeyCodec,
    input_schema: SchemaRef,
    output_schema: SchemaRef,
}

/// A key group's waiting rows in keyed state.
const WAITING: &str = "session-agg.waiting";

#[derive(Default)]
struct Work {
    waiting: FxHashMap<u32, Vec<RecordBatch>>,
    dirty: FxHashSet<u32>,
}

struct SessionFn {
    plan: Arc<Plan>,
    work: Mutex<Work>,
}

impl Clone for SessionFn {
    fn clone(&self) -> Self {
        Self { plan: self.plan.clone(), work: Mutex::new(Work::default()) }
    }
}

/// A session found among the waiting rows.
struct Session {
    start: i64,
    end: i64,
    /// Its rows (indices into the waiting rows), in time order.
    rows: Vec<u32>,
}

impl SessionFn {
    fn work(&mut self) -> Result<&mut Work> {
        self.work.get_mut().map_err(|_| ExecError::Input("a previous failure poisoned the session state".into()))
    }

    fn waiting<'w>(work: &'w mut Work, rep: u32, state: &mut KeyedStateStore<u32>) -> Result<&'w mut Vec<RecordBatch>> {
        match work.waiting.entry(rep) {
            std::collections::hash_map::Entry::Occupied(o) => Ok(o.into_mut()),
            std::collections::hash_map::Entry::Vacant(v) => {
                let stored: ValueState<Rows> = state.value_state(WAITING)?;
                let rows = stored.get(state)?.map(|r| vec![r.batch().clone()]).unwrap_or_default();
                Ok(v.insert(rows))
            }
        }
    }

    fn process(&mut self, k: KeyedRows, ctx: &mut ProcessContext<'_, u32, Rows>) -> Result<()> {
        let plan = self.plan.clone();
        let batch = k.rows.batch();
        let times = millis(batch.column(plan.time_column))?;
        let watermark = ctx.current_watermark();
        // Late rows (their own window already passed) are dropped; null times too.
        let keep: Vec<u32> = (0..batch.num_rows())
            .filter(|&i| times.is_valid(i) && times.value(i) + plan.gap - 1 > watermark)
            .map(|i| i as u32)
            .collect();
        let Some(first) = keep.iter().map(|&i| times.value(i as usize)).min() else { return Ok(()) };
        let rows = if keep.len() == batch.num_rows() {
            batch.clone()
        } else {
            take_record_batch(batch, &UInt32Array::from(keep))?
        };
        let work = self.work()?;
        Self::waiting(work, k.key, ctx.state())?.push(rows);
        work.dirty.insert(k.key);
        // No session of these rows ends before their earliest time + gap.
        ctx.register_event_time_timer(first + plan.gap - 1);
        Ok(())
    }

    fn fire(&mut self, _timestamp: i64, ctx: &mut ProcessContext<'_, u32, Rows>) -> Result<()> {
        let plan = self.plan.clone();
        let rep = *ctx.key();
        let watermark = ctx.current_watermark();
        let work = self.work()?;
        let batches = std::mem::take(Self::waiting(work, rep, ctx.state())?);
        if batches.is_empty() {
            return Ok(());
        }
        let all = concat_batches(&plan.input_schema, &batches)?;
        let times = millis(all.column(plan.time_column))?;
        let key_cols: Vec<ArrayRef> = plan.key_columns.iter().map(|&i| all.column(i).clone()).collect();
        let keys = plan.codec.encode(&key_cols, all.num_rows())?;
        let mut order: Vec<u32> = (0..all.num_rows() as u32).collect();
        order.sort_unstable_by(|&a, &b| {
            let (a, b) = (a as usize, b as usize);
            keys.get(a).cmp(keys.get(b)).then(times.value(a).cmp(&times.value(b)))
        });
        let mut sessions: Vec<Session> = Vec::new();
        let mut prev: Option<u32> = None;
        for &i in &order {
            let t = times.value(i as usize);
            let same_key = prev.is_some_and(|p| keys.get(p as usize) == keys.get(i as usize));
            match sessions.last_mut() {
                // Windows that overlap or touch merge.
                Some(s) if same_key && t <= s.end => {
                    s.end = s.end.max(t + plan.gap);
                    s.rows.push(i);
                }
                _ => sessions.push(Session { start: t, end: t + plan.gap, rows: vec![i] }),
            }
            prev = Some(i);
        }
        let (closed, open): (Vec<Session>, Vec<Session>) = sessions.into_iter().partition(|s| s.end - 1 <= watermark);
        let out = if closed.is_empty() { None } else { Some(aggregate(&plan, &all, &closed)?) };
        let rest: Vec<u32> = open.iter().flat_map(|s| s.rows.iter().copied()).collect();
        let next = open.iter().map(|s| s.end - 1).min();
        let work = self.work()?;
        if rest.is_empty() {
            // Nothing waits: gone from memory and from keyed state (a later access must not
            // read the stored rows back).
            work.waiting.remove(&rep);
            work.dirty.remove(&rep);
            let stored: ValueState<Rows> = ctx.state().value_state(WAITING)?;
            stored.clear(ctx.state())?;
        } else {
            let kept = take_record_batch(&all, &UInt32Array::from(rest))?;
            work.waiting.insert(rep, vec![kept]);
            work.dirty.insert(rep);
        }
        if let Some(t) = next {
            ctx.register_event_time_timer(t);
        }
        if let Some(b) = out {
            ctx.collect_with_timestamp(Rows(b), watermark);
        }
        Ok(())
    }

    fn snapshot(&mut self, state: &mut KeyedStateStore<u32>) -> Result<()> {
        let schema = self.plan.input_schema.clone();
        let work = self.work()?;
        let stored: ValueState<Rows> = state.value_state(WAITING)?;
        let mut dirty: Vec<u32> = work.dirty.drain().collect();
        dirty.sort_unstable();
        for rep in dirty {
            state.try_set_current_key(rep)?;
            match work.waiting.get_mut(&rep) {
                Some(batches) if !batches.is_empty() => {
                    let one = concat_batches(&schema, batches.iter())?;
                    *batches = vec![one.clone()];
                    stored.set(state, Rows(one))?;
                }
                _ => {
                    stored.clear(state)?;
                }
            }
        }
        Ok(())
    }
}

/// The closed sessions' rows: keys, window bounds, aggregates.
fn aggregate(plan: &Plan, all: &RecordBatch, closed: &[Session]) -> Result<RecordBatch> {
    let rows: Vec<u32> = closed.iter().flat_map(|s| s.rows.iter().copied()).collect();
    let groups: Vec<usize> =
        closed.iter().enumerate().flat_map(|(g, s)| std::iter::repeat_n(g, s.rows.len())).collect();
    let taken = take_record_batch(all, &UInt32Array::from(rows))?;
    let args = plan.aggs.arguments(&taken)?;
    let mut accs = plan.aggs.accumulators()?;
    let mut results = Vec::with_capacity(accs.len());
    for (acc, vals) in accs.iter_mut().zip(&args) {
        acc.update_batch(vals, &groups, None, closed.len())?;
        results.push(acc.evaluate(EmitTo::All)?);
    }
    let firsts = UInt32Array::from(closed.iter().map(|s| s.rows[0]).collect::<Vec<_>>());
    let mut cols: Vec<ArrayRef> =
        plan.key_columns.iter().map(|&i| take(all.column(i), &firsts, None)).collect::<Result<_, _>>()?;
    cols.push(std::sync::Arc::new(TimestampMillisecondArray::from(closed.iter().map(|s| s.start).collect::<Vec<_>>())));
    cols.push(std::sync::Arc::new(TimestampMillisecondArray::from(closed.iter().map(|s| s.end).collect::<Vec<_>>())));
    cols.extend(results);
    conform(cols, &plan.output_schema)
}

keyed_row_operator!(SessionFn, event_time_timers);

/// The session window aggregate of `stream` (rows with watermarks): rows of
/// `spec.output_schema`, each session once when the watermark passes its end.
pub fn session_aggregate(stream: &DataStream<Rows>, spec: &SessionAggSpec) -> Result<DataStream<Rows>> {
    spec.validate()?;
    let key_fields: Vec<FieldRef> = spec.key_columns.iter().map(|&i| spec.input_schema.fields()[i].clone()).collect();
    let key_types: Vec<DataType> = key_fields.iter().map(|f| f.data_type().clone()).collect();
    let f = SessionFn {
        plan: Arc::new(Plan {
            gap: spec.gap,
            time_column: spec.time_column,
            key_columns: spec.key_columns.clone(),
            aggs: Aggs::new(spec.aggregates.clone())?,
            codec: KeyCodec::new(&key_types)?,
            input_schema: spec.input_schema.clone(),
            output_schema: spec.output_schema.clone(),
        }),
        work: Mutex::new(Work::default()),
    };
    let names: Vec<&str> = key_fields.iter().map(|f| f.name().as_str()).collect();
    Ok(if names.is_empty() {
        key_by_nothing(stream).process(f).name("SessionWindowAggregate").set_parallelism(1)
    } else {
        stream.key_by_columns(&names).process(f).name("SessionWindowAggregate")
    })
}
