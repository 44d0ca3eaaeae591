//! The REST server's settings, from Flink's key names where Flink has one.

use std::path::PathBuf;

use riffle_api::Configuration;

use crate::error::WebError;

/// `rest.*`, `log.dir` and `security.ssl.rest.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestConfig {
    /// `rest.bind-address` (default `127.0.0.1`: nothing is exposed beyond this machine
    /// unless asked for).
    pub bind_address: String,
    /// `rest.bind-port`, else `rest.port` (default 8081; 0 picks a free port).
    pub port: u16,
    /// `rest.auth.token`: when set, every API request needs `Authorization: Bearer <token>`.
    pub auth_token: Option<String>,
    /// `rest.server.max-content-length` in bytes (default 100 MiB, Flink's).
    pub max_content_length: usize,
    /// `log.dir`: the files the logs pages list and serve.
    pub log_dir: Option<PathBuf>,
    /// `security.ssl.rest.enabled` with `security.ssl.rest.cert` and `.key` (PEM files).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `web.refresh-interval`, ms (default 3000).
    pub refresh_interval_ms: u64,
    /// `web.submit.enable` (default true).
    pub web_submit: bool,
    /// `web.upload.dir`: where uploaded plugins are kept (default: a directory of this
    /// process under the system's temp directory).
    pub upload_dir: PathBuf,
}

impl RestConfig {
    /// Reads the settings; a malformed value is refused naming its key.
    pub fn from_config(c: &Configuration) -> Result<Self, WebError> {
        let bad = |e: riffle_api::config::ConfigError| WebError::Config(e.to_string());
        let port = match c.get_str("rest.bind-port") {
            Some(_) => c.get::<u16>("rest.bind-port", 8081).map_err(bad)?,
            None => c.get::<u16>("rest.port", 8081).map_err(bad)?,
        };
        let tls =
            if c.get("security.ssl.rest.enabled", false).map_err(bad)? {
                let cert = c.get_str("security.ssl.rest.cert");
                let key = c.get_str("security.ssl.rest.key");
                match (cert, key) {
                    (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
                    _ => return Err(WebError::Config(
                        "security.ssl.rest.enabled needs security.ssl.rest.cert and security.ssl.rest.key (PEM files)"
                            .into(),
                    )),
                }
            } else {
                None
            };
        let max = match c.get_str("rest.server.max-content-length") {
            Some(v) => v.trim().parse::<usize>().map_err(|_| {
                WebError::Config(format!("rest.server.max-content-length: '{v}' is not a number of bytes"))
            })?,
            None => 100 << 20,
        };
        Ok(Self {
            bind_address: c.get_str("rest.bind-address").unwrap_or("127.0.0.1").to_string(),
            port,
            auth_token: c.get_str("rest.auth.token").filter(|t| !t.is_empty()).map(str::to_string),
            max_content_length: max,
            log_dir: c.get_str("log.dir").map(PathBuf::from),
            tls,
            refresh_interval_ms: c.get("web.refresh-interval", 3000u64).map_err(bad)?,
            web_submit: c.get("web.submit.enable", true).map_err(bad)?,
            upload_dir: c
                .get_str("web.upload.dir")
                .map(PathBuf::from)
                .unwrap_or_else(|| std::env::temp_dir().join(format!("riffle-web-upload-{}", std::process::id()))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bad_values() {
        let c = Configuration::new();
        let r = RestConfig::from_config(&c).unwrap();
        assert_eq!((r.bind_address.as_str(), r.port, r.max_content_length), ("127.0.0.1", 8081, 100 << 20));
        let mut c = Configuration::new();
        c.set("rest.port", "eighty");
        let e = RestConfig::from_config(&c).unwrap_err().to_string();
        assert!(e.contains("rest.port"), "{e}");
        let mut c = Configuration::new();
        c.set("security.ssl.rest.enabled", "true");
        assert!(RestConfig::from_config(&c).unwrap_err().to_string().contains("security.ssl.rest.cert"));
    }
}
