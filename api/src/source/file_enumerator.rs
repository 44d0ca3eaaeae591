//! Which files a file source reads, and when: one split enumerator shared by every file source
//! (`read_text_file`'s lines and the connectors' formats), generic over how a file is cut into
//! splits ([`FileSplitter`]).
//!
//! Inputs are files, directories and globs:
//! - a file is read whatever its name;
//! - a directory stands for every file under it, nested directories included (Flink's
//!   `FileSource` enumerates recursively too), skipping files and directories whose name starts
//!   with `.` or `_` (Flink's default filter: hidden files, `_SUCCESS`, files being written);
//! - a glob (`*`, `?`, `[...]` in the path: `/data/*.csv`, `/logs/2026-*/part-*`) stands for what
//!   it matches, the same filter applied to each match's name (`*` never matches a leading `.`);
//!   a directory it matches stands for the files under it. A name holding one of those
//!   characters is written with it in brackets (`[[]1].csv` for `[1].csv`).
//!
//! Bounded mode (no [`MONITOR_INTERVAL`]): the inputs are listed once, when the enumerator is
//! created; a glob that matches nothing then is an error. Continuous mode: the inputs are
//! listed again at most every interval (when a reader asks for work), and each file not seen
//! before is cut into splits that are handed out exactly once. A file is known by its path: once
//! seen it is never read again, even if it grows or is rewritten (Flink's rule), so files must
//! appear whole — written under a hidden name (`.name.tmp`) and renamed. The paths seen and the
//! splits not yet handed out are the enumerator's checkpointed state, so after a failover or a
//! restore from a savepoint no file is read twice and none is missed.
//!
//! A file that disappears between discovery and reading fails the job with its name (its
//! reader cannot open it): a source never skips data silently.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{decode_enumerator_state, encode_enumerator_state, Assignment, Boundedness, Split, SplitEnumerator};
use crate::config::{ConfigOption, Group};
use crate::error::UserError;

/// Flink's `source.monitor-interval`: how often a file source looks for new files. Unset: the
/// source reads the files there when it starts, then ends.
pub const MONITOR_INTERVAL: ConfigOption<Option<Duration>> = ConfigOption::optional(
    Group::Pipeline,
    "source.monitor-interval",
    "how often a file source lists its inputs again for new files (continuous mode: the source never ends, each new file is read exactly once; a file already seen is never read again); unset: the files there at the start are read and the source ends",
);

/// Why a file source's inputs cannot be listed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// An input file or directory does not exist or cannot be read.
    #[error("cannot read input '{path}': {source}")]
    Unreadable {
        /// The input, or the directory under it that failed.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A glob does not parse.
    #[error("bad glob '{pattern}': {reason}")]
    BadGlob {
        /// The input as given.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A glob matches no file, for a source that reads only what is there now.
    #[error("the glob '{pattern}' matches no file")]
    NoMatch {
        /// The input as given.
        pattern: String,
    },
}

/// How a discovered file is cut into splits: what each file source brings.
pub trait FileSplitter<S>: Send + Sync + 'static {
    /// The splits of `path`, `len` bytes long when it was listed.
    fn split_file(&self, path: &Path, len: u64) -> Result<Vec<S>, UserError>;
}

/// A file source's inputs and whether it keeps looking for new files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDiscovery {
    inputs: Vec<PathBuf>,
    monitor: Option<Duration>,
}

/// Whether `name` is skipped in directories and glob matches (Flink's default file filter).
fn hidden(name: &std::ffi::OsStr) -> bool {
    name.to_string_lossy().starts_with(['.', '_'])
}

/// Whether an input is a glob rather than a path.
fn is_glob(input: &Path) -> bool {
    input.to_string_lossy().contains(['*', '?', '['])
}

impl FileDiscovery {
    /// Reads `inputs` (files, directories, globs) once.
    pub fn new(inputs: Vec<PathBuf>) -> Self {
        Self { inputs, monitor: None }
    }

