//! Where a file sink writes: a local directory, given as a path or a `file://` URL.
//!
//! Part files are written, fsynced and renamed with `std::fs`: the exactly-once protocol
//! needs an atomic rename from the in-progress name to the visible one and control over
//! fsync, which a local file system gives directly. Object stores (`s3://`, `gs://`, `az://`)
//! have neither rename nor in-place append and need a different commit (multipart uploads
//! completed at commit time); they are refused with that reason until that exists.

use std::path::PathBuf;

use riffle_api::ConfigError;

use super::options::PATH;
use crate::error::{ConnectorError, Result};

/// Schemes of object stores, recognised to refuse them with a clear reason.
const OBJECT_STORES: &[&str] = &["s3", "s3a", "gs", "az", "adl", "azure", "abfs", "abfss", "http", "https"];

fn bad(value: &str, reason: impl Into<String>) -> ConnectorError {
    ConfigError { key: PATH.key().into(), value: value.into(), reason: reason.into() }.into()
}

/// The local directory `path` names: a plain path, or a `file://` URL (percent-decoded, no
/// host). Errors for an empty path, a NUL byte, other URL schemes and relative URLs.
pub fn local_dir(path: &str) -> Result<PathBuf> {
    if path.trim().is_empty() {
        return Err(bad(path, "the sink's path is empty"));
    }
    if path.contains('\0') {
        return Err(bad(path, "the sink's path contains a NUL byte"));
    }
    let Some((scheme, _)) = path.split_once("://") else {
        return Ok(PathBuf::from(path));
    };
    let scheme = scheme.to_ascii_lowercase();
    if scheme == "file" {
        let url = url::Url::parse(path).map_err(|e| bad(path, format!("not a file URL: {e}")))?;
        return url.to_file_path().map_err(|()| bad(path, "a file URL needs an absolute path and no host"));
    }
    if OBJECT_STORES.contains(&scheme.as_str()) {
        return Err(bad(
            path,
            format!("the file sink writes local directories only; `{scheme}://` object stores are not supported yet"),
        ));
    }
    Err(bad(path, format!("unknown scheme `{scheme}://` (a local path or file:// URL)")))
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
    fn refused_with_a_reason() {
        for (p, why) in [
            ("", "empty"),
            ("a\0b", "NUL"),
            ("file://host/tmp", "no host"),
            ("s3://bucket/out", "not supported yet"),
            ("gs://bucket/out", "not supported yet"),
            ("ftp://x/y", "unknown scheme"),
        ] {
            let e = local_dir(p).unwrap_err().to_string();
            assert!(e.contains(why), "{p:?}: {e}");
        }
    }
}
