//! The routes, one module per resource family, all registered by [`configure`] (once at
//! `/` and once under `/v1`).

pub mod checkpoints;
pub mod cluster;
pub mod jars;
pub mod jobs;
pub mod logs;
pub mod programs;
pub mod savepoints;
pub mod taskmanagers;
pub mod thread_dump;

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
        .service(web::resource("/taskmanagers").route(web::get().to(taskmanagers::list)))
        .service(web::resource("/taskmanagers/{tm}").route(web::get().to(taskmanagers::details)))
        .service(web::resource("/taskmanagers/{tm}/logs").route(web::get().to(logs::taskmanager_list)))
        .service(web::resource("/taskmanagers/{tm}/logs/{name}").route(web::get().to(logs::taskmanager_file)))
        .service(web::resource("/taskmanagers/{tm}/thread-dump").route(web::get().to(thread_dump::taskmanager)))
        .service(web::resource("/jobs").route(web::get().to(jobs::list)))
        .service(web::resource("/jobs/overview").route(web::get().to(jobs::overview_list)))
        .service(web::resource("/jobs/{id}").route(web::get().to(jobs::details)).route(web::patch().to(jobs::cancel)))
        .service(web::resource("/jobs/{id}/plan").route(web::get().to(jobs::plan_of)))
        .service(web::resource("/jobs/{id}/exceptions").route(web::get().to(jobs::exceptions)))
        .service(web::resource("/jobs/{id}/vertices/{vid}/backpressure").route(web::get().to(jobs::backpressure)))
        .service(web::resource("/jobs/{id}/stop").route(web::post().to(savepoints::stop)))
        .service(web::resource("/jobs/{id}/savepoints").route(web::post().to(savepoints::trigger)))
        .service(web::resource("/jobs/{id}/savepoints/{trigger}").route(web::get().to(savepoints::status)))
        .service(web::resource("/jobs/{id}/checkpoints").route(web::get().to(checkpoints::statistics)))
        .service(web::resource("/jobs/{id}/checkpoints/config").route(web::get().to(checkpoints::config)))
        .service(web::resource("/jobs/{id}/checkpoints/details/{cid}").route(web::get().to(checkpoints::details)))
        .service(web::resource("/programs").route(web::get().to(programs::list)))
        .service(web::resource("/jars").route(web::get().to(jars::list)))
        .service(web::resource("/jars/upload").route(web::post().to(jars::upload)))
        .service(web::resource("/jars/run").route(web::post().to(jars::run_url)))
        .service(web::resource("/jars/{id}").route(web::delete().to(jars::delete)))
        .service(web::resource("/jars/{id}/run").route(web::post().to(jars::run)))
        .service(web::resource("/programs/{name}/run").route(web::post().to(programs::run)));
}
