//! Window aggregation over the window TVFs (Flink's `WindowAggregate`, and its
//! `LocalWindowAggregate` + `GlobalWindowAggregate` split).
//!
//! Rows are accumulated per (key, slice) — see [`super::windows`] — in DataFusion
//! `GroupsAccumulator`s: a batch is cut by slice (usually one), its keys become group indices
//! (one hash lookup per row) and each aggregate takes the batch in one call. A window fires,
//! once and insert-only, when the watermark reaches its end − 1 ms: its slices are merged
//! (partial states, `merge_batch`) and evaluated; a slice is dropped once the last window it
//! belongs to fired. A late row (its slice's end − 1 ms behind the watermark) is dropped if
//! every window of its slice fired, and otherwise counts in the windows still to fire, as in
//! Flink's slicing window operator.
//!
//! With `local_global` (the default, as Flink plans it) a *local* stage on the input's
//! subtasks pre-aggregates each slice and emits its partial state (keys, slice end, state
//! columns) when the watermark passes the slice's end; only those rows cross the key exchange,
//! and the *global* stage merges them. A non-keyed aggregate's global stage runs at
//! parallelism 1, as in Flink.
//!
//! State: per key group (under its representative key) the slices live in memory and are
//! written into keyed state (`StoredSlices`, Arrow rows) at each checkpoint for the key groups
//! that changed, through the process function's `snapshot_state`; a restored key group is read
//! back the first time one of its records or timers comes. Timers (one per window end, per key
//! group) are the engine's, checkpointed and rescaled with the key group.

use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, Int64Array, TimestampMillisecondArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use datafusion_physical_expr::aggregate::AggregateFunctionExpr;
use riffle_api::{DataStream, KeyedStateStore, ProcessContext, ValueState};
use riffle_connectors::{KeyedRows, RowStreamExt, Rows};
use rustc_hash::{FxHashMap, FxHashSet};

use super::error::{ExecError, Result};
use super::key_table::{KeyCodec, KeyTable};
use super::subtask_key::{key_by_nothing, key_by_subtask};
use super::time::{is_time_type, millis};
use super::window_state::{stored_schema, Aggs, LiveSlice, Slice, SliceSet, StoredSlices};
use super::windows::WindowKind;

/// A window aggregate as the planner describes it.
#[derive(Debug, Clone)]
pub struct WindowAggSpec {
    /// The window TVF (not a session: see `session_aggregate`).
    pub window: WindowKind,
    /// The time attribute's column in the input.
    pub time_column: usize,
    /// The GROUP BY key columns in the input (besides window_start, window_end), in output
    /// order; empty for a non-keyed aggregate.
    pub key_columns: Vec<usize>,
    /// The aggregates (built with `AggregateExprBuilder` on the input schema), in output order.
    pub aggregates: Vec<Arc<AggregateFunctionExpr>>,
    /// The input rows' schema.
    pub input_schema: SchemaRef,
    /// The output: keys…, window_start, window_end, aggregates…. The window bounds are built
    /// as `TIMESTAMP(3)` and the aggregates as DataFusion types them, then cast to these
    /// fields' types where they differ.
    pub output_schema: SchemaRef,
    /// Pre-aggregate per slice on the input's subtasks before the key exchange (Flink's
    /// local/global window aggregation). On by default.
    pub local_global: bool,
}

