//! Request bodies: JSON, optional (an empty body means every field's default), never
//! silently ignored when malformed.

use serde::de::DeserializeOwned;

use crate::error::WebError;

/// Parses `bytes` as `T`; empty means `T::default()`.
pub fn parse<T: DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, WebError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes)
        .map_err(|e| WebError::BadRequest(format!("the request body is not valid JSON for this request: {e}")))
}
