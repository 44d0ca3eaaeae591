//! Thread dumps (FLINK-14816): the process's real threads with their kernel state, and the
//! runtime's actors and subtasks with what each is doing, so a stuck operator can be found
//! from the browser.

use std::sync::atomic::Ordering;

use actix_web::{web, HttpResponse};
use riffle_actors::job_view::vertex_state;
use serde_json::{json, Value};

use crate::context::RestContext;
use crate::error::WebError;
use crate::routes::logs::task_manager;

type Ctx = web::Data<RestContext>;

/// One thread of this process, from `/proc/self/task`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadInfo {
    /// Kernel thread id.
    pub tid: u32,
    /// Its name.
    pub name: String,
    /// Java-style state: RUNNABLE, WAITING, BLOCKED, TERMINATED.
    pub state: &'static str,
    /// Where it sleeps in the kernel, if it does.
    pub wchan: String,
    /// CPU time used, ms.
    pub cpu_ms: u64,
}

/// The threads of this process (empty where `/proc` is not available).
pub fn threads() -> Vec<ThreadInfo> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else { return vec![] };
    let tick_ms = 10; // USER_HZ is 100 on Linux.
    let mut out: Vec<ThreadInfo> = dir
        .flatten()
        .filter_map(|e| {
            let tid: u32 = e.file_name().to_str()?.parse().ok()?;
            let base = e.path();
            let name = std::fs::read_to_string(base.join("comm")).ok()?.trim_end().to_string();
            let stat = std::fs::read_to_string(base.join("stat")).ok()?;
            // Fields after the parenthesised name: state is the first, utime/stime 12th/13th.
            let rest = &stat[stat.rfind(')')? + 2..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let state = match fields.first().copied() {
                Some("R") => "RUNNABLE",
                Some("S") | Some("I") => "WAITING",
                Some("D") => "BLOCKED",
                Some("T") | Some("t") => "SUSPENDED",
                _ => "TERMINATED",
            };
            let cpu = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            let wchan = std::fs::read_to_string(base.join("wchan")).unwrap_or_default().trim().to_string();
            Some(ThreadInfo { tid, name, state, wchan, cpu_ms: (cpu(11) + cpu(12)) * tick_ms })
        })
        .collect();
    out.sort_by_key(|t| t.tid);
    out
}

fn thread_infos(filter: impl Fn(&ThreadInfo) -> bool) -> Vec<Value> {
    thread_values(threads().into_iter().filter(|t| filter(t)).collect())
}

fn thread_values(threads: Vec<ThreadInfo>) -> Vec<Value> {
    threads
        .into_iter()
        .map(|t| {
            let wchan = if t.wchan.is_empty() || t.wchan == "0" { String::new() } else { format!("\n\tin kernel: {}", t.wchan) };
            json!({
                "threadName": t.name,
                "threadId": t.tid,
                "threadState": t.state,
                "stringifiedThreadInfo": format!("\"{}\" Id={} {}\n\tcpu time: {} ms{}\n", t.name, t.tid, t.state, t.cpu_ms, wchan),
            })
        })
        .collect()
}

fn subtasks(ctx: &RestContext, only_tm: Option<&riffle_actors::ResourceId>) -> Vec<Value> {
    let mut out = Vec::new();
    for v in ctx.jobs.views.iter() {
        let s = v.state();
        if s.status.is_terminal() {
            continue;
        }
        for x in &v.vertices {
            let tasks = s.tasks.get(x.index as usize).cloned().unwrap_or_default();
            for (i, io) in x.subtasks.iter().enumerate() {
                let location = s.locations.get(x.index as usize).and_then(|l| l.get(i)).cloned().flatten();
                if only_tm.is_some_and(|t| location.as_deref() != Some(t.to_string().as_str())) {
                    continue;
                }
                let state = tasks.get(i).copied().unwrap_or(vertex_state(&tasks));
                let backpressured = io.backpressured.load(Ordering::Relaxed);
                let idle = io.idle.load(Ordering::Relaxed);
                let since = if backpressured {
                    io.since_ms.load(Ordering::Relaxed)
                } else {
                    io.idle_since_ms.load(Ordering::Relaxed).max(io.since_ms.load(Ordering::Relaxed))
                };
                let activity = if state.is_terminal() {
                    "ended"
                } else if backpressured {
                    "blocked: waiting for room in an output channel (backpressured)"
                } else if idle {
                    "waiting for input"
                } else {
                    "processing records"
                };
                out.push(json!({
                    "job": v.job_id.to_string(),
                    "jobName": v.name,
                    "vertex": x.name,
                    "subtask": i,
                    "parallelism": x.parallelism,
                    "attempt": s.attempt,
                    "state": state.as_str(),
                    "backpressured": backpressured,
                    "activity": activity,
                    "mailbox": io.queued_in.load(Ordering::Relaxed),
                    "since": if since > 0 { since } else { s.start_ms },
                    "location": location,
                    "recordsIn": io.records_in.load(Ordering::Relaxed),
                    "recordsOut": io.records_out.load(Ordering::Relaxed),
                }));
            }
        }
    }
    out
}

