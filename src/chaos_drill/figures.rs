//! The chaos drill's pure parts: the seeded random choices (when the next fault comes, which
//! kind), and the figures kept from what was observed (committed output growing or not, the
//! time from each fault to progress resuming).

use std::time::Duration;

/// SplitMix64: deterministic choices from the printed seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// Uniform in `[lo, hi)`.
    pub fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let f = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        lo + (hi.saturating_sub(lo)).mul_f64(f)
    }
}

/// What the drill does to the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// SIGKILL of a TaskManager process; a replacement starts under a new id.
    TaskManagerKill,
    /// SIGKILL of the leading JobManager; it starts again as a standby.
    LeaderKill,
    /// SIGKILL of a ZooKeeper member; it starts again a few seconds later.
    ZooKeeperKill,
    /// SIGSTOP of a TaskManager, SIGCONT a few seconds later.
    TaskManagerFreeze,
}

impl FaultKind {
    pub const ALL: [FaultKind; 4] =
        [FaultKind::TaskManagerKill, FaultKind::LeaderKill, FaultKind::ZooKeeperKill, FaultKind::TaskManagerFreeze];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::TaskManagerKill => "TaskManager SIGKILL",
            FaultKind::LeaderKill => "leader JobManager SIGKILL",
            FaultKind::ZooKeeperKill => "ZooKeeper member SIGKILL",
            FaultKind::TaskManagerFreeze => "TaskManager SIGSTOP/SIGCONT",
        }
    }

    /// The short name on the summary's machine-readable line.
    pub fn tag(self) -> &'static str {
        match self {
            FaultKind::TaskManagerKill => "tm-kill",
            FaultKind::LeaderKill => "jm-kill",
            FaultKind::ZooKeeperKill => "zk-kill",
            FaultKind::TaskManagerFreeze => "tm-freeze",
        }
    }

    pub fn is_kill(self) -> bool {
        self != FaultKind::TaskManagerFreeze
    }
}

/// Which fault comes next and when: kinds in random order within rounds of all four (so a
/// run of four faults or more has every kind), spaced by a uniform 0.5..1.5 of `mean`.
pub struct Schedule {
    rng: Rng,
    round: Vec<FaultKind>,
    mean: Duration,
}

impl Schedule {
    pub fn new(seed: u64, mean: Duration) -> Self {
        Schedule { rng: Rng::new(seed), round: Vec::new(), mean }
    }

    /// The next fault's kind.
    pub fn next_kind(&mut self) -> FaultKind {
        if self.round.is_empty() {
            let mut r = FaultKind::ALL.to_vec();
            for i in (1..r.len()).rev() {
                let j = self.rng.below(i + 1);
                r.swap(i, j);
            }
            self.round = r;
        }
        self.round.pop().unwrap_or(FaultKind::TaskManagerKill)
    }

    /// Time until the next fault.
    pub fn next_gap(&mut self) -> Duration {
        self.rng.between(self.mean / 2, self.mean * 3 / 2)
    }

    /// The random source for the fault's details (which process, how long).
    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    /// When the fault after one at `after` may come (see [`NextFault`]); one in four may
    /// strike while the job still recovers.
    pub fn next(&mut self, after: Duration) -> NextFault {
        let gap = self.next_gap();
        NextFault { after, gap, during_recovery: self.rng.below(4) == 0 }
    }
}

/// The next fault comes `gap` after the previous one (at `after`); unless it may strike
/// during recovery, also not before the committed output grew after the previous fault, and
/// then half a gap later. Faults back to back faster than the job recovers would otherwise
/// keep it from ever progressing, and say nothing about recovery.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NextFault {
    pub after: Duration,
    pub gap: Duration,
    pub during_recovery: bool,
}

impl NextFault {
    /// `recovered`: when the output first grew after the latest fault (see
    /// [`Progress::recovered_at`]).
    pub fn due(&self, now: Duration, recovered: Option<Duration>) -> bool {
        now >= self.after + self.gap
            && (self.during_recovery
                || self.recovered(recovered) && now >= recovered.unwrap_or_default() + self.gap / 2)
    }

    /// Whether the job recovered from the fault at `after`.
    pub fn recovered(&self, recovered: Option<Duration>) -> bool {
        recovered.is_some_and(|r| r > self.after)
    }
}

/// Progress of the committed output over time, and each fault's recovery: the time from the
/// fault until every sink subtask committed output again (the first growth alone can be a
/// surviving subtask committing a checkpoint completed before the fault). Times are offsets
/// from the drill's start; sizes are per sink subtask.
#[derive(Default)]
pub struct Progress {
    sizes: Vec<u64>,
    last_growth: Option<Duration>,
    /// Longest time without growth (after the first growth) and when it began.
    pub longest_stall: (Duration, Duration),
    /// Faults not recovered from yet: kind, when, which subtasks committed since.
    waiting: Vec<(FaultKind, Duration, Vec<bool>)>,
    recovered_at: Option<Duration>,
    /// Per fault: its kind and the time to progress after it.
    pub recoveries: Vec<(FaultKind, Duration)>,
}

