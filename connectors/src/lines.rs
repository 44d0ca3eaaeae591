//! Lines of a byte range of a file: the splitting rule of every line-based format (text, CSV,
//! JSON). A line belongs to the split its first byte is in: a reader of `[start, end)` skips to
//! the first line starting at or after `start` (unless `start` is 0) and reads every line that
//! starts before `end`, reading past `end` to finish the last one. Over any cut of a file into
//! ranges, each line is read exactly once, in order.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::{ConnectorError, Result};

/// Lines read from a file in one piece: their bytes (with terminators) and where each starts.
#[derive(Debug, Default, Clone)]
pub struct LineChunk {
    /// The lines' bytes as in the file, terminators included.
    pub bytes: Vec<u8>,
    /// Where each line starts in `bytes`.
    pub starts: Vec<usize>,
    /// The file offset of `bytes[0]`.
    pub offset: u64,
}

impl LineChunk {
    /// The number of lines.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Whether there is no line.
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Line `i` with its terminator (`\n` or `\r\n`), as the file has it.
    pub fn raw_line(&self, i: usize) -> &[u8] {
        let end = self.starts.get(i + 1).copied().unwrap_or(self.bytes.len());
        &self.bytes[self.starts[i]..end]
    }

    /// Line `i` without its terminator.
    pub fn line(&self, i: usize) -> &[u8] {
        let mut l = self.raw_line(i);
        if let Some(rest) = l.strip_suffix(b"\n") {
            l = rest;
            if let Some(rest) = l.strip_suffix(b"\r") {
                l = rest;
            }
        }
        l
    }

    /// The file offset line `i` starts at.
    pub fn line_offset(&self, i: usize) -> u64 {
        self.offset + self.starts[i] as u64
    }

    /// The file offset just after the last line.
    pub fn end_offset(&self) -> u64 {
        self.offset + self.bytes.len() as u64
    }
}

/// Reads the lines of one split of a file, chunk by chunk.
#[derive(Debug)]
pub struct LineReader {
    path: PathBuf,
    file: BufReader<File>,
    /// The offset of the next line to read.
    offset: u64,
    end: u64,
    done: bool,
}

impl LineReader {
    /// The lines of `path` starting in `[start, end)`.
    pub fn open(path: &Path, start: u64, end: u64) -> Result<Self> {
        let file = File::open(path).map_err(|e| ConnectorError::io(path, e))?;
        let mut file = BufReader::with_capacity(256 * 1024, file);
        let mut offset = 0;
        if start > 0 {
            // A line starts at `start` only if the byte before it ends a line.
            file.seek(SeekFrom::Start(start - 1)).map_err(|e| ConnectorError::io(path, e))?;
            let skipped = file.skip_until(b'\n').map_err(|e| ConnectorError::io(path, e))?;
            offset = start - 1 + skipped as u64;
        }
        Ok(Self { path: path.to_path_buf(), file, offset, end, done: false })
    }

    /// The lines of `path` from `line_start` (which must be the start of a line, as a
    /// [`LineReader::offset`] was) to the end of the split at `end`.
    pub fn open_at(path: &Path, line_start: u64, end: u64) -> Result<Self> {
        let file = File::open(path).map_err(|e| ConnectorError::io(path, e))?;
        let mut file = BufReader::with_capacity(256 * 1024, file);
        file.seek(SeekFrom::Start(line_start)).map_err(|e| ConnectorError::io(path, e))?;
        Ok(Self { path: path.to_path_buf(), file, offset: line_start, end, done: false })
    }

    /// The offset of the next line this reader returns.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads up to `max_lines` lines (at least one if any is left, and fewer once `max_bytes`
    /// are read) into `chunk`, replacing what it held. `false` when the split has no line
    /// left.
    pub fn read_chunk(&mut self, max_lines: usize, max_bytes: usize, chunk: &mut LineChunk) -> Result<bool> {
        chunk.bytes.clear();
        chunk.starts.clear();
        chunk.offset = self.offset;
        self.read_more(max_lines, max_bytes, chunk)?;
        Ok(!chunk.starts.is_empty())
    }

