//! The admin API, `/api/v1`: JSON in and out, RFC 9457 problems for errors, authenticated by an admin
//! API key (`Authorization: Bearer lk_admin_…`) or by a staff session cookie (then every mutation must
//! come from our origin and carry the session's `X-CSRF-Token`). Credentials in the query string are
//! refused, never read. Handlers parse, take the grant the operation needs from [`OrgAccess`], call the
//! `admin` or `staff` operation and render; the rules live there.

mod apps;
mod idempotency;
pub mod openapi;
mod orgs;
mod team;
mod users;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderName, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::Kind;
use super::extract::Client;
use super::problem::{ApiError, ApiResult};
use crate::model::orgs::Organization;
use crate::model::sessions::ClientInfo;
use crate::staff::access::{Access, Principal};

const CSRF_HEADER: HeaderName = HeaderName::from_static("x-csrf-token");

pub fn routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/api/v1/me", get(orgs::me))
        .route("/api/v1/orgs", get(orgs::list).post(orgs::create))
        .route("/api/v1/orgs/{org}", get(orgs::get).delete(orgs::delete))
        .route(
            "/api/v1/orgs/{org}/settings",
            get(orgs::settings).patch(orgs::update_settings),
        )
        .route(
            "/api/v1/orgs/{org}/apps",
            get(apps::list).post(apps::create),
        )
        .route(
            "/api/v1/orgs/{org}/apps/{client_id}",
            get(apps::get).patch(apps::update).delete(apps::delete),
        )
        .route(
            "/api/v1/orgs/{org}/apps/{client_id}/rotate-secret",
            post(apps::rotate_secret),
        )
        .route("/api/v1/orgs/{org}/signing-keys", get(apps::signing_keys))
        .route(
            "/api/v1/orgs/{org}/signing-keys/rotate",
            post(apps::rotate_signing_keys),
        )
        .route(
            "/api/v1/orgs/{org}/users",
            get(users::list).post(users::create),
        )
        .route(
            "/api/v1/orgs/{org}/users/{user_id}",
            get(users::get).patch(users::update).delete(users::delete),
        )
        .route(
            "/api/v1/orgs/{org}/users/{user_id}/sessions",
            get(users::sessions).delete(users::sign_out),
        )
        .route(
            "/api/v1/orgs/{org}/users/{user_id}/session-version",
            post(users::bump_session_version),
        )
        .route(
            "/api/v1/orgs/{org}/users/{user_id}/reset-factors",
            post(users::reset_factors),
        )
        .route("/api/v1/orgs/{org}/members", get(team::members))
        .route(
            "/api/v1/orgs/{org}/members/{staff_id}",
            axum::routing::patch(team::change_role).delete(team::remove),
        )
        .route(
            "/api/v1/orgs/{org}/invitations",
            get(team::invitations).post(team::invite),
        )
        .route(
            "/api/v1/orgs/{org}/invitations/{id}",
            axum::routing::delete(team::revoke_invitation),
        )
        .route(
            "/api/v1/orgs/{org}/api-keys",
            get(team::api_keys).post(team::create_api_key),
        )
        .route(
            "/api/v1/orgs/{org}/api-keys/{id}/rotate",
            post(team::rotate_api_key),
        )
        .route(
            "/api/v1/orgs/{org}/api-keys/{id}",
            axum::routing::delete(team::revoke_api_key),
        )
        .route("/api/v1/orgs/{org}/audit-events", get(users::audit_events))
        .route(
            "/api/v1/orgs/{org}/audit-events/export",
            get(users::audit_export),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotency::idempotent,
        ))
}

fn unauthenticated(detail: &str) -> ApiError {
    ApiError::new(Kind::Unauthorized, detail).challenge("Bearer realm=\"latchkey-admin\"")
}

