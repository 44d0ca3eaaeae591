//! `/jobmanager/metrics` and `/taskmanagers/{tm}/metrics`: what a process really uses — CPU
//! time and load, resident memory and its peak, threads, its machine — measured from `/proc`
//! where the process runs, plus the cluster's slots (JobManager) or the TaskManager's slots,
//! network pool, state budget and each slot thread's CPU time. Flink's metric query shape;
//! riffle has no JVM, so the names say `Process`, never `JVM`.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use actix_web::{web, HttpResponse};
use riffle_actors::peers::{MemorySample, TaskExecutorGateway};
use riffle_actors::thread_name::slot_thread_name;
use serde::Deserialize;

use crate::context::RestContext;
use crate::error::WebError;
use crate::metric_query::{self, MetricValue};
use crate::routes::logs::task_manager;
use crate::routes::taskmanagers::memory_sample;
use crate::routes::thread_dump::threads;

type Ctx = web::Data<RestContext>;

/// A read of a process's CPU time closer than this to the previous one reuses its load.
const MIN_LOAD_WINDOW_MS: i64 = 500;

/// The previous CPU reading of each process (by component name), to turn CPU time into load.
#[derive(Default)]
pub struct CpuLoad {
    last: Mutex<HashMap<String, Reading>>,
}

#[derive(Clone, Copy)]
struct Reading {
    at_ms: i64,
    cpu_ms: u64,
    load: f64,
}

impl CpuLoad {
    /// The share of its machine's `cores` the process `who` used between its previous reading
    /// and this one (`cpu_ms` at `at_ms`), 0..=1; 0 on the first reading.
    pub fn load(&self, who: &str, at_ms: i64, cpu_ms: u64, cores: u32) -> f64 {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let load = match last.get(who) {
            Some(prev) if at_ms - prev.at_ms < MIN_LOAD_WINDOW_MS => return prev.load,
            Some(prev) => {
                let wall = (at_ms - prev.at_ms) as f64 * f64::from(cores.max(1));
                (cpu_ms.saturating_sub(prev.cpu_ms) as f64 / wall).clamp(0.0, 1.0)
            }
            None => 0.0,
        };
        last.insert(who.to_string(), Reading { at_ms, cpu_ms, load });
        load
    }
}

fn int(n: u64) -> MetricValue {
    MetricValue::Int(n.min(i64::MAX as u64) as i64)
}

/// A process's own figures.
fn process(m: &MemorySample, load: f64) -> Vec<(String, MetricValue)> {
    vec![
        ("Status.Process.CPU.Time".into(), int(m.cpu_ms)),
        ("Status.Process.CPU.Load".into(), MetricValue::Float(load)),
        ("Status.Process.Threads.Count".into(), int(u64::from(m.threads))),
        ("Status.Process.Memory.Resident".into(), int(m.rss)),
        ("Status.Process.Memory.ResidentPeak".into(), int(m.rss_peak)),
        ("Status.Machine.CPU.Cores".into(), int(u64::from(m.cpu_cores))),
        ("Status.Machine.Memory.Total".into(), int(m.physical_memory)),
        ("Status.Machine.Memory.Available".into(), int(m.free_memory)),
    ]
}

/// The query of the metric paths.
#[derive(Deserialize)]
pub struct MetricsQuery {
    get: Option<String>,
}

/// `GET /jobmanager/metrics[?get=...]`: this process's figures and the cluster's slots, jobs
/// and TaskManagers.
pub async fn jobmanager(ctx: Ctx, q: web::Query<MetricsQuery>) -> HttpResponse {
    let m = memory_sample(None);
    let now = riffle_api::time::now_ms();
    let load = ctx.cpu_load.load("jobmanager", now, m.cpu_ms, m.cpu_cores);
    let mut all = process(&m, load);
    let running = ctx.jobs.views.iter().filter(|v| !v.state().status.is_terminal()).count() as u64;
    all.extend([
        ("numRegisteredTaskManagers".into(), int(ctx.directory.task_executors.len() as u64)),
        ("taskSlotsTotal".into(), int(ctx.directory.slots.total.load(Ordering::Relaxed))),
        ("taskSlotsAvailable".into(), int(ctx.directory.slots.free.load(Ordering::Relaxed))),
        ("numRunningJobs".into(), int(running)),
    ]);
    HttpResponse::Ok().json(metric_query::answer(&all, q.get.as_deref()))
}