    /// Lists the inputs again every `interval` (continuous mode); `None`: once (bounded).
    pub fn monitor_every(mut self, interval: Option<Duration>) -> Self {
        // A zero interval would list the directory at every request.
        self.monitor = interval.map(|i| i.max(Duration::from_millis(1)));
        self
    }

    /// The inputs as given.
    pub fn inputs(&self) -> &[PathBuf] {
        &self.inputs
    }

    /// How often the inputs are listed again; `None`: bounded.
    pub fn monitor_interval(&self) -> Option<Duration> {
        self.monitor
    }

    /// Bounded unless it keeps looking for new files.
    pub fn boundedness(&self) -> Boundedness {
        match self.monitor {
            Some(_) => Boundedness::Unbounded,
            None => Boundedness::Bounded,
        }
    }

    /// The inputs for display (names of sources, errors).
    pub fn describe(&self) -> String {
        self.inputs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    }

    /// Every file the inputs name now with its length, sorted by path, each once.
    pub fn scan(&self) -> Result<Vec<(PathBuf, u64)>, DiscoveryError> {
        let mut files = BTreeMap::new();
        for input in &self.inputs {
            if is_glob(input) {
                self.scan_glob(input, &mut files)?;
                continue;
            }
            let meta = std::fs::metadata(input)
                .map_err(|source| DiscoveryError::Unreadable { path: input.clone(), source })?;
            if meta.is_dir() {
                walk(input, &mut files)?;
            } else {
                files.insert(input.clone(), meta.len());
            }
        }
        Ok(files.into_iter().collect())
    }

    fn scan_glob(&self, input: &Path, files: &mut BTreeMap<PathBuf, u64>) -> Result<(), DiscoveryError> {
        let pattern = input.to_string_lossy().into_owned();
        let options = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: true,
        };
        let matches = glob::glob_with(&pattern, options)
            .map_err(|e| DiscoveryError::BadGlob { pattern: pattern.clone(), reason: e.to_string() })?;
        let before = files.len();
        for m in matches {
            let path = match m {
                Ok(p) => p,
                Err(e) => {
                    let path = e.path().to_path_buf();
                    return Err(DiscoveryError::Unreadable { path, source: e.into() });
                }
            };
            if path.file_name().is_some_and(hidden) {
                continue;
            }
            match std::fs::metadata(&path) {
                Ok(meta) if meta.is_dir() => walk(&path, files)?,
                Ok(meta) => {
                    files.insert(path, meta.len());
                }
                // Gone since the directory was listed: as if it never was there.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(DiscoveryError::Unreadable { path, source }),
            }
        }
        if files.len() == before && self.monitor.is_none() {
            return Err(DiscoveryError::NoMatch { pattern });
        }
        Ok(())
    }
}

/// Adds the files under `dir` (not hidden, nested directories too) to `files`.
fn walk(dir: &Path, files: &mut BTreeMap<PathBuf, u64>) -> Result<(), DiscoveryError> {
    let unreadable = |source| DiscoveryError::Unreadable { path: dir.to_path_buf(), source };
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let entry = entry.map_err(unreadable)?;
        if hidden(&entry.file_name()) {
            continue;
        }
        let path = entry.path();
        // Symbolic links are followed to files only, so a link to a parent cannot loop.
        let is_dir = entry.file_type().map_err(unreadable)?.is_dir();
        if is_dir {
            walk(&path, files)?;
            continue;
        }
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() => {
                files.insert(path, meta.len());
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(DiscoveryError::Unreadable { path, source }),
        }
    }
    Ok(())
}

/// What a file enumerator checkpoints.
#[derive(Serialize, Deserialize)]
struct EnumeratorState<S> {
    /// Every path discovered so far (never read again).
    seen: Vec<PathBuf>,
    /// Splits not handed out yet.
    pending: Vec<S>,
}

/// The file sources' enumerator: discovers files (once, or every interval), cuts each new one
/// into splits with `F`, hands them out one per request.
pub struct FileEnumerator<S, F> {
    discovery: FileDiscovery,
    splitter: Arc<F>,
    seen: BTreeSet<PathBuf>,
    pending: VecDeque<S>,
    /// Continuous mode: when the inputs are listed again.
    next_scan: Option<Instant>,
}

