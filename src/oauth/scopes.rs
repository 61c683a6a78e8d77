//! Scopes that reach beyond the application itself, which only the organization's own (first-party)
//! applications may obtain.
//!
//! `latchkey:sessions` opens `{issuer}/api/me/sessions`: the addresses and devices of every session of
//! the user, and signing them out everywhere. An application the organization registered as first-party
//! (`Application::first_party`, set with `latchkey app create/update --first-party`) may ask for it; any
//! other application asking for it gets `invalid_scope` at the authorization endpoint (RFC 6749
//! §4.1.2.1) rather than a token silently narrower than it asked for.

use super::claims::AccessClaims;
use super::provider::Provider;
use super::{OAuthError, has_scope};
use crate::model::apps::Application;
use crate::model::orgs::Organization;

/// Reading and ending the user's sessions through the sessions API.
pub const SESSIONS: &str = "latchkey:sessions";

/// Scopes only first-party applications may obtain.
pub const FIRST_PARTY_ONLY: &[&str] = &[SESSIONS];

/// The first of `requested` that `app` may not obtain, if any.
pub fn refused_for<'a>(app: &Application, requested: &'a [String]) -> Option<&'a str> {
    if app.first_party {
        return None;
    }
    requested
        .iter()
        .map(String::as_str)
        .find(|s| FIRST_PARTY_ONLY.contains(s))
}

/// Whether an access token (its verified claims) may use the sessions API: it carries [`SESSIONS`] and
/// its client is a first-party application of `org` now, so tokens of an application the organization
/// no longer trusts stop working with it.
pub async fn permits_sessions_api(
    provider: &Provider,
    org: &Organization,
    claims: &AccessClaims,
) -> Result<bool, OAuthError> {
    if !has_scope(claims.scope(), SESSIONS) {
        return Ok(false);
    }
    let Some(client_id) = &claims.client_id else {
        return Ok(false);
    };
    Ok(provider
        .app(&org.id, client_id)
        .await?
        .is_some_and(|app| app.first_party))
}
