//! Event-time deduplication keeping the first row (Flink's `Deduplicate(keep=FirstRow,
//! order=ROWTIME, outputInsertOnly=true)`: `ROW_NUMBER() OVER (PARTITION BY k ORDER BY ts ASC)
//! = 1`).
//!
//! Per key the earliest row waits until the watermark reaches its time, then it is emitted —
//! once, insert-only — and every later row of the key is dropped; rows at or behind the
//! watermark are dropped as late. Per batch: keys hashed once per row, the waiting rows kept
//! as references into their batches and gathered with one `interleave` when they fire.
//!
//! State per key group: the keys already emitted and the waiting rows, in memory and written
//! into keyed state at each checkpoint for the key groups that changed (`snapshot_state`);
//! one event-time timer per key group at its earliest waiting time. The emitted keys are kept
//! forever (Flink bounds them with `table.exec.state.ttl`; the engine has no state TTL).

use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, BinaryArray};
use arrow::compute::interleave_record_batch;
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use riffle_api::{DataStream, KeyedStateStore, ProcessContext, ValueState};
use riffle_connectors::{KeyedRows, RowStreamExt, Rows};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

use super::error::{ExecError, Result};
use super::key_table::KeyCodec;
use super::subtask_key::key_by_nothing;
use super::time::{is_time_type, millis};

/// A first-row deduplication as the planner describes it.
#[derive(Debug, Clone)]
pub struct DedupSpec {
    /// The PARTITION BY columns (empty: one row in all, at parallelism 1).
    pub key_columns: Vec<usize>,
    /// The ORDER BY time attribute (ascending).
    pub time_column: usize,
    /// The input rows' schema, also the output's.
    pub input_schema: SchemaRef,
}

#[derive(Debug)]
struct Plan {
    key_columns: Vec<usize>,
    time_column: usize,
    codec: KeyCodec,
    schema: SchemaRef,
    keys_schema: SchemaRef,
}

/// A waiting row: its time, its batch and its row in the batch.
type Waiting = (i64, usize, usize);

/// A key group's deduplication state.
#[derive(Default)]
struct Group {
    emitted: FxHashSet<Box<[u8]>>,
    /// Per waiting key, its row.
    waiting: FxHashMap<Box<[u8]>, Waiting>,
    batches: Vec<RecordBatch>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredGroup {
    /// The emitted keys (one binary column).
    emitted: Rows,
    /// The waiting rows.
    waiting: Rows,
}

const DEDUP: &str = "dedup.first-rows";

#[derive(Default)]
struct Work {
    groups: FxHashMap<u32, Group>,
    dirty: FxHashSet<u32>,
}

struct DedupFn {
    plan: Arc<Plan>,
    work: Mutex<Work>,
}

impl Clone for DedupFn {
    fn clone(&self) -> Self {
        Self { plan: self.plan.clone(), work: Mutex::new(Work::default()) }
    }
}

impl Plan {
    fn keys_and_times(&self, batch: &RecordBatch) -> Result<(super::key_table::EncodedKeys, arrow::array::Int64Array)> {
        let cols: Vec<ArrayRef> = self.key_columns.iter().map(|&i| batch.column(i).clone()).collect();
        Ok((self.codec.encode(&cols, batch.num_rows())?, millis(batch.column(self.time_column))?))
    }
}

impl Group {
    /// The waiting rows as one batch (and the references into it).
    fn compact(&mut self, schema: &SchemaRef) -> Result<RecordBatch> {
        let mut entries: Vec<&mut Waiting> = self.waiting.values_mut().collect();
        entries.sort_by_key(|v| (v.1, v.2));
        let indices: Vec<(usize, usize)> = entries.iter().map(|v| (v.1, v.2)).collect();
        let refs: Vec<&RecordBatch> = self.batches.iter().collect();
        let one = if indices.is_empty() {
            RecordBatch::new_empty(schema.clone())
        } else {
            interleave_record_batch(&refs, &indices)?
        };
        for (row, v) in entries.into_iter().enumerate() {
            *v = (v.0, 0, row);
        }
        self.batches = if one.num_rows() > 0 { vec![one.clone()] } else { Vec::new() };
        Ok(one)
    }
}

impl DedupFn {
    fn work(&mut self) -> Result<&mut Work> {
        self.work.get_mut().map_err(|_| ExecError::Input("a previous failure poisoned the dedup state".into()))
    }

