//! How a changelog travels as Arrow rows: Flink's four row kinds, one per row.
//!
//! An insert-only stream is a plain `Rows` batch. An updating stream (a GROUP BY's result, a
//! Top-N, a CDC source) carries one extra **last** column, [`OP_COLUMN`], of type `Int8`,
//! holding each row's [`RowKind`] as Flink's byte value. Keeping the kind inside the batch keeps
//! an updating stream an ordinary `DataStream<Rows>`: the exchange, keyed state, checkpoints and
//! Arrow IPC need nothing new.

use arrow::datatypes::{DataType, Field};

/// The name of the row-kind column of an updating stream (always its last column).
pub const OP_COLUMN: &str = "__riffle_op";

/// Flink's `RowKind`: what a row of a changelog does to the table it describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i8)]
pub enum RowKind {
    /// `+I`: a new row.
    Insert = 0,
    /// `-U`: the previous version of an updated row (retracted).
    UpdateBefore = 1,
    /// `+U`: the new version of an updated row.
    UpdateAfter = 2,
    /// `-D`: a deleted row.
    Delete = 3,
}

impl RowKind {
    /// The kind stored as `value` in an [`OP_COLUMN`], or `None` for a value no kind has.
    pub fn from_byte(value: i8) -> Option<RowKind> {
        match value {
            0 => Some(RowKind::Insert),
            1 => Some(RowKind::UpdateBefore),
            2 => Some(RowKind::UpdateAfter),
            3 => Some(RowKind::Delete),
            _ => None,
        }
    }

    /// Flink's short form (`+I`, `-U`, `+U`, `-D`), as its print connector writes it.
    pub fn short_string(self) -> &'static str {
        match self {
            RowKind::Insert => "+I",
            RowKind::UpdateBefore => "-U",
            RowKind::UpdateAfter => "+U",
            RowKind::Delete => "-D",
        }
    }

    /// Whether the row adds to the table (`+I`, `+U`) rather than retracting from it.
    pub fn is_accumulate(self) -> bool {
        matches!(self, RowKind::Insert | RowKind::UpdateAfter)
    }
}

/// The row-kind column's field, as appended to an updating stream's schema.
pub fn op_field() -> Field {
    Field::new(OP_COLUMN, DataType::Int8, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_byte_and_no_other_byte_is_a_kind() {
        for kind in [RowKind::Insert, RowKind::UpdateBefore, RowKind::UpdateAfter, RowKind::Delete] {
            assert_eq!(RowKind::from_byte(kind as i8), Some(kind));
        }
        assert_eq!(RowKind::from_byte(4), None);
        assert_eq!(RowKind::from_byte(-1), None);
        assert_eq!(RowKind::UpdateBefore.short_string(), "-U");
        assert!(RowKind::UpdateAfter.is_accumulate() && !RowKind::Delete.is_accumulate());
    }
}
