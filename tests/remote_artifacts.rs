//! Remote artifacts (issue 13, FLINK-13938/17632): plugin libraries run straight from an
//! `http://` URL (fetched once into the content-addressed cache, within a size limit and a
//! timeout, with a clear error otherwise), from a directory of libraries, and over REST without
//! an upload (`POST /jars/run` with `jarUrl`), TaskManager processes fetching the URL themselves.
//!
//! The HTTP server is written here: a loopback `TcpListener` that serves the template plugin's
//! library and counts the requests for each path.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{http, sums_totals, template_plugin};
use riffle::{Configuration, MiniCluster, MiniClusterConfig, Programs};
use riffle_cluster::artifacts::{FetchLimits, FetchSettings};
use riffle_cluster::plugin::LoadedPlugins;
use riffle_cluster::taskmanager::TaskManager;

const SUMS: [(u64, u64); 3] = [(0, 1683), (1, 1617), (2, 1650)];
const LIB: &str = "/libriffle_plugin_template.so";

/// What the server answers for a path.
#[derive(Clone)]
enum Answer {
    /// 200 with a Content-Length.
    Body(Arc<Vec<u8>>),
    /// 200 without a Content-Length: the body ends with the connection.
    Unsized(Arc<Vec<u8>>),
}

/// A loopback HTTP/1.1 server: `routes` by path, 404 for anything else; counts requests by
/// path. Stopped (its thread ended) when dropped.
struct Server {
    addr: String,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(routes: HashMap<&str, Answer>) -> Server {
        let routes: HashMap<String, Answer> = routes.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let hits = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s) = (hits.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (routes, hits) = (routes.clone(), h.clone());
                std::thread::spawn(move || answer(conn, &routes, &hits));
            }
        });
        Server { addr, hits, stop, thread: Some(thread) }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which sees the flag and ends.
        let _ = TcpStream::connect(&self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Answers the requests of one connection (keep-alive until the client closes it).
fn answer(mut conn: TcpStream, routes: &HashMap<String, Answer>, hits: &Mutex<HashMap<String, usize>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    loop {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match conn.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
        *hits.lock().unwrap().entry(path.clone()).or_default() += 1;
        let written = match routes.get(&path) {
            Some(Answer::Body(b)) => conn
                .write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", b.len()).as_bytes())
                .and_then(|_| conn.write_all(b)),
            Some(Answer::Unsized(b)) => {
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n").and_then(|_| conn.write_all(b));
                return;
            }
            None => conn.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found"),
        };
        if written.is_err() {
            return;
        }
    }
}

fn library_server() -> Server {
    let lib = Arc::new(std::fs::read(template_plugin()).unwrap());
    Server::start(HashMap::from([(LIB, Answer::Body(lib.clone())), ("/unsized.so", Answer::Unsized(lib))]))
}

/// Runs `riffle args...` to its end, killed after `limit`; its output and how long it took.
fn riffle(args: &[String], limit: Duration) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_riffle"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipes = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out = std::thread::spawn(move || {
        let (mut o, mut e) = (Vec::new(), Vec::new());
        let err = std::thread::spawn(move || {
            let _ = pipes.1.read_to_end(&mut e);
            e
        });
        let _ = pipes.0.read_to_end(&mut o);
        (o, err.join().unwrap())
    });
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("riffle {args:?} ran longer than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (stdout, stderr) = out.join().unwrap();
    (Output { status, stdout, stderr }, started.elapsed())
}

fn args(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// `riffle -D blob.storage.directory=<cache> [extra] run --plugin <plugin> --entry sums 100 3 <out>`.
fn run_sums(cache: &Path, extra: &[&str], plugin: &str, out: &Path) -> (Output, Duration) {
    let mut a = args(&["-D", &format!("blob.storage.directory={}", cache.display())]);
    a.extend(args(extra));
    a.extend(args(&["run", "--plugin", plugin, "--entry", "sums", "100", "3", &out.display().to_string()]));
    riffle(&a, Duration::from_secs(120))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_job_runs_from_an_http_url_and_a_second_run_takes_the_library_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let server = library_server();
    let cache = dir.path().join("cache");
    for round in 0..2 {
        let out = dir.path().join(format!("sums-{round}.txt"));
        let (o, _) = run_sums(&cache, &[], &server.url(LIB), &out);
        assert!(o.status.success(), "round {round}: {}", stderr(&o));
        assert_eq!(sums_totals(&out), SUMS, "round {round}");
        // Fetched by the first run only: the second (a new process) finds it in the cache.
        assert_eq!(server.hits(LIB), 1, "round {round}");
    }
    let digest = riffle_cluster::artifacts::digest(&std::fs::read(template_plugin()).unwrap());
    assert!(cache.join(format!("{digest}.so")).is_file());
}

#[test]
fn http_errors_unreachable_hosts_and_oversize_libraries_are_clear_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = library_server();
    let cache = dir.path().join("cache");
    let out = dir.path().join("out.txt");
    // Not found: the URL and the status, the user's to fix.
    let missing = server.url("/missing.so");
    let (o, _) = run_sums(&cache, &[], &missing, &out);
    let e = stderr(&o);
    assert!(!o.status.success() && e.contains(&missing) && e.contains("HTTP 404") && e.lines().count() == 1, "{e}");
    // Nothing listens on the port: refused at once, not after retries.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let url = format!("http://{closed}/lib.so");
    let (o, took) = run_sums(&cache, &[], &url, &out);
    let e = stderr(&o);
    assert!(!o.status.success() && e.contains(&url) && e.contains("cannot connect") && e.lines().count() == 1, "{e}");
    // Each cause once, not the HTTP client's chain of repeats.
    assert_eq!(e.matches(&url).count(), 1, "{e}");
    assert!(took < Duration::from_secs(20), "an unreachable port took {took:?}");
    // Over blob.fetch.max-size, announced by Content-Length or not: refused, nothing cached.
    for path in [LIB, "/unsized.so"] {
        let (o, _) = run_sums(&cache, &["-D", "blob.fetch.max-size=64kb"], &server.url(path), &out);
        let e = stderr(&o);
        assert!(!o.status.success() && e.contains("larger than blob.fetch.max-size (65536 bytes)"), "{path}: {e}");
    }
    assert!(std::fs::read_dir(&cache).map(|d| d.flatten().all(|e| !e.path().is_file())).unwrap_or(true));
    // A scheme no store exists for.
    let (o, _) = run_sums(&cache, &[], "ftp://127.0.0.1/lib.so", &out);
    let e = stderr(&o);
    assert!(!o.status.success() && e.contains("scheme 'ftp' is not supported"), "{e}");
}

