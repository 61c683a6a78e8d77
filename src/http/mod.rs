//! The HTTP edge: routing, middleware and error rendering. Handlers parse, call the domain, render.

mod account;
mod accounts;
mod api;
mod body_limit;
pub mod connections;
pub mod error;
pub mod extract;
mod flows;
mod health;
mod mfa;
pub mod oauth;
pub mod pages;
pub mod problem;
mod staff;
pub mod views;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit};
use axum::http::{HeaderName, HeaderValue, Request, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;

use crate::deps::{HasAuditKeys, HasMailer, HasPasswords, HasWebauthn};
use crate::oauth::provider::Provider;
use crate::oauth::provider::ProviderDeps;
use problem::Problem;

/// Every capability the handlers hand down to the domain: each domain operation takes only the ones it
/// names, so a handler passes `&state.deps` and the operation's signature limits what it can touch.
pub trait EdgeDeps: ProviderDeps + HasPasswords + HasMailer + HasWebauthn + HasAuditKeys {}

impl<T: ProviderDeps + HasPasswords + HasMailer + HasWebauthn + HasAuditKeys> EdgeDeps for T {}

/// The capabilities as the handlers hold them: one shared pointer, so the edge is not generic.
pub type Deps = Arc<dyn EdgeDeps>;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub deps: Deps,
    pub provider: Arc<Provider>,
    /// The readiness check's last database write probe.
    pub(crate) write_probe: Arc<health::WriteProbe>,
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const DEGRADED: HeaderName = HeaderName::from_static("x-auth-degraded");

pub fn router(state: AppState) -> Router {
    let config = state.deps.config().clone();
    let state_ephemeral = state.deps.ephemeral().clone();
    let state_clock = state.deps.clock().clone();
    let routes = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route(pages::CSS_PATH, get(pages::stylesheet))
        .route(pages::WEBAUTHN_JS_PATH, get(pages::webauthn_script))
        .route(
            "/o/{slug}/.well-known/openid-configuration",
            get(oauth::openid_configuration),
        )
        .route(
            "/o/{slug}/.well-known/oauth-authorization-server",
            get(oauth::openid_configuration),
        )
        // RFC 8414 §3.1: for an issuer with a path, the well-known segment goes before the path.
        .route(
            "/.well-known/oauth-authorization-server/o/{slug}",
            get(oauth::openid_configuration),
        )
        .route(
            "/.well-known/openid-configuration/o/{slug}",
            get(oauth::openid_configuration),
        )
        .route("/o/{slug}/jwks", get(oauth::jwks).options(oauth::preflight))
        .route(
            "/o/{slug}/token",
            axum::routing::post(oauth::token_endpoint).options(oauth::preflight),
        )
        .route(
            "/o/{slug}/introspect",
            axum::routing::post(oauth::introspection_endpoint),
        )
        .route(
            "/o/{slug}/revoke",
            axum::routing::post(oauth::revocation_endpoint).options(oauth::preflight),
        )
        .route(
            "/o/{slug}/userinfo",
            get(oauth::userinfo)
                .post(oauth::userinfo)
                .options(oauth::preflight),
        )
        .route(
            "/o/{slug}/authorize",
            get(flows::authorize).post(flows::authorize_post),
        )
        .route("/o/{slug}/authorize/resume", get(flows::resume))
        .route(
            "/o/{slug}/login",
            get(flows::login_form).post(flows::login_submit),
        )
        .route(
            "/o/{slug}/login/mfa",
            get(mfa::challenge_page).post(mfa::challenge_submit),
        )
        .route(
            "/o/{slug}/login/mfa/email",
            axum::routing::post(mfa::challenge_email),
        )
        .route(
            "/o/{slug}/login/mfa/enrol",
            axum::routing::post(mfa::challenge_enrol),
        )
        .route(
            "/o/{slug}/login/mfa/passkey/options",
            axum::routing::post(mfa::challenge_passkey_options),
        )
        .route(
            "/o/{slug}/login/passkey/options",
            axum::routing::post(mfa::sign_in_passkey_options),
        )
        .route(
            "/o/{slug}/login/passkey",
            axum::routing::post(mfa::sign_in_passkey),
        )
        .route(
            "/o/{slug}/account/passkeys/new",
            get(mfa::passkey_setup_form),
        )
        .route(
            "/o/{slug}/account/passkeys/options",
            axum::routing::post(mfa::passkey_setup_options),
        )
        .route(
            "/o/{slug}/account/passkeys",
            axum::routing::post(mfa::passkey_setup_submit),
        )
        .route(
            "/o/{slug}/account/mfa/totp",
            get(mfa::totp_setup_form).post(mfa::totp_setup_submit),
        )
        .route(
            "/o/{slug}/account/mfa/remove",
            axum::routing::post(mfa::remove_submit),
        )
        .route(
            "/o/{slug}/account/mfa/email",
            axum::routing::post(mfa::email_enable_submit),
        )
        .route(
            "/o/{slug}/account/mfa/recovery-codes",
            axum::routing::post(mfa::recovery_codes_submit),
        )
        .route(
            "/o/{slug}/consent",
            get(flows::consent_form).post(flows::consent_submit),
        )
        .route("/o/{slug}/logout", get(flows::logout).post(flows::logout))
        .route(
            "/o/{slug}/signup",
            get(accounts::signup_form).post(accounts::signup_submit),
        )
        .route(
            "/o/{slug}/verify-email",
            get(accounts::verify_email).post(accounts::verify_email_submit),
        )
        .route(
            "/o/{slug}/verify-email/resend",
            get(accounts::resend_form).post(accounts::resend_submit),
        )
        .route(
            "/o/{slug}/forgot-password",
            get(accounts::forgot_form).post(accounts::forgot_submit),
        )
        .route(
            "/o/{slug}/reset-password",
            get(accounts::reset_form).post(accounts::reset_submit),
        )
        .route("/o/{slug}/account", get(account::account))
        .route(
            "/o/{slug}/account/profile",
            axum::routing::post(account::profile_submit),
        )
        .route(
            "/o/{slug}/account/password",
            axum::routing::post(account::password_submit),
        )
        .route(
            "/o/{slug}/account/sessions/revoke",
            axum::routing::post(account::revoke_submit),
        )
        .route(
            "/o/{slug}/account/sessions/revoke-others",
            axum::routing::post(account::revoke_others_submit),
        )
        .route(
            "/o/{slug}/account/signout",
            axum::routing::post(account::signout_submit),
        )
        .route("/o/{slug}/api/me/sessions", get(account::api_list_sessions))
        .route(
            "/o/{slug}/api/me/sessions/revoke-others",
            axum::routing::post(account::api_revoke_other_sessions),
        )
        .route(
            "/o/{slug}/api/me/sessions/{id}",
            axum::routing::delete(account::api_revoke_session),
        )
        .route("/", get(staff::home))
        .route("/setup", get(staff::setup_form).post(staff::setup_submit))
        .route(
            "/invitations/accept",
            get(staff::invitation_form).post(staff::invitation_submit),
        )
        .merge(api::routes(&state))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state);

    let edge_state = Edge {
        clock: state_clock,
        ephemeral: state_ephemeral,
        hsts: config
            .is_https()
            .then(|| HeaderValue::from_static("max-age=63072000; includeSubDomains")),
        timeout: Duration::from_secs(config.request_timeout_secs),
        trusted_proxies: Arc::new(config.trusted_proxies.clone()),
    };
    let middleware = ServiceBuilder::new()
        .layer(axum::middleware::from_fn_with_state(edge_state, edge))
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("handler panicked");
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "an internal error occurred",
            )
            .into_response()
        }))
        .layer(axum::middleware::from_fn_with_state(
            config.max_body_bytes,
            body_limit::refuse_oversized,
        ))
        .layer(DefaultBodyLimit::max(config.max_body_bytes));
    routes.layer(middleware)
}

