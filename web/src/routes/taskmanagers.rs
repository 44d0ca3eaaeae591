//! `/taskmanagers...`: the TaskExecutors, their slots and resources.
//!
//! Memory figures are measured where the TaskExecutor runs: a TaskManager process samples its
//! own resident memory, machine and network buffer pool and sends them with each heartbeat
//! ([`memory_sample`]); a TaskExecutor of this process is this process. Flink's field names
//! are used where riffle has the thing they name; JVM pools (heap, metaspace, direct, mapped)
//! and budgets riffle does not enforce are left out rather than reported as 0.

use actix_web::{web, HttpResponse};
use riffle_actors::peers::{MemorySample, NetworkSample, TaskExecutorGateway};
use serde_json::{json, Map, Value};

use crate::context::RestContext;
use crate::error::WebError;
use crate::routes::logs::task_manager;

type Ctx = web::Data<RestContext>;

/// A `<field>: <n> kB` line of a `/proc` file, in bytes.
fn proc_kb(file: &str, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(file).ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
}

/// This process's resident memory and machine, with `state_budget` (what its configuration
/// gives each keyed subtask's state backend, [`riffle_actors::state_backend::memory_budget`]):
/// what a TaskManager process reports with its heartbeats (0 where `/proc` cannot be read).
pub fn memory_sample(state_budget: Option<u64>) -> MemorySample {
    MemorySample {
        rss: proc_kb("/proc/self/status", "VmRSS:").unwrap_or(0),
        physical_memory: proc_kb("/proc/meminfo", "MemTotal:").unwrap_or(0),
        free_memory: proc_kb("/proc/meminfo", "MemAvailable:").unwrap_or(0),
        cpu_cores: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        state_budget_per_backend: state_budget,
        cpu_ms: process_cpu_ms().unwrap_or(0),
        threads: proc_field("/proc/self/status", "Threads:").and_then(|t| t.parse().ok()).unwrap_or(0),
        rss_peak: proc_kb("/proc/self/status", "VmHWM:").unwrap_or(0),
    }
}

/// The value of a `<field> <value>` line of a `/proc` file.
fn proc_field(file: &str, field: &str) -> Option<String> {
    let s = std::fs::read_to_string(file).ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1).map(str::to_string)
}

/// CPU time this process used, user and system, ms (`utime` and `stime` of `/proc/self/stat`,
/// in clock ticks of 10 ms: Linux's USER_HZ is 100).
pub fn process_cpu_ms() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    Some((ticks(11)? + ticks(12)?) * 10)
}

/// What is known of one TaskExecutor's process: its memory (None until a remote one's first
/// heartbeat says) and its network pool (None for a TaskExecutor of this process, whose
/// channels are in memory).
struct Figures {
    memory: Option<MemorySample>,
    network: Option<NetworkSample>,
}

async fn info(ctx: &RestContext, id: &riffle_actors::ResourceId) -> Result<(Value, Figures), WebError> {
    let te = ctx
        .directory
        .task_executors
        .get(id)
        .map(|a| a.clone())
        .ok_or_else(|| WebError::NotFound(format!("no TaskManager '{id}'")))?;
    let (r, heard_ms) =
        te.report().await.ok_or_else(|| WebError::Unavailable(format!("TaskManager {id} does not answer")))?;
    let (path, figures) = match &te {
        TaskExecutorGateway::Local(_) => (
            format!("riffle://{}/taskexecutor/{id}", std::process::id()),
            Figures {
                memory: Some(memory_sample(riffle_actors::state_backend::memory_budget(&ctx.cluster_config))),
                network: None,
            },
        ),
        TaskExecutorGateway::Remote(remote) => {
            let latest = remote.latest();
            (
                format!("riffle://{}/taskexecutor/{id}", latest.address),
                Figures { memory: latest.memory, network: latest.network },
            )
        }
    };
    let slots = r.live_slots;
    let free = slots.saturating_sub(r.allocated_slots);
    let network_bytes = figures.network.map(|n| n.total * n.segment_size);
    let resource = |n: u32| {
        let mut v = json!({"cpuCores": n, "extendedResources": {}});
        if let Some(b) = network_bytes {
            v["networkMemory"] = json!(b / 1_048_576);
        }
        v
    };
    let mut hardware = Map::new();
    let mut memory = Map::new();
    if let Some(m) = figures.memory {
        hardware.insert("cpuCores".into(), json!(m.cpu_cores));
        hardware.insert("physicalMemory".into(), json!(m.physical_memory));
        hardware.insert("freeMemory".into(), json!(m.free_memory));
        if let Some(b) = m.state_budget_per_backend {
            memory.insert("stateBackendMemoryBudget".into(), json!(b));
        }
    }
    if let Some(b) = network_bytes {
        memory.insert("networkMemory".into(), json!(b));
    }
    let v = json!({
        "id": id.to_string(),
        "path": path,
        "dataPort": -1,
        "jmxPort": -1,
        // Flink's field name; its value is the time of the last heartbeat (ms since the epoch).
        "timeSinceLastHeartbeat": heard_ms,
        "slotsNumber": slots,
        "freeSlots": free,
        "runningSubtasks": r.running_subtasks,
        "slotRestarts": r.slot_restarts,
        "totalResource": resource(slots),
        "freeResource": resource(free),
        "hardware": hardware,
        "memoryConfiguration": memory,
        "blocked": false,
    });
    Ok((v, figures))
}

fn sorted_ids(ctx: &RestContext) -> Vec<riffle_actors::ResourceId> {
    let mut ids: Vec<_> = ctx.directory.task_executors.iter().map(|e| e.key().clone()).collect();
    ids.sort_by_key(|r| r.to_string());
    ids
}

/// `GET /taskmanagers`.
pub async fn list(ctx: Ctx) -> Result<HttpResponse, WebError> {
    let mut out = Vec::new();
    for id in sorted_ids(&ctx) {
        if let Ok((v, _)) = info(&ctx, &id).await {
            out.push(v);
        }
    }
    Ok(HttpResponse::Ok().json(json!({ "taskmanagers": out })))
}

/// `GET /taskmanagers/{tm}`.
pub async fn details(ctx: Ctx, path: web::Path<String>) -> Result<HttpResponse, WebError> {
    let id = task_manager(&ctx, &path)?;
    let (mut v, figures) = info(&ctx, &id).await?;
    let mut metrics = Map::new();
    if let Some(m) = figures.memory {
        // Not a Flink field (a JVM's process size is not among its metrics): the process's RSS.
        metrics.insert("residentMemory".into(), json!(m.rss));
    }
    if let Some(n) = figures.network {
        let used = n.total.saturating_sub(n.available);
        for (key, value) in [
            ("memorySegmentsAvailable", n.available),
            ("memorySegmentsTotal", n.total),
            ("nettyShuffleMemorySegmentsAvailable", n.available),
            ("nettyShuffleMemorySegmentsUsed", used),
            ("nettyShuffleMemorySegmentsTotal", n.total),
            ("nettyShuffleMemoryAvailable", n.available * n.segment_size),
            ("nettyShuffleMemoryUsed", used * n.segment_size),
            ("nettyShuffleMemoryTotal", n.total * n.segment_size),
            ("networkSegmentSize", n.segment_size),
        ] {
            metrics.insert(key.into(), json!(value));
        }
    }
    // riffle has no garbage collector: truly none.
    metrics.insert("garbageCollectors".into(), json!([]));
    v["metrics"] = Value::Object(metrics);
    v["garbageCollectors"] = json!([]);
    Ok(HttpResponse::Ok().json(v))
}
