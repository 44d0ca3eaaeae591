//! Window Top-N: `ROW_NUMBER() OVER (PARTITION BY window_start, window_end[, keys] ORDER BY …)
//! <= N` directly on a window TVF (Flink's `WindowRank`).
//!
//! Rows wait per window (and key group) as Arrow batches; once a window holds many more rows
//! than it can emit, it is pruned to the first N of each partition (one lexicographic sort).
//! When the watermark reaches window_end − 1 ms the window's rows are sorted by (partition,
//! order), numbered, and the first N of each partition emitted once, insert-only: the input
//! columns, window_start, window_end (`TIMESTAMP(3)`) and `rn` (BIGINT). Rows of windows the
//! watermark passed are late and dropped. Ties are numbered in arrival order.
//!
//! State per key group: the waiting rows per window end, in memory and written into keyed
//! state at each checkpoint for the key groups that changed (`snapshot_state`); an event-time
//! timer per window end and key group. Without partition keys it runs at parallelism 1.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, Int64Array, TimestampMillisecondArray, UInt32Array};
use arrow::compute::{concat_batches, lexsort_to_indices, take, take_record_batch, SortColumn, SortOptions};
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use riffle_api::{DataStream, KeyedStateStore, ProcessContext, ValueState};
use riffle_connectors::{KeyedRows, RowStreamExt, Rows};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

use super::error::{ExecError, Result};
use super::key_table::KeyCodec;
use super::subtask_key::key_by_nothing;
use super::time::{is_time_type, millis};
use super::windows::WindowKind;

/// A window Top-N as the planner describes it.
#[derive(Debug, Clone)]
pub struct WindowTopNSpec {
    /// The window TVF (TUMBLE, HOP or CUMULATE).
    pub window: WindowKind,
    /// The time attribute's column in the input.
    pub time_column: usize,
    /// PARTITION BY columns besides window_start and window_end (empty: one partition per
    /// window, at parallelism 1).
    pub partition_columns: Vec<usize>,
    /// ORDER BY columns, each with `true` for DESC.
    pub order_by: Vec<(usize, bool)>,
    /// N of `rn <= N`.
    pub limit: usize,
    /// The input rows' schema.
    pub input_schema: SchemaRef,
}

impl WindowTopNSpec {
    /// The output: the input fields, window_start, window_end, rn.
    pub fn output_schema(&self) -> SchemaRef {
        let mut fields: Vec<FieldRef> = self.input_schema.fields().iter().cloned().collect();
        let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
        fields.push(Arc::new(Field::new("window_start", ts.clone(), false)));
        fields.push(Arc::new(Field::new("window_end", ts, false)));
        fields.push(Arc::new(Field::new("rn", DataType::Int64, false)));
        Arc::new(Schema::new(fields))
    }

