//! The `high-availability.*` settings under Flink's key names, checked once up front: a
//! JobManager that would only discover a bad quorum or a relative storage directory at its
//! first failover is worse than one that refuses to start, naming the key.

use std::path::PathBuf;
use std::time::Duration;

use riffle_api::{ConfigError, Configuration};

use super::error::HaError;

/// `high-availability` (Flink 1.x name; also read as `high-availability.type`, Flink 2.x).
pub const HA_MODE: &str = "high-availability";
/// Flink 2.x name of [`HA_MODE`]; wins when both are set.
pub const HA_TYPE: &str = "high-availability.type";
/// Comma-separated `host:port` list of the ZooKeeper members.
pub const QUORUM: &str = "high-availability.zookeeper.quorum";
/// The ZooKeeper node under which every cluster keeps its data.
pub const PATH_ROOT: &str = "high-availability.zookeeper.path.root";
/// This cluster's name below the root, so several clusters can share one ZooKeeper.
pub const CLUSTER_ID: &str = "high-availability.cluster-id";
/// Where job graphs and checkpoint metadata are written (ZooKeeper holds only pointers).
pub const STORAGE_DIR: &str = "high-availability.storageDir";
/// The ZooKeeper session timeout: how long a crashed leader keeps its leadership.
pub const SESSION_TIMEOUT: &str = "high-availability.zookeeper.client.session-timeout";
/// How long to wait for a connection, and for any one ZooKeeper call.
pub const CONNECTION_TIMEOUT: &str = "high-availability.zookeeper.client.connection-timeout";
/// The first wait between retries (doubled on each further retry).
pub const RETRY_WAIT: &str = "high-availability.zookeeper.client.retry-wait";
/// How many times a failed connection or call is retried.
pub const MAX_RETRY_ATTEMPTS: &str = "high-availability.zookeeper.client.max-retry-attempts";

/// The default ZooKeeper root node.
pub const DEFAULT_ROOT: &str = "/riffle";
/// The default cluster id.
pub const DEFAULT_CLUSTER_ID: &str = "default";

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
}

