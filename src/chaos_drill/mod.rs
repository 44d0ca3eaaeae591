//! `riffle run chaos-drill`: an exactly-once job on a highly available cluster of real
//! processes — a 3-member ZooKeeper ensemble (`scripts/zookeeper.sh`), two JobManagers and
//! three TaskManagers, children of this process — while faults are injected at random moments
//! from a printed seed: SIGKILL of a TaskManager (a replacement starts), of the leading
//! JobManager (it starts again as a standby), of a ZooKeeper member (restarted a few seconds
//! later; never two down at once, the quorum of three), and SIGSTOP/SIGCONT of a TaskManager.
//! At the end the committed output must equal the failure-free result exactly; the figures
//! (faults by kind, longest time without progress, time from each fault to progress) are
//! printed either way.
//!
//! The job is the built-in `exactly-once-drill` program (a paced bounded sequence, a
//! running count per key in keyed state, a two-phase-commit file sink), submitted over REST
//! with checkpoints every 300 ms and a fixed-delay restart strategy that never gives up.

mod figures;
mod processes;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use riffle::scenarios::drill::{committed_lines, describe_difference, expected_lines};
use riffle::Configuration;

use figures::{distribution, FaultKind, NextFault, Progress, Schedule};
use processes::{free_port, http, wait_until, Ensemble, Proc};

/// How to run the drill (`riffle run chaos-drill --help`).
pub struct ChaosOptions {
    /// Over how long the faults are spread (mean gap: duration / faults), from the job's first
    /// committed output; then the job runs to its end without faults.
    pub duration: Duration,
    /// Faults to inject, spread over `duration`.
    pub faults: usize,
    /// Seed of the random choices (printed; from the clock if none).
    pub seed: Option<u64>,
    /// Events of the job (default: what the paced source emits in 1.5 × `duration`, so that
    /// the job outlasts the faults, which also wait for recoveries).
    pub events: Option<u64>,
    pub keys: u64,
    /// Records per second per source subtask (paced in the source).
    pub rate: u64,
    pub parallelism: u32,
    pub zookeeper_script: Option<PathBuf>,
    /// Where the ensemble, the processes' logs, checkpoints and output go (default: a
    /// temporary directory, kept if the drill fails).
    pub work_dir: Option<PathBuf>,
}

const TASK_MANAGERS: usize = 3;
const SLOTS: u32 = 2;
/// The drill gives up when the committed output has not grown for this long.
const STALL_LIMIT: Duration = Duration::from_secs(180);

/// Prints a line with the time since the drill's start.
fn say(start: Instant, line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "[{:>7.1}s] {line}", start.elapsed().as_secs_f64());
}

fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

/// The cluster's riffle processes.
struct Cluster {
    common: Vec<String>,
    logs: PathBuf,
    jms: Vec<Proc>,
    tms: Vec<Proc>,
    jm_count: u32,
    tm_count: u32,
}

impl Cluster {
    fn start_jobmanager(&mut self) -> Result<String> {
        self.jm_count += 1;
        let name = format!("jobmanager-{}", self.jm_count);
        let (rpc, rest) = (free_port()?, free_port()?);
        let mut a = vec!["jobmanager".to_string()];
        a.extend(self.common.iter().cloned());
        for kv in [
            "jobmanager.rpc.address=127.0.0.1".to_string(),
            format!("jobmanager.rpc.port={rpc}"),
            format!("rest.port={rest}"),
        ] {
            a.extend(["-D".to_string(), kv]);
        }
        let p = Proc::spawn(&name, &a, &self.logs, Some(format!("127.0.0.1:{rest}")))?;
        let line = format!("{name} started (pid {}, REST 127.0.0.1:{rest})", p.pid());
        self.jms.push(p);
        Ok(line)
    }

    fn start_taskmanager(&mut self) -> Result<String> {
        self.tm_count += 1;
        let name = format!("taskmanager-{}", self.tm_count);
        let mut a = vec!["taskmanager".to_string()];
        a.extend(self.common.iter().cloned());
        for kv in [
            format!("taskmanager.resource-id={name}"),
            format!("taskmanager.numberOfTaskSlots={SLOTS}"),
            "taskmanager.host=127.0.0.1".to_string(),
        ] {
            a.extend(["-D".to_string(), kv]);
        }
        let p = Proc::spawn(&name, &a, &self.logs, None)?;
        let line = format!("{name} started (pid {})", p.pid());
        self.tms.push(p);
        Ok(line)
    }

