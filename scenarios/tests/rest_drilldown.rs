//! The drill-down REST paths against a live MiniCluster running real jobs: a vertex's
//! subtasks (where each ran, its records, watermarks, times), its metrics, the job's
//! configuration, counters, metrics and result, and a checkpoint subtask by subtask, all in
//! Flink's field names and with the values the job produced.

mod common;

use std::time::{Duration, Instant};

use common::http::{get, post_json, Response};
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
    let mut cfg = MiniClusterConfig::new(2, 2).with_rest().with_programs(programs());
    cfg.config.set("rest.port", "0");
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
        std::thread::sleep(Duration::from_millis(50));
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

fn wait_state(r: &Rest, job: &str, want: &str) {
    wait_for(&format!("job {job} to be {want}"), Duration::from_secs(90), || {
        get(&r.url, &format!("/jobs/{job}")).json()["state"] == want
    });
}

fn not_found(resp: &Response) -> String {
    assert_eq!(resp.status, 404, "{}", resp.text());
    resp.error()
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

#[test]
fn a_finished_jobs_vertices_show_each_subtask_with_its_records_host_times_and_final_watermark() {
    let r = start(&[]);
    let out = r.dir.path().join("q5.csv");
    let job =
        submit(&r, "nexmark", &["--query", "q5", "--events", "20000", "--output", out.to_str().unwrap()], json!({}));
    wait_state(&r, &job, "FINISHED");
    let d = get(&r.url, &format!("/jobs/{job}")).json();
    let vertices = d["vertices"].as_array().unwrap().clone();
    assert!(vertices.len() >= 2, "{d}");
    let host = common::http::host_of(&r.url);
    let mut details = Vec::new();
    for v in &vertices {
        let vid = v["id"].as_str().unwrap();
        let x = get(&r.url, &format!("/jobs/{job}/vertices/{vid}")).json();
        assert_eq!((&x["id"], &x["name"], &x["parallelism"]), (&v["id"], &v["name"], &v["parallelism"]));
        let subtasks = x["subtasks"].as_array().unwrap();
        assert_eq!(subtasks.len() as u64, u(&v["parallelism"]));
        for (i, s) in subtasks.iter().enumerate() {
            assert_eq!(s["subtask"], i);
            assert_eq!(s["status"], "FINISHED");
            assert_eq!(s["attempt"], 0);
            // Embedded TaskExecutors run in this process: the REST server's address.
            assert_eq!(s["endpoint"], host.as_str(), "{s}");
            assert_eq!(s["host"], "127.0.0.1");
            let tm = s["taskmanager-id"].as_str().unwrap();
            assert!(tm == "taskexecutor-0" || tm == "taskexecutor-1", "{s}");
            let (start, end) = (s["start-time"].as_i64().unwrap(), s["end-time"].as_i64().unwrap());
            assert!(start > 0 && end >= start, "{s}");
            assert_eq!(s["duration"].as_i64().unwrap(), end - start);
            assert_eq!(s["metrics"]["write-records-complete"], true);
            let busy = u(&s["metrics"]["accumulated-busy-time"]);
            let idle = u(&s["metrics"]["accumulated-idle-time"]);
            let bp = u(&s["metrics"]["accumulated-backpressured-time"]);
            assert!(busy + idle + bp <= (end - start) as u64 + 1, "{s}");
        }
        // The subtasks' records add up to the vertex's.
        for field in ["read-records", "write-records"] {
            let sum: u64 = subtasks.iter().map(|s| u(&s["metrics"][field])).sum();
            assert_eq!(sum, u(&v["metrics"][field]), "{field} of {}", v["name"]);
        }
        details.push(x);
    }
    // What the source wrote, the next vertex read: every record crossed the edge once.
    let (source, next) = (&vertices[0], &vertices[1]);
    assert!(u(&source["metrics"]["write-records"]) > 0);
    assert_eq!(source["metrics"]["read-records"], 0);
    assert_eq!(source["metrics"]["write-records"], next["metrics"]["read-records"]);
    let acc = get(&r.url, &format!("/jobs/{job}/accumulators")).json();
    let user = acc["user-task-accumulators"].as_array().unwrap();
    let source_records = user.iter().find(|a| a["name"] == "sourceRecords").unwrap();
    assert_eq!(source_records["value"], "20000");
    assert_eq!(source_records["type"], "LongCounter");
    assert_eq!(acc["job-accumulators"], json!([]));

    // Watermarks: a source has no input watermark; the vertex after it saw the final one.
    let sid = source["id"].as_str().unwrap();
    let nid = next["id"].as_str().unwrap();
    let wm = get(&r.url, &format!("/jobs/{job}/vertices/{sid}/watermarks")).json();
    assert_eq!(
        wm,
        json!([{"id": "0.currentInputWatermark", "value": i64::MIN.to_string()},
               {"id": "1.currentInputWatermark", "value": i64::MIN.to_string()}])
    );
    let wm = get(&r.url, &format!("/jobs/{job}/vertices/{nid}/watermarks")).json();
    assert_eq!(
        wm,
        json!([{"id": "0.currentInputWatermark", "value": i64::MAX.to_string()},
               {"id": "1.currentInputWatermark", "value": i64::MAX.to_string()}])
    );
    // The source's output watermark reached the end too.
    let m = get(&r.url, &format!("/jobs/{job}/vertices/{sid}/metrics?get=0.currentOutputWatermark")).json();
    assert_eq!(m, json!([{"id": "0.currentOutputWatermark", "value": i64::MAX.to_string()}]));

    // Vertex metrics: ids without get, values (strings) with it.
    let ids = get(&r.url, &format!("/jobs/{job}/vertices/{nid}/metrics")).json();
    let ids: Vec<&str> = ids.as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    for want in ["0.numRecordsIn", "1.numRecordsOut", "0.busyTimeMsPerSecond", "1.currentInputWatermark"] {
        assert!(ids.contains(&want), "{want} missing from {ids:?}");
    }
    let sub = &details[1]["subtasks"];
    let m = get(&r.url, &format!("/jobs/{job}/vertices/{nid}/metrics?get=0.numRecordsIn,1.numRecordsIn,nope")).json();
    assert_eq!(
        m,
        json!([{"id": "0.numRecordsIn", "value": sub[0]["metrics"]["read-records"].to_string()},
               {"id": "1.numRecordsIn", "value": sub[1]["metrics"]["read-records"].to_string()}])
    );
    let agg = get(&r.url, &format!("/jobs/{job}/vertices/{nid}/subtasks/metrics?get=numRecordsIn&agg=sum,max")).json();
    let (a, b) = (u(&sub[0]["metrics"]["read-records"]), u(&sub[1]["metrics"]["read-records"]));
    assert_eq!(agg, json!([{"id": "numRecordsIn", "sum": (a + b) as f64, "max": a.max(b) as f64}]));
    let one = get(&r.url, &format!("/jobs/{job}/vertices/{nid}/subtasks/1/metrics?get=numRecordsIn")).json();
    assert_eq!(one, json!([{"id": "numRecordsIn", "value": b.to_string()}]));
    let bad = get(&r.url, &format!("/jobs/{job}/vertices/{nid}/subtasks/metrics?agg=median"));
    assert_eq!(bad.status, 400, "{}", bad.text());
    not_found(&get(&r.url, &format!("/jobs/{job}/vertices/{nid}/subtasks/2/metrics")));

    // Subtask times: every subtask went through SCHEDULED, DEPLOYING?, RUNNING to FINISHED.
    let times = get(&r.url, &format!("/jobs/{job}/vertices/{nid}/subtasktimes")).json();
    assert_eq!(times["id"], nid);
    for s in times["subtasks"].as_array().unwrap() {
        let ts = &s["timestamps"];
        let (created, running, finished) =
            (ts["CREATED"].as_i64().unwrap(), ts["RUNNING"].as_i64().unwrap(), ts["FINISHED"].as_i64().unwrap());
        assert!(created > 0 && created <= running && running <= finished, "{s}");
        assert_eq!(ts["FAILED"], 0);
    }
    // Per TaskManager: the subtasks grouped by where they ran, records summed.
    let tms = get(&r.url, &format!("/jobs/{job}/vertices/{nid}/taskmanagers")).json();
    let list = tms["taskmanagers"].as_array().unwrap();
    let total: u64 = list.iter().map(|t| u(&t["metrics"]["read-records"])).sum();
    assert_eq!(total, u(&next["metrics"]["read-records"]));
    let counted: u64 = list.iter().map(|t| u(&t["status-counts"]["FINISHED"])).sum();
    assert_eq!(counted, 2);
    assert!(list.iter().all(|t| t["status"] == "FINISHED" && t["endpoint"] == host.as_str()), "{tms}");
    // The vertex's own accumulators: none, in Flink's shape.
    assert_eq!(
        get(&r.url, &format!("/jobs/{job}/vertices/{nid}/accumulators")).json(),
        json!({"id": nid, "user-accumulators": []})
    );

    // The job's configuration, metrics and result.
    let c = get(&r.url, &format!("/jobs/{job}/config")).json();
    assert_eq!(c["jid"], job.as_str());
    assert_eq!(c["execution-config"]["job-parallelism"], 2);
    assert!(c["execution-config"]["user-config"].is_object(), "{c}");
    let m = get(&r.url, &format!("/jobs/{job}/metrics?get=numRestarts,sourceRecords,uptime")).json();
    assert_eq!(
        m,
        json!([{"id": "numRestarts", "value": "0"}, {"id": "sourceRecords", "value": "20000"},
               {"id": "uptime", "value": "0"}])
    );
    let res = get(&r.url, &format!("/jobs/{job}/execution-result")).json();
    assert_eq!(res["status"]["id"], "COMPLETED");
    assert_eq!(res["job-execution-result"]["id"], job.as_str());
    assert_eq!(res["job-execution-result"]["application-status"], "SUCCEEDED");
    assert!(res["job-execution-result"].get("failure-cause").is_none());

    // Unknown ids: 404 with Flink's errors body.
    let other = "0123456789abcdef0123456789abcdef";
    for path in [
        format!("/jobs/{other}/vertices/{nid}"),
        format!("/jobs/{other}/config"),
        format!("/jobs/{other}/accumulators"),
        format!("/jobs/{other}/metrics"),
        format!("/jobs/{other}/execution-result"),
        format!("/jobs/{job}/vertices/{}ffff", &nid[..28]),
        format!("/jobs/{job}/vertices/{}ffff/watermarks", &nid[..28]),
        format!("/jobs/{job}/vertices/{}ffff/subtasktimes", &nid[..28]),
        format!("/jobs/{job}/vertices/{}ffff/taskmanagers", &nid[..28]),
    ] {
        let e = not_found(&get(&r.url, &path));
        assert!(e.contains("not found") || e.contains("has no vertex"), "{path}: {e}");
    }
}

#[test]
fn a_running_job_shows_its_result_in_progress_and_a_checkpoint_subtask_by_subtask() {
    let r = start(&[("web.checkpoints.history", "3")]);
    let job = submit(&r, "failover-demo", &["--failures", "0", "--seconds", "60", "--rate", "5"], json!({}));
    wait_state(&r, &job, "RUNNING");
    assert_eq!(get(&r.url, &format!("/jobs/{job}/execution-result")).json(), json!({"status": {"id": "IN_PROGRESS"}}));
    wait_for("five completed checkpoints", Duration::from_secs(60), || {
        get(&r.url, &format!("/jobs/{job}/checkpoints")).json()["counts"]["completed"].as_u64().unwrap_or(0) >= 5
    });
    let c = get(&r.url, &format!("/jobs/{job}/checkpoints")).json();
    // web.checkpoints.history = 3: three records, counts cover all.
    assert_eq!(c["history"].as_array().unwrap().len(), 3, "{c}");
    assert!(u(&c["counts"]["total"]) >= 5);
    let done = c["history"].as_array().unwrap().iter().find(|h| h["status"] == "COMPLETED").unwrap().clone();
    let cid = u(&done["id"]);
    let oldest = u(&c["history"][2]["id"]);
    not_found(&get(&r.url, &format!("/jobs/{job}/checkpoints/details/{}", oldest - 1)));
    let d = get(&r.url, &format!("/jobs/{job}/checkpoints/details/{cid}")).json();
    let tasks = d["tasks"].as_object().unwrap();
    let vertices = get(&r.url, &format!("/jobs/{job}")).json()["vertices"].as_array().unwrap().clone();
    assert_eq!(tasks.len(), vertices.len());
    let mut state_total = 0;
    for v in &vertices {
        let vid = v["id"].as_str().unwrap();
        let t = &tasks[vid];
        assert_eq!(t["status"], "COMPLETED");
        assert_eq!(t["num_subtasks"], v["parallelism"]);
        assert_eq!(t["num_acknowledged_subtasks"], v["parallelism"]);
        state_total += u(&t["state_size"]);
        let s = get(&r.url, &format!("/jobs/{job}/checkpoints/details/{cid}/subtasks/{vid}")).json();
        assert_eq!((&s["id"], &s["state_size"]), (&json!(vid), &t["state_size"]));
        let subtasks = s["subtasks"].as_array().unwrap();
        assert_eq!(subtasks.len() as u64, u(&v["parallelism"]));
        let mut sizes = 0;
        let mut latest = 0;
        for (i, st) in subtasks.iter().enumerate() {
            assert_eq!(
                (&st["@class"], &st["index"], &st["status"]),
                (&json!("completed"), &json!(i), &json!("completed"))
            );
            let ack = st["ack_timestamp"].as_i64().unwrap();
            assert!(ack >= d["trigger_timestamp"].as_i64().unwrap());
            assert_eq!(st["end_to_end_duration"].as_i64().unwrap(), ack - d["trigger_timestamp"].as_i64().unwrap());
            assert!(st["checkpoint"]["sync"].is_u64() && st["checkpoint"]["async"].is_u64(), "{st}");
            assert!(st["alignment"]["duration"].is_u64() && st["alignment"]["buffered"].is_u64(), "{st}");
            // Alignment is between the first and the last barrier: within the end-to-end time.
            assert!(u(&st["alignment"]["duration"]) <= u(&st["end_to_end_duration"]), "{st}");
            sizes += u(&st["state_size"]);
            latest = latest.max(ack);
        }
        assert_eq!(sizes, u(&t["state_size"]));
        assert_eq!(t["latest_ack_timestamp"].as_i64().unwrap(), latest);
        let sum = &s["summary"];
        let sizes_of: Vec<u64> = subtasks.iter().map(|st| u(&st["state_size"])).collect();
        assert_eq!(sum["state_size"]["max"], *sizes_of.iter().max().unwrap());
        assert_eq!(sum["state_size"]["min"], *sizes_of.iter().min().unwrap());
        assert!(sum["checkpoint_duration"]["sync"]["max"].is_u64(), "{sum}");
    }
    assert_eq!(state_total, u(&d["state_size"]));
    // The running job's metrics count its checkpoints; its uptime grows.
    let m = get(&r.url, &format!("/jobs/{job}/metrics?get=numberOfCompletedCheckpoints,uptime")).json();
    assert!(m[0]["value"].as_str().unwrap().parse::<u64>().unwrap() >= 5, "{m}");
    assert!(m[1]["value"].as_str().unwrap().parse::<u64>().unwrap() > 0, "{m}");
    // A vertex of a running job: its subtasks run, with a location and no end.
    let vid = vertices[0]["id"].as_str().unwrap();
    let x = get(&r.url, &format!("/jobs/{job}/vertices/{vid}")).json();
    for s in x["subtasks"].as_array().unwrap() {
        assert_eq!((&s["status"], &s["end-time"]), (&json!("RUNNING"), &json!(-1)), "{s}");
        assert!(s["duration"].as_i64().unwrap() >= 0);
    }
    let bogus = format!("/jobs/{job}/checkpoints/details/{cid}/subtasks/{}ffff", &vid[..28]);
    assert_eq!(get(&r.url, &bogus).status, 404);
    let resp = common::http::patch(&r.url, &format!("/jobs/{job}?mode=cancel"));
    assert_eq!(resp.status, 202);
    wait_state(&r, &job, "CANCELED");
    let res = get(&r.url, &format!("/jobs/{job}/execution-result")).json();
    assert_eq!(res["job-execution-result"]["application-status"], "CANCELED");
}

/// `key:  <n> kB` of this process's `/proc/self/status`, in bytes.
fn own_status_kb(key: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with(key)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

fn metric(list: &Value, id: &str) -> f64 {
    let m = list.as_array().unwrap().iter().find(|m| m["id"] == id).unwrap_or_else(|| panic!("no {id} in {list}"));
    m["value"].as_str().unwrap().parse::<f64>().unwrap()
}

#[test]
fn job_and_task_managers_report_what_their_process_really_uses_and_slot_threads_carry_names() {
    let r = start(&[]);
    let out = r.dir.path().join("counts.csv");
    let job = submit(&r, "wordcount", &["--events", "200000", "--output", out.to_str().unwrap()], json!({}));
    wait_state(&r, &job, "FINISHED");
    // The cluster is embedded: the JobManager's process is this test's.
    let names = get(&r.url, "/jobmanager/metrics").json();
    let ids: Vec<&str> = names.as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert!(ids.iter().all(|id| !id.contains("JVM") && !id.contains("Heap")), "{ids:?}");
    let jm = get(&r.url, &format!("/jobmanager/metrics?get={}", ids.join(","))).json();
    assert_eq!(jm.as_array().unwrap().len(), ids.len());
    let rss = metric(&jm, "Status.Process.Memory.Resident");
    let own = own_status_kb("VmRSS:") as f64;
    assert!((rss - own).abs() < own * 0.25, "resident {rss} vs /proc's {own}");
    assert!(metric(&jm, "Status.Process.Memory.ResidentPeak") >= rss);
    let threads = metric(&jm, "Status.Process.Threads.Count");
    assert!(threads >= 4.0, "2 TaskExecutors x 2 slot threads at least: {threads}");
    assert!(metric(&jm, "Status.Process.CPU.Time") > 0.0, "the job used CPU");
    let load = metric(&jm, "Status.Process.CPU.Load");
    assert!((0.0..=1.0).contains(&load), "{load}");
    assert_eq!(metric(&jm, "numRegisteredTaskManagers"), 2.0);
    assert_eq!((metric(&jm, "taskSlotsTotal"), metric(&jm, "taskSlotsAvailable")), (4.0, 4.0));
    assert_eq!(metric(&jm, "numRunningJobs"), 0.0);
    assert!(metric(&jm, "Status.Machine.Memory.Total") >= metric(&jm, "Status.Machine.Memory.Available"));

    // A TaskManager: its slots, and the CPU time of the thread of each slot.
    let tm = get(&r.url, "/taskmanagers/taskexecutor-1/metrics").json();
    let ids: Vec<&str> = tm.as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    let tm = get(&r.url, &format!("/taskmanagers/taskexecutor-1/metrics?get={}", ids.join(","))).json();
    assert_eq!((metric(&tm, "Status.Slots.Total"), metric(&tm, "Status.Slots.Allocated")), (2.0, 0.0));
    assert!(metric(&tm, "Slot.0.CPU.Time") >= 0.0 && metric(&tm, "Slot.1.CPU.Time") >= 0.0);
    let slot_cpu = metric(&tm, "Slot.0.CPU.Time") + metric(&tm, "Slot.1.CPU.Time");
    assert!(slot_cpu <= metric(&tm, "Status.Process.CPU.Time"), "a slot thread's CPU is part of its process's");
    not_found(&get(&r.url, "/taskmanagers/nobody/metrics"));

    // A thread dump names the threads that run each slot's subtasks.
    let dump = get(&r.url, "/jobmanager/thread-dump").json();
    let names: Vec<&str> =
        dump["threadInfos"].as_array().unwrap().iter().map(|t| t["threadName"].as_str().unwrap()).collect();
    for want in ["te0-slot0", "te0-slot1", "te1-slot0", "te1-slot1"] {
        assert!(names.contains(&want), "no thread {want} in {names:?}");
    }
}

#[test]
fn a_submissions_configuration_is_checked_before_the_job_starts() {
    let r = start(&[]);
    let jobs = || get(&r.url, "/jobs").json()["jobs"].as_array().unwrap().len();
    let run = |config: Value| {
        post_json(
            &r.url,
            "/programs/wordcount/run",
            &json!({"programArgsList": ["--events", "100"], "flinkConfiguration": config}),
        )
    };
    // A typo of a known key: 400 naming the key it is close to.
    let typo = run(json!({"execution.checkpointing.intervall": "1 s"}));
    assert_eq!(typo.status, 400, "{}", typo.text());
    assert_eq!(
        typo.error(),
        "flinkConfiguration: unknown configuration key 'execution.checkpointing.intervall': did you mean \
         'execution.checkpointing.interval'?"
    );
    // A value its option cannot parse, and one the runtime would refuse at its start.
    let bad = run(json!({"execution.checkpointing.interval": "soon"}));
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert!(bad.error().starts_with("flinkConfiguration: invalid value 'soon' for 'execution.checkpointing.interval'"));
    let strategy = run(json!({"restart-strategy": "sometimes"}));
    assert_eq!(strategy.status, 400, "{}", strategy.text());
    assert!(strategy.error().contains("restart-strategy"), "{}", strategy.error());
    assert_eq!(jobs(), 0, "nothing refused was started");
    // A key nothing like a known one: the job starts, the answer warns.
    let foreign = run(json!({"my.team.owner": "ops"}));
    assert_eq!(foreign.status, 200, "{}", foreign.text());
    assert_eq!(foreign.json()["warnings"], json!(["unknown configuration key 'my.team.owner' (ignored)"]));
    let job = foreign.json()["jobid"].as_str().unwrap().to_string();
    wait_state(&r, &job, "FINISHED");
    // Its configuration shows what it was given.
    let c = get(&r.url, &format!("/jobs/{job}/config")).json();
    assert_eq!(c["execution-config"]["user-config"]["my.team.owner"], "ops");
    // A clean configuration: no warnings field.
    let clean = run(json!({"execution.checkpointing.interval": "1 s"}));
    assert_eq!(clean.status, 200, "{}", clean.text());
    assert!(clean.json().get("warnings").is_none(), "{}", clean.text());
}

#[test]
fn a_failures_location_is_the_host_and_port_of_its_task_manager() {
    let r = start(&[]);
    let job = submit(
        &r,
        "failover-demo",
        &["--failures", "1", "--interval-ms", "100", "--seconds", "3", "--rate", "5"],
        json!({}),
    );
    wait_for("the injected failure", Duration::from_secs(60), || {
        get(&r.url, &format!("/jobs/{job}/exceptions?page=0&size=10")).json()["total"].as_u64().unwrap_or(0) >= 1
    });
    let p = get(&r.url, &format!("/jobs/{job}/exceptions?page=0&size=10")).json();
    let e = &p["exceptionHistory"]["entries"][0];
    assert_eq!(e["location"], common::http::host_of(&r.url).as_str(), "{e}");
    let tm = e["taskManagerId"].as_str().unwrap();
    assert!(tm == "taskexecutor-0" || tm == "taskexecutor-1", "{e}");
    assert!(e["stacktrace"].as_str().unwrap().starts_with(e["exceptionName"].as_str().unwrap()), "{e}");
    let flink = get(&r.url, &format!("/jobs/{job}/exceptions")).json();
    assert_eq!(flink["all-exceptions"][0]["location"], common::http::host_of(&r.url).as_str(), "{flink}");
}

/// The Prometheus samples of `text`: (series with labels, value).
fn samples(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_string(), value.parse().unwrap())
        })
        .collect()
}

