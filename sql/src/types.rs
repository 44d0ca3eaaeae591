//! Flink's SQL types as Arrow types, both ways.
//!
//! | Flink | Arrow |
//! |---|---|
//! | `TINYINT`, `SMALLINT`, `INT`, `BIGINT` | `Int8`, `Int16`, `Int32`, `Int64` |
//! | `FLOAT`, `DOUBLE` | `Float32`, `Float64` |
//! | `DECIMAL(p, s)` (default `(10, 0)`) | `Decimal128(p, s)` |
//! | `BOOLEAN` | `Boolean` |
//! | `CHAR`, `VARCHAR`, `STRING` | `Utf8` |
//! | `BINARY`, `VARBINARY`, `BYTES` | `Binary` |
//! | `DATE` | `Date32` |
//! | `TIME(p)` | `Time32(Millisecond)` |
//! | `TIMESTAMP(p)` | `Timestamp(Millisecond, None)` (p ≤ 3), `Microsecond` (≤ 6), `Nanosecond` |
//! | `TIMESTAMP_LTZ(p)`, `TIMESTAMP(p) WITH LOCAL TIME ZONE` | the same unit with zone `"UTC"` |
//!
//! `TIMESTAMP_LTZ` is an instant: Arrow's timestamp with a zone stores exactly that (UTC epoch
//! offsets) and DataFusion's time functions and comparisons already treat it as one; the
//! session time zone only matters where an instant becomes wall-clock time (printing, window
//! bounds), which is why the zone is always `UTC` here rather than the session's.

use arrow::datatypes::{DataType, TimeUnit};
use datafusion_sql::sqlparser::ast::{self, CharacterLength, ExactNumberInfo};

use crate::error::{Result, SqlError};

/// The zone of every `TIMESTAMP_LTZ` column.
pub const LTZ_ZONE: &str = "UTC";

/// `TIMESTAMP_LTZ(3)`: what `TO_TIMESTAMP_LTZ` returns.
pub fn timestamp_ltz_ms() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some(LTZ_ZONE.into()))
}

fn unit_for_precision(p: Option<u64>) -> TimeUnit {
    match p.unwrap_or(3) {
        0..=3 => TimeUnit::Millisecond,
        4..=6 => TimeUnit::Microsecond,
        _ => TimeUnit::Nanosecond,
    }
}

/// The Arrow type of a Flink type as sqlparser parsed it; `local_zone` is a trailing
/// `WITH LOCAL TIME ZONE` the caller consumed.
pub fn to_arrow(t: &ast::DataType, local_zone: bool) -> Result<DataType> {
    use ast::DataType as D;
    Ok(match t {
        D::TinyInt(_) => DataType::Int8,
        D::SmallInt(_) => DataType::Int16,
        D::Int(_) | D::Integer(_) => DataType::Int32,
        D::BigInt(_) => DataType::Int64,
        D::Float(ExactNumberInfo::None) | D::Real | D::Float4 => DataType::Float32,
        D::Float(_) | D::Double(_) | D::DoublePrecision | D::Float8 => DataType::Float64,
        D::Decimal(info) | D::Dec(info) | D::Numeric(info) => {
            let (p, s) = match info {
                ExactNumberInfo::None => (10, 0),
                ExactNumberInfo::Precision(p) => (*p, 0),
                ExactNumberInfo::PrecisionAndScale(p, s) => (*p, *s as u64),
            };
            if !(1..=38).contains(&p) || s > p {
                return Err(SqlError::invalid(format!(
                    "DECIMAL({p}, {s}): precision must be 1..38 and scale 0..precision"
                )));
            }
            DataType::Decimal128(p as u8, s as i8)
        }
        D::Boolean | D::Bool => DataType::Boolean,
        D::String(_) | D::Text => DataType::Utf8,
        D::Varchar(len) | D::CharVarying(len) | D::CharacterVarying(len) | D::Char(len) | D::Character(len) => {
            if let Some(CharacterLength::IntegerLength { length: 0, .. }) = len {
                return Err(SqlError::invalid("a character type's length must be at least 1"));
            }
            DataType::Utf8
        }
        D::Binary(_) | D::Varbinary(_) | D::Bytes(_) | D::Bytea => DataType::Binary,
        D::Date => DataType::Date32,
        D::Time(_, _) => DataType::Time32(TimeUnit::Millisecond),
        D::Timestamp(p, tz) => {
            let zone = local_zone || matches!(tz, ast::TimezoneInfo::WithTimeZone | ast::TimezoneInfo::Tz);
            DataType::Timestamp(unit_for_precision(*p), zone.then(|| LTZ_ZONE.into()))
        }
        D::Custom(name, args) if name.to_string().eq_ignore_ascii_case("TIMESTAMP_LTZ") => {
            let p = match args.as_slice() {
                [] => None,
                [p] => Some(
                    p.parse::<u64>().map_err(|_| SqlError::invalid(format!("TIMESTAMP_LTZ({p}): not a precision")))?,
                ),
                _ => return Err(SqlError::invalid("TIMESTAMP_LTZ takes one precision")),
            };
            DataType::Timestamp(unit_for_precision(p), Some(LTZ_ZONE.into()))
        }
        other => return Err(SqlError::unsupported(format!("the type {other}"))),
    })
}

