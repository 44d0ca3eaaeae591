//! The SQL layer's one error enum: what a statement, a plan or a table connector got wrong,
//! classified like every riffle error (user / external / internal).

use riffle_api::ErrorDomain;

/// Everything running Flink SQL can fail with. Messages say what is wrong and, for text a user
/// wrote, where (sqlparser's `Line: l, Column: c`).
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The text does not parse (sqlparser's message names line and column).
    #[error("SQL parse error: {0}")]
    Parse(String),
    /// The statement parses but names something unknown or is inconsistent (a table that does
    /// not exist, a column twice, a wrong option).
    #[error("{0}")]
    Validation(String),
    /// A valid statement riffle cannot run yet (an aggregate before the streaming operators
    /// are wired, a type or connector feature not mapped).
    #[error("not supported yet: {0}")]
    Unsupported(String),
    /// DataFusion rejected the statement while planning it (with the place in the statement
    /// when DataFusion knows it).
    #[error("planning failed: {}", located(.0))]
    Plan(#[from] datafusion_common::DataFusionError),
    /// A table connector's option is missing or wrong.
    #[error("table '{table}': {reason}")]
    Connector {
        /// The table.
        table: String,
        /// What is wrong.
        reason: String,
    },
    /// Building the job graph failed.
    #[error("building the job failed: {0}")]
    Graph(#[from] riffle_api::GraphError),
    /// The job did not finish (failed, cancelled) or the cluster failed.
    #[error("job failed: {0}")]
    Job(String),
    /// Reading or writing a file the statement names (a result file, a script).
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A bug: an invariant of the planner did not hold.
    #[error("internal error: {0}")]
    Internal(String),
}

/// DataFusion's message, and where in the statement when its diagnostic has a span.
fn located(e: &datafusion_common::DataFusionError) -> String {
    match e.diagnostic().and_then(|d| d.span) {
        Some(span) if span.start.line > 0 => {
            format!("{e} at Line: {}, Column: {}", span.start.line, span.start.column)
        }
        _ => e.to_string(),
    }
}

/// The SQL layer's results.
pub type Result<T, E = SqlError> = std::result::Result<T, E>;

impl SqlError {
    /// Who has to act: the user for anything about the statement, the environment for I/O
    /// and failed jobs, riffle for internal errors.
    pub fn domain(&self) -> ErrorDomain {
        match self {
            SqlError::Parse(_)
            | SqlError::Validation(_)
            | SqlError::Unsupported(_)
            | SqlError::Plan(_)
            | SqlError::Connector { .. }
            | SqlError::Graph(_) => ErrorDomain::User,
            SqlError::Job(_) | SqlError::Io { .. } => ErrorDomain::External,
            SqlError::Internal(_) => ErrorDomain::Internal,
        }
    }

    /// Whether running the same statement again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SqlError::Io { .. })
    }

    /// A validation error from a message.
    pub fn invalid(message: impl Into<String>) -> SqlError {
        SqlError::Validation(message.into())
    }

    /// An unsupported-feature error from a message.
    pub fn unsupported(message: impl Into<String>) -> SqlError {
        SqlError::Unsupported(message.into())
    }
}

impl From<datafusion_sql::sqlparser::parser::ParserError> for SqlError {
    fn from(e: datafusion_sql::sqlparser::parser::ParserError) -> Self {
        SqlError::Parse(e.to_string())
    }
}

impl From<arrow::error::ArrowError> for SqlError {
    fn from(e: arrow::error::ArrowError) -> Self {
        SqlError::Plan(datafusion_common::DataFusionError::ArrowError(Box::new(e), None))
    }
}
