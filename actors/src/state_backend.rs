//! The `state.backend*` options: declared here, parsed by riffle-state (which knows no
//! configuration type and names its keys itself), read for every subtask.

use riffle_api::{ConfigOption, Configuration, Group, MemorySize, OptionInfo};
use riffle_state::backend::{BACKEND_KEY, DIR_KEY, KEY_GROUPS_KEY, MEMORY_BUDGET_KEY};
use riffle_state::{BackendConfig, StateError};

/// `state.backend`.
pub const STATE_BACKEND: ConfigOption<String> =
    ConfigOption::new(Group::StateBackend, BACKEND_KEY, "heap", "heap (or hashmap), spillable-heap or sled");
/// `state.backend.memory-budget` (riffle-state's default when unset).
pub const MEMORY_BUDGET: ConfigOption<Option<MemorySize>> = ConfigOption::optional(
    Group::StateBackend,
    MEMORY_BUDGET_KEY,
    "memory for keyed state before cold key groups move to disk (128 mb when unset)",
);
/// `state.backend.dir` (a `file://` prefix is accepted).
pub const DIR: ConfigOption<Option<String>> = ConfigOption::optional(
    Group::StateBackend,
    DIR_KEY,
    "where spilled key groups and sled trees live (default: the temp directory)",
);
/// `state.backend.key-groups` (riffle-state's default when unset).
pub const KEY_GROUPS: ConfigOption<Option<u32>> = ConfigOption::optional(
    Group::StateBackend,
    KEY_GROUPS_KEY,
    "internal key groups, the unit moved between memory and disk (1024 when unset)",
);

/// `state.backend.incremental`: checkpoints write only the state that changed since the
/// latest completed checkpoint (read by the checkpoint coordinator, which tells each
/// checkpoint's subtasks whether and on what to build; see `crate::incremental`; and by
/// riffle-state's `BackendConfig::from_options`, so that keyed operators keep the encoded
/// pieces of unchanged key groups only when checkpoints are incremental).
pub const INCREMENTAL: ConfigOption<bool> = ConfigOption::new(
    Group::StateBackend,
    "state.backend.incremental",
    true,
    "checkpoints write only state changed since the latest completed checkpoint and refer to the rest \
     (every backend; savepoints are always full)",
);

/// The options [`backend_config`] reads, and the backend's other options.
pub(crate) const OPTIONS: &[&dyn OptionInfo] =
    &[&STATE_BACKEND, &MEMORY_BUDGET, &DIR, &KEY_GROUPS, &crate::local_recovery::LOCAL_RECOVERY, &INCREMENTAL];

/// The memory budget each keyed state backend instance (one per keyed subtask) gets under
/// `conf`, bytes: None for `heap`, which keeps no budget, or a configuration riffle-state
/// refuses (a job with it fails to start, with the reason).
pub fn memory_budget(conf: &Configuration) -> Option<u64> {
    let c = backend_config(conf).ok()?;
    (c.kind != riffle_state::BackendKind::Heap).then_some(c.memory_budget_bytes as u64)
}

/// The backend a job's subtasks keep their keyed state in. riffle-state parses the values
/// (its error messages name the key); a key it asks for that is not declared here reads as
/// unset (the test below keeps the two lists equal).
pub fn backend_config(conf: &Configuration) -> Result<BackendConfig, StateError> {
    let backend_options: [&dyn OptionInfo; 4] = [&STATE_BACKEND, &MEMORY_BUDGET, &DIR, &KEY_GROUPS];
    BackendConfig::from_options(|k| backend_options.iter().find(|o| o.key() == k).and_then(|o| conf.raw(*o)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_riffle_state_reads_is_declared() {
        let asked = std::cell::RefCell::new(Vec::new());
        let _ = BackendConfig::from_options(|k| {
            asked.borrow_mut().push(k.to_string());
            None
        });
        let declared: Vec<_> = OPTIONS.iter().map(|o| o.key()).collect();
        for k in asked.into_inner() {
            assert!(declared.contains(&k.as_str()), "riffle-state reads '{k}', which is not declared");
        }
    }

    #[test]
    fn values_reach_riffle_state() {
        let mut c = Configuration::new();
        c.set(STATE_BACKEND.key(), "sled").set(KEY_GROUPS.key(), "16");
        let b = backend_config(&c).unwrap();
        assert_eq!((b.kind, b.key_groups), (riffle_state::BackendKind::Sled, 16));
    }
}
