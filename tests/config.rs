//! The configuration options as a whole: the registry is complete and consistent, the
//! generated page is current, and no code reads a key it has not declared.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn docs_configuration_md_is_what_the_registry_generates() {
    let path = root().join("docs/configuration.md");
    let want = riffle::config_docs();
    if std::env::var_os("RIFFLE_UPDATE_DOCS").is_some() {
        if let Err(e) = std::fs::write(&path, &want) {
            panic!("cannot write {}: {e}", path.display());
        }
    }
    let got = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        got == want,
        "docs/configuration.md differs from the declared options: regenerate it with \
         `RIFFLE_UPDATE_DOCS=1 cargo test -p riffle --test config` (or `riffle config-docs > docs/configuration.md`)"
    );
}

#[test]
fn every_key_is_declared_once_and_fallbacks_are_options() {
    let registry = riffle::config_options();
    assert!(registry.duplicates().is_empty(), "declared twice: {:?}", registry.duplicates());
    assert!(registry.undeclared_fallbacks().is_empty(), "not options: {:?}", registry.undeclared_fallbacks());
    for o in registry.options() {
        assert!(!o.description().is_empty(), "{} has no description", o.key());
    }
}

/// The keys riffle knew before options were declared in code, and the three it read without
/// knowing them: none may go missing.
#[test]
fn known_keys_stay_known() {
    let registry = riffle::config_options();
    let keys = [
        "parallelism.default",
        "pipeline.max-parallelism",
        "pipeline.auto-watermark-interval",
        "execution.batch-size",
        "execution.buffer-timeout",
        "execution.checkpointing.interval",
        "execution.checkpointing.mode",
        "execution.checkpointing.unaligned",
        "execution.checkpointing.timeout",
        "execution.checkpointing.min-pause",
        "execution.checkpointing.max-concurrent-checkpoints",
        "execution.checkpointing.externalized-checkpoint-retention",
        "execution.savepoint.path",
        "execution.savepoint.ignore-unclaimed-state",
        "state.backend",
        "state.backend.memory-budget",
        "state.backend.dir",
        "state.backend.key-groups",
        "state.backend.local-recovery",
        "state.checkpoints.dir",
        "state.checkpoints.num-retained",
        "state.savepoints.dir",
        "state.storage.fs.memory-threshold",
        "restart-strategy",
        "restart-strategy.fixed-delay.attempts",
        "restart-strategy.fixed-delay.delay",
        "restart-strategy.exponential-delay.initial-backoff",
        "restart-strategy.exponential-delay.max-backoff",
        "restart-strategy.exponential-delay.backoff-multiplier",
        "restart-strategy.exponential-delay.reset-backoff-threshold",
        "restart-strategy.exponential-delay.jitter-factor",
        "restart-strategy.failure-rate.max-failures-per-interval",
        "restart-strategy.failure-rate.failure-rate-interval",
        "restart-strategy.failure-rate.delay",
        "jobmanager.exception-history-size",
        "slot.request.timeout",
        "slotmanager.number-of-slots.max",
        "task.cancellation.timeout",
        "taskmanager.numberOfTaskSlots",
        "jobmanager.rpc.address",
        "jobmanager.rpc.port",
        "jobmanager.bind-host",
        "jobmanager.rpc.bind-port",
        "taskmanager.host",
        "taskmanager.resource-id",
        "taskmanager.bind-host",
        "taskmanager.rpc.port",
        "taskmanager.rpc.bind-port",
        "taskmanager.data.port",
        "taskmanager.data.bind-port",
        "blob.storage.directory",
        "taskmanager.network.buffers-per-channel",
        "taskmanager.network.memory.buffer-debloat.enabled",
        "taskmanager.network.memory.buffer-debloat.target",
        "taskmanager.network.memory.buffer-debloat.period",
        "taskmanager.memory.segment-size",
        "taskmanager.memory.network.fraction",
        "taskmanager.memory.network.min",
        "taskmanager.memory.network.max",
        "taskmanager.memory.process.size",
        "local.number-taskmanager",
        "rest.enabled",
        "rest.bind-address",
        "rest.port",
        "rest.address",
        "rest.bind-port",
        "rest.server.max-content-length",
        "rest.auth.token",
        "security.ssl.rest.enabled",
        "security.ssl.rest.cert",
        "security.ssl.rest.key",
        "web.refresh-interval",
        "web.submit.enable",
        "web.upload.dir",
        "high-availability",
        "high-availability.type",
        "high-availability.zookeeper.quorum",
        "high-availability.zookeeper.path.root",
        "high-availability.cluster-id",
        "high-availability.storageDir",
        "high-availability.zookeeper.client.session-timeout",
        "high-availability.zookeeper.client.connection-timeout",
        "high-availability.zookeeper.client.retry-wait",
        "high-availability.zookeeper.client.max-retry-attempts",
        "heartbeat.interval",
        "heartbeat.timeout",
        "rpc.max-frame-size",
        "log.dir",
        "log.file.max-files",
    ];
    let missing: Vec<_> = keys.iter().filter(|k| !registry.is_known(k)).collect();
    assert!(missing.is_empty(), "no longer declared: {missing:?}");
}

