//! OAuth/OIDC JSON endpoints: discovery, JWKS, token, introspection, revocation, UserInfo. Errors are
//! RFC 6749 JSON (`error`, `error_description`); token-bearing answers carry `Cache-Control: no-store`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::AppState;
use super::problem::Problem;
use crate::apps::Application;
use crate::audit::Actor;
use crate::oauth::client_auth::{self, Presented};
use crate::oauth::token::{RequestMeta, TokenRequest};
use crate::oauth::{OAuthError, has_scope, introspect, revocation, token};
use crate::orgs::Organization;
use crate::ratelimit;
use crate::sessions::service::ClientInfo;

/// An RFC 6749 error response. `basic_challenge` adds `WWW-Authenticate: Basic` to a 401 (RFC 6749 §5.2).
pub struct OAuthResponse {
    error: OAuthError,
    basic_challenge: bool,
}

impl From<OAuthError> for OAuthResponse {
    fn from(error: OAuthError) -> Self {
        Self {
            error,
            basic_challenge: false,
        }
    }
}

impl IntoResponse for OAuthResponse {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.error.status).unwrap_or(StatusCode::BAD_REQUEST);
        let body =
            json!({ "error": self.error.error, "error_description": self.error.description });
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if status == StatusCode::UNAUTHORIZED && self.basic_challenge {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"latchkey\""),
            );
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// A form body whose rejection is an OAuth `invalid_request` (with 413/415 statuses kept).
pub struct OAuthForm<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OAuthForm<T> {
    type Rejection = OAuthResponse;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Form::<T>::from_request(req, state).await {
            Ok(axum::Form(value)) => Ok(OAuthForm(value)),
            Err(rejection) => {
                let status = match &rejection {
                    FormRejection::InvalidFormContentType(_) => 415,
                    other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => 413,
                    _ => 400,
                };
                let description = match &rejection {
                    FormRejection::InvalidFormContentType(_) => {
                        "the body must be application/x-www-form-urlencoded".to_string()
                    }
                    other => other.body_text(),
                };
                Err(OAuthError {
                    error: "invalid_request",
                    description,
                    status,
                }
                .into())
            }
        }
    }
}

/// The organization named by the `{slug}` path segment; unknown slugs are a 404 before anything else runs.
pub struct OrgFromPath(pub Arc<Organization>);

impl FromRequestParts<AppState> for OrgFromPath {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Path(slug) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        org_or_404(state, &slug).await.map(OrgFromPath)
    }
}

pub async fn org_or_404(state: &AppState, slug: &str) -> Result<Arc<Organization>, Response> {
    match state.provider.org(slug).await {
        Ok(Some(org)) => Ok(org),
        Ok(None) => Err(
            Problem::new(StatusCode::NOT_FOUND, format!("no organization {slug:?}"))
                .into_response(),
        ),
        Err(e) => Err(Problem::from(e).into_response()),
    }
}

pub fn client_info(addr: &SocketAddr, headers: &HeaderMap) -> ClientInfo {
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(256).collect());
    ClientInfo {
        ip: Some(addr.ip().to_string()),
        user_agent,
    }
}

fn json_no_store(status: StatusCode, body: impl serde::Serialize) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
        .headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

// ---------------------------------------------------------------------------------------------------------
// CORS: only origins registered by the organization's applications, and for client-specific endpoints
// only the calling client's.

async fn org_origins(state: &AppState, org: &Organization) -> Vec<String> {
    match state.services.db.tenant(&org.id).list_apps().await {
        Ok(apps) => apps.into_iter().flat_map(|a| a.cors_origins).collect(),
        Err(_) => Vec::new(),
    }
}

