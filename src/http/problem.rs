//! RFC 9457 problem details: the error body of every non-OAuth endpoint.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::error::Error;

#[derive(Debug)]
pub struct Problem {
    pub status: StatusCode,
    pub detail: Option<String>,
    pub extra: Map<String, Value>,
}

impl Problem {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: Some(detail.into()),
            extra: Map::new(),
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_string(), value.into());
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = json!({
            "type": "about:blank",
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
        });
        if let Some(detail) = self.detail {
            body["detail"] = Value::String(detail);
        }
        for (k, v) in self.extra {
            body[k.as_str()] = v;
        }
        let mut response = (self.status, body.to_string()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        }
        response
    }
}

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid { field, message } => {
                Problem::new(StatusCode::BAD_REQUEST, format!("{field}: {message}"))
                    .with("field", field)
            }
            Error::Conflict(what) => Problem::new(StatusCode::CONFLICT, what),
            Error::NotFound(what) => {
                Problem::new(StatusCode::NOT_FOUND, format!("{what} not found"))
            }
            Error::RateLimited(_) => Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too many requests; try again later",
            ),
            Error::Busy => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the service is busy; try again shortly",
            ),
            Error::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the service is temporarily unavailable; try again shortly",
                )
            }
            other => {
                // The cause goes to the log; the client learns only that it was not their fault.
                tracing::error!(error = %other, "request failed");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "an internal error occurred",
                )
            }
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if let Error::RateLimited(limited) = &self {
            let mut response = Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too many requests; try again later",
            )
            .into_response();
            super::rate_limit_headers(
                &mut response,
                &limited.decision,
                limited.policy,
                limited.window,
            );
            return response;
        }
        Problem::from(self).into_response()
    }
}
