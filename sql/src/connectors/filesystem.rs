//! `'connector' = 'filesystem'` (FLIP-115): placeholder, filled below.

use super::TableConnector;

/// Flink's filesystem connector on riffle-connectors' `FileSource` and `FileSink`.
pub struct Filesystem;

impl TableConnector for Filesystem {
    fn name(&self) -> &str {
        "filesystem"
    }
}
