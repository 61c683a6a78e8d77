//! The preamble every handler used to repeat, as extractors: the organization from the path, the
//! client's address and agent, the signed-in session, posted forms with their CSRF and Origin checks,
//! and the user behind a Bearer token. The one CSRF/Origin check of the edge is [`form_verified`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::{Kind, PageError};
use super::pages;
use super::problem::{ApiError, Problem};
use crate::config::Config;
use crate::kernel::SessionId;
use crate::model::orgs::Organization;
use crate::model::sessions::Session;
use crate::model::users::User;
use crate::oauth::{OAuthError, OAuthErrorKind, introspect, scopes};
use crate::sessions::service::{self as sessions, ClientInfo};

/// The organization named by the path's `{slug}` (404 when there is none). Kept in the request's
/// extensions, so the extractors below that need it do not look it up again.
pub struct Org(pub Arc<Organization>);

impl FromRequestParts<AppState> for Org {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        if let Some(org) = parts.extensions.get::<Arc<Organization>>() {
            return Ok(Org(org.clone()));
        }
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let Some(slug) = params.get("slug") else {
            return Err(Problem::new(StatusCode::NOT_FOUND, "no organization").into_response());
        };
        // A slug that no organization can have is not worth a database round trip.
        if crate::orgs::validate_slug(slug).is_err() {
            let detail = format!("no organization {slug:?}");
            return Err(Problem::new(StatusCode::NOT_FOUND, detail).into_response());
        }
        let org = super::oauth::org_or_404(state, slug).await?;
        parts.extensions.insert(org.clone());
        Ok(Org(org))
    }
}

/// Who is asking, for audit events and session records: the client's address (see `edge`) and agent.
pub struct Client(pub ClientInfo);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let addr = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| *addr)
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        Ok(Client(super::oauth::client_info(&addr, &parts.headers)))
    }
}

/// The signed-in user of this browser: their session, and the cookie value it was found by. Without a
/// session the request is sent to sign in (and back to the account page). A lookup that fails is an
/// error, never "signed out": that would send users to re-enter passwords during an outage.
pub struct SignedIn {
    pub session: Session,
    pub user: User,
    pub token: String,
}

impl SignedIn {
    /// The CSRF token of this session's forms.
    pub fn csrf(&self, state: &AppState) -> String {
        pages::session_csrf(state.deps.secrets(), &self.token)
    }
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let Org(org) = Org::from_request_parts(parts, state)
            .await
            .map_err(PageError::answer)?;
        let to_login = || {
            PageError::redirect(&format!(
                "/o/{slug}/login?return_to=/o/{slug}/account",
                slug = org.slug
            ))
        };
        let cookie = pages::session_cookie_name(state.deps.config(), &org.slug);
        let Some(token) = pages::cookie_value(&parts.headers, &cookie) else {
            return Err(to_login());
        };
        match sessions::from_cookie(&state.deps, &org, &token).await {
            Ok(Some((session, user))) => Ok(SignedIn {
                session,
                user,
                token,
            }),
            Ok(None) => Err(to_login()),
            Err(e) => Err(PageError::domain(
                &org,
                &e,
                "We cannot check your sign-in right now. Please try again in a moment.",
            )),
        }
    }
}

/// The signed-in session, if any; `Err` only when it cannot be looked up (see [`SignedIn`]).
pub async fn current_session(
    state: &AppState,
    org: &Organization,
    headers: &HeaderMap,
) -> crate::error::Result<Option<(Session, User)>> {
    let cookie = pages::session_cookie_name(state.deps.config(), &org.slug);
    let Some(token) = pages::cookie_value(headers, &cookie) else {
        return Ok(None);
    };
    sessions::from_cookie(&state.deps, org, &token).await
}

/// A posted form's CSRF field, and what to say when the form cannot be parsed.
pub trait CsrfField {
    fn csrf(&self) -> Option<&str>;
    const MALFORMED: &'static str = "The form was malformed.";
}

/// The token a form must carry.
pub enum Expected<'a> {
    /// Anonymous pages: the double-submit CSRF cookie of this browser.
    BrowserCookie,
    /// Signed-in pages: the token derived from the session (see `pages::session_csrf`).
    Session(&'a str),
}

/// The one CSRF and Origin check of the edge: the post comes from our own pages (see
/// `pages::same_origin`) and carries the expected token (compared in constant time).
pub fn form_verified(
    config: &Config,
    headers: &HeaderMap,
    expected: Expected<'_>,
    presented: Option<&str>,
) -> bool {
    let presented = presented.unwrap_or_default();
    pages::same_origin(config, headers)
        && match expected {
            Expected::BrowserCookie => pages::csrf_ok(config, headers, presented),
            Expected::Session(token) => {
                crate::crypto::constant_time_eq(token.as_bytes(), presented.as_bytes())
            }
        }
}

const UNVERIFIED: &str = "This form could not be verified. Reload the page and try again.";

/// Parses the body as a form; a malformed one is answered with `T::MALFORMED` (400).
async fn parse_form<T: DeserializeOwned + CsrfField>(
    parts: Parts,
    body: axum::body::Body,
    org: &Organization,
    state: &AppState,
) -> Result<T, PageError> {
    let request = Request::from_parts(parts, body);
    match axum::Form::<T>::from_request(request, state).await {
        Ok(axum::Form(form)) => Ok(form),
        Err(_) => Err(PageError::say(org, Kind::BadRequest, T::MALFORMED)),
    }
}

