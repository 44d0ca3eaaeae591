//! Job artifacts (plugin libraries): where they can be named from, how remote ones are fetched,
//! and the content-addressed caches they are kept in (FLINK-13938/17632: a TaskManager does not
//! need the JobManager's file system, and a job can be run straight from a remote artifact).
//!
//! An artifact is named by a *location*:
//! - a path, or a `file:///absolute/path` URL: a library file, or a directory of libraries
//!   (see [`libraries_in`]);
//! - an `http://` or `https://` URL: one library, fetched with object_store's HTTP client
//!   (reqwest over rustls with the ring provider), at most `blob.fetch.max-size` bytes within
//!   `blob.fetch.timeout`.
//!
//! A fetched library is stored once under its SHA-256 ([`ArtifactCache`]), whatever its name and
//! however many jobs or slots use it. A URL fetched by a JobManager or the command line is also
//! remembered (`urls/<SHA-256 of the URL>` holds the library's digest), so a second run or a
//! restarted process with the same `blob.storage.directory` does not ask the server again: a
//! URL is taken to name immutable content (publish a new version under a new URL). A TaskManager
//! is told the digest with the job, so it looks in its own cache first and fetches the URL only
//! when it has no copy; a library that is not at a URL comes from the JobManager over the link.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::Duration;

use riffle_api::{ConfigOption, Configuration, ErrorDomain, Group, MemorySize, OptionInfo};
use sha2::{Digest, Sha256};

use crate::error::ClusterError;

/// `blob.fetch.max-size`.
pub const FETCH_MAX_SIZE: ConfigOption<MemorySize> = ConfigOption::new(
    Group::Processes,
    "blob.fetch.max-size",
    MemorySize::gib(1),
    "largest plugin library fetched from an http:// or https:// URL; a larger one is refused",
);

/// `blob.fetch.timeout`.
pub const FETCH_TIMEOUT: ConfigOption<Duration> = ConfigOption::new(
    Group::Processes,
    "blob.fetch.timeout",
    Duration::from_secs(120),
    "longest time fetching one plugin library from an http:// or https:// URL may take, connecting included",
);

/// The options of artifact fetching (the cache's directory is `blob.storage.directory`).
pub(crate) const OPTIONS: &[&dyn OptionInfo] = &[&FETCH_MAX_SIZE, &FETCH_TIMEOUT];

/// Longest wait for a connection, within the fetch's timeout: an unreachable host is reported
/// soon, a slow download may take the whole timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an artifact could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The location is not a URL this build can fetch.
    #[error("artifact '{url}': {reason}")]
    BadUrl {
        /// The location as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The server answered with an error status.
    #[error("artifact '{url}': the server answered HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The HTTP status code.
        status: u16,
    },
    /// The server could not be reached, or the connection broke.
    #[error("artifact '{url}': {reason}")]
    Unreachable {
        /// The URL.
        url: String,
        /// What failed, and the innermost cause (the client's error chain repeats itself).
        reason: String,
    },
    /// The artifact is larger than `blob.fetch.max-size`.
    #[error("artifact '{url}': it is larger than blob.fetch.max-size ({limit} bytes)")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit, in bytes.
        limit: u64,
    },
    /// The fetch took longer than `blob.fetch.timeout`.
    #[error("artifact '{url}': not fetched within blob.fetch.timeout ({timeout:?})")]
    TimedOut {
        /// The URL.
        url: String,
        /// The timeout.
        timeout: Duration,
    },
}

impl FetchError {
    /// Where the error comes from: a bad URL, a missing artifact (4xx) or one over the limit
    /// are the user's; an unreachable or failing server (5xx) and a timeout the environment's.
    pub fn domain(&self) -> ErrorDomain {
        match self {
            FetchError::BadUrl { .. } | FetchError::TooLarge { .. } => ErrorDomain::User,
            FetchError::Status { status, .. } if *status < 500 && *status != 408 && *status != 429 => ErrorDomain::User,
            FetchError::Status { .. } | FetchError::Unreachable { .. } | FetchError::TimedOut { .. } => {
                ErrorDomain::External
            }
        }
    }

    /// Whether the same fetch may succeed later: network failures may.
    pub fn is_retryable(&self) -> bool {
        self.domain() == ErrorDomain::External
    }
}

/// How much and how long a fetch may take (`blob.fetch.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchLimits {
    /// Largest artifact, in bytes.
    pub max_size: u64,
    /// Longest fetch.
    pub timeout: Duration,
}

impl Default for FetchLimits {
    fn default() -> Self {
        Self { max_size: FETCH_MAX_SIZE.default_value().as_bytes() as u64, timeout: FETCH_TIMEOUT.default_value() }
    }
}

