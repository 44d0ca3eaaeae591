//! A real `riffle jobmanager` and a real `riffle taskmanager` process with different `log.dir`s:
//! the TaskManager's REST log pages list, show and download the TaskManager's own files
//! (fetched over its link), refuse names that are not exactly one of them, and answer a clear
//! error instead of hanging when the TaskManager does not answer; its memory figures are its
//! own process's, its network pool the configured one.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

mod common;

use common::{http, start, wait_until};

const TM: &str = "tm-own-logs";

fn line_with(rx: &Receiver<String>, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.contains(what) => return l,
            Ok(l) => seen.push(l),
            Err(_) => panic!("no line with '{what}' in {seen:?}"),
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0)).unwrap().local_addr().unwrap().port()
}

/// One GET with extra headers: status, headers (lowercase names) and the raw body.
fn get(addr: &str, path: &str, headers: &[(&str, &str)]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra}\r\n").unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete response");
    let head = String::from_utf8_lossy(&out[..split]).to_string();
    let status = head.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, out[split + 4..].to_vec())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn names(listing: &serde_json::Value) -> Vec<String> {
    listing["logs"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap().to_string()).collect()
}

fn rss_of(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let l = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    l.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill").args([sig, &pid.to_string()]).status().map(|s| s.success()).unwrap_or(false);
    assert!(ok, "kill {sig} {pid}");
}