/// Methods that read a configuration value by key. `Configuration` has none that take a
/// string (reads go through a declared `ConfigOption`), so a match is a leftover of the old
/// API or a map read that looks like one.
const READS: [&str; 5] = ["get_str(", "get_duration(", "get_bytes(", "get(", "get::<"];

/// `file:line: text` of every string-literal key read in `text` (the part before a
/// `#[cfg(test)]` line: test modules close a file).
fn literal_reads(file: &str, text: &str) -> Vec<String> {
    let code = text.split("\n#[cfg(test)]").next().unwrap_or("");
    let mut found = Vec::new();
    for read in READS {
        let mut from = 0;
        while let Some(at) = code[from..].find(read).map(|i| from + i) {
            from = at + read.len();
            let mut rest = &code[from..];
            if read == "get::<" {
                // get::<T>( "key"
                let Some(open) = rest.find(">(") else { continue };
                rest = &rest[open + 2..];
            }
            let rest = rest.trim_start();
            let Some(literal) = rest.strip_prefix('"').and_then(|r| r.split('"').next()) else { continue };
            if looks_like_a_key(literal) {
                let line = code[..at].matches('\n').count() + 1;
                let text = code.lines().nth(line - 1).unwrap_or("").trim();
                found.push(format!("{file}:{line}: {text}"));
            }
        }
    }
    found
}

/// `section.name` in Flink's spelling: a letter first, at least one dot, no spaces or slashes.
fn looks_like_a_key(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.contains('.')
        && !s.ends_with('.')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if name != "tests" {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") && name != "tests.rs" {
            out.push(path);
        }
    }
}

#[test]
fn the_scan_finds_literal_reads() {
    let text = "let a = c.get(\"rest.port\", 1);\nlet b = m.get(\"output\");\nlet c = c\n    .get_duration(\n        \
                \"heartbeat.interval\", d);\nlet d = c.get::<u16>(\"rest.port\", 1);\n#[cfg(test)]\nc.get(\"a.b\");\n";
    let found = literal_reads("x.rs", text);
    assert_eq!(found.len(), 3, "{found:?}");
    for line in ["x.rs:1:", "x.rs:4:", "x.rs:6:"] {
        assert!(found.iter().any(|f| f.starts_with(line)), "{line} {found:?}");
    }
}

#[test]
fn no_code_reads_a_key_by_string_literal() {
    let root = root();
    let mut files = Vec::new();
    for dir in ["src", "api/src", "state/src", "actors/src", "cluster/src", "web/src", "scenarios/src"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 50, "the scan found only {} files under {}", files.len(), root.display());
    let mut found = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let file = path.strip_prefix(&root).unwrap_or(&path).display().to_string();
        found.extend(literal_reads(&file, &text));
    }
    assert!(
        found.is_empty(),
        "configuration read by a string literal (declare a ConfigOption next to the code and read it with \
         `conf.get(&OPTION)`):\n{}",
        found.join("\n")
    );
}
