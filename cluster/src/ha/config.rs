//! The `high-availability.*` settings under Flink's key names, checked once up front: a
//! JobManager that would only discover a bad quorum or a relative storage directory at its
//! first failover is worse than one that refuses to start, naming the key.

use std::path::PathBuf;
use std::time::Duration;

use riffle_api::{ConfigError, ConfigOption, Configuration, Group, OptionInfo};

use super::error::HaError;

/// The default ZooKeeper root node.
pub const DEFAULT_ROOT: &str = "/riffle";
/// The default cluster id.
pub const DEFAULT_CLUSTER_ID: &str = "default";

/// `high-availability.type` (Flink 2.x), also read from its Flink 1.x name
/// `high-availability`; the new name wins when both are set.
pub const HA_TYPE: ConfigOption<String> =
    ConfigOption::new(Group::HighAvailability, "high-availability.type", "NONE", "NONE or ZOOKEEPER")
        .with_deprecated_keys(&["high-availability"]);
/// Comma-separated `host:port` list of the ZooKeeper members.
pub const QUORUM: ConfigOption<Option<String>> = ConfigOption::optional(
    Group::HighAvailability,
    "high-availability.zookeeper.quorum",
    "ZooKeeper servers, host:port,host:port",
);
/// The ZooKeeper node under which every cluster keeps its data.
pub const PATH_ROOT: ConfigOption<String> = ConfigOption::new(
    Group::HighAvailability,
    "high-availability.zookeeper.path.root",
    DEFAULT_ROOT,
    "root of riffle's nodes in ZooKeeper",
);
/// This cluster's name below the root, so several clusters can share one ZooKeeper.
pub const CLUSTER_ID: ConfigOption<String> = ConfigOption::new(
    Group::HighAvailability,
    "high-availability.cluster-id",
    DEFAULT_CLUSTER_ID,
    "this cluster's nodes under the root",
);
/// Where job graphs and checkpoint metadata are written (ZooKeeper holds only pointers).
pub const STORAGE_DIR: ConfigOption<Option<String>> = ConfigOption::optional(
    Group::HighAvailability,
    "high-availability.storageDir",
    "where job graphs and checkpoint pointers' data live",
);
/// The ZooKeeper session timeout: how long a crashed leader keeps its leadership.
pub const SESSION_TIMEOUT: ConfigOption<Duration> = ConfigOption::new(
    Group::HighAvailability,
    "high-availability.zookeeper.client.session-timeout",
    Duration::from_secs(60),
    "ZooKeeper session timeout",
);
/// How long to wait for a connection, and for any one ZooKeeper call.
pub const CONNECTION_TIMEOUT: ConfigOption<Duration> = ConfigOption::new(
    Group::HighAvailability,
    "high-availability.zookeeper.client.connection-timeout",
    Duration::from_secs(15),
    "ZooKeeper connection timeout",
);
/// The first wait between retries (doubled on each further retry).
pub const RETRY_WAIT: ConfigOption<Duration> = ConfigOption::new(
    Group::HighAvailability,
    "high-availability.zookeeper.client.retry-wait",
    Duration::from_secs(5),
    "wait between connection attempts",
);
/// How many times a failed connection or call is retried.
pub const MAX_RETRY_ATTEMPTS: ConfigOption<u32> = ConfigOption::new(
    Group::HighAvailability,
    "high-availability.zookeeper.client.max-retry-attempts",
    3,
    "connection attempts",
);

