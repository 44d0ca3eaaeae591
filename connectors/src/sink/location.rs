//! Where a file sink writes: a local directory (a path or a `file://` URL), or an object
//! store (`s3://`, `gs://`, `az://` with the crate features `s3`, `gcs`, `azure`, or any
//! `ObjectStore` handed to the builder).
//!
//! Local part files are written, fsynced and renamed with `std::fs`: the exactly-once protocol
//! needs an atomic rename from the in-progress name to the visible one and control over
//! fsync, which a local file system gives directly. An object store has no append and no
//! atomic rename: a part file is encoded into a local staging file, uploaded whole under its
//! in-progress name when it closes (durable before the checkpoint's pre-commit ends), and
//! copied to its visible name when the checkpoint completes (object_store's rename: copy and
//! delete; a repeated commit finds the visible object).

use std::path::PathBuf;
use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;
use riffle_api::ConfigError;

use super::options::PATH;
use crate::error::{ConnectorError, Result};

/// Schemes of object stores and the crate feature that builds their client.
const OBJECT_STORES: &[(&str, &str)] = &[
    ("s3", "s3"),
    ("s3a", "s3"),
    ("gs", "gcs"),
    ("az", "azure"),
    ("adl", "azure"),
    ("azure", "azure"),
    ("abfs", "azure"),
    ("abfss", "azure"),
];

fn bad(value: &str, reason: impl Into<String>) -> ConnectorError {
    ConfigError { key: PATH.key().into(), value: value.into(), reason: reason.into() }.into()
}

/// An object store and the prefix under which the sink writes.
#[derive(Clone)]
pub struct ObjectTarget {
    /// The store.
    pub store: Arc<dyn ObjectStore>,
    /// The base "directory" in it.
    pub prefix: ObjectPath,
}

impl std::fmt::Debug for ObjectTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at '{}'", self.store, self.prefix)
    }
}

/// What `path` names.
#[derive(Debug, Clone)]
pub enum SinkLocation {
    /// A local directory.
    Local(PathBuf),
    /// An object store.
    Object(ObjectTarget),
}

/// Whether the client of crate feature `feature` is built.
// With every feature on, each arm is `true` and clippy would fold them into `matches!`.
#[allow(clippy::match_like_matches_macro)]
fn feature_enabled(feature: &str) -> bool {
    match feature {
        "s3" => cfg!(feature = "s3"),
        "gcs" => cfg!(feature = "gcs"),
        "azure" => cfg!(feature = "azure"),
        _ => false,
    }
}

/// The location `path` names: a plain path or `file://` URL (percent-decoded, no host), or an
/// object store URL whose client is built. Errors for an empty path, a NUL byte, object
/// stores without their feature, and other schemes.
pub fn parse_location(path: &str) -> Result<SinkLocation> {
    if path.trim().is_empty() {
        return Err(bad(path, "the sink's path is empty"));
    }
    if path.contains('\0') {
        return Err(bad(path, "the sink's path contains a NUL byte"));
    }
    let Some((scheme, _)) = path.split_once("://") else {
        return Ok(SinkLocation::Local(PathBuf::from(path)));
    };
    let scheme = scheme.to_ascii_lowercase();
    if scheme == "file" {
        let url = url::Url::parse(path).map_err(|e| bad(path, format!("not a file URL: {e}")))?;
        return url
            .to_file_path()
            .map(SinkLocation::Local)
            .map_err(|()| bad(path, "a file URL needs an absolute path and no host"));
    }
    let Some((_, feature)) = OBJECT_STORES.iter().find(|(s, _)| *s == scheme) else {
        return Err(bad(path, format!("unknown scheme `{scheme}://` (a local path, file://, s3://, gs:// or az://)")));
    };
    if !feature_enabled(feature) {
        return Err(bad(
            path,
            format!("`{scheme}://` needs riffle-connectors built with the `{feature}` feature (not in this build)"),
        ));
    }
    let url = url::Url::parse(path).map_err(|e| bad(path, format!("not a URL: {e}")))?;
    #[cfg(feature = "cloud")]
    install_crypto_provider();
    let (store, prefix) = object_store::parse_url(&url).map_err(|e| bad(path, e.to_string()))?;
    Ok(SinkLocation::Object(ObjectTarget { store: Arc::from(store), prefix }))
}

/// Installs rustls's ring provider for this process, once: reqwest is built with rustls and no
/// provider of its own (see Cargo.toml); another part of the process may have installed it.
#[cfg(feature = "cloud")]
fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The local directory `path` names (errors for object stores).
pub fn local_dir(path: &str) -> Result<PathBuf> {
    match parse_location(path)? {
        SinkLocation::Local(p) => Ok(p),
        SinkLocation::Object(_) => Err(bad(path, "not a local directory")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_file_urls() {
        assert_eq!(local_dir("/tmp/out").unwrap(), PathBuf::from("/tmp/out"));
        assert_eq!(local_dir("out/dir").unwrap(), PathBuf::from("out/dir"));
        assert_eq!(local_dir("file:///tmp/out").unwrap(), PathBuf::from("/tmp/out"));
        assert_eq!(local_dir("file:///tmp/a%20b").unwrap(), PathBuf::from("/tmp/a b"));
        assert_eq!(local_dir("FILE:///tmp/x").unwrap(), PathBuf::from("/tmp/x"));
    }

    #[test]
    fn object_stores_need_their_feature() {
        for (p, feature) in [
            ("s3://bucket/out", "s3"),
            ("gs://bucket/out", "gcs"),
            ("abfss://container@account.dfs.core.windows.net/out", "azure"),
        ] {
            match parse_location(p) {
                Ok(SinkLocation::Object(t)) => {
                    assert!(feature_enabled(feature), "{p}");
                    assert_eq!(t.prefix.as_ref(), "out");
                }
                Ok(SinkLocation::Local(_)) => panic!("{p} is not local"),
                Err(e) => {
                    assert!(!feature_enabled(feature), "{p}: {e}");
                    assert!(e.to_string().contains(&format!("`{feature}` feature")), "{e}");
                }
            }
        }
    }

    #[test]
    fn refused_with_a_reason() {
        for (p, why) in [
            ("", "empty"),
            ("a\0b", "NUL"),
            ("file://host/tmp", "no host"),
            ("http://host/out", "unknown scheme"),
            ("ftp://x/y", "unknown scheme"),
        ] {
            let e = local_dir(p).unwrap_err().to_string();
            assert!(e.contains(why), "{p:?}: {e}");
        }
    }
}
