//! Validating access tokens (for introspection, RFC 7662, and UserInfo) and describing refresh tokens.
//!
//! An access token is active only if its signature and claims check out, its `jti` is not revoked, its
//! grant is not revoked, and (for user tokens) the user still exists, is enabled and has the same
//! session_version as when the token was issued.

use std::sync::Arc;

use serde::Serialize;

use super::OAuthError;
use super::claims::AccessClaims;
use super::jwt::{ACCESS_TOKEN_TYP, VerifiedJwt};
use super::provider::Provider;
use super::verified::{Verified, VerifiedTokens};
use crate::kernel::{ClientId, UserId};
use crate::model::orgs::Organization;
use crate::model::users::User;

pub struct ValidAccessToken {
    pub claims: Arc<AccessClaims>,
    pub user: Option<User>,
}

/// Checks an access token issued by `org`. `Ok(None)` means inactive, for whatever reason: the reason is
/// not disclosed to the caller.
pub async fn validate_access_token(
    provider: &Provider,
    org: &Organization,
    token: &str,
) -> Result<Option<ValidAccessToken>, OAuthError> {
    let deps = &provider.deps;
    let now = provider.deps.now();
    let Some(claims) = verified_claims(provider, org, token, now).await? else {
        return Ok(None);
    };
    let Some(jti) = &claims.jti else {
        return Ok(None);
    };
    if provider.is_revoked(jti).await? {
        return Ok(None);
    }
    if let Some(grant_id) = &claims.gid {
        match deps.db().tenant(&org.id).grant(grant_id).await? {
            Some(grant) if grant.revoked_at.is_none() => {}
            _ => return Ok(None),
        }
    }
    let mut user = None;
    if let Some(sv) = claims.sv {
        let sub = claims.sub.as_deref().unwrap_or_default();
        match deps
            .db()
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
) -> Result<Option<Arc<AccessClaims>>, OAuthError> {
    let cache_key = VerifiedTokens::key(&org.id, token);
    if let Some(hit) = provider.verified.get(&cache_key) {
        if hit.exp <= now {
            return Ok(None);
        }
        let keys = provider.keys.get(&provider.deps, &org.id).await?;
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
    let claims = AccessClaims::from_verified(claims);
    let Some(exp) = claims.exp else {
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

/// The RFC 7662 answer for an active refresh token. `client_id` is null should the application be gone.
#[derive(Debug, Serialize)]
pub struct RefreshTokenDescription {
    active: bool,
    token_type: &'static str,
    scope: String,
    client_id: Option<ClientId>,
    sub: Option<UserId>,
    exp: i64,
    iat: i64,
    iss: String,
}

/// What RFC 7662 says about a token.
pub enum Introspection {
    Inactive,
    /// An active access token: described by its own claims, serialized straight from the verified set.
    Access {
        claims: Arc<AccessClaims>,
        username: Option<String>,
    },
    /// An active refresh token's description.
    Refresh(RefreshTokenDescription),
}

impl Introspection {
    /// The client the token was issued to, when active.
    pub fn client_id(&self) -> Option<&str> {
        match self {
            Introspection::Inactive => None,
            Introspection::Access { claims, .. } => claims.client_id.as_deref(),
            Introspection::Refresh(description) => description.client_id.as_deref(),
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
                // RFC 7662 §2.2 plus OpenID's session claims; `sv` and `gid` are ours alone.
                let AccessClaims {
                    scope,
                    client_id,
                    sub,
                    aud,
                    iss,
                    exp,
                    iat,
                    jti,
                    auth_time,
                    acr,
                    amr,
                    sid,
                    sv: _,
                    gid: _,
                } = claims.as_ref();
                entry(&mut map, "scope", scope)?;
                entry(&mut map, "client_id", client_id)?;
                entry(&mut map, "sub", sub)?;
                entry(&mut map, "aud", aud)?;
                entry(&mut map, "iss", iss)?;
                entry(&mut map, "exp", exp)?;
                entry(&mut map, "iat", iat)?;
                entry(&mut map, "jti", jti)?;
                entry(&mut map, "auth_time", auth_time)?;
                entry(&mut map, "acr", acr)?;
                entry(&mut map, "amr", amr)?;
                entry(&mut map, "sid", sid)?;
                if let Some(username) = username {
                    map.serialize_entry("username", username)?;
                }
                map.end()
            }
        }
    }
}

/// Writes a claim that is present; an absent one is left out of the answer.
fn entry<M: serde::ser::SerializeMap, T: serde::Serialize>(
    map: &mut M,
    key: &'static str,
    value: &Option<T>,
) -> Result<(), M::Error> {
    match value {
        Some(value) => map.serialize_entry(key, value),
        None => Ok(()),
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
    let deps = &provider.deps;
    let now = provider.deps.now();
    let Some(stored) = deps
        .db()
        .tenant(&org.id)
        .refresh_token_by_hash(&deps.secrets().token_hash(token))
        .await?
    else {
        return Ok(None);
    };
    let Some(grant) = deps.db().tenant(&org.id).grant(&stored.grant_id).await? else {
        return Ok(None);
    };
    if stored.used_at.is_some() || grant.revoked_at.is_some() || stored.expires_at <= now {
        return Ok(Some(Introspection::Inactive));
    }
    let user = match &grant.user_id {
        Some(id) => deps.db().tenant(&org.id).user_by_id(id).await?,
        None => None,
    };
    if !user
        .as_ref()
        .is_some_and(|u| !u.disabled && u.session_version == grant.session_version)
    {
        return Ok(Some(Introspection::Inactive));
    }
    let app = deps
        .db()
        .tenant(&org.id)
        .list_apps()
        .await?
        .into_iter()
        .find(|a| a.id == grant.app_id);
    Ok(Some(Introspection::Refresh(RefreshTokenDescription {
        active: true,
        token_type: "refresh_token",
        scope: grant.scope,
        client_id: app.map(|a| a.client_id),
        sub: grant.user_id,
        exp: stored.expires_at,
        iat: stored.created_at,
        iss: provider.issuer(org),
    })))
}
