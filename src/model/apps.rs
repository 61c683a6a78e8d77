//! Applications (OAuth clients), as stored.

use serde::{Deserialize, Serialize};

use crate::kernel::{AppId, ClientId, OrgId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientType {
    /// Can keep a secret (server-side web apps).
    Confidential,
    /// Cannot (single-page and native apps): PKCE is mandatory, no client credentials.
    Public,
}

impl ClientType {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientType::Confidential => "confidential",
            ClientType::Public => "public",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "confidential" => Some(ClientType::Confidential),
            "public" => Some(ClientType::Public),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
}

impl GrantType {
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::AuthorizationCode,
            Self::RefreshToken,
            Self::ClientCredentials,
        ]
        .into_iter()
        .find(|g| g.as_str() == text)
    }
}

/// Per-application settings; every field has a default so new ones need no data migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AppSettings {
    /// JWS algorithm for this application's tokens: RS256 (default), ES256 or EdDSA.
    pub signing_alg: String,
    /// Whether refresh tokens are issued without the client asking for `offline_access`.
    pub refresh_without_offline_access: bool,
    /// PKCE (S256) is required unless this insecure opt-out is set; only confidential clients may set it.
    pub warning_insecure_allow_no_pkce: bool,
}

impl Default for AppSettings {
    fn default() -> Self {
        Self {
            signing_alg: "RS256".into(),
            refresh_without_offline_access: true,
            warning_insecure_allow_no_pkce: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Application {
    pub id: AppId,
    pub org_id: OrgId,
    pub client_id: ClientId,
    pub name: String,
    pub client_type: ClientType,
    #[serde(skip)]
    pub client_secret_hash: Option<Vec<u8>>,
    /// The secret a rotation replaced, accepted until `previous_secret_valid_until` (the overlap that
    /// lets a client deploy its new secret without downtime).
    #[serde(skip)]
    pub previous_secret_hash: Option<Vec<u8>>,
    pub previous_secret_valid_until: Option<i64>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<GrantType>,
    pub cors_origins: Vec<String>,
    pub first_party: bool,
    pub settings: AppSettings,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Application {
    pub fn allows(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }
}