/// `GET /taskmanagers/{tm}/metrics[?get=...]`: the TaskManager process's figures (a
/// TaskManager process's own, from its latest heartbeat; an embedded TaskExecutor's are this
/// process's), its slots, network pool and state budget, and `Slot.<i>.CPU.Time`: CPU time
/// of the thread that runs slot i's subtasks.
pub async fn taskmanager(
    ctx: Ctx,
    path: web::Path<String>,
    q: web::Query<MetricsQuery>,
) -> Result<HttpResponse, WebError> {
    let id = task_manager(&ctx, &path)?;
    let te = ctx
        .directory
        .task_executors
        .get(&id)
        .map(|a| a.clone())
        .ok_or_else(|| WebError::NotFound(format!("no TaskManager '{id}'")))?;
    let (report, heard_ms) =
        te.report().await.ok_or_else(|| WebError::Unavailable(format!("TaskManager {id} does not answer")))?;
    let (memory, network, thread_cpu, at_ms) = match &te {
        TaskExecutorGateway::Local(_) => {
            let m = memory_sample(riffle_actors::state_backend::memory_budget(&ctx.cluster_config));
            let cpu: Vec<(String, u64)> = threads().into_iter().map(|t| (t.name, t.cpu_ms)).collect();
            (Some(m), None, cpu, riffle_api::time::now_ms())
        }
        TaskExecutorGateway::Remote(r) => {
            let latest = r.latest();
            let cpu = latest.threads.iter().map(|t| (t.name.clone(), t.cpu_ms)).collect();
            (latest.memory, latest.network, cpu, if latest.at_ms > 0 { latest.at_ms } else { heard_ms })
        }
    };
    let mut all = Vec::new();
    if let Some(m) = &memory {
        // An embedded TaskExecutor is this process: one load reading for all of them.
        let who = match &te {
            TaskExecutorGateway::Local(_) => "jobmanager".to_string(),
            TaskExecutorGateway::Remote(_) => format!("taskmanager {id}"),
        };
        let load = ctx.cpu_load.load(&who, at_ms, m.cpu_ms, m.cpu_cores);
        all.extend(process(m, load));
        if let Some(b) = m.state_budget_per_backend {
            all.push(("Status.StateBackend.MemoryBudget".into(), int(b)));
        }
    }
    all.extend([
        ("Status.Slots.Total".into(), int(u64::from(report.live_slots))),
        ("Status.Slots.Allocated".into(), int(u64::from(report.allocated_slots))),
        ("Status.Slots.RunningSubtasks".into(), int(report.running_subtasks as u64)),
        ("Status.Slots.Restarts".into(), int(u64::from(report.slot_restarts))),
    ]);
    if let Some(n) = network {
        let used = n.total.saturating_sub(n.available);
        all.extend([
            ("Status.Shuffle.Netty.TotalMemorySegments".into(), int(n.total)),
            ("Status.Shuffle.Netty.AvailableMemorySegments".into(), int(n.available)),
            ("Status.Shuffle.Netty.UsedMemorySegments".into(), int(used)),
            ("Status.Shuffle.Netty.TotalMemory".into(), int(n.total * n.segment_size)),
            ("Status.Shuffle.Netty.AvailableMemory".into(), int(n.available * n.segment_size)),
            ("Status.Shuffle.Netty.UsedMemory".into(), int(used * n.segment_size)),
        ]);
    }
    let id_text = id.to_string();
    for slot in 0..report.live_slots {
        let name = slot_thread_name(&id_text, slot);
        if let Some((_, cpu)) = thread_cpu.iter().find(|(n, _)| *n == name) {
            all.push((format!("Slot.{slot}.CPU.Time"), int(*cpu)));
        }
    }
    Ok(HttpResponse::Ok().json(metric_query::answer(&all, q.get.as_deref())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_is_cpu_time_over_wall_time_and_cores() {
        let c = CpuLoad::default();
        assert_eq!(c.load("p", 1_000, 500, 2), 0.0, "the first reading has nothing to compare with");
        assert_eq!(c.load("p", 1_200, 700, 2), 0.0, "too close: the previous load");
        assert_eq!(c.load("p", 2_000, 1_500, 2), 0.5, "1000 ms of CPU in 1000 ms on 2 cores");
        assert_eq!(c.load("p", 3_000, 4_000, 2), 1.0, "capped");
        assert_eq!(c.load("q", 3_000, 4_000, 2), 0.0, "per process");
    }
}
