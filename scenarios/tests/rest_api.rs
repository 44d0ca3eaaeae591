//! The REST API against a live MiniCluster running real jobs: Flink's paths and shapes,
//! the asynchronous savepoint operations, paging, and every kind of hostile input.

mod common;

use std::time::{Duration, Instant};

use common::http::{get, patch, post_json, request, Response};
use riffle_cluster::{MiniCluster, MiniClusterConfig};
use riffle_scenarios::catalog::programs;
use serde_json::{json, Value};

struct Rest {
    _mc: MiniCluster,
    url: String,
    dir: tempfile::TempDir,
}

fn start(extra: &[(&str, &str)]) -> Rest {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("log");
    std::fs::create_dir(&logs).unwrap();
    std::fs::write(logs.join("jobmanager.log"), "line one\nline two\nline three\n").unwrap();
    std::fs::write(logs.join("jobmanager.out"), "").unwrap();
    std::fs::write(logs.join("gc.log.0.current"), "gc").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "TOP SECRET").unwrap();
    let mut cfg = MiniClusterConfig::new(2, 2).with_rest().with_programs(programs());
    cfg.config
        .set("rest.port", "0")
        .set("log.dir", logs.display().to_string())
        .set("state.savepoints.dir", dir.path().join("savepoints").display().to_string())
        .set("rest.auth.secret-thing", "hidden");
    for (k, v) in extra {
        cfg.config.set(*k, *v);
    }
    let mc = MiniCluster::start(cfg).expect("cluster with REST starts");
    let url = mc.rest_url().expect("REST is served");
    Rest { _mc: mc, url, dir }
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn submit(r: &Rest, program: &str, args: &[&str], extra: Value) -> String {
    let mut body = json!({ "programArgsList": args, "parallelism": 2 });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let resp = post_json(&r.url, &format!("/programs/{program}/run"), &body);
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()["jobid"].as_str().expect("jobid").to_string()
}

fn state(r: &Rest, job: &str) -> String {
    get(&r.url, &format!("/jobs/{job}")).json()["state"].as_str().unwrap_or_default().to_string()
}

fn wait_state(r: &Rest, job: &str, want: &str) {
    wait_for(&format!("job {job} to be {want}"), Duration::from_secs(60), || state(r, job) == want);
}

fn assert_error(resp: &Response, status: u16) -> String {
    assert_eq!(resp.status, status, "{}", resp.text());
    assert!(resp.header("content-type").is_some_and(|c| c.starts_with("application/json")), "{:?}", resp.headers);
    let e = resp.error();
    assert!(!e.contains("panicked") && !e.contains("stack backtrace"), "{e}");
    e
}

#[test]
fn cluster_endpoints_answer_in_flinks_shapes_under_both_prefixes() {
    let r = start(&[]);
    let o = get(&r.url, "/overview").json();
    assert_eq!(o["taskmanagers"], 2);
    assert_eq!(o["slots-total"], 4);
    assert_eq!(o["slots-available"], 4);
    assert_eq!(o["jobs-running"], 0);
    assert!(o["riffle-version"].is_string() && o["flink-version"].is_string());
    assert_eq!(get(&r.url, "/v1/overview").json(), o);
    let c = get(&r.url, "/config").json();
    assert_eq!(c["features"]["web-submit"], true);
    assert!(c["refresh-interval"].as_u64().is_some());
    let conf = get(&r.url, "/jobmanager/config").json();
    let entries = conf.as_array().unwrap();
    let find = |k: &str| entries.iter().find(|e| e["key"] == k).map(|e| e["value"].clone());
    assert_eq!(find("rest.port"), Some(json!("0")));
    assert_eq!(find("rest.auth.secret-thing"), Some(json!("******")), "secrets are masked");
    let tms = get(&r.url, "/taskmanagers").json();
    let list = tms["taskmanagers"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["slotsNumber"], 2);
    assert_eq!(list[0]["freeSlots"], 2);
    let id = list[0]["id"].as_str().unwrap();
    let one = get(&r.url, &format!("/taskmanagers/{id}")).json();
    assert_eq!(one["id"], id);
    assert!(one["metrics"]["residentMemory"].as_u64().unwrap() > 0);
    assert!(one["metrics"].get("heapUsed").is_none(), "no JVM figures: {one}");
    assert_error(&get(&r.url, "/taskmanagers/nobody"), 404);
    // Unknown routes, versions and methods: JSON errors.
    assert!(assert_error(&get(&r.url, "/no/such/thing"), 404).contains("/no/such/thing"));
    assert_error(&get(&r.url, "/v2/overview"), 404);
    assert_error(&request(&r.url, "DELETE", "/overview", &[], b""), 405);
    // The UI is served at / from the binary.
    let ui = get(&r.url, "/");
    assert_eq!(ui.status, 200);
    assert!(ui.header("content-type").unwrap().starts_with("text/html"));
}

