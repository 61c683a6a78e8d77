//! The authorization endpoint (RFC 6749 §4.1, OpenID Connect Core §3.1.2): validating the request,
//! deciding whether the user must sign in or consent, and issuing the authorization code.
//!
//! A request that has to wait for sign-in or consent is stored as a one-time token (purpose `authorize`)
//! and continued by `resume`; the browser carries only the opaque id.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;
use url::Url;

use super::provider::Provider;
use super::records::{AuthorizationCode, Grant};
use super::{ACR_MFA, ACR_PASSWORD, OAuthError, SUPPORTED_SCOPES, has_scope, parse_scope};
use crate::audit::{Action, Actor, NewAuditEvent};
use crate::crypto;
use crate::model::apps::{Application, ClientType, GrantType};
use crate::model::onetime::OneTimeToken;
use crate::model::orgs::Organization;
use crate::model::sessions::Session;
use crate::model::users::User;
use crate::sessions::service::ClientInfo;

pub const PENDING_PURPOSE: &str = "authorize";
/// How long a user may take to sign in and consent.
const PENDING_TTL_SECS: i64 = 15 * 60;

/// The query parameters, as received. Everything optional so a missing one gets a precise error.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct AuthorizeParams {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt: Option<String>,
    pub max_age: Option<String>,
    pub login_hint: Option<String>,
    pub acr_values: Option<String>,
    pub response_mode: Option<String>,
    pub request: Option<String>,
    pub request_uri: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prompt {
    pub none: bool,
    pub login: bool,
    pub consent: bool,
}

#[derive(Debug, Clone)]
pub struct ValidRequest {
    pub app: Arc<Application>,
    pub redirect_uri: String,
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub prompt: Prompt,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    pub acr_values: Vec<String>,
}

/// Why a request cannot proceed, and how to say so.
#[derive(Debug)]
pub enum Refusal {
    /// The client or redirect URI cannot be trusted: show an error page, never redirect (RFC 6749 §4.1.2.1).
    Page(String),
    /// Tell the client, at its verified redirect URI.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: &'static str,
        description: String,
    },
    Internal(OAuthError),
}

impl From<OAuthError> for Refusal {
    fn from(e: OAuthError) -> Self {
        Refusal::Internal(e)
    }
}

impl From<crate::error::Error> for Refusal {
    fn from(e: crate::error::Error) -> Self {
        Refusal::Internal(e.into())
    }
}

/// RFC 8252 §7.3: for native apps, a loopback redirect URI matches whatever port the app listens on.
/// Only the port may differ: the rest is compared as text, so a fragment, user information, dot
/// segments or another spelling of the same path (all of which `Url` would normalise away) never match.
fn loopback_match(registered: &str, presented: &str) -> bool {
    match (
        split_loopback_port(registered),
        split_loopback_port(presented),
    ) {
        (Some((r_host, r_rest)), Some((p_host, p_rest))) => r_host == p_host && r_rest == p_rest,
        _ => false,
    }
}

/// `http://127.0.0.1[:PORT]/rest` or `http://[::1][:PORT]/rest` as (host, rest) without the port; `None`
/// for anything else, including a port that is not 1–65535 written in plain digits without leading zeros.
fn split_loopback_port(uri: &str) -> Option<(&str, &str)> {
    let after_scheme = uri.strip_prefix("http://")?;
    let host = ["127.0.0.1", "[::1]"]
        .into_iter()
        .find(|h| after_scheme.starts_with(h))?;
    let after_host = &after_scheme[host.len()..];
    if !(after_host.is_empty() || after_host.starts_with([':', '/', '?'])) {
        return None; // 127.0.0.10, 127.0.0.1.example.com: another host
    }
    let Some(after_colon) = after_host.strip_prefix(':') else {
        return Some((host, after_host));
    };
    let digits = after_colon
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(after_colon.len());
    if after_colon.starts_with('0') {
        return None;
    }
    after_colon[..digits].parse::<u16>().ok()?;
    Some((host, &after_colon[digits..]))
}

fn redirect_uri_allowed(app: &Application, presented: &str) -> bool {
    // An exact match needs no more checks (registered URIs are checked when registered). Only the
    // loopback exception compares a URI that was never registered, so only it must be free of defects.
    app.redirect_uris.iter().any(|r| r == presented)
        || (app.client_type == ClientType::Public
            && crate::uri::redirect_uri_defect(presented).is_none()
            && app
                .redirect_uris
                .iter()
                .any(|r| loopback_match(r, presented)))
}