fn request_origin(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn allow_origin(response: &mut Response, origin: Option<&str>, allowed: &[String]) {
    response
        .headers_mut()
        .append(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = origin
        && allowed.iter().any(|o| o == origin)
        && let Ok(v) = HeaderValue::from_str(origin)
    {
        response
            .headers_mut()
            .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
}

/// Preflight for the CORS-enabled endpoints.
pub async fn preflight(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    headers: HeaderMap,
) -> Response {
    let origin = request_origin(&headers);
    let allowed = org_origins(&state, &org).await;
    let mut response = StatusCode::NO_CONTENT.into_response();
    allow_origin(&mut response, origin.as_deref(), &allowed);
    if response
        .headers()
        .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    {
        let h = response.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
    }
    response
}

// ---------------------------------------------------------------------------------------------------------

pub async fn openid_configuration(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
) -> Response {
    let mut response = state.provider.discovery_document(&org).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

pub async fn jwks(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    headers: HeaderMap,
) -> Response {
    let keys = match state.provider.keys.get(&state.services, &org.id).await {
        Ok(keys) => keys,
        Err(e) => return Problem::from(e).into_response(),
    };
    let mut response = keys.jwks.clone().into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_str(&format!(
            "public, max-age={}",
            crate::keys::JWKS_MAX_AGE_SECS
        ))
        .expect("ascii"),
    );
    if let Some(origin) = request_origin(&headers) {
        let allowed = org_origins(&state, &org).await;
        allow_origin(&mut response, Some(&origin), &allowed);
    }
    response
}

async fn authenticated_client(
    state: &AppState,
    org: &Organization,
    headers: &HeaderMap,
    client_id: Option<&str>,
    client_secret: Option<&str>,
) -> Result<(Arc<Application>, Presented), OAuthResponse> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let presented =
        client_auth::presented(authorization, client_id, client_secret).map_err(|error| {
            OAuthResponse {
                error,
                basic_challenge: authorization.is_some(),
            }
        })?;
    match client_auth::authenticate(&state.provider, org, &presented).await {
        Ok(app) => Ok((app, presented)),
        Err(error) => Err(OAuthResponse {
            error,
            basic_challenge: presented.used_basic(),
        }),
    }
}

/// Which hot endpoint a per-client rate applies to.
#[derive(Clone, Copy)]
enum ClientRate {
    Token,
    Introspection,
}

/// Counts this request against the client's rate; `Err` is the 429 to send (an OAuth error body with
/// `Retry-After` and `RateLimit` headers). Public clients are counted per client and address, since
/// anybody can present their id.
async fn client_rate(
    state: &AppState,
    org: &Organization,
    app: &Application,
    presented: &Presented,
    rate: ClientRate,
    client: &ClientInfo,
) -> Result<(), Response> {
    let limits = &org.settings.rate_limits;
    let (policy, limit) = match rate {
        ClientRate::Token => ("token", limits.token_requests_per_client_per_minute),
        ClientRate::Introspection => ("introspection", limits.introspections_per_client_per_minute),
    };
    let key = match (presented, &client.ip) {
        (Presented::None { .. }, Some(ip)) => format!("{policy}:{}:{}:{ip}", org.id, app.client_id),
        _ => format!("{policy}:{}:{}", org.id, app.client_id),
    };
    let actor = Actor {
        actor_type: "client".into(),
        id: Some(app.client_id.to_string()),
        role: None,
        ip: client.ip.clone(),
        user_agent: client.user_agent.clone(),
    };
    match ratelimit::enforce_client_rate(&state.services, org, &actor, policy, &key, limit).await {
        Ok(()) => Ok(()),
        Err(crate::error::Error::RateLimited(limited)) => {
            let mut response = json_no_store(
                StatusCode::TOO_MANY_REQUESTS,
                json!({
                    "error": "temporarily_unavailable",
                    "error_description": "too many requests from this client; try again later",
                }),
            );
            super::rate_limit_headers(
                &mut response,
                &limited.decision,
                limited.policy,
                limited.window,
            );
            Err(response)
        }
        Err(e) => Err(OAuthResponse::from(OAuthError::from(e)).into_response()),
    }
}

pub async fn token_endpoint(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    OAuthForm(request): OAuthForm<TokenRequest>,
) -> Response {
    let origin = request_origin(&headers);
    let (app, presented) = match authenticated_client(
        &state,
        &org,
        &headers,
        request.client_id.as_deref(),
        request.client_secret.as_deref(),
    )
    .await
    {
        Ok(found) => found,
        Err(e) => return e.into_response(),
    };
    let client = client_info(&addr, &headers);
    if let Err(mut refused) =
        client_rate(&state, &org, &app, &presented, ClientRate::Token, &client).await
    {
        allow_origin(&mut refused, origin.as_deref(), &app.cors_origins);
        return refused;
    }
    let meta = RequestMeta {
        ip: client.ip,
        user_agent: client.user_agent,
    };
    let mut response = match token::exchange(&state.provider, &org, &app, request, meta).await {
        Ok(tokens) => {
            let mut response = (StatusCode::OK, axum::Json(tokens)).into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
                .headers_mut()
                .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            response
        }
        Err(e) => OAuthResponse::from(e).into_response(),
    };
    allow_origin(&mut response, origin.as_deref(), &app.cors_origins);
    response
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct TokenParam {
    token: Option<String>,
    token_type_hint: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

pub async fn introspection_endpoint(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    OAuthForm(params): OAuthForm<TokenParam>,
) -> Response {
    let (app, presented) = match authenticated_client(
        &state,
        &org,
        &headers,
        params.client_id.as_deref(),
        params.client_secret.as_deref(),
    )
    .await
    {
        Ok(found) => found,
        Err(e) => return e.into_response(),
    };
    if matches!(presented, Presented::None { .. }) {
        // Introspection reveals token contents: only clients that can authenticate may ask.
        return OAuthResponse {
            error: OAuthError::invalid_client("introspection requires a confidential client"),
            basic_challenge: false,
        }
        .into_response();
    }
    let client = client_info(&addr, &headers);
    if let Err(refused) = client_rate(
        &state,
        &org,
        &app,
        &presented,
        ClientRate::Introspection,
        &client,
    )
    .await
    {
        return refused;
    }
    let Some(token) = params.token else {
        return OAuthResponse::from(OAuthError::invalid_request("token is required"))
            .into_response();
    };
    let answer = introspect::introspect(
        &state.provider,
        &org,
        &token,
        params.token_type_hint.as_deref(),
    )
    .await;
    match answer {
        // RFC 7662 §4: a client learns only about its own tokens; anything else is simply inactive.
        Ok(body) if body.client_id() == Some(app.client_id.as_str()) => {
            json_no_store(StatusCode::OK, body)
        }
        Ok(_) => json_no_store(StatusCode::OK, introspect::Introspection::Inactive),
        Err(e) => OAuthResponse::from(e).into_response(),
    }
}

pub async fn revocation_endpoint(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    OAuthForm(params): OAuthForm<TokenParam>,
) -> Response {
    let origin = request_origin(&headers);
    let (app, _) = match authenticated_client(
        &state,
        &org,
        &headers,
        params.client_id.as_deref(),
        params.client_secret.as_deref(),
    )
    .await
    {
        Ok(found) => found,
        Err(e) => return e.into_response(),
    };
    let client = client_info(&addr, &headers);
    let actor = Actor {
        actor_type: "client".into(),
        id: Some(app.client_id.to_string()),
        role: None,
        ip: client.ip,
        user_agent: client.user_agent,
    };
    let token = params.token.unwrap_or_default();
    let mut response = match revocation::revoke(&state.provider, &org, &app, &actor, &token).await {
        Ok(()) => json_no_store(StatusCode::OK, json!({})),
        Err(e) => OAuthResponse::from(e).into_response(),
    };
    allow_origin(&mut response, origin.as_deref(), &app.cors_origins);
    response
}

/// RFC 6750 error for the UserInfo endpoint.
fn bearer_error(status: StatusCode, error: Option<&str>, description: &str) -> Response {
    let challenge = match error {
        Some(e) => {
            format!("Bearer realm=\"latchkey\", error=\"{e}\", error_description=\"{description}\"")
        }
        None => "Bearer realm=\"latchkey\"".to_string(),
    };
    let body = match error {
        Some(e) => json!({ "error": e, "error_description": description }),
        None => json!({ "error": "invalid_request", "error_description": description }),
    };
    let mut response = json_no_store(status, body);
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    response
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct UserinfoForm {
    access_token: Option<String>,
}

pub async fn userinfo(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    method: Method,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let origin = request_origin(&headers);
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_string());
    let from_body = if method == Method::POST && !body.is_empty() {
        serde_urlencoded::from_bytes::<UserinfoForm>(&body)
            .ok()
            .and_then(|f| f.access_token)
    } else {
        None
    };
    let token = match (from_header, from_body) {
        (Some(_), Some(_)) => {
            return bearer_error(
                StatusCode::BAD_REQUEST,
                Some("invalid_request"),
                "send the token once",
            );
        }
        (Some(t), None) | (None, Some(t)) => t,
        (None, None) => {
            return bearer_error(
                StatusCode::UNAUTHORIZED,
                None,
                "an access token is required",
            );
        }
    };
    let valid = match introspect::validate_access_token(&state.provider, &org, &token).await {
        Ok(Some(valid)) => valid,
        Ok(None) => {
            return bearer_error(
                StatusCode::UNAUTHORIZED,
                Some("invalid_token"),
                "the access token is invalid, expired or revoked",
            );
        }
        Err(e) => return OAuthResponse::from(e).into_response(),
    };
    let scope = valid
        .claims
        .get("scope")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(user) = valid.user.filter(|_| has_scope(scope, "openid")) else {
        return bearer_error(
            StatusCode::FORBIDDEN,
            Some("insufficient_scope"),
            "the token lacks the openid scope",
        );
    };
    let mut claims = serde_json::Map::new();
    claims.insert("sub".into(), json!(user.id));
    for (k, v) in token::user_claims(&user, scope) {
        claims.insert(k.into(), v);
    }
    let mut response = json_no_store(StatusCode::OK, Value::Object(claims));
    let client_id = valid
        .claims
        .get("client_id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if let Ok(Some(app)) = state.provider.app(&org.id, client_id).await {
        allow_origin(&mut response, origin.as_deref(), &app.cors_origins);
    }
    response
}
