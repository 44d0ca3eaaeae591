//! riffle's REST API and web UI.
//!
//! Empty on purpose for now: the engine core comes first, and the REST/UI issue fills this
//! crate with an actix-web server speaking Flink's REST v1 paths. It exists so the workspace
//! layout (and the dependency direction `actors <- web <- cluster`) is fixed from day one.