pub async fn validate(
    provider: &Provider,
    org: &Organization,
    params: &AuthorizeParams,
) -> Result<ValidRequest, Refusal> {
    let client_id = params.client_id.as_deref().filter(|s| !s.is_empty());
    let client_id =
        client_id.ok_or_else(|| Refusal::Page("The request has no client_id.".into()))?;
    let app = match provider.app(&org.id, client_id).await? {
        Some(app) => app,
        _ => {
            return Err(Refusal::Page(
                "The application that sent you here is not registered.".into(),
            ));
        }
    };
    let redirect_uri = params.redirect_uri.as_deref().filter(|s| !s.is_empty());
    let redirect_uri =
        redirect_uri.ok_or_else(|| Refusal::Page("The request has no redirect_uri.".into()))?;
    if !redirect_uri_allowed(&app, redirect_uri) {
        return Err(Refusal::Page(
            "The redirect_uri is not registered for this application.".into(),
        ));
    }
    let state = params.state.clone();
    let refuse = |e: RedirectError| Refusal::Redirect {
        redirect_uri: redirect_uri.to_string(),
        state: state.clone(),
        error: e.error,
        description: e.description,
    };
    check_response_shape(params).map_err(refuse)?;
    if !app.allows(GrantType::AuthorizationCode) {
        return Err(refuse(RedirectError::new(
            "unauthorized_client",
            "this client may not use the authorization code flow",
        )));
    }
    let scope = requested_scope(&app, params).map_err(refuse)?;
    let code_challenge = code_challenge(&app, params).map_err(refuse)?;
    let prompt = prompt(params).map_err(refuse)?;
    let max_age = max_age(params).map_err(refuse)?;
    let too_long = |v: &Option<String>| v.as_deref().is_some_and(|s| s.len() > 512);
    if too_long(&params.state) || too_long(&params.nonce) || too_long(&params.login_hint) {
        return Err(refuse(RedirectError::invalid_request(
            "state, nonce and login_hint are limited to 512 characters",
        )));
    }
    Ok(ValidRequest {
        redirect_uri: redirect_uri.to_string(),
        scope,
        state: params.state.clone(),
        nonce: params.nonce.clone(),
        code_challenge,
        prompt,
        max_age,
        login_hint: params.login_hint.clone(),
        acr_values: parse_scope(params.acr_values.as_deref().unwrap_or("")),
        app,
    })
}

/// An error for the client, sent to its verified redirect URI (RFC 6749 §4.1.2.1).
struct RedirectError {
    error: &'static str,
    description: String,
}

impl RedirectError {
    fn new(error: &'static str, description: impl Into<String>) -> Self {
        Self {
            error,
            description: description.into(),
        }
    }

    fn invalid_request(description: impl Into<String>) -> Self {
        Self::new("invalid_request", description)
    }
}

/// Only plain `response_type=code` answered in the query; no request objects.
fn check_response_shape(params: &AuthorizeParams) -> Result<(), RedirectError> {
    if params.request.is_some() {
        return Err(RedirectError::new(
            "request_not_supported",
            "request objects are not supported",
        ));
    }
    if params.request_uri.is_some() {
        return Err(RedirectError::new(
            "request_uri_not_supported",
            "request_uri is not supported",
        ));
    }
    match params.response_type.as_deref() {
        Some("code") => {}
        None | Some("") => {
            return Err(RedirectError::invalid_request("response_type is required"));
        }
        Some(_) => {
            return Err(RedirectError::new(
                "unsupported_response_type",
                "only response_type=code is supported",
            ));
        }
    }
    if params
        .response_mode
        .as_deref()
        .is_some_and(|m| m != "query")
    {
        return Err(RedirectError::invalid_request(
            "only response_mode=query is supported",
        ));
    }
    Ok(())
}