#[test]
fn a_submitted_program_shows_everywhere_with_exact_counts_and_a_retry_never_duplicates_it() {
    let r = start(&[]);
    let out = r.dir.path().join("counts.csv");
    let fixed = "00000000000000000000000000c0ffee";
    let args = ["--events", "1000", "--output", out.to_str().unwrap()];
    let job = submit(&r, "wordcount", &args, json!({ "jobId": fixed }));
    assert_eq!(job, fixed);
    // The client retries after a timeout: same job, no second one.
    assert_eq!(submit(&r, "wordcount", &args, json!({ "jobId": fixed })), fixed);
    wait_state(&r, &job, "FINISHED");
    let jobs = get(&r.url, "/jobs/overview").json();
    let mine: Vec<&Value> = jobs["jobs"].as_array().unwrap().iter().filter(|j| j["jid"] == fixed).collect();
    assert_eq!(mine.len(), 1, "{jobs}");
    let j = mine[0];
    assert_eq!(j["name"], "wordcount");
    assert!(j["end-time"].as_i64().unwrap() >= j["start-time"].as_i64().unwrap());
    assert_eq!(j["tasks"]["total"], j["tasks"]["finished"]);
    assert!(j["pending-operators"].is_number());
    assert_eq!(get(&r.url, "/jobs").json()["jobs"], json!([{ "id": fixed, "status": "FINISHED" }]));
    let d = get(&r.url, &format!("/v1/jobs/{job}")).json();
    assert_eq!(d["state"], "FINISHED");
    assert!(d["timestamps"]["RUNNING"].as_i64().unwrap() > 0);
    let vertices = d["vertices"].as_array().unwrap();
    let plan = get(&r.url, &format!("/jobs/{job}/plan")).json();
    let nodes = plan["plan"]["nodes"].as_array().unwrap();
    assert_eq!(vertices.len(), nodes.len());
    assert!(vertices.len() >= 2);
    // Every vertex finished; the counting vertex read exactly the 1000 generated words and
    // the vertex before it wrote exactly those.
    assert!(vertices.iter().all(|v| v["status"] == "FINISHED"));
    let count = vertices.iter().find(|v| v["name"].as_str().unwrap().contains("Count")).unwrap();
    assert_eq!(count["metrics"]["read-records"], 1000, "{count}");
    let first = &vertices[0];
    assert_eq!(first["metrics"]["write-records"], 1000, "{first}");
    // The plan's edge into the counting vertex is a hash exchange from the first vertex.
    let count_node = nodes.iter().find(|n| n["id"] == count["id"]).unwrap();
    assert_eq!(count_node["inputs"][0]["id"], first["id"]);
    assert_eq!(count_node["inputs"][0]["ship_strategy"], "HASH");
    // And the job really ran: its output is there.
    let lines = std::fs::read_to_string(&out).unwrap();
    let total: u64 = lines.lines().map(|l| l.rsplit(',').next().unwrap().parse::<u64>().unwrap()).sum();
    assert_eq!(total, 1000);
    // A finished job has no savepoint to take; cancelling it is a no-op.
    assert_error(&post_json(&r.url, &format!("/jobs/{job}/savepoints"), &json!({})), 409);
    assert_eq!(patch(&r.url, &format!("/jobs/{job}?mode=cancel")).status, 202);
    // Wordcount has no checkpointing: no statistics.
    assert_error(&get(&r.url, &format!("/jobs/{job}/checkpoints")), 404);
}

