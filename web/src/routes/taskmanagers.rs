//! `/taskmanagers...`: the TaskExecutors, their slots and resources.

use actix_web::{web, HttpResponse};
use riffle_actors::peers::TaskExecutorGateway;
use serde_json::{json, Value};

use crate::context::RestContext;
use crate::error::WebError;
use crate::routes::logs::task_manager;

type Ctx = web::Data<RestContext>;

fn meminfo(field: &str) -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn state_budget(ctx: &RestContext) -> u64 {
    ctx.shared.config.get_bytes("state.backend.memory-budget", 0).unwrap_or(0) as u64
}

async fn info(ctx: &RestContext, id: &riffle_actors::ResourceId) -> Result<Value, WebError> {
    let te = ctx
        .shared
        .task_executors
        .get(id)
        .map(|a| a.clone())
        .ok_or_else(|| WebError::NotFound(format!("no TaskManager '{id}'")))?;
    let (r, heard_ms) =
        te.report().await.ok_or_else(|| WebError::Unavailable(format!("TaskManager {id} does not answer")))?;
    let (path, data_port) = match &te {
        TaskExecutorGateway::Local(_) => (format!("riffle://{}/taskexecutor/{id}", std::process::id()), -1),
        TaskExecutorGateway::Remote(remote) => (format!("riffle://{}/taskexecutor/{id}", remote.latest().address), -1),
    };
    let slots = r.live_slots;
    let free = slots.saturating_sub(r.allocated_slots);
    let budget = state_budget(ctx);
    let resource = |n: u32| {
        json!({"cpuCores": n, "taskHeapMemory": 0, "taskOffHeapMemory": 0, "managedMemory": budget * n as u64 / 1_048_576,
               "networkMemory": 0, "extendedResources": {}})
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ok(json!({
        "id": id.to_string(),
        "path": path,
        "dataPort": data_port,
        "jmxPort": -1,
        // Flink's field name; its value is the time of the last heartbeat (ms since the epoch).
        "timeSinceLastHeartbeat": heard_ms,
        "slotsNumber": slots,
        "freeSlots": free,
        "runningSubtasks": r.running_subtasks,
        "slotRestarts": r.slot_restarts,
        "totalResource": resource(slots),
        "freeResource": resource(free),
        "hardware": {"cpuCores": cpus, "physicalMemory": meminfo("MemTotal:"), "freeMemory": meminfo("MemAvailable:"), "managedMemory": budget * slots as u64},
        "memoryConfiguration": {
            "frameworkHeap": 0, "taskHeap": 0, "frameworkOffHeap": 0, "taskOffHeap": 0, "networkMemory": 0,
            "managedMemory": budget * slots as u64, "jvmMetaspace": 0, "jvmOverhead": 0,
            "totalFlinkMemory": budget * slots as u64, "totalProcessMemory": meminfo("MemTotal:"),
        },
        "blocked": false,
    }))
}

fn sorted_ids(ctx: &RestContext) -> Vec<riffle_actors::ResourceId> {
    let mut ids: Vec<_> = ctx.shared.task_executors.iter().map(|e| e.key().clone()).collect();
    ids.sort_by_key(|r| r.to_string());
    ids
}

/// `GET /taskmanagers`.
pub async fn list(ctx: Ctx) -> Result<HttpResponse, WebError> {
    let mut out = Vec::new();
    for id in sorted_ids(&ctx) {
        if let Ok(v) = info(&ctx, &id).await {
            out.push(v);
        }
    }
    Ok(HttpResponse::Ok().json(json!({ "taskmanagers": out })))
}

/// `GET /taskmanagers/{tm}`.
pub async fn details(ctx: Ctx, path: web::Path<String>) -> Result<HttpResponse, WebError> {
    let id = task_manager(&ctx, &path)?;
    let mut v = info(&ctx, &id).await?;
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024);
    v["metrics"] = json!({
        "heapUsed": rss, "heapCommitted": rss, "heapMax": meminfo("MemTotal:"),
        "nonHeapUsed": 0, "nonHeapCommitted": 0, "nonHeapMax": 0,
        "directCount": 0, "directUsed": 0, "directMax": 0, "mappedCount": 0, "mappedUsed": 0, "mappedMax": 0,
        "memorySegmentsAvailable": 0, "memorySegmentsTotal": 0,
        "nettyShuffleMemorySegmentsAvailable": 0, "nettyShuffleMemorySegmentsUsed": 0, "nettyShuffleMemorySegmentsTotal": 0,
        "nettyShuffleMemoryAvailable": 0, "nettyShuffleMemoryUsed": 0, "nettyShuffleMemoryTotal": 0,
        "garbageCollectors": [],
    });
    v["garbageCollectors"] = json!([]);
    Ok(HttpResponse::Ok().json(v))
}
