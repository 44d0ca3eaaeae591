//! [`FileSink`]: rows into part files of any format, exactly once, through the two-phase
//! commit protocol of riffle-api (`TwoPhaseCommitSink`).
//!
//! Lifecycle of a part file (Flink's names): `<dir>/<partition>/.part-<uuid>-<subtask>-<n>.inprogress`
//! while written; closed (footer written, fsynced) when the rolling policy says so or at the
//! checkpoint barrier at the latest, which makes it *pending*; renamed to
//! `<dir>/<partition>/part-<uuid>-<subtask>-<n>` (visible) when that checkpoint completes.
//! Readers that skip hidden files (`.`, `_`: pyarrow, Spark, Hive, Flink) see each record
//! once. `<uuid>` is drawn at a subtask's fresh start and kept in its transactions, so a
//! failover continues the same names and a new job never overwrites an old one's files.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::{Path as ObjectPath, PathPart};
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use riffle_api::error::UserError;
use riffle_api::sink::{Recovery, SinkContext, TwoPhaseCommitSink};
use riffle_api::Configuration;
use serde::{Deserialize, Serialize};

use super::commit::{self, CommitPolicy, CommitTracker, PendingPartition, Trigger};
use super::global_commit::{self, CommitMarker, MARKER_DIR};
use super::location::{parse_location, ObjectTarget, SinkLocation};
use super::options::{DEFAULT_PARTITION_NAME, PARTITION_BY, PATH};
use super::partition::Partitioner;
use super::rolling::{PartFileState, RollingPolicy};
use super::writers::PartWriters;
use crate::error::{ConnectorError, Result};
use crate::format::{self, Format};
use crate::rows::Rows;

/// A part file of a transaction: its partition directory (relative, `""` unpartitioned) and
/// its number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartFile {
    /// The partition's relative directory.
    pub partition: String,
    /// The part number, increasing per subtask across partitions.
    pub part: u64,
}

/// One checkpoint's worth of a subtask's output: names only, so a restore in another process
/// can commit or abort it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSinkTxn {
    /// The uuid in the file names.
    pub uuid: String,
    /// The subtask that writes it.
    pub subtask: u32,
    /// The transaction's sequence number in its subtask.
    pub seq: u64,
    /// The first part number it may use: the replay after a restore numbers from here.
    pub first_part: u64,
    /// Its part files.
    pub files: Vec<PartFile>,
    /// Partitions not committed yet when it was pre-committed (partition commit state).
    pub partitions: Vec<PendingPartition>,
    /// The watermark at its checkpoint barrier.
    pub watermark: Option<i64>,
}

/// Processing time in milliseconds; replaceable for tests.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

fn system_clock() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A validated file sink configuration, shared by the subtasks' sinks.
#[derive(Clone)]
pub struct FileSinkSpec {
    /// The local directory (for an object store: its URL, for messages only).
    dir: PathBuf,
    /// The object store, when not a local directory.
    object: Option<ObjectTarget>,
    format: Arc<dyn Format>,
    policy: RollingPolicy,
    partition_by: Vec<String>,
    default_name: String,
    commit: Option<CommitPolicy>,
    clock: Clock,
}

impl std::fmt::Debug for FileSinkSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSinkSpec")
            .field("dir", &self.dir)
            .field("format", &self.format.name())
            .field("policy", &self.policy)
            .field("partition_by", &self.partition_by)
            .field("commit", &self.commit)
            .finish_non_exhaustive()
    }
}

impl FileSinkSpec {
    /// The sink `config` describes: `path`, `format` and its options, `sink.rolling-policy.*`,
    /// `sink.partition-by`, `partition.*`, `sink.partition-commit.*`.
    pub fn from_config(config: &Configuration) -> Result<Self> {
        let path = config.get(&PATH)?.ok_or_else(|| riffle_api::ConfigError {
            key: PATH.key().into(),
            value: String::new(),
            reason: "the file sink needs a path".into(),
        })?;
        let (dir, object) = match parse_location(&path)? {
            SinkLocation::Local(dir) => (dir, None),
            SinkLocation::Object(t) => (PathBuf::from(&path), Some(t)),
        };
        let format = format::from_config(config)?;
        let partition_by: Vec<String> = config
            .get(&PARTITION_BY)?
            .map(|s| s.split(',').map(|c| c.trim().to_string()).filter(|c| !c.is_empty()).collect())
            .unwrap_or_default();
        let commit = CommitPolicy::from_config(config)?;
        if commit.is_some() && partition_by.is_empty() {
            return Err(riffle_api::ConfigError {
                key: "sink.partition-commit.policy.kind".into(),
                value: config.raw(&super::options::COMMIT_POLICY_KIND).unwrap_or_default().into(),
                reason: "partition commit needs partition columns (sink.partition-by)".into(),
            }
            .into());
        }
        Ok(Self {
            dir,
            object,
            format,
            policy: RollingPolicy::from_config(config)?,
            partition_by,
            default_name: config.get(&DEFAULT_PARTITION_NAME)?,
            commit,
            clock: Arc::new(system_clock),
        })
    }

