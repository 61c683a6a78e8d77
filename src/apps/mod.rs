//! Applications: the OAuth clients an organization registers.

pub use crate::model::apps::{AppSettings, Application, ClientType, GrantType};

use crate::deps::{HasClock, HasDb, HasSecrets};
use crate::kernel::{AppId, ClientId};
use serde::Serialize;
use url::Url;

use crate::audit::{Action, Actor, NewAuditEvent};
use crate::crypto;
use crate::error::{Error, Result};
use crate::model::orgs::Organization;
use crate::orgs::validate_name;

pub struct NewApplication {
    pub name: String,
    pub client_type: ClientType,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<GrantType>,
    pub cors_origins: Vec<String>,
    pub first_party: bool,
    pub signing_alg: Option<String>,
    /// Issue refresh tokens only when the client asks for `offline_access`.
    pub require_offline_access: bool,
    /// Insecure: let a confidential client skip PKCE.
    pub insecure_allow_no_pkce: bool,
}

/// The application as created, with its client secret: the only time the secret exists outside the client.
#[derive(Debug, Serialize)]
pub struct CreatedApplication {
    #[serde(flatten)]
    pub app: Application,
    pub client_secret: Option<String>,
}

pub const SIGNING_ALGS: &[&str] = &["RS256", "ES256", "EdDSA"];

fn is_loopback_host(url: &Url) -> bool {
    matches!(
        url.host_str(),
        Some("localhost") | Some("127.0.0.1") | Some("[::1]")
    )
}

/// Registered redirect URIs: absolute; no fragment, user information, backslash or `.`/`..` segment
/// (encoded or not: see [`crate::uri::redirect_uri_defect`]); https, or http only on loopback; custom
/// schemes (`com.example.app:/callback`) only for public (native) clients.
pub fn validate_redirect_uri(field: &str, raw: &str, client_type: ClientType) -> Result<String> {
    let url = Url::parse(raw)
        .map_err(|_| Error::invalid(field, format!("{raw:?} is not an absolute URI")))?;
    if let Some(defect) = crate::uri::redirect_uri_defect(raw) {
        return Err(Error::invalid(field, format!("{raw:?} {defect}")));
    }
    match url.scheme() {
        "https" => {}
        "http" if is_loopback_host(&url) => {}
        "http" => {
            return Err(Error::invalid(
                field,
                format!("{raw:?} must use https (http is allowed only on loopback)"),
            ));
        }
        scheme if client_type == ClientType::Public && scheme.contains('.') => {}
        _ => {
            return Err(Error::invalid(
                field,
                format!(
                    "{raw:?}: custom schemes are for native (public) clients and must be reverse-DNS, like com.example.app"
                ),
            ));
        }
    }
    // Stored exactly as given: matching at the authorization endpoint is an exact string comparison.
    Ok(raw.to_string())
}

/// A CORS origin is scheme://host[:port] and nothing else.
pub fn validate_origin(raw: &str) -> Result<String> {
    let url = Url::parse(raw)
        .map_err(|_| Error::invalid("cors_origin", format!("{raw:?} is not an origin")))?;
    let origin = url.origin().ascii_serialization();
    if !matches!(url.scheme(), "http" | "https")
        || origin != raw.trim_end_matches('/')
        || url.path() != "/"
    {
        return Err(Error::invalid(
            "cors_origin",
            format!("{raw:?} must be an origin like https://app.example.com"),
        ));
    }
    Ok(origin)
}

