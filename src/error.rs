//! The domain error. The HTTP edge renders it as RFC 9457 problem JSON (or RFC 6749 error JSON on OAuth
//! endpoints); the CLI prints it as one line and exits non-zero.

use std::time::Duration;

use crate::ephemeral::Decision;
use crate::storage::StoreError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller sent something that breaks a rule; `field` names the input.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("{0}")]
    Conflict(String),
    /// Understood and refused: the caller's role or API key scopes do not allow it.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// A staff session must prove a second factor again (the organization's step-up window passed).
    #[error("a recent second-factor proof is required")]
    StepUpRequired,
    #[error("not found: {0}")]
    NotFound(String),
    /// Overloaded for a moment (the password-hashing pool is full); the client should retry shortly.
    #[error("busy, try again shortly")]
    Busy,
    /// Too many requests of this kind; the client may retry after `decision.reset_after`.
    #[error("rate limited ({})", .0.policy)]
    RateLimited(Limited),
    /// The database cannot serve now (see [`StoreError::Unavailable`]); the client should retry shortly.
    /// The message is logged, never sent to the client.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("storage: {0}")]
    Storage(StoreError),
    /// A fault on our side. The message is logged, never sent to the client.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// True when the request may succeed if retried shortly, which every surface answers with 503 and
    /// `Retry-After`: an overloaded password pool or an unavailable database.
    pub fn retry_later(&self) -> bool {
        matches!(self, Error::Busy | Error::Unavailable(_))
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => Error::Conflict(what),
            StoreError::Unavailable(e) => Error::Unavailable(e.to_string()),
            other => Error::Storage(other),
        }
    }
}
/// A refused request: what to tell the client (429 with `Retry-After`, `RateLimit-Policy`, `RateLimit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub decision: Decision,
    pub policy: &'static str,
    pub window: Duration,
}