/// Whether the connection to ZooKeeper is TLS (the quorum must then name its
/// `secureClientPort`s). ZooKeeper's own client calls this `zookeeper.client.secure`.
pub const CLIENT_SECURE: ConfigOption<bool> = ConfigOption::new(
    Group::HighAvailability,
    "high-availability.zookeeper.client.secure",
    false,
    "connect to ZooKeeper over TLS (the quorum names secureClientPorts)",
);
/// PEM file of the CA certificate(s) that ZooKeeper's server certificates must chain to (the
/// only roots trusted; the server's name or IP must be in its certificate).
pub const SSL_TRUSTSTORE: ConfigOption<Option<String>> = ConfigOption::optional(
    Group::HighAvailability,
    "high-availability.zookeeper.client.ssl.truststore",
    "PEM file of the CA certificates trusted for ZooKeeper's servers (required when secure)",
);
/// Whether riffle presents a client certificate (ZooKeeper's `ssl.clientAuth`, `need` by
/// default on the server).
pub const SSL_CLIENT_AUTH: ConfigOption<bool> = ConfigOption::new(
    Group::HighAvailability,
    "high-availability.zookeeper.client.ssl.client-auth",
    true,
    "present a client certificate to ZooKeeper (needs ssl.certificate and ssl.key)",
);
/// PEM file of riffle's client certificate (chain), presented when client auth is on.
pub const SSL_CERTIFICATE: ConfigOption<Option<String>> = ConfigOption::optional(
    Group::HighAvailability,
    "high-availability.zookeeper.client.ssl.certificate",
    "PEM file of the client certificate (chain) presented to ZooKeeper",
);
/// PEM file of the private key (PKCS#8, PKCS#1 or SEC1, unencrypted) of the client certificate.
pub const SSL_KEY: ConfigOption<Option<String>> = ConfigOption::optional(
    Group::HighAvailability,
    "high-availability.zookeeper.client.ssl.key",
    "PEM file of the client certificate's private key (unencrypted)",
);

/// The `high-availability.*` options.
pub(crate) const OPTIONS: &[&dyn OptionInfo] = &[
    &HA_TYPE,
    &QUORUM,
    &PATH_ROOT,
    &CLUSTER_ID,
    &STORAGE_DIR,
    &SESSION_TIMEOUT,
    &CONNECTION_TIMEOUT,
    &RETRY_WAIT,
    &MAX_RETRY_ATTEMPTS,
    &CLIENT_SECURE,
    &SSL_TRUSTSTORE,
    &SSL_CLIENT_AUTH,
    &SSL_CERTIFICATE,
    &SSL_KEY,
];

/// Whether and how the cluster is highly available.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HaConfig {
    /// `none`: one JobManager, nothing survives it (the embedded default).
    None,
    /// `zookeeper`: leader election and recovery through ZooKeeper.
    ZooKeeper(ZooKeeperHaConfig),
}

/// The settings of ZooKeeper-based high availability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZooKeeperHaConfig {
    /// Connection string: `host:port[,host:port...]`.
    pub quorum: String,
    /// Root node, absolute, without a trailing slash (`/riffle`).
    pub root: String,
    /// This cluster's node name below the root (no slash).
    pub cluster_id: String,
    /// Local directory for job graphs and checkpoint pointers' data (absolute).
    pub storage_dir: PathBuf,
    /// Session timeout asked of ZooKeeper (the server may grant another within its limits).
    pub session_timeout: Duration,
    /// Bound on establishing a connection and on every single ZooKeeper call.
    pub connection_timeout: Duration,
    /// First backoff between retries; doubled on every further retry.
    pub retry_wait: Duration,
    /// Retries after the first attempt.
    pub max_retry_attempts: u32,
    /// TLS to ZooKeeper (`client.secure`), `None` for plain TCP (boxed: rarely set, and it
    /// would double the size of every [`HaConfig`]).
    pub tls: Option<Box<ZooKeeperTlsConfig>>,
}

/// The PEM files of a TLS connection to ZooKeeper. They are read when connecting (each
/// attempt reads them afresh), so a renewed certificate is picked up by the next session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZooKeeperTlsConfig {
    /// CA certificates the servers' certificates must chain to.
    pub truststore: PathBuf,
    /// The client certificate and its key, presented to the server; `None` without client auth.
    pub identity: Option<ClientIdentity>,
}

/// A client certificate (chain) and its private key, both PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The certificate, then any intermediates.
    pub certificate: PathBuf,
    /// The certificate's private key.
    pub key: PathBuf,
}

impl HaConfig {
    /// Reads and checks the `high-availability.*` keys. With `none` the ZooKeeper keys are
    /// ignored (as in Flink); with `zookeeper` the quorum and the storage directory are
    /// required and every value is checked.
    pub fn from_config(config: &Configuration) -> Result<Self, HaError> {
        let Some((key, mode)) = config.lookup(&HA_TYPE) else {
            return Ok(HaConfig::None);
        };
        match mode.trim().to_ascii_lowercase().as_str() {
            "none" | "" => Ok(HaConfig::None),
            "zookeeper" => Ok(HaConfig::ZooKeeper(ZooKeeperHaConfig::from_config(config)?)),
            _ => Err(invalid(key, mode, "use 'none' or 'zookeeper' (other HA services are not supported)").into()),
        }
    }

