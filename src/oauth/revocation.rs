//! RFC 7009 token revocation. A refresh token revokes its whole grant (and with it every access token
//! issued from that grant); an access token is added to the revoked list until it expires. Unknown or
//! foreign tokens are answered exactly like revoked ones: 200, nothing to say.

use serde_json::json;

use super::OAuthError;
use super::claims::AccessClaims;
use super::jwt::{ACCESS_TOKEN_TYP, VerifiedJwt};
use super::provider::Provider;
use super::token::revoke_grant;
use crate::audit::{Action, Actor, NewAuditEvent};
use crate::model::apps::Application;
use crate::model::orgs::Organization;

pub async fn revoke(
    provider: &Provider,
    org: &Organization,
    app: &Application,
    actor: &Actor,
    token: &str,
) -> Result<(), OAuthError> {
    let deps = &provider.deps;
    if token.is_empty() {
        return Err(OAuthError::invalid_request("token is required"));
    }
    // Refresh token?
    if let Some(stored) = deps
        .db()
        .tenant(&org.id)
        .refresh_token_by_hash(&deps.secrets().token_hash(token))
        .await?
    {
        if let Some(grant) = deps.db().tenant(&org.id).grant(&stored.grant_id).await?
            && grant.app_id == app.id
        {
            revoke_grant(provider, org, &grant, actor, "revoked by client").await?;
        }
        return Ok(());
    }
    // Access token? Only the client it was issued to may revoke it.
    let Ok(VerifiedJwt { claims, .. }) = provider
        .verify_jwt(org, token, ACCESS_TOKEN_TYP, provider.deps.now(), false)
        .await?
    else {
        return Ok(());
    };
    let claims = AccessClaims::from_verified(claims);
    if claims.client_id.as_deref() != Some(app.client_id.as_str()) {
        return Ok(());
    }
    let (Some(jti), Some(exp)) = (claims.jti.as_deref(), claims.exp) else {
        return Ok(());
    };
    let audit = NewAuditEvent::new(&org.id, actor, Action::TokenRevoked)
        .target("access_token", jti)
        .change(
            None,
            Some(json!({"sub": claims.sub, "client_id": app.client_id})),
        );
    deps.db()
        .tenant(&org.id)
        .revoke_access_token(jti, exp, &audit)
        .await?;
    provider.revoke_announced(jti).await;
    Ok(())
}
