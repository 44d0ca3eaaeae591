//! The registry of every configuration option riffle reads: the source of truth for
//! reporting unknown keys (a typo in a config file is reported, not silently ignored) and for
//! docs/configuration.md. Each crate declares its options next to the code that reads them
//! and lists them in its `options()`; the `riffle` crate builds the one [`Registry`] of all.

use crate::config::{Group, OptionInfo};

/// What [`Registry::review`] found in a configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Review {
    /// Problems that must stop a submission: likely typos of known keys, unparsable values.
    pub refused: Vec<String>,
    /// Keys riffle does not read and ignores.
    pub warnings: Vec<String>,
}

/// Options, in the order their crates list them.
#[derive(Clone, Default)]
pub struct Registry {
    options: Vec<&'static dyn OptionInfo>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.options.iter().map(|o| o.key())).finish()
    }
}

impl Registry {
    /// A registry of `options`.
    pub fn new(options: impl IntoIterator<Item = &'static dyn OptionInfo>) -> Self {
        Self { options: options.into_iter().collect() }
    }

    /// The options.
    pub fn options(&self) -> &[&'static dyn OptionInfo] {
        &self.options
    }

    /// Whether riffle reads `key` (an option's key or one of its deprecated keys).
    pub fn is_known(&self, key: &str) -> bool {
        self.known_keys().any(|k| k == key)
    }

