//! JWTs: signing access tokens (RFC 9068, `typ: at+jwt`) and ID tokens, and verifying what we issued.
//! Signature work is delegated to josekit (OpenSSL); this module only chooses keys and checks claims.

use josekit::jws::JwsHeader;
use josekit::jwt::{self, JwtPayload};
use serde_json::{Map, Value};

use super::keyring::OrgKeys;
use crate::error::{Error, Result};

pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
pub const ID_TOKEN_TYP: &str = "JWT";

/// Allowed clock difference when checking `iat`/`nbf` on tokens we issued.
const LEEWAY_SECS: i64 = 60;

/// Signs `claims` (a claims struct, or a map) with the organization's active key for `alg`.
pub fn sign(keys: &OrgKeys, alg: &str, typ: &str, claims: impl serde::Serialize) -> Result<String> {
    let active = keys
        .signer(alg)
        .ok_or_else(|| Error::Internal(format!("no active {alg} signing key")))?;
    let mut header = JwsHeader::new();
    header.set_token_type(typ);
    header.set_key_id(&active.kid);
    let Ok(Value::Object(claims)) = serde_json::to_value(claims) else {
        return Err(Error::Internal("jwt claims are not a JSON object".into()));
    };
    let payload =
        JwtPayload::from_map(claims).map_err(|e| Error::Internal(format!("jwt payload: {e}")))?;
    jwt::encode_with_signer(&payload, &header, active.signer.as_ref())
        .map_err(|e| Error::Internal(format!("jwt signing: {e}")))
}

#[derive(Debug, PartialEq, Eq)]
pub enum Rejected {
    /// Malformed, wrong algorithm or bad signature.
    Signature,
    /// Signed with a `kid` that is not among the keys given: a reload may find it.
    UnknownKey(String),
    WrongType,
    WrongIssuer,
    Expired,
    NotYetValid,
}

/// A token that passed [`verify`]: its claims and the key that signed it.
pub struct VerifiedJwt {
    pub claims: Map<String, Value>,
    pub kid: String,
}

/// Verifies signature (by `kid`, with the algorithm that key was made for, never `none` or HMAC), `typ`,
/// `iss`, `exp` and `iat`; returns the claims and the `kid`. `allow_expired` serves `id_token_hint` at
/// logout. Callers with an organization use `Provider::verify_jwt`, which reloads keys for a new `kid`.
pub fn verify(
    keys: &OrgKeys,
    token: &str,
    expected_typ: &str,
    issuer: &str,
    now: i64,
    allow_expired: bool,
) -> std::result::Result<VerifiedJwt, Rejected> {
    let unknown_kid = std::cell::RefCell::new(None);
    let decoded = jwt::decode_with_verifier_selector(token, |header| {
        let Some(kid) = header.key_id() else {
            return Ok(None);
        };
        let verifier = keys.verifiers.get(kid).map(|v| v.as_ref());
        if verifier.is_none() {
            *unknown_kid.borrow_mut() = Some(kid.to_string());
        }
        Ok(verifier)
    });
    let (payload, header) = decoded.map_err(|_| match unknown_kid.take() {
        Some(kid) => Rejected::UnknownKey(kid),
        None => Rejected::Signature,
    })?;
    let typ = header.token_type().unwrap_or("JWT");
    if !typ.eq_ignore_ascii_case(expected_typ)
        && !typ.eq_ignore_ascii_case(&format!("application/{expected_typ}"))
    {
        return Err(Rejected::WrongType);
    }
    let kid = header.key_id().unwrap_or_default().to_string();
    let claims: Map<String, Value> = payload.into();
    if claims.get("iss").and_then(Value::as_str) != Some(issuer) {
        return Err(Rejected::WrongIssuer);
    }
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or(Rejected::Expired)?;
    if exp <= now && !allow_expired {
        return Err(Rejected::Expired);
    }
    if let Some(iat) = claims.get("iat").and_then(Value::as_i64)
        && iat > now + LEEWAY_SECS
    {
        return Err(Rejected::NotYetValid);
    }
    if let Some(nbf) = claims.get("nbf").and_then(Value::as_i64)
        && nbf > now + LEEWAY_SECS
    {
        return Err(Rejected::NotYetValid);
    }
    Ok(VerifiedJwt { claims, kid })
}