    /// The same sink reading processing time from `clock` (milliseconds): for tests and
    /// simulations of rolling and partition commit.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The same sink writing into `store` under `prefix` (a store configured in code; part
    /// files are staged locally and uploaded whole when they close).
    pub fn with_object_store(mut self, store: Arc<dyn ObjectStore>, prefix: &str) -> Self {
        self.dir = PathBuf::from(format!("{store}/{prefix}"));
        self.object = Some(ObjectTarget { store, prefix: ObjectPath::from(prefix) });
        self
    }

    /// The base directory (for an object store, its name).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The partition columns.
    pub fn partition_by(&self) -> &[String] {
        &self.partition_by
    }
}

/// An open part file.
struct OpenPart {
    part: u64,
    written: Arc<AtomicU64>,
    created_ms: i64,
    last_write_ms: i64,
}

/// Writes [`Rows`] into part files of a format under a directory, partitioned by columns,
/// exactly once (see the [module docs](self)). One per sink subtask, driven by riffle-api's
/// `TwoPhaseCommitOperator`: build it with [`super::FileSinkExt`].
pub struct FileSink {
    spec: FileSinkSpec,
    uuid: String,
    subtask: u32,
    /// The sink's parallelism: above 1, partitions are committed across subtasks through
    /// commit markers ([`global_commit`]).
    parallelism: u32,
    /// Whether this instance wrote its commit marker already (a restore's commit does).
    marker_written: bool,
    /// During a restore: the watermark of the latest restored transaction of each former
    /// subtask, and the partitions they carried (one marker covers them all).
    restored_progress: BTreeMap<u32, Option<i64>>,
    restored_partitions: BTreeMap<String, PendingPartition>,
    next_part: u64,
    next_seq: u64,
    writers: Option<PartWriters>,
    partitioner: Option<Partitioner>,
    open: HashMap<String, OpenPart>,
    tracker: CommitTracker,
    watermark: Option<i64>,
    last_check_ms: i64,
    /// Partitions committed by restored transactions, with the transaction's number.
    recovered_commits: Vec<(String, u64)>,
    name: String,
    /// Where part files for an object store are encoded before their upload.
    staging: Option<PathBuf>,
}

/// A part file name parsed: `(uuid, subtask, part, in_progress)`.
pub(crate) fn parse_part_name(name: &str) -> Option<(&str, u32, u64, bool)> {
    let (rest, in_progress) = match name.strip_prefix(".part-").and_then(|r| r.strip_suffix(".inprogress")) {
        Some(r) => (r, true),
        None => (name.strip_prefix("part-")?, false),
    };
    let uuid = rest.get(..36)?;
    let (s, n) = rest.get(36..)?.strip_prefix('-')?.split_once('-')?;
    let (s, n): (u32, u64) = (s.parse().ok()?, n.parse().ok()?);
    let canonical = part_name(uuid, s, n, in_progress);
    (canonical == name).then_some((uuid, s, n, in_progress))
}

fn part_name(uuid: &str, subtask: u32, part: u64, in_progress: bool) -> String {
    if in_progress {
        format!(".part-{uuid}-{subtask}-{part}.inprogress")
    } else {
        format!("part-{uuid}-{subtask}-{part}")
    }
}

/// A fresh random uuid (std's randomly keyed hasher over the time, process and subtask).
fn random_uuid(subtask: u32) -> String {
    use std::hash::{BuildHasher, Hasher};
    let state = std::collections::hash_map::RandomState::new();
    let mut a = state.build_hasher();
    a.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    a.write_u32(std::process::id());
    a.write_u32(subtask);
    let hi = a.finish();
    let mut b = state.build_hasher();
    b.write_u64(hi);
    b.write_u8(0x5a);
    let lo = b.finish();
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        lo >> 48,
        lo & 0xffff_ffff_ffff
    )
}

fn io(path: &Path, e: std::io::Error) -> UserError {
    ConnectorError::io(path, e).into()
}

