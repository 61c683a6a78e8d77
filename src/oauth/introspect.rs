//! Validating access tokens (for introspection, RFC 7662, and UserInfo) and describing refresh tokens.
//!
//! An access token is active only if its signature and claims check out, its `jti` is not revoked, its
//! grant is not revoked, and (for user tokens) the user still exists, is enabled and has the same
//! session_version as when the token was issued.

use crate::kernel::{GrantId, UserId};
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::OAuthError;
use super::jwt::{ACCESS_TOKEN_TYP, VerifiedJwt};
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
    if provider.is_revoked(jti).await? {
        return Ok(None);
    }
    if let Some(grant_id) = claims.get("gid").and_then(Value::as_str) {
        match services
            .db
            .tenant(&org.id)
            .grant(&GrantId::from(grant_id))
            .await?
        {
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
        match services
            .db
            .tenant(&org.id)
            .user_by_id(&UserId::from(sub))
            .await?
        {
            Some(u) if !u.disabled && u.session_version == sv => user = Some(u),
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
    let cache_key = VerifiedTokens::key(&org.id, token);
    if let Some(hit) = provider.verified.get(&cache_key) {
        if hit.exp <= now {
            return Ok(None);
        }
        let keys = provider.keys.get(&provider.services, &org.id).await?;
        if keys.verifiers.contains_key(&hit.kid) {
            return Ok(Some(hit.claims.clone()));
        }
    }
    let Ok(VerifiedJwt { claims, kid }) = provider
        .verify_jwt(org, token, ACCESS_TOKEN_TYP, now, false)
        .await?
    else {
        return Ok(None);
    };
    let Some(exp) = claims.get("exp").and_then(Value::as_i64) else {
        return Ok(None);
    };
    let claims = Arc::new(claims);
    provider.verified.put(
        cache_key,
        Verified {
            kid,
            exp,
            claims: claims.clone(),
        },
    );
    Ok(Some(claims))
}

/// What RFC 7662 says about a token.
pub enum Introspection {
    Inactive,
    /// An active access token: described by its own claims, serialized straight from the verified set.
    Access {
        claims: Arc<Map<String, Value>>,
        username: Option<String>,
    },
    /// An active refresh token's description.
    Refresh(Value),
}

/// The claims an active access token's answer carries (RFC 7662 §2.2 plus OpenID's session claims).
const DESCRIBED_CLAIMS: [&str; 12] = [
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
];

impl Introspection {
    /// The client the token was issued to, when active.
    pub fn client_id(&self) -> Option<&str> {
        match self {
            Introspection::Inactive => None,
            Introspection::Access { claims, .. } => claims.get("client_id")?.as_str(),
            Introspection::Refresh(v) => v.get("client_id")?.as_str(),
        }
    }
}

impl serde::Serialize for Introspection {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Introspection::Inactive => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("active", &false)?;
                map.end()
            }
            Introspection::Refresh(v) => v.serialize(serializer),
            Introspection::Access { claims, username } => {
                let mut map = serializer.serialize_map(None)?;
                map.serialize_entry("active", &true)?;
                map.serialize_entry("token_type", "Bearer")?;
                for key in DESCRIBED_CLAIMS {
                    if let Some(v) = claims.get(key) {
                        map.serialize_entry(key, v)?;
                    }
                }
                if let Some(username) = username {
                    map.serialize_entry("username", username)?;
                }
                map.end()
            }
        }
    }
}

/// The RFC 7662 answer for `token`.
pub async fn introspect(
    provider: &Provider,
    org: &Organization,
    token: &str,
    hint: Option<&str>,
) -> Result<Introspection, OAuthError> {
    if token.is_empty() {
        return Ok(Introspection::Inactive);
    }
    // The hint only decides what to try first (RFC 7662 §2.1).
    let refresh_first = hint == Some("refresh_token");
    if refresh_first && let Some(v) = describe_refresh_token(provider, org, token).await? {
        return Ok(v);
    }
    if let Some(valid) = validate_access_token(provider, org, token).await? {
        return Ok(Introspection::Access {
            claims: valid.claims,
            username: valid.user.map(|u| u.email),
        });
    }
    if !refresh_first && let Some(v) = describe_refresh_token(provider, org, token).await? {
        return Ok(v);
    }
    Ok(Introspection::Inactive)
}

async fn describe_refresh_token(
    provider: &Provider,
    org: &Organization,
    token: &str,
) -> Result<Option<Introspection>, OAuthError> {
    let services = &provider.services;
    let now = time_now();
    let Some(stored) = services
        .db
        .tenant(&org.id)
        .refresh_token_by_hash(&services.secrets.token_hash(token))
        .await?
    else {
        return Ok(None);
    };
    let Some(grant) = services.db.tenant(&org.id).grant(&stored.grant_id).await? else {
        return Ok(None);
    };
    if stored.used_at.is_some() || grant.revoked_at.is_some() || stored.expires_at <= now {
        return Ok(Some(Introspection::Inactive));
    }
    let user = match &grant.user_id {
        Some(id) => services.db.tenant(&org.id).user_by_id(id).await?,
        None => None,
    };
    if !user
        .as_ref()
        .is_some_and(|u| !u.disabled && u.session_version == grant.session_version)
    {
        return Ok(Some(Introspection::Inactive));
    }
    let app = services
        .db
        .tenant(&org.id)
        .list_apps()
        .await?
        .into_iter()
        .find(|a| a.id == grant.app_id);
    Ok(Some(Introspection::Refresh(json!({
        "active": true,
        "token_type": "refresh_token",
        "scope": grant.scope,
        "client_id": app.map(|a| a.client_id),
        "sub": grant.user_id,
        "exp": stored.expires_at,
        "iat": stored.created_at,
        "iss": provider.issuer(org),
    }))))
}