#[test]
fn a_task_manager_process_serves_its_own_log_dir_and_reports_its_own_memory() {
    let dir = tempfile::tempdir().unwrap();
    let (jm_logs, tm_logs) = (dir.path().join("jm-logs"), dir.path().join("tm-logs"));
    std::fs::create_dir_all(&tm_logs).unwrap();
    std::fs::write(dir.path().join("secret"), b"not a log").unwrap();
    let rpc_port = free_port().to_string();
    let d = |kv: &str| ["-D".to_string(), kv.to_string()];
    let mut jm_args = vec!["jobmanager".to_string()];
    for kv in [
        "rest.port=0",
        "jobmanager.bind-host=127.0.0.1",
        "jobmanager.rpc.address=127.0.0.1",
        &format!("jobmanager.rpc.port={rpc_port}"),
        &format!("log.dir={}", jm_logs.display()),
        "web.timeout=1500",
        "heartbeat.interval=200 ms",
        "heartbeat.timeout=30 s",
    ] {
        jm_args.extend(d(kv));
    }
    let (jm, jm_out) = start(&jm_args);
    let line = line_with(&jm_out, "REST API and web UI at");
    let rest = line.split("http://").nth(1).and_then(|r| r.split('/').next()).unwrap().to_string();
    let mut tm_args = vec!["taskmanager".to_string()];
    for kv in [
        "jobmanager.rpc.address=127.0.0.1",
        &format!("jobmanager.rpc.port={rpc_port}"),
        "taskmanager.host=127.0.0.1",
        &format!("taskmanager.resource-id={TM}"),
        &format!("log.dir={}", tm_logs.display()),
        "heartbeat.interval=200 ms",
        "heartbeat.timeout=30 s",
        "taskmanager.memory.segment-size=32 kb",
        "taskmanager.memory.network.min=8 mb",
        "taskmanager.memory.network.max=8 mb",
        "state.backend=spillable-heap",
        "state.backend.memory-budget=48 mb",
    ] {
        tm_args.extend(d(kv));
    }
    let (tm, _tm_out) = start(&tm_args);
    let tm_pid = tm.0.id();
    wait_until("the TaskManager to register", Duration::from_secs(30), || {
        let (_, tms) = http(&rest, "GET", "/taskmanagers", "");
        tms["taskmanagers"].as_array().is_some_and(|a| a.iter().any(|t| t["id"] == TM))
    });

    // A file only the TaskManager's log.dir has, one only the JobManager's has, and one larger
    // than a piece of the link (1 MiB) and than the UI's tail (1 MiB).
    let known = "first line\nzweite Zeile: äöü\n\u{1F980} third\n";
    std::fs::write(tm_logs.join("known.txt"), known).unwrap();
    std::fs::write(jm_logs.join("jm-only.txt"), "jm").unwrap();
    let big: Vec<u8> = (0..(3 << 20) + 12_345u32).map(|i| b'a' + (i % 23) as u8).collect();
    std::fs::write(tm_logs.join("big.log"), &big).unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret"), tm_logs.join("link.log")).unwrap();

    // The listing is the TaskManager's directory, not the JobManager's.
    let logs = format!("/taskmanagers/{TM}/logs");
    let (status, listing) = http(&rest, "GET", &logs, "");
    assert_eq!(status, 200, "{listing}");
    let listed = names(&listing);
    assert!(listed.contains(&"known.txt".to_string()) && listed.contains(&"big.log".to_string()), "{listed:?}");
    assert!(listed.iter().any(|n| n.starts_with(&format!("taskmanager-{TM}."))), "its own log file: {listed:?}");
    assert!(!listed.iter().any(|n| n == "jm-only.txt" || n.starts_with("jobmanager")), "{listed:?}");
    assert!(!listed.contains(&"link.log".to_string()), "symbolic links are not listed: {listed:?}");
    let big_entry = listing["logs"].as_array().unwrap().iter().find(|f| f["name"] == "big.log").unwrap();
    assert_eq!(big_entry["size"], big.len() as u64);
    // The JobManager's own pages still show its own directory.
    let jm_listed = names(&http(&rest, "GET", "/jobmanager/logs", "").1);
    assert!(jm_listed.contains(&"jm-only.txt".to_string()) && !jm_listed.contains(&"known.txt".to_string()));

    // Viewing returns the exact bytes, inline; a download is an attachment.
    let (status, headers, body) = get(&rest, &format!("{logs}/known.txt"), &[]);
    assert_eq!(status, 200);
    assert_eq!(body, known.as_bytes());
    assert!(header(&headers, "content-type").unwrap().starts_with("text/plain"), "{headers:?}");
    assert!(header(&headers, "content-disposition").unwrap().starts_with("inline"), "{headers:?}");
    let (status, headers, body) = get(&rest, &format!("{logs}/known.txt?download=true"), &[]);
    assert_eq!(status, 200);
    assert_eq!(body, known.as_bytes());
    let disposition = header(&headers, "content-disposition").unwrap();
    assert!(disposition.starts_with("attachment") && disposition.contains("known.txt"), "{disposition}");

    // Larger than a piece of the link: served whole (as the JobManager's files are, there is
    // no size limit), and its tail by range (what the UI asks for files over 1 MiB).
    let (status, headers, body) = get(&rest, &format!("{logs}/big.log"), &[]);
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-length"), Some(big.len().to_string().as_str()));
    assert!(body == big, "the whole file: {} bytes of {}", body.len(), big.len());
    let (first, last) = (big.len() - (1 << 20), big.len() - 1);
    let range = format!("bytes={first}-{last}");
    let (status, headers, body) = get(&rest, &format!("{logs}/big.log"), &[("Range", &range)]);
    assert_eq!(status, 206);
    assert_eq!(header(&headers, "content-range"), Some(format!("bytes {first}-{last}/{}", big.len()).as_str()));
    assert!(body == big[first..], "the tail: {} bytes", body.len());
    let (status, _, _) = get(&rest, &format!("{logs}/big.log"), &[("Range", "bytes=99999999-")]);
    assert_eq!(status, 416);

    // Names that are not exactly one of its regular files: refused with a JSON error, whatever
    // the encoding; nothing outside the directory is read.
    for bad in [
        "..%2Fsecret",
        "%2E%2E%2Fsecret",
        "..%5Csecret",
        "%2Fetc%2Fpasswd",
        "%2e%2e",
        "link.log",
        "known.txt%00",
        "..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "missing.log",
        &format!("..%2F{}%2Fsecret", dir.path().file_name().unwrap().to_str().unwrap()),
    ] {
        let (status, body) = http(&rest, "GET", &format!("{logs}/{bad}"), "");
        assert_eq!(status, 404, "{bad}: {body}");
        assert!(body["errors"][0].is_string(), "{bad}: {body}");
    }

    // Memory: the TaskManager's own resident memory (not the JobManager's), its network pool
    // exactly as configured, its state backend budget; no JVM figures.
    let mut tm_info = serde_json::Value::Null;
    wait_until("a heartbeat with the TaskManager's memory", Duration::from_secs(10), || {
        tm_info = http(&rest, "GET", &format!("/taskmanagers/{TM}"), "").1;
        tm_info["metrics"]["residentMemory"].as_u64().is_some_and(|r| r > 0)
    });
    let m = &tm_info["metrics"];
    let reported = m["residentMemory"].as_u64().unwrap();
    let (tm_rss, jm_rss) = (rss_of(tm_pid), rss_of(jm.0.id()));
    assert_ne!(reported, jm_rss, "{tm_info}");
    assert!(reported > tm_rss / 4 && reported < tm_rss * 4, "reported {reported}, the TaskManager has {tm_rss}");
    assert_eq!(m["nettyShuffleMemorySegmentsTotal"], 256, "{tm_info}");
    assert_eq!(m["memorySegmentsTotal"], 256, "{tm_info}");
    assert_eq!(m["nettyShuffleMemoryTotal"], 8 << 20, "{tm_info}");
    assert_eq!(m["nettyShuffleMemorySegmentsAvailable"], 256, "{tm_info}");
    assert_eq!(tm_info["memoryConfiguration"]["networkMemory"], 8 << 20, "{tm_info}");
    assert_eq!(tm_info["memoryConfiguration"]["stateBackendMemoryBudget"], 48 << 20, "{tm_info}");
    assert_eq!(tm_info["totalResource"]["networkMemory"], 8, "{tm_info}");
    assert!(tm_info["hardware"]["physicalMemory"].as_u64().is_some_and(|p| p > 0), "{tm_info}");
    for jvm in ["heapUsed", "heapMax", "nonHeapUsed", "directUsed", "mappedUsed"] {
        assert!(m.get(jvm).is_none(), "{jvm} is not faked: {tm_info}");
    }
    for jvm in ["jvmMetaspace", "jvmOverhead", "taskHeap", "frameworkHeap"] {
        assert!(tm_info["memoryConfiguration"].get(jvm).is_none(), "{jvm} is not faked: {tm_info}");
    }
    // Its process metrics are its own, from its heartbeats: RSS near its process's, its
    // threads, the CPU of each slot thread (named after its slot) within its process's CPU.
    let ids = |v: &serde_json::Value| -> Vec<String> {
        v.as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_string()).collect()
    };
    let metric = |v: &serde_json::Value, id: &str| -> u64 {
        let m = v.as_array().unwrap().iter().find(|m| m["id"] == id).unwrap_or_else(|| panic!("no {id} in {v}"));
        m["value"].as_str().unwrap().parse::<f64>().unwrap() as u64
    };
    // They come with its heartbeats: wait for one that carries its slot thread (a loaded
    // machine may not have sent it yet).
    let mut list = serde_json::Value::Null;
    wait_until("a heartbeat with the TaskManager's slot thread", Duration::from_secs(30), || {
        let (status, answer) = http(&rest, "GET", &format!("/taskmanagers/{TM}/metrics"), "");
        let ready = status == 200 && answer.is_array() && ids(&answer).iter().any(|id| id == "Slot.0.CPU.Time");
        list = answer;
        ready
    });
    let (_, pm) = http(&rest, "GET", &format!("/taskmanagers/{TM}/metrics?get={}", ids(&list).join(",")), "");
    let rss = metric(&pm, "Status.Process.Memory.Resident");
    assert!(rss > tm_rss / 4 && rss < tm_rss * 4, "reported {rss}, the TaskManager has {tm_rss}");
    assert!(metric(&pm, "Status.Process.Threads.Count") > 1, "{pm}");
    assert_eq!(metric(&pm, "Status.Shuffle.Netty.TotalMemorySegments"), 256, "{pm}");
    assert_eq!(metric(&pm, "Status.StateBackend.MemoryBudget"), 48 << 20, "{pm}");
    let slot_cpu = metric(&pm, "Slot.0.CPU.Time");
    assert!(slot_cpu <= metric(&pm, "Status.Process.CPU.Time") + 10, "{pm}");
    assert!(!ids(&pm).iter().any(|id| id.contains("JVM") || id.contains("Heap")), "{pm}");

    // A TaskManager that does not answer (frozen): a 504 with a JSON error after web.timeout,
    // not a hang.
    signal(tm_pid, "-STOP");
    let asked = Instant::now();
    let (status, body) = http(&rest, "GET", &logs, "");
    let (file_status, file_body) = http(&rest, "GET", &format!("{logs}/known.txt"), "");
    signal(tm_pid, "-CONT");
    assert_eq!(status, 504, "{body}");
    assert!(body["errors"][0].as_str().unwrap().contains("did not answer"), "{body}");
    assert_eq!(file_status, 504, "{file_body}");
    assert!(asked.elapsed() < Duration::from_secs(10), "{:?}", asked.elapsed());
    // Thawed, it answers again.
    wait_until("the thawed TaskManager to answer", Duration::from_secs(10), || http(&rest, "GET", &logs, "").0 == 200);

    // A TaskManager that is gone: a prompt error, never a hang.
    drop(tm);
    let asked = Instant::now();
    let (status, body) = http(&rest, "GET", &logs, "");
    assert!(status == 503 || status == 404, "{status} {body}");
    assert!(body["errors"][0].is_string(), "{body}");
    assert!(asked.elapsed() < Duration::from_secs(5), "{:?}", asked.elapsed());
    drop(jm);
}