    fn validate(&self) -> Result<()> {
        self.window.validate()?;
        if !self.window.is_sliced() {
            return Err(ExecError::Spec("window Top-N over a session window is not supported".into()));
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
    spec: WindowTopNSpec,
    codec: KeyCodec,
    output_schema: SchemaRef,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct StoredWindows {
    windows: Vec<(i64, Rows)>,
}

const WINDOWS: &str = "window-topn.windows";

/// A window's waiting rows.
#[derive(Default)]
struct Waiting {
    batches: Vec<RecordBatch>,
    rows: usize,
    /// Rows left after the last pruning.
    kept: usize,
}

#[derive(Default)]
struct Work {
    groups: FxHashMap<u32, BTreeMap<i64, Waiting>>,
    dirty: FxHashSet<u32>,
}

struct WindowTopNFn {
    plan: Arc<Plan>,
    work: Mutex<Work>,
}

impl Clone for WindowTopNFn {
    fn clone(&self) -> Self {
        Self { plan: self.plan.clone(), work: Mutex::new(Work::default()) }
    }
}

impl Plan {
    /// The rows of `batch` in (partition, order) order with their row numbers, the first
    /// `limit` of each partition.
    fn top(&self, batch: &RecordBatch) -> Result<(UInt32Array, Vec<i64>)> {
        let s = &self.spec;
        let mut sort: Vec<SortColumn> = s
            .partition_columns
            .iter()
            .map(|&c| SortColumn { values: batch.column(c).clone(), options: None })
            .collect();
        sort.extend(s.order_by.iter().map(|&(c, descending)| SortColumn {
            values: batch.column(c).clone(),
            options: Some(SortOptions { descending, nulls_first: !descending }),
        }));
        // Ties in arrival order (kept rows first): pruning never reorders equal rows.
        let arrival = UInt32Array::from_iter_values(0..batch.num_rows() as u32);
        sort.push(SortColumn { values: Arc::new(arrival), options: None });
        let order = lexsort_to_indices(&sort, None)?;
        let part_cols: Vec<ArrayRef> = s.partition_columns.iter().map(|&c| batch.column(c).clone()).collect();
        let keys = self.codec.encode(&part_cols, batch.num_rows())?;
        let (mut rows, mut numbers) = (Vec::new(), Vec::new());
        let mut prev: Option<usize> = None;
        let mut rn = 0i64;
        for &i in order.values() {
            let i = i as usize;
            rn = if prev.is_some_and(|p| keys.get(p) == keys.get(i)) { rn + 1 } else { 1 };
            prev = Some(i);
            if rn as usize <= s.limit {
                rows.push(i as u32);
                numbers.push(rn);
            }
        }
        Ok((UInt32Array::from(rows), numbers))
    }
}

impl Waiting {
    fn all(&self, schema: &SchemaRef) -> Result<RecordBatch> {
        Ok(concat_batches(schema, &self.batches)?)
    }
}

impl WindowTopNFn {
    fn work(&mut self) -> Result<&mut Work> {
        self.work.get_mut().map_err(|_| ExecError::Input("a previous failure poisoned the Top-N state".into()))
    }

    fn load<'w>(
        work: &'w mut Work,
        rep: u32,
        state: &mut KeyedStateStore<u32>,
    ) -> Result<&'w mut BTreeMap<i64, Waiting>> {
        match work.groups.entry(rep) {
            std::collections::hash_map::Entry::Occupied(o) => Ok(o.into_mut()),
            std::collections::hash_map::Entry::Vacant(v) => {
                let stored: ValueState<StoredWindows> = state.value_state(WINDOWS)?;
                let mut windows = BTreeMap::new();
                for (end, rows) in stored.get(state)?.map(|s| s.windows.clone()).unwrap_or_default() {
                    let n = rows.num_rows();
                    windows.insert(end, Waiting { batches: vec![rows.0], rows: n, kept: n });
                }
                Ok(v.insert(windows))
            }
        }
    }

    fn process(&mut self, k: KeyedRows, ctx: &mut ProcessContext<'_, u32, Rows>) -> Result<()> {
        let plan = self.plan.clone();
        let s = &plan.spec;
        let batch = k.rows.batch();
        let times = millis(batch.column(s.time_column))?;
        let watermark = ctx.current_watermark();
        // Rows by the windows they belong to.
        let mut by_window: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
        for i in 0..batch.num_rows() {
            if times.is_valid(i) {
                for we in s.window.window_ends_of_slice(s.window.slice_end(times.value(i))) {
                    if we - 1 > watermark {
                        by_window.entry(we).or_default().push(i as u32);
                    }
                }
            }
        }
        if by_window.is_empty() {
            return Ok(());
        }
        let work = self.work()?;
        let windows = Self::load(work, k.key, ctx.state())?;
        for (we, rows) in by_window {
            let part = if rows.len() == batch.num_rows() {
                batch.clone()
            } else {
                take_record_batch(batch, &UInt32Array::from(rows))?
            };
            let w = windows.entry(we).or_insert_with(|| {
                ctx.register_event_time_timer(we - 1);
                Waiting::default()
            });
            w.rows += part.num_rows();
            w.batches.push(part);
            // Prune once the window holds far more than it kept last time.
            if w.rows > 1024 && w.rows > 4 * w.kept.max(s.limit) {
                let all = w.all(&s.input_schema)?;
                let (top, _) = plan.top(&all)?;
                let pruned = take_record_batch(&all, &top)?;
                w.rows = pruned.num_rows();
                w.kept = w.rows;
                w.batches = vec![pruned];
            }
        }
        work.dirty.insert(k.key);
        Ok(())
    }

    fn fire(&mut self, timestamp: i64, ctx: &mut ProcessContext<'_, u32, Rows>) -> Result<()> {
        let plan = self.plan.clone();
        let s = &plan.spec;
        let end = timestamp + 1;
        let rep = *ctx.key();
        let work = self.work()?;
        let windows = Self::load(work, rep, ctx.state())?;
        let Some(w) = windows.remove(&end) else { return Ok(()) };
        let empty = windows.is_empty();
        if empty {
            work.groups.remove(&rep);
            work.dirty.remove(&rep);
            let stored: ValueState<StoredWindows> = ctx.state().value_state(WINDOWS)?;
            stored.clear(ctx.state())?;
        } else {
            work.dirty.insert(rep);
        }
        let all = w.all(&s.input_schema)?;
        let (top, numbers) = plan.top(&all)?;
        if top.is_empty() {
            return Ok(());
        }
        let n = top.len();
        let mut cols: Vec<ArrayRef> = all.columns().iter().map(|c| take(c, &top, None)).collect::<Result<_, _>>()?;
        cols.push(Arc::new(TimestampMillisecondArray::from(vec![s.window.window_start(end); n])));
        cols.push(Arc::new(TimestampMillisecondArray::from(vec![end; n])));
        cols.push(Arc::new(Int64Array::from(numbers)));
        let out = RecordBatch::try_new(plan.output_schema.clone(), cols)?;
        ctx.collect_with_timestamp(Rows(out), timestamp);
        Ok(())
    }

    fn snapshot(&mut self, state: &mut KeyedStateStore<u32>) -> Result<()> {
        let schema = self.plan.spec.input_schema.clone();
        let work = self.work()?;
        let stored: ValueState<StoredWindows> = state.value_state(WINDOWS)?;
        let mut dirty: Vec<u32> = work.dirty.drain().collect();
        dirty.sort_unstable();
        for rep in dirty {
            state.try_set_current_key(rep)?;
            match work.groups.get_mut(&rep) {
                Some(windows) if !windows.is_empty() => {
                    let mut out = StoredWindows::default();
                    for (end, w) in windows.iter_mut() {
                        let one = w.all(&schema)?;
                        w.batches = vec![one.clone()];
                        out.windows.push((*end, Rows(one)));
                    }
                    stored.set(state, out)?;
                }
                _ => {
                    stored.clear(state)?;
                }
            }
        }
        Ok(())
    }
}

keyed_row_operator!(WindowTopNFn, event_time_timers);

/// The window Top-N of `stream` (rows with watermarks): rows of
/// [`WindowTopNSpec::output_schema`], each window's once when the watermark passes it.
pub fn window_top_n(stream: &DataStream<Rows>, spec: &WindowTopNSpec) -> Result<DataStream<Rows>> {
    spec.validate()?;
    let key_fields: Vec<FieldRef> =
        spec.partition_columns.iter().map(|&i| spec.input_schema.fields()[i].clone()).collect();
    let key_types: Vec<DataType> = key_fields.iter().map(|f| f.data_type().clone()).collect();
    let f = WindowTopNFn {
        plan: Arc::new(Plan {
            spec: spec.clone(),
            codec: KeyCodec::new(&key_types)?,
            output_schema: spec.output_schema(),
        }),
        work: Mutex::new(Work::default()),
    };
    let names: Vec<&str> = key_fields.iter().map(|f| f.name().as_str()).collect();
    Ok(if names.is_empty() {
        key_by_nothing(stream).process(f).name("WindowRank").set_parallelism(1)
    } else {
        stream.key_by_columns(&names).process(f).name("WindowRank")
    })
}