fn remove_if_exists(path: &Path) -> Result<(), UserError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(path, e)),
    }
}

/// Makes entries created, renamed or deleted in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), UserError> {
    #[cfg(unix)]
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io(dir, e))?;
    Ok(())
}

impl FileSink {
    /// The sink of one subtask (`name` names its writer thread).
    pub fn new(spec: FileSinkSpec, name: &str) -> Self {
        Self {
            spec,
            uuid: String::new(),
            subtask: 0,
            parallelism: 1,
            marker_written: false,
            restored_progress: BTreeMap::new(),
            restored_partitions: BTreeMap::new(),
            next_part: 0,
            next_seq: 0,
            writers: None,
            partitioner: None,
            open: HashMap::new(),
            tracker: CommitTracker::default(),
            watermark: None,
            last_check_ms: i64::MIN,
            recovered_commits: Vec::new(),
            name: name.to_string(),
            staging: None,
        }
    }

    /// The uuid in this subtask's file names.
    pub fn uuid(&self) -> &str {
        &self.uuid
    }

    /// Partitions written and not committed yet.
    pub fn pending_partitions(&self) -> usize {
        self.tracker.len()
    }

    fn partition_dir(&self, partition: &str) -> PathBuf {
        if partition.is_empty() {
            self.spec.dir.clone()
        } else {
            self.spec.dir.join(partition)
        }
    }

    fn in_progress_path(&self, uuid: &str, subtask: u32, f: &PartFile) -> PathBuf {
        self.partition_dir(&f.partition).join(part_name(uuid, subtask, f.part, true))
    }

    fn committed_path(&self, uuid: &str, subtask: u32, f: &PartFile) -> PathBuf {
        self.partition_dir(&f.partition).join(part_name(uuid, subtask, f.part, false))
    }

    /// `<prefix>/<partition>/<name>` in the object store (the partition's escaped segments
    /// as they are).
    fn object_path(target: &ObjectTarget, partition: &str, name: &str) -> Result<ObjectPath, UserError> {
        let mut p = target.prefix.clone();
        for seg in partition.split('/').filter(|s| !s.is_empty()).chain([name]) {
            let part = PathPart::parse(seg).map_err(|e| format!("cannot name the object '{seg}': {e}"))?;
            p = p.join(part);
        }
        Ok(p)
    }

    /// Runs an object store call on the writer thread.
    fn object_call<T, F>(&mut self, make: impl FnOnce() -> F + Send + 'static) -> Result<T, UserError>
    where
        T: Send + 'static,
        F: std::future::Future<Output = Result<T>>,
    {
        Ok(self.writers()?.block_on(make)?)
    }

    /// Where part `f` is encoded: its in-progress file, or for an object store its staging file.
    fn encode_path(&self, uuid: &str, subtask: u32, f: &PartFile) -> PathBuf {
        match &self.staging {
            Some(dir) => dir.join(format!("{}", f.part)),
            None => self.in_progress_path(uuid, subtask, f),
        }
    }

    fn writers(&mut self) -> Result<&PartWriters, UserError> {
        if self.writers.is_none() {
            self.writers = Some(PartWriters::start(self.spec.format.clone(), &self.name)?);
        }
        self.writers.as_ref().ok_or_else(|| "internal error: no writer thread".into())
    }

    /// Closes the open part file of `partition`: footer, flush, fsync. It stays pending
    /// until its transaction commits.
    fn close_part(&mut self, partition: &str) -> Result<(), UserError> {
        if let Some(p) = self.open.remove(partition) {
            self.writers()?.finish(p.part)?;
            if let Some(target) = self.spec.object.clone() {
                // Uploaded whole under its in-progress name: durable before the pre-commit ends.
                let f = PartFile { partition: partition.to_string(), part: p.part };
                let staged = self.encode_path(&self.uuid, self.subtask, &f);
                let name = part_name(&self.uuid, self.subtask, p.part, true);
                let to = Self::object_path(&target, partition, &name)?;
                let bytes = std::fs::read(&staged).map_err(|e| io(&staged, e))?;
                let store = target.store.clone();
                let where_ = to.clone();
                self.object_call(move || async move {
                    store
                        .put(&where_, PutPayload::from(bytes))
                        .await
                        .map(|_| ())
                        .map_err(|e| ConnectorError::io(where_.as_ref(), std::io::Error::other(e)))
                })?;
                remove_if_exists(&staged)?;
            }
        }
        Ok(())
    }

    /// Makes pending part files visible: a rename to the committed name (an already committed
    /// file counts as done).
    fn commit_files(&mut self, txn: &FileSinkTxn) -> Result<(), UserError> {
        if let Some(target) = self.spec.object.clone() {
            for f in &txn.files {
                let from = Self::object_path(&target, &f.partition, &part_name(&txn.uuid, txn.subtask, f.part, true))?;
                let to = Self::object_path(&target, &f.partition, &part_name(&txn.uuid, txn.subtask, f.part, false))?;
                let store = target.store.clone();
                self.object_call(move || async move {
                    let err = |e: object_store::Error| ConnectorError::io(to.as_ref(), std::io::Error::other(e));
                    match store.rename(&from, &to).await {
                        Ok(()) => Ok(()),
                        Err(object_store::Error::NotFound { .. }) => store.head(&to).await.map(|_| ()).map_err(err),
                        Err(e) => Err(err(e)),
                    }
                })?;
            }
            return Ok(());
        }
        for f in &txn.files {
            let (from, to) =
                (self.in_progress_path(&txn.uuid, txn.subtask, f), self.committed_path(&txn.uuid, txn.subtask, f));
            match std::fs::rename(&from, &to) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound && to.is_file() => {}
                Err(e) => return Err(format!("cannot commit '{}' to '{}': {e}", from.display(), to.display()).into()),
            }
        }
        self.sync_dirs(txn.files.iter().map(|f| f.partition.as_str()))
    }