/// The requested scopes, deduplicated: all known, and first-party ones only for first-party clients.
fn requested_scope(app: &Application, params: &AuthorizeParams) -> Result<String, RedirectError> {
    let scopes = parse_scope(params.scope.as_deref().unwrap_or(""));
    if let Some(bad) = scopes
        .iter()
        .find(|s| !SUPPORTED_SCOPES.contains(&s.as_str()))
    {
        return Err(RedirectError::new(
            "invalid_scope",
            format!("unknown scope {bad}"),
        ));
    }
    if let Some(bad) = super::scopes::refused_for(app, &scopes) {
        return Err(RedirectError::new(
            "invalid_scope",
            format!("{bad} is only for the organization's own (first-party) applications"),
        ));
    }
    Ok(scopes.join(" "))
}

/// PKCE with S256, required unless a confidential client opted out by name.
fn code_challenge(
    app: &Application,
    params: &AuthorizeParams,
) -> Result<Option<String>, RedirectError> {
    let challenge = params.code_challenge.as_deref().filter(|s| !s.is_empty());
    let method = params
        .code_challenge_method
        .as_deref()
        .filter(|s| !s.is_empty());
    let code_challenge = match (challenge, method) {
        (None, None)
            if app.settings.warning_insecure_allow_no_pkce
                && app.client_type == ClientType::Confidential =>
        {
            None
        }
        (None, _) => {
            return Err(RedirectError::invalid_request(
                "code_challenge is required (PKCE with S256)",
            ));
        }
        (Some(_), Some("S256")) => challenge.map(str::to_string),
        // RFC 7636: a missing method means `plain`, which is refused like an explicit one.
        (Some(_), _) => {
            return Err(RedirectError::invalid_request(
                "code_challenge_method must be S256",
            ));
        }
    };
    if code_challenge.as_deref().is_some_and(|c| {
        c.len() != 43
            || !c
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }) {
        return Err(RedirectError::invalid_request(
            "code_challenge must be a base64url SHA-256 (43 characters)",
        ));
    }
    Ok(code_challenge)
}

/// `prompt`: none, login and consent; `none` stands alone.
fn prompt(params: &AuthorizeParams) -> Result<Prompt, RedirectError> {
    let mut prompt = Prompt::default();
    for value in params
        .prompt
        .as_deref()
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
    {
        match value {
            "none" => prompt.none = true,
            "login" => prompt.login = true,
            "consent" => prompt.consent = true,
            other => {
                return Err(RedirectError::invalid_request(format!(
                    "unsupported prompt value {other}"
                )));
            }
        }
    }
    if prompt.none && (prompt.login || prompt.consent) {
        return Err(RedirectError::invalid_request(
            "prompt=none cannot be combined with other values",
        ));
    }
    Ok(prompt)
}

fn max_age(params: &AuthorizeParams) -> Result<Option<i64>, RedirectError> {
    match params.max_age.as_deref().filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(raw) => match raw.parse::<i64>() {
            Ok(v) if v >= 0 => Ok(Some(v)),
            _ => Err(RedirectError::invalid_request(
                "max_age must be a non-negative integer",
            )),
        },
    }
}

/// What has to happen before a code can be issued.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Login,
    /// The session must prove a second factor first (or enrol one).
    SecondFactor,
    Consent,
    Issue,
    /// prompt=none, but interaction is needed.
    Fail(&'static str),
}

/// `resumed_from` is when a stored request began (None for a request arriving now): with prompt=login or
/// max_age, a sign-in after that moment satisfies the request, so a fresh request always goes to the login
/// page and a resumed one never loops back to it. `consent_just_given` likewise satisfies prompt=consent.
/// `mfa_required` is the organization's policy for this user; the application can also demand a second
/// factor with `acr_values` (see [`demands_mfa`]).
#[allow(clippy::too_many_arguments)]
pub fn next_step(
    req: &ValidRequest,
    session: Option<&Session>,
    mfa_required: bool,
    consented: Option<&str>,
    resumed_from: Option<i64>,
    consent_just_given: bool,
    now: i64,
) -> Step {
    let Some(session) = session else {
        return if req.prompt.none {
            Step::Fail("login_required")
        } else {
            Step::Login
        };
    };
    if req.prompt.login && resumed_from.is_none_or(|t| session.auth_time < t) {
        return Step::Login;
    }
    let signed_in_for_this_request = resumed_from.is_some_and(|t| session.auth_time >= t);
    if !signed_in_for_this_request && req.max_age.is_some_and(|max| now - session.auth_time > max) {
        return if req.prompt.none {
            Step::Fail("login_required")
        } else {
            Step::Login
        };
    }
    if (mfa_required || demands_mfa(req)) && session.acr.as_deref() != Some(ACR_MFA) {
        return if req.prompt.none {
            Step::Fail("interaction_required")
        } else {
            Step::SecondFactor
        };
    }
    let covered = consented.is_some_and(|granted| {
        parse_scope(&req.scope)
            .iter()
            .all(|s| has_scope(granted, s))
    });
    if !req.app.first_party && !consent_just_given && (req.prompt.consent || !covered) {
        return if req.prompt.none {
            Step::Fail("consent_required")
        } else {
            Step::Consent
        };
    }
    Step::Issue
}