impl WindowAggSpec {
    fn validate(&self) -> Result<()> {
        self.window.validate()?;
        if !self.window.is_sliced() {
            return Err(ExecError::Spec("a session window is aggregated by session_aggregate".into()));
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

    fn key_fields(&self) -> Vec<FieldRef> {
        self.key_columns.iter().map(|&i| self.input_schema.fields()[i].clone()).collect()
    }
}

/// What a stage reads.
#[derive(Debug, Clone)]
enum InputMode {
    /// Input rows: time and key columns by index, aggregate arguments evaluated.
    Raw { time_column: usize, key_columns: Vec<usize> },
    /// A local stage's partial rows: keys first, then the slice end, then the state columns.
    Partial { keys: usize },
}

/// What a stage emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutputMode {
    /// One row per (key, window) when the window fires.
    Final,
    /// One partial row per (key, slice) when the slice ends.
    Partial,
}

/// What every subtask of a stage shares.
#[derive(Debug)]
struct Plan {
    window: WindowKind,
    input: InputMode,
    output: OutputMode,
    aggs: Aggs,
    codec: KeyCodec,
    output_schema: SchemaRef,
    stored_schema: SchemaRef,
}

/// The partial rows' schema: keys, `__slice_end`, state columns.
fn partial_schema(key_fields: &[FieldRef], aggs: &Aggs) -> SchemaRef {
    let mut fields = key_fields.to_vec();
    fields.push(Arc::new(Field::new("__slice_end", DataType::Int64, false)));
    fields.extend(aggs.state_fields().cloned());
    Arc::new(Schema::new(fields))
}

/// The keyed state a key group's slices are written into.
const SLICES: &str = "window-agg.slices";

/// A subtask's working set: slices per key group (representative key), and the key groups
/// changed since the last snapshot.
#[derive(Default)]
struct Work {
    groups: FxHashMap<u32, SliceSet>,
    dirty: FxHashSet<u32>,
    scratch: Vec<usize>,
}

/// The window aggregation stage as a process function over key-group sub-batches.
struct WindowAggFn {
    plan: Arc<Plan>,
    /// Accumulators are `Send`, not `Sync`; only this subtask touches them (`get_mut`).
    work: Mutex<Work>,
}

impl Clone for WindowAggFn {
    fn clone(&self) -> Self {
        // A subtask's copy starts empty (cloned before it runs; restored lazily).
        Self { plan: self.plan.clone(), work: Mutex::new(Work::default()) }
    }
}

impl WindowAggFn {
    fn work(&mut self) -> Result<&mut Work> {
        self.work.get_mut().map_err(|_| ExecError::Input("a previous failure poisoned the window state".into()))
    }