/// Who is calling: an API key or a signed-in staff member (with a second factor), and from where.
pub struct Caller {
    pub principal: Principal,
    pub client: ClientInfo,
    /// For a staff session: the token its mutations must send as `X-CSRF-Token`.
    pub csrf: Option<String>,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(caller) = parts.extensions.get::<Arc<Caller>>() {
            return Ok(Caller {
                principal: caller.principal.clone(),
                client: caller.client.clone(),
                csrf: caller.csrf.clone(),
            });
        }
        let query = parts.uri.query().unwrap_or_default();
        if serde_urlencoded::from_str::<Vec<(String, String)>>(query)
            .unwrap_or_default()
            .iter()
            .any(|(k, _)| matches!(k.as_str(), "api_key" | "access_token" | "token" | "key"))
        {
            return Err(ApiError::new(
                Kind::BadRequest,
                "credentials are never accepted in the query string; use the Authorization header",
            ));
        }
        let Client(client) = Client::from_request_parts(parts, state)
            .await
            .unwrap_or_else(|never| match never {});
        let (principal, csrf) = match parts.headers.get(header::AUTHORIZATION) {
            Some(value) => (bearer_principal(state, value, &client).await?, None),
            None => session_principal(state, parts).await?,
        };
        if let Principal::ApiKey(key) = &principal
            && matches!(parts.method, Method::GET | Method::HEAD)
        {
            let request = format!("{} {}", parts.method, redacted(&parts.uri));
            crate::staff::api_keys::record_read(
                &state.provider.audit,
                key,
                client.ip.clone(),
                client.user_agent.clone(),
                &request,
            )
            .await?;
        }
        let caller = Caller {
            principal,
            client,
            csrf,
        };
        parts.extensions.insert(Arc::new(Caller {
            principal: caller.principal.clone(),
            client: caller.client.clone(),
            csrf: caller.csrf.clone(),
        }));
        Ok(caller)
    }
}

/// The request target as the audit log keeps it: a query value that looks like a Latchkey secret (a
/// key sent under some other parameter name) is replaced, so the append-only log never holds one.
fn redacted(uri: &axum::http::Uri) -> String {
    let path = uri.path();
    let Some(query) = uri.query() else {
        return path.to_string();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) if value.contains("lk_admin_") => format!("{name}=[redacted]"),
            _ => pair.to_string(),
        })
        .collect();
    format!("{path}?{}", pairs.join("&"))
}

async fn bearer_principal(
    state: &AppState,
    value: &axum::http::HeaderValue,
    client: &ClientInfo,
) -> Result<Principal, ApiError> {
    let presented = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or_else(|| unauthenticated("use Authorization: Bearer <API key>"))?;
    let key = crate::staff::api_keys::authenticate(&state.deps, presented, client.ip.as_deref())
        .await?
        .ok_or_else(|| {
            unauthenticated("the API key is invalid, expired or revoked")
                .challenge("Bearer realm=\"latchkey-admin\", error=\"invalid_token\"")
        })?;
    Ok(Principal::ApiKey(key))
}

/// The staff session of this browser. A mutation must also come from our origin with the session's
/// CSRF token in `X-CSRF-Token` (a cookie alone never authorises a change).
async fn session_principal(
    state: &AppState,
    parts: &Parts,
) -> Result<(Principal, Option<String>), ApiError> {
    let staff = crate::staff::staff_org(&state.deps).await?;
    let cookie = super::pages::session_cookie_name(state.deps.config(), &staff.slug);
    let token = super::pages::cookie_value(&parts.headers, &cookie)
        .ok_or_else(|| unauthenticated("sign in as staff, or use an API key"))?;
    let Some((session, user)) =
        crate::sessions::service::from_cookie(&state.deps, &staff, &token).await?
    else {
        return Err(unauthenticated(
            "the staff session has ended; sign in again",
        ));
    };
    let principal = crate::staff::principal(&state.deps, &staff, user, session)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                Kind::Forbidden,
                "staff must enrol a second factor before using the admin API",
            )
        })?;
    let expected = super::pages::session_csrf(state.deps.secrets(), &token);
    if !matches!(parts.method, Method::GET | Method::HEAD) {
        let presented = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let verified = super::pages::same_origin(state.deps.config(), &parts.headers)
            && crate::crypto::constant_time_eq(expected.as_bytes(), presented.as_bytes());
        if !verified {
            return Err(ApiError::new(
                Kind::Forbidden,
                "a change made with a staff session must come from this origin with its X-CSRF-Token",
            ));
        }
    }
    Ok((principal, Some(expected)))
}

