//! The streaming operators' one error type.

use riffle_api::ErrorDomain;

/// Why a streaming SQL operator could not be built or failed on its input.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The spec is inconsistent (a column index out of range, a window size of zero, ...):
    /// a planner bug or an invalid query.
    #[error("invalid operator spec: {0}")]
    Spec(String),
    /// Input rows that do not fit the spec (a time column of another type, ...).
    #[error("unexpected input: {0}")]
    Input(String),
    /// An Arrow kernel failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// DataFusion failed evaluating an expression or an accumulator.
    #[error("datafusion: {0}")]
    DataFusion(#[from] datafusion_common::DataFusionError),
    /// Keyed state could not be read or written.
    #[error("state: {0}")]
    State(#[from] riffle_state::StateError),
    /// Rows could not be encoded or decoded.
    #[error("rows: {0}")]
    Rows(#[from] riffle_connectors::RowsError),
}

impl ExecError {
    /// Whose fault the error is: an invalid spec or input is the user's (the query's), the
    /// rest is riffle's.
    pub fn domain(&self) -> ErrorDomain {
        match self {
            ExecError::Spec(_) | ExecError::Input(_) => ErrorDomain::User,
            _ => ErrorDomain::Internal,
        }
    }

    /// Whether running again could help: never, these are deterministic.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// Results of the streaming operators.
pub type Result<T, E = ExecError> = std::result::Result<T, E>;
