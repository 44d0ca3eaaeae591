//! Helpers shared by the tests of the `riffle` binary: the template plugin's library, `riffle`
//! processes that end with the test, a minimal HTTP client, waiting.
#![allow(dead_code)] // each test binary uses a part

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "../../scenarios/tests/common/template_plugin.rs"]
mod template_plugin_path;
#[allow(unused_imports)] // not every test binary loads the plugin
pub use template_plugin_path::template_plugin;

/// The template's `sums` output: the final (largest) running sum per key.
pub fn sums_totals(path: &Path) -> Vec<(u64, u64)> {
    let mut t = std::collections::BTreeMap::<u64, u64>::new();
    for l in std::fs::read_to_string(path).unwrap().lines() {
        let (k, v) = l.split_once(',').unwrap();
        let e = t.entry(k.parse().unwrap()).or_default();
        *e = (*e).max(v.parse().unwrap());
    }
    t.into_iter().collect()
}

/// A process killed (and reaped) when the test ends, whatever happens.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `riffle args...`; its stdout lines arrive on the receiver. Its stderr goes to the
/// file named by `RIFFLE_TEST_STDERR`, if set.
pub fn start(args: &[String]) -> (Proc, Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_riffle"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(match std::env::var_os("RIFFLE_TEST_STDERR") {
            Some(f) => Stdio::from(std::fs::OpenOptions::new().create(true).append(true).open(f).unwrap()),
            None => Stdio::null(),
        })
        .spawn()
        .expect("riffle starts");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        // Reads to the end even when nobody listens any more: a closed pipe would fail the
        // process's next line.
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (Proc(child), rx)
}

/// One HTTP/1.1 request with a JSON body: the status and the JSON answer (Null if none).
pub fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, Value) {
    let Ok(mut s) = TcpStream::connect(addr) else { return (0, Value::Null) };
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(req.as_bytes()).is_err() {
        return (0, Value::Null);
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// Waits until `f` holds, at most `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