#[test]
fn the_failover_history_pages_through_every_failure_newest_first() {
    let r = start(&[]);
    let job = submit(&r, "failover-demo", &["--failures", "6", "--interval-ms", "200", "--seconds", "5"], json!({}));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let p = get(&r.url, &format!("/jobs/{job}/exceptions?page=0&size=100")).json();
        if p["total"].as_u64().unwrap_or(0) >= 6 {
            break;
        }
        assert!(Instant::now() < deadline, "six failures: {p} {}", get(&r.url, &format!("/jobs/{job}")).text());
        std::thread::sleep(Duration::from_millis(50));
    }
    let roots = |page: u64| -> Vec<String> {
        let p = get(&r.url, &format!("/jobs/{job}/exceptions?page={page}&size=2")).json();
        assert_eq!(p["page"], page);
        assert_eq!(p["size"], 2);
        p["exceptionHistory"]["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["isRootCause"] == true)
            .map(|e| e["stacktrace"].as_str().unwrap().to_string())
            .collect()
    };
    let has = |v: &[String], k: u32| v.iter().any(|s| s.contains(&format!("injected failure #{k} of 6")));
    let first = roots(0);
    assert!(has(&first, 6) && has(&first, 5), "{first:?}");
    let last = roots(2);
    assert!(has(&last, 2) && has(&last, 1), "{last:?}");
    // Flink 1.11's shape is there too.
    let flink = get(&r.url, &format!("/jobs/{job}/exceptions?maxExceptions=3")).json();
    assert!(flink["root-exception"].as_str().unwrap().contains("injected failure #6"));
    assert!(flink["all-exceptions"].as_array().unwrap().len() <= 3);
    assert_eq!(flink["truncated"], true);
    // Bad paging is refused.
    for q in ["page=-1&size=2", "page=x", "size=0", "size=101", "page=99999999999&size=1", "maxExceptions=-3"] {
        assert_error(&get(&r.url, &format!("/jobs/{job}/exceptions?{q}")), 400);
    }
    // A page past the end is empty, not an error.
    let empty = get(&r.url, &format!("/jobs/{job}/exceptions?page=50&size=10")).json();
    assert_eq!(empty["exceptionHistory"]["entries"], json!([]));
    wait_state(&r, &job, "FINISHED");
    let d = get(&r.url, &format!("/jobs/{job}")).json();
    assert_eq!(d["attempt"], 6);
}