impl<S: Split, F: FileSplitter<S>> FileEnumerator<S, F> {
    /// An enumerator that has listed the inputs once (so a missing input or a glob matching
    /// nothing fails when the job starts).
    pub fn new(discovery: FileDiscovery, splitter: Arc<F>) -> Result<Self, UserError> {
        let mut e = Self::empty(discovery, splitter);
        e.discover()?;
        Ok(e)
    }

    /// An enumerator that has discovered nothing yet.
    pub fn empty(discovery: FileDiscovery, splitter: Arc<F>) -> Self {
        Self { discovery, splitter, seen: BTreeSet::new(), pending: VecDeque::new(), next_scan: None }
    }

    /// Lists the inputs and takes in the new files.
    fn discover(&mut self) -> Result<(), UserError> {
        let found = self.discovery.scan()?;
        self.add_files(found)?;
        self.next_scan = self.discovery.monitor_interval().map(|i| Instant::now() + i);
        Ok(())
    }

    /// Takes in the files of a listing: those not seen before are cut into splits queued
    /// behind the pending ones, in path order. Returns how many were new.
    pub fn add_files(&mut self, found: Vec<(PathBuf, u64)>) -> Result<usize, UserError> {
        let mut new = 0;
        for (path, len) in found {
            if self.seen.contains(&path) {
                continue;
            }
            let splits = self.splitter.split_file(&path, len)?;
            self.pending.extend(splits);
            self.seen.insert(path);
            new += 1;
        }
        Ok(new)
    }

    /// The splits not handed out yet, in the order they will be.
    pub fn pending(&self) -> impl Iterator<Item = &S> {
        self.pending.iter()
    }

    /// Every path discovered so far.
    pub fn seen(&self) -> impl Iterator<Item = &Path> {
        self.seen.iter().map(PathBuf::as_path)
    }
}

impl<S: Split, F: FileSplitter<S>> SplitEnumerator<S> for FileEnumerator<S, F> {
    fn handle_split_request(&mut self, _subtask: u32) -> Result<Assignment<S>, UserError> {
        if self.pending.is_empty() && self.next_scan.is_some_and(|t| Instant::now() >= t) {
            self.discover()?;
        }
        let split = self.pending.pop_front();
        // Continuous mode never ends: a reader with nothing asks again later.
        let no_more_splits = split.is_none() && self.discovery.monitor_interval().is_none();
        Ok(Assignment { splits: split.into_iter().collect(), no_more_splits })
    }

    fn add_splits_back(&mut self, splits: Vec<S>, _subtask: u32) {
        for s in splits.into_iter().rev() {
            self.pending.push_front(s);
        }
    }

    fn restore(&mut self, consumed: &[String]) {
        let consumed: std::collections::HashSet<&str> = consumed.iter().map(String::as_str).collect();
        self.pending.retain(|s| !consumed.contains(s.split_id().as_str()));
    }

    fn snapshot_state(&mut self) -> Result<Option<Vec<u8>>, UserError> {
        let state = EnumeratorState {
            seen: self.seen.iter().cloned().collect(),
            pending: self.pending.iter().cloned().collect(),
        };
        encode_enumerator_state(&state).map(Some)
    }