    /// The index of the JobManager that leads (its REST API answers instead of redirecting).
    fn leader(&self) -> Option<usize> {
        self.jms.iter().position(|jm| jm.rest.as_deref().is_some_and(|r| http(r, "GET", "/overview", "").0 == 200))
    }

    fn leader_rest(&self) -> Option<String> {
        self.leader().and_then(|i| self.jms[i].rest.clone())
    }

    /// Indices of the TaskManagers (not frozen) that a fault should hit: those the leader
    /// says hold slots of the job, or all of them when it cannot say (no leader now).
    fn targets(&self, leader: Option<&str>) -> Vec<usize> {
        let live: Vec<usize> = (0..self.tms.len()).filter(|i| !self.tms[*i].frozen).collect();
        let busy: Vec<String> = leader
            .map(|l| http(l, "GET", "/taskmanagers", "").1)
            .and_then(|v| {
                v["taskmanagers"].as_array().map(|a| {
                    a.iter()
                        .filter(|t| t["freeSlots"].as_u64() < t["slotsNumber"].as_u64())
                        .filter_map(|t| t["id"].as_str().map(str::to_string))
                        .collect()
                })
            })
            .unwrap_or_default();
        let hit: Vec<usize> = live.iter().copied().filter(|i| busy.contains(&self.tms[*i].name)).collect();
        if hit.is_empty() {
            live
        } else {
            hit
        }
    }
}

/// Something due later: a frozen TaskManager to thaw, the ZooKeeper member to restart.
enum Due {
    Thaw(String),
    RestartZooKeeper,
}

/// Bytes of the committed part files (`part-<subtask>-<n>`; in-progress and pending ones
/// start with a dot) of each of the `parallelism` sink subtasks.
fn committed_sizes(out: &Path, parallelism: u32) -> Vec<u64> {
    let mut sizes = vec![0; parallelism as usize];
    let Ok(dir) = std::fs::read_dir(out) else { return sizes };
    for e in dir.flatten() {
        let name = e.file_name();
        let subtask = name.to_str().and_then(|n| n.strip_prefix("part-")?.split('-').next()?.parse::<usize>().ok());
        if let (Some(s), Ok(m)) = (subtask, e.metadata()) {
            if let Some(size) = sizes.get_mut(s) {
                *size += m.len();
            }
        }
    }
    sizes
}

/// The work directory: the one given (created, must be empty) or a temporary one.
fn work_dir(given: Option<&Path>) -> Result<(PathBuf, Option<tempfile::TempDir>)> {
    match given {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create '{}'", d.display()))?;
            let empty =
                std::fs::read_dir(d).with_context(|| format!("cannot read '{}'", d.display()))?.next().is_none();
            if !empty {
                bail!("--work-dir '{}' is not empty", d.display());
            }
            Ok((d.to_path_buf(), None))
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("riffle-chaos-")
                .tempdir()
                .context("cannot create a temporary directory")?;
            Ok((t.path().to_path_buf(), Some(t)))
        }
    }
}

/// Runs the drill; an error if the job did not finish with exactly the failure-free output.
pub fn run(o: &ChaosOptions, user: &Configuration) -> Result<()> {
    if o.parallelism == 0 || o.keys == 0 || o.rate == 0 {
        bail!("--parallelism, --keys and --rate must be at least 1");
    }
    if o.parallelism > TASK_MANAGERS as u32 * SLOTS - SLOTS {
        bail!(
            "--parallelism at most {} (the job must fit while a TaskManager is lost)",
            TASK_MANAGERS as u32 * SLOTS - SLOTS
        );
    }
    let seed = o.seed.unwrap_or_else(|| riffle::time::now_ms() as u64);
    let nominal = o.rate * u64::from(o.parallelism);
    let events = o.events.unwrap_or(nominal * o.duration.as_secs().max(1) * 3 / 2).max(1);
    let script = processes::find_zookeeper_script(o.zookeeper_script.as_deref())?;
    processes::require_zookeeper(&script)?;
    let (dir, temp) = work_dir(o.work_dir.as_deref())?;
    let start = Instant::now();
    say(
        start,
        &format!(
            "chaos drill: seed {seed} (replay the choices with --seed {seed}); {} faults over {}; {events} events, \
             {} keys, parallelism {}, at most {nominal} events/s; files in {}",
            o.faults,
            secs(o.duration),
            o.keys,
            o.parallelism,
            dir.display()
        ),
    );
    let result = drill(o, user, seed, events, &script, &dir, start);
    match (&result, temp) {
        (Ok(()), _) => {}
        (Err(_), Some(t)) => {
            let kept = t.keep();
            say(start, &format!("the drill failed: its logs, checkpoints and output are kept in {}", kept.display()));
        }
        (Err(_), None) => say(start, &format!("the drill failed: its files are in {}", dir.display())),
    }
    result
}

