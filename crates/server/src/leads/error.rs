//! What the leads slice's model, queries, scoring and repositories refuse or fail with, in their
//! own terms. Handlers map it to the HTTP error once, through `From`; the import worker and the
//! command line read it as any other error.

use crate::http::AppError;

#[derive(Debug, thiserror::Error)]
pub enum LeadsError {
    /// Input that does not hold, naming the field or parameter (`email: not an address`).
    #[error("{0}")]
    Invalid(String),
    /// It would break a uniqueness rule (the same email twice), naming the field.
    #[error("{0}")]
    Conflict(String),
    /// The role or the lead's ACL does not allow it, with a stable code.
    #[error("{message}")]
    Denied { code: &'static str, message: String },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<crate::http::wire::InvalidField> for LeadsError {
    fn from(e: crate::http::wire::InvalidField) -> Self {
        Self::Invalid(e.0)
    }
}

/// The handlers' mapping, in one place.
impl From<LeadsError> for AppError {
    fn from(e: LeadsError) -> Self {
        match e {
            LeadsError::Invalid(m) => Self::BadRequest(m),
            LeadsError::Conflict(m) => Self::Conflict(m),
            LeadsError::Denied { code, message } => Self::Denied { code, message },
            LeadsError::Database(e) => Self::Database(e),
            LeadsError::Internal(e) => Self::Internal(e),
        }
    }
}
