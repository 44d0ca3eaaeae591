//! Reading a table's options: typed values with errors that name the table and the key, and
//! Flink's old keys (`connector.*`, `format.*`) accepted beside the new ones.

use std::str::FromStr;

use crate::catalog::TableDef;
use crate::error::{Result, SqlError};

/// The value of `key`, or of one of its older names.
pub fn get<'a>(table: &'a TableDef, keys: &[&str]) -> Option<&'a str> {
    keys.iter().find_map(|k| table.options.get(*k)).map(String::as_str)
}

/// A required option.
pub fn required<'a>(table: &'a TableDef, keys: &[&str]) -> Result<&'a str> {
    get(table, keys).ok_or_else(|| SqlError::Connector {
        table: table.name.clone(),
        reason: format!("option '{}' is required", keys.first().copied().unwrap_or_default()),
    })
}

/// A typed option (`None` when absent).
pub fn parse<T: FromStr>(table: &TableDef, keys: &[&str]) -> Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    match get(table, keys) {
        None => Ok(None),
        Some(v) => v.trim().parse::<T>().map(Some).map_err(|e| SqlError::Connector {
            table: table.name.clone(),
            reason: format!("option '{}' = '{v}': {e}", keys.first().copied().unwrap_or_default()),
        }),
    }
}

/// A connector error of `table`.
pub fn error(table: &TableDef, reason: impl Into<String>) -> SqlError {
    SqlError::Connector { table: table.name.clone(), reason: reason.into() }
}
