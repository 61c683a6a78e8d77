//! OAuth errors (RFC 6749 §5.2, RFC 6750 §3.1): what went wrong, by kind, and what to tell the client.
//! The HTTP status for each kind is chosen in one place, at the edge (`http::oauth::OAuthResponse`).

use crate::error::Error;
use crate::error::Limited;

/// What went wrong. Every kind but [`OAuthErrorKind::ServerError`] is the client's to fix or to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthErrorKind {
    InvalidRequest,
    /// The body is not `application/x-www-form-urlencoded` (`invalid_request`, answered 415).
    UnsupportedMediaType,
    /// The body is over the size limit (`invalid_request`, answered 413).
    PayloadTooLarge,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    /// RFC 6750: no bearer token was sent at all (the challenge then names no error).
    BearerTokenMissing,
    InvalidToken,
    InsufficientScope,
    /// Too many requests from this client (`temporarily_unavailable`, answered 429 with its headers).
    RateLimited(Limited),
    /// The database or the hashing pool cannot serve now: the client should retry shortly.
    TemporarilyUnavailable,
    /// A fault on our side; the cause was logged.
    ServerError,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub kind: OAuthErrorKind,
    pub description: String,
}

impl OAuthError {
    pub fn new(kind: OAuthErrorKind, description: impl Into<String>) -> Self {
        Self {
            kind,
            description: description.into(),
        }
    }
    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(OAuthErrorKind::InvalidRequest, d)
    }
    pub fn invalid_client(d: impl Into<String>) -> Self {
        Self::new(OAuthErrorKind::InvalidClient, d)
    }
    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new(OAuthErrorKind::InvalidGrant, d)
    }
    pub fn unauthorized_client(d: impl Into<String>) -> Self {
        Self::new(OAuthErrorKind::UnauthorizedClient, d)
    }
    pub fn unsupported_grant_type(d: impl Into<String>) -> Self {
        Self::new(OAuthErrorKind::UnsupportedGrantType, d)
    }
    pub fn invalid_scope(d: impl Into<String>) -> Self {
        Self::new(OAuthErrorKind::InvalidScope, d)
    }
    pub fn invalid_token(d: impl Into<String>) -> Self {
        Self::new(OAuthErrorKind::InvalidToken, d)
    }
    pub fn insufficient_scope(d: impl Into<String>) -> Self {
        Self::new(OAuthErrorKind::InsufficientScope, d)
    }
    pub fn bearer_token_missing(d: impl Into<String>) -> Self {
        Self::new(OAuthErrorKind::BearerTokenMissing, d)
    }
    pub fn client_rate_limited(limited: Limited) -> Self {
        Self::new(
            OAuthErrorKind::RateLimited(limited),
            "too many requests from this client; try again later",
        )
    }
    pub fn server_error() -> Self {
        Self::new(OAuthErrorKind::ServerError, "an internal error occurred")
    }
    pub fn temporarily_unavailable() -> Self {
        Self::new(
            OAuthErrorKind::TemporarilyUnavailable,
            "the service is busy; try again shortly",
        )
    }

    /// The `error` code sent to the client.
    pub fn code(&self) -> &'static str {
        use OAuthErrorKind::*;
        match self.kind {
            InvalidRequest | UnsupportedMediaType | PayloadTooLarge | BearerTokenMissing => {
                "invalid_request"
            }
            InvalidClient => "invalid_client",
            InvalidGrant => "invalid_grant",
            UnauthorizedClient => "unauthorized_client",
            UnsupportedGrantType => "unsupported_grant_type",
            InvalidScope => "invalid_scope",
            InvalidToken => "invalid_token",
            InsufficientScope => "insufficient_scope",
            RateLimited(_) | TemporarilyUnavailable => "temporarily_unavailable",
            ServerError => "server_error",
        }
    }

    /// True when the request may succeed if simply retried shortly (see [`Error::retry_later`]).
    pub fn retry_later(&self) -> bool {
        self.kind == OAuthErrorKind::TemporarilyUnavailable
    }
}

impl From<Error> for OAuthError {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid { field, message } => {
                OAuthError::invalid_request(format!("{field}: {message}"))
            }
            // Client mistakes stay 4xx: neither is a fault on our side.
            Error::Conflict(what) | Error::Forbidden(what) => OAuthError::invalid_request(what),
            Error::StepUpRequired => {
                OAuthError::invalid_request("a recent second factor is required")
            }
            Error::NotFound(what) => OAuthError::invalid_request(format!("{what} not found")),
            Error::RateLimited(limited) => OAuthError::new(
                OAuthErrorKind::RateLimited(limited),
                "too many requests; try again later",
            ),
            Error::Busy => OAuthError::temporarily_unavailable(),
            Error::Unavailable(cause) => {
                tracing::warn!(error = %cause, "oauth request: database unavailable");
                OAuthError::temporarily_unavailable()
            }
            other @ (Error::Storage(_) | Error::Internal(_)) => {
                tracing::error!(error = %other, "oauth request failed");
                OAuthError::server_error()
            }
        }
    }
}

impl From<crate::storage::StoreError> for OAuthError {
    fn from(e: crate::storage::StoreError) -> Self {
        Error::from(e).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_faults_on_our_side_are_server_errors() {
        let client_mistakes = [
            Error::invalid("scope", "unknown"),
            Error::Conflict("already used".into()),
            Error::NotFound("grant".into()),
        ];
        for e in client_mistakes {
            assert_eq!(OAuthError::from(e).code(), "invalid_request");
        }
        assert!(OAuthError::from(Error::Busy).retry_later());
        assert!(OAuthError::from(Error::Unavailable("down".into())).retry_later());
        assert_eq!(
            OAuthError::from(Error::Internal("bug".into())).kind,
            OAuthErrorKind::ServerError
        );
    }
}
