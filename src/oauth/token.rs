//! The token endpoint: `authorization_code` (with PKCE), `refresh_token` (rotated, reuse revokes the whole
//! grant) and `client_credentials`. Issues RFC 9068 access tokens and OpenID Connect ID tokens.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::provider::Provider;
use super::records::{Grant, RefreshToken};
use super::{OAuthError, at_hash, has_scope, jwt, parse_scope, s256};
use crate::apps::{Application, ClientType, GrantType};
use crate::audit::{Actor, NewAuditEvent};
use crate::orgs::Organization;
use crate::users::User;
use crate::{crypto, time_now};

/// The token endpoint's form parameters (RFC 6749 §4.1.3, §6, §4.4).
#[derive(Debug, Default, serde::Deserialize)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub refresh_token: Option<String>,
    pub scope: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    pub scope: String,
}

/// Who the client is acting for, as far as audit entries are concerned.
fn client_actor(app: &Application, ip: Option<String>, user_agent: Option<String>) -> Actor {
    Actor {
        actor_type: "client".into(),
        id: Some(app.client_id.to_string()),
        role: None,
        ip,
        user_agent,
    }
}

pub struct RequestMeta {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

pub async fn exchange(
    provider: &Provider,
    org: &Organization,
    app: &Application,
    request: TokenRequest,
    meta: RequestMeta,
) -> Result<TokenResponse, OAuthError> {
    let grant_type = request.grant_type.as_deref().filter(|g| !g.is_empty());
    let grant_type =
        grant_type.ok_or_else(|| OAuthError::invalid_request("grant_type is required"))?;
    let grant = GrantType::parse(grant_type).ok_or_else(|| {
        OAuthError::unsupported_grant_type(format!("{grant_type} is not supported"))
    })?;
    if !app.allows(grant) {
        return Err(OAuthError::unauthorized_client(format!(
            "this client may not use {grant_type}"
        )));
    }
    let actor = client_actor(app, meta.ip, meta.user_agent);
    match grant {
        GrantType::AuthorizationCode => {
            authorization_code(provider, org, app, request, actor).await
        }
        GrantType::RefreshToken => refresh(provider, org, app, request, actor).await,
        GrantType::ClientCredentials => {
            client_credentials(provider, org, app, request, actor).await
        }
    }
}

async fn authorization_code(
    provider: &Provider,
    org: &Organization,
    app: &Application,
    request: TokenRequest,
    actor: Actor,
) -> Result<TokenResponse, OAuthError> {
    let services = &provider.services;
    let code = request
        .code
        .filter(|c| !c.is_empty())
        .ok_or_else(|| OAuthError::invalid_request("code is required"))?;
    let redirect_uri = request
        .redirect_uri
        .ok_or_else(|| OAuthError::invalid_request("redirect_uri is required"))?;
    let now = time_now();
    let code_hash = services.secrets.token_hash(&code);
    let invalid =
        || OAuthError::invalid_grant("the authorization code is invalid, expired or already used");
    let stored = services
        .db
        .tenant(&org.id)
        .code_by_hash(&code_hash)
        .await?
        .ok_or_else(invalid)?;
    let grant = services
        .db
        .tenant(&org.id)
        .grant(&stored.grant_id)
        .await?
        .ok_or_else(invalid)?;
    if grant.app_id != app.id {
        return Err(invalid());
    }
    if stored.consumed_at.is_some() {
        // RFC 6749 §4.1.2: a replayed code revokes everything issued from it.
        revoke_grant(provider, org, &grant, &actor, "authorization code reused").await?;
        return Err(invalid());
    }
    if stored.expires_at <= now || grant.revoked_at.is_some() {
        return Err(invalid());
    }
    if stored.redirect_uri != redirect_uri {
        return Err(OAuthError::invalid_grant(
            "redirect_uri does not match the authorization request",
        ));
    }
    match (&stored.code_challenge, request.code_verifier.as_deref()) {
        (Some(challenge), Some(verifier)) => {
            if !valid_verifier(verifier)
                || !crypto::constant_time_eq(s256(verifier).as_bytes(), challenge.as_bytes())
            {
                return Err(OAuthError::invalid_grant(
                    "code_verifier does not match the code_challenge",
                ));
            }
        }
        (Some(_), None) => return Err(OAuthError::invalid_grant("code_verifier is required")),
        (None, Some(_)) => {
            return Err(OAuthError::invalid_grant(
                "no code_challenge was sent for this code",
            ));
        }
        (None, None) => {}
    }
    let user = active_user(provider, &grant).await?.ok_or_else(invalid)?;

    let refresh = issue_refresh_token(provider, app, &grant, now);
    let audit = NewAuditEvent::new(&org.id, &actor, "token.issued")
        .target("grant", &grant.id)
        .change(None, Some(json!({"grant_type": "authorization_code", "user_id": user.id, "scope": grant.scope})));
    let redeemed = services
        .db
        .tenant(&org.id)
        .redeem_code(
            &code_hash,
            now,
            refresh.as_ref().map(|(_, record)| record),
            &audit,
        )
        .await?;
    if !redeemed {
        // Lost a race with another redemption of the same code: that is a replay too.
        revoke_grant(provider, org, &grant, &actor, "authorization code reused").await?;
        return Err(invalid());
    }
    respond(
        provider,
        org,
        app,
        &grant,
        Some(&user),
        stored.nonce.as_deref(),
        refresh.map(|(token, _)| token),
        now,
    )
    .await
}

/// RFC 7636 §4.1: 43 to 128 characters of [A-Z a-z 0-9 - . _ ~].
fn valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

async fn refresh(
    provider: &Provider,
    org: &Organization,
    app: &Application,
    request: TokenRequest,
    actor: Actor,
) -> Result<TokenResponse, OAuthError> {
    let services = &provider.services;
    let presented = request
        .refresh_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
    let now = time_now();
    let invalid = || OAuthError::invalid_grant("the refresh token is invalid, expired or revoked");
    let hash = services.secrets.token_hash(&presented);
    let stored = services
        .db
        .tenant(&org.id)
        .refresh_token_by_hash(&hash)
        .await?
        .ok_or_else(invalid)?;
    let grant = services
        .db
        .tenant(&org.id)
        .grant(&stored.grant_id)
        .await?
        .ok_or_else(invalid)?;
    if grant.app_id != app.id {
        return Err(invalid());
    }
    if stored.used_at.is_some() {
        revoke_grant(provider, org, &grant, &actor, "refresh token reused").await?;
        return Err(invalid());
    }
    if grant.revoked_at.is_some() || stored.expires_at <= now || grant.expires_at <= now {
        return Err(invalid());
    }
    let user = active_user(provider, &grant).await?.ok_or_else(invalid)?;
    // A narrower scope may be requested; never a wider one (RFC 6749 §6).
    let mut effective = grant.clone();
    if let Some(scope) = request.scope.as_deref().filter(|s| !s.is_empty()) {
        let requested = parse_scope(scope);
        if requested.iter().any(|s| !has_scope(&grant.scope, s)) {
            return Err(OAuthError::invalid_scope(
                "the requested scope exceeds the original grant",
            ));
        }
        effective.scope = requested.join(" ");
    }
    let (new_token, record) = new_refresh_token(provider, &grant, now);
    let audit = NewAuditEvent::new(&org.id, &actor, "token.refreshed")
        .target("grant", &grant.id)
        .change(
            None,
            Some(json!({"user_id": user.id, "scope": effective.scope})),
        );
    if !services
        .db
        .tenant(&org.id)
        .rotate_refresh_token(&hash, &record, now, &audit)
        .await?
    {
        revoke_grant(provider, org, &grant, &actor, "refresh token reused").await?;
        return Err(invalid());
    }
    respond(
        provider,
        org,
        app,
        &effective,
        Some(&user),
        None,
        Some(new_token),
        now,
    )
    .await
}

async fn client_credentials(
    provider: &Provider,
    org: &Organization,
    app: &Application,
    request: TokenRequest,
    actor: Actor,
) -> Result<TokenResponse, OAuthError> {
    if app.client_type != ClientType::Confidential {
        return Err(OAuthError::unauthorized_client(
            "public clients cannot use client_credentials",
        ));
    }
    let scope = parse_scope(request.scope.as_deref().unwrap_or(""));
    if let Some(bad) = scope.iter().find(|s| {
        matches!(
            s.as_str(),
            "openid" | "offline_access" | "profile" | "email" | super::scopes::SESSIONS
        )
    }) {
        return Err(OAuthError::invalid_scope(format!(
            "{bad} needs a user; client_credentials has none"
        )));
    }
    if let Some(bad) = scope.first() {
        return Err(OAuthError::invalid_scope(format!("unknown scope {bad}")));
    }
    let now = time_now();
    let grant = Grant {
        id: crate::kernel::GrantId::generate(),
        org_id: org.id.clone(),
        app_id: app.id.clone(),
        user_id: None,
        session_id: None,
        scope: String::new(),
        auth_time: None,
        amr: vec![],
        acr: None,
        session_version: 0,
        created_at: now,
        expires_at: now + provider.services.config.access_token_ttl_secs as i64,
        revoked_at: None,
        revoked_reason: None,
    };
    let response = respond(provider, org, app, &grant, None, None, None, now).await?;
    // Client-credentials tokens are stateless; the audit entry is their only record. Group commit keeps
    // this cheap, and the answer waits for it so no issued token is missing from the log.
    let audit = NewAuditEvent::new(&org.id, &actor, "token.issued")
        .target("application", &app.id)
        .change(None, Some(json!({"grant_type": "client_credentials"})));
    provider.audit.record(audit).await?;
    Ok(response)
}

/// The grant's user, if still allowed to hold tokens from it: present, enabled, and no session_version bump
/// since the grant was made.
async fn active_user(provider: &Provider, grant: &Grant) -> Result<Option<User>, OAuthError> {
    let Some(user_id) = &grant.user_id else {
        return Ok(None);
    };
    let user = provider
        .services
        .db
        .tenant(&grant.org_id)
        .user_by_id(user_id)
        .await?;
    Ok(user.filter(|u| !u.disabled && u.session_version == grant.session_version))
}

pub async fn revoke_grant(
    provider: &Provider,
    org: &Organization,
    grant: &Grant,
    actor: &Actor,
    reason: &str,
) -> Result<(), OAuthError> {
    let action = match reason {
        "refresh token reused" => "token.refresh_reuse_detected",
        "authorization code reused" => "token.code_reuse_detected",
        _ => "grant.revoked",
    };
    let audit = NewAuditEvent::new(&org.id, actor, action)
        .target("grant", &grant.id)
        .change(
            None,
            Some(json!({"reason": reason, "user_id": grant.user_id})),
        );
    let revoked = provider
        .services
        .db
        .tenant(&org.id)
        .revoke_grant(&grant.id, time_now(), reason, &audit)
        .await?;
    if revoked {
        tracing::warn!(org = %org.slug, grant = %grant.id, reason, "grant revoked");
    }
    Ok(())
}

fn wants_refresh_token(app: &Application, scope: &str) -> bool {
    app.allows(GrantType::RefreshToken)
        && (has_scope(scope, "offline_access") || app.settings.refresh_without_offline_access)
}

fn issue_refresh_token(
    provider: &Provider,
    app: &Application,
    grant: &Grant,
    now: i64,
) -> Option<(String, RefreshToken)> {
    wants_refresh_token(app, &grant.scope).then(|| new_refresh_token(provider, grant, now))
}

fn new_refresh_token(provider: &Provider, grant: &Grant, now: i64) -> (String, RefreshToken) {
    let token = crypto::random_token();
    let record = RefreshToken {
        token_hash: provider.services.secrets.token_hash(&token),
        grant_id: grant.id.clone(),
        created_at: now,
        expires_at: grant.expires_at,
        used_at: None,
    };
    (token, record)
}

#[allow(clippy::too_many_arguments)]
async fn respond(
    provider: &Provider,
    org: &Organization,
    app: &Application,
    grant: &Grant,
    user: Option<&User>,
    nonce: Option<&str>,
    refresh_token: Option<String>,
    now: i64,
) -> Result<TokenResponse, OAuthError> {
    let config = &provider.services.config;
    let issuer = provider.issuer(org);
    let alg = app.settings.signing_alg.as_str();
    let keys = provider
        .keys
        .get_for_alg(&provider.services, &org.id, alg)
        .await?;
    let ttl = config.access_token_ttl_secs;

    let mut claims = Map::new();
    claims.insert("iss".into(), json!(issuer));
    claims.insert(
        "sub".into(),
        json!(user.map(|u| u.id.as_str()).unwrap_or(&app.client_id)),
    );
    claims.insert("aud".into(), json!(app.client_id));
    claims.insert("client_id".into(), json!(app.client_id));
    claims.insert("iat".into(), json!(now));
    claims.insert("exp".into(), json!(now + ttl as i64));
    claims.insert("jti".into(), json!(crypto::random_id("at")));
    claims.insert("scope".into(), json!(grant.scope));
    if let Some(user) = user {
        claims.insert("sv".into(), json!(user.session_version));
        // The grant id lets introspection refuse tokens of a revoked grant at once.
        claims.insert("gid".into(), json!(grant.id));
        if let Some(auth_time) = grant.auth_time {
            claims.insert("auth_time".into(), json!(auth_time));
        }
        if let Some(acr) = &grant.acr {
            claims.insert("acr".into(), json!(acr));
        }
        if !grant.amr.is_empty() {
            claims.insert("amr".into(), json!(grant.amr));
        }
        if let Some(sid) = &grant.session_id {
            claims.insert("sid".into(), json!(sid));
        }
    }
    let access_token = jwt::sign(&keys, alg, jwt::ACCESS_TOKEN_TYP, claims)?;

    let id_token = match user {
        Some(user) if has_scope(&grant.scope, "openid") => {
            let mut id = Map::new();
            id.insert("iss".into(), json!(issuer));
            id.insert("sub".into(), json!(user.id));
            id.insert("aud".into(), json!(app.client_id));
            id.insert("azp".into(), json!(app.client_id));
            id.insert("iat".into(), json!(now));
            id.insert("exp".into(), json!(now + config.id_token_ttl_secs as i64));
            if let Some(auth_time) = grant.auth_time {
                id.insert("auth_time".into(), json!(auth_time));
            }
            if let Some(nonce) = nonce {
                id.insert("nonce".into(), json!(nonce));
            }
            if !grant.amr.is_empty() {
                id.insert("amr".into(), json!(grant.amr));
            }
            if let Some(acr) = &grant.acr {
                id.insert("acr".into(), json!(acr));
            }
            if let Some(sid) = &grant.session_id {
                id.insert("sid".into(), json!(sid));
            }
            id.insert("at_hash".into(), json!(at_hash(alg, &access_token)));
            for (k, v) in user_claims(user, &grant.scope) {
                id.insert(k.into(), v);
            }
            Some(jwt::sign(&keys, alg, jwt::ID_TOKEN_TYP, id)?)
        }
        _ => None,
    };
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: ttl,
        refresh_token,
        id_token,
        scope: grant.scope.clone(),
    })
}

/// Standard claims released for the granted scopes (OpenID Connect Core §5.4).
pub fn user_claims(user: &User, scope: &str) -> BTreeMap<&'static str, Value> {
    let mut claims = BTreeMap::new();
    if has_scope(scope, "email") {
        claims.insert("email", json!(user.email));
        claims.insert("email_verified", json!(user.email_verified));
    }
    if has_scope(scope, "profile") {
        if let Some(name) = &user.name {
            claims.insert("name", json!(name));
        }
        claims.insert("updated_at", json!(user.updated_at));
    }
    claims
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_format() {
        assert!(valid_verifier(&"a".repeat(43)));
        assert!(!valid_verifier(&"a".repeat(42)));
        assert!(!valid_verifier(&"a".repeat(129)));
        assert!(!valid_verifier(&format!("{}+", "a".repeat(43))));
    }
}
