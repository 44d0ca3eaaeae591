//! The chaos drill's processes: a ZooKeeper ensemble run by `scripts/zookeeper.sh`, and
//! `riffle jobmanager` / `riffle taskmanager` children. Every one is stopped when its guard
//! drops (the drill ending, failing or panicking); riffle children also end by themselves
//! when the drill's process is gone (their stdin, held here, closes).

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use crate::supervisor::CHILD_ENV;

/// `scripts/zookeeper.sh`: the one given, else the first found beside the executable's
/// ancestors (`target/debug/riffle` in a checkout) or in the current directory.
pub fn find_zookeeper_script(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = given {
        if !p.is_file() {
            bail!("--zookeeper-script '{}' is not a file", p.display());
        }
        return Ok(p.to_path_buf());
    }
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        candidates.extend(exe.ancestors().skip(1).map(|d| d.join("scripts/zookeeper.sh")));
    }
    if let Ok(cwd) = std::env::current_dir() {
        candidates.extend(cwd.ancestors().map(|d| d.join("scripts/zookeeper.sh")));
    }
    candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
        anyhow!(
            "cannot find scripts/zookeeper.sh above the riffle executable or the current directory; \
             pass --zookeeper-script PATH"
        )
    })
}

/// Runs `zookeeper.sh args...` (at most 120 s); its last line of output.
fn zk(script: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("timeout")
        .arg("120")
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "{} {}: {}{}",
            script.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().lines().last().unwrap_or_default().to_string())
}

/// One line naming the set-up when ZooKeeper is not installed.
pub fn require_zookeeper(script: &Path) -> Result<()> {
    if zk(script, &["check"]).is_err() {
        bail!(
            "ZooKeeper is not installed: run scripts/setup-tests (the chaos drill starts an ensemble with {})",
            script.display()
        );
    }
    Ok(())
}

/// A 3-member ZooKeeper ensemble on loopback, stopped on drop.
pub struct Ensemble {
    script: PathBuf,
    dir: String,
    pub quorum: String,
    /// The member that is down, and the restart under way (`restart-member` waits until the
    /// member serves, so it runs beside the drill's loop).
    down: Option<(u32, Option<JoinHandle<Result<String>>>)>,
}

pub const MEMBERS: u32 = 3;

impl Ensemble {
    pub fn start(script: &Path, dir: &Path) -> Result<Self> {
        require_zookeeper(script)?;
        let d = dir.to_str().context("the work directory's path is not UTF-8")?.to_string();
        let mut last = anyhow!("no free ports");
        for attempt in 0..5u16 {
            // Client ports base..base+2, quorum +1000, election +2000: all below 15000, clear of
            // the ephemeral ports and of the test suites' ensembles (15000..30000).
            let base = 10_000 + ((std::process::id() as u16).wrapping_mul(37).wrapping_add(attempt * 211) % 290) * 10;
            let ports = (0..3u16).flat_map(|i| [base + i, base + 1000 + i, base + 2000 + i]);
            if !ports.into_iter().all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()) {
                continue;
            }
            match zk(script, &["ensemble", "start", "3", "--base-port", &base.to_string(), "--dir", &d, "--fresh"]) {
                Ok(quorum) => {
                    watch_over(script, &d);
                    return Ok(Ensemble { script: script.to_path_buf(), dir: d, quorum, down: None });
                }
                Err(e) => {
                    let _ = zk(script, &["ensemble", "stop", "--dir", &d]);
                    last = e;
                }
            }
        }
        Err(last.context("the ZooKeeper ensemble did not start"))
    }

    /// Whether a member is down (or still restarting): then no other may go, the quorum of a
    /// 3-member ensemble allows one member down.
    pub fn member_down(&self) -> Option<u32> {
        self.down.as_ref().map(|(k, _)| *k)
    }

    pub fn kill_member(&mut self, k: u32) -> Result<()> {
        if self.down.is_some() {
            bail!("a member is already down");
        }
        zk(&self.script, &["kill-member", &k.to_string(), "--dir", &self.dir])?;
        self.down = Some((k, None));
        Ok(())
    }

    /// Starts the down member again (in the background).
    pub fn restart_member(&mut self) {
        if let Some((k, restart @ None)) = &mut self.down {
            let (script, dir, k) = (self.script.clone(), self.dir.clone(), *k);
            *restart =
                Some(std::thread::spawn(move || zk(&script, &["restart-member", &k.to_string(), "--dir", &dir])));
        }
    }

    /// A finished restart: its outcome (the member is up again if `Ok`; retried otherwise).
    pub fn poll_restart(&mut self) -> Option<(u32, Result<String>)> {
        let (k, handle) = self.down.as_mut()?;
        if !handle.as_ref().is_some_and(|h| h.is_finished()) {
            return None;
        }
        let k = *k;
        let r = handle.take().map(|h| h.join().unwrap_or_else(|_| Err(anyhow!("the restart thread panicked"))));
        let r = r.unwrap_or_else(|| Err(anyhow!("no restart")));
        if r.is_ok() {
            self.down = None;
        }
        Some((k, r))
    }
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        if let Some((_, Some(h))) = self.down.take() {
            let _ = h.join();
        }
        let _ = zk(&self.script, &["ensemble", "stop", "--dir", &self.dir]);
    }
}

