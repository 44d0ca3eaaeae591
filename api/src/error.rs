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

impl GraphError {
    /// Always [`ErrorDomain::User`]: the job author's to fix.
    pub fn domain(&self) -> ErrorDomain {
        ErrorDomain::User
    }

    /// Never: the same graph fails the same way.
    pub fn is_retryable(&self) -> bool {
        false
    }
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
    /// The same chain one error per entry, outermost first (empty from a sender that predates it).
    #[serde(default)]
    pub causes: Vec<String>,
}

impl TaskError {
    /// A task error for `operator` from any error, keeping its cause chain (`source()`) in
    /// the message and, one entry per error, in `causes`.
    pub fn new(operator: impl Into<String>, err: &(dyn std::error::Error + 'static)) -> Self {
        let causes = cause_chain(err);
        Self { operator: operator.into(), message: causes.join(": "), causes }
    }

    /// A task error with a plain message.
    pub fn msg(operator: impl Into<String>, message: impl Into<String>) -> Self {
        let message = message.into();
        Self { operator: operator.into(), causes: vec![message.clone()], message }
    }

    /// The cause chain, outermost first: `causes`, or the message where there are none.
    pub fn chain(&self) -> Vec<String> {
        if self.causes.is_empty() {
            vec![self.message.clone()]
        } else {
            self.causes.clone()
        }
    }

    /// User code failed: [`ErrorDomain::User`].
    pub fn domain(&self) -> ErrorDomain {
        ErrorDomain::User
    }

    /// A restart from the last checkpoint may get past it (what the restart strategy decides).
    pub fn is_retryable(&self) -> bool {
        true
    }
}

/// The messages of `err` and of its sources (`std::error::Error::source`), outermost first.
pub fn cause_chain(err: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut out = vec![err.to_string()];
    let mut cause = err.source();
    while let Some(c) = cause {
        out.push(c.to_string());
        cause = c.source();
    }
    out
}

/// The result of pushing something through an operator chain.
pub type TaskResult = Result<(), TaskError>;

/// Who is to blame for an error (user / external / internal): defined in `riffle-state`, the
/// lowest crate, so that every crate's error can name it.
pub use riffle_state::ErrorDomain;

impl crate::config::ConfigError {
    /// Always [`ErrorDomain::User`].
    pub fn domain(&self) -> ErrorDomain {
        ErrorDomain::User
    }

    /// Never: the same value fails the same way.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// The API crate's error: its narrower errors (graph, configuration, task, state) as sources,
/// and what the type-erased source layer fails with. Operator chains still return
/// [`TaskError`] and graph building [`GraphError`]; both convert into it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The job graph is invalid.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// A configuration value is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// User code in a task failed.
    #[error(transparent)]
    Task(#[from] TaskError),
    /// Keyed state refused an operation.
    #[error(transparent)]
    State(#[from] riffle_state::StateError),
    /// A user function (an enumerator, a source, a job builder) returned an error.
    #[error(transparent)]
    User(UserError),
    /// A program could not be built from its origin ([`crate::programs::Programs`]).
    #[error(transparent)]
    Program(#[from] crate::programs::ProgramError),
    /// A split of a source could not be serialized.
    #[error("cannot serialize a split: {0}")]
    SplitEncode(String),
    /// Split bytes did not decode as the source's split type.
    #[error("corrupt split: {0}")]
    SplitDecode(String),
}

impl ApiError {
    /// Who is to blame.
    pub fn domain(&self) -> ErrorDomain {
        match self {
            ApiError::Graph(e) => e.domain(),
            ApiError::Config(e) => e.domain(),
            ApiError::Task(e) => e.domain(),
            ApiError::State(e) => e.domain(),
            ApiError::Program(e) => e.domain(),
            ApiError::User(_) | ApiError::SplitEncode(_) => ErrorDomain::User,
            ApiError::SplitDecode(_) => ErrorDomain::Internal,
        }
    }

    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiError::Graph(e) => e.is_retryable(),
            ApiError::Config(e) => e.is_retryable(),
            ApiError::Task(e) => e.is_retryable(),
            ApiError::State(e) => e.is_retryable(),
            ApiError::Program(e) => e.is_retryable(),
            ApiError::User(_) | ApiError::SplitEncode(_) | ApiError::SplitDecode(_) => false,
        }
    }
}

/// The API crate's result.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn task_error_keeps_the_cause_chain() {
        let e = Outer(std::io::Error::other("disk gone"));
        let t = TaskError::new("sink", &e);
        assert_eq!(t.causes, vec!["outer".to_string(), "disk gone".to_string()]);
        assert_eq!(t.to_string(), "operator 'sink' failed: outer: disk gone");
        assert_eq!(TaskError::msg("op", "plain").chain(), vec!["plain".to_string()]);
        // Older senders had no `causes`: the message stands for the chain.
        let old: TaskError = rmp_serde::from_slice(&rmp_serde::to_vec(&("op", "m")).expect("encode")).expect("decode");
        assert_eq!(old.chain(), vec!["m".to_string()]);
    }

    #[test]
    fn domains() {
        assert_eq!(ApiError::from(GraphError::Empty("x".into())).domain(), ErrorDomain::User);
        assert!(!ApiError::from(GraphError::Invalid("x".into())).is_retryable());
        let c = crate::config::ConfigError { key: "k".into(), value: "v".into(), reason: "r".into() };
        assert_eq!(ApiError::from(c).domain(), ErrorDomain::User);
        assert_eq!(ApiError::SplitDecode("x".into()).domain(), ErrorDomain::Internal);
        let t = ApiError::from(TaskError::msg("op", "boom"));
        assert_eq!((t.domain(), t.is_retryable()), (ErrorDomain::User, true));
        let io = riffle_state::StateError::Io { path: "/x".into(), reason: "gone".into() };
        assert_eq!(ApiError::from(io).domain(), ErrorDomain::External);
    }
}
