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
use serde_json::json;

use super::AppState;
use super::problem::Problem;
use crate::audit::Actor;
use crate::error::Error;
use crate::model::apps::Application;
use crate::model::orgs::Organization;
use crate::oauth::claims::{UserClaims, UserInfo};
use crate::oauth::client_auth::{self, Presented};
use crate::oauth::token::{RequestMeta, TokenGrant, TokenRequest, TokenResponse};
use crate::oauth::{OAuthError, OAuthErrorKind, has_scope, introspect, revocation, token};
use crate::ratelimit;
use crate::sessions::service::ClientInfo;

/// How the client should authenticate next time, when the answer is a 401 or a bearer refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Challenge {
    None,
    /// `WWW-Authenticate: Basic` on a 401, for a client that tried Basic (RFC 6749 §5.2).
    Basic,
    /// RFC 6750 §3: `WWW-Authenticate: Bearer` naming the error, for a resource (UserInfo).
    Bearer,
}

/// Every error answer of the OAuth endpoints: RFC 6749 JSON (`error`, `error_description`), no-store. The
/// status is chosen here, by kind, and nowhere else.
#[derive(Debug)]
pub struct OAuthResponse {
    error: OAuthError,
    challenge: Challenge,
}

impl OAuthResponse {
    fn with_basic_challenge(error: OAuthError, basic: bool) -> Self {
        let challenge = if basic {
            Challenge::Basic
        } else {
            Challenge::None
        };
        Self { error, challenge }
    }

    fn bearer(error: OAuthError) -> Self {
        Self {
            error,
            challenge: Challenge::Bearer,
        }
    }
}

impl From<OAuthError> for OAuthResponse {
    fn from(error: OAuthError) -> Self {
        Self {
            error,
            challenge: Challenge::None,
        }
    }
}

impl From<crate::error::Error> for OAuthResponse {
    fn from(e: crate::error::Error) -> Self {
        OAuthError::from(e).into()
    }
}

