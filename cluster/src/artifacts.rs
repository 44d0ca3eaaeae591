//! A TaskManager's cache of job artifacts (plugin libraries), content-addressed: a library is
//! stored once under its SHA-256, whatever its name and however many jobs use it, and fetched
//! from the JobManager only when the cache has no copy (FLINK-13938/17632: a TaskManager does
//! not need the JobManager's file system).

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::ClusterError;

/// The SHA-256 of `bytes`, as lowercase hex.
pub fn digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of a file's contents.
pub fn digest_of_file(path: &Path) -> std::io::Result<String> {
    Ok(digest(&std::fs::read(path)?))
}

/// Whether `location` names a remote artifact (a URL) rather than a file of the JobManager.
pub fn is_url(location: &str) -> bool {
    location.contains("://")
}

/// Reads the artifact at `url` through `object_store`. This build has its local file system
/// store (`file:///absolute/path`); other schemes need object_store's features for them and
/// are refused with a message saying so.
pub async fn fetch_url(url: &str) -> Result<Vec<u8>, ClusterError> {
    let Some(path) = url.strip_prefix("file://") else {
        let scheme = url.split("://").next().unwrap_or_default();
        return Err(ClusterError::Plugin(format!(
            "artifact '{url}': scheme '{scheme}' is not supported by this build (file:// is)"
        )));
    };
    if !path.starts_with('/') {
        return Err(ClusterError::Plugin(format!("artifact '{url}': a file:// URL needs an absolute path")));
    }
    riffle_actors::checkpoint_storage::get(Path::new(path))
        .await
        .map_err(|e| riffle_actors::RuntimeError::from(e).context(format!("artifact '{url}'")).into())
}

/// [`fetch_url`] for callers outside any async runtime (the command line).
pub fn fetch_url_blocking(url: &str) -> Result<Vec<u8>, ClusterError> {
    futures::executor::block_on(fetch_url(url))
}

/// Whether `d` looks like a digest this cache made (64 hex digits): anything else is never
/// used in a path.
fn valid(d: &str) -> bool {
    d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A directory of artifacts by digest.
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
}

impl ArtifactCache {
    /// A cache in `dir` (created on first store).
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The cache's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cached copy of the artifact with `digest`, if there is one and it still matches.
    pub fn get(&self, digest: &str) -> Option<PathBuf> {
        if !valid(digest) {
            return None;
        }
        let p = self.dir.join(format!("{digest}.so"));
        match digest_of_file(&p) {
            Ok(d) if d == digest => Some(p),
            _ => None,
        }
    }

    /// Stores `bytes` if their digest is `expected`; the cached path. A mismatch (a corrupt or
    /// wrong transfer) is refused and nothing is stored.
    pub fn put(&self, expected: &str, bytes: &[u8]) -> Result<PathBuf, ClusterError> {
        let got = digest(bytes);
        if !valid(expected) || got != expected {
            return Err(ClusterError::Plugin(format!("the artifact's digest is {got}, expected {expected}")));
        }
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| ClusterError::Io { what: format!("cannot create {}", self.dir.display()), source: e })?;
        let path = self.dir.join(format!("{got}.so"));
        let tmp = self.dir.join(format!(".{got}.{}.part", std::process::id()));
        let written = std::fs::File::create(&tmp).and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_all()));
        if let Err(e) = written.and_then(|_| std::fs::rename(&tmp, &path)) {
            let _ = std::fs::remove_file(&tmp);
            return Err(ClusterError::Io {
                what: format!("cannot store the artifact in {}", self.dir.display()),
                source: e,
            });
        }
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_are_stored_by_digest_and_refused_when_they_do_not_match() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ArtifactCache::new(dir.path().join("cache"));
        let d = digest(b"library bytes");
        assert!(cache.get(&d).is_none());
        let p = cache.put(&d, b"library bytes").unwrap();
        assert_eq!(cache.get(&d), Some(p.clone()));
        assert!(cache.put(&d, b"other bytes").unwrap_err().to_string().contains("expected"));
        assert!(cache.get("../../etc/passwd").is_none());
        // A cached copy that changed on disk is not used.
        std::fs::write(&p, b"tampered").unwrap();
        assert!(cache.get(&d).is_none());
    }
}