#[test]
fn checkpoints_savepoints_stop_and_cancel_over_rest() {
    let r = start(&[]);
    let job = submit(&r, "failover-demo", &["--failures", "0", "--seconds", "60", "--rate", "5"], json!({}));
    wait_state(&r, &job, "RUNNING");
    wait_for("two completed checkpoints", Duration::from_secs(30), || {
        get(&r.url, &format!("/jobs/{job}/checkpoints")).json()["counts"]["completed"].as_u64().unwrap_or(0) >= 2
    });
    let c = get(&r.url, &format!("/jobs/{job}/checkpoints")).json();
    let history = c["history"].as_array().unwrap();
    assert!(!history.is_empty());
    let done = history.iter().find(|h| h["status"] == "COMPLETED").unwrap();
    assert_eq!(done["@class"], "completed");
    assert_eq!(done["num_acknowledged_subtasks"], done["num_subtasks"]);
    assert!(c["latest"]["completed"]["id"].as_u64().is_some());
    let id = done["id"].as_u64().unwrap();
    let details = get(&r.url, &format!("/jobs/{job}/checkpoints/details/{id}")).json();
    assert_eq!(details["id"], id);
    assert!(!details["tasks"].as_object().unwrap().is_empty());
    assert_error(&get(&r.url, &format!("/jobs/{job}/checkpoints/details/999999")), 404);
    assert_error(&get(&r.url, &format!("/jobs/{job}/checkpoints/details/abc")), 400);
    let cc = get(&r.url, &format!("/jobs/{job}/checkpoints/config")).json();
    assert_eq!(cc["interval"], 100);
    assert_eq!(cc["mode"], "exactly_once");

    // A savepoint as Flink's CLI asks for it.
    let target = r.dir.path().join("sp");
    let body = json!({"target-directory": target.to_str().unwrap(), "cancel-job": false, "formatType": "CANONICAL", "triggerId": null});
    let t = post_json(&r.url, &format!("/v1/jobs/{job}/savepoints"), &body);
    assert_eq!(t.status, 202, "{}", t.text());
    let rid = t.json()["request-id"].as_str().unwrap().to_string();
    let mut location = String::new();
    wait_for("the savepoint", Duration::from_secs(30), || {
        let s = get(&r.url, &format!("/v1/jobs/{job}/savepoints/{rid}")).json();
        if s["status"]["id"] == "COMPLETED" {
            location = s["operation"]["location"].as_str().unwrap_or_else(|| panic!("{s}")).to_string();
            return true;
        }
        assert_eq!(s["status"]["id"], "IN_PROGRESS");
        false
    });
    let dir = location.strip_prefix("file:").unwrap();
    assert!(std::path::Path::new(dir).join("_metadata").is_file(), "{location}");
    assert!(dir.starts_with(target.to_str().unwrap()));
    // The savepoint shows in the statistics.
    wait_for("the savepoint in the statistics", Duration::from_secs(5), || {
        get(&r.url, &format!("/jobs/{job}/checkpoints")).json()["latest"]["savepoint"]["is_savepoint"] == true
    });
    assert_error(&get(&r.url, &format!("/jobs/{job}/savepoints/0123456789abcdef0123456789abcdef")), 404);
    assert_error(&get(&r.url, &format!("/jobs/{job}/savepoints/not-a-trigger")), 400);
    assert_error(&post_json(&r.url, &format!("/jobs/{job}/savepoints"), &json!({"target-directory": "relative"})), 400);
    assert_error(&post_json(&r.url, &format!("/jobs/{job}/savepoints"), &json!({"formatType": "NATIVE"})), 400);
    assert_error(&request(&r.url, "POST", &format!("/jobs/{job}/savepoints"), &[], b"{not json"), 400);

    // Stop with a savepoint: the job ends FINISHED.
    let t = post_json(
        &r.url,
        &format!("/jobs/{job}/stop"),
        &json!({"targetDirectory": target.to_str().unwrap(), "drain": false}),
    );
    assert_eq!(t.status, 202, "{}", t.text());
    let rid = t.json()["request-id"].as_str().unwrap().to_string();
    wait_for("stop-with-savepoint", Duration::from_secs(30), || {
        get(&r.url, &format!("/jobs/{job}/savepoints/{rid}")).json()["status"]["id"] == "COMPLETED"
    });
    let s = get(&r.url, &format!("/jobs/{job}/savepoints/{rid}")).json();
    let stopped_at = s["operation"]["location"].as_str().unwrap_or_else(|| panic!("{s}")).to_string();
    wait_state(&r, &job, "FINISHED");

    // A new submission resumes from that savepoint.
    let sp = stopped_at.strip_prefix("file:").unwrap().to_string();
    let args = ["--failures", "0", "--seconds", "60", "--rate", "5"];
    let resumed = submit(&r, "failover-demo", &args, json!({ "savepointPath": sp }));
    wait_state(&r, &resumed, "RUNNING");
    wait_for("the restore in the statistics", Duration::from_secs(30), || {
        let c = get(&r.url, &format!("/jobs/{resumed}/checkpoints")).json();
        c["latest"]["restored"]["is_savepoint"] == true && c["latest"]["restored"]["external_path"] == sp.as_str()
    });
    assert_eq!(patch(&r.url, &format!("/jobs/{resumed}?mode=cancel")).status, 202);
    wait_state(&r, &resumed, "CANCELED");

    // Cancel a running job.
    let other = submit(&r, "failover-demo", &["--failures", "0", "--seconds", "60", "--rate", "5"], json!({}));
    wait_state(&r, &other, "RUNNING");
    assert_error(&request(&r.url, "PATCH", &format!("/jobs/{other}?mode=stop"), &[], b"{}"), 400);
    assert_eq!(patch(&r.url, &format!("/v1/jobs/{other}?mode=cancel")).status, 202);
    wait_state(&r, &other, "CANCELED");
    let o = get(&r.url, "/overview").json();
    assert_eq!(o["jobs-cancelled"], 2);
    assert_eq!(o["jobs-finished"], 1);
}

