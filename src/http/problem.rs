//! RFC 9457 problem details: the error body of every non-OAuth endpoint.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::error::Kind;
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
        *ApiError::from(e).problem
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}

/// The error of a JSON API: a problem document whose status comes from its [`Kind`], and, for a bearer
/// token refused, the `WWW-Authenticate` challenge (RFC 6750 §3).
#[derive(Debug)]
pub struct ApiError {
    kind: Kind,
    /// Boxed: handlers return `Result<Response, ApiError>`, and a small error keeps that cheap.
    problem: Box<Problem>,
    challenge: Option<HeaderValue>,
}

pub type ApiResult<T = Response> = Result<T, ApiError>;

impl ApiError {
    pub fn new(kind: Kind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            problem: Box::new(Problem::new(kind.status(), detail)),
            challenge: None,
        }
    }

    /// Adds the `WWW-Authenticate` challenge.
    pub fn challenge(mut self, value: &str) -> Self {
        self.challenge = HeaderValue::from_str(value).ok();
        self
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let kind = Kind::of(&e);
        let detail = match &e {
            Error::Invalid { field, message } => {
                return ApiError::new(kind, format!("{field}: {message}"))
                    .with_extra("field", field.clone());
            }
            Error::Conflict(what) => what.clone(),
            Error::Forbidden(why) => why.clone(),
            Error::StepUpRequired => {
                return ApiError::new(
                    kind,
                    "prove a second factor again (the step-up window has passed), then retry",
                )
                .with_extra("type", "urn:latchkey:problem:step-up-required");
            }
            Error::NotFound(what) => format!("{what} not found"),
            Error::RateLimited(_) => "too many requests; try again later".into(),
            Error::Busy => "the service is busy; try again shortly".into(),
            Error::Unavailable(_) => {
                "the service is temporarily unavailable; try again shortly".into()
            }
            _ => match kind {
                Kind::Conflict => "the request conflicts with the current state".into(),
                Kind::NotFound => "not found".into(),
                _ => "an internal error occurred".into(),
            },
        };
        ApiError::new(kind, detail)
    }
}

impl ApiError {
    fn with_extra(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.problem = Box::new(self.problem.with(key, value));
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = self.kind.answer(self.problem.into_response());
        if let Some(challenge) = self.challenge {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}