/// Flink's name of an Arrow type (what DESCRIBE and SHOW CREATE TABLE print).
pub fn flink_name(t: &DataType) -> String {
    match t {
        DataType::Null => "NULL".into(),
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INT".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::Float32 => "FLOAT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("DECIMAL({p}, {s})"),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "STRING".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "BYTES".into(),
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        DataType::Time32(_) | DataType::Time64(_) => "TIME(3)".into(),
        DataType::Timestamp(unit, zone) => {
            let p = match unit {
                TimeUnit::Second => 0,
                TimeUnit::Millisecond => 3,
                TimeUnit::Microsecond => 6,
                TimeUnit::Nanosecond => 9,
            };
            if zone.is_some() {
                format!("TIMESTAMP_LTZ({p})")
            } else {
                format!("TIMESTAMP({p})")
            }
        }
        other => format!("{other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion_sql::sqlparser::dialect::GenericDialect;
    use datafusion_sql::sqlparser::parser::Parser;

    fn parse(text: &str) -> DataType {
        let mut p = Parser::new(&GenericDialect {}).try_with_sql(text).unwrap();
        to_arrow(&p.parse_data_type().unwrap(), false).unwrap()
    }

    #[test]
    fn flink_types_map_to_arrow_and_back() {
        let cases = [
            ("BIGINT", DataType::Int64, "BIGINT"),
            ("INT", DataType::Int32, "INT"),
            ("DECIMAL(23, 3)", DataType::Decimal128(23, 3), "DECIMAL(23, 3)"),
            ("DECIMAL", DataType::Decimal128(10, 0), "DECIMAL(10, 0)"),
            ("STRING", DataType::Utf8, "STRING"),
            ("VARCHAR(10)", DataType::Utf8, "STRING"),
            ("DOUBLE", DataType::Float64, "DOUBLE"),
            ("TIMESTAMP(3)", DataType::Timestamp(TimeUnit::Millisecond, None), "TIMESTAMP(3)"),
            ("TIMESTAMP_LTZ(3)", timestamp_ltz_ms(), "TIMESTAMP_LTZ(3)"),
            ("DATE", DataType::Date32, "DATE"),
        ];
        for (text, arrow, back) in cases {
            let t = parse(text);
            assert_eq!(t, arrow, "{text}");
            assert_eq!(flink_name(&t), back, "{text}");
        }
    }

    #[test]
    fn a_bad_decimal_is_refused() {
        let mut p = Parser::new(&GenericDialect {}).try_with_sql("DECIMAL(40, 2)").unwrap();
        let err = to_arrow(&p.parse_data_type().unwrap(), false).unwrap_err();
        assert!(err.to_string().contains("DECIMAL(40, 2)"), "{err}");
    }
}
