//! The state backends against the heap: same reads, same snapshots, same restores, with real
//! files in temporary directories and a memory budget far below the state's size.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use riffle_state::backend::DIR_KEY;
use riffle_state::{
    assign_to_key_group, key_group_range_for_subtask, key_hash, BackendConfig, BackendKind, KeyGroupRange,
    KeyedStateStore, ListState, MapState, StateError, StateSnapshot, ValueState,
};

const KEYS: u64 = 3_000;
const TINY_BUDGET: usize = 8 << 10;

struct Handles {
    value: ValueState<String>,
    list: ListState<i32>,
    map: MapState<u8, String>,
}

fn handles(s: &mut KeyedStateStore<u64>) -> Handles {
    Handles {
        value: s.value_state("value").unwrap(),
        list: s.list_state("list").unwrap(),
        map: s.map_state("map").unwrap(),
    }
}

fn expected_value(k: u64) -> String {
    format!("value-{k}")
}

fn expected_list(k: u64) -> Vec<i32> {
    (0..(k % 4) as i32).map(|i| i * 1000 + k as i32).collect()
}

fn expected_map(k: u64) -> BTreeMap<u8, String> {
    (0..(k % 3) as u8).map(|i| (i, format!("m{k}-{i}"))).collect()
}

/// Writes every key's value, list and map.
fn write_all(s: &mut KeyedStateStore<u64>, h: &Handles) {
    for k in 0..KEYS {
        s.try_set_current_key(k).unwrap();
        h.value.set(s, expected_value(k)).unwrap();
        for x in expected_list(k) {
            h.list.add(s, x).unwrap();
        }
        for (mk, mv) in expected_map(k) {
            h.map.put(s, mk, mv).unwrap();
        }
    }
}

/// Checks every key of `keys` reads back as written (`updated` keys have a new value).
fn check_all(
    s: &mut KeyedStateStore<u64>,
    h: &Handles,
    keys: impl Iterator<Item = u64>,
    updated: impl Fn(u64) -> bool,
) {
    for k in keys {
        s.try_set_current_key(k).unwrap();
        let want = if updated(k) { format!("updated-{k}") } else { expected_value(k) };
        assert_eq!(h.value.get(s).unwrap(), Some(&want), "value of key {k}");
        assert_eq!(h.list.get(s).unwrap(), expected_list(k).as_slice(), "list of key {k}");
        let map: BTreeMap<u8, String> = h.map.entries(s).unwrap().into_iter().collect();
        assert_eq!(map, expected_map(k), "map of key {k}");
    }
}

/// Snapshot entries decoded, so that backends can be compared regardless of entry order and
/// of the (randomly seeded) order inside map values.
type Decoded = BTreeMap<String, Vec<(u32, u64, String)>>;

fn decode(snapshots: &[StateSnapshot]) -> Decoded {
    let mut out = Decoded::new();
    for snap in snapshots {
        let mut entries: Vec<(u32, u64, String)> = snap
            .entries
            .iter()
            .map(|(kg, bytes)| {
                let (k, v) = match snap.name.as_str() {
                    "value" => {
                        let (k, v): (u64, String) = rmp_serde::from_slice(bytes).unwrap();
                        (k, v)
                    }
                    "list" => {
                        let (k, v): (u64, Vec<i32>) = rmp_serde::from_slice(bytes).unwrap();
                        (k, format!("{v:?}"))
                    }
                    "map" | "late" => {
                        let (k, v): (u64, HashMap<u8, String>) = rmp_serde::from_slice(bytes).unwrap();
                        (k, format!("{:?}", v.into_iter().collect::<BTreeMap<_, _>>()))
                    }
                    other => panic!("unexpected state {other}"),
                };
                (*kg, k, v)
            })
            .collect();
        entries.sort();
        out.insert(snap.name.clone(), entries);
    }
    out
}

fn heap_with_all_written() -> KeyedStateStore<u64> {
    let mut s = KeyedStateStore::new();
    let h = handles(&mut s);
    write_all(&mut s, &h);
    s
}

fn config(kind: BackendKind, dir: &tempfile::TempDir) -> BackendConfig {
    BackendConfig { memory_budget_bytes: TINY_BUDGET, ..BackendConfig::new(kind) }.with_dir(dir.path())
}

