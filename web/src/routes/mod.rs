//! The routes, one module per resource family, all registered by [`configure`] (once at
//! `/` and once under `/v1`).

pub mod checkpoints;
pub mod cluster;
pub mod jars;
pub mod job_info;
pub mod jobs;
pub mod logs;
pub mod process_metrics;
pub mod programs;
pub mod savepoints;
pub mod taskmanagers;
pub mod thread_dump;
pub mod vertices;

use actix_web::web;

/// Registers every API route on `cfg`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/config").route(web::get().to(cluster::config)))
        .service(web::resource("/overview").route(web::get().to(cluster::overview)))
        .service(web::resource("/metrics").route(web::get().to(cluster::metrics)))
        .service(web::resource("/jobmanager/config").route(web::get().to(cluster::jobmanager_config)))
        .service(web::resource("/jobmanager/logs").route(web::get().to(logs::jobmanager_list)))
        .service(web::resource("/jobmanager/logs/{name}").route(web::get().to(logs::jobmanager_file)))
        .service(web::resource("/jobmanager/thread-dump").route(web::get().to(thread_dump::jobmanager)))
        .service(web::resource("/jobmanager/metrics").route(web::get().to(process_metrics::jobmanager)))
        .service(web::resource("/taskmanagers").route(web::get().to(taskmanagers::list)))
        .service(web::resource("/taskmanagers/{tm}").route(web::get().to(taskmanagers::details)))
        .service(web::resource("/taskmanagers/{tm}/logs").route(web::get().to(logs::taskmanager_list)))
        .service(web::resource("/taskmanagers/{tm}/logs/{name}").route(web::get().to(logs::taskmanager_file)))
        .service(web::resource("/taskmanagers/{tm}/thread-dump").route(web::get().to(thread_dump::taskmanager)))
        .service(web::resource("/taskmanagers/{tm}/metrics").route(web::get().to(process_metrics::taskmanager)))
        .service(web::resource("/jobs").route(web::get().to(jobs::list)))
        .service(web::resource("/jobs/overview").route(web::get().to(jobs::overview_list)))
        .service(web::resource("/jobs/{id}").route(web::get().to(jobs::details)).route(web::patch().to(jobs::cancel)))
        .service(web::resource("/jobs/{id}/plan").route(web::get().to(jobs::plan_of)))
        .service(web::resource("/jobs/{id}/exceptions").route(web::get().to(jobs::exceptions)))
        .service(web::resource("/jobs/{id}/config").route(web::get().to(job_info::config)))
        .service(web::resource("/jobs/{id}/accumulators").route(web::get().to(job_info::accumulators)))
        .service(web::resource("/jobs/{id}/metrics").route(web::get().to(job_info::metrics)))
        .service(web::resource("/jobs/{id}/execution-result").route(web::get().to(job_info::execution_result)))
        .service(web::resource("/jobs/{id}/vertices/{vid}").route(web::get().to(vertices::details)))
        .service(web::resource("/jobs/{id}/vertices/{vid}/subtasktimes").route(web::get().to(vertices::subtask_times)))
        .service(web::resource("/jobs/{id}/vertices/{vid}/taskmanagers").route(web::get().to(vertices::task_managers)))
        .service(web::resource("/jobs/{id}/vertices/{vid}/watermarks").route(web::get().to(vertices::watermarks)))
        .service(web::resource("/jobs/{id}/vertices/{vid}/metrics").route(web::get().to(vertices::metrics)))
        .service(web::resource("/jobs/{id}/vertices/{vid}/accumulators").route(web::get().to(vertices::accumulators)))
        .service(
            web::resource("/jobs/{id}/vertices/{vid}/subtasks/metrics")
                .route(web::get().to(vertices::subtasks_metrics)),
        )
        .service(
            web::resource("/jobs/{id}/vertices/{vid}/subtasks/{i}/metrics")
                .route(web::get().to(vertices::subtask_metrics)),
        )
        .service(web::resource("/jobs/{id}/vertices/{vid}/backpressure").route(web::get().to(jobs::backpressure)))
        .service(web::resource("/jobs/{id}/stop").route(web::post().to(savepoints::stop)))
        .service(web::resource("/jobs/{id}/savepoints").route(web::post().to(savepoints::trigger)))
        .service(web::resource("/jobs/{id}/savepoints/{trigger}").route(web::get().to(savepoints::status)))
        .service(web::resource("/jobs/{id}/checkpoints").route(web::get().to(checkpoints::statistics)))
        .service(web::resource("/jobs/{id}/checkpoints/config").route(web::get().to(checkpoints::config)))
        .service(web::resource("/jobs/{id}/checkpoints/details/{cid}").route(web::get().to(checkpoints::details)))
        .service(
            web::resource("/jobs/{id}/checkpoints/details/{cid}/subtasks/{vid}")
                .route(web::get().to(checkpoints::subtasks)),
        )
        .service(web::resource("/programs").route(web::get().to(programs::list)))
        .service(web::resource("/jars").route(web::get().to(jars::list)))
        .service(web::resource("/jars/upload").route(web::post().to(jars::upload)))
        .service(web::resource("/jars/run").route(web::post().to(jars::run_url)))
        .service(web::resource("/jars/{id}").route(web::delete().to(jars::delete)))
        .service(web::resource("/jars/{id}/run").route(web::post().to(jars::run)))
        .service(web::resource("/programs/{name}/run").route(web::post().to(programs::run)));
}
