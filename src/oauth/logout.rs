//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): which client is asking, whether its
//! `id_token_hint` names the signed-in user, where the browser may be sent afterwards, and ending the
//! session. The HTTP edge only reads the request, renders the confirmation page and sets cookies.
//!
//! With a hint naming the signed-in user (and session) the user is signed out at once; otherwise they
//! confirm first, so a third-party page cannot sign them out.

use serde::Deserialize;

use super::authorize;
use super::claims::IdTokenHint;
use super::jwt;
use super::provider::Provider;
use crate::error::Error;
use crate::model::orgs::Organization;
use crate::sessions::service::{self as sessions, ClientInfo};

/// The logout request's parameters (query or form). `csrf` and `confirm` belong to the confirmation form.
#[derive(Debug, Default, Deserialize)]
pub struct LogoutParams {
    pub id_token_hint: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
    pub client_id: Option<String>,
    pub csrf: Option<String>,
    pub confirm: Option<String>,
}

/// The browser's current session, as far as the hint is compared with it.
#[derive(Debug, Clone, Copy)]
pub struct SignedIn<'a> {
    pub user_id: &'a str,
    pub session_id: &'a str,
}

/// Why a logout request is refused, or could not be checked.
#[derive(Debug)]
pub enum LogoutError {
    HintForAnotherClient,
    InvalidHint,
    UnregisteredRedirect,
    /// Checking the hint failed on our side.
    Failed(Error),
}

impl LogoutError {
    /// What the user is told (a 400 page) for a refused request.
    pub fn message(&self) -> &'static str {
        match self {
            LogoutError::HintForAnotherClient => {
                "The id_token_hint was issued to another application."
            }
            LogoutError::InvalidHint => "The id_token_hint is not valid.",
            LogoutError::UnregisteredRedirect => {
                "The post_logout_redirect_uri is not registered for this application."
            }
            LogoutError::Failed(_) => "The sign-out could not be checked.",
        }
    }
}

impl From<Error> for LogoutError {
    fn from(e: Error) -> Self {
        LogoutError::Failed(e)
    }
}

/// A logout request that checked out.
#[derive(Debug, PartialEq, Eq)]
pub struct Logout {
    /// The client asking: from the hint's audience when there is a hint, else as given.
    pub client_id: Option<String>,
    /// A `post_logout_redirect_uri` registered for that client.
    pub redirect: Option<String>,
    pub state: Option<String>,
    /// The hint names the signed-in user and session, or nobody is signed in.
    hint_matches: bool,
}

impl Logout {
    /// Whether the user must confirm before a session is ended: there is one, and neither a matching hint
    /// nor their confirmation shows the request is theirs.
    pub fn needs_confirmation(&self, has_session: bool, confirmed: bool) -> bool {
        has_session && !self.hint_matches && !confirmed
    }

    /// Where the browser goes once signed out: the registered URI with `state`, if any.
    pub fn redirect_location(&self) -> Option<String> {
        let uri = self.redirect.as_deref()?;
        Some(match self.state.as_deref() {
            Some(state) => authorize::redirect_with(uri, &[("state", state)]),
            None => uri.to_string(),
        })
    }
}

/// Checks a logout request against `org` and the browser's session.
pub async fn check(
    provider: &Provider,
    org: &Organization,
    params: &LogoutParams,
    signed_in: Option<SignedIn<'_>>,
    now: i64,
) -> Result<Logout, LogoutError> {
    let mut client_id = params.client_id.clone().filter(|c| !c.is_empty());
    let mut hint_matches = false;
    if let Some(hint) = params.id_token_hint.as_deref().filter(|h| !h.is_empty()) {
        let hint = verified_hint(provider, org, hint, now).await?;
        if client_id.is_some() && hint.aud != client_id {
            return Err(LogoutError::HintForAnotherClient);
        }
        hint_matches = names(&hint, signed_in);
        client_id = hint.aud;
    }
    let redirect = match params
        .post_logout_redirect_uri
        .as_deref()
        .filter(|u| !u.is_empty())
    {
        Some(uri) => Some(registered_redirect(provider, org, client_id.as_deref(), uri).await?),
        None => None,
    };
    Ok(Logout {
        client_id,
        redirect,
        state: params.state.clone(),
        hint_matches,
    })
}

