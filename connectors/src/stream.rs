//! Rows in the DataStream API: a `DataStream<Rows>` keyed by columns, and conversions between
//! typed streams and rows. Everything here is built from riffle-api's public operators (a
//! rich map, flat maps, process functions), so batches travel, are partitioned and are
//! checkpointed by the engine exactly like typed records.
//!
//! ```
//! use riffle_api::{KeyedProcessFunction, ProcessContext, StreamEnvironment, UserError};
//! use riffle_connectors::{FileSource, KeyedRows, RecordStreamExt, RowStreamExt};
//!
//! #[derive(Clone, serde::Serialize, serde::Deserialize)]
//! struct UserAmount {
//!     user: String,
//!     amount: i64,
//! }
//!
//! /// A running sum per user: per-row-key values in a `MapState` under the key group's key.
//! #[derive(Clone)]
//! struct Sums;
//! impl KeyedProcessFunction<u32, KeyedRows, UserAmount> for Sums {
//!     fn process_element(
//!         &mut self,
//!         k: KeyedRows,
//!         ctx: &mut ProcessContext<'_, u32, UserAmount>,
//!     ) -> Result<(), UserError> {
//!         let sums = ctx.state().map_state::<Vec<u8>, i64>("sums")?;
//!         let rows: Vec<UserAmount> = k.rows.to_records()?;
//!         for (key, row) in k.row_keys()?.into_iter().zip(rows) {
//!             let sum = sums.get(ctx.state(), &key)?.copied().unwrap_or(0) + row.amount;
//!             sums.put(ctx.state(), key, sum)?;
//!             ctx.collect(UserAmount { user: row.user, amount: sum });
//!         }
//!         Ok(())
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # std::fs::write(dir.path().join("a.csv"), "user,amount\nada,3\n")?;
//! let mut options = riffle_api::Configuration::new();
//! options.set("format", "csv").set("csv.header", "true");
//! let files = FileSource::from_config(&[dir.path().to_path_buf()], &options, None)?;
//! let env = StreamEnvironment::new();
//! env.from_source(files, "payments") // DataStream<Rows>
//!     .key_by_columns(&["user"]) // KeyedStream<u32, KeyedRows>
//!     .process(Sums) // a running sum per user
//!     .to_rows(1024) // back to Arrow batches
//!     .to_records::<UserAmount>() // and to structs
//!     .discard();
//! env.build_job_graph("sums")?;
//! # Ok(()) }
//! ```

use std::marker::PhantomData;

use arrow::datatypes::FieldRef;
use riffle_api::{
    DataStream, KeyedProcessFunction, KeyedStream, ProcessContext, RichMapFunction, RuntimeContext, TimeDomain,
    UserError,
};
use riffle_state::key_group_range_for_subtask;
use serde_arrow::schema::{SchemaLike, TracingOptions};

use crate::keyed_rows::{representatives, KeySplitter, KeyedRows};
use crate::rows::{Rows, RowsError};

/// How long [`RecordStreamExt::to_rows`] holds a partial batch at most (wall clock), like
/// the engine's `execution.buffer-timeout`.
pub const TO_ROWS_FLUSH_MS: i64 = 100;

/// Operations on a stream of Arrow rows.
pub trait RowStreamExt {
    /// Partitions rows by the values of the key columns `columns`: each batch is cut into one
    /// sub-batch per key group of its rows' keys, keyed by the key group's representative
    /// (see [`crate::keyed_rows`]). Keyed state kept under that key (a `MapState` by
    /// [`KeyedRows::row_keys`]) lives in its rows' key group, so checkpoints and rescaling
    /// treat it as any keyed state. A key column the rows lack fails the task naming it.
    fn key_by_columns(&self, columns: &[&str]) -> KeyedStream<u32, KeyedRows>;

