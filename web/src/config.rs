//! The REST server's settings, from Flink's key names where Flink has one.

use std::path::PathBuf;

use riffle_api::{ConfigOption, ConfigValue, Configuration, Group, OptionInfo};

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
    /// `web.timeout`, ms: how long a request waits for a TaskManager process's answer.
    pub timeout_ms: u64,
    /// `web.submit.enable` (default true).
    pub web_submit: bool,
    /// `web.upload.dir`: where uploaded plugins are kept (default: a directory of this
    /// process under the system's temp directory).
    pub upload_dir: PathBuf,
    /// `metrics.reporter.otlp.endpoint` and `.interval`: where and how often the metrics are
    /// pushed over OTLP/HTTP, if anywhere.
    pub otlp: Option<(String, std::time::Duration)>,
    /// `traces.reporter.otlp.endpoint`: where checkpoint and failover spans go, if anywhere.
    pub otlp_traces: Option<String>,
}

const fn option<T: ConfigValue>(key: &'static str, default: T::Default, what: &'static str) -> ConfigOption<T> {
    ConfigOption::new(Group::Rest, key, default, what)
}

/// `rest.enabled`: whether `riffle run` (the CLI's `--web`) serves the REST API while its job
/// runs; read by the CLI and the scenarios.
pub const REST_ENABLED: ConfigOption<bool> =
    option("rest.enabled", false, "serve the REST API and web UI while `riffle run` runs");
/// `rest.bind-address`.
pub const BIND_ADDRESS: ConfigOption<String> =
    option("rest.bind-address", "127.0.0.1", "address the REST server binds");
/// `rest.port`: the port clients reach; also read by a standby JobManager for its URL.
pub const PORT: ConfigOption<u16> = option("rest.port", 8081, "REST port (0: any free port)");
/// `rest.address`: read by a highly available JobManager, which publishes its URL.
pub const ADDRESS: ConfigOption<Option<String>> = ConfigOption::optional(
    Group::Rest,
    "rest.address",
    "host clients reach the REST API at (published by a highly available JobManager; default: \
     jobmanager.rpc.address)",
);
/// `rest.bind-port`, else `rest.port`.
pub const BIND_PORT: ConfigOption<u16> =
    option("rest.bind-port", 8081, "REST port to bind").with_fallback_keys(&[PORT.key()]);
/// `rest.server.max-content-length`.
pub const MAX_CONTENT_LENGTH: ConfigOption<usize> =
    option("rest.server.max-content-length", 100 << 20, "largest request body, bytes");
/// `rest.auth.token`.
pub const AUTH_TOKEN: ConfigOption<Option<String>> =
    ConfigOption::optional(Group::Rest, "rest.auth.token", "bearer token every API request must carry");
/// `security.ssl.rest.enabled`.
pub const SSL_ENABLED: ConfigOption<bool> = option("security.ssl.rest.enabled", false, "serve HTTPS");
/// `security.ssl.rest.cert`.
pub const SSL_CERT: ConfigOption<Option<PathBuf>> =
    ConfigOption::optional(Group::Rest, "security.ssl.rest.cert", "PEM certificate for HTTPS");
/// `security.ssl.rest.key`.
pub const SSL_KEY: ConfigOption<Option<PathBuf>> =
    ConfigOption::optional(Group::Rest, "security.ssl.rest.key", "PEM private key for HTTPS");
/// `web.refresh-interval`.
pub const REFRESH_INTERVAL: ConfigOption<u64> =
    option("web.refresh-interval", 3000, "how often the web UI refreshes, ms");
/// `web.timeout` (Flink's key; riffle's default is 10 s, not Flink's 10 min: it bounds how
/// long a page waits for a TaskManager process, e.g. for its log files).
pub const TIMEOUT: ConfigOption<u64> =
    option("web.timeout", 10_000, "how long the REST API waits for a TaskManager process's answer, ms");
/// `web.submit.enable`.
pub const SUBMIT_ENABLE: ConfigOption<bool> = option("web.submit.enable", true, "allow submitting programs over REST");
/// `web.upload.dir`.
pub const UPLOAD_DIR: ConfigOption<Option<PathBuf>> = ConfigOption::optional(
    Group::Rest,
    "web.upload.dir",
    "where uploaded plugins are kept (default: a directory of the process under the temp directory)",
);
/// `log.dir`: the REST API serves the files the processes write there (see riffle-cluster's
/// logging, which reads it too).
pub const LOG_DIR: ConfigOption<Option<PathBuf>> =
    ConfigOption::optional(Group::Logging, "log.dir", "where the process writes its log files");