/// Stops the ensemble in `dir` once this process is gone, however it goes (Ctrl-C, SIGKILL):
/// its servers run detached, so a drop guard alone would not stop them then. The watcher runs
/// in a session of its own (a Ctrl-C to the terminal's process group does not reach it) and
/// ends by itself.
fn watch_over(script: &Path, dir: &str) {
    let watch = format!(
        "while kill -0 {} 2>/dev/null; do sleep 1; done; exec timeout 60 \"$0\" ensemble stop --dir \"$1\"",
        std::process::id()
    );
    let _ = Command::new("setsid")
        .args(["bash", "-c", &watch])
        .arg(script)
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

/// A free TCP port on loopback.
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(l.local_addr()?.port())
}

/// A `riffle` child process, killed (and reaped) on drop. Its output goes to a log file.
pub struct Proc {
    pub name: String,
    child: Child,
    /// REST address of a JobManager.
    pub rest: Option<String>,
    pub frozen: bool,
}

impl Proc {
    pub fn spawn(name: &str, args: &[String], logs: &Path, rest: Option<String>) -> Result<Proc> {
        let exe = std::env::current_exe().context("cannot find riffle's own executable")?;
        let log = File::create(logs.join(format!("{name}.log")))
            .with_context(|| format!("cannot create the log of {name} in {}", logs.display()))?;
        let child = Command::new(exe)
            .args(args)
            .env(CHILD_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(log.try_clone().context("cannot share a log file")?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        Ok(Proc { name: name.to_string(), child, rest, frozen: false })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and reaped.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGSTOP (`frozen`) or SIGCONT.
    pub fn signal(&mut self, stop: bool) -> Result<()> {
        let sig = if stop { "STOP" } else { "CONT" };
        let ok = Command::new("kill")
            .args(["-s", sig, &self.pid().to_string()])
            .status()
            .with_context(|| format!("cannot run kill -s {sig}"))?
            .success();
        if !ok {
            bail!("kill -s {sig} {} ({}) failed", self.pid(), self.name);
        }
        self.frozen = stop;
        Ok(())
    }

    /// Its exit status if it ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One HTTP/1.1 request without following redirects: status (0: no answer) and JSON body.
pub fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, Value) {
    let Ok(sock) = addr.parse() else { return (0, Value::Null) };
    let Ok(mut s) = TcpStream::connect_timeout(&sock, Duration::from_secs(2)) else { return (0, Value::Null) };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(req.as_bytes()).is_err() {
        return (0, Value::Null);
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let out = String::from_utf8_lossy(&out);
    let status = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// Waits until `f` holds, at most `timeout`; an error naming `what` otherwise.
pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !f() {
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}