    /// Each row as a `T` (serde_arrow; columns matched to `T`'s fields by name), in the
    /// batch's order, with the batch's timestamp. Rows that do not convert fail the task.
    fn to_records<T: riffle_api::Data>(&self) -> DataStream<T>;
}

/// Operations on a typed stream that make rows of it.
pub trait RecordStreamExt<T> {
    /// The records as rows (serde_arrow; the schema traced from `T`, a struct with named
    /// fields), up to `batch_size` records per batch within a subtask. A partial batch is
    /// emitted when the watermark advances (before the watermark itself), after
    /// [`TO_ROWS_FLUSH_MS`], and at the end of a bounded input. Records waiting for their
    /// batch are keyed state of the operator (each subtask keys its records by a key of its
    /// own key groups, so they cross one local exchange), so a checkpoint keeps them and a
    /// rescaled restore moves them: exactly once across failures. A batch's timestamp is its
    /// records' largest. A record that does not convert fails the task.
    fn to_rows(&self, batch_size: usize) -> DataStream<Rows>;
}

impl RowStreamExt for DataStream<Rows> {
    fn key_by_columns(&self, columns: &[&str]) -> KeyedStream<u32, KeyedRows> {
        let names = columns.join(", ");
        self.map_with_state(SplitByKeyGroup {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            splitter: None,
        })
        .name(&format!("Key By Columns ({names})"))
        .flat_map(|parts: Vec<KeyedRows>, out| {
            for p in parts {
                out.collect(p);
            }
        })
        .name(&format!("Key By Columns ({names}) Unnest"))
        .key_by(|k: &KeyedRows| k.key)
    }

    fn to_records<T: riffle_api::Data>(&self) -> DataStream<T> {
        self.process(ToRecords::<T>(PhantomData)).name("To Records")
    }
}

impl<T: riffle_api::Data> RecordStreamExt<T> for DataStream<T> {
    fn to_rows(&self, batch_size: usize) -> DataStream<Rows> {
        // Each subtask keys its records by a key of its own key groups: the batching state is
        // then keyed state of real key groups, which restores and rescales correctly (state
        // under the key `()` of a non-keyed process function would not: every subtask's lands
        // in the same key group). At equal parallelism the exchange keeps records local.
        self.map_with_state(SubtaskKey { key: 0 })
            .name("To Rows Key")
            .key_by(|(k, _): &(u32, T)| *k)
            .process(ToRows::<T> { batch_size: batch_size.max(1), fields: None, _t: PhantomData })
            .name("To Rows")
    }
}

/// Pairs each record with the representative key of the first key group this subtask owns.
#[derive(Clone)]
struct SubtaskKey {
    key: u32,
}

impl<T: riffle_api::Data> RichMapFunction<T, (u32, T)> for SubtaskKey {
    type State = ();

    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), UserError> {
        let range = key_group_range_for_subtask(ctx.max_parallelism, ctx.parallelism, ctx.subtask);
        let reps = representatives(ctx.max_parallelism);
        self.key = reps.get(range.start as usize).copied().ok_or_else(|| {
            RowsError::Convert(format!(
                "subtask {} of {} owns no key group of {}",
                ctx.subtask, ctx.parallelism, ctx.max_parallelism
            ))
        })?;
        Ok(())
    }

    fn map(&mut self, value: T) -> Result<(u32, T), UserError> {
        Ok((self.key, value))
    }
}

/// Cuts each batch into sub-batches per key group (the max parallelism comes from the
/// subtask's context, the same the partitioner uses).
#[derive(Clone)]
struct SplitByKeyGroup {
    columns: Vec<String>,
    splitter: Option<KeySplitter>,
}