fn drill(
    o: &ChaosOptions,
    user: &Configuration,
    seed: u64,
    events: u64,
    script: &Path,
    dir: &Path,
    start: Instant,
) -> Result<()> {
    let logs = dir.join("logs");
    let out = dir.join("out");
    std::fs::create_dir_all(&logs).with_context(|| format!("cannot create '{}'", logs.display()))?;
    let mut zk = Ensemble::start(script, &dir.join("zk"))?;
    say(start, &format!("ZooKeeper ensemble serves at {}", zk.quorum));
    let mut common: Vec<String> = [
        "high-availability=zookeeper".to_string(),
        format!("high-availability.zookeeper.quorum={}", zk.quorum),
        format!("high-availability.storageDir={}", dir.join("ha").display()),
        "high-availability.zookeeper.client.session-timeout=3 s".into(),
        "high-availability.zookeeper.client.connection-timeout=5 s".into(),
        format!("state.checkpoints.dir={}", dir.join("checkpoints").display()),
        "heartbeat.interval=200 ms".into(),
        "heartbeat.timeout=2 s".into(),
    ]
    .into_iter()
    .flat_map(|kv| ["-D".to_string(), kv])
    .collect();
    common.extend(crate::local_cluster::defines(user));
    let mut c = Cluster { common, logs, jms: Vec::new(), tms: Vec::new(), jm_count: 0, tm_count: 0 };
    say(start, &c.start_jobmanager()?);
    wait_until("the first JobManager to lead", Duration::from_secs(120), || c.leader() == Some(0))?;
    say(start, &c.start_jobmanager()?);
    let standby = c.jms[1].rest.clone().unwrap_or_default();
    wait_until("the second JobManager to stand by", Duration::from_secs(120), || {
        http(&standby, "GET", "/overview", "").0 == 307
    })?;
    for _ in 0..TASK_MANAGERS {
        say(start, &c.start_taskmanager()?);
    }
    let leader = c.leader_rest().context("no leader")?;
    wait_until("three TaskManagers registered", Duration::from_secs(120), || {
        http(&leader, "GET", "/taskmanagers", "").1["taskmanagers"].as_array().is_some_and(|a| a.len() == TASK_MANAGERS)
    })?;
    let body = serde_json::json!({
        "programArgsList": ["--events", events.to_string(), "--keys", o.keys.to_string(), "--source-rate", o.rate.to_string(),
                            "--output", out.display().to_string()],
        "parallelism": o.parallelism,
        "flinkConfiguration": {
            "execution.checkpointing.interval": "300 ms",
            "restart-strategy": "fixed-delay",
            "restart-strategy.fixed-delay.attempts": u32::MAX.to_string(),
            "restart-strategy.fixed-delay.delay": "200 ms",
        },
    });
    let (status, answer) = http(&leader, "POST", "/programs/exactly-once-drill/run", &body.to_string());
    let job = answer["jobid"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("submission refused ({status}): {answer}"))?;
    let submitted = start.elapsed();
    say(start, &format!("job {job} submitted to {leader}: the exactly-once drill, output in {}", out.display()));

    let mut schedule = Schedule::new(seed, o.duration / o.faults.max(1) as u32);
    let mut progress = Progress::default();
    let mut injected: BTreeMap<FaultKind, usize> = BTreeMap::new();
    let mut unplanned: Vec<String> = Vec::new();
    let mut during_recovery = 0;
    let mut due: Vec<(Duration, Due)> = Vec::new();
    // Faults start once the job committed output (it runs), and go on until all were
    // injected; --duration only spaces them.
    let mut next_fault: Option<NextFault> = None;
    let mut kind = schedule.next_kind();
    let mut last_state = (Duration::ZERO, String::new());
    let final_state = loop {
        let now = start.elapsed();
        progress.observe(&committed_sizes(&out, o.parallelism), now);
        if progress.size() == 0 && now > submitted + STALL_LIMIT {
            bail!("no output committed within {} of the submission", secs(STALL_LIMIT));
        }
        if progress.stalled_for(now) > STALL_LIMIT {
            bail!("the committed output did not grow for {}", secs(STALL_LIMIT));
        }
        // Processes that ended on their own (a crash; a JobManager that lost its ZooKeeper
        // session suspends its jobs and stands by instead) are started again.
        for i in (0..c.jms.len()).rev() {
            if let Some(s) = c.jms[i].exited() {
                let gone = c.jms.remove(i);
                let started = c.start_jobmanager()?;
                unplanned.push(format!("{} ({s})", gone.name));
                say(start, &format!("{} ended on its own ({s}); {started}", gone.name));
            }
        }
        for i in (0..c.tms.len()).rev() {
            if let Some(s) = c.tms[i].exited() {
                let gone = c.tms.remove(i);
                let started = c.start_taskmanager()?;
                unplanned.push(format!("{} ({s})", gone.name));
                say(start, &format!("{} ended on its own ({s}); {started}", gone.name));
            }
        }
        if let Some((k, r)) = zk.poll_restart() {
            match r {
                Ok(line) => say(start, &format!("ZooKeeper {line}")),
                Err(e) => {
                    say(start, &format!("ZooKeeper member {k} did not restart ({e:#}); trying again"));
                    due.push((now + Duration::from_secs(1), Due::RestartZooKeeper));
                }
            }
        }
        let (ready, later): (Vec<_>, Vec<_>) = due.drain(..).partition(|(at, _)| *at <= now);
        due = later;
        for (_, d) in ready {
            match d {
                Due::Thaw(name) => {
                    if let Some(tm) = c.tms.iter_mut().find(|t| t.name == name) {
                        tm.signal(false)?;
                        say(start, &format!("SIGCONT {name}"));
                    }
                }
                Due::RestartZooKeeper => zk.restart_member(),
            }
        }
        let total: usize = injected.values().sum();
        if next_fault.is_none() && progress.size() > 0 {
            // Just before the first growth, which counts as the recovery from the start.
            next_fault = Some(schedule.next(now.saturating_sub(Duration::from_millis(1))));
            say(start, "the job committed its first output: faults begin");
        }
        if total < o.faults && next_fault.is_some_and(|n| n.due(now, progress.recovered_at())) {
            let r = schedule.rng();
            let done = match kind {
                FaultKind::TaskManagerKill => {
                    let live = c.targets(c.leader_rest().as_deref());
                    match live.get(r.below(live.len())) {
                        Some(&i) => {
                            let mut tm = c.tms.remove(i);
                            tm.kill();
                            Some(format!("SIGKILL {} (pid {}); {}", tm.name, tm.pid(), c.start_taskmanager()?))
                        }
                        None => None,
                    }
                }
                FaultKind::LeaderKill => match c.leader() {
                    Some(i) => {
                        let mut jm = c.jms.remove(i);
                        jm.kill();
                        Some(format!(
                            "SIGKILL leader {} (pid {}); {} as a standby",
                            jm.name,
                            jm.pid(),
                            c.start_jobmanager()?
                        ))
                    }
                    None => None,
                },
                FaultKind::ZooKeeperKill if zk.member_down().is_none() => {
                    let k = 1 + r.below(processes::MEMBERS as usize) as u32;
                    let back = r.between(Duration::from_secs(2), Duration::from_secs(6));
                    zk.kill_member(k)?;
                    due.push((now + back, Due::RestartZooKeeper));
                    Some(format!("SIGKILL ZooKeeper member {k}; restart in {}", secs(back)))
                }
                FaultKind::ZooKeeperKill => None,
                FaultKind::TaskManagerFreeze if c.tms.iter().all(|t| !t.frozen) => {
                    let live = c.targets(c.leader_rest().as_deref());
                    match live.get(r.below(live.len())) {
                        Some(&i) => {
                            let thaw = r.between(Duration::from_secs(2), Duration::from_secs(5));
                            let tm = &mut c.tms[i];
                            tm.signal(true)?;
                            due.push((now + thaw, Due::Thaw(tm.name.clone())));
                            Some(format!("SIGSTOP {} (pid {}) for {}", tm.name, tm.pid(), secs(thaw)))
                        }
                        None => None,
                    }
                }
                FaultKind::TaskManagerFreeze => None,
            };
            // `None`: not possible now (no leader elected yet, a member already down); tried
            // again on the next round.
            if let Some(line) = done {
                *injected.entry(kind).or_default() += 1;
                progress.fault(kind, now);
                let during = next_fault.is_some_and(|n| n.during_recovery && !n.recovered(progress.recovered_at()));
                during_recovery += usize::from(during);
                let when = if during { " (during recovery)" } else { "" };
                say(start, &format!("fault {}/{}{when}: {line}", total + 1, o.faults));
                next_fault = Some(schedule.next(now));
                kind = schedule.next_kind();
            }
        }
        if now >= last_state.0 + Duration::from_millis(500) {
            let state = c
                .leader_rest()
                .map(|l| http(&l, "GET", &format!("/jobs/{job}"), "").1["state"].as_str().unwrap_or("").to_string())
                .unwrap_or_default();
            if matches!(state.as_str(), "FINISHED" | "FAILED" | "CANCELED") {
                break state;
            }
            last_state = (now, state);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    progress.observe(&committed_sizes(&out, o.parallelism), start.elapsed());
    let total_time = start.elapsed();

    // Figures.
    let kills: usize = injected.iter().filter(|(k, _)| k.is_kill()).map(|(_, n)| n).sum();
    let by_kind: Vec<String> =
        FaultKind::ALL.iter().map(|k| format!("{} {}", injected.get(k).copied().unwrap_or(0), k.name())).collect();
    say(start, &format!("job {job} ended {final_state}"));
    let got = committed_lines(&out)?;
    let want = expected_lines(events, o.keys);
    let exact = final_state == "FINISHED" && got == want;
    println!("== chaos drill figures (seed {seed})");
    println!(
        "faults {}: {} ({kills} kills; {during_recovery} struck before the job had recovered from the previous one): {}",
        if exact { "injected and survived" } else { "injected" },
        injected.values().sum::<usize>(),
        by_kind.join(", ")
    );
    if !unplanned.is_empty() {
        println!("processes that ended on their own and were restarted: {}", unplanned.join(", "));
    }
    let (stall, from) = progress.longest_stall;
    println!(
        "longest time without progress (committed output not growing): {} (from {} into the run)",
        secs(stall),
        secs(from)
    );
    let all: Vec<Duration> = progress.recoveries.iter().map(|(_, d)| *d).collect();
    let line = |label: &str, s: &[Duration]| match distribution(s) {
        Some([min, med, p90, max]) => println!(
            "recovery, fault to every sink subtask committing again, {label} ({}): min {} median {} p90 {} max {}",
            s.len(),
            secs(min),
            secs(med),
            secs(p90),
            secs(max)
        ),
        None => println!("recovery, {label}: no samples"),
    };
    line("all faults", &all);
    for k in FaultKind::ALL {
        let s: Vec<Duration> = progress.recoveries.iter().filter(|(x, _)| *x == k).map(|(_, d)| *d).collect();
        line(k.name(), &s);
    }
    println!("total run time: {} (job submitted at {})", secs(total_time), secs(submitted));
    let total: usize = injected.values().sum();
    if total < o.faults {
        println!(
            "only {total} of {} faults were injected: the job ended first (more --events make it last longer)",
            o.faults
        );
    }
    let tags: Vec<String> =
        FaultKind::ALL.iter().map(|k| format!("{}={}", k.tag(), injected.get(k).copied().unwrap_or(0))).collect();
    println!(
        "chaos-drill-result: seed={seed} {} kills={kills} unplanned={} lines={} exact={exact}",
        tags.join(" "),
        unplanned.len(),
        got.len()
    );
    if final_state != "FINISHED" {
        bail!("the job ended {final_state} (seed {seed})");
    }
    if got != want {
        bail!("{} (seed {seed})", describe_difference(&got, &want));
    }
    println!(
        "committed output: exactly the failure-free result ({} lines, nothing lost, nothing duplicated)",
        got.len()
    );
    Ok(())
}