    /// Appends up to `max_lines` more lines to `chunk` (at least one if any is left, fewer once
    /// `chunk` holds `max_bytes`): a record that spans lines is completed this way. Returns how
    /// many lines were added.
    pub fn read_more(&mut self, max_lines: usize, max_bytes: usize, chunk: &mut LineChunk) -> Result<usize> {
        let before = chunk.starts.len();
        while !self.done
            && chunk.starts.len() - before < max_lines.max(1)
            && (chunk.starts.len() == before || chunk.bytes.len() < max_bytes)
        {
            if self.offset >= self.end {
                self.done = true;
                break;
            }
            let at = chunk.bytes.len();
            let n = self.file.read_until(b'\n', &mut chunk.bytes).map_err(|e| ConnectorError::io(&self.path, e))?;
            if n == 0 {
                self.done = true;
                break;
            }
            chunk.starts.push(at);
            self.offset += n as u64;
        }
        Ok(chunk.starts.len() - before)
    }
}

/// The 1-based number of the line starting at `offset` of `path` (the newlines before it, plus
/// one). Counted only when an error is reported, so readers of later splits need not count
/// the lines before them.
pub fn line_number(path: &Path, offset: u64) -> Result<u64> {
    let file = File::open(path).map_err(|e| ConnectorError::io(path, e))?;
    let mut rest = file.take(offset);
    let mut buf = vec![0u8; 64 * 1024];
    let mut newlines = 0u64;
    loop {
        let n = rest.read(&mut buf).map_err(|e| ConnectorError::io(path, e))?;
        if n == 0 {
            return Ok(newlines + 1);
        }
        newlines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn read_split(path: &Path, start: u64, end: u64, max_lines: usize) -> Vec<(u64, Vec<u8>)> {
        let mut r = LineReader::open(path, start, end).unwrap();
        let mut chunk = LineChunk::default();
        let mut out = Vec::new();
        while r.read_chunk(max_lines, 1 << 20, &mut chunk).unwrap() {
            for i in 0..chunk.len() {
                out.push((chunk.line_offset(i), chunk.line(i).to_vec()));
            }
        }
        out
    }

    fn lines_of(bytes: &[u8]) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        let mut start = 0;
        while start < bytes.len() {
            let end = memchr::memchr(b'\n', &bytes[start..]).map_or(bytes.len(), |i| start + i + 1);
            let l = &bytes[start..end];
            let l = match l.strip_suffix(b"\n") {
                Some(l) => l.strip_suffix(b"\r").unwrap_or(l),
                None => l,
            };
            out.push((start as u64, l.to_vec()));
            start = end;
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
        /// Any file, any split size: the splits' lines together are the file's lines, each
        /// once, in order.
        #[test]
        fn every_line_is_read_exactly_once_across_splits(
            content in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'\r'), Just(b'a'), Just(b'b'), any::<u8>()], 0..300),
            split_size in 1u64..80,
            max_lines in 1usize..5,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("f.txt");
            std::fs::write(&path, &content).unwrap();
            let mut got = Vec::new();
            for s in crate::split::byte_range_splits(&path, content.len() as u64, split_size) {
                got.extend(read_split(&path, s.start, s.end, max_lines));
            }
            prop_assert_eq!(got, lines_of(&content));
        }
    }

    #[test]
    fn line_numbers_and_reopening_at_an_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.txt");
        std::fs::write(&path, b"one\r\ntwo\nthree").unwrap();
        assert_eq!(line_number(&path, 0).unwrap(), 1);
        assert_eq!(line_number(&path, 5).unwrap(), 2);
        assert_eq!(line_number(&path, 9).unwrap(), 3);
        let mut r = LineReader::open(&path, 0, 14).unwrap();
        let mut chunk = LineChunk::default();
        assert!(r.read_chunk(1, 100, &mut chunk).unwrap());
        assert_eq!(chunk.line(0), b"one");
        assert_eq!(r.offset(), 5);
        let rest = {
            let mut r = LineReader::open_at(&path, r.offset(), 14).unwrap();
            let mut out = Vec::new();
            while r.read_chunk(8, 100, &mut chunk).unwrap() {
                out.extend((0..chunk.len()).map(|i| chunk.line(i).to_vec()));
            }
            out
        };
        assert_eq!(rest, [b"two".to_vec(), b"three".to_vec()]);
    }
}
