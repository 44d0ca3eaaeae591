//! Unaligned checkpoints under real backpressure: in-flight records become channel state, a
//! restore replays them exactly once, and aligned checkpoints of the same job hold none.

use std::time::Duration;

use riffle_api::Configuration;
use riffle_scenarios::backpressure::{measure, resume_check, BackpressureOptions};

fn options() -> BackpressureOptions {
    BackpressureOptions {
        parallelism: 2,
        keys: 50,
        slow_micros: 100,
        checkpoints: 1,
        warm_up: Duration::from_millis(300),
    }
}

#[test]
fn restoring_an_unaligned_checkpoint_with_records_in_flight_is_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let batches = resume_check(&options(), 200_000, dir.path(), &Configuration::new())
        .unwrap_or_else(|e| panic!("resume check failed: {e}"));
    assert!(batches > 0, "the checkpoint was taken under backpressure: it must hold in-flight records");
}

#[test]
fn only_unaligned_checkpoints_persist_channel_state() {
    let report = measure(&options(), &Configuration::new()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.aligned.channel_batches, vec![0], "aligned barriers wait for the backlog instead");
    assert!(report.unaligned.channel_batches[0] > 0, "{report:?}");
    assert!(
        report.unaligned.sizes[0] > report.aligned.sizes[0],
        "channel state is part of the checkpoint's size: {report:?}"
    );
}
