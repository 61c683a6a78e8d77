//! Provider metadata (OpenID Connect Discovery 1.0, RFC 8414): only what is really supported.

use serde_json::{Value, json};

use super::{ACR_MFA, ACR_PASSWORD, SUPPORTED_SCOPES};
use crate::apps::SIGNING_ALGS;

/// Endpoint paths below the issuer.
pub mod paths {
    pub const AUTHORIZE: &str = "/authorize";
    pub const TOKEN: &str = "/token";
    pub const USERINFO: &str = "/userinfo";
    pub const JWKS: &str = "/jwks";
    pub const REVOKE: &str = "/revoke";
    pub const INTROSPECT: &str = "/introspect";
    pub const LOGOUT: &str = "/logout";
}

pub fn metadata(issuer: &str) -> Value {
    let auth_methods = ["client_secret_basic", "client_secret_post", "none"];
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}{}", paths::AUTHORIZE),
        "token_endpoint": format!("{issuer}{}", paths::TOKEN),
        "userinfo_endpoint": format!("{issuer}{}", paths::USERINFO),
        "jwks_uri": format!("{issuer}{}", paths::JWKS),
        "revocation_endpoint": format!("{issuer}{}", paths::REVOKE),
        "introspection_endpoint": format!("{issuer}{}", paths::INTROSPECT),
        "end_session_endpoint": format!("{issuer}{}", paths::LOGOUT),
        "scopes_supported": SUPPORTED_SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": SIGNING_ALGS,
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "at_hash", "sid", "email", "email_verified", "name", "updated_at"],
        "acr_values_supported": [ACR_PASSWORD, ACR_MFA],
        "prompt_values_supported": ["none", "login", "consent"],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
        "frontchannel_logout_supported": false,
        "backchannel_logout_supported": false,
    })
}