/// `metrics.reporter.otlp.endpoint`: an OTLP/HTTP metrics endpoint (an OpenTelemetry
/// collector's `http://host:4318/v1/metrics`); set, the metrics `/metrics` serves are pushed
/// there too.
pub const OTLP_ENDPOINT: ConfigOption<Option<String>> = ConfigOption::optional(
    Group::Rest,
    "metrics.reporter.otlp.endpoint",
    "OTLP/HTTP endpoint the metrics are pushed to (e.g. http://127.0.0.1:4318/v1/metrics; unset: no push)",
);
/// `metrics.reporter.otlp.interval`.
pub const OTLP_INTERVAL: ConfigOption<std::time::Duration> = ConfigOption::new(
    Group::Rest,
    "metrics.reporter.otlp.interval",
    std::time::Duration::from_secs(10),
    "how often the metrics are pushed over OTLP",
);

/// `traces.reporter.otlp.endpoint`: an OTLP/HTTP traces endpoint (`http://host:4318/v1/traces`);
/// set, checkpoints and failovers are reported there as spans.
pub const OTLP_TRACES_ENDPOINT: ConfigOption<Option<String>> = ConfigOption::optional(
    Group::Rest,
    "traces.reporter.otlp.endpoint",
    "OTLP/HTTP endpoint checkpoint and failover spans go to (e.g. http://127.0.0.1:4318/v1/traces; unset: none)",
);

/// The options of the REST server.
pub(crate) const OPTIONS: &[&dyn OptionInfo] = &[
    &REST_ENABLED,
    &BIND_ADDRESS,
    &PORT,
    &ADDRESS,
    &BIND_PORT,
    &MAX_CONTENT_LENGTH,
    &AUTH_TOKEN,
    &SSL_ENABLED,
    &SSL_CERT,
    &SSL_KEY,
    &REFRESH_INTERVAL,
    &TIMEOUT,
    &SUBMIT_ENABLE,
    &UPLOAD_DIR,
    &LOG_DIR,
    &OTLP_ENDPOINT,
    &OTLP_INTERVAL,
    &OTLP_TRACES_ENDPOINT,
];

impl RestConfig {
    /// Reads the settings; a malformed value is refused naming its key.
    pub fn from_config(c: &Configuration) -> Result<Self, WebError> {
        let bad = |e: riffle_api::config::ConfigError| WebError::Config(e.to_string());
        let port = c.get(&BIND_PORT).map_err(bad)?;
        let tls =
            if c.get(&SSL_ENABLED).map_err(bad)? {
                let cert = c.get(&SSL_CERT).map_err(bad)?;
                let key = c.get(&SSL_KEY).map_err(bad)?;
                match (cert, key) {
                    (Some(cert), Some(key)) => Some((cert, key)),
                    _ => return Err(WebError::Config(
                        "security.ssl.rest.enabled needs security.ssl.rest.cert and security.ssl.rest.key (PEM files)"
                            .into(),
                    )),
                }
            } else {
                None
            };
        let max = match c.raw(&MAX_CONTENT_LENGTH) {
            Some(v) => v.trim().parse::<usize>().map_err(|_| {
                WebError::Config(format!("rest.server.max-content-length: '{v}' is not a number of bytes"))
            })?,
            None => MAX_CONTENT_LENGTH.default_value(),
        };
        Ok(Self {
            bind_address: c.get(&BIND_ADDRESS).map_err(bad)?,
            port,
            auth_token: c.get(&AUTH_TOKEN).map_err(bad)?.filter(|t| !t.is_empty()),
            max_content_length: max,
            log_dir: c.get(&LOG_DIR).map_err(bad)?,
            tls,
            refresh_interval_ms: c.get(&REFRESH_INTERVAL).map_err(bad)?,
            timeout_ms: c.get(&TIMEOUT).map_err(bad)?,
            web_submit: c.get(&SUBMIT_ENABLE).map_err(bad)?,
            upload_dir: c
                .get(&UPLOAD_DIR)
                .map_err(bad)?
                .unwrap_or_else(|| std::env::temp_dir().join(format!("riffle-web-upload-{}", std::process::id()))),
            otlp: match c.get(&OTLP_ENDPOINT).map_err(bad)?.filter(|e| !e.trim().is_empty()) {
                Some(endpoint) => {
                    Some((endpoint, c.get(&OTLP_INTERVAL).map_err(bad)?.max(std::time::Duration::from_millis(100))))
                }
                None => None,
            },
            otlp_traces: c.get(&OTLP_TRACES_ENDPOINT).map_err(bad)?.filter(|e| !e.trim().is_empty()),
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
