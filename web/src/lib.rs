//! riffle's REST API and web UI: Flink's REST v1 paths and JSON shapes (so Flink's tools
//! and the `flink` CLI work), served by actix-web on a thread of its own, with the web UI's
//! static files embedded in the binary.
//!
//! Architecture invariant: this crate reads the runtime through `riffle_actors` only —
//! gateway messages to the Dispatcher and JobMasters, read-only views in `RuntimeShared` —
//! and builds jobs only through the [`Programs`] it is given. It must not know the cluster
//! crate (which embeds it) or the scenarios.

pub mod body;
pub mod config;
pub mod context;
pub mod error;
pub mod metric_query;
pub mod metrics;
pub mod params;
pub mod routes;
pub mod server;
pub mod standby;
pub mod traces;
pub mod ui;

pub use config::RestConfig;
pub use context::{ProgramArg, ProgramInfo, Programs, RestContext};
pub use error::{ErrorDomain, WebError};
pub use server::RestServer;

/// The configuration options this crate reads, for the registry
/// ([`riffle_api::config_keys::Registry`]).
pub fn options() -> Vec<&'static dyn riffle_api::OptionInfo> {
    config::OPTIONS.to_vec()
}
