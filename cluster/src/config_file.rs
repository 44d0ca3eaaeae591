//! Configuration files: Flink's `flink-conf.yaml` layout (flat `key: value` lines) and the
//! nested YAML of Flink's newer `config.yaml` (`taskmanager: {numberOfTaskSlots: 4}` is
//! `taskmanager.numberOfTaskSlots`), then `-D key=value` on top. Unknown keys (not in the
//! registry of declared options) are reported with the closest known key, so a typo does not
//! pass silently.

use std::path::Path;

use riffle_api::config_keys::Registry;
use riffle_api::Configuration;
use yaml_rust2::{Yaml, YamlLoader};

use crate::error::ClusterError;

/// Largest config file read.
const MAX_FILE: u64 = 4 << 20;

fn bad(path: &Path, why: impl std::fmt::Display) -> ClusterError {
    ClusterError::Config(riffle_api::ConfigError {
        key: "--config".into(),
        value: path.display().to_string(),
        reason: why.to_string(),
    })
}

fn scalar(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        Yaml::Array(items) => {
            let parts: Option<Vec<String>> = items.iter().map(scalar).collect();
            parts.map(|p| p.join(";"))
        }
        _ => None,
    }
}

fn flatten(prefix: &str, v: &Yaml, out: &mut Configuration, path: &Path) -> Result<(), ClusterError> {
    match v {
        Yaml::Hash(map) => {
            for (k, v) in map {
                let key = scalar(k).ok_or_else(|| bad(path, "a key is not a plain value"))?;
                let full = if prefix.is_empty() { key } else { format!("{prefix}.{key}") };
                flatten(&full, v, out, path)?;
            }
            Ok(())
        }
        Yaml::Null => Ok(()),
        other => {
            let value =
                scalar(other).ok_or_else(|| bad(path, format!("'{prefix}' has a value that is not a plain value")))?;
            out.set(prefix, value);
            Ok(())
        }
    }
}

/// Parses YAML text into a configuration.
pub fn parse(text: &str, path: &Path) -> Result<Configuration, ClusterError> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| bad(path, format!("not valid YAML: {e}")))?;
    let mut conf = Configuration::new();
    for doc in &docs {
        match doc {
            Yaml::Hash(_) => flatten("", doc, &mut conf, path)?,
            Yaml::Null => {}
            _ => return Err(bad(path, "the file must hold `key: value` entries")),
        }
    }
    Ok(conf)
}

/// Reads a config file.
pub fn load(path: &Path) -> Result<Configuration, ClusterError> {
    let meta = std::fs::metadata(path).map_err(|e| bad(path, format!("cannot read it: {e}")))?;
    if meta.len() > MAX_FILE {
        return Err(bad(path, format!("it is larger than {MAX_FILE} bytes")));
    }
    let text = std::fs::read_to_string(path).map_err(|e| bad(path, format!("cannot read it: {e}")))?;
    parse(&text, path)
}

/// One line per key of `conf` that `registry` does not know, with the closest known key.
pub fn unknown_keys(conf: &Configuration, registry: &Registry) -> Vec<String> {
    conf.entries()
        .filter(|(k, _)| !registry.is_known(k))
        .map(|(k, _)| match registry.suggestion(k) {
            Some(s) => format!("unknown configuration key '{k}' (ignored; did you mean '{s}'?)"),
            None => format!("unknown configuration key '{k}' (ignored)"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_and_nested_yaml_and_unknown_keys() {
        let p = Path::new("c.yaml");
        let flat =
            parse("taskmanager.numberOfTaskSlots: 4\nrest.port: 0\n# a comment\nstate.backend: sled\n", p).unwrap();
        let registry = Registry::new([riffle_api::options(), riffle_actors::options(), crate::options()].concat());
        let get = |c: &Configuration, key: &str| c.entries().find(|(k, _)| *k == key).map(|(_, v)| v.to_string());
        assert_eq!(get(&flat, "taskmanager.numberOfTaskSlots").as_deref(), Some("4"));
        assert_eq!(get(&flat, "state.backend").as_deref(), Some("sled"));
        let nested = parse(
            "taskmanager:\n  numberOfTaskSlots: 2\nexecution:\n  checkpointing:\n    interval: 1 s\n    unaligned: true\n",
            p,
        )
        .unwrap();
        assert_eq!(get(&nested, "execution.checkpointing.interval").as_deref(), Some("1 s"));
        assert_eq!(get(&nested, "execution.checkpointing.unaligned").as_deref(), Some("true"));
        assert!(unknown_keys(&nested, &registry).is_empty());
        let typo = parse("taskmanager.numberOfTaskSlot: 4\n", p).unwrap();
        let lines = unknown_keys(&typo, &registry);
        assert_eq!(lines.len(), 1);
        assert!(lines[0].contains("did you mean 'taskmanager.numberOfTaskSlots'"), "{lines:?}");
        assert!(parse("- a\n- b\n", p).is_err());
        assert!(parse("key: [unclosed\n", p).unwrap_err().to_string().contains("not valid YAML"));
        assert!(load(Path::new("/no/such/riffle.yaml")).unwrap_err().to_string().contains("cannot read"));
    }
}
