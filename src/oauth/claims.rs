//! The claims of the tokens we sign, as types: access tokens (RFC 9068 plus our `sv` and `gid`), ID tokens
//! (OpenID Connect Core §2) and the standard user claims released by scope (§5.4), which UserInfo shares.
//!
//! Reading is lenient on purpose. A token signed with one of our keys but not minted by this code (an
//! older release, an operator's tool) is read the way the map lookups before these types read it: claims we
//! do not know are ignored, a missing claim is `None`, and a known claim of the wrong JSON type is treated
//! as missing rather than failing the whole token. What each missing claim means is decided where it is
//! used (no `jti` is inactive, no `sv` is a token without a user, and so on).

use serde::{Deserialize, Deserializer, Serialize};

use super::has_scope;
use crate::kernel::{ClientId, GrantId, SessionId};
use crate::model::users::User;

/// An access token's claims. Every claim is optional when read (see the module comment); tokens we issue
/// carry `iss`, `sub`, `aud`, `client_id`, `iat`, `exp`, `jti` and `scope`, and user tokens the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AccessClaims {
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub client_id: Option<ClientId>,
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The user's session_version at issuance: a bump (sign-out everywhere) ends the token.
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub sv: Option<i64>,
    /// The grant id, so introspection refuses tokens of a revoked grant at once.
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub gid: Option<GrantId>,
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub sid: Option<SessionId>,
}

impl AccessClaims {
    /// Reads verified claims (see the module comment on leniency). Moves the values; nothing is copied.
    ///
    /// On the introspection path (every cache miss), so each claim is taken out of the map by move, with
    /// the same leniency as the `Deserialize` impl (which `lenient` gives the other readers).
    pub fn from_verified(mut claims: serde_json::Map<String, serde_json::Value>) -> Self {
        use serde_json::Value;
        let mut string = |name: &str| match claims.remove(name) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        let (iss, sub, aud, client_id, jti, scope, gid, acr, sid) = (
            string("iss"),
            string("sub"),
            string("aud"),
            string("client_id"),
            string("jti"),
            string("scope"),
            string("gid"),
            string("acr"),
            string("sid"),
        );
        let int = |name: &str| claims.get(name).and_then(Value::as_i64);
        let (iat, exp, sv, auth_time) = (int("iat"), int("exp"), int("sv"), int("auth_time"));
        let amr = match claims.remove("amr") {
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(s) => Some(s),
                    _ => None,
                })
                .collect(),
            _ => None,
        };
        Self {
            iss,
            sub,
            aud,
            client_id: client_id.map(ClientId::from),
            iat,
            exp,
            jti,
            scope,
            sv,
            gid: gid.map(GrantId::from),
            auth_time,
            acr,
            amr,
            sid: sid.map(SessionId::from),
        }
    }

    /// The granted scope; none reads as empty.
    pub fn scope(&self) -> &str {
        self.scope.as_deref().unwrap_or_default()
    }
}

/// An ID token's claims, borrowed from the records they describe.
#[derive(Debug, Serialize)]
pub struct IdClaims<'a> {
    pub iss: &'a str,
    pub sub: &'a str,
    pub aud: &'a str,
    pub azp: &'a str,
    pub iat: i64,
    pub exp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub amr: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acr: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<&'a str>,
    pub at_hash: String,
    #[serde(flatten)]
    pub user: UserClaims<'a>,
}

/// What an `id_token_hint` is read for at logout: whom and which session it names, and for which client.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct IdTokenHint {
    #[serde(deserialize_with = "lenient")]
    pub aud: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub sub: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub sid: Option<String>,
}

impl IdTokenHint {
    pub fn from_verified(claims: serde_json::Map<String, serde_json::Value>) -> Self {
        Self::deserialize(serde_json::Value::Object(claims)).unwrap_or_default()
    }
}

/// Standard claims released for the granted scopes (OpenID Connect Core §5.4).
#[derive(Debug, Default, PartialEq, Eq, Serialize)]
pub struct UserClaims<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<i64>,
}

impl<'a> UserClaims<'a> {
    pub fn released(user: &'a User, scope: &str) -> Self {
        let email = has_scope(scope, "email");
        let profile = has_scope(scope, "profile");
        Self {
            email: email.then_some(user.email.as_str()),
            email_verified: email.then_some(user.email_verified),
            name: user.name.as_deref().filter(|_| profile),
            updated_at: profile.then_some(user.updated_at),
        }
    }
}

/// The UserInfo answer (OpenID Connect Core §5.3.2).
#[derive(Debug, Serialize)]
pub struct UserInfo<'a> {
    pub sub: &'a str,
    #[serde(flatten)]
    pub claims: UserClaims<'a>,
}

/// A claim of the wrong JSON type reads as missing, as `Value::as_str`/`as_i64` lookups did.
fn lenient<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(T::deserialize(value).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(value: serde_json::Value) -> AccessClaims {
        let serde_json::Value::Object(map) = value else {
            unreachable!()
        };
        AccessClaims::from_verified(map)
    }

    #[test]
    fn the_direct_reader_agrees_with_the_lenient_deserializer() {
        for value in [
            json!({"iss": "https://i", "sub": "usr_1", "aud": "cli", "client_id": "cli", "iat": 1, "exp": 2,
                   "jti": "at_1", "scope": "openid", "sv": 3, "gid": "grt_1", "auth_time": 4, "acr": "mfa",
                   "amr": ["pwd", "otp"], "sid": "ses_1", "extra": {"x": 1}}),
            json!({"iss": 5, "sub": null, "aud": ["a", "b"], "exp": "soon", "sv": 1.5, "amr": ["pwd", 7],
                   "gid": false, "sid": []}),
            json!({}),
        ] {
            let expected = AccessClaims::deserialize(value.clone()).unwrap();
            assert_eq!(read(value.clone()), expected, "{value}");
        }
    }

    #[test]
    fn unknown_claims_are_ignored_and_missing_ones_are_none() {
        let claims = read(json!({"iss": "https://i", "jti": "at_1", "exp": 5, "admin": true}));
        assert_eq!(claims.jti.as_deref(), Some("at_1"));
        assert_eq!(claims.exp, Some(5));
        assert_eq!(claims.sv, None);
        assert_eq!(claims.scope(), "");
    }

    #[test]
    fn a_known_claim_of_the_wrong_type_reads_as_missing() {
        let claims = read(json!({"jti": 7, "sv": "1", "gid": ["g"], "exp": 5, "scope": "openid"}));
        assert_eq!(claims.jti, None);
        assert_eq!(claims.sv, None);
        assert_eq!(claims.gid, None);
        assert_eq!(claims.exp, Some(5));
        assert_eq!(claims.scope(), "openid");
    }

    #[test]
    fn issued_claims_round_trip() {
        let issued = AccessClaims {
            iss: Some("https://i".into()),
            sub: Some("usr_1".into()),
            jti: Some("at_1".into()),
            exp: Some(9),
            amr: Some(vec!["pwd".into()]),
            ..AccessClaims::default()
        };
        let serde_json::Value::Object(map) = serde_json::to_value(&issued).unwrap() else {
            unreachable!()
        };
        assert!(!map.contains_key("sv"), "absent claims are not written");
        assert_eq!(AccessClaims::from_verified(map), issued);
    }
}
