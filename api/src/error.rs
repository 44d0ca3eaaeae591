//! Errors of the API layer: building a job (user domain) and running user code in a task.

/// An error a user function returns. Any error type converts into it.
pub type UserError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Building a job graph went wrong: always the job author's to fix, retrying does not help.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// The job has no sink or no source.
    #[error("the job is empty: {0}")]
    Empty(String),
    /// A parallelism setting is out of range.
    #[error("invalid parallelism for '{operator}': {detail}")]
    Parallelism {
        /// The operator named in the error.
        operator: String,
        /// What is wrong.
        detail: String,
    },
    /// Something else about the topology is not allowed.
    #[error("invalid job graph: {0}")]
    Invalid(String),
}

/// A task failed while running: names the operator and carries the cause. Reaches the
/// JobMaster, which fails the job (or restarts it) and records it in the exception history.
#[derive(Debug, Clone, thiserror::Error, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
#[error("operator '{operator}' failed: {message}")]
pub struct TaskError {
    /// The operator whose code failed.
    pub operator: String,
    /// The error with its cause chain, outermost first, joined by ": ".
    pub message: String,
}

impl TaskError {
    /// A task error for `operator` from any error, keeping its cause chain in the message.
    pub fn new(operator: impl Into<String>, err: &(dyn std::error::Error + 'static)) -> Self {
        let mut message = err.to_string();
        let mut cause = err.source();
        while let Some(c) = cause {
            message.push_str(": ");
            message.push_str(&c.to_string());
            cause = c.source();
        }
        Self { operator: operator.into(), message }
    }

    /// A task error with a plain message.
    pub fn msg(operator: impl Into<String>, message: impl Into<String>) -> Self {
        Self { operator: operator.into(), message: message.into() }
    }
}

/// The result of pushing something through an operator chain.
pub type TaskResult = Result<(), TaskError>;

/// Who is to blame for an error, and so whether retrying can help: one classification shared
/// by every crate's error type (`ClusterError::domain`, `WebError::domain`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorDomain {
    /// Bad input or request: fix it, do not retry as is.
    User,
    /// The environment (a port taken, a peer gone, a timeout): a retry may help.
    External,
    /// A bug in riffle, or a runtime shutting down.
    Internal,
}