/// Whether the application asked for multi-factor authentication (`acr_values` naming
/// [`ACR_MFA`]). `acr_values` lists acceptable values in order of preference; a password-only session is
/// acceptable only if the password value is listed too.
pub fn demands_mfa(req: &ValidRequest) -> bool {
    req.acr_values.iter().any(|v| v == ACR_MFA) && !req.acr_values.iter().any(|v| v == ACR_PASSWORD)
}

/// Adds `params` to a redirect URI's query, keeping what it already has.
pub fn redirect_with(redirect_uri: &str, params: &[(&str, &str)]) -> String {
    match Url::parse(redirect_uri) {
        Ok(mut url) => {
            {
                let mut query = url.query_pairs_mut();
                for (k, v) in params {
                    query.append_pair(k, v);
                }
            }
            url.to_string()
        }
        Err(_) => redirect_uri.to_string(),
    }
}

pub fn error_redirect(
    issuer: &str,
    redirect_uri: &str,
    state: Option<&str>,
    error: &str,
    description: &str,
) -> String {
    let mut params = vec![("error", error), ("error_description", description)];
    if let Some(state) = state {
        params.push(("state", state));
    }
    params.push(("iss", issuer));
    redirect_with(redirect_uri, &params)
}

/// Stores a request that must wait for sign-in or consent; returns its id for the browser to carry.
pub async fn save_pending(
    provider: &Provider,
    org: &Organization,
    params: &AuthorizeParams,
) -> Result<String, OAuthError> {
    let id = crypto::random_token();
    let now = provider.deps.now();
    let token = OneTimeToken {
        token_hash: provider.deps.secrets().token_hash(&id),
        org_id: org.id.clone(),
        user_id: None,
        purpose: PENDING_PURPOSE.into(),
        data: serde_json::to_string(params).unwrap_or_default(),
        attempts: 0,
        created_at: now,
        expires_at: now + PENDING_TTL_SECS,
        consumed_at: None,
    };
    provider
        .deps
        .db()
        .tenant(&org.id)
        .insert_one_time_token(&token)
        .await?;
    Ok(id)
}

/// A pending request that is still usable, with the time it was made.
pub async fn load_pending(
    provider: &Provider,
    org: &Organization,
    id: &str,
) -> Result<Option<(AuthorizeParams, i64)>, OAuthError> {
    let hash = provider.deps.secrets().token_hash(id);
    let Some(token) = provider
        .deps
        .db()
        .tenant(&org.id)
        .one_time_token(&hash, PENDING_PURPOSE)
        .await?
    else {
        return Ok(None);
    };
    if token.consumed_at.is_some() || token.expires_at <= provider.deps.now() {
        return Ok(None);
    }
    Ok(serde_json::from_str(&token.data)
        .ok()
        .map(|p| (p, token.created_at)))
}

/// Marks a pending request used; false if it already was (a replayed resume).
pub async fn finish_pending(
    provider: &Provider,
    org: &Organization,
    id: &str,
) -> Result<bool, OAuthError> {
    let hash = provider.deps.secrets().token_hash(id);
    Ok(provider
        .deps
        .db()
        .tenant(&org.id)
        .consume_one_time_token(&hash, PENDING_PURPOSE, provider.deps.now())
        .await?)
}