    /// The ZooKeeper settings, if HA is on.
    pub fn zookeeper(&self) -> Option<&ZooKeeperHaConfig> {
        match self {
            HaConfig::None => None,
            HaConfig::ZooKeeper(z) => Some(z),
        }
    }

    /// The ZooKeeper settings, or [`HaError::Disabled`].
    pub fn require_zookeeper(self) -> Result<ZooKeeperHaConfig, HaError> {
        match self {
            HaConfig::None => Err(HaError::Disabled),
            HaConfig::ZooKeeper(z) => Ok(z),
        }
    }
}

impl ZooKeeperHaConfig {
    /// Reads the ZooKeeper keys regardless of `high-availability` (see [`HaConfig`]).
    pub fn from_config(config: &Configuration) -> Result<Self, HaError> {
        let quorum = parse_quorum(config.get(&QUORUM)?.as_deref())?;
        let root = parse_root(&config.get(&PATH_ROOT)?)?;
        let cluster_id = parse_cluster_id(&config.get(&CLUSTER_ID)?)?;
        let storage_dir = parse_storage_dir(config.get(&STORAGE_DIR)?.as_deref())?;
        let session_timeout = positive(config, &SESSION_TIMEOUT)?;
        if session_timeout.as_millis() > i32::MAX as u128 {
            return Err(invalid_value(config, &SESSION_TIMEOUT, "must fit ZooKeeper's 32-bit milliseconds").into());
        }
        let connection_timeout = positive(config, &CONNECTION_TIMEOUT)?;
        let retry_wait = config.get(&RETRY_WAIT)?;
        let max_retry_attempts = config.get(&MAX_RETRY_ATTEMPTS)?;
        let tls = parse_tls(config)?;
        if tls.is_some() {
            check_tls_names(&quorum)?;
        }
        Ok(Self {
            quorum,
            root,
            cluster_id,
            storage_dir,
            session_timeout,
            connection_timeout,
            retry_wait,
            max_retry_attempts,
            tls,
        })
    }

    /// `<root>/<cluster-id>`: every node of this cluster lives below it.
    pub fn cluster_path(&self) -> String {
        if self.root == "/" {
            format!("/{}", self.cluster_id)
        } else {
            format!("{}/{}", self.root, self.cluster_id)
        }
    }

    /// `<storageDir>/<cluster-id>`: every file of this cluster lives below it.
    pub fn cluster_storage_dir(&self) -> PathBuf {
        self.storage_dir.join(&self.cluster_id)
    }
}

fn invalid(key: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError { key: key.to_string(), value: value.to_string(), reason: reason.to_string() }
}

fn invalid_value(config: &Configuration, option: &dyn OptionInfo, reason: &str) -> ConfigError {
    invalid(option.key(), config.raw(option).unwrap_or(""), reason)
}

fn positive(config: &Configuration, option: &ConfigOption<Duration>) -> Result<Duration, ConfigError> {
    let d = config.get(option)?;
    if d.is_zero() {
        return Err(invalid_value(config, option, "must be greater than zero"));
    }
    Ok(d)
}

/// `host:port[,host:port...]`, IPv6 hosts in brackets. A chroot suffix is refused: the
/// root belongs in `high-availability.zookeeper.path.root`, where every path is built from.
fn parse_quorum(value: Option<&str>) -> Result<String, ConfigError> {
    let raw = value.ok_or_else(|| invalid(QUORUM.key(), "", "required with high-availability: zookeeper"))?;
    let mut members = Vec::new();
    for member in raw.split(',').map(str::trim) {
        if member.is_empty() {
            return Err(invalid(QUORUM.key(), raw, "expected host:port[,host:port...], found an empty member"));
        }
        if member.contains('/') {
            return Err(invalid(QUORUM.key(), raw, "no path in the quorum: set high-availability.zookeeper.path.root"));
        }
        let (host, port) = member
            .rsplit_once(':')
            .ok_or_else(|| invalid(QUORUM.key(), raw, &format!("member '{member}' has no port (host:port)")))?;
        let host_ok = !host.is_empty() && (!host.contains(':') || (host.starts_with('[') && host.ends_with(']')));
        if !host_ok {
            return Err(invalid(QUORUM.key(), raw, &format!("member '{member}' has no valid host")));
        }
        match port.parse::<u16>() {
            Ok(p) if p > 0 => {}
            _ => return Err(invalid(QUORUM.key(), raw, &format!("member '{member}' has no valid port (1-65535)"))),
        }
        members.push(member);
    }
    Ok(members.join(","))
}

