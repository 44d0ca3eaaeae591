//! Messages between processes: length-prefixed rmp-serde frames over TCP with a version
//! handshake. (Being written: see ARCHITECTURE.md.)
