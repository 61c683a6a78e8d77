//! The OAuth 2.0 / OpenID Connect provider: every organization is its own issuer.

pub mod authorize;
pub mod claims;
pub mod client_auth;
pub mod discovery;
pub mod error;
pub mod introspect;
pub mod jwt;
pub mod keyring;
pub mod logout;
pub mod provider;
pub use crate::model::grants as records;
pub mod revocation;
pub mod rs256;
pub mod scopes;
pub mod token;
pub mod verified;

pub use error::{OAuthError, OAuthErrorKind};

/// Scopes this provider understands. Others are refused with `invalid_scope`; some are only for
/// first-party applications (see [`scopes`]).
pub const SUPPORTED_SCOPES: &[&str] = &[
    "openid",
    "profile",
    "email",
    "offline_access",
    scopes::SESSIONS,
];

pub use crate::model::sessions::{ACR_MFA, ACR_PASSWORD};

/// Splits a space-delimited scope string, dropping duplicates, keeping order.
pub fn parse_scope(scope: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in scope.split(' ').filter(|s| !s.is_empty()) {
        if !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    }
    out
}

pub fn has_scope(scope: &str, wanted: &str) -> bool {
    scope.split(' ').any(|s| s == wanted)
}

/// Base64url SHA-256 of `input`, as PKCE S256 and `at_hash` use (for RS256/ES256; EdDSA per OIDC too).
pub fn s256(input: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(input.as_bytes()))
}

/// `at_hash`: the left half of the hash that goes with the ID token's `alg` (SHA-256 for RS256/ES256;
/// SHA-512 for EdDSA with Ed25519, as relying-party libraries expect), base64url.
pub fn at_hash(alg: &str, access_token: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    let digest = if alg == "EdDSA" {
        sha2::Sha512::digest(access_token.as_bytes()).to_vec()
    } else {
        sha2::Sha256::digest(access_token.as_bytes()).to_vec()
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_rfc7636_appendix_b() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn at_hash_follows_the_algorithm() {
        assert_eq!(at_hash("RS256", "token").len(), 22);
        assert_eq!(at_hash("EdDSA", "token").len(), 43);
    }

    #[test]
    fn scopes_are_deduplicated() {
        assert_eq!(parse_scope("openid  email openid"), vec!["openid", "email"]);
    }
}