/// The address of the socket's other end (the proxy, behind one), when it differs from the client's.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// What [`edge`] needs.
#[derive(Clone)]
struct Edge {
    /// Pins "now" for each request (see [`crate::kernel::Clock::pinned`]).
    clock: crate::kernel::Clock,
    ephemeral: Arc<dyn crate::ephemeral::Ephemeral>,
    hsts: Option<HeaderValue>,
    timeout: Duration,
    trusted_proxies: Arc<crate::client_addr::TrustedProxies>,
}

/// What every request gets, in one step rather than a stack of ten layers (which cost a third of a
/// trivial endpoint's throughput): a fresh request id (an incoming `X-Request-Id` is never trusted, so log
/// lines cannot be forged or made to collide), a span carrying it, the request timeout, the security
/// headers unless the handler set its own, `X-Auth-Degraded: 1` while Redis is unreachable (partner sites
/// can fail closed on sensitive flows while limits are per instance), one log line per request with
/// method and path only (query strings carry codes and tokens), and the client's address: behind a
/// trusted proxy the one it forwarded (see [`crate::client_addr`]). That address replaces the socket's in
/// `ConnectInfo`, so rate limits, lockouts, audit events and session records all see the client; the
/// socket's peer stays available as [`PeerAddr`]. The handler runs with "now" pinned at its start.
async fn edge(
    axum::extract::State(edge): axum::extract::State<Edge>,
    mut request: Request<axum::body::Body>,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use tracing::Instrument;
    // Unique, not secret: the thread-local generator, not a system call per request.
    let id = HeaderValue::from_str(&format!("{:016x}", rand::random::<u64>()))
        .expect("hex is a valid header value");
    request.headers_mut().insert(REQUEST_ID, id.clone());
    if !edge.trusted_proxies.is_empty()
        && let Some(ConnectInfo(peer)) = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .copied()
    {
        let client = edge.trusted_proxies.client_addr(peer, request.headers());
        request.extensions_mut().insert(PeerAddr(peer));
        request.extensions_mut().insert(ConnectInfo(client));
    }
    let span = tracing::info_span!(
        "request",
        request_id = %id.to_str().unwrap_or("-"),
        method = %request.method(),
        path = %request.uri().path()
    );
    let started = std::time::Instant::now();
    let mut response = match tokio::time::timeout(
        edge.timeout,
        edge.clock
            .pinned(next.run(request))
            .instrument(span.clone()),
    )
    .await
    {
        Ok(response) => response,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    };
    let headers = response.headers_mut();
    headers.insert(REQUEST_ID, id);
    headers
        .entry(header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    headers
        .entry(header::X_FRAME_OPTIONS)
        .or_insert(HeaderValue::from_static("DENY"));
    headers
        .entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("no-referrer"));
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(
            "default-src 'none'; frame-ancestors 'none'; base-uri 'none'",
        ));
    if let Some(hsts) = &edge.hsts {
        headers
            .entry(header::STRICT_TRANSPORT_SECURITY)
            .or_insert(hsts.clone());
    }
    if edge.ephemeral.degraded() {
        headers.insert(DEGRADED, HeaderValue::from_static("1"));
    }
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            "served"
        )
    });
    response
}

/// `Retry-After` and the IETF draft `RateLimit-Policy` / `RateLimit` headers for a limited answer.
pub fn rate_limit_headers(
    response: &mut axum::response::Response,
    decision: &crate::ephemeral::Decision,
    policy: &str,
    window: Duration,
) {
    let reset = decision.reset_after.as_secs().max(1);
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&reset.to_string()) {
        headers.insert(header::RETRY_AFTER, v);
    }
    let window = window.as_secs();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{policy}\";q={};w={window}", decision.limit)) {
        headers.insert(HeaderName::from_static("ratelimit-policy"), v);
    }
    if let Ok(v) =
        HeaderValue::from_str(&format!("\"{policy}\";r={};t={reset}", decision.remaining))
    {
        headers.insert(HeaderName::from_static("ratelimit"), v);
    }
}

async fn not_found() -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "no such endpoint")
}

async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "this endpoint does not accept that method",
    )
}