impl HaConfig {
    /// Reads and checks the `high-availability.*` keys. With `none` the ZooKeeper keys are
    /// ignored (as in Flink); with `zookeeper` the quorum and the storage directory are
    /// required and every value is checked.
    pub fn from_config(config: &Configuration) -> Result<Self, HaError> {
        let (key, mode) = match (config.get_str(HA_TYPE), config.get_str(HA_MODE)) {
            (Some(v), _) => (HA_TYPE, v),
            (None, Some(v)) => (HA_MODE, v),
            (None, None) => return Ok(HaConfig::None),
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
        let quorum = parse_quorum(config.get_str(QUORUM))?;
        let root = parse_root(config.get_str(PATH_ROOT).unwrap_or(DEFAULT_ROOT))?;
        let cluster_id = parse_cluster_id(config.get_str(CLUSTER_ID).unwrap_or(DEFAULT_CLUSTER_ID))?;
        let storage_dir = parse_storage_dir(config.get_str(STORAGE_DIR))?;
        let session_timeout = positive(config, SESSION_TIMEOUT, Duration::from_secs(60))?;
        if session_timeout.as_millis() > i32::MAX as u128 {
            return Err(invalid_value(config, SESSION_TIMEOUT, "must fit ZooKeeper's 32-bit milliseconds").into());
        }
        let connection_timeout = positive(config, CONNECTION_TIMEOUT, Duration::from_secs(15))?;
        let retry_wait = config.get_duration(RETRY_WAIT, Duration::from_secs(5))?;
        let max_retry_attempts = config.get::<u32>(MAX_RETRY_ATTEMPTS, 3)?;
        Ok(Self {
            quorum,
            root,
            cluster_id,
            storage_dir,
            session_timeout,
            connection_timeout,
            retry_wait,
            max_retry_attempts,
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

fn invalid_value(config: &Configuration, key: &str, reason: &str) -> ConfigError {
    invalid(key, config.get_str(key).unwrap_or(""), reason)
}

fn positive(config: &Configuration, key: &str, default: Duration) -> Result<Duration, ConfigError> {
    let d = config.get_duration(key, default)?;
    if d.is_zero() {
        return Err(invalid_value(config, key, "must be greater than zero"));
    }
    Ok(d)
}

/// `host:port[,host:port...]`, IPv6 hosts in brackets. A chroot suffix is refused: the
/// root belongs in `high-availability.zookeeper.path.root`, where every path is built from.
fn parse_quorum(value: Option<&str>) -> Result<String, ConfigError> {
    let raw = value.ok_or_else(|| invalid(QUORUM, "", "required with high-availability: zookeeper"))?;
    let mut members = Vec::new();
    for member in raw.split(',').map(str::trim) {
        if member.is_empty() {
            return Err(invalid(QUORUM, raw, "expected host:port[,host:port...], found an empty member"));
        }
        if member.contains('/') {
            return Err(invalid(QUORUM, raw, "no path in the quorum: set high-availability.zookeeper.path.root"));
        }
        let (host, port) = member
            .rsplit_once(':')
            .ok_or_else(|| invalid(QUORUM, raw, &format!("member '{member}' has no port (host:port)")))?;
        let host_ok = !host.is_empty() && (!host.contains(':') || (host.starts_with('[') && host.ends_with(']')));
        if !host_ok {
            return Err(invalid(QUORUM, raw, &format!("member '{member}' has no valid host")));
        }
        match port.parse::<u16>() {
            Ok(p) if p > 0 => {}
            _ => return Err(invalid(QUORUM, raw, &format!("member '{member}' has no valid port (1-65535)"))),
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
        return Err(invalid(PATH_ROOT, value, "must be an absolute ZooKeeper path like /riffle"));
    }
    let trimmed = v.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok("/".to_string());
    }
    for part in trimmed[1..].split('/') {
        if !valid_node_name(part) {
            return Err(invalid(PATH_ROOT, value, &format!("'{part}' is not a valid node name")));
        }
    }
    if trimmed == "/zookeeper" || trimmed.starts_with("/zookeeper/") {
        return Err(invalid(PATH_ROOT, value, "/zookeeper is reserved by ZooKeeper"));
    }
    Ok(trimmed.to_string())
}

/// One node name; a single leading slash (Flink's default is `/default`) is accepted.
fn parse_cluster_id(value: &str) -> Result<String, ConfigError> {
    let v = value.trim();
    let v = v.strip_prefix('/').unwrap_or(v);
    if !valid_node_name(v) {
        return Err(invalid(CLUSTER_ID, value, "must be one non-empty node name without '/'"));
    }
    Ok(v.to_string())
}

fn valid_node_name(part: &str) -> bool {
    !part.is_empty() && part != "." && part != ".." && !part.contains('/') && !part.chars().any(char::is_control)
}

/// An absolute local path, given plainly or as a `file://` URI; other schemes are refused.
fn parse_storage_dir(value: Option<&str>) -> Result<PathBuf, ConfigError> {
    let raw = value.ok_or_else(|| invalid(STORAGE_DIR, "", "required with high-availability: zookeeper"))?;
    let v = raw.trim();
    let path = if let Some(rest) = v.strip_prefix("file://") {
        rest
    } else if let Some((scheme, _)) = v.split_once("://") {
        return Err(invalid(
            STORAGE_DIR,
            raw,
            &format!("scheme '{scheme}' is not supported: use a local path or a file:// URI"),
        ));
    } else {
        v
    };
    let path = PathBuf::from(path);
    if !path.is_absolute() {
        return Err(invalid(
            STORAGE_DIR,
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
        c.set(HA_MODE, "zookeeper").set(QUORUM, "127.0.0.1:2181").set(STORAGE_DIR, "/tmp/riffle-ha");
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
        let c = zk_config(&[(CLUSTER_ID, "/prod"), (PATH_ROOT, "/flink/"), (STORAGE_DIR, "file:///var/ha")]);
        let z = HaConfig::from_config(&c).and_then(HaConfig::require_zookeeper);
        let z = z.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(z.cluster_path(), "/flink/prod");
        assert_eq!(z.storage_dir, PathBuf::from("/var/ha"));
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases: &[(&str, &str)] = &[
            (HA_MODE, "kubernetes"),
            (QUORUM, "localhost"),
            (QUORUM, "a:1,,b:2"),
            (QUORUM, "a:99999"),
            (QUORUM, "a:1/chroot"),
            (PATH_ROOT, "riffle"),
            (PATH_ROOT, "/a//b"),
            (PATH_ROOT, "/zookeeper"),
            (CLUSTER_ID, "a/b"),
            (CLUSTER_ID, ".."),
            (STORAGE_DIR, "relative/dir"),
            (STORAGE_DIR, "s3://bucket/ha"),
            (SESSION_TIMEOUT, "0 s"),
            (SESSION_TIMEOUT, "soon"),
            (CONNECTION_TIMEOUT, "0"),
            (RETRY_WAIT, "5 parsecs"),
            (MAX_RETRY_ATTEMPTS, "-1"),
        ];
        for (key, value) in cases {
            let err = HaConfig::from_config(&zk_config(&[(key, value)])).err();
            let err = err.unwrap_or_else(|| panic!("{key}={value} accepted"));
            assert_eq!(key_of(err), *key, "{key}={value}");
        }
        for key in [QUORUM, STORAGE_DIR] {
            let mut c = Configuration::new();
            c.set(HA_MODE, "zookeeper").set(QUORUM, "h:1").set(STORAGE_DIR, "/x");
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
    fn none_ignores_zookeeper_keys() {
        let mut c = Configuration::new();
        c.set(HA_MODE, "NONE").set(QUORUM, "garbage");
        assert_eq!(HaConfig::from_config(&c).ok(), Some(HaConfig::None));
        assert!(matches!(HaConfig::None.require_zookeeper(), Err(HaError::Disabled)));
    }
}