#[test]
fn prometheus_series_carry_job_vertex_and_subtask_labels_and_go_when_the_job_ends() {
    let r = start(&[]);
    let job = submit(&r, "failover-demo", &["--failures", "0", "--seconds", "60", "--rate", "5"], json!({}));
    wait_state(&r, &job, "RUNNING");
    let d = get(&r.url, &format!("/jobs/{job}")).json();
    let sink = d["vertices"].as_array().unwrap().last().unwrap().clone();
    let vid = sink["id"].as_str().unwrap();
    wait_for("records in the sink's subtasks", Duration::from_secs(30), || {
        samples(&get(&r.url, "/metrics").text()).iter().any(|(s, v)| {
            s.starts_with("riffle_task_records_in") && s.contains(&format!("vertex_id=\"{vid}\"")) && *v > 0.0
        })
    });
    let text = get(&r.url, "/metrics").text();
    assert!(!text.contains("otel_scope_name"), "{text}");
    let all = samples(&text);
    let mine: Vec<&(String, f64)> = all.iter().filter(|(s, _)| s.contains(&format!("job_id=\"{job}\""))).collect();
    for i in 0..2 {
        let series = mine
            .iter()
            .find(|(s, _)| {
                s.starts_with("riffle_task_records_in")
                    && s.contains(&format!("vertex_id=\"{vid}\""))
                    && s.contains(&format!("subtask_index=\"{i}\""))
            })
            .unwrap_or_else(|| panic!("no records_in of subtask {i} of {vid}: {text}"));
        assert!(series.0.contains(&format!("vertex_name=\"{}\"", sink["name"].as_str().unwrap())), "{}", series.0);
        assert!(series.0.contains("job_name=\"failover demo\""), "{}", series.0);
    }
    for name in ["riffle_task_records_out", "riffle_task_backpressured_seconds", "riffle_task_backpressured"] {
        assert!(mine.iter().any(|(s, _)| s.starts_with(name) && s.contains("subtask_index=")), "{name}: {text}");
    }
    let vertex = mine.iter().find(|(s, _)| s.starts_with("riffle_vertex_records_in")).expect("vertex series");
    assert!(vertex.0.contains("vertex_id=\"") && vertex.0.contains("vertex_name=\""), "{}", vertex.0);
    assert_eq!(common::http::patch(&r.url, &format!("/jobs/{job}?mode=cancel")).status, 202);
    wait_state(&r, &job, "CANCELED");
    let after = get(&r.url, "/metrics").text();
    assert!(!after.contains(&job), "the ended job's series are gone: {after}");
    assert!(after.contains("riffle_slots_total"), "{after}");
}