/// The status for each kind of error: a client mistake is always 4xx; 5xx are ours (500) or "retry" (503).
fn status(kind: OAuthErrorKind) -> StatusCode {
    use OAuthErrorKind::*;
    match kind {
        InvalidRequest | InvalidGrant | UnauthorizedClient | UnsupportedGrantType
        | InvalidScope => StatusCode::BAD_REQUEST,
        UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        InvalidClient | BearerTokenMissing | InvalidToken => StatusCode::UNAUTHORIZED,
        InsufficientScope => StatusCode::FORBIDDEN,
        RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        ServerError => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for OAuthResponse {
    fn into_response(self) -> Response {
        let Self { error, challenge } = self;
        let status = status(error.kind);
        let body = json!({ "error": error.code(), "error_description": error.description });
        let mut response = json_no_store(status, body);
        match challenge {
            Challenge::Basic if status == StatusCode::UNAUTHORIZED => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"latchkey\""),
                );
            }
            Challenge::Bearer => {
                let challenge = match error.kind {
                    OAuthErrorKind::BearerTokenMissing => "Bearer realm=\"latchkey\"".to_string(),
                    _ => format!(
                        "Bearer realm=\"latchkey\", error=\"{}\", error_description=\"{}\"",
                        error.code(),
                        error.description
                    ),
                };
                if let Ok(v) = HeaderValue::from_str(&challenge) {
                    response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                }
            }
            _ => {}
        }
        match error.kind {
            OAuthErrorKind::TemporarilyUnavailable => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            OAuthErrorKind::RateLimited(limited) => super::rate_limit_headers(
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

/// A form body whose rejection is an OAuth `invalid_request` (with 413/415 statuses kept).
pub struct OAuthForm<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OAuthForm<T> {
    type Rejection = OAuthResponse;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let rejection = match axum::Form::<T>::from_request(req, state).await {
            Ok(axum::Form(value)) => return Ok(OAuthForm(value)),
            Err(rejection) => rejection,
        };
        let error = match &rejection {
            FormRejection::InvalidFormContentType(_) => OAuthError::new(
                OAuthErrorKind::UnsupportedMediaType,
                "the body must be application/x-www-form-urlencoded",
            ),
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                OAuthError::new(OAuthErrorKind::PayloadTooLarge, other.body_text())
            }
            other => OAuthError::invalid_request(other.body_text()),
        };
        Err(error.into())
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
    match state.deps.db().tenant(&org.id).list_apps().await {
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
) -> Result<Response, Problem> {
    let keys = state.provider.keys.get(&state.deps, &org.id).await?;
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
    Ok(response)
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
    let presented = client_auth::presented(authorization, client_id, client_secret)
        .map_err(|error| OAuthResponse::with_basic_challenge(error, authorization.is_some()))?;
    match client_auth::authenticate(&state.provider, org, &presented).await {
        Ok(app) => Ok((app, presented)),
        Err(error) => Err(OAuthResponse::with_basic_challenge(
            error,
            presented.used_basic(),
        )),
    }
}

/// Which hot endpoint a per-client rate applies to.
#[derive(Clone, Copy)]
enum ClientRate {
    Token,
    Introspection,
}

/// Counts this request against the client's rate; a refusal is a 429 (`temporarily_unavailable` with
/// `Retry-After` and `RateLimit` headers). Public clients are counted per client and address, since
/// anybody can present their id.
async fn client_rate(
    state: &AppState,
    org: &Organization,
    app: &Application,
    presented: &Presented,
    rate: ClientRate,
    client: &ClientInfo,
) -> Result<(), OAuthResponse> {
    let limits = &org.settings.rate_limits;
    let (policy, limit) = match rate {
        ClientRate::Token => ("token", limits.token_requests_per_client_per_minute),
        ClientRate::Introspection => ("introspection", limits.introspections_per_client_per_minute),
    };
    let key = match (presented, &client.ip) {
        (Presented::None { .. }, Some(ip)) => format!("{policy}:{}:{}:{ip}", org.id, app.client_id),
        _ => format!("{policy}:{}:{}", org.id, app.client_id),
    };
    let actor = Actor::client(&app.client_id, client.ip.clone(), client.user_agent.clone());
    ratelimit::enforce_client_rate(&state.deps, org, &actor, policy, &key, limit)
        .await
        .map_err(|e| match e {
            Error::RateLimited(limited) => OAuthError::client_rate_limited(limited).into(),
            other => other.into(),
        })
}

/// A token-bearing answer: never cached (RFC 6749 §5.1).
pub struct NoStore<T>(T);

impl<T: serde::Serialize> IntoResponse for NoStore<T> {
    fn into_response(self) -> Response {
        json_no_store(StatusCode::OK, self.0)
    }
}

/// `answer` with CORS for `app`'s registered origins, whether it succeeded or not.
fn with_cors(
    answer: Result<impl IntoResponse, OAuthResponse>,
    headers: &HeaderMap,
    app: &Application,
) -> Response {
    let mut response = answer.into_response();
    allow_origin(
        &mut response,
        request_origin(headers).as_deref(),
        &app.cors_origins,
    );
    response
}

pub async fn token_endpoint(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    OAuthForm(form): OAuthForm<TokenRequest>,
) -> Result<Response, OAuthResponse> {
    let (client_id, secret) = (form.client_id.as_deref(), form.client_secret.as_deref());
    let (app, presented) = authenticated_client(&state, &org, &headers, client_id, secret).await?;
    let client = client_info(&addr, &headers);
    let issued = issue_tokens(&state, &org, &app, &presented, client, form).await;
    Ok(with_cors(issued, &headers, &app))
}

/// The token endpoint once the client is known: its rate, the grant parsed, then exchanged.
async fn issue_tokens(
    state: &AppState,
    org: &Organization,
    app: &Application,
    presented: &Presented,
    client: ClientInfo,
    form: TokenRequest,
) -> Result<NoStore<TokenResponse>, OAuthResponse> {
    client_rate(state, org, app, presented, ClientRate::Token, &client).await?;
    let grant = TokenGrant::parse(form, |grant_type| app.allows(grant_type))?;
    let meta = RequestMeta {
        ip: client.ip,
        user_agent: client.user_agent,
    };
    let tokens = token::exchange(&state.provider, org, app, grant, meta).await?;
    Ok(NoStore(tokens))
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
) -> Result<NoStore<introspect::Introspection>, OAuthResponse> {
    let (client_id, secret) = (params.client_id.as_deref(), params.client_secret.as_deref());
    let (app, presented) = authenticated_client(&state, &org, &headers, client_id, secret).await?;
    if matches!(presented, Presented::None { .. }) {
        // Introspection reveals token contents: only clients that can authenticate may ask.
        return Err(
            OAuthError::invalid_client("introspection requires a confidential client").into(),
        );
    }
    let client = client_info(&addr, &headers);
    client_rate(
        &state,
        &org,
        &app,
        &presented,
        ClientRate::Introspection,
        &client,
    )
    .await?;
    let token = params
        .token
        .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    let hint = params.token_type_hint.as_deref();
    let answer = introspect::introspect(&state.provider, &org, &token, hint).await?;
    // RFC 7662 §4: a client learns only about its own tokens; anything else is simply inactive.
    if answer.client_id() == Some(app.client_id.as_str()) {
        Ok(NoStore(answer))
    } else {
        Ok(NoStore(introspect::Introspection::Inactive))
    }
}

pub async fn revocation_endpoint(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    OAuthForm(params): OAuthForm<TokenParam>,
) -> Result<Response, OAuthResponse> {
    let (client_id, secret) = (params.client_id.as_deref(), params.client_secret.as_deref());
    let (app, _) = authenticated_client(&state, &org, &headers, client_id, secret).await?;
    let client = client_info(&addr, &headers);
    let actor = Actor::client(&app.client_id, client.ip, client.user_agent);
    let token = params.token.unwrap_or_default();
    let revoked = revocation::revoke(&state.provider, &org, &app, &actor, &token)
        .await
        .map(|()| NoStore(json!({})));
    Ok(with_cors(
        revoked.map_err(OAuthResponse::from),
        &headers,
        &app,
    ))
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct UserinfoForm {
    access_token: Option<String>,
}

/// The bearer token of a UserInfo request: from the header or a POSTed form, never both (RFC 6750 §2).
fn userinfo_token(
    method: &Method,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<String, OAuthResponse> {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_string());
    let from_body = if method == Method::POST && !body.is_empty() {
        serde_urlencoded::from_bytes::<UserinfoForm>(body)
            .ok()
            .and_then(|f| f.access_token)
    } else {
        None
    };
    match (from_header, from_body) {
        (Some(_), Some(_)) => Err(OAuthResponse::bearer(OAuthError::invalid_request(
            "send the token once",
        ))),
        (Some(t), None) | (None, Some(t)) => Ok(t),
        (None, None) => Err(OAuthResponse::bearer(OAuthError::bearer_token_missing(
            "an access token is required",
        ))),
    }
}

pub async fn userinfo(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    method: Method,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, OAuthResponse> {
    let token = userinfo_token(&method, &headers, &body)?;
    let valid = introspect::validate_access_token(&state.provider, &org, &token)
        .await?
        .ok_or_else(|| {
            OAuthResponse::bearer(OAuthError::invalid_token(
                "the access token is invalid, expired or revoked",
            ))
        })?;
    let scope = valid.claims.scope();
    let Some(user) = valid.user.as_ref().filter(|_| has_scope(scope, "openid")) else {
        return Err(OAuthResponse::bearer(OAuthError::insufficient_scope(
            "the token lacks the openid scope",
        )));
    };
    let info = UserInfo {
        sub: &user.id,
        claims: UserClaims::released(user, scope),
    };
    let mut response = json_no_store(StatusCode::OK, info);
    let client_id = valid.claims.client_id.as_deref().unwrap_or_default();
    if let Ok(Some(app)) = state.provider.app(&org.id, client_id).await {
        allow_origin(
            &mut response,
            request_origin(&headers).as_deref(),
            &app.cors_origins,
        );
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(response: OAuthResponse) -> Response {
        response.into_response()
    }

    fn header(response: &Response, name: header::HeaderName) -> Option<&str> {
        response.headers().get(name).and_then(|v| v.to_str().ok())
    }

    #[test]
    fn a_client_mistake_is_never_a_server_error() {
        use OAuthErrorKind::*;
        for kind in [
            InvalidRequest,
            UnsupportedMediaType,
            PayloadTooLarge,
            InvalidClient,
            InvalidGrant,
            UnauthorizedClient,
            UnsupportedGrantType,
            InvalidScope,
            BearerTokenMissing,
            InvalidToken,
            InsufficientScope,
        ] {
            assert!(status(kind).is_client_error(), "{kind:?}");
        }
        assert_eq!(status(ServerError), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn invalid_client_challenges_basic_only_when_basic_was_tried() {
        let error = || OAuthError::invalid_client("client authentication failed");
        let tried = answer(OAuthResponse::with_basic_challenge(error(), true));
        assert_eq!(tried.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            header(&tried, header::WWW_AUTHENTICATE),
            Some("Basic realm=\"latchkey\"")
        );
        assert_eq!(header(&tried, header::CACHE_CONTROL), Some("no-store"));
        let not_tried = answer(OAuthResponse::with_basic_challenge(error(), false));
        assert_eq!(header(&not_tried, header::WWW_AUTHENTICATE), None);
    }

    #[test]
    fn retry_later_is_503_with_retry_after() {
        let busy = answer(Error::Busy.into());
        assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(header(&busy, header::RETRY_AFTER), Some("1"));
    }

    #[test]
    fn bearer_refusals_name_the_error_unless_no_token_was_sent() {
        let invalid = answer(OAuthResponse::bearer(OAuthError::invalid_token("expired")));
        assert_eq!(invalid.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            header(&invalid, header::WWW_AUTHENTICATE),
            Some(
                "Bearer realm=\"latchkey\", error=\"invalid_token\", error_description=\"expired\""
            )
        );
        let missing = answer(OAuthResponse::bearer(OAuthError::bearer_token_missing(
            "an access token is required",
        )));
        assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            header(&missing, header::WWW_AUTHENTICATE),
            Some("Bearer realm=\"latchkey\"")
        );
        let scope = answer(OAuthResponse::bearer(OAuthError::insufficient_scope("no")));
        assert_eq!(scope.status(), StatusCode::FORBIDDEN);
    }
}
