//! Flink's DDL and its other non-query statements on top of sqlparser: `CREATE TABLE` with
//! computed, metadata and watermark elements (`create_table.rs`), and the helpers for words
//! sqlparser has no keyword for (`words.rs`).

pub mod create_table;
pub mod hints;
pub mod words;

pub use create_table::{parse_create_table, CreateTable};