fn stop(r: &Rest, job: &str, drain: bool) -> Instant {
    let target = r.dir.path().join(format!("stop-{job}"));
    let t = post_json(
        &r.url,
        &format!("/jobs/{job}/stop"),
        &json!({"targetDirectory": target.to_str().unwrap(), "drain": drain}),
    );
    assert_eq!(t.status, 202, "{}", t.text());
    let rid = t.json()["request-id"].as_str().unwrap().to_string();
    wait_for("the stop's savepoint", Duration::from_secs(60), || {
        get(&r.url, &format!("/jobs/{job}/savepoints/{rid}")).json()["status"]["id"] == "COMPLETED"
    });
    let s = get(&r.url, &format!("/jobs/{job}/savepoints/{rid}")).json();
    assert!(s["operation"]["location"].is_string(), "{s}");
    Instant::now()
}

#[test]
fn stop_without_drain_ends_the_job_at_once_without_a_final_watermark_and_with_drain_it_fires_windows() {
    let r = start(&[]);
    let args = ["--query", "q5", "--events", "500000000"];
    let quiet = submit(&r, "nexmark", &args, json!({}));
    let drained = submit(&r, "nexmark", &args, json!({}));
    let window_vertex =
        |job: &str| get(&r.url, &format!("/jobs/{job}")).json()["vertices"][1]["id"].as_str().unwrap().to_string();
    let watermarks = |job: &str| -> Vec<String> {
        let v = window_vertex(job);
        let w = get(&r.url, &format!("/jobs/{job}/vertices/{v}/watermarks")).json();
        w.as_array().unwrap().iter().map(|x| x["value"].as_str().unwrap().to_string()).collect()
    };
    for job in [&quiet, &drained] {
        wait_state(&r, job, "RUNNING");
        wait_for("watermarks at the windows", Duration::from_secs(60), || {
            watermarks(job).iter().all(|w| *w != i64::MIN.to_string())
        });
    }
    // drain: false — FINISHED within seconds of the savepoint, no final watermark.
    let saved = stop(&r, &quiet, false);
    wait_state(&r, &quiet, "FINISHED");
    let took = saved.elapsed();
    assert!(took < Duration::from_secs(10), "FINISHED {took:?} after the savepoint");
    let w = watermarks(&quiet);
    assert!(w.iter().all(|w| *w != i64::MAX.to_string()), "no final watermark without draining: {w:?}");
    // drain: true — the final watermark reaches the windows.
    stop(&r, &drained, true);
    wait_state(&r, &drained, "FINISHED");
    assert_eq!(watermarks(&drained), vec![i64::MAX.to_string(); 2]);
}