#[test]
fn a_directory_artifact_loads_its_libraries_and_ignores_other_files() {
    let dir = tempfile::tempdir().unwrap();
    let libs = dir.path().join("libs");
    std::fs::create_dir_all(libs.join("nested")).unwrap();
    std::fs::copy(template_plugin(), libs.join("libjobs.so")).unwrap();
    std::fs::write(libs.join("README.txt"), "not a library").unwrap();
    std::fs::write(libs.join(".partial.so"), "a hidden file: ignored").unwrap();
    std::fs::write(libs.join("nested").join("junk.so"), "in a subdirectory: ignored").unwrap();
    let cache = dir.path().join("cache");
    for (round, plugin) in [libs.display().to_string(), format!("file://{}", libs.display())].iter().enumerate() {
        let out = dir.path().join(format!("sums-{round}.txt"));
        let (o, _) = run_sums(&cache, &[], plugin, &out);
        assert!(o.status.success(), "{plugin}: {}", stderr(&o));
        assert_eq!(sums_totals(&out), SUMS, "{plugin}");
    }
    // A job no library of the directory offers, and a directory without libraries.
    let out = dir.path().join("out.txt");
    let mut a = args(&["run", "--plugin", &libs.display().to_string(), "--entry", "nope"]);
    let (o, _) = riffle(&a, Duration::from_secs(60));
    assert!(!o.status.success() && stderr(&o).contains("has no job 'nope'"), "{}", stderr(&o));
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("notes.txt"), "no library here").unwrap();
    a = args(&["run", "--plugin", &empty.display().to_string(), "--entry", "sums", &out.display().to_string()]);
    let (o, _) = riffle(&a, Duration::from_secs(60));
    let e = stderr(&o);
    assert!(!o.status.success() && e.contains("holds no plugin library") && e.lines().count() == 1, "{e}");
}