impl FetchLimits {
    /// Reads `blob.fetch.*`.
    pub fn from_config(c: &Configuration) -> Result<Self, ClusterError> {
        Ok(Self { max_size: c.get(&FETCH_MAX_SIZE)?.as_bytes() as u64, timeout: c.get(&FETCH_TIMEOUT)? })
    }
}

/// Where a JobManager (or the command line) keeps the artifacts it fetched, and its limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchSettings {
    /// The cache's directory (`blob.storage.directory`; default `<temp>/riffle-artifacts`, the
    /// same for every process of the machine, so that a restart reuses it).
    pub cache_dir: PathBuf,
    /// Size and time limits.
    pub limits: FetchLimits,
}

impl Default for FetchSettings {
    fn default() -> Self {
        Self { cache_dir: std::env::temp_dir().join("riffle-artifacts"), limits: FetchLimits::default() }
    }
}

impl FetchSettings {
    /// Reads `blob.storage.directory` and `blob.fetch.*`.
    pub fn from_config(c: &Configuration) -> Result<Self, ClusterError> {
        Ok(Self {
            cache_dir: c.get(&crate::taskmanager::BLOB_STORAGE_DIRECTORY)?.unwrap_or_else(|| Self::default().cache_dir),
            limits: FetchLimits::from_config(c)?,
        })
    }
}

static PROCESS_SETTINGS: RwLock<Option<FetchSettings>> = RwLock::new(None);

/// Sets the settings of this process's fetches (the `riffle` binary does, from its
/// configuration, before it builds any job); used by loaders made without settings of their own.
pub fn configure_process(settings: FetchSettings) {
    *PROCESS_SETTINGS.write().unwrap_or_else(|e| e.into_inner()) = Some(settings);
}

/// This process's fetch settings: [`configure_process`]'s, or the defaults.
pub fn process_settings() -> FetchSettings {
    PROCESS_SETTINGS.read().unwrap_or_else(|e| e.into_inner()).clone().unwrap_or_default()
}

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

/// Where an artifact is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A file or directory of this machine (a path, or a `file://` URL's path).
    Local(PathBuf),
    /// An `http://` or `https://` URL.
    Http(String),
}

/// Parses a location: a path, `file:///absolute/path`, `http://...` or `https://...`; any other
/// scheme, a relative `file://` path, or an HTTP URL that is not one are refused.
pub fn parse_location(location: &str) -> Result<Location, FetchError> {
    let bad = |reason: String| FetchError::BadUrl { url: location.to_string(), reason };
    let Some((scheme, rest)) = location.split_once("://") else {
        return Ok(Location::Local(PathBuf::from(location)));
    };
    match scheme.to_ascii_lowercase().as_str() {
        "file" if rest.starts_with('/') => Ok(Location::Local(PathBuf::from(rest))),
        "file" => Err(bad("a file:// URL needs an absolute path (file:///path)".into())),
        "http" | "https" => {
            let uri: http::Uri = location.parse().map_err(|e| bad(format!("not a valid URL ({e})")))?;
            if uri.host().is_none_or(str::is_empty) {
                return Err(bad("the URL names no host".into()));
            }
            Ok(Location::Http(location.to_string()))
        }
        other => Err(bad(format!("scheme '{other}' is not supported (file://, http:// and https:// are)"))),
    }
}

/// Installs rustls's ring provider for this process, once: reqwest is built with rustls and no
/// provider of its own (see Cargo.toml), and the REST server may have installed it already.
fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// An HTTP client error in a few words: what failed and its innermost cause.
fn describe(e: &object_store::client::HttpError) -> String {
    use object_store::client::HttpErrorKind;
    let what = match e.kind() {
        HttpErrorKind::Connect => "cannot connect",
        HttpErrorKind::Timeout => "timed out",
        HttpErrorKind::Decode => "cannot read the answer",
        _ => "the transfer failed",
    };
    let mut innermost: &dyn std::error::Error = e;
    while let Some(next) = innermost.source() {
        innermost = next;
    }
    format!("{what}: {innermost}")
}

