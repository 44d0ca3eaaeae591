//! The spillable heap's cold store: one file per (state, key group) in the store's directory.
//!
//! A file is written whole when its key group is spilled and read whole when the group is
//! loaded again, so plain sequential I/O is all it needs. Layout: records of
//! `[key length u32 LE][value length u32 LE][key][value]`, then a CRC32 (LE) of the records,
//! so that a truncated or damaged file is an error rather than silently lost state.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::{ColdEntry, ColdStore};
use crate::keyed::StateError;

/// Spill files under one directory (owned and removed by the store, not by this type).
pub(crate) struct SpillFiles {
    dir: PathBuf,
}

impl SpillFiles {
    /// Spill files in `dir`, which must exist.
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn path(&self, table: usize, group: u32) -> PathBuf {
        self.dir.join(format!("t{table}-g{group}.spill"))
    }
}

fn io_err(path: &Path, reason: impl ToString) -> StateError {
    StateError::Io { path: path.to_path_buf(), reason: reason.to_string() }
}

fn len_u32(path: &Path, n: usize) -> Result<[u8; 4], StateError> {
    u32::try_from(n).map(u32::to_le_bytes).map_err(|_| io_err(path, format!("an entry of {n} bytes is too large")))
}

impl ColdStore for SpillFiles {
    fn put_group(&mut self, table: usize, group: u32, entries: &[ColdEntry]) -> Result<(), StateError> {
        let path = self.path(table, group);
        if entries.is_empty() {
            // Nothing to keep: a stale file of an earlier spill must not come back.
            return match fs::remove_file(&path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io_err(&path, e)),
            };
        }
        let size: usize = entries.iter().map(|(k, v)| 8 + k.len() + v.len()).sum();
        let mut buf = Vec::with_capacity(size + 4);
        for (k, v) in entries {
            buf.extend_from_slice(&len_u32(&path, k.len())?);
            buf.extend_from_slice(&len_u32(&path, v.len())?);
            buf.extend_from_slice(k);
            buf.extend_from_slice(v);
        }
        let crc = crc32fast::hash(&buf);
        buf.extend_from_slice(&crc.to_le_bytes());
        let mut f = fs::File::create(&path).map_err(|e| io_err(&path, e))?;
        f.write_all(&buf).map_err(|e| io_err(&path, e))
    }

    fn read_group(&self, table: usize, group: u32) -> Result<Vec<ColdEntry>, StateError> {
        let path = self.path(table, group);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&path, e)),
        };
        let corrupt = || io_err(&path, "corrupt or truncated spill file (checksum mismatch)");
        let body_len = bytes.len().checked_sub(4).ok_or_else(corrupt)?;
        let (body, crc) = bytes.split_at(body_len);
        if crc32fast::hash(body).to_le_bytes() != crc {
            return Err(corrupt());
        }
        let mut out = Vec::new();
        let mut rest = body;
        while !rest.is_empty() {
            let (header, tail) = rest.split_at_checked(8).ok_or_else(corrupt)?;
            let mut word = [0u8; 4];
            word.copy_from_slice(&header[..4]);
            let klen = u32::from_le_bytes(word) as usize;
            word.copy_from_slice(&header[4..]);
            let vlen = u32::from_le_bytes(word) as usize;
            let (k, tail) = tail.split_at_checked(klen).ok_or_else(corrupt)?;
            let (v, tail) = tail.split_at_checked(vlen).ok_or_else(corrupt)?;
            out.push((k.to_vec(), v.to_vec()));
            rest = tail;
        }
        Ok(out)
    }

    fn discard_group(&mut self, table: usize, group: u32) -> Result<(), StateError> {
        let path = self.path(table, group);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_round_trip_and_corruption_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SpillFiles::new(dir.path().to_path_buf());
        let entries = vec![(b"k1".to_vec(), b"value one".to_vec()), (Vec::new(), b"".to_vec())];
        s.put_group(0, 7, &entries).unwrap();
        assert_eq!(s.read_group(0, 7).unwrap(), entries);
        assert!(s.read_group(1, 7).unwrap().is_empty(), "another table, nothing kept");
        // Damage the file: reading it is an I/O error naming the file.
        let path = s.path(0, 7);
        let mut bytes = fs::read(&path).unwrap();
        bytes[3] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(s.read_group(0, 7), Err(StateError::Io { path: p, .. }) if p == path));
        // An empty group leaves no file behind.
        s.put_group(0, 7, &[]).unwrap();
        assert!(!path.exists());
        s.put_group(0, 8, &entries).unwrap();
        s.discard_group(0, 8).unwrap();
        s.discard_group(0, 8).unwrap();
        assert!(s.read_group(0, 8).unwrap().is_empty());
    }
}