/// An absolute ZooKeeper path with non-empty components, no `.`/`..`, no trailing slash,
/// and not ZooKeeper's own `/zookeeper` tree.
fn parse_root(value: &str) -> Result<String, ConfigError> {
    let v = value.trim();
    if !v.starts_with('/') {
        return Err(invalid(PATH_ROOT.key(), value, "must be an absolute ZooKeeper path like /riffle"));
    }
    let trimmed = v.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok("/".to_string());
    }
    for part in trimmed[1..].split('/') {
        if !valid_node_name(part) {
            return Err(invalid(PATH_ROOT.key(), value, &format!("'{part}' is not a valid node name")));
        }
    }
    if trimmed == "/zookeeper" || trimmed.starts_with("/zookeeper/") {
        return Err(invalid(PATH_ROOT.key(), value, "/zookeeper is reserved by ZooKeeper"));
    }
    Ok(trimmed.to_string())
}

/// One node name; a single leading slash (Flink's default is `/default`) is accepted.
fn parse_cluster_id(value: &str) -> Result<String, ConfigError> {
    let v = value.trim();
    let v = v.strip_prefix('/').unwrap_or(v);
    if !valid_node_name(v) {
        return Err(invalid(CLUSTER_ID.key(), value, "must be one non-empty node name without '/'"));
    }
    Ok(v.to_string())
}

fn valid_node_name(part: &str) -> bool {
    !part.is_empty() && part != "." && part != ".." && !part.contains('/') && !part.chars().any(char::is_control)
}

/// `client.secure` and its PEM files: the trust store is required; with client auth (the
/// default) so are the certificate and key, without it they must not be set (they would be
/// silently unused). Without `secure` the `ssl.*` keys are ignored, as ZooKeeper's client does.
fn parse_tls(config: &Configuration) -> Result<Option<Box<ZooKeeperTlsConfig>>, ConfigError> {
    if !config.get(&CLIENT_SECURE)? {
        return Ok(None);
    }
    let file = |option: &ConfigOption<Option<String>>| -> Result<Option<PathBuf>, ConfigError> {
        match config.get(option)? {
            None => Ok(None),
            Some(v) if v.trim().is_empty() => Err(invalid(option.key(), &v, "must name a PEM file")),
            Some(v) => Ok(Some(PathBuf::from(v.trim()))),
        }
    };
    let truststore = file(&SSL_TRUSTSTORE)?.ok_or_else(|| {
        invalid(SSL_TRUSTSTORE.key(), "", "required with high-availability.zookeeper.client.secure: true")
    })?;
    let certificate = file(&SSL_CERTIFICATE)?;
    let key = file(&SSL_KEY)?;
    let identity = if config.get(&SSL_CLIENT_AUTH)? {
        let required = |option: &ConfigOption<Option<String>>, v: Option<PathBuf>| {
            v.ok_or_else(|| {
                invalid(
                    option.key(),
                    "",
                    "required with client auth (or set high-availability.zookeeper.client.ssl.client-auth: false)",
                )
            })
        };
        Some(ClientIdentity { certificate: required(&SSL_CERTIFICATE, certificate)?, key: required(&SSL_KEY, key)? })
    } else {
        for (option, value) in [(&SSL_CERTIFICATE, &certificate), (&SSL_KEY, &key)] {
            if let Some(v) = value {
                return Err(invalid(
                    option.key(),
                    &v.to_string_lossy(),
                    "set, but high-availability.zookeeper.client.ssl.client-auth is false: remove it or turn client auth on",
                ));
            }
        }
        None
    };
    Ok(Some(Box::new(ZooKeeperTlsConfig { truststore, identity })))
}

/// Over TLS each member's host is checked against its certificate, so it must be a DNS name
/// or an IP address (zookeeper-client would panic on another).
fn check_tls_names(quorum: &str) -> Result<(), ConfigError> {
    for member in quorum.split(',') {
        let host = member.rsplit_once(':').map_or(member, |(h, _)| h);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if rustls::pki_types::ServerName::try_from(host).is_err() {
            return Err(invalid(
                QUORUM.key(),
                quorum,
                &format!("'{host}' is neither a DNS name nor an IP address, which TLS needs to check its certificate"),
            ));
        }
    }
    Ok(())
}