impl Progress {
    /// Sink subtask `i` committed `sizes[i]` bytes by `now`.
    pub fn observe(&mut self, sizes: &[u64], now: Duration) {
        if self.sizes.len() < sizes.len() {
            self.sizes.resize(sizes.len(), 0);
        }
        let grew: Vec<bool> = sizes.iter().zip(&self.sizes).map(|(new, old)| new > old).collect();
        if !grew.contains(&true) {
            return;
        }
        for (old, new) in self.sizes.iter_mut().zip(sizes) {
            *old = (*old).max(*new);
        }
        match self.last_growth {
            Some(last) => {
                let gap = now.saturating_sub(last);
                if gap > self.longest_stall.0 {
                    self.longest_stall = (gap, last);
                }
            }
            None => self.recovered_at = Some(now),
        }
        self.last_growth = Some(now);
        let before = self.waiting.len();
        for (_, _, seen) in &mut self.waiting {
            for (s, g) in seen.iter_mut().zip(&grew) {
                *s |= *g;
            }
        }
        let (done, waiting): (Vec<_>, Vec<_>) =
            self.waiting.drain(..).partition(|(_, _, seen)| seen.iter().all(|s| *s));
        self.waiting = waiting;
        self.recoveries.extend(done.into_iter().map(|(kind, at, _)| (kind, now.saturating_sub(at))));
        if before > 0 && self.waiting.is_empty() {
            self.recovered_at = Some(now);
        }
    }

    /// A fault happened at `at`.
    pub fn fault(&mut self, kind: FaultKind, at: Duration) {
        self.waiting.push((kind, at, vec![false; self.sizes.len()]));
    }

    /// How long the output has not grown at `now` (zero before it first grew).
    pub fn stalled_for(&self, now: Duration) -> Duration {
        self.last_growth.map_or(Duration::ZERO, |l| now.saturating_sub(l))
    }

    /// Bytes committed by all subtasks.
    pub fn size(&self) -> u64 {
        self.sizes.iter().sum()
    }

    /// When the output first grew after the latest fault (before any fault: when it first
    /// grew at all).
    pub fn recovered_at(&self) -> Option<Duration> {
        self.recovered_at
    }
}

/// min, median, p90 and max (nearest rank), or `None` without samples.
pub fn distribution(samples: &[Duration]) -> Option<[Duration; 4]> {
    let mut s = samples.to_vec();
    s.sort_unstable();
    let rank = |p: f64| s[((p * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1];
    (!s.is_empty()).then(|| [s[0], rank(0.5), rank(0.9), s[s.len() - 1]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn every_round_of_four_has_every_kind_and_a_seed_replays() {
        let kinds = |seed| {
            let mut s = Schedule::new(seed, ms(1000));
            (0..8).map(|_| (s.next_kind(), s.next_gap())).collect::<Vec<_>>()
        };
        let a = kinds(42);
        assert_eq!(a, kinds(42));
        assert_ne!(a, kinds(43));
        for round in a.chunks(4) {
            let mut k: Vec<_> = round.iter().map(|(k, _)| *k).collect();
            k.sort();
            assert_eq!(k, FaultKind::ALL.to_vec());
        }
        assert!(a.iter().all(|(_, g)| *g >= ms(500) && *g < ms(1500)));
    }

    #[test]
    fn recovery_ends_when_every_subtask_committed_again_and_stalls_are_measured_between_growths() {
        let mut p = Progress::default();
        p.observe(&[0, 0], ms(0));
        p.observe(&[10, 10], ms(100));
        p.fault(FaultKind::LeaderKill, ms(200));
        p.observe(&[10, 10], ms(300));
        p.fault(FaultKind::TaskManagerKill, ms(400));
        // A surviving subtask commits what completed before the fault: not yet a recovery.
        p.observe(&[20, 10], ms(450));
        assert!(p.recoveries.is_empty());
        assert_eq!(p.recovered_at(), Some(ms(100)));
        p.observe(&[20, 20], ms(2100));
        p.observe(&[30, 30], ms(2200));
        assert_eq!(p.recoveries, vec![(FaultKind::LeaderKill, ms(1900)), (FaultKind::TaskManagerKill, ms(1700))]);
        assert_eq!(p.recovered_at(), Some(ms(2100)));
        assert_eq!(p.longest_stall, (ms(1650), ms(450)));
        assert_eq!(p.stalled_for(ms(2500)), ms(300));
        assert_eq!(p.size(), 60);
    }

    #[test]
    fn a_fault_waits_for_progress_after_the_previous_one_unless_it_may_strike_during_recovery() {
        let n = NextFault { after: ms(1000), gap: ms(2000), during_recovery: false };
        assert!(!n.due(ms(2999), Some(ms(1500))));
        assert!(n.due(ms(3000), Some(ms(1500))));
        assert!(!n.due(ms(9000), Some(ms(900))), "no growth since the fault");
        assert!(!n.due(ms(9000), None));
        assert!(!n.due(ms(9500), Some(ms(8600))), "half a gap after the recovery");
        assert!(n.due(ms(9600), Some(ms(8600))));
        // Steady progress after the recovery does not hold the fault back.
        let mut p = Progress::default();
        p.observe(&[1], ms(500));
        p.fault(FaultKind::TaskManagerKill, ms(1000));
        for t in (1100..4000).step_by(100) {
            p.observe(&[t], ms(t));
        }
        assert_eq!(p.recovered_at(), Some(ms(1100)));
        assert!(n.due(ms(3000), p.recovered_at()));
        let r = NextFault { during_recovery: true, ..n };
        assert!(r.due(ms(3000), Some(ms(900))) && r.due(ms(3000), None) && !r.due(ms(2999), None));
    }

    #[test]
    fn distribution_by_nearest_rank() {
        let s: Vec<_> = (1..=10).map(ms).collect();
        assert_eq!(distribution(&s), Some([ms(1), ms(5), ms(9), ms(10)]));
        assert_eq!(distribution(&[ms(7)]), Some([ms(7); 4]));
        assert_eq!(distribution(&[]), None);
    }
}