    /// Deletes the part files the restore replays, in an object store: every in-progress
    /// object, and committed ones numbered from the aborted transaction on.
    fn clean_objects(&mut self, target: &ObjectTarget, aborted: &[FileSinkTxn]) -> Result<(), UserError> {
        let store = target.store.clone();
        let prefix = target.prefix.clone();
        let aborted = aborted.to_vec();
        self.object_call(move || async move {
            let err = |e: object_store::Error| ConnectorError::io(prefix.as_ref(), std::io::Error::other(e));
            let objects: Vec<_> = store.list(Some(&prefix)).try_collect().await.map_err(err)?;
            for o in objects {
                let Some(name) = o.location.filename() else { continue };
                let Some((uuid, s, n, in_progress)) = parse_part_name(name) else { continue };
                if aborted.iter().any(|t| t.uuid == uuid && t.subtask == s && (in_progress || n >= t.first_part)) {
                    match store.delete(&o.location).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                        Err(e) => return Err(err(e)),
                    }
                }
            }
            Ok(())
        })
    }

    /// Every part file of the base directory, recursively: `(directory, name)`.
    fn scan(&self) -> Result<Vec<(PathBuf, String)>, UserError> {
        let mut out = Vec::new();
        let mut dirs = vec![self.spec.dir.clone()];
        while let Some(d) = dirs.pop() {
            let entries = match std::fs::read_dir(&d) {
                Ok(e) => e,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(io(&d, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| io(&d, e))?;
                let ty = entry.file_type().map_err(|e| io(&entry.path(), e))?;
                let name = entry.file_name().to_string_lossy().to_string();
                if ty.is_dir() {
                    dirs.push(entry.path());
                } else if parse_part_name(&name).is_some() {
                    out.push((d.clone(), name));
                }
            }
        }
        Ok(out)
    }

    /// Syncs the directories of `files` and their ancestors up to the base directory.
    fn sync_dirs<'a>(&self, partitions: impl Iterator<Item = &'a str>) -> Result<(), UserError> {
        let mut dirs = BTreeSet::new();
        for p in partitions {
            let mut d = self.partition_dir(p);
            loop {
                dirs.insert(d.clone());
                if d == self.spec.dir || !d.pop() || !d.starts_with(&self.spec.dir) {
                    break;
                }
            }
        }
        for d in dirs.iter().rev() {
            sync_dir(d)?;
        }
        Ok(())
    }

    /// Whether partitions are committed across subtasks (a commit policy, parallelism > 1).
    fn coordinated(&self) -> bool {
        self.spec.commit.is_some() && self.parallelism > 1
    }

    /// Writes the success file into partition `path`.
    fn write_success(&mut self, policy: &CommitPolicy, path: &str) -> Result<(), UserError> {
        if let Some(target) = self.spec.object.clone() {
            let to = Self::object_path(&target, path, &policy.success_file)?;
            let store = target.store.clone();
            self.object_call(move || async move {
                store
                    .put(&to, PutPayload::new())
                    .await
                    .map(|_| ())
                    .map_err(|e| ConnectorError::io(to.as_ref(), std::io::Error::other(e)))
            })?;
        } else {
            let dir = self.partition_dir(path);
            std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
            let success = dir.join(&policy.success_file);
            std::fs::File::create(&success).and_then(|f| f.sync_all()).map_err(|e| io(&success, e))?;
            sync_dir(&dir)?;
        }
        Ok(())
    }

    /// Replaces this subtask's commit marker with `marker`, atomically: an object put, or a
    /// local write to a hidden temporary name and a rename (retried when another subtask
    /// removed the emptied marker directory meanwhile). Not fsynced: a marker lost in a crash
    /// only holds commits back until the subtask's next one.
    fn write_marker(&mut self, marker: &CommitMarker) -> Result<(), UserError> {
        let bytes = serde_json::to_vec(marker).map_err(|e| format!("cannot encode the commit marker: {e}"))?;
        let name = global_commit::marker_name(marker.subtask);
        if let Some(target) = self.spec.object.clone() {
            let to = Self::object_path(&target, MARKER_DIR, &name)?;
            let store = target.store.clone();
            return self.object_call(move || async move {
                store
                    .put(&to, PutPayload::from(bytes))
                    .await
                    .map(|_| ())
                    .map_err(|e| ConnectorError::io(to.as_ref(), std::io::Error::other(e)))
            });
        }
        let dir = self.spec.dir.join(MARKER_DIR);
        let tmp = dir.join(format!("_{name}.tmp"));
        let to = dir.join(&name);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let r = std::fs::create_dir_all(&dir)
                .and_then(|()| std::fs::write(&tmp, &bytes))
                .and_then(|()| std::fs::rename(&tmp, &to));
            match r {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == ErrorKind::NotFound && attempts < 5 => continue,
                Err(e) => return Err(io(&to, e)),
            }
        }
    }

    /// The commit markers of subtasks `0..parallelism` that exist and parse (an unreadable
    /// one counts as absent: the commit waits).
    fn read_markers(&mut self) -> Result<Vec<CommitMarker>, UserError> {
        let names: Vec<String> = (0..self.parallelism).map(global_commit::marker_name).collect();
        let raw: Vec<Option<Vec<u8>>> = if let Some(target) = self.spec.object.clone() {
            let paths =
                names.iter().map(|n| Self::object_path(&target, MARKER_DIR, n)).collect::<Result<Vec<_>, _>>()?;
            let store = target.store.clone();
            self.object_call(move || async move {
                let mut out = Vec::new();
                for p in paths {
                    let err = |e: object_store::Error| ConnectorError::io(p.as_ref(), std::io::Error::other(e));
                    match store.get(&p).await {
                        Ok(r) => out.push(Some(r.bytes().await.map_err(err)?.to_vec())),
                        Err(object_store::Error::NotFound { .. }) => out.push(None),
                        Err(e) => return Err(err(e)),
                    }
                }
                Ok(out)
            })?
        } else {
            let dir = self.spec.dir.join(MARKER_DIR);
            let mut out = Vec::new();
            for n in &names {
                let p = dir.join(n);
                match std::fs::read(&p) {
                    Ok(b) => out.push(Some(b)),
                    Err(e) if e.kind() == ErrorKind::NotFound => out.push(None),
                    Err(e) => return Err(io(&p, e)),
                }
            }
            out
        };
        Ok(raw.into_iter().flatten().filter_map(|b| serde_json::from_slice(&b).ok()).collect())
    }

    /// Deletes the commit markers of subtasks `from..` (after a rescale: `from` is the new
    /// parallelism; at the end of the job: 0), then the marker directory if it is empty.
    fn delete_markers(&mut self, from: u32) -> Result<(), UserError> {
        let stale =
            move |name: &str| name.strip_suffix(".json").and_then(|n| n.parse::<u32>().ok()).is_some_and(|s| s >= from);
        if let Some(target) = self.spec.object.clone() {
            let store = target.store.clone();
            let prefix = Self::object_path(&target, "", MARKER_DIR)?;
            return self.object_call(move || async move {
                let err = |e: object_store::Error| ConnectorError::io(prefix.as_ref(), std::io::Error::other(e));
                let objects: Vec<_> = store.list(Some(&prefix)).try_collect().await.map_err(err)?;
                for o in objects {
                    if o.location.filename().is_some_and(stale) {
                        match store.delete(&o.location).await {
                            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                            Err(e) => return Err(err(e)),
                        }
                    }
                }
                Ok(())
            });
        }
        let dir = self.spec.dir.join(MARKER_DIR);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(&dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| io(&dir, e))?;
            if stale(&entry.file_name().to_string_lossy()) {
                remove_if_exists(&entry.path())?;
            }
        }
        // Fails while another subtask's marker is there: then the directory stays.
        let _ = std::fs::remove_dir(&dir);
        Ok(())
    }

    /// Runs the partition commit policies for the partitions whose trigger fired once the
    /// files of `txn` are visible. With parallelism 1, the partitions `txn` carries, by its
    /// watermark and the processing time. Above, this subtask publishes its marker first and
    /// commits what [`global_commit::decide`] allows over every subtask's marker (`restoring`:
    /// called by a restore, before the pending partitions are restored into the tracker).
    fn commit_partitions(&mut self, txn: &FileSinkTxn, restoring: bool) -> Result<Vec<String>, UserError> {
        let Some(policy) = self.spec.commit.clone() else {
            return Ok(Vec::new());
        };
        let now = (self.spec.clock)();
        let ready: Vec<PendingPartition> = if self.coordinated() {
            let (partitions, watermark) = if restoring {
                // A restore may commit transactions of several former subtasks (a rescale):
                // their output is visible up to the least of their watermarks.
                self.restored_progress.insert(txn.subtask, txn.watermark);
                for p in &txn.partitions {
                    self.restored_partitions.insert(p.spec.path(), p.clone());
                }
                let committed: BTreeSet<&str> = self.recovered_commits.iter().map(|(q, _)| q.as_str()).collect();
                let partitions = self
                    .restored_partitions
                    .iter()
                    .filter(|(path, _)| !committed.contains(path.as_str()))
                    .map(|(_, p)| p.clone())
                    .collect();
                let watermark = self.restored_progress.values().try_fold(i64::MAX, |acc, w| w.map(|w| acc.min(w)));
                (partitions, watermark)
            } else {
                let partitions =
                    txn.partitions.iter().filter(|p| self.tracker.contains(&p.spec.path())).cloned().collect();
                (partitions, txn.watermark)
            };
            let marker = CommitMarker {
                subtask: self.subtask,
                parallelism: self.parallelism,
                uuid: txn.uuid.clone(),
                seq: Some(txn.seq),
                committed_ms: now,
                watermark,
                partitions,
            };
            self.write_marker(&marker)?;
            self.marker_written = true;
            let markers = self.read_markers()?;
            let ready = global_commit::decide(&policy, self.parallelism, &markers).unwrap_or_default();
            if global_commit::all_finished(self.parallelism, &markers) {
                for p in &ready {
                    self.write_success(&policy, &p.spec.path())?;
                }
                // Every subtask's output is visible and every partition committed.
                self.delete_markers(0)?;
                let done: Vec<String> = ready.iter().map(|p| p.spec.path()).collect();
                for path in &done {
                    self.tracker.committed(path, txn.seq);
                }
                return Ok(done);
            }
            ready
        } else {
            commit::ready(&policy, &txn.partitions, now, txn.watermark).into_iter().cloned().collect()
        };
        let mut done = Vec::new();
        for p in ready {
            let path = p.spec.path();
            self.write_success(&policy, &path)?;
            self.tracker.committed(&path, txn.seq);
            done.push(path);
        }
        Ok(done)
    }
}

