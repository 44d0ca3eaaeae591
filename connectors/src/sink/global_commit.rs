//! Partition commit across sink subtasks: a partition is committed only once every subtask
//! has made its files of that partition visible (Flink funnels this through one
//! `PartitionCommitter` task; riffle coordinates through small marker files in the output).
//!
//! After its files of a completed checkpoint are visible, each subtask of a sink with
//! parallelism > 1 replaces its *commit marker* `<dir>/_riffle-commits/<subtask>.json`
//! ([`CommitMarker`]): how far its visible output goes (its watermark at that checkpoint's
//! barrier, the processing time of the commit) and the partitions it wrote that are not
//! committed yet. It then reads every subtask's marker and [`decide`]s: the trigger is
//! evaluated over the union of the markers' partitions with the *minimum* watermark and the
//! *minimum* commit time over the markers, so a partition is committed only when the trigger
//! holds for the output every subtask has already made visible. A subtask behind holds the
//! commit back; the decision is the same whichever subtask takes it (writing a success file
//! twice is harmless), so the last subtask to commit a checkpoint, or to finish, commits.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::commit::{self, CommitPolicy, PendingPartition};

/// The directory of the markers under the sink's base directory (hidden from readers: `_`).
pub const MARKER_DIR: &str = "_riffle-commits";

/// The marker's file name of `subtask`.
pub fn marker_name(subtask: u32) -> String {
    format!("{subtask}.json")
}

/// What one subtask has made visible, as the other subtasks read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitMarker {
    /// The subtask that wrote it.
    pub subtask: u32,
    /// The sink's parallelism when it was written: a marker of another parallelism counts as
    /// absent (it comes from before a rescale).
    pub parallelism: u32,
    /// The uuid of the subtask's part files (for people reading the marker).
    pub uuid: String,
    /// The sequence number of the last transaction whose files are visible (`None`: none yet
    /// since this subtask started).
    pub seq: Option<u64>,
    /// The processing time (ms) when those files were visible (`i64::MIN`: none yet).
    pub committed_ms: i64,
    /// The watermark at that transaction's checkpoint barrier (`i64::MAX`: the input ended
    /// and every file of this subtask is visible).
    pub watermark: Option<i64>,
    /// The partitions this subtask wrote that are not committed yet.
    pub partitions: Vec<PendingPartition>,
}

impl CommitMarker {
    /// Whether the subtask's input ended and all its output is visible.
    pub fn finished(&self) -> bool {
        self.watermark == Some(i64::MAX)
    }
}

/// The markers of subtasks `0..parallelism` written at `parallelism`, by subtask; `None` when
/// one is missing.
fn complete(parallelism: u32, markers: &[CommitMarker]) -> Option<Vec<&CommitMarker>> {
    (0..parallelism).map(|s| markers.iter().find(|m| m.subtask == s && m.parallelism == parallelism)).collect()
}

/// Whether every subtask of `parallelism` has finished (the markers are no longer needed).
pub fn all_finished(parallelism: u32, markers: &[CommitMarker]) -> bool {
    complete(parallelism, markers).is_some_and(|ms| ms.iter().all(|m| m.finished()))
}