pub fn validate(input: &NewApplication) -> Result<()> {
    if input.grant_types.is_empty() {
        return Err(Error::invalid(
            "grant",
            "at least one grant type is required",
        ));
    }
    let has = |g| input.grant_types.contains(&g);
    if input.client_type == ClientType::Public && has(GrantType::ClientCredentials) {
        return Err(Error::invalid(
            "grant",
            "public clients cannot use client_credentials (they hold no secret)",
        ));
    }
    if has(GrantType::RefreshToken) && !has(GrantType::AuthorizationCode) {
        return Err(Error::invalid(
            "grant",
            "refresh_token requires authorization_code",
        ));
    }
    if has(GrantType::AuthorizationCode) && input.redirect_uris.is_empty() {
        return Err(Error::invalid(
            "redirect_uri",
            "authorization_code needs at least one redirect URI",
        ));
    }
    if !has(GrantType::AuthorizationCode) && !input.redirect_uris.is_empty() {
        return Err(Error::invalid(
            "redirect_uri",
            "redirect URIs are only used with authorization_code",
        ));
    }
    if input.insecure_allow_no_pkce && input.client_type == ClientType::Public {
        return Err(Error::invalid(
            "insecure_allow_no_pkce",
            "public clients must always use PKCE",
        ));
    }
    if let Some(alg) = &input.signing_alg
        && !SIGNING_ALGS.contains(&alg.as_str())
    {
        return Err(Error::invalid(
            "signing_alg",
            format!("must be one of {}", SIGNING_ALGS.join(", ")),
        ));
    }
    Ok(())
}

/// An application's registration, checked and normalized: what create and update both store.
struct Registration {
    name: String,
    redirect_uris: Vec<String>,
    post_logout_redirect_uris: Vec<String>,
    grant_types: Vec<GrantType>,
    cors_origins: Vec<String>,
}

/// Checks `input` as a whole (grant types against redirect URIs, client type against grants, each URI
/// and origin), so an edit is held to the same rules as a registration.
fn registration(input: &NewApplication) -> Result<Registration> {
    let name = validate_name("name", &input.name)?;
    validate(input)?;
    let uris = |field: &str, list: &[String]| {
        list.iter()
            .map(|u| validate_redirect_uri(field, u, input.client_type))
            .collect::<Result<Vec<_>>>()
    };
    let mut grant_types = input.grant_types.clone();
    grant_types.sort();
    grant_types.dedup();
    Ok(Registration {
        name,
        redirect_uris: uris("redirect_uri", &input.redirect_uris)?,
        post_logout_redirect_uris: uris(
            "post_logout_redirect_uri",
            &input.post_logout_redirect_uris,
        )?,
        grant_types,
        cors_origins: input
            .cors_origins
            .iter()
            .map(|o| validate_origin(o))
            .collect::<Result<Vec<_>>>()?,
    })
}

pub async fn create(
    deps: &(impl HasClock + HasDb + HasSecrets),
    actor: &Actor,
    org: &Organization,
    input: NewApplication,
) -> Result<CreatedApplication> {
    let checked = registration(&input)?;
    if let Some(alg) = input.signing_alg.as_deref() {
        crate::keys::ensure_alg(deps, actor, org, alg).await?;
    }
    let client_secret = (input.client_type == ClientType::Confidential).then(crypto::random_token);
    let now = deps.now();
    let app = Application {
        id: AppId::generate(),
        org_id: org.id.clone(),
        client_id: ClientId::from(hex::encode(crypto::random_bytes(16))),
        name: checked.name,
        client_type: input.client_type,
        client_secret_hash: client_secret
            .as_deref()
            .map(|s| deps.secrets().token_hash(s)),
        previous_secret_hash: None,
        previous_secret_valid_until: None,
        redirect_uris: checked.redirect_uris,
        post_logout_redirect_uris: checked.post_logout_redirect_uris,
        grant_types: checked.grant_types,
        cors_origins: checked.cors_origins,
        first_party: input.first_party,
        settings: AppSettings {
            signing_alg: input.signing_alg.unwrap_or_else(|| "RS256".into()),
            refresh_without_offline_access: !input.require_offline_access,
            warning_insecure_allow_no_pkce: input.insecure_allow_no_pkce,
        },
        created_at: now,
        updated_at: now,
    };
    let audit = NewAuditEvent::new(&org.id, actor, Action::AppCreated)
        .target("application", &app.id)
        .change(None, Some(serde_json::to_value(&app).unwrap_or_default()));
    deps.db().tenant(&org.id).create_app(&app, &audit).await?;
    Ok(CreatedApplication { app, client_secret })
}

