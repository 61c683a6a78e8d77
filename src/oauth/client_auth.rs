//! Client authentication at the token, introspection and revocation endpoints: `client_secret_basic`,
//! `client_secret_post`, or `none` (public clients: client_id only).

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::OAuthError;
use super::provider::Provider;
use crate::model::apps::{Application, ClientType};
use crate::model::orgs::Organization;

/// What the request presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    Basic { client_id: String, secret: String },
    Post { client_id: String, secret: String },
    None { client_id: String },
}

impl Presented {
    pub fn client_id(&self) -> &str {
        match self {
            Presented::Basic { client_id, .. }
            | Presented::Post { client_id, .. }
            | Presented::None { client_id } => client_id,
        }
    }

    pub fn used_basic(&self) -> bool {
        matches!(self, Presented::Basic { .. })
    }
}

/// Reads the credentials from the `Authorization` header and the form. Using two methods at once is an
/// error (RFC 6749 §2.3).
pub fn presented(
    authorization: Option<&str>,
    form_client_id: Option<&str>,
    form_secret: Option<&str>,
) -> Result<Presented, OAuthError> {
    let form_client_id = form_client_id.filter(|s| !s.is_empty());
    let form_secret = form_secret.filter(|s| !s.is_empty());
    if let Some(header) = authorization {
        let Some(encoded) = header
            .strip_prefix("Basic ")
            .or_else(|| header.strip_prefix("basic "))
        else {
            return Err(OAuthError::invalid_client(
                "unsupported Authorization scheme; use Basic",
            ));
        };
        let decoded = STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))?;
        let (id, secret) = decoded
            .split_once(':')
            .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))?;
        // RFC 6749 §2.3.1: both parts are form-urlencoded before base64.
        let id = form_decode(id)
            .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))?;
        let secret = form_decode(secret)
            .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))?;
        if form_secret.is_some() {
            return Err(OAuthError::invalid_request(
                "use one client authentication method, not two",
            ));
        }
        if form_client_id.is_some_and(|f| f != id) {
            return Err(OAuthError::invalid_request(
                "client_id does not match the Authorization header",
            ));
        }
        return Ok(Presented::Basic {
            client_id: id,
            secret,
        });
    }
    match (form_client_id, form_secret) {
        (Some(id), Some(secret)) => Ok(Presented::Post {
            client_id: id.to_string(),
            secret: secret.to_string(),
        }),
        (Some(id), None) => Ok(Presented::None {
            client_id: id.to_string(),
        }),
        (None, _) => Err(OAuthError::invalid_client(
            "client authentication is required",
        )),
    }
}

fn form_decode(part: &str) -> Option<String> {
    if !part.contains(['%', '+']) {
        // Nothing escaped (generated ids and secrets are hex): the text is the value.
        return Some(part.to_string());
    }
    let replaced = part.replace('+', " ");
    url::form_urlencoded::parse(
        format!("x={}", replaced.replace('&', "%26").replace('=', "%3D")).as_bytes(),
    )
    .next()
    .map(|(_, v)| v.into_owned())
}

/// Authenticates the client against the organization's registered applications.
pub async fn authenticate(
    provider: &Provider,
    org: &Organization,
    presented: &Presented,
) -> Result<Arc<Application>, OAuthError> {
    let unknown = || OAuthError::invalid_client("client authentication failed");
    let app = provider.app(&org.id, presented.client_id()).await?;
    let app = match app {
        Some(app) => app,
        _ => {
            // Spend the same work as a real check so timing does not reveal which client_ids exist.
            if let Presented::Basic { secret, .. } | Presented::Post { secret, .. } = presented {
                let _ = provider.deps.secrets().token_hash(secret);
            }
            return Err(unknown());
        }
    };
    match (app.client_type, presented) {
        (
            ClientType::Confidential,
            Presented::Basic { secret, .. } | Presented::Post { secret, .. },
        ) => {
            // The current secret, or the one a rotation replaced while its overlap lasts.
            let now = provider.deps.now();
            let matches = |app: &Application| {
                let secrets = provider.deps.secrets();
                let stored = app.client_secret_hash.as_deref().unwrap_or_default();
                let previous = app.previous_secret_hash.as_deref().filter(|_| {
                    app.previous_secret_valid_until
                        .is_some_and(|until| now < until)
                });
                secrets.token_matches(secret, stored)
                    | previous.is_some_and(|hash| secrets.token_matches(secret, hash))
            };
            if matches(&app) {
                return Ok(app);
            }
            // The cached record may predate a rotation: look at the stored one before refusing, so a new
            // secret works from its first request. (An old secret is refused once the cached record
            // expires, within the application cache's 5 s; reading the record on every request would cost
            // the token and introspection endpoints a database round trip each.)
            let current = provider
                .app_uncached(&org.id, presented.client_id())
                .await?
                .filter(|current| current.client_type == app.client_type)
                .ok_or_else(unknown)?;
            if matches(&current) {
                Ok(current)
            } else {
                Err(unknown())
            }
        }
        (ClientType::Confidential, Presented::None { .. }) => Err(OAuthError::invalid_client(
            "this client must authenticate with its secret",
        )),
        (ClientType::Public, Presented::None { .. }) => Ok(app),
        (ClientType::Public, _) => Err(OAuthError::invalid_client("public clients have no secret")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(id: &str, secret: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let p = presented(Some(&basic("my%20app", "s%3Acret")), None, None).unwrap();
        assert_eq!(
            p,
            Presented::Basic {
                client_id: "my app".into(),
                secret: "s:cret".into()
            }
        );
    }

    #[test]
    fn two_methods_at_once_are_refused() {
        assert!(presented(Some(&basic("a", "b")), Some("a"), Some("b")).is_err());
        assert!(presented(Some(&basic("a", "b")), Some("other"), None).is_err());
    }

    #[test]
    fn post_and_none() {
        assert!(matches!(
            presented(None, Some("a"), Some("b")).unwrap(),
            Presented::Post { .. }
        ));
        assert!(matches!(
            presented(None, Some("a"), None).unwrap(),
            Presented::None { .. }
        ));
        assert!(presented(None, None, None).is_err());
    }
}
