//! Checks on everything a request names: ids, page numbers, file names.

use riffle_actors::JobId;

use crate::error::WebError;

/// A job id: exactly 32 hex digits.
pub fn job_id(s: &str) -> Result<JobId, WebError> {
    if s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        if let Some(id) = JobId::parse(&s.to_ascii_lowercase()) {
            return Ok(id);
        }
    }
    Err(WebError::BadRequest(format!("'{}' is not a job id (32 hex digits)", printable(s))))
}

/// A trigger id: 32 hex digits (kept as lower-case text).
pub fn trigger_id(s: &str) -> Result<String, WebError> {
    if s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(s.to_ascii_lowercase());
    }
    Err(WebError::BadRequest(format!("'{}' is not a trigger id (32 hex digits)", printable(s))))
}

/// A non-negative integer parameter named `what`.
pub fn number(s: &str, what: &str) -> Result<u64, WebError> {
    s.parse::<u64>()
        .map_err(|_| WebError::BadRequest(format!("{what} must be a non-negative integer, got '{}'", printable(s))))
}

/// A vertex id as the API shows it: 32 hex digits whose low part is the vertex index.
pub fn vertex_id(job: JobId, index: u32) -> String {
    format!("{:024x}{:08x}", job.0 >> 32, index)
}

/// The vertex index of a vertex id of `job`.
pub fn vertex_index(job: JobId, s: &str) -> Result<u32, WebError> {
    let bad = || WebError::BadRequest(format!("'{}' is not a vertex id (32 hex digits)", printable(s)));
    if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let v = u128::from_str_radix(s, 16).map_err(|_| bad())?;
    if v >> 32 != job.0 >> 32 {
        return Err(WebError::NotFound(format!("job {job} has no vertex {s}")));
    }
    Ok(v as u32)
}

/// `s` cut to 64 characters with control characters replaced, safe to echo in an error.
pub fn printable(s: &str) -> String {
    let mut out: String = s.chars().take(64).map(|c| if c.is_control() { '?' } else { c }).collect();
    if s.chars().count() > 64 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        assert!(job_id("0123456789abcdef0123456789ABCDEF").is_ok());
        assert!(job_id("+123456789abcdef0123456789abcdef").is_err());
        assert!(job_id("../../etc/passwd").is_err());
        assert!(job_id("").is_err());
        let j = JobId(0xfeed_0000_0000_0000_0000_0000_1234_5678);
        let v = vertex_id(j, 3);
        assert_eq!(vertex_index(j, &v).unwrap(), 3);
        assert!(matches!(vertex_index(JobId(7), &v), Err(WebError::NotFound(_))));
        assert!(number("-1", "page").is_err());
        assert_eq!(printable("a\nb"), "a?b");
    }
}