/// Ends the browser's session, by its cookie token; false if it had already ended.
pub async fn sign_out(
    provider: &Provider,
    org: &Organization,
    session_token: &str,
    client: &ClientInfo,
) -> Result<bool, Error> {
    sessions::end(&provider.deps, org, session_token, client).await
}

/// An ID token this organization issued; expired ones are fine, since a hint only names someone.
async fn verified_hint(
    provider: &Provider,
    org: &Organization,
    hint: &str,
    now: i64,
) -> Result<IdTokenHint, LogoutError> {
    match provider
        .verify_jwt(org, hint, jwt::ID_TOKEN_TYP, now, true)
        .await?
    {
        Ok(jwt::VerifiedJwt { claims, .. }) => Ok(IdTokenHint::from_verified(claims)),
        Err(_) => Err(LogoutError::InvalidHint),
    }
}

/// A hint lets the sign-out skip confirmation only if it names the signed-in user (and session): any ID
/// token from this organization would otherwise let a third-party page sign anyone out.
fn names(hint: &IdTokenHint, signed_in: Option<SignedIn<'_>>) -> bool {
    match signed_in {
        Some(s) => {
            hint.sub.as_deref() == Some(s.user_id)
                && hint.sid.as_deref().is_none_or(|sid| sid == s.session_id)
        }
        None => true,
    }
}

/// `uri` if it is registered for the client `client_id` of `org`.
async fn registered_redirect(
    provider: &Provider,
    org: &Organization,
    client_id: Option<&str>,
    uri: &str,
) -> Result<String, LogoutError> {
    let app = match client_id {
        // A lookup failure reads as "not registered": the answer is a refusal either way.
        Some(id) => provider.app(&org.id, id).await.ok().flatten(),
        None => None,
    };
    match app {
        Some(app) if app.post_logout_redirect_uris.iter().any(|u| u == uri) => Ok(uri.to_string()),
        _ => Err(LogoutError::UnregisteredRedirect),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hint(sub: Option<&str>, sid: Option<&str>) -> IdTokenHint {
        IdTokenHint {
            aud: Some("client".into()),
            sub: sub.map(str::to_string),
            sid: sid.map(str::to_string),
        }
    }

    const ALICE: SignedIn<'static> = SignedIn {
        user_id: "usr_alice",
        session_id: "ses_1",
    };

    #[test]
    fn a_hint_skips_confirmation_only_for_the_signed_in_user_and_session() {
        assert!(names(&hint(Some("usr_alice"), Some("ses_1")), Some(ALICE)));
        assert!(names(&hint(Some("usr_alice"), None), Some(ALICE)));
        assert!(!names(&hint(Some("usr_alice"), Some("ses_2")), Some(ALICE)));
        assert!(!names(&hint(Some("usr_bob"), Some("ses_1")), Some(ALICE)));
        assert!(!names(&hint(None, None), Some(ALICE)));
        assert!(names(&hint(None, None), None), "nobody to protect");
    }

    #[test]
    fn confirmation_is_needed_without_a_matching_hint_when_signed_in() {
        let logout = |hint_matches| Logout {
            client_id: None,
            redirect: None,
            state: None,
            hint_matches,
        };
        assert!(logout(false).needs_confirmation(true, false));
        assert!(!logout(false).needs_confirmation(true, true));
        assert!(!logout(false).needs_confirmation(false, false));
        assert!(!logout(true).needs_confirmation(true, false));
    }

    #[test]
    fn the_redirect_carries_state() {
        let logout = Logout {
            client_id: None,
            redirect: Some("https://app.example/bye".into()),
            state: Some("s 1".into()),
            hint_matches: true,
        };
        let location = logout.redirect_location().unwrap();
        assert!(
            location.starts_with("https://app.example/bye?state=s"),
            "{location}"
        );
    }
}