fn spills_reads_back_and_updates_persist(kind: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let mut s = KeyedStateStore::<u64>::with_backend(config(kind, &dir)).unwrap();
    assert_eq!(s.backend_kind(), kind);
    let h = handles(&mut s);
    write_all(&mut s, &h);
    assert!(s.spilled_key_groups() > 0, "a 4 KiB budget must spill");
    assert_eq!(h.value.len(&s).unwrap(), KEYS as usize, "len counts spilled keys");
    check_all(&mut s, &h, 0..KEYS, |_| false);
    // Updates of reloaded keys persist through further spilling.
    for k in (0..KEYS).step_by(3) {
        s.try_set_current_key(k).unwrap();
        h.value.set(&mut s, format!("updated-{k}")).unwrap();
    }
    assert!(s.spilled_key_groups() > 0);
    check_all(&mut s, &h, (0..KEYS).rev(), |k| k % 3 == 0);
    // Removals persist too (and empty states leave nothing behind).
    for k in (1..KEYS).step_by(3) {
        s.try_set_current_key(k).unwrap();
        h.value.clear(&mut s).unwrap();
        h.list.clear(&mut s).unwrap();
        h.map.clear(&mut s).unwrap();
    }
    for k in 0..KEYS {
        s.try_set_current_key(k).unwrap();
        assert_eq!(h.value.get(&s).unwrap().is_none(), k % 3 == 1, "key {k}");
    }
    assert_eq!(h.value.len(&s).unwrap(), (KEYS - KEYS / 3) as usize);
}

fn snapshot_equals_heap(kind: BackendKind) {
    let heap = heap_with_all_written();
    let dir = tempfile::tempdir().unwrap();
    let mut s = KeyedStateStore::<u64>::with_backend(config(kind, &dir)).unwrap();
    let h = handles(&mut s);
    write_all(&mut s, &h);
    assert!(s.spilled_key_groups() > 0);
    // 128 differs from the backend's internal key groups (keys are decoded), 1024 does not.
    for max_parallelism in [128, 1024] {
        let want = decode(&heap.snapshot(max_parallelism).unwrap());
        assert_eq!(want["value"].len(), KEYS as usize);
        assert_eq!(decode(&s.snapshot(max_parallelism).unwrap()), want, "max parallelism {max_parallelism}");
    }
}

fn restore_keeps_exactly_the_range(kind: BackendKind) {
    let snap = heap_with_all_written().snapshot(128).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let range = key_group_range_for_subtask(128, 2, 1);
    let mut r = KeyedStateStore::<u64>::with_backend(config(kind, &dir)).unwrap();
    // "value" is registered before the restore, "list" and "map" only after it (pending).
    let value = r.value_state::<String>("value").unwrap();
    r.restore(snap.clone(), range).unwrap();
    assert!(r.spilled_key_groups() > 0, "restore keeps to the budget");
    let h = handles(&mut r);
    let owned = |k: u64| range.contains(assign_to_key_group(key_hash(&k), 128));
    let n_owned = (0..KEYS).filter(|k| owned(*k)).count();
    assert!(n_owned > 0 && n_owned < KEYS as usize);
    assert_eq!(value.len(&r).unwrap(), n_owned, "the handle from before the restore sees it");
    check_all(&mut r, &h, (0..KEYS).filter(|k| owned(*k)), |_| false);
    for k in (0..KEYS).filter(|k| !owned(*k)) {
        r.try_set_current_key(k).unwrap();
        assert_eq!(h.value.get(&r).unwrap(), None, "key {k} is not in the range");
        assert!(h.list.get(&r).unwrap().is_empty());
        assert!(h.map.entries(&r).unwrap().is_empty());
    }
    // Its snapshot is the heap's, filtered to the range.
    let mut want = decode(&snap);
    for entries in want.values_mut() {
        entries.retain(|(kg, _, _)| range.contains(*kg));
    }
    assert_eq!(decode(&r.snapshot(128).unwrap()), want);
}

fn late_registration_after_spilling(kind: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let mut s = KeyedStateStore::<u64>::with_backend(config(kind, &dir)).unwrap();
    let h = handles(&mut s);
    write_all(&mut s, &h);
    assert!(s.spilled_key_groups() > 0);
    let late = s.map_state::<u8, String>("late").unwrap();
    for k in (0..KEYS).step_by(7) {
        s.try_set_current_key(k).unwrap();
        late.put(&mut s, 1, format!("late-{k}")).unwrap();
    }
    check_all(&mut s, &h, 0..KEYS, |_| false);
    for k in 0..KEYS {
        s.try_set_current_key(k).unwrap();
        let want = (k % 7 == 0).then(|| format!("late-{k}"));
        assert_eq!(late.get(&s, &1).unwrap().cloned(), want, "key {k}");
    }
    assert_eq!(decode(&s.snapshot(128).unwrap())["late"].len(), KEYS.div_ceil(7) as usize);
}

