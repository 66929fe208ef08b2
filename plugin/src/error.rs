//! The plugin's error type: one case per outcome the caller must tell apart.
//!
//! The host maps each case to one HTTP status; the text goes to the caller as the
//! `detail`, so it says what went wrong in words a user can act on, and it never
//! carries a secret.

use crate::ports::StoreError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Missing, or owned by another user (the two look the same on purpose).
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InvalidInput(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unauthorized(String),
    /// The runtime API failed; the text names the call and the cause.
    #[error("{0}")]
    Upstream(String),
    #[error("{0}")]
    Storage(String),
    /// Could not be done now but may be soon (a transient upstream failure):
    /// the detail, and the seconds to wait.
    #[error("{0}")]
    Unavailable(String, u32),
    #[error("{0}")]
    Internal(String),
}

impl Error {
    pub fn sandbox_not_found(id: &str) -> Self {
        Error::NotFound(format!("sandbox '{id}' not found"))
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            // A failed precondition that a caller did not handle means another call
            // changed the same sandbox at the same moment.
            StoreError::Conflict(_) => {
                Error::Conflict("the sandbox was changed concurrently; retry".into())
            }
            StoreError::Invalid(m) => Error::Internal(format!("storage request refused: {m}")),
            StoreError::Backend(m) => Error::Storage(format!("storage failed: {m}")),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