pub async fn record_consent(
    provider: &Provider,
    org: &Organization,
    req: &ValidRequest,
    user: &User,
    client: &ClientInfo,
) -> Result<(), OAuthError> {
    let previous = provider
        .deps
        .db()
        .tenant(&org.id)
        .consent_scope(&user.id, &req.app.id)
        .await?;
    let mut scopes = parse_scope(previous.as_deref().unwrap_or(""));
    for s in parse_scope(&req.scope) {
        if !scopes.contains(&s) {
            scopes.push(s);
        }
    }
    let scope = scopes.join(" ");
    let actor = Actor::user(&user.id, client.ip.clone(), client.user_agent.clone());
    let audit = NewAuditEvent::new(&org.id, &actor, Action::ConsentGranted)
        .target("application", &req.app.id)
        .change(
            previous.map(|p| json!({"scope": p})),
            Some(json!({"scope": scope})),
        );
    provider
        .deps
        .db()
        .tenant(&org.id)
        .save_consent(&user.id, &req.app.id, &scope, provider.deps.now(), &audit)
        .await?;
    Ok(())
}

/// Creates the grant and its code; returns the redirect back to the client.
pub async fn issue_code(
    provider: &Provider,
    org: &Organization,
    req: &ValidRequest,
    session: &Session,
    user: &User,
    client: &ClientInfo,
) -> Result<String, OAuthError> {
    let config = provider.deps.config();
    let now = provider.deps.now();
    let code = crypto::random_token();
    let grant = Grant {
        id: crate::kernel::GrantId::generate(),
        org_id: org.id.clone(),
        app_id: req.app.id.clone(),
        user_id: Some(user.id.clone()),
        session_id: Some(session.public_id.clone()),
        scope: req.scope.clone(),
        auth_time: Some(session.auth_time),
        amr: session.amr.clone(),
        acr: session.acr.clone(),
        session_version: user.session_version,
        created_at: now,
        expires_at: now + config.refresh_token_ttl_secs as i64,
        revoked_at: None,
        revoked_reason: None,
    };
    let record = AuthorizationCode {
        code_hash: provider.deps.secrets().token_hash(&code),
        grant_id: grant.id.clone(),
        redirect_uri: req.redirect_uri.clone(),
        nonce: req.nonce.clone(),
        code_challenge: req.code_challenge.clone(),
        created_at: now,
        expires_at: now + config.authorization_code_ttl_secs as i64,
        consumed_at: None,
    };
    let actor = Actor::user(&user.id, client.ip.clone(), client.user_agent.clone());
    let audit = NewAuditEvent::new(&org.id, &actor, Action::GrantCreated)
        .target("grant", &grant.id)
        .change(
            None,
            Some(json!({"client_id": req.app.client_id, "scope": grant.scope})),
        );
    provider
        .deps
        .db()
        .tenant(&org.id)
        .create_grant(&grant, Some(&record), &audit)
        .await?;
    let issuer = provider.issuer(org);
    let mut params = vec![("code", code.as_str())];
    if let Some(state) = &req.state {
        params.push(("state", state.as_str()));
    }
    params.push(("iss", issuer.as_str()));
    Ok(redirect_with(&req.redirect_uri, &params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_port_may_vary_for_native_apps() {
        assert!(loopback_match(
            "http://127.0.0.1/cb",
            "http://127.0.0.1:51234/cb"
        ));
        assert!(!loopback_match(
            "http://127.0.0.1/cb",
            "http://127.0.0.1:51234/other"
        ));
        assert!(!loopback_match(
            "https://app.example.com/cb",
            "https://app.example.com:444/cb"
        ));
        assert!(loopback_match("http://[::1]:80/cb", "http://[::1]:5000/cb"));
        for variant in [
            "http://127.0.0.1:5000/cb#frag",
            "http://user@127.0.0.1:5000/cb",
            "http://127.0.0.1:5000@evil.example/cb",
            "http://127.0.0.1:5000/x/../cb",
            "http://127.0.0.1:5000/x/%2e%2e/cb",
            "http://127.0.0.1:5000/%63b",
            "http://127.0.0.1:5000//cb",
            "http://127.0.0.1:0/cb",
            "http://127.0.0.1:05000/cb",
            "http://127.0.0.1:99999/cb",
            "http://127.0.0.1:/cb",
            "http://localhost:5000/cb",
            "HTTP://127.0.0.1:5000/cb",
            "http://[::1]:5000/cb",
        ] {
            assert!(!loopback_match("http://127.0.0.1/cb", variant), "{variant}");
        }
    }

    #[test]
    fn redirect_keeps_existing_query() {
        let url = redirect_with(
            "https://app.example.com/cb?x=1",
            &[("code", "abc"), ("state", "s t")],
        );
        assert_eq!(url, "https://app.example.com/cb?x=1&code=abc&state=s+t");
    }
}