impl RichMapFunction<Rows, Vec<KeyedRows>> for SplitByKeyGroup {
    type State = ();

    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), UserError> {
        let names: Vec<&str> = self.columns.iter().map(String::as_str).collect();
        if names.is_empty() {
            return Err(Box::new(RowsError::Convert("key_by_columns needs at least one column".into())));
        }
        self.splitter = Some(KeySplitter::new(&names, ctx.max_parallelism));
        Ok(())
    }

    fn map(&mut self, rows: Rows) -> Result<Vec<KeyedRows>, UserError> {
        match self.splitter.as_mut() {
            Some(s) => Ok(s.split(rows)?),
            None => Err(Box::new(RowsError::Convert("the key splitter was not opened".into()))),
        }
    }
}

/// Rows to records, a batch at a time.
struct ToRecords<T>(PhantomData<fn() -> T>);

impl<T> Clone for ToRecords<T> {
    fn clone(&self) -> Self {
        Self(PhantomData)
    }
}

impl<T: riffle_api::Data> KeyedProcessFunction<(), Rows, T> for ToRecords<T> {
    fn process_element(&mut self, rows: Rows, ctx: &mut ProcessContext<'_, (), T>) -> Result<(), UserError> {
        for r in rows.to_records::<T>()? {
            ctx.collect(r);
        }
        Ok(())
    }
}

/// Records to rows, `batch_size` at a time; the waiting records are keyed state under the
/// subtask's key.
struct ToRows<T> {
    batch_size: usize,
    fields: Option<Vec<FieldRef>>,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for ToRows<T> {
    fn clone(&self) -> Self {
        Self { batch_size: self.batch_size, fields: self.fields.clone(), _t: PhantomData }
    }
}

/// The keyed state holding records waiting for their batch, with their timestamps.
const BUFFER: &str = "to-rows.buffer";

impl<T: riffle_api::Data> ToRows<T> {
    fn flush(&mut self, ctx: &mut ProcessContext<'_, u32, Rows>) -> Result<(), UserError> {
        let buffer = ctx.state().list_state::<(T, i64)>(BUFFER)?;
        let waiting = buffer.clear(ctx.state())?;
        if waiting.is_empty() {
            return Ok(());
        }
        let fields = match &self.fields {
            Some(f) => f.clone(),
            None => {
                let f = Vec::<FieldRef>::from_type::<T>(TracingOptions::default().allow_null_fields(true)).map_err(
                    |e| RowsError::Convert(format!("no Arrow schema for {}: {e}", std::any::type_name::<T>())),
                )?;
                self.fields = Some(f.clone());
                f
            }
        };
        let timestamp = waiting.iter().map(|(_, ts)| *ts).max().unwrap_or(riffle_api::NO_TIMESTAMP);
        let records: Vec<T> = waiting.into_iter().map(|(r, _)| r).collect();
        let rows = Rows::from_records_with(&fields, &records)?;
        ctx.collect_with_timestamp(rows, timestamp);
        Ok(())
    }
}

impl<T: riffle_api::Data> KeyedProcessFunction<u32, (u32, T), Rows> for ToRows<T> {
    fn process_element(
        &mut self,
        (_, value): (u32, T),
        ctx: &mut ProcessContext<'_, u32, Rows>,
    ) -> Result<(), UserError> {
        let buffer = ctx.state().list_state::<(T, i64)>(BUFFER)?;
        let timestamp = ctx.timestamp();
        if buffer.get(ctx.state())?.is_empty() {
            // The first record of a batch: flush before the next watermark goes on, and after
            // the flush interval at the latest.
            let at = ctx.current_watermark().saturating_add(1);
            ctx.register_event_time_timer(at);
            let due = ctx.current_processing_time().saturating_add(TO_ROWS_FLUSH_MS);
            ctx.register_processing_time_timer(due);
        }
        buffer.add(ctx.state(), (value, timestamp))?;
        if buffer.get(ctx.state())?.len() >= self.batch_size {
            self.flush(ctx)?;
        }
        Ok(())
    }

    fn on_timer(&mut self, _: i64, _: TimeDomain, ctx: &mut ProcessContext<'_, u32, Rows>) -> Result<(), UserError> {
        self.flush(ctx)
    }
}