fn table_mut_sees_every_key(kind: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let mut s = KeyedStateStore::<u64>::with_backend(config(kind, &dir)).unwrap();
    let h = handles(&mut s);
    write_all(&mut s, &h);
    assert!(s.spilled_key_groups() > 0);
    let table = h.value.table_mut(&mut s).unwrap();
    assert_eq!(table.len(), KEYS as usize);
    table.insert(KEYS, "written through the table".into());
    assert_eq!(s.spilled_key_groups(), 0, "everything was loaded");
    // Key switches spill again, and the entry written through the table is kept.
    check_all(&mut s, &h, 0..KEYS, |_| false);
    assert!(s.spilled_key_groups() > 0);
    s.try_set_current_key(KEYS).unwrap();
    assert_eq!(h.value.get(&s).unwrap().map(String::as_str), Some("written through the table"));
}

fn directory_is_removed_on_drop(kind: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let parent = dir.path().join("not-yet-there");
    let mut a = KeyedStateStore::<u64>::with_backend(config(kind, &dir).with_dir(&parent)).unwrap();
    let b = KeyedStateStore::<u64>::with_backend(config(kind, &dir).with_dir(&parent)).unwrap();
    let (a_dir, b_dir) = (a.backend_dir().unwrap().to_path_buf(), b.backend_dir().unwrap().to_path_buf());
    assert_ne!(a_dir, b_dir, "stores sharing a configured directory get their own");
    assert!(a_dir.starts_with(&parent) && a_dir.is_dir());
    let h = handles(&mut a);
    write_all(&mut a, &h);
    assert!(a.spilled_key_groups() > 0);
    assert!(std::fs::read_dir(&a_dir).unwrap().next().is_some(), "files were written");
    drop(a);
    assert!(!a_dir.exists(), "the store's directory is removed with it");
    assert!(b_dir.is_dir(), "another store's directory is left alone");
    drop(b);
    assert!(!b_dir.exists());
    assert!(parent.is_dir(), "the configured directory itself stays");
}

#[test]
fn spillable_heap_spills_reads_back_and_updates_persist() {
    spills_reads_back_and_updates_persist(BackendKind::SpillableHeap);
}

#[test]
fn sled_spills_reads_back_and_updates_persist() {
    spills_reads_back_and_updates_persist(BackendKind::Sled);
}

#[test]
fn spillable_heap_snapshot_equals_heap_snapshot() {
    snapshot_equals_heap(BackendKind::SpillableHeap);
}

#[test]
fn sled_snapshot_equals_heap_snapshot() {
    snapshot_equals_heap(BackendKind::Sled);
}

#[test]
fn spillable_heap_restore_keeps_exactly_the_key_group_range() {
    restore_keeps_exactly_the_range(BackendKind::SpillableHeap);
}

#[test]
fn sled_restore_keeps_exactly_the_key_group_range() {
    restore_keeps_exactly_the_range(BackendKind::Sled);
}

#[test]
fn spillable_heap_registers_states_after_spilling() {
    late_registration_after_spilling(BackendKind::SpillableHeap);
}

#[test]
fn sled_registers_states_after_spilling() {
    late_registration_after_spilling(BackendKind::Sled);
}

#[test]
fn spillable_heap_table_mut_sees_every_key() {
    table_mut_sees_every_key(BackendKind::SpillableHeap);
}

#[test]
fn sled_table_mut_sees_every_key() {
    table_mut_sees_every_key(BackendKind::Sled);
}

#[test]
fn spillable_heap_directory_is_removed_on_drop() {
    directory_is_removed_on_drop(BackendKind::SpillableHeap);
}

#[test]
fn sled_directory_is_removed_on_drop() {
    directory_is_removed_on_drop(BackendKind::Sled);
}

#[test]
fn sled_round_trips_through_snapshot_and_restore() {
    // Sled to sled, without reopening a database: snapshot, restore into a fresh store.
    let dir = tempfile::tempdir().unwrap();
    let mut s = KeyedStateStore::<u64>::with_backend(config(BackendKind::Sled, &dir)).unwrap();
    let h = handles(&mut s);
    write_all(&mut s, &h);
    let snap = s.snapshot(128).unwrap();
    drop(s);
    let mut r = KeyedStateStore::<u64>::with_backend(config(BackendKind::Sled, &dir)).unwrap();
    r.restore(snap.clone(), KeyGroupRange { start: 0, end: 127 }).unwrap();
    let h = handles(&mut r);
    assert!(r.spilled_key_groups() > 0);
    check_all(&mut r, &h, 0..KEYS, |_| false);
    assert_eq!(decode(&r.snapshot(128).unwrap()), decode(&snap));
}

