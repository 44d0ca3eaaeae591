//! `riffle local-cluster`: a JobManager process and N TaskManager processes on this machine,
//! all children of this one. Each child ends when this process ends, however it ends (its
//! stdin, held here, closes: see `supervisor`), so Ctrl-C, SIGTERM or even SIGKILL of this
//! process leaves nothing running. A TaskManager that dies is started again under a new id
//! (a new TaskManager, as a cluster manager would bring one); the JobManager dying ends the
//! whole cluster.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use riffle::Configuration;
use riffle_cluster::remote::jobmanager_side::{RPC_ADDRESS, RPC_PORT};

use crate::supervisor::CHILD_ENV;

/// Prints a line; a closed stdout (the terminal went away) must not stop the cluster.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// A free TCP port on the loopback interface (for the JobManager's RPC endpoint when the
/// configuration leaves it to us).
fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(l.local_addr()?.port())
}

pub(crate) struct Member {
    role: String,
    child: Child,
}

pub(crate) fn spawn(role: &str, args: &[String]) -> Result<Member> {
    let exe = std::env::current_exe().context("cannot find riffle's own executable")?;
    let child = Command::new(exe)
        .args(args)
        .env(CHILD_ENV, "1")
        .stdin(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start the {role} process"))?;
    say(&format!("riffle: {role} started, pid {}", child.id()));
    Ok(Member { role: role.to_string(), child })
}

/// `-D key=value` arguments for every entry of `conf` (children get the same configuration).
pub(crate) fn defines(conf: &Configuration) -> Vec<String> {
    conf.entries().flat_map(|(k, v)| ["-D".to_string(), format!("{k}={v}")]).collect()
}

/// Runs the cluster until the JobManager process ends (or this process is stopped).
pub fn run(taskmanagers: u32, slots: u32, conf: &Configuration) -> Result<()> {
    if taskmanagers == 0 || slots == 0 {
        bail!("local-cluster needs at least one TaskManager with at least one slot");
    }
    let mut conf = conf.clone();
    if !conf.contains(&RPC_ADDRESS) {
        conf.set(RPC_ADDRESS.key(), "127.0.0.1");
    }
    if !conf.contains(&RPC_PORT) {
        conf.set(RPC_PORT.key(), free_port()?.to_string());
    }
    let base = defines(&conf);
    let mut jm_args = vec!["jobmanager".to_string()];
    jm_args.extend(base.iter().cloned());
    let mut jm = spawn("jobmanager", &jm_args)?;
    let tm_args = |i: u32, generation: u32| {
        let id = if generation == 0 { format!("taskmanager-{i}") } else { format!("taskmanager-{i}-r{generation}") };
        let mut a = vec!["taskmanager".to_string()];
        a.extend(base.iter().cloned());
        a.extend(["-D".into(), format!("taskmanager.numberOfTaskSlots={slots}")]);
        a.extend(["-D".into(), format!("taskmanager.resource-id={id}")]);
        if !conf.contains(&riffle_cluster::taskmanager::HOST) {
            a.extend(["-D".into(), "taskmanager.host=127.0.0.1".to_string()]);
        }
        (id, a)
    };
    let mut tms = Vec::new();
    for i in 0..taskmanagers {
        let (id, args) = tm_args(i, 0);
        tms.push((spawn(&id, &args)?, 0u32));
    }
    loop {
        if let Some(status) = jm.child.try_wait().context("lost the jobmanager process")? {
            for (tm, _) in &mut tms {
                let _ = tm.child.kill();
                let _ = tm.child.wait();
            }
            bail!("the {} process ended ({status}); the cluster is down", jm.role);
        }
        for (i, (tm, generation)) in tms.iter_mut().enumerate() {
            if let Some(status) = tm.child.try_wait().context("lost a taskmanager process")? {
                *generation += 1;
                let (id, args) = tm_args(i as u32, *generation);
                say(&format!("riffle local-cluster: {} ended ({status}); starting {id} in its place", tm.role));
                let started = Instant::now();
                *tm = spawn(&id, &args)?;
                // A TaskManager that dies at once (bad settings) is not restarted in a tight loop.
                if started.elapsed() < Duration::from_millis(500) {
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