/// A loopback OTLP/HTTP receiver: records each request's path, content type and body, and
/// answers 200 with an empty protobuf body.
fn otlp_receiver() -> (String, std::sync::mpsc::Receiver<(String, String, Vec<u8>)>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or_default().to_string();
                    let (mut length, mut kind) = (0usize, String::new());
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                            break;
                        }
                        let (k, v) = h.split_once(':').unwrap_or((&h, ""));
                        match k.trim().to_ascii_lowercase().as_str() {
                            "content-length" => length = v.trim().parse().unwrap_or(0),
                            "content-type" => kind = v.trim().to_string(),
                            _ => {}
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let _ = tx.send((path, kind, body));
                    let answer = "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n";
                    if stream.write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, rx)
}

#[test]
fn metrics_are_pushed_over_otlp_http_to_a_receiver() {
    let (base, rx) = otlp_receiver();
    let endpoint = format!("{base}/v1/metrics");
    let r = start(&[("metrics.reporter.otlp.endpoint", &endpoint), ("metrics.reporter.otlp.interval", "200 ms")]);
    let job = submit(&r, "failover-demo", &["--failures", "0", "--seconds", "60", "--rate", "5"], json!({}));
    wait_state(&r, &job, "RUNNING");
    let deadline = Instant::now() + Duration::from_secs(60);
    let contains = |body: &[u8], what: &str| body.windows(what.len()).any(|w| w == what.as_bytes());
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no OTLP push with the job's subtask series");
        let Ok((path, kind, body)) = rx.recv_timeout(left) else { continue };
        assert_eq!(path, "/v1/metrics");
        assert_eq!(kind, "application/x-protobuf");
        if contains(&body, "riffle_task_records_in") && contains(&body, &job) {
            assert!(contains(&body, "subtask_index") && contains(&body, "vertex_id"));
            break;
        }
    }
    assert_eq!(common::http::patch(&r.url, &format!("/jobs/{job}?mode=cancel")).status, 202);
    wait_state(&r, &job, "CANCELED");
}