impl TwoPhaseCommitSink<Rows> for FileSink {
    type Txn = FileSinkTxn;

    /// Creates the base directory and picks the names: after a restore, the uuid and
    /// numbering of this subtask's restored open transaction (the replay writes the same
    /// names again), otherwise a fresh uuid. Deletes what the failed attempt wrote after the
    /// restored checkpoint in every restored namespace: in-progress files, and part files
    /// committed at an end of input after that checkpoint (their records are replayed).
    /// Restores the partitions still to commit.
    fn initialize(&mut self, ctx: &SinkContext, recovery: &Recovery<FileSinkTxn>) -> Result<(), UserError> {
        self.subtask = ctx.subtask;
        self.parallelism = ctx.parallelism.max(1);
        if self.spec.object.is_none() {
            let dir = self.spec.dir.clone();
            std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
            if !std::fs::metadata(&dir).map_err(|e| io(&dir, e))?.is_dir() {
                return Err(format!("the sink's path '{}' is not a directory", dir.display()).into());
            }
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        match recovery.aborted.iter().find(|t| t.subtask == ctx.subtask) {
            Some(t) => {
                self.uuid = t.uuid.clone();
                self.next_part = t.first_part;
                self.next_seq = t.seq;
            }
            None => {
                self.uuid = random_uuid(ctx.subtask);
                self.next_part = 0;
                self.next_seq = 0;
            }
        }
        if let Some(target) = self.spec.object.clone() {
            let staging = std::env::temp_dir().join(format!("riffle-file-sink-{}-{}", self.uuid, ctx.subtask));
            std::fs::create_dir_all(&staging).map_err(|e| io(&staging, e))?;
            self.staging = Some(staging);
            if !recovery.aborted.is_empty() {
                self.clean_objects(&target, &recovery.aborted)?;
            }
        } else if !recovery.aborted.is_empty() {
            let files = self.scan()?;
            let mut touched = BTreeSet::new();
            for (d, name) in &files {
                let Some((uuid, s, n, in_progress)) = parse_part_name(name) else { continue };
                let replayed = recovery
                    .aborted
                    .iter()
                    .any(|t| t.uuid == uuid && t.subtask == s && (in_progress || n >= t.first_part));
                if replayed {
                    remove_if_exists(&d.join(name))?;
                    touched.insert(d.clone());
                }
            }
            for d in touched {
                sync_dir(&d)?;
            }
        }
        let mut restored = CommitTracker::default();
        for t in &recovery.committed {
            restored.restore(t.partitions.iter().cloned());
        }
        for (path, seq) in std::mem::take(&mut self.recovered_commits) {
            restored.committed(&path, seq);
        }
        // Transaction numbers order writes against commits in the tracker: continue above
        // every restored one (after a rescale they come from several former subtasks).
        let restored_seqs = recovery.committed.iter().chain(&recovery.aborted).map(|t| t.seq);
        let written_seqs = restored.snapshot().into_iter().map(|p| p.last_txn + 1);
        self.next_seq = restored_seqs.chain(written_seqs).chain([self.next_seq]).max().unwrap_or(0);
        self.tracker = restored;
        self.restored_progress.clear();
        self.restored_partitions.clear();
        if self.spec.commit.is_some() {
            if self.subtask == 0 {
                // Markers of subtasks beyond the parallelism come from before a rescale.
                self.delete_markers(self.parallelism)?;
            }
            if self.coordinated() && !self.marker_written {
                // Replaces what a former run or attempt left: nothing of this one is visible yet.
                let marker = CommitMarker {
                    subtask: self.subtask,
                    parallelism: self.parallelism,
                    uuid: self.uuid.clone(),
                    seq: None,
                    committed_ms: i64::MIN,
                    watermark: None,
                    partitions: self.tracker.snapshot(),
                };
                self.write_marker(&marker)?;
                self.marker_written = true;
            }
        }
        Ok(())
    }

    fn begin(&mut self, ctx: &SinkContext) -> Result<FileSinkTxn, UserError> {
        let txn = FileSinkTxn {
            uuid: self.uuid.clone(),
            subtask: ctx.subtask,
            seq: self.next_seq,
            first_part: self.next_part,
            files: Vec::new(),
            partitions: Vec::new(),
            watermark: None,
        };
        self.next_seq += 1;
        Ok(txn)
    }

    /// Splits the rows by partition and appends each part to its partition's open file
    /// (opened on first use), rolling files by the policy's time and size rules.
    fn write(&mut self, txn: &mut FileSinkTxn, rows: Rows, _: i64) -> Result<(), UserError> {
        if rows.num_rows() == 0 {
            return Ok(());
        }
        let now = (self.spec.clock)();
        if self.spec.policy.time_check_due(self.last_check_ms, now) {
            self.last_check_ms = now;
            let policy = self.spec.policy;
            let due: Vec<String> = self
                .open
                .iter()
                .filter(|(_, p)| {
                    let state = PartFileState {
                        created_ms: p.created_ms,
                        last_write_ms: p.last_write_ms,
                        size: p.written.load(Ordering::Relaxed),
                    };
                    policy.roll_on_time(&state, now)
                })
                .map(|(k, _)| k.clone())
                .collect();
            for k in due {
                self.close_part(&k)?;
            }
        }
        if self.partitioner.is_none() {
            self.partitioner = Some(Partitioner::new(rows.schema(), &self.spec.partition_by, &self.spec.default_name)?);
        }
        let Some(partitioner) = self.partitioner.as_ref() else {
            return Err("internal error: no partitioner".into());
        };
        let data_schema = partitioner.data_schema().clone();
        let parts = partitioner.split(rows.batch())?;
        for (spec, batch) in parts {
            let path = spec.path();
            if let Some(policy) = &self.spec.commit {
                let extractor = (policy.trigger == Trigger::PartitionTime).then_some(&policy.extractor);
                self.tracker.touch(&spec, txn.seq, now, extractor)?;
            }
            if !self.open.contains_key(&path) {
                let f = PartFile { partition: path.clone(), part: self.next_part };
                if self.staging.is_none() {
                    let dir = self.partition_dir(&path);
                    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
                }
                let file = self.encode_path(&txn.uuid, txn.subtask, &f);
                let written = self.writers()?.open(f.part, &file, data_schema.clone())?;
                self.next_part += 1;
                self.open.insert(path.clone(), OpenPart { part: f.part, written, created_ms: now, last_write_ms: now });
                txn.files.push(f);
            }
            let Some(open) = self.open.get_mut(&path) else {
                return Err("internal error: the part file is not open".into());
            };
            open.last_write_ms = now;
            let part = open.part;
            self.writers()?.write(part, batch)?;
            let state = self.open.get(&path).map(|p| PartFileState {
                created_ms: p.created_ms,
                last_write_ms: p.last_write_ms,
                size: p.written.load(Ordering::Relaxed),
            });
            if state.is_some_and(|s| self.spec.policy.roll_on_event(&s)) {
                self.close_part(&path)?;
            }
        }
        Ok(())
    }

    /// Closes every open part file (a checkpoint always rolls) and makes the files and their
    /// directory entries durable; notes the partitions still to commit and the watermark.
    fn pre_commit(&mut self, txn: &mut FileSinkTxn) -> Result<(), UserError> {
        let open: Vec<String> = self.open.keys().cloned().collect();
        for k in open {
            self.close_part(&k)?;
        }
        if self.spec.object.is_none() {
            self.sync_dirs(txn.files.iter().map(|f| f.partition.as_str()))?;
        }
        txn.partitions = self.tracker.snapshot();
        txn.watermark = self.watermark;
        Ok(())
    }

    /// Renames the pending files to their visible names (already renamed counts as done),
    /// then commits the partitions whose trigger fired (above parallelism 1: publishes this
    /// subtask's commit marker and commits what every subtask's markers allow).
    fn commit(&mut self, txn: FileSinkTxn) -> Result<(), UserError> {
        self.commit_files(&txn)?;
        self.commit_partitions(&txn, false)?;
        Ok(())
    }

    /// Commits like [`FileSink::commit`] and remembers the partitions it committed, so that
    /// `initialize` does not restore them as pending.
    fn recover_and_commit(&mut self, ctx: &SinkContext, txn: FileSinkTxn) -> Result<(), UserError> {
        self.subtask = ctx.subtask;
        self.parallelism = ctx.parallelism.max(1);
        self.commit_files(&txn)?;
        let done = self.commit_partitions(&txn, true)?;
        self.recovered_commits.extend(done.into_iter().map(|p| (p, txn.seq)));
        Ok(())
    }

    fn abort(&mut self, txn: FileSinkTxn) -> Result<(), UserError> {
        for f in &txn.files {
            if self.open.get(&f.partition).is_some_and(|p| p.part == f.part) {
                self.open.remove(&f.partition);
                if let Some(w) = &self.writers {
                    w.discard(f.part);
                }
            }
            match self.spec.object.clone() {
                None => remove_if_exists(&self.in_progress_path(&txn.uuid, txn.subtask, f))?,
                Some(target) => {
                    remove_if_exists(&self.encode_path(&txn.uuid, txn.subtask, f))?;
                    let path =
                        Self::object_path(&target, &f.partition, &part_name(&txn.uuid, txn.subtask, f.part, true))?;
                    let store = target.store.clone();
                    self.object_call(move || async move {
                        match store.delete(&path).await {
                            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                            Err(e) => Err(ConnectorError::io(path.as_ref(), std::io::Error::other(e))),
                        }
                    })?;
                }
            }
        }
        Ok(())
    }

    fn watermark(&mut self, watermark: i64) -> Result<(), UserError> {
        self.watermark = Some(self.watermark.map_or(watermark, |w| w.max(watermark)));
        Ok(())
    }
}

impl Drop for FileSink {
    /// Stops the writer thread, then deletes the staging directory of an object store sink
    /// (best effort: what is staged there is rewritten by the replay).
    fn drop(&mut self) {
        drop(self.writers.take());
        if let Some(dir) = self.staging.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[cfg(test)]
mod tests;