#[test]
fn heap_backend_is_unaffected_by_budget_and_directory() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = BackendConfig { memory_budget_bytes: 1, ..BackendConfig::heap() }.with_dir(dir.path().join("x"));
    let mut s = KeyedStateStore::<u64>::with_backend(cfg).unwrap();
    assert_eq!(s.backend_kind(), BackendKind::Heap);
    assert!(s.backend_dir().is_none());
    assert!(!dir.path().join("x").exists(), "the heap creates no directory");
    let h = handles(&mut s);
    write_all(&mut s, &h);
    assert_eq!(s.spilled_key_groups(), 0);
    check_all(&mut s, &h, 0..KEYS, |_| false);
    assert_eq!(decode(&s.snapshot(128).unwrap()), decode(&heap_with_all_written().snapshot(128).unwrap()));
    assert_eq!(KeyedStateStore::<u64>::new().backend_kind(), BackendKind::Heap);
}

#[test]
fn a_bogus_backend_name_is_a_clear_error() {
    let err = BackendKind::from_str("bogus").unwrap_err();
    let msg = err.to_string();
    for valid in ["'heap'", "'hashmap'", "'spillable-heap'", "'sled'", "'bogus'", "state.backend"] {
        assert!(msg.contains(valid), "{msg:?} names {valid}");
    }
    assert_eq!(BackendKind::from_str(" HashMap ").unwrap(), BackendKind::Heap);
    assert_eq!("spillable-heap".parse::<BackendKind>().unwrap(), BackendKind::SpillableHeap);
    assert_eq!("sled".parse::<BackendKind>().unwrap(), BackendKind::Sled);
    for kind in [BackendKind::Heap, BackendKind::SpillableHeap, BackendKind::Sled] {
        assert_eq!(kind.to_string().parse::<BackendKind>().unwrap(), kind);
    }
}

#[test]
fn backend_config_is_read_from_options() {
    let opts: HashMap<&str, &str> = [
        ("state.backend", "spillable-heap"),
        ("state.backend.memory-budget", "64 mb"),
        (DIR_KEY, "file:///tmp/riffle-spill"),
        ("state.backend.key-groups", "256"),
    ]
    .into();
    let cfg = BackendConfig::from_options(|k| opts.get(k).copied()).unwrap();
    assert_eq!(cfg.kind, BackendKind::SpillableHeap);
    assert_eq!(cfg.memory_budget_bytes, 64 << 20);
    assert_eq!(cfg.dir.as_deref(), Some(std::path::Path::new("/tmp/riffle-spill")));
    assert_eq!(cfg.key_groups, 256);
    assert_eq!(BackendConfig::from_options(|_| None).unwrap(), BackendConfig::heap());
    let bad_budget = BackendConfig::from_options(|k| (k == "state.backend.memory-budget").then_some("lots"));
    assert!(matches!(bad_budget, Err(StateError::Config { key, .. }) if key == "state.backend.memory-budget"));
    let bad_kind = BackendConfig::from_options(|k| (k == "state.backend").then_some("rocksdb"));
    assert!(matches!(bad_kind, Err(StateError::Config { key, .. }) if key == "state.backend"));
}

#[test]
fn a_lost_spill_file_is_an_io_error_not_lost_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = KeyedStateStore::<u64>::with_backend(config(BackendKind::SpillableHeap, &dir)).unwrap();
    let h = handles(&mut s);
    write_all(&mut s, &h);
    assert!(s.spilled_key_groups() > 0);
    for f in std::fs::read_dir(s.backend_dir().unwrap()).unwrap() {
        std::fs::remove_file(f.unwrap().path()).unwrap();
    }
    // Some key is in a spilled group: switching to it fails, and so do handle accesses.
    let failed = (0..KEYS).find_map(|k| s.try_set_current_key(k).err()).expect("a key in a lost group");
    assert!(matches!(failed, StateError::Io { .. }), "{failed:?}");
    assert_eq!(h.value.get(&s).unwrap_err(), failed);
    assert!(s.snapshot(128).is_err(), "a snapshot does not silently miss state");
}
