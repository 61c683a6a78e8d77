//! What the grants share: signing the access and ID tokens, minting refresh tokens, checking the grant's
//! user, and revoking a grant.

use serde_json::json;

use super::TokenResponse;
use crate::audit::{Action, Actor, NewAuditEvent};
use crate::crypto;
use crate::model::apps::{Application, GrantType};
use crate::model::orgs::Organization;
use crate::model::users::User;
use crate::oauth::claims::{AccessClaims, IdClaims, UserClaims};
use crate::oauth::provider::Provider;
use crate::oauth::records::{Grant, RefreshToken};
use crate::oauth::{OAuthError, at_hash, has_scope, jwt};

/// Who the client is acting for, as far as audit entries are concerned.
pub(super) fn client_actor(
    app: &Application,
    ip: Option<String>,
    user_agent: Option<String>,
) -> Actor {
    Actor::client(&app.client_id, ip, user_agent)
}

/// The grant's user, if still allowed to hold tokens from it: present, enabled, and no session_version bump
/// since the grant was made.
pub(super) async fn active_user(
    provider: &Provider,
    grant: &Grant,
) -> Result<Option<User>, OAuthError> {
    let Some(user_id) = &grant.user_id else {
        return Ok(None);
    };
    let user = provider
        .deps
        .db()
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
        "refresh token reused" => Action::TokenRefreshReuseDetected,
        "authorization code reused" => Action::TokenCodeReuseDetected,
        _ => Action::GrantRevoked,
    };
    let audit = NewAuditEvent::new(&org.id, actor, action)
        .target("grant", &grant.id)
        .change(
            None,
            Some(json!({"reason": reason, "user_id": grant.user_id})),
        );
    let revoked = provider
        .deps
        .db()
        .tenant(&org.id)
        .revoke_grant(&grant.id, provider.deps.now(), reason, &audit)
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

/// A new refresh token for `grant`, when the client may refresh and the scope asks for one.
pub(super) fn refresh_token_if_wanted(
    provider: &Provider,
    app: &Application,
    grant: &Grant,
    now: i64,
) -> Option<(String, RefreshToken)> {
    wants_refresh_token(app, &grant.scope).then(|| new_refresh_token(provider, grant, now))
}

/// A refresh token and the record that stores only its hash.
pub(super) fn new_refresh_token(
    provider: &Provider,
    grant: &Grant,
    now: i64,
) -> (String, RefreshToken) {
    let token = crypto::random_token();
    let record = RefreshToken {
        token_hash: provider.deps.secrets().token_hash(&token),
        grant_id: grant.id.clone(),
        created_at: now,
        expires_at: grant.expires_at,
        used_at: None,
    };
    (token, record)
}

/// The tokens one successful grant answers with.
pub(super) struct Issue<'a> {
    pub app: &'a Application,
    /// The grant as it applies to this answer (a refresh may have narrowed its scope).
    pub grant: &'a Grant,
    pub user: Option<&'a User>,
    pub nonce: Option<&'a str>,
    pub refresh_token: Option<String>,
    pub now: i64,
}

impl Issue<'_> {
    /// Signs the access token, and the ID token when a user granted `openid`.
    pub async fn sign(
        self,
        provider: &Provider,
        org: &Organization,
    ) -> Result<TokenResponse, OAuthError> {
        let alg = self.app.settings.signing_alg.as_str();
        let keys = provider
            .keys
            .get_for_alg(&provider.deps, &org.id, alg)
            .await?;
        let issuer = provider.issuer(org);
        let access_claims =
            self.access_claims(&issuer, provider.deps.config().access_token_ttl_secs);
        let access_token = jwt::sign(&keys, alg, jwt::ACCESS_TOKEN_TYP, &access_claims)?;
        let id_token = match self.user {
            Some(user) if has_scope(&self.grant.scope, "openid") => {
                let ttl = provider.deps.config().id_token_ttl_secs;
                let claims = self.id_claims(&issuer, user, ttl, at_hash(alg, &access_token));
                Some(jwt::sign(&keys, alg, jwt::ID_TOKEN_TYP, &claims)?)
            }
            _ => None,
        };
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: provider.deps.config().access_token_ttl_secs,
            refresh_token: self.refresh_token,
            id_token,
            scope: self.grant.scope.clone(),
        })
    }

    fn access_claims(&self, issuer: &str, ttl: u64) -> AccessClaims {
        let (grant, client_id) = (self.grant, &self.app.client_id);
        let sub = self
            .user
            .map_or(client_id.to_string(), |u| u.id.to_string());
        let mut claims = AccessClaims {
            iss: Some(issuer.to_string()),
            sub: Some(sub),
            aud: Some(client_id.to_string()),
            client_id: Some(client_id.clone()),
            iat: Some(self.now),
            exp: Some(self.now + ttl as i64),
            jti: Some(crypto::random_id("at")),
            scope: Some(grant.scope.clone()),
            ..AccessClaims::default()
        };
        if let Some(user) = self.user {
            claims.sv = Some(user.session_version);
            claims.gid = Some(grant.id.clone());
            claims.auth_time = grant.auth_time;
            claims.acr = grant.acr.clone();
            claims.amr = (!grant.amr.is_empty()).then(|| grant.amr.clone());
            claims.sid = grant.session_id.clone();
        }
        claims
    }

    fn id_claims<'a>(
        &'a self,
        issuer: &'a str,
        user: &'a User,
        ttl: u64,
        at_hash: String,
    ) -> IdClaims<'a> {
        let grant = self.grant;
        IdClaims {
            iss: issuer,
            sub: &user.id,
            aud: &self.app.client_id,
            azp: &self.app.client_id,
            iat: self.now,
            exp: self.now + ttl as i64,
            auth_time: grant.auth_time,
            nonce: self.nonce,
            amr: &grant.amr,
            acr: grant.acr.as_deref(),
            sid: grant.session_id.as_deref(),
            at_hash,
            user: UserClaims::released(user, &grant.scope),
        }
    }
}
