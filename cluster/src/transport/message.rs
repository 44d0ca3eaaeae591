//! One serde value per frame, as rmp-serde's compact encoding (structs as arrays: both ends
//! run the same protocol version, so field names need not travel). Decoding is strict: a frame
//! holds exactly one value, trailing bytes are garbage, and nesting is bounded.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::{Stage, TransportError};

/// How deep arrays and maps may nest in a handshake frame: a `Hello` is flat.
const HANDSHAKE_MAX_DEPTH: usize = 16;
/// How deep arrays and maps may nest in a message. The decoder recurses once per level, so
/// garbage nesting deeper than this would otherwise overflow a thread's stack (rmp-serde's own
/// limit, 1024, does not fit a 2 MiB stack in a debug build) and take the process down; gateway
/// messages nest a handful of levels.
const MESSAGE_MAX_DEPTH: usize = 128;

/// Appends `value`'s encoding to `buf` (a frame writer's buffer, after its length prefix).
pub(crate) fn encode_into<T: Serialize + ?Sized>(buf: &mut Vec<u8>, value: &T) -> Result<(), TransportError> {
    rmp_serde::encode::write(buf, value).map_err(|e| TransportError::Encode(e.to_string()))
}

/// Decodes a frame's payload as exactly one `T`.
pub(crate) fn decode<T: DeserializeOwned>(payload: &[u8], stage: Stage) -> Result<T, TransportError> {
    let mut rest = payload;
    let mut de = rmp_serde::Deserializer::new(&mut rest);
    de.set_max_depth(match stage {
        Stage::Handshake => HANDSHAKE_MAX_DEPTH,
        Stage::Session => MESSAGE_MAX_DEPTH,
    });
    let value = T::deserialize(&mut de).map_err(|e| TransportError::Undecodable { stage, detail: e.to_string() })?;
    drop(de);
    if !rest.is_empty() {
        return Err(TransportError::Undecodable {
            stage,
            detail: format!("{} bytes left over after the value in a frame of {} bytes", rest.len(), payload.len()),
        });
    }
    Ok(value)
}