/// The partitions to commit now, given the markers read: `None` (defer) when a subtask of
/// `parallelism` has no marker at that parallelism; otherwise the partitions of the markers
/// (merged by path, the earliest creation time) that `policy`'s trigger lets commit at the
/// minimum commit time and minimum watermark over the markers (a finished subtask does not
/// hold back the processing time). When every subtask finished, every partition commits.
pub fn decide(policy: &CommitPolicy, parallelism: u32, markers: &[CommitMarker]) -> Option<Vec<PendingPartition>> {
    let ms = complete(parallelism, markers)?;
    let watermark = ms.iter().map(|m| m.watermark).try_fold(i64::MAX, |acc, w| w.map(|w| acc.min(w)));
    let now = ms.iter().map(|m| if m.finished() { i64::MAX } else { m.committed_ms }).min().unwrap_or(i64::MIN);
    let mut union: BTreeMap<String, PendingPartition> = BTreeMap::new();
    for p in ms.iter().flat_map(|m| &m.partitions) {
        union
            .entry(p.spec.path())
            .and_modify(|q| {
                q.created_ms = q.created_ms.min(p.created_ms);
                q.last_txn = q.last_txn.max(p.last_txn);
            })
            .or_insert_with(|| p.clone());
    }
    let candidates: Vec<PendingPartition> = union.into_values().collect();
    Some(commit::ready(policy, &candidates, now, watermark).into_iter().cloned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::commit::{TimeExtractor, Trigger};
    use crate::sink::partition::PartitionSpec;
    use riffle_api::Configuration;

    fn policy(trigger: Trigger, delay_ms: i64) -> CommitPolicy {
        let mut c = Configuration::new();
        c.set("partition.time-extractor.timestamp-pattern", "$dt 00:00:00");
        CommitPolicy {
            trigger,
            delay_ms,
            success_file: "_SUCCESS".into(),
            extractor: TimeExtractor::from_config(&c).unwrap(),
        }
    }

    /// 2026-12-03T00:00:00Z in ms.
    const DEC3: i64 = 1_796_256_000_000;
    const DAY: i64 = 86_400_000;

    fn part(dt: &str, created_ms: i64) -> PendingPartition {
        let day: i64 = dt.rsplit('-').next().unwrap().parse().unwrap();
        PendingPartition {
            spec: PartitionSpec { values: vec![("dt".into(), dt.into())] },
            created_ms,
            partition_time_ms: Some(DEC3 + (day - 3) * DAY),
            last_txn: 0,
        }
    }

    fn marker(
        subtask: u32,
        parallelism: u32,
        committed_ms: i64,
        wm: Option<i64>,
        parts: &[PendingPartition],
    ) -> CommitMarker {
        CommitMarker {
            subtask,
            parallelism,
            uuid: String::new(),
            seq: Some(1),
            committed_ms,
            watermark: wm,
            partitions: parts.to_vec(),
        }
    }

    fn paths(d: Option<Vec<PendingPartition>>) -> Option<Vec<String>> {
        d.map(|v| v.iter().map(|p| p.spec.path()).collect())
    }

    #[test]
    fn the_slowest_watermark_decides_and_partitions_are_merged() {
        let p = policy(Trigger::PartitionTime, 0);
        let (d3, d4) = (part("2026-12-03", 0), part("2026-12-04", 0));
        // Subtask 0 is past Dec 4; subtask 1's visible output only reaches Dec 3.
        let ms = [
            marker(0, 2, 10, Some(DEC3 + 2 * DAY), &[d3.clone(), d4.clone()]),
            marker(1, 2, 10, Some(DEC3), std::slice::from_ref(&d4)),
        ];
        assert_eq!(paths(decide(&p, 2, &ms)), Some(vec!["dt=2026-12-03".to_string()]));
        let ms = [ms[0].clone(), marker(1, 2, 10, Some(DEC3 + DAY), std::slice::from_ref(&d4))];
        assert_eq!(paths(decide(&p, 2, &ms)), Some(vec!["dt=2026-12-03".to_string(), "dt=2026-12-04".to_string()]));
        let ms = [ms[0].clone(), marker(1, 2, 10, None, &[])];
        assert_eq!(paths(decide(&p, 2, &ms)), Some(vec![]), "a subtask without a watermark holds everything back");
    }

    #[test]
    fn process_time_uses_the_earliest_creation_and_the_slowest_commit() {
        let p = policy(Trigger::ProcessTime, 1_000);
        let ms = [
            marker(0, 2, 5_000, None, &[part("2026-12-03", 3_000)]),
            marker(1, 2, 3_999, None, &[part("2026-12-03", 2_000)]),
        ];
        assert_eq!(paths(decide(&p, 2, &ms)), Some(vec!["dt=2026-12-03".to_string()]), "2 s + 1 s <= 3.999 s");
        let ms = [ms[0].clone(), marker(1, 2, 2_999, None, &[])];
        assert_eq!(paths(decide(&p, 2, &ms)), Some(vec![]), "subtask 1's visible output ends before 3 s + 1 s");
        let ms = [ms[0].clone(), marker(1, 2, i64::MIN, None, &[])];
        assert_eq!(paths(decide(&p, 2, &ms)), Some(vec![]), "subtask 1 has made nothing visible since it started");
        let finished = marker(1, 2, 0, Some(i64::MAX), &[]);
        assert_eq!(
            paths(decide(&p, 2, &[ms[0].clone(), finished])).map(|v| v.len()),
            Some(1),
            "a finished subtask holds nothing back"
        );
    }

    #[test]
    fn a_missing_or_rescaled_marker_defers_and_the_end_commits_everything() {
        let p = policy(Trigger::PartitionTime, DAY);
        let m0 = marker(0, 2, 0, Some(i64::MAX), &[part("2026-12-03", 0)]);
        assert_eq!(decide(&p, 2, std::slice::from_ref(&m0)), None, "subtask 1 has no marker");
        let old = marker(1, 3, 0, Some(i64::MAX), &[]);
        assert_eq!(decide(&p, 2, &[m0.clone(), old.clone()]), None, "a marker from parallelism 3 is absent");
        assert!(!all_finished(2, &[m0.clone(), old]));
        let extra = marker(2, 3, 0, Some(0), &[]);
        let m1 = marker(1, 2, 0, Some(i64::MAX), &[part("2026-12-09", 0)]);
        let all = [m0, m1, extra];
        assert_eq!(
            paths(decide(&p, 2, &all)).map(|v| v.len()),
            Some(2),
            "markers past the parallelism are ignored; the end commits all"
        );
        assert!(all_finished(2, &all));
    }
}
