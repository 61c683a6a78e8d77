//! Typed identifiers. Each kind of id is its own type, so a user id cannot be passed where an organization
//! id is expected: that is a compile error, not a cross-tenant bug.
//!
//! An id reads as the string it is stored as (`Deref<Target = str>`, `Display`), binds to and decodes from
//! a text column on both backends (`sqlx(transparent)`), and serializes as a plain JSON string. It is made
//! from a string only explicitly (`UserId::from(..)`), which the edge does when it parses a path, a form or
//! a token, and [`UserId::generate`] mints a new random one with the kind's readable prefix.
//!
//! ```compile_fail
//! use latchkey::kernel::{OrgId, UserId};
//! fn members_of(_org: &OrgId) {}
//! let user = UserId::from("usr_1");
//! members_of(&user); // a user id is not an organization id
//! ```

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize, sqlx::Type)]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(String);

        impl $name {
            /// The readable prefix of generated ids of this kind.
            pub const PREFIX: &'static str = $prefix;

            /// A new random id: the prefix and 128 bits from the OS CSPRNG, in hex.
            pub fn generate() -> Self {
                $name(crate::crypto::random_id($prefix))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                $name(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                $name(id.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }
    };
}

typed_id!(
    /// An organization (a tenant): `org_…`.
    OrgId, "org"
);
typed_id!(
    /// A user of one organization: `usr_…`.
    UserId, "usr"
);
typed_id!(
    /// An application's internal id: `app_…` (not the OAuth `client_id`).
    AppId, "app"
);
typed_id!(
    /// An application's OAuth `client_id`, as clients present it.
    ClientId, "cli"
);
typed_id!(
    /// A grant (a token family: its code, refresh tokens and access tokens): `grt_…`.
    GrantId, "grt"
);
typed_id!(
    /// A browser session's public id (`ses_…`), the one shown on the account page and put in tokens'
    /// `sid`; the cookie's secret is stored only as a hash.
    SessionId, "ses"
);
typed_id!(
    /// A credential (password, TOTP seed, passkey, recovery code, email-code factor): `cred_…`.
    CredentialId, "cred"
);
typed_id!(
    /// A signing key's `kid`: `key_…`.
    KeyId, "key"
);
typed_id!(
    /// A queued email: `eml_…`.
    EmailId, "eml"
);
typed_id!(
    /// An organization's admin API key: `akey_…` (the id, not the secret).
    ApiKeyId, "akey"
);
typed_id!(
    /// A pending invitation to an organization's team: `inv_…`.
    InvitationId, "inv"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_carry_their_prefix_and_differ() {
        let a = UserId::generate();
        let b = UserId::generate();
        assert!(a.starts_with("usr_") && a.len() == 4 + 32, "{a}");
        assert_ne!(a, b);
        assert!(OrgId::generate().starts_with("org_"));
    }

    #[test]
    fn ids_serialize_as_plain_strings() {
        let id = OrgId::from("org_1");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"org_1\"");
        let back: OrgId = serde_json::from_str("\"org_1\"").unwrap();
        assert_eq!(back, id);
        assert_eq!(format!("{id} {id:?}"), "org_1 \"org_1\"");
    }
}