    /// The known key closest to `key` (a likely typo), if one is close.
    pub fn suggestion(&self, key: &str) -> Option<&'static str> {
        self.options
            .iter()
            .map(|o| o.key())
            .map(|k| (k, edit_distance(key, k)))
            .filter(|(_, d)| *d <= 3)
            .min_by_key(|(_, d)| *d)
            .map(|(k, _)| k)
    }

    /// What a job's or a file's configuration gets wrong, by the declared options: a key
    /// riffle does not read that is close to one it does (a likely typo) and a value its
    /// option cannot parse are refused; a key nothing like a known one is only warned about
    /// (riffle ignores it).
    pub fn review(&self, conf: &crate::config::Configuration) -> Review {
        let mut review = Review::default();
        for (key, value) in conf.entries() {
            let option = self.options.iter().find(|o| o.key() == key || o.deprecated_keys().contains(&key));
            match option {
                Some(o) => {
                    if let Err(reason) = o.check(value) {
                        review.refused.push(format!("invalid value '{value}' for '{key}': {reason}"));
                    }
                }
                None => match self.suggestion(key) {
                    Some(s) => review.refused.push(format!("unknown configuration key '{key}': did you mean '{s}'?")),
                    None => review.warnings.push(format!("unknown configuration key '{key}' (ignored)")),
                },
            }
        }
        review
    }

    /// Keys (or deprecated keys) declared more than once: two declarations of one key would
    /// document and default it twice.
    pub fn duplicates(&self) -> Vec<&'static str> {
        let mut keys: Vec<_> = self.known_keys().collect();
        keys.sort_unstable();
        let mut dups: Vec<_> = keys.windows(2).filter(|w| w[0] == w[1]).map(|w| w[0]).collect();
        dups.dedup();
        dups
    }

    /// Fallback keys that are not an option's key: a fallback is another option, declared.
    pub fn undeclared_fallbacks(&self) -> Vec<&'static str> {
        let keys: Vec<_> = self.options.iter().map(|o| o.key()).collect();
        self.options.iter().flat_map(|o| o.fallback_keys()).copied().filter(|k| !keys.contains(k)).collect()
    }

    fn known_keys(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.options.iter().flat_map(|o| std::iter::once(o.key()).chain(o.deprecated_keys().iter().copied()))
    }

    /// The options as a Markdown page, one table per [`Group`] (docs/configuration.md is this,
    /// kept current by a test).
    pub fn markdown(&self) -> String {
        let mut out = String::from(
            "# Configuration keys\n\nEvery key riffle reads (Flink's names where Flink has one), its default and \
             what it does. Set them with `-D key=value`, in a `--config` YAML file, or in a job's configuration. A \
             key not listed here is reported as unknown. This page is generated from the options the code \
             declares (`riffle config-docs` prints it).\n",
        );
        for group in Group::ALL {
            let options: Vec<_> = self.options.iter().filter(|o| o.group() == group).collect();
            if options.is_empty() {
                continue;
            }
            out.push_str(&format!(
                "\n## {}\n\n| key | type | default | what it does |\n|---|---|---|---|\n",
                group.title()
            ));
            for o in options {
                let default = o.default_text().map_or_else(|| "—".to_string(), |d| format!("`{d}`"));
                let mut help = o.description().to_string();
                let list = |keys: &[&str]| keys.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
                if !o.fallback_keys().is_empty() {
                    help.push_str(&format!("; when unset, the value of {}", list(o.fallback_keys())));
                }
                if !o.deprecated_keys().is_empty() {
                    help.push_str(&format!("; also read from the deprecated {}", list(o.deprecated_keys())));
                }
                out.push_str(&format!("| `{}` | {} | {} | {} |\n", o.key(), o.type_name(), default, help));
            }
        }
        out
    }
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
    use crate::config::ConfigOption;

    const SLOTS: ConfigOption<u32> =
        ConfigOption::new(Group::Processes, "taskmanager.numberOfTaskSlots", 1, "slots per TaskManager");
    const HA: ConfigOption<String> = ConfigOption::new(Group::HighAvailability, "high-availability.type", "NONE", "")
        .with_deprecated_keys(&["high-availability"]);

    #[test]
    fn known_keys_and_typos_get_a_suggestion() {
        let r = Registry::new([&SLOTS as &dyn OptionInfo, &HA]);
        assert!(r.is_known("taskmanager.numberOfTaskSlots"));
        assert!(r.is_known("high-availability"));
        assert!(!r.is_known("taskmanager.numberOfTaskSlot"));
        assert_eq!(r.suggestion("taskmanager.numberOfTaskSlot"), Some("taskmanager.numberOfTaskSlots"));
        assert_eq!(r.suggestion("completely.different"), None);
        assert!(r.duplicates().is_empty());
        assert_eq!(Registry::new([&SLOTS as &dyn OptionInfo, &SLOTS]).duplicates(), ["taskmanager.numberOfTaskSlots"]);
    }

    #[test]
    fn a_review_refuses_typos_and_bad_values_and_warns_of_foreign_keys() {
        let r = Registry::new([&SLOTS as &dyn OptionInfo, &HA]);
        let mut c = crate::config::Configuration::new();
        c.set("taskmanager.numberOfTaskSlot", "2")
            .set("taskmanager.numberOfTaskSlots", "two")
            .set("high-availability", "zookeeper")
            .set("my.own.thing", "x");
        let review = r.review(&c);
        assert_eq!(review.warnings, ["unknown configuration key 'my.own.thing' (ignored)"]);
        assert_eq!(review.refused.len(), 2, "{review:?}");
        assert_eq!(
            review.refused[0],
            "unknown configuration key 'taskmanager.numberOfTaskSlot': did you mean 'taskmanager.numberOfTaskSlots'?"
        );
        assert!(
            review.refused[1].starts_with("invalid value 'two' for 'taskmanager.numberOfTaskSlots': "),
            "{review:?}"
        );
        let mut good = crate::config::Configuration::new();
        good.set("taskmanager.numberOfTaskSlots", "4");
        assert_eq!(r.review(&good), Review::default());
    }

    #[test]
    fn the_page_has_a_table_per_group() {
        let md = Registry::new([&SLOTS as &dyn OptionInfo, &HA]).markdown();
        assert!(md.contains("\n## JobManager and TaskManager processes\n"), "{md}");
        assert!(md.contains("| `taskmanager.numberOfTaskSlots` | integer | `1` | slots per TaskManager |\n"), "{md}");
        assert!(md.contains("also read from the deprecated `high-availability`"), "{md}");
        assert!(!md.contains("## Logging"), "{md}");
    }
}