/// What [`update`] changes; `None` keeps the current value. The client type and client id never change
/// (a client that changes type is another client).
#[derive(Debug, Default)]
pub struct AppChanges {
    pub name: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    pub grant_types: Option<Vec<GrantType>>,
    pub cors_origins: Option<Vec<String>>,
    /// Whether the application belongs to the organization itself: it skips the consent screen and may
    /// obtain first-party scopes (`oauth::scopes::FIRST_PARTY_ONLY`, such as the sessions API's).
    pub first_party: Option<bool>,
    pub signing_alg: Option<String>,
    pub require_offline_access: Option<bool>,
}

impl AppChanges {
    /// The application as it would be registered with these changes applied, for [`registration`].
    fn applied_to(self, app: &Application) -> NewApplication {
        NewApplication {
            name: self.name.unwrap_or_else(|| app.name.clone()),
            client_type: app.client_type,
            redirect_uris: self
                .redirect_uris
                .unwrap_or_else(|| app.redirect_uris.clone()),
            post_logout_redirect_uris: self
                .post_logout_redirect_uris
                .unwrap_or_else(|| app.post_logout_redirect_uris.clone()),
            grant_types: self.grant_types.unwrap_or_else(|| app.grant_types.clone()),
            cors_origins: self
                .cors_origins
                .unwrap_or_else(|| app.cors_origins.clone()),
            first_party: self.first_party.unwrap_or(app.first_party),
            signing_alg: Some(
                self.signing_alg
                    .unwrap_or_else(|| app.settings.signing_alg.clone()),
            ),
            require_offline_access: self
                .require_offline_access
                .unwrap_or(!app.settings.refresh_without_offline_access),
            insecure_allow_no_pkce: app.settings.warning_insecure_allow_no_pkce,
        }
    }
}

/// Changes an application of `org`, found by its client_id, under the rules of a registration.
pub async fn update(
    deps: &(impl HasClock + HasDb + HasSecrets),
    actor: &Actor,
    org: &Organization,
    client_id: &str,
    changes: AppChanges,
) -> Result<Application> {
    let before = deps
        .db()
        .tenant(&org.id)
        .app_by_client_id(client_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("application {client_id}")))?;
    let wanted = changes.applied_to(&before);
    let checked = registration(&wanted)?;
    let signing_alg = wanted.signing_alg.unwrap_or_else(|| "RS256".into());
    if signing_alg != before.settings.signing_alg {
        crate::keys::ensure_alg(deps, actor, org, &signing_alg).await?;
    }
    let app = Application {
        name: checked.name,
        redirect_uris: checked.redirect_uris,
        post_logout_redirect_uris: checked.post_logout_redirect_uris,
        grant_types: checked.grant_types,
        cors_origins: checked.cors_origins,
        first_party: wanted.first_party,
        settings: AppSettings {
            signing_alg,
            refresh_without_offline_access: !wanted.require_offline_access,
            ..before.settings.clone()
        },
        updated_at: deps.now(),
        ..before.clone()
    };
    let audit = NewAuditEvent::new(&org.id, actor, Action::AppUpdated)
        .target("application", &app.id)
        .change(
            Some(serde_json::to_value(&before).unwrap_or_default()),
            Some(serde_json::to_value(&app).unwrap_or_default()),
        );
    deps.db().tenant(&org.id).update_app(&app, &audit).await?;
    Ok(app)
}

/// The longest overlap a rotation may give the secret it replaces.
pub const MAX_SECRET_GRACE_SECS: u64 = 7 * 86_400;