    fn restore_state(&mut self, state: &[u8]) -> Result<(), UserError> {
        let state: EnumeratorState<S> = decode_enumerator_state(state)?;
        self.seen = state.seen.into_iter().collect();
        self.pending = state.pending.into();
        // Files added while the job was down are found at the first request.
        if self.next_scan.is_some() {
            self.next_scan = Some(Instant::now());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits a file into `(path, piece)` pieces of 10 bytes.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    struct Piece(PathBuf, u64);

    impl Split for Piece {
        fn split_id(&self) -> String {
            format!("{}@{}", self.0.display(), self.1)
        }
    }

    struct Tens;

    impl FileSplitter<Piece> for Tens {
        fn split_file(&self, path: &Path, len: u64) -> Result<Vec<Piece>, UserError> {
            Ok((0..len.div_ceil(10).max(1)).map(|i| Piece(path.to_path_buf(), i * 10)).collect())
        }
    }

    fn touch(path: &Path, len: usize) {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(path, vec![b'x'; len]).unwrap();
    }

    fn names(dir: &Path, d: &FileDiscovery) -> Vec<String> {
        d.scan().unwrap().into_iter().map(|(p, _)| p.strip_prefix(dir).unwrap().display().to_string()).collect()
    }

    fn drain(e: &mut FileEnumerator<Piece, Tens>) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let a = e.handle_split_request(0).unwrap();
            if a.splits.is_empty() {
                return out;
            }
            out.extend(a.splits.iter().map(|s| s.split_id()));
        }
    }