/// A form posted to an anonymous page: well-formed, from our origin, with this browser's CSRF cookie
/// token (403 otherwise).
pub struct PageForm<T>(pub T);

impl<T: DeserializeOwned + CsrfField + Send> FromRequest<AppState> for PageForm<T> {
    type Rejection = PageError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, PageError> {
        let (mut parts, body) = request.into_parts();
        let Org(org) = Org::from_request_parts(&mut parts, state)
            .await
            .map_err(PageError::answer)?;
        let headers = parts.headers.clone();
        let form: T = parse_form(parts, body, &org, state).await?;
        let config = state.deps.config();
        if !form_verified(config, &headers, Expected::BrowserCookie, form.csrf()) {
            return Err(PageError::say(&org, Kind::Forbidden, UNVERIFIED));
        }
        Ok(PageForm(form))
    }
}

/// A form posted to a signed-in page: signed in (else to sign-in), well-formed, from our origin, with
/// this session's CSRF token.
pub struct SessionForm<T> {
    pub form: T,
    pub me: SignedIn,
}

impl<T: DeserializeOwned + CsrfField + Send> FromRequest<AppState> for SessionForm<T> {
    type Rejection = PageError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, PageError> {
        let (mut parts, body) = request.into_parts();
        let me = SignedIn::from_request_parts(&mut parts, state).await?;
        let Org(org) = Org::from_request_parts(&mut parts, state)
            .await
            .map_err(PageError::answer)?;
        let headers = parts.headers.clone();
        let form: T = parse_form(parts, body, &org, state).await?;
        let token = me.csrf(state);
        let config = state.deps.config();
        if !form_verified(config, &headers, Expected::Session(&token), form.csrf()) {
            return Err(PageError::say(&org, Kind::Forbidden, UNVERIFIED));
        }
        Ok(SessionForm { form, me })
    }
}

/// Forms whose only field is the CSRF token.
#[derive(Debug, serde::Deserialize)]
pub struct CsrfOnly {
    csrf: Option<String>,
}

impl CsrfField for CsrfOnly {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

/// The Bearer access token of the request (RFC 6750 §2.1); 401 with a challenge when there is none.
pub struct Bearer(pub String);

fn invalid_token(description: &str) -> ApiError {
    ApiError::new(Kind::Unauthorized, description).challenge("Bearer error=\"invalid_token\"")
}

impl<S: Send + Sync> FromRequestParts<S> for Bearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| Bearer(t.to_string()))
            .ok_or_else(|| invalid_token("a Bearer access token is required"))
    }
}

/// The user behind a Bearer access token, and the session (`sid`) it came from. The token must carry
/// the `latchkey:sessions` scope and come from a first-party application (see `oauth::scopes`); without
/// that the answer is 403 `insufficient_scope` (RFC 6750 §3.1).
pub struct TokenUser {
    pub org: Arc<Organization>,
    pub user: User,
    pub sid: Option<SessionId>,
}

/// A failed token check: the database cannot serve now, a token we cannot use, or a fault.
fn token_check_failed(e: OAuthError) -> ApiError {
    match e.kind {
        _ if e.retry_later() => {
            tracing::warn!(error = ?e, "access token validation deferred");
            ApiError::new(Kind::RetryLater, "the service is busy; try again shortly")
        }
        OAuthErrorKind::ServerError => {
            tracing::error!(error = ?e, "access token validation failed");
            ApiError::new(Kind::Fault, "an internal error occurred")
        }
        _ => invalid_token("the access token is invalid, expired or revoked"),
    }
}

fn insufficient_scope() -> ApiError {
    ApiError::new(
        Kind::Forbidden,
        format!(
            "this endpoint needs an access token with the {} scope, which only the organization's own applications can obtain",
            scopes::SESSIONS
        ),
    )
    .challenge(&format!(
        "Bearer error=\"insufficient_scope\", scope=\"{}\"",
        scopes::SESSIONS
    ))
}

impl FromRequestParts<AppState> for TokenUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Org(org) = Org::from_request_parts(parts, state).await?;
        let Bearer(token) = Bearer::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let user = token_user(state, &org, &token).await;
        user.map(|(user, sid)| TokenUser { org, user, sid })
            .map_err(IntoResponse::into_response)
    }
}

async fn token_user(
    state: &AppState,
    org: &Organization,
    token: &str,
) -> Result<(User, Option<SessionId>), ApiError> {
    let valid = introspect::validate_access_token(&state.provider, org, token)
        .await
        .map_err(token_check_failed)?
        .ok_or_else(|| invalid_token("the access token is invalid, expired or revoked"))?;
    let Some(user) = valid.user else {
        return Err(ApiError::new(
            Kind::Forbidden,
            "this endpoint needs a token issued to a user",
        ));
    };
    if !scopes::permits_sessions_api(&state.provider, org, &valid.claims)
        .await
        .map_err(token_check_failed)?
    {
        return Err(insufficient_scope());
    }
    Ok((user, valid.claims.sid.clone()))
}