/// The organization named by `{org}` and what the caller may do there. An organization the caller has
/// no access to is answered exactly like one that does not exist.
pub struct OrgAccess {
    pub org: Arc<Organization>,
    pub access: Access,
    pub caller: Caller,
}

impl FromRequestParts<AppState> for OrgAccess {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let Path(params) =
            Path::<std::collections::HashMap<String, String>>::from_request_parts(parts, state)
                .await
                .map_err(|e| ApiError::new(Kind::BadRequest, e.body_text()))?;
        let slug = params.get("org").cloned().unwrap_or_default();
        let missing = || ApiError::new(Kind::NotFound, format!("no organization {slug:?}"));
        if crate::orgs::validate_slug(&slug).is_err() {
            return Err(missing());
        }
        let org = state
            .deps
            .db()
            .system()
            .org_by_slug(&slug)
            .await
            .map_err(crate::error::Error::from)?
            .ok_or_else(missing)?;
        let role = crate::staff::role_in(&state.deps, &org, &caller.principal).await?;
        let staff_org = crate::staff::staff_org(&state.deps).await?;
        let access = Access::resolve(
            &org,
            &staff_org,
            &caller.principal,
            role,
            caller.client.ip.clone(),
            caller.client.user_agent.clone(),
            state.deps.now(),
        )
        .ok_or_else(missing)?;
        Ok(OrgAccess {
            org: Arc::new(org),
            access,
            caller,
        })
    }
}

/// `e` with its field named as the request body spells it: the domain names fields as the CLI's flags do
/// (`grant`, `login_window`), and `body_key` maps such a name to the body's key (`None` keeps it).
pub(super) fn named_as_in_body(
    e: crate::error::Error,
    body_key: fn(&str) -> Option<String>,
) -> crate::error::Error {
    use crate::error::Error;
    match e {
        Error::Invalid { field, message } => {
            let field = body_key(&field).unwrap_or(field);
            Error::invalid(field, message)
        }
        other => other,
    }
}

/// A JSON body; a malformed one is a 400 problem naming what is wrong, never a 500.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let mut body = match axum::Json::<serde_json::Value>::from_request(request, state).await {
            Ok(axum::Json(body)) => body,
            Err(rejection) => return Err(ApiError::new(Kind::BadRequest, rejection.body_text())),
        };
        // Serde would take `[a, b]` for a struct, field by position: every request body is an object.
        if !body.is_object() {
            return Err(ApiError::new(
                Kind::BadRequest,
                "the request body must be a JSON object",
            ));
        }
        whole_numbers_as_integers(&mut body);
        serde_path_to_error::deserialize(body)
            .map(ApiJson)
            .map_err(|e| match e.path().to_string() {
                // A missing field or the like: serde names it in the message.
                top if top == "." => ApiError::new(Kind::BadRequest, e.inner().to_string()),
                field => crate::error::Error::invalid(field, e.inner().to_string()).into(),
            })
    }
}

/// JSON has one number type: `30.0` is the integer 30 (as JSON Schema's `integer` says), so an integer
/// field takes it. Fractions stay fractions and are refused by integer fields.
fn whole_numbers_as_integers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f.abs() < 9.0e15
            {
                *value = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers_as_integers),
        Value::Object(fields) => fields.values_mut().for_each(whole_numbers_as_integers),
        _ => {}
    }
}

/// Query parameters; malformed ones are a 400 problem.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(ApiError::new(Kind::BadRequest, rejection.body_text())),
        }
    }
}

/// A JSON answer that must not be cached (it may hold a secret shown once).
pub fn json(status: StatusCode, body: impl serde::Serialize) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}

pub fn ok(body: impl serde::Serialize) -> ApiResult {
    Ok(json(StatusCode::OK, body))
}

pub fn created(body: impl serde::Serialize) -> ApiResult {
    Ok(json(StatusCode::CREATED, body))
}

pub fn no_content() -> ApiResult {
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Cursor-paginated list parameters shared by every list.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub cursor: Option<String>,
    pub limit: Option<i64>,
}
