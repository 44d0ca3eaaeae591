//! What a standby JobManager of a highly available cluster serves on its REST port: a
//! redirect to the leader's REST API, so that clients, scripts and browsers pointed at any
//! JobManager reach the one that runs the jobs. Flink answers 503 there ("ongoing leader
//! election"); riffle says where the leader is. While nobody leads (an election under way),
//! the answer is 503 with `Retry-After`.

use std::sync::{Arc, Mutex};

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

/// The leader's REST URL (`http://host:port/`) as the standby's election watch last saw it.
#[derive(Debug, Clone, Default)]
pub struct LeaderUrl(Arc<Mutex<Option<String>>>);

impl LeaderUrl {
    /// Records the current leader's URL (`None`: nobody leads, or it published none).
    pub fn set(&self, url: Option<String>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = url;
    }

    /// The current leader's URL.
    pub fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Every request: `307 Temporary Redirect` (method and body kept) to the same path and query
/// at the leader.
pub async fn redirect(req: HttpRequest, leader: web::Data<LeaderUrl>) -> HttpResponse {
    let Some(base) = leader.get() else {
        return HttpResponse::ServiceUnavailable().insert_header((header::RETRY_AFTER, "1")).json(serde_json::json!({
            "errors": ["This JobManager is a standby and no leader is elected yet; retry shortly."]
        }));
    };
    let target = format!("{}{}", base.trim_end_matches('/'), req.uri().path_and_query().map_or("/", |p| p.as_str()));
    HttpResponse::TemporaryRedirect().insert_header((header::LOCATION, target.clone())).json(serde_json::json!({
        "errors": [format!("This JobManager is a standby; the leader's REST API is at {base}")],
        "leader": base,
        "location": target,
    }))
}
