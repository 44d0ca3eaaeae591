//! Slot instances of a plugin library are unloaded for real: loading, building a job with and
//! unloading a slot's own copy of the library 200 times leaves the process's memory where it
//! was. (A test binary of its own: no other test shares the process whose memory it measures.)

mod common;

use common::template_plugin;

use riffle::Configuration;

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn loading_and_unloading_slot_instances_200_times_does_not_grow_memory() {
    use riffle_cluster::remote::slot_instances::SlotInstances;
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("sums.so");
    std::fs::copy(template_plugin(), &lib).unwrap();
    let mut slots = SlotInstances::new(dir.path().join("slots"));
    let args = ["10".to_string(), "2".to_string(), dir.path().join("out").display().to_string()];
    let cycle = |slots: &mut SlotInstances, i: u64| {
        let job = riffle::JobId(u128::from(i) + 1);
        let g = slots.graph_for(job, 0, &lib, "sums", &args, &Configuration::new()).unwrap();
        drop(g);
        slots.release(job, 0);
        assert_eq!(slots.loaded(), 0);
    };
    // Warm up (allocator arenas, the loader's own bookkeeping), then measure.
    for i in 0..20 {
        cycle(&mut slots, i);
    }
    let before = rss_kb();
    for i in 20..220 {
        cycle(&mut slots, i);
    }
    let grown = rss_kb().saturating_sub(before);
    // Unloaded: no copy is mapped any more.
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    assert_eq!(maps.lines().filter(|l| l.contains("-slot0.so")).count(), 0);
    assert!(grown < 16 * 1024, "200 loads and unloads grew the process by {grown} KiB");
    assert_eq!(std::fs::read_dir(dir.path().join("slots")).unwrap().count(), 0);
}