#[test]
fn hostile_input_gets_clear_json_errors_and_reaches_no_file_outside_the_log_directory() {
    let r = start(&[("rest.server.max-content-length", "1024")]);
    // Ids.
    assert!(assert_error(&get(&r.url, "/jobs/xyz"), 400).contains("not a job id"));
    assert_error(&get(&r.url, "/jobs/0123456789abcdef0123456789abcdef"), 404);
    assert_error(&get(&r.url, "/jobs/+123456789abcdef0123456789abcdef/plan"), 400);
    assert_error(&patch(&r.url, "/jobs/0123456789abcdef0123456789abcdef?mode=cancel"), 404);
    // Bodies: too large, not JSON, wrong types, unknown programs.
    let big = vec![b'x'; 4096];
    assert_error(
        &request(&r.url, "POST", "/programs/wordcount/run", &[("Content-Type", "application/json")], &big),
        413,
    );
    assert_error(&request(&r.url, "POST", "/programs/wordcount/run", &[], b"[1,2"), 400);
    assert_error(&post_json(&r.url, "/programs/wordcount/run", &json!({"parallelism": "two"})), 400);
    assert_error(&post_json(&r.url, "/programs/wordcount/run", &json!({"parallelism": 0})), 400);
    assert!(assert_error(&post_json(&r.url, "/programs/nope/run", &json!({})), 404).contains("nope"));
    assert!(assert_error(
        &post_json(&r.url, "/programs/wordcount/run", &json!({"programArgsList": ["--bad", "1"]})),
        400
    )
    .contains("--bad"));
    assert_error(&post_json(&r.url, "/programs/wordcount/run", &json!({"jobId": "../../x"})), 400);
    assert_error(&post_json(&r.url, "/programs/wordcount/run", &json!({"savepointPath": "/no/such/savepoint"})), 400);
    // Logs: all files are listed; traversal in any encoding finds nothing.
    let logs = get(&r.url, "/jobmanager/logs").json();
    let mut names: Vec<&str> = logs["logs"].as_array().unwrap().iter().map(|l| l["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, vec!["gc.log.0.current", "jobmanager.log", "jobmanager.out"]);
    assert!(logs["logs"][1]["size"] == 29 && logs["logs"][1]["mtime"].as_i64().unwrap() > 0, "{logs}");
    let f = get(&r.url, "/jobmanager/logs/jobmanager.log");
    assert_eq!(f.status, 200);
    assert_eq!(f.text(), "line one\nline two\nline three\n");
    for bad in [
        "..%2fsecret.txt",
        "..%252fsecret.txt",
        "%2e%2e%2fsecret.txt",
        "..%5csecret.txt",
        "%2e%2e",
        "..",
        "%2Fetc%2Fpasswd",
        "jobmanager.log%00",
        "..%c0%afsecret.txt",
    ] {
        for base in ["/jobmanager/logs/", "/v1/jobmanager/logs/", "/taskmanagers/taskexecutor-0/logs/"] {
            let resp = get(&r.url, &format!("{base}{bad}"));
            assert!(resp.status == 404 || resp.status == 400, "{base}{bad}: {} {}", resp.status, resp.text());
            assert!(!resp.text().contains("TOP SECRET"), "{base}{bad} leaked the file");
        }
    }
    // Ranges and downloads.
    let part = request(&r.url, "GET", "/jobmanager/logs/jobmanager.log", &[("Range", "bytes=5-7")], b"");
    assert_eq!(part.status, 206);
    assert_eq!(part.text(), "one");
    let dl = get(&r.url, "/taskmanagers/taskexecutor-1/logs/jobmanager.log?download=true");
    assert_eq!(dl.status, 200);
    assert!(dl.header("content-disposition").unwrap().starts_with("attachment"), "{:?}", dl.headers);
    assert_error(&get(&r.url, "/taskmanagers/taskexecutor-9/logs"), 404);
}

#[test]
fn a_bearer_token_guards_the_api_but_not_the_ui_files() {
    let r = start(&[("rest.auth.token", "s3cret-token")]);
    assert_error(&get(&r.url, "/overview"), 401);
    assert_error(&request(&r.url, "GET", "/overview", &[("Authorization", "Bearer wrong-token!")], b""), 401);
    let ok = request(&r.url, "GET", "/v1/overview", &[("Authorization", "Bearer s3cret-token")], b"");
    assert_eq!(ok.status, 200);
    assert_eq!(get(&r.url, "/").status, 200);
    assert_error(&post_json(&r.url, "/programs/wordcount/run", &json!({})), 401);
}

#[test]
fn metrics_are_prometheus_text_and_thread_dumps_name_threads_actors_and_subtasks() {
    let r = start(&[]);
    let job = submit(&r, "failover-demo", &["--failures", "0", "--seconds", "60", "--rate", "5"], json!({}));
    wait_state(&r, &job, "RUNNING");
    wait_for("records to flow", Duration::from_secs(30), || {
        let d = get(&r.url, &format!("/jobs/{job}")).json();
        d["vertices"].as_array().unwrap().iter().any(|v| v["metrics"]["read-records"].as_u64().unwrap_or(0) > 0)
    });
    let m = get(&r.url, "/metrics");
    assert_eq!(m.status, 200);
    assert!(m.header("content-type").unwrap().starts_with("text/plain"));
    let text = m.text();
    let mut samples = std::collections::HashMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            assert!(line.is_empty() || line.starts_with("# HELP ") || line.starts_with("# TYPE "), "{line}");
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {line}"));
        let v: f64 = value.parse().unwrap_or_else(|_| panic!("not a number: {line}"));
        let name = series.split('{').next().unwrap();
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'), "{line}");
        samples.entry(name.to_string()).or_insert_with(Vec::new).push((series.to_string(), v));
    }
    let slots = &samples["riffle_slots_total"];
    assert_eq!(slots[0].1, 4.0, "{text}");
    let records = samples.iter().find(|(k, _)| k.starts_with("riffle_vertex_records_in")).expect("records_in");
    assert!(records.1.iter().any(|(s, v)| s.contains(&format!("job_id=\"{job}\"")) && *v > 0.0), "{text}");
    assert!(samples.keys().any(|k| k.starts_with("riffle_checkpoints_completed")), "{text}");
    // Thread dumps.
    let td = get(&r.url, "/jobmanager/thread-dump").json();
    let threads = td["threadInfos"].as_array().unwrap();
    assert!(
        threads.iter().any(|t| t["threadName"] == "riffle-jobmanag" || t["threadName"] == "riffle-jobmanager"),
        "{td}"
    );
    assert!(threads.iter().all(|t| t["stringifiedThreadInfo"].as_str().unwrap().starts_with('"')));
    assert!(td["actors"].as_array().unwrap().iter().any(|a| a["name"] == "dispatcher"));
    assert!(td["actors"].as_array().unwrap().iter().any(|a| a["kind"] == "JobMaster"));
    // Every control actor's mailbox is counted, and says what it handled: the Dispatcher took
    // this job's submission, the ResourceManager its slot requests.
    let control: Vec<_> = td["actors"].as_array().unwrap().iter().filter(|a| a["kind"] != "Subtask").collect();
    assert!(control.len() >= 4, "{td}");
    assert!(control.iter().all(|a| a["mailbox"].is_u64() && a["since"].as_i64().unwrap() > 0), "{td}");
    let activity =
        |kind: &str| control.iter().find(|a| a["kind"] == kind).unwrap()["activity"].as_str().unwrap().to_string();
    for kind in ["Dispatcher", "ResourceManager", "JobMaster", "TaskExecutor"] {
        let a = activity(kind);
        assert!(a.starts_with("idle (last message: ") || a.starts_with("handling "), "{kind}: {a}");
    }
    let subtasks = td["subtasks"].as_array().unwrap();
    assert!(subtasks.iter().any(|s| s["job"] == job.as_str() && s["state"] == "RUNNING"), "{td}");
    assert!(subtasks.iter().all(|s| s["backpressured"].is_boolean()));
    assert!(subtasks
        .iter()
        .all(|s| s["mailbox"].is_u64() && s["activity"].is_string() && s["since"].as_i64().unwrap() > 0));
    let tm = get(&r.url, "/taskmanagers/taskexecutor-0/thread-dump").json();
    assert!(!tm["threadInfos"].as_array().unwrap().is_empty());
    let tm_actors = tm["actors"].as_array().unwrap();
    assert_eq!(tm_actors.iter().filter(|a| a["kind"] == "TaskExecutor").count(), 1);
    // Its subtasks, and only its, are listed with their backlog as their mailbox.
    let tm_subtasks = tm["subtasks"].as_array().unwrap();
    assert!(!tm_subtasks.is_empty());
    assert!(tm_subtasks.iter().all(|s| s["location"] == "taskexecutor-0"), "{tm}");
    assert_eq!(tm_actors.iter().filter(|a| a["kind"] == "Subtask").count(), tm_subtasks.len());
    // Backpressure per vertex.
    let d = get(&r.url, &format!("/jobs/{job}")).json();
    let vid = d["vertices"][0]["id"].as_str().unwrap().to_string();
    let bp = get(&r.url, &format!("/jobs/{job}/vertices/{vid}/backpressure")).json();
    assert_eq!(bp["status"], "ok");
    assert_eq!(bp["subtasks"].as_array().unwrap().len(), 2);
    assert_error(&get(&r.url, &format!("/jobs/{job}/vertices/0123/backpressure")), 400);
    assert_eq!(patch(&r.url, &format!("/jobs/{job}")).status, 202);
    wait_state(&r, &job, "CANCELED");
}
