//! `refresh_token` (RFC 6749 §6): every use rotates the token; presenting a used one revokes the whole
//! grant, since only a thief or a confused client would.

use serde_json::json;

use super::issue::{self, Issue};
use super::{TokenRequest, TokenResponse};
use crate::audit::{Action, Actor, NewAuditEvent};
use crate::model::apps::Application;
use crate::model::orgs::Organization;
use crate::model::users::User;
use crate::oauth::provider::Provider;
use crate::oauth::records::Grant;
use crate::oauth::{OAuthError, has_scope, parse_scope};

#[derive(Debug, PartialEq, Eq)]
pub struct RefreshTokenGrant {
    pub refresh_token: String,
    /// A narrower scope than the grant's, if asked for (an empty one is not asking).
    pub scope: Option<String>,
}

impl RefreshTokenGrant {
    pub(super) fn from_form(form: TokenRequest) -> Result<Self, OAuthError> {
        let refresh_token = form
            .refresh_token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
        Ok(Self {
            refresh_token,
            scope: form.scope.filter(|s| !s.is_empty()),
        })
    }

    pub(super) async fn exchange(
        self,
        provider: &Provider,
        org: &Organization,
        app: &Application,
        actor: Actor,
    ) -> Result<TokenResponse, OAuthError> {
        let store = provider.deps.db().tenant(&org.id);
        let now = provider.deps.now();
        let hash = provider.deps.secrets().token_hash(&self.refresh_token);
        let (grant, user) = usable(provider, org, app, &actor, &hash, now).await?;
        let mut effective = grant.clone();
        if let Some(scope) = &self.scope {
            effective.scope = narrowed_scope(&grant.scope, scope)?;
        }
        let (new_token, record) = issue::new_refresh_token(provider, &grant, now);
        let audit = NewAuditEvent::new(&org.id, &actor, Action::TokenRefreshed)
            .target("grant", &grant.id)
            .change(
                None,
                Some(json!({"user_id": user.id, "scope": effective.scope})),
            );
        if !store
            .rotate_refresh_token(&hash, &record, now, &audit)
            .await?
        {
            issue::revoke_grant(provider, org, &grant, &actor, "refresh token reused").await?;
            return Err(invalid_refresh_token());
        }
        Issue {
            app,
            grant: &effective,
            user: Some(&user),
            nonce: None,
            refresh_token: Some(new_token),
            now,
        }
        .sign(provider, org)
        .await
    }
}

/// The grant and user of a stored refresh token, if this client may use it now. A token used before
/// revokes its grant.
async fn usable(
    provider: &Provider,
    org: &Organization,
    app: &Application,
    actor: &Actor,
    hash: &[u8],
    now: i64,
) -> Result<(Grant, User), OAuthError> {
    let store = provider.deps.db().tenant(&org.id);
    let stored = store
        .refresh_token_by_hash(hash)
        .await?
        .ok_or_else(invalid_refresh_token)?;
    let grant = store
        .grant(&stored.grant_id)
        .await?
        .ok_or_else(invalid_refresh_token)?;
    if grant.app_id != app.id {
        return Err(invalid_refresh_token());
    }
    if stored.used_at.is_some() {
        issue::revoke_grant(provider, org, &grant, actor, "refresh token reused").await?;
        return Err(invalid_refresh_token());
    }
    if grant.revoked_at.is_some() || stored.expires_at <= now || grant.expires_at <= now {
        return Err(invalid_refresh_token());
    }
    let user = issue::active_user(provider, &grant)
        .await?
        .ok_or_else(invalid_refresh_token)?;
    Ok((grant, user))
}

fn invalid_refresh_token() -> OAuthError {
    OAuthError::invalid_grant("the refresh token is invalid, expired or revoked")
}

/// A narrower scope may be requested; never a wider one (RFC 6749 §6).
fn narrowed_scope(granted: &str, requested: &str) -> Result<String, OAuthError> {
    let requested = parse_scope(requested);
    if requested.iter().any(|s| !has_scope(granted, s)) {
        return Err(OAuthError::invalid_scope(
            "the requested scope exceeds the original grant",
        ));
    }
    Ok(requested.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refresh_may_narrow_the_scope_but_never_widen_it() {
        assert_eq!(
            narrowed_scope("openid email", "email email").unwrap(),
            "email"
        );
        assert_eq!(
            narrowed_scope("openid email", "openid profile")
                .unwrap_err()
                .description,
            "the requested scope exceeds the original grant"
        );
    }
}