    /// The key group's slices, read from keyed state the first time after a restore.
    fn load<'w>(
        plan: &Plan,
        work: &'w mut Work,
        rep: u32,
        state: &mut KeyedStateStore<u32>,
    ) -> Result<&'w mut SliceSet> {
        match work.groups.entry(rep) {
            std::collections::hash_map::Entry::Occupied(o) => Ok(o.into_mut()),
            std::collections::hash_map::Entry::Vacant(v) => {
                let stored: ValueState<StoredSlices> = state.value_state(SLICES)?;
                let set = match stored.get(state)? {
                    Some(s) => SliceSet::load(&plan.aggs, s)?,
                    None => SliceSet::default(),
                };
                Ok(v.insert(set))
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
        let (ends, keys, values, merge) = match &plan.input {
            InputMode::Raw { time_column, key_columns } => {
                let times = millis(batch.column(*time_column))?;
                let ends: Vec<Option<i64>> = times.iter().map(|t| t.map(|t| plan.window.slice_end(t))).collect();
                let cols: Vec<ArrayRef> = key_columns.iter().map(|&i| batch.column(i).clone()).collect();
                (ends, plan.codec.encode(&cols, n)?, plan.aggs.arguments(batch)?, false)
            }
            InputMode::Partial { keys } => {
                let ends = batch
                    .column(*keys)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .ok_or_else(|| ExecError::Input("a partial batch without its slice ends".into()))?;
                let ends: Vec<Option<i64>> = ends.iter().collect();
                let cols = batch.columns()[..*keys].to_vec();
                (ends, plan.codec.encode(&cols, n)?, plan.aggs.partial_columns(batch, keys + 1)?, true)
            }
        };
        // Rows by slice: usually the whole batch is one slice.
        let mut parts: Vec<(i64, Option<Vec<u32>>)> = Vec::new();
        match ends.first().copied().flatten() {
            Some(first) if ends.iter().all(|e| *e == Some(first)) => parts.push((first, None)),
            _ => {
                let mut by_end: std::collections::BTreeMap<i64, Vec<u32>> = Default::default();
                for (i, e) in ends.iter().enumerate() {
                    if let Some(e) = e {
                        by_end.entry(*e).or_default().push(i as u32);
                    }
                }
                parts.extend(by_end.into_iter().map(|(e, rows)| (e, Some(rows))));
            }
        }
        let watermark = ctx.current_watermark();
        let rep = k.key;
        let work = self.work()?;
        let mut groups = std::mem::take(&mut work.scratch);
        let set = Self::load(&plan, work, rep, ctx.state())?;
        let mut changed = false;
        for (end, rows) in parts {
            // Late rows: a row whose slice's windows all fired is dropped; one whose slice
            // fired but not its last window still counts in the windows to come (Flink's
            // slicing window operator). A local stage drops nothing: the global one decides.
            if plan.output == OutputMode::Final && plan.window.last_window_end(end) - 1 <= watermark {
                continue;
            }
            let slice = match set.slices.entry(end) {
                std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::btree_map::Entry::Vacant(v) => {
                    match plan.output {
                        OutputMode::Final => {
                            for we in plan.window.window_ends_of_slice(end) {
                                if we - 1 > watermark {
                                    ctx.register_event_time_timer(we - 1);
                                }
                            }
                        }
                        // A slice that ended already goes out at the next watermark.
                        OutputMode::Partial => ctx.register_event_time_timer(end - 1),
                    }
                    v.insert(Slice::Live(LiveSlice::new(&plan.aggs)?))
                }
            };
            if let Slice::Frozen(f) = slice {
                // A window read it already; the windows to come take the late rows too.
                let keys = std::mem::take(&mut f.keys);
                *slice = Slice::Live(LiveSlice::from_state(&plan.aggs, keys, &f.state)?);
            }
            if let Slice::Live(live) = slice {
                live.accumulate(&keys, &values, rows.as_deref(), merge, &mut groups)?;
            }
            changed = true;
        }
        let work = self.work()?;
        work.scratch = groups;
        if changed {
            work.dirty.insert(rep);
        }
        Ok(())
    }

    fn fire(&mut self, timestamp: i64, ctx: &mut ProcessContext<'_, u32, Rows>) -> Result<()> {
        let plan = self.plan.clone();
        let end = timestamp + 1;
        let rep = *ctx.key();
        let work = self.work()?;
        let set = Self::load(&plan, work, rep, ctx.state())?;
        let out = match plan.output {
            OutputMode::Partial => match set.slices.remove(&end) {
                Some(Slice::Live(mut live)) => {
                    let state = live.take_state()?;
                    partial_batch(&plan, &live.keys, end, state)?
                }
                Some(Slice::Frozen(f)) => partial_batch(&plan, &f.keys, end, f.state)?,
                None => None,
            },
            OutputMode::Final => {
                let out = window_batch(&plan, set, end)?;
                let keep = set.slices.split_off(&(end + 1));
                let done = std::mem::replace(&mut set.slices, keep);
                // Slices ending by `end` whose last window is later stay.
                for (e, s) in done {
                    if plan.window.last_window_end(e) > end {
                        set.slices.insert(e, s);
                    }
                }
                out
            }
        };
        if set.slices.is_empty() {
            work.groups.remove(&rep);
            work.dirty.remove(&rep);
            let stored: ValueState<StoredSlices> = ctx.state().value_state(SLICES)?;
            stored.clear(ctx.state())?;
        } else {
            work.dirty.insert(rep);
        }
        if let Some(b) = out {
            ctx.collect_with_timestamp(Rows(b), timestamp);
        }
        Ok(())
    }

    fn snapshot(&mut self, state: &mut KeyedStateStore<u32>) -> Result<()> {
        let plan = self.plan.clone();
        let work = self.work()?;
        let stored: ValueState<StoredSlices> = state.value_state(SLICES)?;
        let mut dirty: Vec<u32> = work.dirty.drain().collect();
        dirty.sort_unstable();
        for rep in dirty {
            state.try_set_current_key(rep)?;
            match work.groups.get_mut(&rep) {
                Some(set) if !set.slices.is_empty() => {
                    let s = set.store(&plan.aggs, &plan.stored_schema)?;
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

/// The window ending at `end` over the key group's slices, or `None` if it holds no row.
fn window_batch(plan: &Plan, set: &mut SliceSet, end: i64) -> Result<Option<RecordBatch>> {
    let wanted = plan.window.slices_of_window(end);
    let (keys, results) = if wanted.len() == 1 && plan.window.last_window_end(end) == end {
        // A window that is its one slice, needed by no later window (tumbling): evaluate it
        // in place (it is dropped after).
        match set.slices.get_mut(&end) {
            Some(Slice::Live(live)) => (std::mem::take(&mut live.keys), live.take_results()?),
            Some(Slice::Frozen(f)) => {
                let mut merged = LiveSlice::from_state(&plan.aggs, std::mem::take(&mut f.keys), &f.state)?;
                (std::mem::take(&mut merged.keys), merged.take_results()?)
            }
            None => return Ok(None),
        }
    } else {
        let mut merged = LiveSlice::new(&plan.aggs)?;
        let mut groups = Vec::new();
        for e in wanted {
            let Some(slice) = set.slices.get_mut(&e) else { continue };
            let frozen = slice.freeze()?;
            merged.keys.groups_of_keys(&frozen.keys, &mut groups);
            let n = merged.keys.len();
            for (acc, vals) in merged.accs.iter_mut().zip(&frozen.state) {
                acc.merge_batch(vals, &groups, n)?;
            }
        }
        if merged.keys.len() == 0 {
            return Ok(None);
        }
        (std::mem::take(&mut merged.keys), merged.take_results()?)
    };
    let n = keys.len();
    if n == 0 {
        return Ok(None);
    }
    let mut cols = plan.codec.decode(keys.keys())?;
    let start = plan.window.window_start(end);
    cols.push(Arc::new(TimestampMillisecondArray::from(vec![start; n])));
    cols.push(Arc::new(TimestampMillisecondArray::from(vec![end; n])));
    cols.extend(results);
    Ok(Some(conform(cols, &plan.output_schema)?))
}

/// A local stage's partial rows of the slice ending at `end`.
fn partial_batch(plan: &Plan, keys: &KeyTable, end: i64, state: Vec<Vec<ArrayRef>>) -> Result<Option<RecordBatch>> {
    let n = keys.len();
    if n == 0 {
        return Ok(None);
    }
    let mut cols = plan.codec.decode(keys.keys())?;
    cols.push(Arc::new(Int64Array::from(vec![end; n])));
    cols.extend(state.into_iter().flatten());
    Ok(Some(conform(cols, &plan.output_schema)?))
}

/// `cols` as a batch of `schema`, each cast to its field's type where it differs (window
/// bounds to the declared timestamp type, a `COUNT`'s Int64 to the declared integer, ...).
pub(crate) fn conform(cols: Vec<ArrayRef>, schema: &SchemaRef) -> Result<RecordBatch> {
    let cols = cols
        .into_iter()
        .zip(schema.fields())
        .map(|(c, f)| if c.data_type() == f.data_type() { Ok(c) } else { Ok(cast(&c, f.data_type())?) })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), cols)?)
}

keyed_row_operator!(WindowAggFn, event_time_timers);

/// The window aggregate of `stream` (rows of `spec.input_schema` with watermarks): rows of
/// `spec.output_schema`, each window once when the watermark passes it.
pub fn window_aggregate(stream: &DataStream<Rows>, spec: &WindowAggSpec) -> Result<DataStream<Rows>> {
    spec.validate()?;
    let aggs = Aggs::new(spec.aggregates.clone())?;
    let key_fields = spec.key_fields();
    let key_types: Vec<DataType> = key_fields.iter().map(|f| f.data_type().clone()).collect();
    let codec = KeyCodec::new(&key_types)?;
    let stored = stored_schema(&aggs);
    let stage = |input: InputMode, output: OutputMode, schema: SchemaRef| WindowAggFn {
        plan: Arc::new(Plan {
            window: spec.window,
            input,
            output,
            aggs: aggs.clone(),
            codec: codec.clone(),
            output_schema: schema,
            stored_schema: stored.clone(),
        }),
        work: Mutex::new(Work::default()),
    };
    let key_names: Vec<&str> = key_fields.iter().map(|f| f.name().as_str()).collect();
    let raw = InputMode::Raw { time_column: spec.time_column, key_columns: spec.key_columns.clone() };
    let keyed = !spec.key_columns.is_empty();
    let out = if spec.local_global {
        let partial = partial_schema(&key_fields, &aggs);
        let local =
            key_by_subtask(stream).process(stage(raw, OutputMode::Partial, partial)).name("LocalWindowAggregate");
        let global =
            stage(InputMode::Partial { keys: key_fields.len() }, OutputMode::Final, spec.output_schema.clone());
        if keyed {
            local.key_by_columns(&key_names).process(global).name("GlobalWindowAggregate")
        } else {
            key_by_nothing(&local).process(global).name("GlobalWindowAggregate").set_parallelism(1)
        }
    } else {
        let one = stage(raw, OutputMode::Final, spec.output_schema.clone());
        if keyed {
            stream.key_by_columns(&key_names).process(one).name("WindowAggregate")
        } else {
            key_by_nothing(stream).process(one).name("WindowAggregate").set_parallelism(1)
        }
    };
    Ok(out)
}

/// The output schema of a window aggregate: the key fields, `window_start` and `window_end`
/// as `TIMESTAMP(3)` (not null), then the aggregates' fields as DataFusion types them. A
/// convenience for planners and tests; the planner may declare its own.
pub fn default_output_schema(
    input: &SchemaRef,
    key_columns: &[usize],
    aggregates: &[Arc<AggregateFunctionExpr>],
) -> SchemaRef {
    let mut fields: Vec<FieldRef> = key_columns.iter().map(|&i| input.fields()[i].clone()).collect();
    let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
    fields.push(Arc::new(Field::new("window_start", ts.clone(), false)));
    fields.push(Arc::new(Field::new("window_end", ts, false)));
    fields.extend(aggregates.iter().map(|a| a.field()));
    Arc::new(Schema::new(fields))
}
