//! The token endpoint: `authorization_code` (with PKCE), `refresh_token` (rotated, reuse revokes the whole
//! grant) and `client_credentials`. Issues RFC 9068 access tokens and OpenID Connect ID tokens.
//!
//! The form is parsed once, at the edge, into a [`TokenGrant`]: one variant per grant type, holding only
//! the parameters that grant uses, so each grant's code (one file each) never looks at a missing field.

mod authorization_code;
mod client_credentials;
mod issue;
mod refresh_token;

pub use authorization_code::AuthorizationCodeGrant;
pub use client_credentials::ClientCredentialsGrant;
pub use issue::revoke_grant;
pub use refresh_token::RefreshTokenGrant;

use serde::Serialize;

use super::OAuthError;
use super::provider::Provider;
use crate::model::apps::{Application, GrantType};
use crate::model::orgs::Organization;

/// The token endpoint's form parameters as sent (RFC 6749 §4.1.3, §6, §4.4). A repeated parameter fails
/// to deserialize, which the edge answers `invalid_request`.
#[derive(Debug, Default, serde::Deserialize)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub refresh_token: Option<String>,
    pub scope: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

/// A token request, parsed: which grant, with the parameters it needs.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenGrant {
    AuthorizationCode(AuthorizationCodeGrant),
    RefreshToken(RefreshTokenGrant),
    ClientCredentials(ClientCredentialsGrant),
}

impl TokenGrant {
    /// Parses the form. `may_use` says whether the authenticated client may use a grant type; it is asked
    /// before the grant's own parameters are read, so a client using a grant it may not use is told that
    /// rather than which parameter is missing.
    pub fn parse(
        form: TokenRequest,
        may_use: impl FnOnce(GrantType) -> bool,
    ) -> Result<Self, OAuthError> {
        let grant_type = form.grant_type.as_deref().filter(|g| !g.is_empty());
        let grant_type =
            grant_type.ok_or_else(|| OAuthError::invalid_request("grant_type is required"))?;
        let grant = GrantType::parse(grant_type).ok_or_else(|| {
            OAuthError::unsupported_grant_type(format!("{grant_type} is not supported"))
        })?;
        if !may_use(grant) {
            return Err(OAuthError::unauthorized_client(format!(
                "this client may not use {grant_type}"
            )));
        }
        Ok(match grant {
            GrantType::AuthorizationCode => {
                TokenGrant::AuthorizationCode(AuthorizationCodeGrant::from_form(form)?)
            }
            GrantType::RefreshToken => {
                TokenGrant::RefreshToken(RefreshTokenGrant::from_form(form)?)
            }
            GrantType::ClientCredentials => {
                TokenGrant::ClientCredentials(ClientCredentialsGrant::from_form(form))
            }
        })
    }
}

#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    pub scope: String,
}

pub struct RequestMeta {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// Runs a parsed grant for `app`, which the edge has authenticated.
pub async fn exchange(
    provider: &Provider,
    org: &Organization,
    app: &Application,
    grant: TokenGrant,
    meta: RequestMeta,
) -> Result<TokenResponse, OAuthError> {
    let actor = issue::client_actor(app, meta.ip, meta.user_agent);
    match grant {
        TokenGrant::AuthorizationCode(grant) => grant.exchange(provider, org, app, actor).await,
        TokenGrant::RefreshToken(grant) => grant.exchange(provider, org, app, actor).await,
        TokenGrant::ClientCredentials(grant) => grant.exchange(provider, org, app, actor).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::OAuthErrorKind;

    fn form(pairs: &[(&str, &str)]) -> TokenRequest {
        serde_urlencoded::from_str(&serde_urlencoded::to_string(pairs).unwrap()).unwrap()
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<TokenGrant, OAuthError> {
        TokenGrant::parse(form(pairs), |_| true)
    }

    fn refused(pairs: &[(&str, &str)]) -> (OAuthErrorKind, String) {
        let e = parse(pairs).expect_err("refused");
        (e.kind, e.description)
    }

    #[test]
    fn a_missing_or_empty_grant_type_is_invalid_request() {
        let expected = (
            OAuthErrorKind::InvalidRequest,
            "grant_type is required".into(),
        );
        assert_eq!(refused(&[]), expected);
        assert_eq!(refused(&[("grant_type", "")]), expected);
    }

    #[test]
    fn an_unknown_grant_type_is_unsupported() {
        assert_eq!(
            refused(&[("grant_type", "password")]),
            (
                OAuthErrorKind::UnsupportedGrantType,
                "password is not supported".into()
            )
        );
    }

    #[test]
    fn a_grant_the_client_may_not_use_is_refused_before_its_parameters_are_read() {
        let e = TokenGrant::parse(form(&[("grant_type", "authorization_code")]), |g| {
            g != GrantType::AuthorizationCode
        })
        .expect_err("refused");
        assert_eq!(e.kind, OAuthErrorKind::UnauthorizedClient);
        assert_eq!(e.description, "this client may not use authorization_code");
    }

    #[test]
    fn authorization_code_needs_a_code_and_a_redirect_uri() {
        let code_required = (OAuthErrorKind::InvalidRequest, "code is required".into());
        assert_eq!(
            refused(&[("grant_type", "authorization_code"), ("redirect_uri", "x")]),
            code_required
        );
        assert_eq!(
            refused(&[("grant_type", "authorization_code"), ("code", "")]),
            code_required
        );
        assert_eq!(
            refused(&[("grant_type", "authorization_code"), ("code", "c")]),
            (
                OAuthErrorKind::InvalidRequest,
                "redirect_uri is required".into()
            )
        );
    }

    #[test]
    fn authorization_code_keeps_its_parameters_as_sent() {
        let grant = parse(&[
            ("grant_type", "authorization_code"),
            ("code", "c"),
            ("redirect_uri", ""),
            ("code_verifier", "v"),
            ("scope", "ignored"),
        ])
        .unwrap();
        assert_eq!(
            grant,
            TokenGrant::AuthorizationCode(AuthorizationCodeGrant {
                code: "c".into(),
                redirect_uri: String::new(),
                code_verifier: Some("v".into()),
            })
        );
    }

    #[test]
    fn refresh_token_needs_a_refresh_token() {
        let expected = (
            OAuthErrorKind::InvalidRequest,
            "refresh_token is required".into(),
        );
        assert_eq!(refused(&[("grant_type", "refresh_token")]), expected);
        assert_eq!(
            refused(&[("grant_type", "refresh_token"), ("refresh_token", "")]),
            expected
        );
        let grant = parse(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "r"),
            ("scope", ""),
        ])
        .unwrap();
        assert_eq!(
            grant,
            TokenGrant::RefreshToken(RefreshTokenGrant {
                refresh_token: "r".into(),
                scope: None,
            })
        );
    }

    #[test]
    fn client_credentials_reads_its_scope() {
        let grant = parse(&[("grant_type", "client_credentials"), ("scope", "a  b a")]).unwrap();
        assert_eq!(
            grant,
            TokenGrant::ClientCredentials(ClientCredentialsGrant {
                scope: vec!["a".into(), "b".into()],
            })
        );
    }

    #[test]
    fn a_repeated_parameter_does_not_parse() {
        let repeated = "grant_type=refresh_token&grant_type=authorization_code&refresh_token=x";
        assert!(serde_urlencoded::from_str::<TokenRequest>(repeated).is_err());
    }
}