/// Fetches an `http://` or `https://` URL: its body, within `limits`. Needs a tokio runtime
/// with I/O and timers (actix's has them).
pub async fn fetch_http(url: &str, limits: &FetchLimits) -> Result<Vec<u8>, FetchError> {
    use futures::StreamExt;
    use object_store::client::{ClientOptions, HttpConnector, HttpError, HttpRequestBody, ReqwestConnector};

    install_crypto_provider();
    let bad = |reason: String| FetchError::BadUrl { url: url.to_string(), reason };
    let unreachable = |e: HttpError| FetchError::Unreachable { url: url.to_string(), reason: describe(&e) };
    let too_large = || FetchError::TooLarge { url: url.to_string(), limit: limits.max_size };
    let options = ClientOptions::new()
        .with_allow_http(true)
        .with_timeout(limits.timeout)
        .with_connect_timeout(limits.timeout.min(CONNECT_TIMEOUT));
    let client = ReqwestConnector::default()
        .connect(&options)
        .map_err(|e| bad(format!("cannot make an HTTP client for it ({e})")))?;
    let request =
        http::Request::get(url).body(HttpRequestBody::empty()).map_err(|e| bad(format!("not a valid URL ({e})")))?;
    let download = async {
        let response = client.execute(request).await.map_err(unreachable)?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Status { url: url.to_string(), status: status.as_u16() });
        }
        let announced = response
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if announced.is_some_and(|n| n > limits.max_size) {
            return Err(too_large());
        }
        let mut bytes = Vec::with_capacity(announced.unwrap_or(0) as usize);
        let mut body = response.into_body().bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(unreachable)?;
            if (bytes.len() + chunk.len()) as u64 > limits.max_size {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    };
    tokio::time::timeout(limits.timeout, download)
        .await
        .unwrap_or_else(|_| Err(FetchError::TimedOut { url: url.to_string(), timeout: limits.timeout }))
}

/// Reads the library at `url` (a remote artifact of a job): over HTTP for `http://` and
/// `https://`, from this machine's files for `file://`; within `limits` either way.
pub async fn fetch_url(url: &str, limits: &FetchLimits) -> Result<Vec<u8>, ClusterError> {
    match parse_location(url)? {
        Location::Http(url) => Ok(fetch_http(&url, limits).await?),
        Location::Local(path) => {
            let meta = std::fs::metadata(&path)
                .map_err(|e| ClusterError::Io { what: format!("artifact '{url}': cannot read it"), source: e })?;
            if !meta.is_file() {
                return Err(ClusterError::Plugin(format!("artifact '{url}' is not a file")));
            }
            if meta.len() > limits.max_size {
                return Err(FetchError::TooLarge { url: url.to_string(), limit: limits.max_size }.into());
            }
            riffle_actors::checkpoint_storage::get(&path)
                .await
                .map_err(|e| riffle_actors::RuntimeError::from(e).context(format!("artifact '{url}'")).into())
        }
    }
}

/// Runs `f` to its end on a thread and runtime of its own: fetching works the same from the
/// command line (no runtime), a blocking pool's thread or an actor's thread.
fn block_on_own_runtime<T: Send>(f: impl std::future::Future<Output = T> + Send) -> Result<T, ClusterError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| {
                ClusterError::Io { what: "cannot start a runtime to fetch an artifact".into(), source: e }
            })?;
            Ok(runtime.block_on(f))
        })
        .join()
        .map_err(|_| ClusterError::Unavailable("fetching an artifact panicked".into()))?
    })
}

/// A remote artifact made local: the cached copy and its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The library in the cache.
    pub path: PathBuf,
    /// Its SHA-256.
    pub digest: String,
}

/// Makes the `http://` or `https://` artifact at `url` local: from the cache if this URL was
/// fetched into it before (the server is not asked), fetched and stored otherwise. Blocks.
pub fn fetch_into_cache(url: &str, settings: &FetchSettings) -> Result<Fetched, ClusterError> {
    let cache = ArtifactCache::new(settings.cache_dir.clone());
    if let Some(hit) = cache.remembered(url) {
        tracing::debug!(url, path = %hit.path.display(), "remote artifact found in the cache");
        return Ok(hit);
    }
    let limits = settings.limits;
    let bytes = block_on_own_runtime(fetch_url(url, &limits))??;
    let digest = digest(&bytes);
    let path = cache.put(&digest, &bytes)?;
    cache.remember(url, &digest)?;
    tracing::info!(url, path = %path.display(), bytes = bytes.len(), "remote artifact fetched into the cache");
    Ok(Fetched { path, digest })
}

/// The file name suffix of a library on this platform (`.so` on Linux).
pub const LIBRARY_SUFFIX: &str = std::env::consts::DLL_SUFFIX;

/// The libraries of a directory artifact: every regular file directly in `dir` whose name ends
/// in [`LIBRARY_SUFFIX`] and does not start with `.`, in byte order of their names.
/// Subdirectories and every other file are ignored; a directory with no library is an error.
pub fn libraries_in(dir: &Path) -> Result<Vec<PathBuf>, ClusterError> {
    let read = std::fs::read_dir(dir)
        .map_err(|e| ClusterError::Io { what: format!("cannot list the directory {}", dir.display()), source: e })?;
    let mut libraries = Vec::new();
    for entry in read {
        let entry = entry.map_err(|e| ClusterError::Io {
            what: format!("cannot list the directory {}", dir.display()),
            source: e,
        })?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') || !name.ends_with(LIBRARY_SUFFIX) {
            continue;
        }
        // Follows links: a link to a library counts as one.
        if std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file()) {
            libraries.push(entry.path());
        }
    }
    if libraries.is_empty() {
        return Err(ClusterError::Plugin(format!(
            "the directory {} holds no plugin library (no *{LIBRARY_SUFFIX} file)",
            dir.display()
        )));
    }
    libraries.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(libraries)
}

