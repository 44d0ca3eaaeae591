//! Commands against a running cluster's REST API: list, cancel, savepoint, stop.

use anyhow::{Context, Result};

use crate::rest_client;

/// Lists the cluster's jobs, one `id : name (state)` line each.
pub fn list(address: &str) -> Result<()> {
    let a = rest_client::call(address, "GET", "/jobs/overview", None)?;
    let jobs = a.body["jobs"].as_array().cloned().unwrap_or_default();
    if jobs.is_empty() {
        println!("no jobs");
    }
    for j in jobs {
        println!(
            "{} : {} ({})",
            j["jid"].as_str().unwrap_or("?"),
            j["name"].as_str().unwrap_or("?"),
            j["state"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}

/// Cancels `job`.
pub fn cancel(address: &str, job: &str) -> Result<()> {
    rest_client::call(address, "PATCH", &format!("/jobs/{job}?mode=cancel"), Some(&serde_json::json!({})))?;
    println!("cancelled job {job}");
    Ok(())
}

/// Takes a savepoint of `job`, waiting for it to complete.
pub fn savepoint(address: &str, job: &str, target: Option<String>) -> Result<()> {
    let body = serde_json::json!({ "target-directory": target, "cancel-job": false });
    let a = rest_client::call(address, "POST", &format!("/jobs/{job}/savepoints"), Some(&body))?;
    let trigger = a.body["request-id"].as_str().context("the cluster sent no request-id")?.to_string();
    let loc = rest_client::await_savepoint(address, job, &trigger, std::time::Duration::from_secs(600))?;
    println!("savepoint completed: {loc}");
    Ok(())
}

/// Stops `job` with a savepoint; it ends FINISHED.
pub fn stop(address: &str, job: &str, target: Option<String>) -> Result<()> {
    let body = serde_json::json!({ "targetDirectory": target, "drain": false });
    let a = rest_client::call(address, "POST", &format!("/jobs/{job}/stop"), Some(&body))?;
    let trigger = a.body["request-id"].as_str().context("the cluster sent no request-id")?.to_string();
    let loc = rest_client::await_savepoint(address, job, &trigger, std::time::Duration::from_secs(600))?;
    println!("job {job} stopped with savepoint {loc}");
    Ok(())
}
