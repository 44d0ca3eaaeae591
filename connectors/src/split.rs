//! Splits and positions: how one file is cut so that several readers share it, and where a
//! reader of a split stands so that it can come back there after a failure.
//!
//! A split is a range of a file in the unit its format cuts at:
//! - text formats (lines, CSV, JSON) and Avro: a byte range `[start, end)`. A reader starts at
//!   the first record *beginning* at or after `start` (the next line start; Avro: the next
//!   block after a sync marker) and reads every record that begins before `end`, so each record
//!   is read by exactly one split whatever the split size;
//! - Parquet: row groups `[start, end)`; ORC: stripes `[start, end)`.

use std::path::{Path, PathBuf};

/// How large a byte-range split is (text, CSV, JSON, Avro): the same key as `read_text_file`'s,
/// declared once in riffle-api.
pub use riffle_api::source::text::SPLIT_SIZE;

/// What a split's `start` and `end` count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum SplitUnit {
    /// Byte offsets in the file.
    Bytes,
    /// Parquet row groups.
    RowGroups,
    /// ORC stripes.
    Stripes,
}

/// One piece of one file, read by one reader.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct FileSplit {
    /// The file.
    pub path: PathBuf,
    /// The first byte, row group or stripe (inclusive).
    pub start: u64,
    /// The end (exclusive).
    pub end: u64,
    /// What `start` and `end` count.
    pub unit: SplitUnit,
}

impl FileSplit {
    /// A split of `path` over `[start, end)` counted in `unit`.
    pub fn new(path: impl Into<PathBuf>, start: u64, end: u64, unit: SplitUnit) -> Self {
        Self { path: path.into(), start, end, unit }
    }

    /// A stable id naming the file and the range (what a split enumerator keys splits by).
    pub fn id(&self) -> String {
        let unit = match self.unit {
            SplitUnit::Bytes => "bytes",
            SplitUnit::RowGroups => "row-groups",
            SplitUnit::Stripes => "stripes",
        };
        format!("{}:{unit}:{}-{}", self.path.display(), self.start, self.end)
    }
}

/// Where a reader of a split stands: the next record it will return. Restored by seeking, so a
/// reader never reads its split again from the start.
///
/// - text formats: `offset` is the byte offset of the next line, `row` is 0;
/// - Avro: `offset` is the byte offset of a block (just after a sync marker), `row` the
///   records of that block already returned;
/// - Parquet: `offset` is a row group, ORC: a stripe; `row` the rows of it already returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
pub struct Position {
    /// A byte offset, row group or stripe (see the type's documentation).
    pub offset: u64,
    /// Records already returned from there.
    pub row: u64,
}

impl Position {
    /// The position `offset` + `row`.
    pub fn new(offset: u64, row: u64) -> Self {
        Self { offset, row }
    }

    /// Moves `n` rows on through consecutive units (Parquet row groups, ORC stripes) whose
    /// row counts are `rows`, the first being unit `first`; then past units with no row left.
    pub(crate) fn advance_units(&mut self, mut n: u64, first: u64, rows: &[u64]) {
        while n > 0 {
            let Some(&in_unit) = rows.get((self.offset - first) as usize) else { return };
            let left = in_unit - self.row;
            if n < left {
                self.row += n;
                return;
            }
            n -= left;
            *self = Position::new(self.offset + 1, 0);
        }
        self.skip_empty_units(first, rows);
    }

    /// Moves past units (see [`Position::advance_units`]) with no row left to read.
    pub(crate) fn skip_empty_units(&mut self, first: u64, rows: &[u64]) {
        while let Some(&in_unit) = rows.get((self.offset - first) as usize) {
            if self.row < in_unit {
                break;
            }
            *self = Position::new(self.offset + 1, 0);
        }
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}+{}", self.offset, self.row)
    }
}

/// `[0, len)` cut into byte ranges of `split_size` (the last one shorter). An empty file has
/// one empty split, so that it is still opened (and its header, if any, checked). A split size
/// of 0 counts as 1.
pub fn byte_range_splits(path: &Path, len: u64, split_size: u64) -> Vec<FileSplit> {
    let size = split_size.max(1);
    if len == 0 {
        return vec![FileSplit::new(path, 0, 0, SplitUnit::Bytes)];
    }
    let mut out = Vec::with_capacity(len.div_ceil(size) as usize);
    let mut start = 0;
    while start < len {
        let end = start.saturating_add(size).min(len);
        out.push(FileSplit::new(path, start, end, SplitUnit::Bytes));
        start = end;
    }
    out
}

/// `[0, count)` units (row groups, stripes) cut into splits of `per_split` units each (at
/// least one). A file with none has no split.
pub fn unit_splits(path: &Path, count: u64, per_split: u64, unit: SplitUnit) -> Vec<FileSplit> {
    let per = per_split.max(1);
    let mut out = Vec::new();
    let mut start = 0;
    while start < count {
        let end = start.saturating_add(per).min(count);
        out.push(FileSplit::new(path, start, end, unit));
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_ranges_cover_the_file_once() {
        let p = Path::new("/f");
        let s = byte_range_splits(p, 10, 4);
        let ranges: Vec<_> = s.iter().map(|s| (s.start, s.end)).collect();
        assert_eq!(ranges, [(0, 4), (4, 8), (8, 10)]);
        assert_eq!(byte_range_splits(p, 0, 4).len(), 1);
        assert_eq!(byte_range_splits(p, 3, 0).len(), 3);
        assert_eq!(s[1].id(), "/f:bytes:4-8");
        let u = unit_splits(p, 5, 2, SplitUnit::RowGroups);
        assert_eq!(u.iter().map(|s| (s.start, s.end)).collect::<Vec<_>>(), [(0, 2), (2, 4), (4, 5)]);
        assert!(unit_splits(p, 0, 2, SplitUnit::Stripes).is_empty());
    }
}
