//! `authorization_code` (RFC 6749 §4.1.3) with PKCE (RFC 7636): a code is redeemed once; a replay
//! revokes everything issued from it.

use serde_json::json;

use super::issue::{self, Issue};
use super::{TokenRequest, TokenResponse};
use crate::audit::{Action, Actor, NewAuditEvent};
use crate::crypto;
use crate::model::apps::Application;
use crate::model::orgs::Organization;
use crate::model::users::User;
use crate::oauth::provider::Provider;
use crate::oauth::records::{AuthorizationCode, Grant};
use crate::oauth::{OAuthError, s256};

#[derive(Debug, PartialEq, Eq)]
pub struct AuthorizationCodeGrant {
    pub code: String,
    /// Compared as sent with the one of the authorization request (which may be empty).
    pub redirect_uri: String,
    pub code_verifier: Option<String>,
}

impl AuthorizationCodeGrant {
    pub(super) fn from_form(form: TokenRequest) -> Result<Self, OAuthError> {
        let code = form
            .code
            .filter(|c| !c.is_empty())
            .ok_or_else(|| OAuthError::invalid_request("code is required"))?;
        let redirect_uri = form
            .redirect_uri
            .ok_or_else(|| OAuthError::invalid_request("redirect_uri is required"))?;
        Ok(Self {
            code,
            redirect_uri,
            code_verifier: form.code_verifier,
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
        let code_hash = provider.deps.secrets().token_hash(&self.code);
        let (stored, grant, user) = self
            .redeemable(provider, org, app, &actor, &code_hash, now)
            .await?;
        let refresh = issue::refresh_token_if_wanted(provider, app, &grant, now);
        let audit = NewAuditEvent::new(&org.id, &actor, Action::TokenIssued)
            .target("grant", &grant.id)
            .change(None, Some(json!({"grant_type": "authorization_code", "user_id": user.id, "scope": grant.scope})));
        let record = refresh.as_ref().map(|(_, record)| record);
        if !store.redeem_code(&code_hash, now, record, &audit).await? {
            // Lost a race with another redemption of the same code: that is a replay too.
            issue::revoke_grant(provider, org, &grant, &actor, "authorization code reused").await?;
            return Err(invalid_code());
        }
        Issue {
            app,
            grant: &grant,
            user: Some(&user),
            nonce: stored.nonce.as_deref(),
            refresh_token: refresh.map(|(token, _)| token),
            now,
        }
        .sign(provider, org)
        .await
    }

    /// The stored code, its grant and user, if this client may redeem it now with this redirect URI and
    /// verifier. A code seen before revokes its grant.
    async fn redeemable(
        &self,
        provider: &Provider,
        org: &Organization,
        app: &Application,
        actor: &Actor,
        code_hash: &[u8],
        now: i64,
    ) -> Result<(AuthorizationCode, Grant, User), OAuthError> {
        let store = provider.deps.db().tenant(&org.id);
        let stored = store
            .code_by_hash(code_hash)
            .await?
            .ok_or_else(invalid_code)?;
        let grant = store
            .grant(&stored.grant_id)
            .await?
            .ok_or_else(invalid_code)?;
        if grant.app_id != app.id {
            return Err(invalid_code());
        }
        if stored.consumed_at.is_some() {
            // RFC 6749 §4.1.2: a replayed code revokes everything issued from it.
            issue::revoke_grant(provider, org, &grant, actor, "authorization code reused").await?;
            return Err(invalid_code());
        }
        if stored.expires_at <= now || grant.revoked_at.is_some() {
            return Err(invalid_code());
        }
        if stored.redirect_uri != self.redirect_uri {
            return Err(OAuthError::invalid_grant(
                "redirect_uri does not match the authorization request",
            ));
        }
        check_pkce(
            stored.code_challenge.as_deref(),
            self.code_verifier.as_deref(),
        )?;
        let user = issue::active_user(provider, &grant)
            .await?
            .ok_or_else(invalid_code)?;
        Ok((stored, grant, user))
    }
}

fn invalid_code() -> OAuthError {
    OAuthError::invalid_grant("the authorization code is invalid, expired or already used")
}

/// RFC 7636 §4.6: the verifier must hash to the challenge; sending one without a challenge is refused too.
fn check_pkce(challenge: Option<&str>, verifier: Option<&str>) -> Result<(), OAuthError> {
    match (challenge, verifier) {
        (Some(challenge), Some(verifier)) => {
            if !valid_verifier(verifier)
                || !crypto::constant_time_eq(s256(verifier).as_bytes(), challenge.as_bytes())
            {
                return Err(OAuthError::invalid_grant(
                    "code_verifier does not match the code_challenge",
                ));
            }
            Ok(())
        }
        (Some(_), None) => Err(OAuthError::invalid_grant("code_verifier is required")),
        (None, Some(_)) => Err(OAuthError::invalid_grant(
            "no code_challenge was sent for this code",
        )),
        (None, None) => Ok(()),
    }
}

/// RFC 7636 §4.1: 43 to 128 characters of [A-Z a-z 0-9 - . _ ~].
fn valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
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

    #[test]
    fn pkce_refusals_name_what_is_wrong() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(check_pkce(Some(challenge), Some(verifier)).is_ok());
        assert!(check_pkce(None, None).is_ok());
        let description = |r: Result<(), OAuthError>| r.unwrap_err().description;
        assert_eq!(
            description(check_pkce(Some(challenge), Some(&"a".repeat(43)))),
            "code_verifier does not match the code_challenge"
        );
        assert_eq!(
            description(check_pkce(Some(challenge), None)),
            "code_verifier is required"
        );
        assert_eq!(
            description(check_pkce(None, Some(verifier))),
            "no code_challenge was sent for this code"
        );
    }
}
