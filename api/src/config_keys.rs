//! Every configuration key riffle reads, with its default and what it does: the source of
//! truth for reporting unknown keys (a typo in a config file is reported, not silently
//! ignored) and for documentation.

/// One key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyInfo {
    /// Flink's name where Flink has one.
    pub key: &'static str,
    /// The default, as written in a config file ("" when there is none).
    pub default: &'static str,
    /// What it does.
    pub help: &'static str,
}

const fn k(key: &'static str, default: &'static str, help: &'static str) -> KeyInfo {
    KeyInfo { key, default, help }
}

/// The keys, grouped as Flink's documentation groups them.
pub const KNOWN_KEYS: &[KeyInfo] = &[
    k("parallelism.default", "1", "parallelism of operators that set none"),
    k("pipeline.max-parallelism", "128", "number of key groups"),
    k("pipeline.auto-watermark-interval", "200 ms", "how often periodic watermarks are emitted"),
    k("execution.batch-size", "1024", "records per batch on data channels"),
    k("execution.buffer-timeout", "100 ms", "longest a partial batch waits before it is sent"),
    k("execution.checkpointing.interval", "", "checkpoint every interval (off when unset)"),
    k("execution.checkpointing.mode", "EXACTLY_ONCE", "EXACTLY_ONCE (aligned) or AT_LEAST_ONCE"),
    k("execution.checkpointing.unaligned", "false", "barriers overtake in-flight data (FLIP-76)"),
    k("execution.checkpointing.timeout", "10 min", "abort a checkpoint not complete by then"),
    k("execution.checkpointing.min-pause", "0 ms", "least time between two checkpoints"),
    k("execution.checkpointing.max-concurrent-checkpoints", "1", "checkpoints in progress at once"),
    k(
        "execution.checkpointing.externalized-checkpoint-retention",
        "NO_EXTERNALIZED_CHECKPOINTS",
        "keep checkpoints when the job ends",
    ),
    k("execution.savepoint.path", "", "start the job from this savepoint or checkpoint"),
    k("execution.savepoint.ignore-unclaimed-state", "false", "skip state of operators the job no longer has"),
    k("state.backend", "heap", "heap, spillable-heap or sled"),
    k("state.backend.memory-budget", "", "memory for keyed state before cold key groups move to disk"),
    k("state.backend.dir", "", "where spilled key groups and sled trees live"),
    k("state.backend.key-groups", "", "key groups kept in memory at most"),
    k("state.backend.local-recovery", "", "keep a local copy of snapshots (default on for sled)"),
    k("state.checkpoints.dir", "", "where checkpoints are written (in memory when unset)"),
    k("state.checkpoints.num-retained", "1", "completed checkpoints kept"),
    k("state.savepoints.dir", "", "default target of savepoints"),
    k("state.storage.fs.memory-threshold", "20 kb", "state smaller than this is inlined in the metadata"),
    k("restart-strategy", "none", "none, fixed-delay, exponential-delay or failure-rate"),
    k("restart-strategy.fixed-delay.attempts", "1", "restarts before the job fails"),
    k("restart-strategy.fixed-delay.delay", "1 s", "wait before a restart"),
    k("restart-strategy.exponential-delay.initial-backoff", "1 s", "first wait before a restart"),
    k("restart-strategy.exponential-delay.max-backoff", "5 min", "longest wait before a restart"),
    k("restart-strategy.exponential-delay.backoff-multiplier", "2.0", "growth of the wait"),
    k("restart-strategy.exponential-delay.reset-backoff-threshold", "1 h", "calm time that resets the wait"),
    k("restart-strategy.failure-rate.max-failures-per-interval", "1", "failures allowed per interval"),
    k("restart-strategy.failure-rate.failure-rate-interval", "1 min", "the interval"),
    k("restart-strategy.failure-rate.delay", "1 s", "wait before a restart"),
    k("jobmanager.exception-history-size", "16", "failures kept in a job's exception history"),
    k("slot.request.timeout", "5 min", "how long a job waits for slots"),
    k("slotmanager.number-of-slots.max", "", "slots the cluster hands out at most"),
    k("task.cancellation.timeout", "30 s", "how long a cancelled subtask may take to stop"),
    k("taskmanager.numberOfTaskSlots", "1", "slots per TaskManager"),
    k("jobmanager.rpc.address", "localhost", "the JobManager's advertised RPC host (TaskManagers connect to it)"),
    k("jobmanager.rpc.port", "6123", "the JobManager's advertised RPC port"),
    k("jobmanager.bind-host", "", "host the JobManager's RPC endpoint binds (default: jobmanager.rpc.address)"),
    k("jobmanager.rpc.bind-port", "", "port the JobManager's RPC endpoint binds (default: jobmanager.rpc.port)"),
    k("taskmanager.host", "localhost", "the host a TaskManager advertises"),
    k("taskmanager.resource-id", "", "a TaskManager's id (default: taskmanager-<host>-<pid>)"),
    k("taskmanager.bind-host", "", "host a TaskManager's data endpoint binds (default: taskmanager.host)"),
    k("taskmanager.rpc.port", "", "accepted from Flink configurations, unused: a riffle TaskManager connects out to its JobManager and listens only for data (taskmanager.data.*)"),
    k("taskmanager.rpc.bind-port", "", "accepted from Flink configurations, unused (see taskmanager.rpc.port)"),
    k("taskmanager.data.port", "0", "a TaskManager's advertised data port (0: the bound one)"),
    k("taskmanager.data.bind-port", "", "the data port a TaskManager binds (default: taskmanager.data.port)"),
    k("blob.storage.directory", "", "a TaskManager's cache of plugin libraries (default: a temp directory)"),
    k("taskmanager.network.buffers-per-channel", "4", "batches a data channel holds (a network channel's credit)"),
    k("taskmanager.memory.segment-size", "32kb", "size of a network buffer (4kb to 16mb)"),
    k("taskmanager.memory.network.fraction", "0.1", "share of taskmanager.memory.process.size for network buffers"),
    k("taskmanager.memory.network.min", "64mb", "least network buffer memory of a TaskManager"),
    k("taskmanager.memory.network.max", "1gb", "most network buffer memory of a TaskManager"),
    k("taskmanager.memory.process.size", "1728mb", "a TaskManager's memory, the base of the network fraction"),
    k("local.number-taskmanager", "1", "TaskManagers of an embedded cluster"),
    k("rest.enabled", "false", "serve the REST API and web UI while `riffle run` runs"),
    k("rest.bind-address", "127.0.0.1", "address the REST server binds"),
    k("rest.port", "8081", "REST port (0: any free port)"),
    k("rest.address", "", "host clients reach the REST API at (published by a highly available JobManager; default: jobmanager.rpc.address)"),
    k("rest.bind-port", "", "REST port to bind, when it differs from rest.port"),
    k("rest.server.max-content-length", "104857600", "largest request body, bytes"),
    k("rest.auth.token", "", "bearer token every API request must carry"),
    k("security.ssl.rest.enabled", "false", "serve HTTPS"),
    k("security.ssl.rest.cert", "", "PEM certificate for HTTPS"),
    k("security.ssl.rest.key", "", "PEM private key for HTTPS"),
    k("web.refresh-interval", "3000", "how often the web UI refreshes, ms"),
    k("web.submit.enable", "true", "allow submitting programs over REST"),
    k("high-availability", "NONE", "NONE or ZOOKEEPER"),
    k("high-availability.zookeeper.quorum", "", "ZooKeeper servers, host:port,host:port"),
    k("high-availability.zookeeper.path.root", "/riffle", "root of riffle's nodes in ZooKeeper"),
    k("high-availability.cluster-id", "default", "this cluster's nodes under the root"),
    k("high-availability.storageDir", "", "where job graphs and checkpoint pointers' data live"),
    k("high-availability.zookeeper.client.session-timeout", "60 s", "ZooKeeper session timeout"),
    k("high-availability.zookeeper.client.connection-timeout", "15 s", "ZooKeeper connection timeout"),
    k("high-availability.zookeeper.client.retry-wait", "5 s", "wait between connection attempts"),
    k("high-availability.zookeeper.client.max-retry-attempts", "3", "connection attempts"),
    k("heartbeat.interval", "10 s", "how often processes send heartbeats"),
    k("heartbeat.timeout", "50 s", "silence after which a peer is dead"),
    k("rpc.max-frame-size", "64 mb", "largest message between processes"),
    k("log.dir", "", "where the process writes its log files"),
    k("log.file.max-files", "7", "daily log files kept per process"),
];

