//! The CLI's client for a running cluster's REST API (`-m host:port`): one HTTP/1.1 request
//! per connection over plain TCP, enough for list, cancel, savepoint and stop. A TLS or
//! token-protected server is reached through the `flink` CLI or curl.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A JSON answer.
pub struct Answer {
    pub body: Value,
}

/// Sends `method path` with an optional JSON body to `host:port`.
pub fn call(address: &str, method: &str, path: &str, body: Option<&Value>) -> Result<Answer> {
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    send(address, method, path, "application/json", payload.as_bytes())
}

/// Uploads a plugin library (`POST /jars/upload`, multipart as Flink's CLI sends it); the
/// upload's id.
pub fn upload(address: &str, file: &std::path::Path) -> Result<String> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read '{}'", file.display()))?;
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "plugin.so".into());
    let boundary = "riffle-cli-7f3a9c";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"jarfile\"; filename=\"{}\"\r\nContent-Type: application/octet-stream\r\n\r\n",
        name.replace(['"', '\r', '\n'], "_")
    )
    .into_bytes();
    body.extend_from_slice(&bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let a = send(address, "POST", "/jars/upload", &format!("multipart/form-data; boundary={boundary}"), &body)?;
    let stored = a.body["filename"].as_str().context("the cluster did not say where it stored the upload")?;
    Ok(stored.rsplit('/').next().unwrap_or(stored).to_string())
}

fn send(address: &str, method: &str, path: &str, content_type: &str, payload: &[u8]) -> Result<Answer> {
    let mut target = (address.to_string(), format!("/v1{path}"));
    // A standby JobManager of a highly available cluster redirects to the leader (307: same
    // method and body).
    for _ in 0..3 {
        match send_once(&target.0, method, &target.1, content_type, payload)? {
            Sent::Answer(a) => return Ok(a),
            Sent::Redirect(location) => {
                let rest = location
                    .strip_prefix("http://")
                    .ok_or_else(|| anyhow!("{address} redirects to {location}, which this client cannot follow"))?;
                let (host, path) = rest.split_once('/').map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
                target = (host.to_string(), path);
            }
        }
    }
    bail!("{method} {path}: too many redirects from {address}")
}

enum Sent {
    Answer(Answer),
    Redirect(String),
}

fn send_once(address: &str, method: &str, path: &str, content_type: &str, payload: &[u8]) -> Result<Sent> {
    let addr = address
        .to_socket_addrs()
        .with_context(|| format!("'{address}' is not a host:port"))?
        .next()
        .ok_or_else(|| anyhow!("'{address}' resolves to no address"))?;
    let mut s = TcpStream::connect_timeout(&addr, REQUEST_TIMEOUT)
        .with_context(|| format!("cannot reach the REST API at {address}"))?;
    s.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    s.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        payload.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(payload)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).with_context(|| format!("no answer from {address}"))?;
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| anyhow!("{address} did not answer HTTP"))?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("{address} did not answer HTTP"))?;
    if matches!(status, 307 | 308) {
        let location = head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case("location").then(|| v.trim().to_string())
        });
        return location.map(Sent::Redirect).ok_or_else(|| anyhow!("{address} redirected without a Location"));
    }
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    let body = dechunk(&raw[end + 4..], chunked);
    let body: Value = if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).unwrap_or(Value::Null) };
    if status >= 400 {
        let msg = body["errors"][0].as_str().unwrap_or("no message").to_string();
        bail!("{method} {path} failed ({status}): {msg}");
    }
    Ok(Sent::Answer(Answer { body }))
}

fn dechunk(b: &[u8], chunked: bool) -> Vec<u8> {
    if !chunked {
        return b.to_vec();
    }
    let mut out = Vec::new();
    let mut rest = b;
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < eol + 2 + size {
            break;
        }
        out.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
        rest = rest.get(eol + 4 + size..).unwrap_or_default();
    }
    out
}

/// Polls a savepoint operation until it completes; its location.
pub fn await_savepoint(address: &str, job: &str, trigger: &str, timeout: Duration) -> Result<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let a = call(address, "GET", &format!("/jobs/{job}/savepoints/{trigger}"), None)?;
        if a.body["status"]["id"] == "COMPLETED" {
            let op = &a.body["operation"];
            if let Some(loc) = op["location"].as_str() {
                return Ok(loc.to_string());
            }
            let why = op["failure-cause"]["stack-trace"].as_str().unwrap_or("unknown cause");
            bail!("the savepoint failed: {why}");
        }
        if Instant::now() > deadline {
            bail!("the savepoint did not complete within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits for a job to reach a terminal state; that state.
pub fn await_job(address: &str, job: &str) -> Result<String> {
    loop {
        let a = call(address, "GET", &format!("/jobs/{job}"), None)?;
        let state = a.body["state"].as_str().unwrap_or("").to_string();
        if matches!(state.as_str(), "FINISHED" | "FAILED" | "CANCELED") {
            return Ok(state);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
