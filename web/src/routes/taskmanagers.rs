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
    let budget = ctx.shared.config.get(&riffle_actors::state_backend::MEMORY_BUDGET);
    budget.ok().flatten().map_or(0, |b| b.as_bytes() as u64)
}

async fn info(
    ctx: &RestContext,
    id: &riffle_actors::ResourceId,
) -> Result<(Value, riffle_actors::peers::NetworkSample), WebError> {
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
    // A TaskManager process's network buffer pool (in-process channels use none).
    let network = match &te {
        TaskExecutorGateway::Local(_) => riffle_actors::peers::NetworkSample::default(),
        TaskExecutorGateway::Remote(remote) => remote.latest().network.unwrap_or_default(),
    };
    let network_bytes = network.total * network.segment_size;
    let slots = r.live_slots;
    let free = slots.saturating_sub(r.allocated_slots);
    let budget = state_budget(ctx);
    let resource = |n: u32| {
        json!({"cpuCores": n, "taskHeapMemory": 0, "taskOffHeapMemory": 0, "managedMemory": budget * n as u64 / 1_048_576,
               "networkMemory": network_bytes / 1_048_576, "extendedResources": {}})
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let v = json!({
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
            "frameworkHeap": 0, "taskHeap": 0, "frameworkOffHeap": 0, "taskOffHeap": 0, "networkMemory": network_bytes,
            "managedMemory": budget * slots as u64, "jvmMetaspace": 0, "jvmOverhead": 0,
            "totalFlinkMemory": budget * slots as u64, "totalProcessMemory": meminfo("MemTotal:"),
        },
        "blocked": false,
    });
    Ok((v, network))
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
        if let Ok((v, _)) = info(&ctx, &id).await {
            out.push(v);
        }
    }
    Ok(HttpResponse::Ok().json(json!({ "taskmanagers": out })))
}

/// `GET /taskmanagers/{tm}`.
pub async fn details(ctx: Ctx, path: web::Path<String>) -> Result<HttpResponse, WebError> {
    let id = task_manager(&ctx, &path)?;
    let (mut v, network) = info(&ctx, &id).await?;
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024);
    let used = network.total.saturating_sub(network.available);
    v["metrics"] = json!({
        "heapUsed": rss, "heapCommitted": rss, "heapMax": meminfo("MemTotal:"),
        "nonHeapUsed": 0, "nonHeapCommitted": 0, "nonHeapMax": 0,
        "directCount": 0, "directUsed": 0, "directMax": 0, "mappedCount": 0, "mappedUsed": 0, "mappedMax": 0,
        "memorySegmentsAvailable": network.available, "memorySegmentsTotal": network.total,
        "nettyShuffleMemorySegmentsAvailable": network.available, "nettyShuffleMemorySegmentsUsed": used,
        "nettyShuffleMemorySegmentsTotal": network.total,
        "nettyShuffleMemoryAvailable": network.available * network.segment_size,
        "nettyShuffleMemoryUsed": used * network.segment_size,
        "nettyShuffleMemoryTotal": network.total * network.segment_size,
        "garbageCollectors": [],
    });
    v["garbageCollectors"] = json!([]);
    Ok(HttpResponse::Ok().json(v))
}