/// An absolute local path, given plainly or as a `file://` URI; other schemes are refused.
fn parse_storage_dir(value: Option<&str>) -> Result<PathBuf, ConfigError> {
    let raw = value.ok_or_else(|| invalid(STORAGE_DIR.key(), "", "required with high-availability: zookeeper"))?;
    let v = raw.trim();
    let path = if let Some(rest) = v.strip_prefix("file://") {
        rest
    } else if let Some((scheme, _)) = v.split_once("://") {
        return Err(invalid(
            STORAGE_DIR.key(),
            raw,
            &format!("scheme '{scheme}' is not supported: use a local path or a file:// URI"),
        ));
    } else {
        v
    };
    let path = PathBuf::from(path);
    if !path.is_absolute() {
        return Err(invalid(
            STORAGE_DIR.key(),
            raw,
            "must be an absolute path (every JobManager must see the same directory)",
        ));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zk_config(extra: &[(&str, &str)]) -> Configuration {
        let mut c = Configuration::new();
        c.set("high-availability", "zookeeper")
            .set(QUORUM.key(), "127.0.0.1:2181")
            .set(STORAGE_DIR.key(), "/tmp/riffle-ha");
        for (k, v) in extra {
            c.set(*k, *v);
        }
        c
    }

    fn key_of(e: HaError) -> String {
        match e {
            HaError::Config(c) => c.key,
            other => panic!("expected a config error, got {other}"),
        }
    }

    #[test]
    fn defaults() {
        assert_eq!(HaConfig::from_config(&Configuration::new()).ok(), Some(HaConfig::None));
        let z = HaConfig::from_config(&zk_config(&[])).ok().and_then(|c| c.zookeeper().cloned());
        let z = z.unwrap_or_else(|| panic!("zookeeper config"));
        assert_eq!(z.root, "/riffle");
        assert_eq!(z.cluster_id, "default");
        assert_eq!(z.cluster_path(), "/riffle/default");
        assert_eq!(z.session_timeout, Duration::from_secs(60));
        assert_eq!(z.connection_timeout, Duration::from_secs(15));
        assert_eq!(z.retry_wait, Duration::from_secs(5));
        assert_eq!(z.max_retry_attempts, 3);
    }

    #[test]
    fn flink_spellings() {
        let c = zk_config(&[
            (CLUSTER_ID.key(), "/prod"),
            (PATH_ROOT.key(), "/flink/"),
            (STORAGE_DIR.key(), "file:///var/ha"),
        ]);
        let z = HaConfig::from_config(&c).and_then(HaConfig::require_zookeeper);
        let z = z.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(z.cluster_path(), "/flink/prod");
        assert_eq!(z.storage_dir, PathBuf::from("/var/ha"));
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases: &[(&str, &str)] = &[
            ("high-availability", "kubernetes"),
            (QUORUM.key(), "localhost"),
            (QUORUM.key(), "a:1,,b:2"),
            (QUORUM.key(), "a:99999"),
            (QUORUM.key(), "a:1/chroot"),
            (PATH_ROOT.key(), "riffle"),
            (PATH_ROOT.key(), "/a//b"),
            (PATH_ROOT.key(), "/zookeeper"),
            (CLUSTER_ID.key(), "a/b"),
            (CLUSTER_ID.key(), ".."),
            (STORAGE_DIR.key(), "relative/dir"),
            (STORAGE_DIR.key(), "s3://bucket/ha"),
            (SESSION_TIMEOUT.key(), "0 s"),
            (SESSION_TIMEOUT.key(), "soon"),
            (CONNECTION_TIMEOUT.key(), "0"),
            (RETRY_WAIT.key(), "5 parsecs"),
            (MAX_RETRY_ATTEMPTS.key(), "-1"),
        ];
        for (key, value) in cases {
            let err = HaConfig::from_config(&zk_config(&[(key, value)])).err();
            let err = err.unwrap_or_else(|| panic!("{key}={value} accepted"));
            assert_eq!(key_of(err), *key, "{key}={value}");
        }
        for key in [QUORUM.key(), STORAGE_DIR.key()] {
            let mut c = Configuration::new();
            c.set("high-availability", "zookeeper").set(QUORUM.key(), "h:1").set(STORAGE_DIR.key(), "/x");
            let mut without = Configuration::new();
            for (k, v) in c.entries().filter(|(k, _)| *k != key) {
                without.set(k, v);
            }
            let err = HaConfig::from_config(&without).err().unwrap_or_else(|| panic!("missing {key} accepted"));
            assert!(err.to_string().contains("required"), "{err}");
            assert_eq!(key_of(err), key);
        }
    }

    #[test]
    fn tls_settings() {
        assert_eq!(ZooKeeperHaConfig::from_config(&zk_config(&[])).ok().and_then(|z| z.tls), None);
        let plain = zk_config(&[(SSL_TRUSTSTORE.key(), "/ca.pem"), (SSL_KEY.key(), "")]);
        assert_eq!(
            ZooKeeperHaConfig::from_config(&plain).ok().and_then(|z| z.tls),
            None,
            "ssl.* ignored when not secure"
        );
        let secure = [
            (CLIENT_SECURE.key(), "true"),
            (SSL_TRUSTSTORE.key(), "/tls/ca.pem"),
            (SSL_CERTIFICATE.key(), "/tls/client.crt"),
            (SSL_KEY.key(), " /tls/client.key "),
        ];
        let tls = ZooKeeperHaConfig::from_config(&zk_config(&secure)).map(|z| z.tls.map(|t| *t));
        let expected = ZooKeeperTlsConfig {
            truststore: PathBuf::from("/tls/ca.pem"),
            identity: Some(ClientIdentity {
                certificate: PathBuf::from("/tls/client.crt"),
                key: PathBuf::from("/tls/client.key"),
            }),
        };
        assert_eq!(tls.ok().flatten(), Some(expected.clone()));
        let no_auth =
            [(CLIENT_SECURE.key(), "true"), (SSL_TRUSTSTORE.key(), "/tls/ca.pem"), (SSL_CLIENT_AUTH.key(), "false")];
        let tls = ZooKeeperHaConfig::from_config(&zk_config(&no_auth)).map(|z| z.tls.map(|t| *t));
        assert_eq!(tls.ok().flatten(), Some(ZooKeeperTlsConfig { identity: None, ..expected }));

        // Each bad combination names the key to fix.
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[(CLIENT_SECURE.key(), "yes")], CLIENT_SECURE.key()),
            (&[(CLIENT_SECURE.key(), "true")], SSL_TRUSTSTORE.key()),
            (&[(CLIENT_SECURE.key(), "true"), (SSL_TRUSTSTORE.key(), "  ")], SSL_TRUSTSTORE.key()),
            (&[(CLIENT_SECURE.key(), "true"), (SSL_TRUSTSTORE.key(), "/ca.pem")], SSL_CERTIFICATE.key()),
            (
                &[(CLIENT_SECURE.key(), "true"), (SSL_TRUSTSTORE.key(), "/ca.pem"), (SSL_CERTIFICATE.key(), "/c.pem")],
                SSL_KEY.key(),
            ),
            (
                &[
                    (CLIENT_SECURE.key(), "true"),
                    (SSL_TRUSTSTORE.key(), "/ca.pem"),
                    (SSL_CLIENT_AUTH.key(), "false"),
                    (SSL_KEY.key(), "/k.pem"),
                ],
                SSL_KEY.key(),
            ),
            (
                &[
                    (QUORUM.key(), "zk!1:2281"),
                    (CLIENT_SECURE.key(), "true"),
                    (SSL_TRUSTSTORE.key(), "/ca.pem"),
                    (SSL_CLIENT_AUTH.key(), "false"),
                ],
                QUORUM.key(),
            ),
        ];
        for (extra, key) in cases {
            let err = HaConfig::from_config(&zk_config(extra)).err();
            let err = err.unwrap_or_else(|| panic!("{extra:?} accepted"));
            assert_eq!(key_of(err), *key, "{extra:?}");
        }
    }

    #[test]
    fn none_ignores_zookeeper_keys() {
        let mut c = Configuration::new();
        c.set("high-availability", "NONE").set(QUORUM.key(), "garbage");
        assert_eq!(HaConfig::from_config(&c).ok(), Some(HaConfig::None));
        assert!(matches!(HaConfig::None.require_zookeeper(), Err(HaError::Disabled)));
    }
}
