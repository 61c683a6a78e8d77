//! `client_credentials` (RFC 6749 §4.4): a confidential client acting for itself. No user, so no user
//! scopes, no ID token and no refresh token; the token is stateless and the audit entry its only record.

use serde_json::json;

use super::issue::Issue;
use super::{TokenRequest, TokenResponse};
use crate::audit::{Action, Actor, NewAuditEvent};
use crate::model::apps::{Application, ClientType};
use crate::model::orgs::Organization;
use crate::oauth::provider::Provider;
use crate::oauth::records::Grant;
use crate::oauth::{OAuthError, parse_scope, scopes};

#[derive(Debug, PartialEq, Eq)]
pub struct ClientCredentialsGrant {
    /// The requested scopes, deduplicated.
    pub scope: Vec<String>,
}

impl ClientCredentialsGrant {
    pub(super) fn from_form(form: TokenRequest) -> Self {
        Self {
            scope: parse_scope(form.scope.as_deref().unwrap_or("")),
        }
    }

    pub(super) async fn exchange(
        self,
        provider: &Provider,
        org: &Organization,
        app: &Application,
        actor: Actor,
    ) -> Result<TokenResponse, OAuthError> {
        if app.client_type != ClientType::Confidential {
            return Err(OAuthError::unauthorized_client(
                "public clients cannot use client_credentials",
            ));
        }
        check_scope(&self.scope)?;
        let now = provider.deps.now();
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
            expires_at: now + provider.deps.config().access_token_ttl_secs as i64,
            revoked_at: None,
            revoked_reason: None,
        };
        let response = Issue {
            app,
            grant: &grant,
            user: None,
            nonce: None,
            refresh_token: None,
            now,
        }
        .sign(provider, org)
        .await?;
        // Group commit keeps this audit entry cheap, and the answer waits for it so no issued token is
        // missing from the log.
        let audit = NewAuditEvent::new(&org.id, &actor, Action::TokenIssued)
            .target("application", &app.id)
            .change(None, Some(json!({"grant_type": "client_credentials"})));
        provider.audit.record(audit).await?;
        Ok(response)
    }
}

/// No scope is defined for clients acting for themselves yet: user scopes are refused as such, and any
/// other scope as unknown.
fn check_scope(scope: &[String]) -> Result<(), OAuthError> {
    let needs_user = |s: &&String| {
        matches!(
            s.as_str(),
            "openid" | "offline_access" | "profile" | "email" | scopes::SESSIONS
        )
    };
    if let Some(bad) = scope.iter().find(needs_user) {
        return Err(OAuthError::invalid_scope(format!(
            "{bad} needs a user; client_credentials has none"
        )));
    }
    if let Some(bad) = scope.first() {
        return Err(OAuthError::invalid_scope(format!("unknown scope {bad}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_scopes_and_unknown_scopes_are_refused() {
        let refusal = |scope: &[&str]| {
            let scope: Vec<String> = scope.iter().map(|s| s.to_string()).collect();
            check_scope(&scope).unwrap_err().description
        };
        assert_eq!(
            refusal(&["custom", "email"]),
            "email needs a user; client_credentials has none"
        );
        assert_eq!(refusal(&["custom"]), "unknown scope custom");
        assert!(check_scope(&[]).is_ok());
    }
}