    #[test]
    fn directories_recurse_skip_hidden_names_and_globs_select_exactly_their_matches() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for f in [
            "a.csv",
            "b.csv",
            "c.txt",
            ".hidden.csv",
            "_SUCCESS",
            ".tmp/x.csv",
            "_temporary/y.csv",
            "sub/d.csv",
            "sub/deeper/e.csv",
            "logs/2026-01/part-0",
            "logs/2026-01/part-1",
            "logs/2026-01/other",
            "logs/2025-12/part-0",
            "logs/2026-02/part-0",
        ] {
            touch(&d.join(f), 3);
        }
        let all = FileDiscovery::new(vec![d.to_path_buf()]);
        assert_eq!(
            names(d, &all),
            [
                "a.csv",
                "b.csv",
                "c.txt",
                "logs/2025-12/part-0",
                "logs/2026-01/other",
                "logs/2026-01/part-0",
                "logs/2026-01/part-1",
                "logs/2026-02/part-0",
                "sub/d.csv",
                "sub/deeper/e.csv"
            ]
        );
        let csv = FileDiscovery::new(vec![d.join("*.csv")]);
        assert_eq!(names(d, &csv), ["a.csv", "b.csv"]);
        let parts = FileDiscovery::new(vec![d.join("logs/2026-*/part-*")]);
        assert_eq!(names(d, &parts), ["logs/2026-01/part-0", "logs/2026-01/part-1", "logs/2026-02/part-0"]);
        // A glob matching a directory stands for the files under it; overlapping inputs list
        // a file once; a hidden file named explicitly is read.
        let mixed = FileDiscovery::new(vec![d.join("sub*"), d.join("sub/d.csv"), d.join(".hidden.csv")]);
        assert_eq!(names(d, &mixed), [".hidden.csv", "sub/d.csv", "sub/deeper/e.csv"]);
        // A name holding a glob character is named with it in brackets.
        touch(&d.join("[1].csv"), 3);
        assert_eq!(names(d, &FileDiscovery::new(vec![d.join("[[]1].csv")])), ["[1].csv"]);
    }

    #[test]
    fn bad_inputs_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let e = FileDiscovery::new(vec![missing.clone()]).scan().unwrap_err().to_string();
        assert_eq!(e, format!("cannot read input '{}': No such file or directory (os error 2)", missing.display()));
        let none = dir.path().join("*.csv");
        let e = FileDiscovery::new(vec![none.clone()]).scan().unwrap_err().to_string();
        assert_eq!(e, format!("the glob '{}' matches no file", none.display()));
        // Continuous mode: files may come later.
        let later = FileDiscovery::new(vec![none]).monitor_every(Some(Duration::from_secs(1)));
        assert_eq!(later.scan().unwrap(), vec![]);
        let e = FileDiscovery::new(vec![dir.path().join("[")]).scan().unwrap_err().to_string();
        assert!(e.starts_with("bad glob"), "{e}");
        let e = FileEnumerator::new(FileDiscovery::new(vec![missing]), Arc::new(Tens)).err().unwrap().to_string();
        assert!(e.contains("cannot read input"), "{e}");
    }

    #[test]
    fn only_new_paths_become_splits_and_bounded_mode_ends() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        touch(&a, 25);
        let discovery = FileDiscovery::new(vec![dir.path().to_path_buf()]);
        assert_eq!(discovery.boundedness(), Boundedness::Bounded);
        let mut e = FileEnumerator::new(discovery, Arc::new(Tens)).unwrap();
        let ids: Vec<String> = e.pending().map(Split::split_id).collect();
        let a_ = a.display();
        assert_eq!(ids, [format!("{a_}@0"), format!("{a_}@10"), format!("{a_}@20")]);
        // A file already seen is never split again, even grown; a new one is.
        let b = dir.path().join("b");
        assert_eq!(e.add_files(vec![(a.clone(), 1000), (b.clone(), 5)]).unwrap(), 1);
        assert_eq!(drain(&mut e).len(), 4);
        let last = e.handle_split_request(1).unwrap();
        assert!(last.splits.is_empty() && last.no_more_splits);
        // Splits given back are handed out first.
        e.add_splits_back(vec![Piece(b.clone(), 0)], 1);
        assert_eq!(drain(&mut e), [format!("{}@0", b.display())]);
    }

    #[test]
    fn continuous_mode_rescans_finds_each_new_file_once_and_never_ends() {
        let dir = tempfile::tempdir().unwrap();
        touch(&dir.path().join("a"), 5);
        let discovery = FileDiscovery::new(vec![dir.path().join("*")]).monitor_every(Some(Duration::from_millis(1)));
        assert_eq!(discovery.boundedness(), Boundedness::Unbounded);
        let mut e = FileEnumerator::new(discovery, Arc::new(Tens)).unwrap();
        assert_eq!(drain(&mut e).len(), 1);
        // Written atomically: a hidden name first, invisible until renamed.
        let tmp = dir.path().join(".b.tmp");
        touch(&tmp, 15);
        std::thread::sleep(Duration::from_millis(5));
        let a = e.handle_split_request(0).unwrap();
        assert!(a.splits.is_empty() && !a.no_more_splits);
        std::fs::rename(&tmp, dir.path().join("b")).unwrap();
        // Rewriting a seen file does not make it new.
        touch(&dir.path().join("a"), 50);
        std::thread::sleep(Duration::from_millis(5));
        let b = dir.path().join("b").display().to_string();
        assert_eq!(drain(&mut e), [format!("{b}@0"), format!("{b}@10")]);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(drain(&mut e), Vec::<String>::new());
    }

    #[test]
    fn state_round_trips_and_restore_drops_what_readers_hold() {
        let dir = tempfile::tempdir().unwrap();
        touch(&dir.path().join("a"), 30);
        let discovery =
            FileDiscovery::new(vec![dir.path().to_path_buf()]).monitor_every(Some(Duration::from_secs(3600)));
        let mut e = FileEnumerator::new(discovery.clone(), Arc::new(Tens)).unwrap();
        let first = e.handle_split_request(0).unwrap().splits;
        let state = e.snapshot_state().unwrap().unwrap();
        // After the snapshot, a split goes out and a new file arrives.
        let second = e.handle_split_request(0).unwrap().splits;
        touch(&dir.path().join("b"), 5);

        // Restored: a fresh enumerator (which listed the directory, b included) takes the
        // checkpoint's state, then drops what readers hold.
        let mut r = FileEnumerator::new(discovery, Arc::new(Tens)).unwrap();
        assert_eq!(r.pending().count(), 4);
        r.restore_state(&state).unwrap();
        let seen: Vec<&Path> = r.seen().collect();
        assert_eq!(seen, [dir.path().join("a").as_path()]);
        let held: Vec<String> = first.iter().chain(&second).map(Split::split_id).collect();
        r.restore(&held);
        let a = dir.path().join("a").display().to_string();
        let b = dir.path().join("b").display().to_string();
        // The rest of a, then b (found at the first request after the restore), each once.
        assert_eq!(drain(&mut r), [format!("{a}@20"), format!("{b}@0")]);
        // A corrupt state is an error, not a panic.
        assert!(r.restore_state(b"\xc1").is_err());
    }
}