/// Polls `GET /jobs/{id}` until the job ended; its final state.
fn await_job(rest: &str, job: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, v) = http(rest, "GET", &format!("/jobs/{job}"), "");
        let state = v["state"].as_str().unwrap_or_default().to_string();
        if ["FINISHED", "FAILED", "CANCELED"].contains(&state.as_str()) {
            return state;
        }
        assert!(Instant::now() < deadline, "job {job} did not end: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn rest_runs_a_job_from_a_url_without_an_upload_and_task_managers_fetch_it_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let server = library_server();
    // A JobManager with no TaskExecutor of its own: the job runs in a TaskManager, which must
    // get the library from the URL.
    let jm_cache = dir.path().join("jm-cache");
    let settings = FetchSettings { cache_dir: jm_cache.clone(), limits: FetchLimits::default() };
    let programs: Arc<dyn Programs> = Arc::new(LoadedPlugins::with_fetch(settings));
    let mut cfg = MiniClusterConfig::new(0, 1).with_rpc().with_rest().with_programs(programs);
    cfg.config.set("jobmanager.rpc.address", "127.0.0.1").set("jobmanager.rpc.port", "0").set("rest.port", "0");
    let jm = MiniCluster::start(cfg).unwrap();
    let (host, port) = jm.rpc_address().unwrap().rsplit_once(':').map(|(h, p)| (h.to_string(), p.to_string())).unwrap();
    let blob = dir.path().join("tm-blob");
    let mut c = Configuration::new();
    c.set("jobmanager.rpc.address", &host)
        .set("jobmanager.rpc.port", &port)
        .set("taskmanager.resource-id", "tm-url")
        .set("taskmanager.numberOfTaskSlots", "1")
        .set("blob.storage.directory", blob.display().to_string());
    let tm = TaskManager::start(c, Arc::new(LoadedPlugins::default())).unwrap();
    tm.wait_registered(Duration::from_secs(10)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while jm.slot_report().unwrap().total < 1 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    let rest_url = jm.rest_url().unwrap();
    let rest = rest_url.trim_start_matches("http://").trim_end_matches('/').to_string();
    let url = server.url(LIB);

    // Flink's run body plus jarUrl (the template offers several jobs: entryClass names one).
    let out = dir.path().join("sums-rest.txt");
    let body = serde_json::json!({
        "jarUrl": url, "entryClass": "sums", "programArgsList": ["100", "3", out.display().to_string()]
    });
    let (status, v) = http(&rest, "POST", "/jars/run", &body.to_string());
    assert_eq!(status, 200, "{v}");
    let job = v["jobid"].as_str().unwrap().to_string();
    assert_eq!(await_job(&rest, &job), "FINISHED");
    assert_eq!(sums_totals(&out), SUMS);
    // The JobManager fetched it once into its cache, the TaskManager once into its own.
    assert_eq!(server.hits(LIB), 2);
    let digest = riffle_cluster::artifacts::digest(&std::fs::read(template_plugin()).unwrap());
    assert!(jm_cache.join(format!("{digest}.so")).is_file());
    assert!(blob.join(format!("{digest}.so")).is_file());

    // `riffle run -m` with a URL: no upload, the same request; both caches hit, no fetch.
    let out = dir.path().join("sums-cli.txt");
    let a = args(&["run", "-m", &rest, "--plugin", &url, "--entry", "sums", "100", "3", &out.display().to_string()]);
    let (o, _) = riffle(&a, Duration::from_secs(120));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(sums_totals(&out), SUMS);
    assert_eq!(server.hits(LIB), 2);
    assert_eq!(http(&rest, "GET", "/jars", "").1["files"].as_array().map(Vec::len), Some(0), "nothing was uploaded");

    // `riffle run -m` with a directory: its libraries are uploaded (shipped to the TaskManager
    // by the JobManager), the job runs from the one offering it.
    let libs = dir.path().join("libs");
    std::fs::create_dir_all(&libs).unwrap();
    std::fs::copy(template_plugin(), libs.join("libjobs.so")).unwrap();
    std::fs::write(libs.join("README.txt"), "not a library").unwrap();
    let out = dir.path().join("sums-dir.txt");
    let libs = libs.display().to_string();
    let a = args(&["run", "-m", &rest, "--plugin", &libs, "--entry", "sums", "100", "3", &out.display().to_string()]);
    let (o, _) = riffle(&a, Duration::from_secs(120));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(sums_totals(&out), SUMS);
    assert_eq!(http(&rest, "GET", "/jars", "").1["files"].as_array().map(Vec::len), Some(1));

    // Errors: a missing library (400 naming the URL and status), an unreachable host (503,
    // retryable), a URL that is not one, and jarUrl sent to an upload's run.
    let missing = server.url("/missing.so");
    let body = serde_json::json!({ "jarUrl": missing, "entryClass": "sums" }).to_string();
    let (status, v) = http(&rest, "POST", "/jars/run", &body);
    let msg = v["errors"][0].as_str().unwrap_or_default().to_string();
    assert!(status == 400 && msg.contains(&missing) && msg.contains("HTTP 404"), "{status} {v}");
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let body = serde_json::json!({ "jarUrl": format!("http://{closed}/x.so"), "entryClass": "sums" }).to_string();
    let (status, v) = http(&rest, "POST", "/jars/run", &body);
    assert!(status == 503 && v["errors"][0].as_str().unwrap_or_default().contains("cannot fetch"), "{status} {v}");
    for bad in [r#"{"jarUrl": "s3://b/x.so"}"#, r#"{"entryClass": "sums"}"#] {
        let (status, v) = http(&rest, "POST", "/jars/run", bad);
        assert_eq!(status, 400, "{bad}: {v}");
    }
    drop(tm);
    drop(jm);
}

#[test]
fn run_application_runs_a_job_from_an_http_url_on_task_manager_processes() {
    let dir = tempfile::tempdir().unwrap();
    let server = library_server();
    let out = dir.path().join("sums.txt");
    // The JobManager and both TaskManager processes get this directory (-D is passed on); each
    // TaskManager fetches the URL itself unless the library is there already.
    let blob = dir.path().join("blob");
    let a = args(&[
        "-D",
        &format!("blob.storage.directory={}", blob.display()),
        "run-application",
        "--plugin",
        &server.url(LIB),
        "--entry",
        "sums",
        "--taskmanagers",
        "2",
        "--slots",
        "1",
        "100",
        "3",
        &out.display().to_string(),
    ]);
    let (o, _) = riffle(&a, Duration::from_secs(120));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(sums_totals(&out), SUMS);
    let hits = server.hits(LIB);
    assert!((1..=3).contains(&hits), "{hits} fetches");
    let digest = riffle_cluster::artifacts::digest(&std::fs::read(template_plugin()).unwrap());
    assert!(blob.join(format!("{digest}.so")).is_file());
}
