//! Validating access tokens (for introspection, RFC 7662, and UserInfo) and describing refresh tokens.
//!
//! An access token is active only if its signature and claims check out, its `jti` is not revoked, its
//! grant is not revoked, and (for user tokens) the user still exists, is enabled and has the same
//! session_version as when the token was issued.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::OAuthError;
use super::jwt::{self, ACCESS_TOKEN_TYP};
use super::provider::Provider;
use super::verified::{Verified, VerifiedTokens};
use crate::orgs::Organization;
use crate::time_now;
use crate::users::User;

pub struct ValidAccessToken {
    pub claims: Arc<Map<String, Value>>,
    pub user: Option<User>,
}

/// Checks an access token issued by `org`. `Ok(None)` means inactive, for whatever reason: the reason is
/// not disclosed to the caller.
pub async fn validate_access_token(
    provider: &Provider,
    org: &Organization,
    token: &str,
) -> Result<Option<ValidAccessToken>, OAuthError> {
    let services = &provider.services;
    let now = time_now();
    let Some(claims) = verified_claims(provider, org, token, now).await? else {
        return Ok(None);
    };
    let Some(jti) = claims.get("jti").and_then(Value::as_str) else {
        return Ok(None);
    };
    if provider.is_revoked(jti) {
        return Ok(None);
    }
    if let Some(grant_id) = claims.get("gid").and_then(Value::as_str) {
        match services.store.grant(grant_id).await? {
            Some(grant) if grant.revoked_at.is_none() => {}
            _ => return Ok(None),
        }
    }
    let mut user = None;
    if let Some(sv) = claims.get("sv").and_then(Value::as_i64) {
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match services.store.user_by_id(sub).await? {
            Some(u) if u.org_id == org.id && !u.disabled && u.session_version == sv => {
                user = Some(u)
            }
            _ => return Ok(None),
        }
    }
    Ok(Some(ValidAccessToken { claims, user }))
}

/// The claims of `token` if its signature, `typ`, `iss` and times check out: from the verified-token
/// cache when this organization verified the same token before and its key is still published.
async fn verified_claims(
    provider: &Provider,
    org: &Organization,
    token: &str,
    now: i64,
) -> Result<Option<Arc<Map<String, Value>>>, OAuthError> {
    let services = &provider.services;
    let cache_key = VerifiedTokens::key(token);
    if let Some(hit) = provider.verified.get(&cache_key)
        && hit.org_id == org.id
    {
        if hit.exp <= now {
            return Ok(None);
        }
        let keys = provider.keys.get(services, &org.id).await?;
        if keys.verifiers.contains_key(&hit.kid) {
            return Ok(Some(hit.claims.clone()));
        }
    }
    let Some(kid) = jwt::peek_kid(token) else {
        return Ok(None);
    };
    let keys = provider.keys.get_with_kid(services, &org.id, &kid).await?;
    let Ok(claims) = jwt::verify(
        &keys,
        token,
        ACCESS_TOKEN_TYP,
        &provider.issuer(org),
        now,
        false,
    ) else {
        return Ok(None);
    };
    let Some(exp) = claims.get("exp").and_then(Value::as_i64) else {
        return Ok(None);
    };
    let claims = Arc::new(claims);
    provider.verified.put(
        cache_key,
        Verified {
            org_id: org.id.clone(),
            kid,
            exp,
            claims: claims.clone(),
        },
    );
    Ok(Some(claims))
}

/// The RFC 7662 response for `token`.
pub async fn introspect(
    provider: &Provider,
    org: &Organization,
    token: &str,
    hint: Option<&str>,
) -> Result<Value, OAuthError> {
    let inactive = json!({ "active": false });
    if token.is_empty() {
        return Ok(inactive);
    }
    // The hint only decides what to try first (RFC 7662 §2.1).
    let refresh_first = hint == Some("refresh_token");
    if refresh_first && let Some(v) = describe_refresh_token(provider, org, token).await? {
        return Ok(v);
    }
    if let Some(valid) = validate_access_token(provider, org, token).await? {
        let mut out = Map::new();
        out.insert("active".into(), json!(true));
        out.insert("token_type".into(), json!("Bearer"));
        for key in [
            "scope",
            "client_id",
            "sub",
            "aud",
            "iss",
            "exp",
            "iat",
            "jti",
            "auth_time",
            "acr",
            "amr",
            "sid",
        ] {
            if let Some(v) = valid.claims.get(key) {
                out.insert(key.into(), v.clone());
            }
        }
        if let Some(user) = &valid.user {
            out.insert("username".into(), json!(user.email));
        }
        return Ok(Value::Object(out));
    }
    if !refresh_first && let Some(v) = describe_refresh_token(provider, org, token).await? {
        return Ok(v);
    }
    Ok(inactive)
}

async fn describe_refresh_token(
    provider: &Provider,
    org: &Organization,
    token: &str,
) -> Result<Option<Value>, OAuthError> {
    let services = &provider.services;
    let now = time_now();
    let Some(stored) = services
        .store
        .refresh_token_by_hash(&services.secrets.token_hash(token))
        .await?
    else {
        return Ok(None);
    };
    let Some(grant) = services.store.grant(&stored.grant_id).await? else {
        return Ok(None);
    };
    if grant.org_id != org.id
        || stored.used_at.is_some()
        || grant.revoked_at.is_some()
        || stored.expires_at <= now
    {
        return Ok(Some(json!({ "active": false })));
    }
    let user = match &grant.user_id {
        Some(id) => services.store.user_by_id(id).await?,
        None => None,
    };
    if !user
        .as_ref()
        .is_some_and(|u| !u.disabled && u.session_version == grant.session_version)
    {
        return Ok(Some(json!({ "active": false })));
    }
    let app = services
        .store
        .list_apps(&org.id)
        .await?
        .into_iter()
        .find(|a| a.id == grant.app_id);
    Ok(Some(json!({
        "active": true,
        "token_type": "refresh_token",
        "scope": grant.scope,
        "client_id": app.map(|a| a.client_id),
        "sub": grant.user_id,
        "exp": stored.expires_at,
        "iat": stored.created_at,
        "iss": provider.issuer(org),
    })))
}