/// Whether `d` looks like a digest this cache made (64 hex digits): anything else is never
/// used in a path.
fn valid(d: &str) -> bool {
    d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Writes `bytes` to `path` through a temporary file and a rename, so that a reader never sees
/// a partial file.
fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("artifact");
    // Unique per process and call: two threads storing the same artifact never share one.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}-{n}.part", std::process::id()));
    let written = std::fs::File::create(&tmp).and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_all()));
    let renamed = written.and_then(|_| std::fs::rename(&tmp, path));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    renamed
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
        let path = self.dir.join(format!("{got}.so"));
        write_atomically(&self.dir, &path, bytes).map_err(|e| ClusterError::Io {
            what: format!("cannot store the artifact in {}", self.dir.display()),
            source: e,
        })?;
        Ok(path)
    }

    /// Where the digest of what `url` served is remembered.
    fn url_entry(&self, url: &str) -> PathBuf {
        self.dir.join("urls").join(digest(url.as_bytes()))
    }

    /// The cached copy of what `url` served when it was fetched into this cache, if it is still
    /// there and intact.
    pub fn remembered(&self, url: &str) -> Option<Fetched> {
        let digest = std::fs::read_to_string(self.url_entry(url)).ok()?;
        let digest = digest.trim();
        self.get(digest).map(|path| Fetched { path, digest: digest.to_string() })
    }

    /// Remembers that `url` served the artifact with `digest`.
    pub fn remember(&self, url: &str, digest: &str) -> Result<(), ClusterError> {
        let entry = self.url_entry(url);
        let dir = self.dir.join("urls");
        write_atomically(&dir, &entry, digest.as_bytes()).map_err(|e| ClusterError::Io {
            what: format!("cannot store the artifact in {}", dir.display()),
            source: e,
        })
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
        // A URL is remembered with its digest, and only while its copy is intact.
        assert!(cache.remembered("http://h/x.so").is_none());
        cache.remember("http://h/x.so", &d).unwrap();
        assert_eq!(cache.remembered("http://h/x.so"), Some(Fetched { path: p.clone(), digest: d.clone() }));
        assert!(cache.remembered("http://h/y.so").is_none());
        // A cached copy that changed on disk is not used.
        std::fs::write(&p, b"tampered").unwrap();
        assert!(cache.get(&d).is_none());
        assert!(cache.remembered("http://h/x.so").is_none());
    }

    #[test]
    fn locations() {
        assert_eq!(parse_location("lib/x.so").unwrap(), Location::Local("lib/x.so".into()));
        assert_eq!(parse_location("file:///a/x.so").unwrap(), Location::Local("/a/x.so".into()));
        assert_eq!(parse_location("http://h:80/x.so").unwrap(), Location::Http("http://h:80/x.so".into()));
        assert_eq!(parse_location("HTTPS://h/x.so").unwrap(), Location::Http("HTTPS://h/x.so".into()));
        for (bad, why) in [
            ("file://a/x.so", "absolute path"),
            ("s3://bucket/x.so", "scheme 's3' is not supported"),
            ("http:///x.so", "not a valid URL"),
            ("http://h /x.so", "not a valid URL"),
        ] {
            let e = parse_location(bad).unwrap_err();
            assert!(e.to_string().contains(why), "{bad}: {e}");
            assert_eq!((e.domain(), e.is_retryable()), (ErrorDomain::User, false));
        }
    }

    #[test]
    fn fetch_errors_say_whose_they_are() {
        let status = |status| FetchError::Status { url: "u".into(), status };
        assert_eq!(status(404).domain(), ErrorDomain::User);
        assert!(!status(404).is_retryable());
        assert!(status(503).is_retryable());
        assert!(status(429).is_retryable());
        let late = FetchError::TimedOut { url: "u".into(), timeout: Duration::from_secs(1) };
        assert_eq!((late.domain(), late.is_retryable()), (ErrorDomain::External, true));
        let big = FetchError::TooLarge { url: "u".into(), limit: 1 };
        assert_eq!((big.domain(), big.is_retryable()), (ErrorDomain::User, false));
    }

    #[test]
    fn a_directory_artifact_is_its_libraries_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        assert!(libraries_in(dir.path()).unwrap_err().to_string().contains("holds no plugin library"));
        for f in ["b.so", "a.so", "README.txt", ".hidden.so", "c.so.txt"] {
            std::fs::write(dir.path().join(f), b"x").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub.so")).unwrap();
        let names: Vec<String> = libraries_in(dir.path())
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.so", "b.so"]);
        assert!(libraries_in(&dir.path().join("missing")).is_err());
    }
}
