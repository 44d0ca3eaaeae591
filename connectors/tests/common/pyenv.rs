//! The Python readers' virtual environment (pyarrow, fastavro, cramjam), the same one
//! `independent_readers.rs` uses: `${RIFFLE_TEST_DEPS:-$HOME/.cache/riffle-test-deps}/pyenv`,
//! made on first use. `None` (after printing why) only when there is no `python3` at all.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Runs `cmd` to its end or `limit`; its stdout, or a panic with its stderr.
pub fn run(mut cmd: Command, limit: Duration) -> String {
    let what = format!("{cmd:?}");
    let out_file = tempfile::tempfile().expect("temp file");
    let err_file = tempfile::tempfile().expect("temp file");
    let mut child = cmd
        .stdout(out_file.try_clone().expect("dup"))
        .stderr(err_file.try_clone().expect("dup"))
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e} (run scripts/setup-tests)"));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} ran past {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |mut f: std::fs::File| {
        use std::io::{Read, Seek};
        let mut s = String::new();
        f.seek(std::io::SeekFrom::Start(0)).expect("seek");
        f.read_to_string(&mut s).expect("utf-8 output");
        s
    };
    let (out, err) = (read(out_file), read(err_file));
    assert!(status.success(), "{what} failed: {err}");
    out
}

/// The virtual environment's python, installed once; `None` without `python3`.
pub fn python() -> Option<&'static Path> {
    static PYTHON: OnceLock<Option<PathBuf>> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let found = Command::new("python3").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
            if !found.is_ok_and(|s| s.success()) {
                eprintln!("SKIPPED the independent readers: no python3 on this machine");
                return None;
            }
            let deps = std::env::var_os("RIFFLE_TEST_DEPS").map(PathBuf::from).unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").expect("HOME or RIFFLE_TEST_DEPS"))
                    .join(".cache/riffle-test-deps")
            });
            let env = deps.join("pyenv");
            let python = env.join("bin/python");
            let marker = env.join(".installed-pyarrow-fastavro-cramjam");
            if !marker.is_file() {
                let mut venv = Command::new("python3");
                venv.arg("-m").arg("venv").arg(&env);
                run(venv, Duration::from_secs(120));
                let mut pip = Command::new(env.join("bin/pip"));
                pip.args(["install", "-q", "--disable-pip-version-check", "pyarrow", "fastavro", "cramjam"]);
                run(pip, Duration::from_secs(600));
                std::fs::write(&marker, b"").expect("marker");
            }
            Some(python)
        })
        .as_deref()
}
