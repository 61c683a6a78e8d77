//! How the edge answers when a request does not succeed. Every surface decides its status code here, by
//! [`Kind`], so a client's mistake cannot come out as a 500: hosted pages return [`PageError`], the JSON
//! APIs return [`super::problem::ApiError`].

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::pages::{Page, see_other};
use crate::error::Error;
use crate::model::orgs::Organization;
use crate::ratelimit::Limited;
use crate::storage::StoreError;

/// Seconds a client is asked to wait before retrying a request we could not serve now.
const RETRY_AFTER_SECS: &str = "2";

/// What kind of failure a request met; the only input to its status code.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// The request is malformed or breaks a rule (a field, an expired link, an unknown choice).
    BadRequest,
    /// A wrong password, code or token.
    Unauthorized,
    /// Understood and refused: an unverifiable form, an unconfirmed address, a missing scope.
    Forbidden,
    NotFound,
    /// The action contradicts the current state (removing the last required factor).
    Conflict,
    /// Well-formed but not acceptable as sent (an idempotency key reused for another request).
    Unprocessable,
    /// Too many requests of this kind; carries what the rate-limit headers say.
    Limited(Limited),
    /// Busy or storage unavailable: the same request may succeed shortly.
    RetryLater,
    /// A fault on our side; the cause was logged.
    Fault,
}

impl Kind {
    /// The kind of a domain error. Causes the client must not see are logged here, once.
    pub fn of(e: &Error) -> Kind {
        match e {
            Error::Invalid { .. } => Kind::BadRequest,
            Error::Storage(e) if refused_as_data(e) => {
                tracing::info!(error = %e, "the database refused a value from the request");
                Kind::BadRequest
            }
            Error::Conflict(_) | Error::Storage(StoreError::Conflict(_)) => Kind::Conflict,
            Error::Forbidden(_) | Error::StepUpRequired => Kind::Forbidden,
            Error::NotFound(_) | Error::Storage(StoreError::NotFound(_)) => Kind::NotFound,
            Error::RateLimited(limited) => Kind::Limited(*limited),
            Error::Busy => Kind::RetryLater,
            Error::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable");
                Kind::RetryLater
            }
            other => {
                // The cause goes to the log; the client learns only that it was not their fault.
                tracing::error!(error = %other, "request failed");
                Kind::Fault
            }
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Kind::BadRequest => StatusCode::BAD_REQUEST,
            Kind::Unauthorized => StatusCode::UNAUTHORIZED,
            Kind::Forbidden => StatusCode::FORBIDDEN,
            Kind::NotFound => StatusCode::NOT_FOUND,
            Kind::Conflict => StatusCode::CONFLICT,
            Kind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
            Kind::Limited(_) => StatusCode::TOO_MANY_REQUESTS,
            Kind::RetryLater => StatusCode::SERVICE_UNAVAILABLE,
            Kind::Fault => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The status and the headers that go with it: `Retry-After` for 503, the rate-limit headers for 429.
    pub fn answer(self, mut response: Response) -> Response {
        *response.status_mut() = self.status();
        match self {
            Kind::RetryLater => {
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_static(RETRY_AFTER_SECS),
                );
            }
            Kind::Limited(limited) => super::rate_limit_headers(
                &mut response,
                &limited.decision,
                limited.policy,
                limited.window,
            ),
            _ => {}
        }
        response
    }
}

/// Whether the database refused a value as data (PostgreSQL class 22, "data exception"): text with a
/// NUL byte, say, which only the request can have brought, so it is the client's mistake, not a fault.
fn refused_as_data(e: &StoreError) -> bool {
    let StoreError::Database(sqlx::Error::Database(db)) = e else {
        return false;
    };
    db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .is_some()
        && db.code().is_some_and(|code| code.starts_with("22"))
}

/// A hosted page's failure: the page the person sees (an error page, or the form again with its
/// banner) and the kind that decides the status. A sign-in redirect travels the same way.
pub enum PageError {
    Page(Kind, Box<Page>),
    /// An answer already made: a redirect to go elsewhere first (the sign-in page, the second-factor
    /// challenge), or the organization lookup's own 404.
    Answer(Box<Response>),
}

pub type PageResult<T = Response> = Result<T, PageError>;

/// The generic text for a failure on our side or a request to retry later.
pub const TRY_AGAIN: &str = "Something went wrong. Please try again in a moment.";

impl PageError {
    /// `page` answered with the status of `kind`.
    pub fn page(kind: Kind, page: Page) -> Self {
        PageError::Page(kind, Box::new(page))
    }

    /// The standard error page saying `message`.
    pub fn say(org: &Organization, kind: Kind, message: &str) -> Self {
        Self::page(kind, Page::error(&org.name, kind.status(), message))
    }

    /// A domain error on the standard error page: its kind decides the status, `message` what is said.
    pub fn domain(org: &Organization, e: &Error, message: &str) -> Self {
        Self::say(org, Kind::of(e), message)
    }

    /// A domain error with the generic "try again" text.
    pub fn failed(org: &Organization, e: &Error) -> Self {
        Self::domain(org, e, TRY_AGAIN)
    }

    pub fn redirect(location: &str) -> Self {
        Self::answer(see_other(location, vec![]))
    }

    pub fn answer(response: Response) -> Self {
        PageError::Answer(Box::new(response))
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::Page(kind, page) => kind.answer((*page).into_response()),
            PageError::Answer(response) => *response,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limited() -> Limited {
        Limited {
            decision: crate::ephemeral::Decision {
                allowed: false,
                limit: 5,
                remaining: 0,
                reset_after: std::time::Duration::from_secs(30),
            },
            policy: "login",
            window: std::time::Duration::from_secs(60),
        }
    }

    #[test]
    fn each_error_kind_has_one_status_and_only_a_fault_is_500() {
        let cases = [
            (Error::invalid("email", "is not an address"), 400),
            (Error::NotFound("user".into()), 404),
            (Error::Conflict("the address is taken".into()), 409),
            (Error::RateLimited(limited()), 429),
            (Error::Busy, 503),
            (Error::Unavailable("connection refused".into()), 503),
            (Error::Storage(StoreError::NotFound("user".into())), 404),
            (Error::Internal("a bug".into()), 500),
        ];
        for (error, status) in cases {
            assert_eq!(Kind::of(&error).status().as_u16(), status, "{error:?}");
        }
    }

    #[test]
    fn answers_carry_the_headers_of_their_kind() {
        let answer = |kind: Kind| kind.answer(StatusCode::OK.into_response());
        let busy = answer(Kind::RetryLater);
        assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(busy.headers().contains_key(header::RETRY_AFTER));
        let limited = answer(Kind::Limited(limited()));
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(limited.headers()[header::RETRY_AFTER], "30");
        assert!(limited.headers().contains_key("ratelimit-policy"));
        let refused = answer(Kind::BadRequest);
        assert!(!refused.headers().contains_key(header::RETRY_AFTER));
    }
}