    fn load<'w>(plan: &Plan, work: &'w mut Work, rep: u32, state: &mut KeyedStateStore<u32>) -> Result<&'w mut Group> {
        match work.groups.entry(rep) {
            std::collections::hash_map::Entry::Occupied(o) => Ok(o.into_mut()),
            std::collections::hash_map::Entry::Vacant(v) => {
                let stored: ValueState<StoredGroup> = state.value_state(DEDUP)?;
                let mut g = Group::default();
                if let Some(s) = stored.get(state)? {
                    let keys = s
                        .emitted
                        .batch()
                        .column(0)
                        .as_any()
                        .downcast_ref::<BinaryArray>()
                        .ok_or_else(|| ExecError::Input("stored emitted keys are not binary".into()))?;
                    g.emitted.extend(keys.iter().map(|k| Box::<[u8]>::from(k.unwrap_or_default())));
                    let rows = s.waiting.batch().clone();
                    let (keys, times) = plan.keys_and_times(&rows)?;
                    for i in 0..rows.num_rows() {
                        g.waiting.insert(keys.get(i).into(), (times.value(i), 0, i));
                    }
                    if rows.num_rows() > 0 {
                        g.batches.push(rows);
                    }
                }
                Ok(v.insert(g))
            }
        }
    }

    fn process(&mut self, k: KeyedRows, ctx: &mut ProcessContext<'_, u32, Rows>) -> Result<()> {
        let plan = self.plan.clone();
        let batch = k.rows.batch();
        let (keys, times) = plan.keys_and_times(batch)?;
        let watermark = ctx.current_watermark();
        let work = self.work()?;
        let g = Self::load(&plan, work, k.key, ctx.state())?;
        let slot = g.batches.len();
        let mut used = false;
        let mut earliest: Option<i64> = None;
        for i in 0..batch.num_rows() {
            if !times.is_valid(i) {
                continue;
            }
            let t = times.value(i);
            let key = keys.get(i);
            if t <= watermark || g.emitted.contains(key) {
                continue;
            }
            match g.waiting.get_mut(key) {
                Some(w) if w.0 <= t => continue,
                Some(w) => *w = (t, slot, i),
                None => {
                    g.waiting.insert(key.into(), (t, slot, i));
                }
            }
            used = true;
            earliest = Some(earliest.map_or(t, |e| e.min(t)));
        }
        if used {
            g.batches.push(batch.clone());
            work.dirty.insert(k.key);
        }
        if let Some(t) = earliest {
            ctx.register_event_time_timer(t);
        }
        Ok(())
    }

    fn fire(&mut self, _timestamp: i64, ctx: &mut ProcessContext<'_, u32, Rows>) -> Result<()> {
        let plan = self.plan.clone();
        let rep = *ctx.key();
        let watermark = ctx.current_watermark();
        let work = self.work()?;
        let g = Self::load(&plan, work, rep, ctx.state())?;
        let due: Vec<Box<[u8]>> = g.waiting.iter().filter(|(_, v)| v.0 <= watermark).map(|(k, _)| k.clone()).collect();
        if due.is_empty() {
            return Ok(());
        }
        let mut indices = Vec::with_capacity(due.len());
        for key in due {
            if let Some((_, b, r)) = g.waiting.remove(&key) {
                indices.push((b, r));
            }
            g.emitted.insert(key);
        }
        indices.sort_unstable();
        let refs: Vec<&RecordBatch> = g.batches.iter().collect();
        let out = interleave_record_batch(&refs, &indices)?;
        g.compact(&plan.schema)?;
        if let Some(next) = g.waiting.values().map(|v| v.0).min() {
            ctx.register_event_time_timer(next);
        }
        work.dirty.insert(rep);
        ctx.collect_with_timestamp(Rows(out), watermark);
        Ok(())
    }

    fn snapshot(&mut self, state: &mut KeyedStateStore<u32>) -> Result<()> {
        let plan = self.plan.clone();
        let work = self.work()?;
        let stored: ValueState<StoredGroup> = state.value_state(DEDUP)?;
        let mut dirty: Vec<u32> = work.dirty.drain().collect();
        dirty.sort_unstable();
        for rep in dirty {
            state.try_set_current_key(rep)?;
            let Some(g) = work.groups.get_mut(&rep) else {
                stored.clear(state)?;
                continue;
            };
            let waiting = g.compact(&plan.schema)?;
            let keys: ArrayRef = Arc::new(BinaryArray::from_iter_values(g.emitted.iter()));
            let emitted = RecordBatch::try_new(plan.keys_schema.clone(), vec![keys])?;
            stored.set(state, StoredGroup { emitted: Rows(emitted), waiting: Rows(waiting) })?;
        }
        Ok(())
    }
}

keyed_row_operator!(DedupFn, event_time_timers);

/// The first row (by event time) of every key of `stream`, each emitted once the watermark
/// reaches it: rows of the input schema, insert-only.
pub fn deduplicate_first(stream: &DataStream<Rows>, spec: &DedupSpec) -> Result<DataStream<Rows>> {
    let n = spec.input_schema.fields().len();
    let time = spec
        .input_schema
        .fields()
        .get(spec.time_column)
        .ok_or_else(|| ExecError::Spec(format!("time column {} of {n}", spec.time_column)))?;
    if !is_time_type(time.data_type()) {
        return Err(ExecError::Spec(format!("'{}' is not a time attribute", time.name())));
    }
    if let Some(k) = spec.key_columns.iter().find(|k| **k >= n) {
        return Err(ExecError::Spec(format!("key column {k} of {n}")));
    }
    let key_fields: Vec<FieldRef> = spec.key_columns.iter().map(|&i| spec.input_schema.fields()[i].clone()).collect();
    let key_types: Vec<DataType> = key_fields.iter().map(|f| f.data_type().clone()).collect();
    let f = DedupFn {
        plan: Arc::new(Plan {
            key_columns: spec.key_columns.clone(),
            time_column: spec.time_column,
            codec: KeyCodec::new(&key_types)?,
            schema: spec.input_schema.clone(),
            keys_schema: Arc::new(Schema::new(vec![Field::new("__key", DataType::Binary, false)])),
        }),
        work: Mutex::new(Work::default()),
    };
    let names: Vec<&str> = key_fields.iter().map(|f| f.name().as_str()).collect();
    Ok(if names.is_empty() {
        key_by_nothing(stream).process(f).name("RowTimeDeduplicate").set_parallelism(1)
    } else {
        stream.key_by_columns(&names).process(f).name("RowTimeDeduplicate")
    })
}