/// Gives a confidential application a new client secret (256 bits, returned this once). The old secret
/// keeps working for `grace_secs` (at most [`MAX_SECRET_GRACE_SECS`]) so the client can switch without
/// downtime; with no grace it is refused from the next request on.
pub async fn rotate_secret(
    deps: &(impl HasClock + HasDb + HasSecrets),
    actor: &Actor,
    org: &Organization,
    client_id: &str,
    grace_secs: u64,
) -> Result<(Application, String)> {
    if grace_secs > MAX_SECRET_GRACE_SECS {
        return Err(Error::invalid(
            "grace_period_secs",
            format!("must be at most {MAX_SECRET_GRACE_SECS} seconds (7 days)"),
        ));
    }
    let client_id = client_id.trim();
    let unknown = || {
        Error::NotFound(format!(
            "application {client_id:?} in organization {:?}",
            org.slug
        ))
    };
    let mut app = deps
        .db()
        .tenant(&org.id)
        .app_by_client_id(client_id)
        .await?
        .ok_or_else(unknown)?;
    if app.client_type != ClientType::Confidential {
        return Err(Error::invalid(
            "client-id",
            format!("application {client_id:?} is a public client and has no secret"),
        ));
    }
    let secret = crypto::random_token();
    let hash = deps.secrets().token_hash(&secret);
    let now = deps.now();
    let previous_valid_until = (grace_secs > 0).then(|| now + grace_secs as i64);
    let audit = NewAuditEvent::new(&org.id, actor, Action::AppSecretRotated)
        .target("application", &app.id)
        .change(
            None,
            Some(serde_json::json!({
                "client_id": app.client_id,
                "previous_secret_valid_until": previous_valid_until,
            })),
        );
    deps.db()
        .tenant(&org.id)
        .replace_client_secret(&app.id, &hash, now, previous_valid_until, &audit)
        .await?;
    app.previous_secret_hash = previous_valid_until.and(app.client_secret_hash.take());
    app.previous_secret_valid_until = previous_valid_until;
    app.client_secret_hash = Some(hash);
    app.updated_at = now;
    Ok((app, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uri_rules() {
        let conf = ClientType::Confidential;
        assert!(validate_redirect_uri("r", "https://app.example.com/cb", conf).is_ok());
        assert!(validate_redirect_uri("r", "http://127.0.0.1:3000/cb", conf).is_ok());
        assert!(validate_redirect_uri("r", "http://app.example.com/cb", conf).is_err());
        assert!(validate_redirect_uri("r", "https://app.example.com/cb#frag", conf).is_err());
        assert!(validate_redirect_uri("r", "/relative", conf).is_err());
        assert!(validate_redirect_uri("r", "com.example.app:/cb", conf).is_err());
        assert!(validate_redirect_uri("r", "com.example.app:/cb", ClientType::Public).is_ok());
        assert!(validate_redirect_uri("r", "javascript:alert(1)", ClientType::Public).is_err());
        let public = ClientType::Public;
        for bad in [
            "http://127.0.0.1/cb#x",
            "http://user@127.0.0.1/cb",
            "http://127.0.0.1/x/../cb",
            "http://127.0.0.1/x/%2e%2e/cb",
            "http://127.0.0.1/x/..%2fcb",
        ] {
            assert!(validate_redirect_uri("r", bad, public).is_err(), "{bad}");
        }
    }

    #[test]
    fn origins_are_bare() {
        assert_eq!(
            validate_origin("https://app.example.com").unwrap(),
            "https://app.example.com"
        );
        assert!(validate_origin("https://app.example.com/path").is_err());
        assert!(validate_origin("ftp://app.example.com").is_err());
    }

    #[test]
    fn public_clients_cannot_use_client_credentials() {
        let input = NewApplication {
            name: "x".into(),
            client_type: ClientType::Public,
            redirect_uris: vec![],
            post_logout_redirect_uris: vec![],
            grant_types: vec![GrantType::ClientCredentials],
            cors_origins: vec![],
            first_party: false,
            signing_alg: None,
            require_offline_access: false,
            insecure_allow_no_pkce: false,
        };
        assert!(validate(&input).is_err());
    }
}
