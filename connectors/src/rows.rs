//! [`Rows`]: an Arrow record batch as a record of the engine. A `DataStream<Rows>` moves a
//! batch at a time through operators, exchanges and checkpoints like any typed record: the
//! engine encodes records with serde, and a `Rows` encodes itself as an Arrow IPC stream
//! (schema and batch, the format every Arrow implementation reads), so the bytes between two
//! TaskManagers and in a checkpoint are plain Arrow. The typed API meets the rows through
//! [`Rows::from_records`] and [`Rows::to_records`] (serde_arrow: a Rust struct per row).

use arrow::datatypes::{FieldRef, SchemaRef};
use arrow::record_batch::RecordBatch;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_arrow::schema::{SchemaLike, TracingOptions};

/// Rows as one Arrow record batch: the unit untyped data (connectors, SQL) flows in.
#[derive(Debug, Clone, PartialEq)]
pub struct Rows(pub RecordBatch);

/// Why rows could not be converted or decoded.
#[derive(Debug, thiserror::Error)]
pub enum RowsError {
    /// Rust values and the batch's columns do not fit each other (a field missing, a type
    /// that does not convert).
    #[error("rows do not convert: {0}")]
    Convert(String),
    /// The bytes are not an Arrow IPC stream of one batch (a corrupt checkpoint or frame).
    #[error("corrupt rows: {0}")]
    Corrupt(String),
    /// A key column named by the job is not in the rows' schema.
    #[error("key column '{column}' is not in the rows (columns: {available})")]
    MissingColumn {
        /// The column asked for.
        column: String,
        /// The rows' columns, comma-separated.
        available: String,
    },
}

impl Rows {
    /// The batch's schema.
    pub fn schema(&self) -> SchemaRef {
        self.0.schema()
    }

    /// Number of rows.
    pub fn num_rows(&self) -> usize {
        self.0.num_rows()
    }

    /// The batch.
    pub fn batch(&self) -> &RecordBatch {
        &self.0
    }

    /// Rows from Rust values, the schema traced from their type (`T` a struct with named
    /// fields; `Option` fields are nullable).
    pub fn from_records<T: Serialize + for<'de> Deserialize<'de>>(records: &[T]) -> Result<Rows, RowsError> {
        let fields = Vec::<FieldRef>::from_type::<T>(TracingOptions::default().allow_null_fields(true))
            .map_err(|e| RowsError::Convert(e.to_string()))?;
        Self::from_records_with(&fields, records)
    }

    /// Rows from Rust values into the given columns (a declared schema's fields).
    pub fn from_records_with<T: Serialize>(fields: &[FieldRef], records: &[T]) -> Result<Rows, RowsError> {
        serde_arrow::to_record_batch(fields, &records).map(Rows).map_err(|e| RowsError::Convert(e.to_string()))
    }

    /// The rows as Rust values, a `T` per row (columns matched to fields by name).
    pub fn to_records<T: DeserializeOwned>(&self) -> Result<Vec<T>, RowsError> {
        serde_arrow::from_record_batch(&self.0).map_err(|e| RowsError::Convert(e.to_string()))
    }

    /// The Arrow IPC stream of this batch (schema message, one batch message, end marker).
    pub fn to_ipc(&self) -> Result<Vec<u8>, RowsError> {
        let mut out = Vec::with_capacity(self.0.get_array_memory_size() + 256);
        let mut w = arrow_ipc::writer::StreamWriter::try_new(&mut out, &self.0.schema())
            .map_err(|e| RowsError::Convert(e.to_string()))?;
        w.write(&self.0).map_err(|e| RowsError::Convert(e.to_string()))?;
        w.finish().map_err(|e| RowsError::Convert(e.to_string()))?;
        drop(w);
        Ok(out)
    }

    /// Decodes what [`Rows::to_ipc`] wrote (or any IPC stream of exactly one batch; an empty
    /// stream is an empty batch of its schema).
    pub fn from_ipc(bytes: &[u8]) -> Result<Rows, RowsError> {
        let mut r = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
            .map_err(|e| RowsError::Corrupt(e.to_string()))?;
        let schema = r.schema();
        let batch = match r.next() {
            Some(b) => b.map_err(|e| RowsError::Corrupt(e.to_string()))?,
            None => RecordBatch::new_empty(schema),
        };
        if r.next().is_some() {
            return Err(RowsError::Corrupt("more than one batch in one Rows frame".into()));
        }
        Ok(Rows(batch))
    }
}

impl From<RecordBatch> for Rows {
    fn from(b: RecordBatch) -> Self {
        Rows(b)
    }
}

impl From<Rows> for RecordBatch {
    fn from(r: Rows) -> Self {
        r.0
    }
}

impl Serialize for Rows {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let bytes = self.to_ipc().map_err(serde::ser::Error::custom)?;
        serde_bytes::Bytes::new(&bytes).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Rows {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = serde_bytes::ByteBuf::deserialize(d)?;
        Rows::from_ipc(&bytes).map_err(serde::de::Error::custom)
    }
}

/// An empty batch of `schema`.
pub fn empty(schema: SchemaRef) -> Rows {
    Rows(RecordBatch::new_empty(schema))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Bid {
        auction: u64,
        bidder: String,
        price: f64,
        note: Option<String>,
    }

    fn bids() -> Vec<Bid> {
        vec![
            Bid { auction: 1, bidder: "ada".into(), price: 2.5, note: None },
            Bid { auction: 2, bidder: "grace".into(), price: 10.0, note: Some("x".into()) },
        ]
    }

    #[test]
    fn structs_become_columns_and_come_back() {
        let rows = Rows::from_records(&bids()).unwrap();
        assert_eq!(rows.num_rows(), 2);
        let names: Vec<_> = rows.schema().fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(names, ["auction", "bidder", "price", "note"]);
        assert!(rows.schema().field(3).is_nullable());
        assert_eq!(rows.to_records::<Bid>().unwrap(), bids());
    }

    #[test]
    fn serde_round_trip_is_arrow_ipc() {
        let rows = Rows::from_records(&bids()).unwrap();
        let bytes = rmp_serde::to_vec(&rows).unwrap();
        let back: Rows = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back, rows);
        let ipc = rows.to_ipc().unwrap();
        assert_eq!(Rows::from_ipc(&ipc).unwrap(), rows);
    }

    #[test]
    fn corrupt_bytes_are_an_error_not_a_panic() {
        let ipc = Rows::from_records(&bids()).unwrap().to_ipc().unwrap();
        for cut in [0, 1, 8, ipc.len() / 2, ipc.len() - 9] {
            assert!(Rows::from_ipc(&ipc[..cut]).is_err(), "cut {cut}");
        }
        let mut flipped = ipc.clone();
        for b in flipped.iter_mut().skip(16).step_by(7) {
            *b ^= 0x5a;
        }
        // Flipped bytes: an error or (rarely) other values, never a panic.
        let _ = Rows::from_ipc(&flipped);
    }
}