#[test]
fn checkpoints_and_failovers_are_reported_as_otlp_spans() {
    let (base, rx) = otlp_receiver();
    let endpoint = format!("{base}/v1/traces");
    let r = start(&[("traces.reporter.otlp.endpoint", &endpoint)]);
    let job = submit(
        &r,
        "failover-demo",
        &["--failures", "1", "--interval-ms", "300", "--seconds", "60", "--rate", "5"],
        json!({}),
    );
    let contains = |body: &[u8], what: &str| body.windows(what.len()).any(|w| w == what.as_bytes());
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut checkpoint, mut subtask, mut failover) = (false, false, false);
    while !(checkpoint && subtask && failover) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "spans seen: checkpoint {checkpoint}, subtask {subtask}, failover {failover}");
        let Ok((path, kind, body)) = rx.recv_timeout(left) else { continue };
        assert_eq!((path.as_str(), kind.as_str()), ("/v1/traces", "application/x-protobuf"));
        if !contains(&body, &job) {
            continue;
        }
        checkpoint |= contains(&body, "Checkpoint") && contains(&body, "checkpoint_id");
        subtask |= contains(&body, "SubtaskCheckpoint") && contains(&body, "sync_ms");
        failover |= contains(&body, "JobFailover");
    }
    assert_eq!(common::http::patch(&r.url, &format!("/jobs/{job}?mode=cancel")).status, 202);
    wait_state(&r, &job, "CANCELED");
}