/// The keys as a Markdown page (docs/configuration.md is this, kept current by a test).
pub fn markdown() -> String {
    let mut out = String::from(
        "# Configuration keys\n\nEvery key riffle reads (Flink's names where Flink has one), its default and what it \
         does. Set them with `-D key=value`, in a `--config` YAML file, or in a job's configuration. A key not \
         listed here is reported as unknown.\n\n| key | default | what it does |\n|---|---|---|\n",
    );
    for k in KNOWN_KEYS {
        let default = if k.default.is_empty() { "—".to_string() } else { format!("`{}`", k.default) };
        out.push_str(&format!("| `{}` | {} | {} |\n", k.key, default, k.help));
    }
    out
}

/// Whether riffle reads `key`.
pub fn is_known(key: &str) -> bool {
    KNOWN_KEYS.iter().any(|k| k.key == key)
}

/// The known key closest to `key` (a likely typo), if one is close.
pub fn suggestion(key: &str) -> Option<&'static str> {
    KNOWN_KEYS
        .iter()
        .map(|k| (k.key, edit_distance(key, k.key)))
        .filter(|(_, d)| *d <= 3)
        .min_by_key(|(_, d)| *d)
        .map(|(k, _)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_page_lists_every_key() {
        // RIFFLE_BLESS=1 rewrites the page after a key was added or changed.
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md");
        let want = markdown();
        if std::env::var_os("RIFFLE_BLESS").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let got = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            got == want,
            "docs/configuration.md is stale: run `RIFFLE_BLESS=1 cargo test -p riffle-api config_keys`"
        );
    }

    #[test]
    fn keys_are_unique_and_typos_get_a_suggestion() {
        let mut keys: Vec<_> = KNOWN_KEYS.iter().map(|k| k.key).collect();
        keys.sort_unstable();
        let n = keys.len();
        keys.dedup();
        assert_eq!(keys.len(), n);
        assert!(is_known("taskmanager.numberOfTaskSlots"));
        assert_eq!(suggestion("taskmanager.numberOfTaskSlot"), Some("taskmanager.numberOfTaskSlots"));
        assert_eq!(suggestion("completely.different"), None);
    }
}