fn actors(ctx: &RestContext, only_tm: Option<&riffle_actors::ResourceId>) -> Vec<Value> {
    let mut out = Vec::new();
    if only_tm.is_none() {
        let d = &ctx.dispatcher;
        out.push(control_actor("dispatcher", "Dispatcher", Some(d.mailbox()), d.connected(), ctx.started_ms));
        let rm = ctx.directory.resource_manager();
        out.push(control_actor(
            "resource-manager",
            "ResourceManager",
            rm.as_ref().map(|a| a.mailbox()),
            rm.as_ref().is_some_and(|a| a.connected()),
            ctx.started_ms,
        ));
        let mut jms: Vec<_> = ctx.directory.job_masters.iter().map(|e| (*e.key(), e.value().clone())).collect();
        jms.sort_by_key(|(j, _)| j.to_string());
        for (job, jm) in jms {
            let status = ctx.jobs.view(job).map(|v| v.state());
            let mut a = control_actor(
                &format!("job-master {job}"),
                "JobMaster",
                Some(jm.mailbox()),
                jm.connected(),
                ctx.started_ms,
            );
            if let Some(s) = status {
                a["job"] = json!(format!("job {} (attempt {})", s.status, s.attempt));
            }
            out.push(a);
        }
    }
    let mut tes: Vec<_> = ctx.directory.task_executors.iter().map(|e| (e.key().clone(), e.value().clone())).collect();
    tes.sort_by_key(|(r, _)| r.to_string());
    for (r, gateway) in tes {
        if only_tm.is_some_and(|t| *t != r) {
            continue;
        }
        // A TaskExecutor in another process: its mailbox as its latest heartbeat counted it.
        let mailbox = match &gateway {
            riffle_actors::peers::TaskExecutorGateway::Local(p) => Some(p.mailbox()),
            riffle_actors::peers::TaskExecutorGateway::Remote(r) => r.latest().mailbox,
        };
        out.push(control_actor(
            &format!("task-executor {r}"),
            "TaskExecutor",
            mailbox,
            gateway.connected(),
            ctx.started_ms,
        ));
    }
    out
}

/// One control actor in a dump: its mailbox as its probe counts it, what it handles now or
/// handled last, and since when.
fn control_actor(
    name: &str,
    kind: &str,
    mailbox: Option<riffle_actors::mailbox::MailboxState>,
    alive: bool,
    started_ms: i64,
) -> Value {
    let (activity, since) = match &mailbox {
        _ if !alive => ("stopped".to_string(), started_ms),
        None => ("running".to_string(), started_ms),
        Some(m) if m.busy => (format!("handling {}", m.message), m.since_ms),
        Some(m) if m.message.is_empty() => ("idle (no message yet)".to_string(), started_ms),
        Some(m) => (format!("idle (last message: {})", m.message), m.since_ms),
    };
    json!({
        "name": name,
        "kind": kind,
        "mailbox": mailbox.map(|m| m.queued),
        "activity": activity,
        "since": since,
    })
}

/// Subtasks are actors too: each with its input backlog as its mailbox. (A control actor's
/// mailbox is counted by its probe, `riffle_actors::mailbox`; a TaskExecutor of another process
/// sends its count with its heartbeats.)
fn with_subtask_actors(mut actors: Vec<Value>, subtasks: Vec<Value>) -> Vec<Value> {
    for s in subtasks {
        actors.push(json!({
            "name": format!("subtask {} ({}/{}) of job {}", s["vertex"].as_str().unwrap_or("?"), s["subtask"].as_u64().unwrap_or(0) + 1, s["parallelism"], s["job"].as_str().unwrap_or("?")),
            "kind": "Subtask",
            "mailbox": s["mailbox"],
            "activity": s["activity"],
            "since": s["since"],
        }));
    }
    actors
}

/// `GET /jobmanager/thread-dump`.
pub async fn jobmanager(ctx: Ctx) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "threadInfos": thread_infos(|_| true),
        "actors": with_subtask_actors(actors(&ctx, None), subtasks(&ctx, None)),
        "subtasks": subtasks(&ctx, None),
    }))
}

/// `GET /taskmanagers/{tm}/thread-dump`: in one process the TaskManager's threads are its
/// slot threads (`riffle-slot-*`, `riffle-…` arbiters); all threads are listed so nothing hides.
pub async fn taskmanager(ctx: Ctx, path: web::Path<String>) -> Result<HttpResponse, WebError> {
    let tm = task_manager(&ctx, &path)?;
    // A TaskManager process's own threads, from its latest heartbeat.
    let remote = match ctx.directory.task_executors.get(&tm).map(|g| g.clone()) {
        Some(riffle_actors::peers::TaskExecutorGateway::Remote(r)) => Some(r.latest().threads),
        _ => None,
    };
    let thread_infos = match remote {
        Some(threads) => thread_values(
            threads
                .into_iter()
                .map(|t| ThreadInfo {
                    tid: t.tid,
                    name: t.name,
                    state: match t.state.as_str() {
                        "RUNNABLE" => "RUNNABLE",
                        "WAITING" => "WAITING",
                        "BLOCKED" => "BLOCKED",
                        _ => "TERMINATED",
                    },
                    wchan: t.wchan,
                    cpu_ms: t.cpu_ms,
                })
                .collect(),
        ),
        None => thread_infos(|_| true),
    };
    Ok(HttpResponse::Ok().json(json!({
        "threadInfos": thread_infos,
        "actors": with_subtask_actors(actors(&ctx, Some(&tm)), subtasks(&ctx, Some(&tm))),
        "subtasks": subtasks(&ctx, Some(&tm)),
    })))
}
