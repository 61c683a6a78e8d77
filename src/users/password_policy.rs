//! Per-organization password policy. Length is counted in characters (not bytes); the hashing scheme
//! makes every byte count however long the password is (see `crypto::password`), and 128 characters is
//! the hard ceiling.

pub use crate::model::settings::{MAX_LENGTH, PasswordPolicy};

use crate::error::{Error, Result};

/// The shortest minimum a policy may set.
pub const LOWEST_MIN_LENGTH: u32 = 8;

impl PasswordPolicy {
    /// Checks the policy itself (when an operator sets it).
    pub fn validate(&self) -> Result<()> {
        if !(LOWEST_MIN_LENGTH..=MAX_LENGTH).contains(&self.min_length) {
            return Err(Error::invalid(
                "password_min_length",
                format!("must be {LOWEST_MIN_LENGTH} to {MAX_LENGTH}"),
            ));
        }
        if !(self.min_length..=MAX_LENGTH).contains(&self.max_length) {
            return Err(Error::invalid(
                "password_max_length",
                format!("must be between the minimum length and {MAX_LENGTH}"),
            ));
        }
        Ok(())
    }
}

/// Checks a new password; the error says which rule it breaks (the field is `password`).
pub fn check(
    policy: &PasswordPolicy,
    password: &str,
    email: &str,
    name: Option<&str>,
) -> Result<()> {
    let rule = |message: String| Err(Error::invalid("password", message));
    let length = password.chars().count() as u32;
    if length < policy.min_length {
        return rule(format!("must be at least {} characters", policy.min_length));
    }
    if length > policy.max_length.min(MAX_LENGTH) {
        return rule(format!(
            "must be at most {} characters",
            policy.max_length.min(MAX_LENGTH)
        ));
    }
    let has = |f: fn(char) -> bool| password.chars().any(f);
    if policy.require_lowercase && !has(char::is_lowercase) {
        return rule("must contain a lower-case letter".into());
    }
    if policy.require_uppercase && !has(char::is_uppercase) {
        return rule("must contain an upper-case letter".into());
    }
    if policy.require_digit && !has(|c| c.is_ascii_digit()) {
        return rule("must contain a digit".into());
    }
    if policy.require_symbol && !has(|c| !c.is_alphanumeric() && !c.is_whitespace()) {
        return rule(
            "must contain a symbol (a character other than a letter, digit or space)".into(),
        );
    }
    let candidate = password.trim().to_lowercase();
    let email = email.trim().to_lowercase();
    if candidate == email {
        return rule("must not be your email address".into());
    }
    let local = email.split('@').next().unwrap_or_default();
    if local.chars().count() >= 4 && candidate == local {
        return rule("must not be the name part of your email address".into());
    }
    if let Some(name) = name.map(|n| n.trim().to_lowercase())
        && name.chars().count() >= 4
        && (candidate == name || candidate == name.replace(' ', ""))
    {
        return rule("must not be your name".into());
    }
    Ok(())
}

/// One sentence for the forms that set a password.
pub fn describe(policy: &PasswordPolicy) -> String {
    let mut needs = Vec::new();
    if policy.require_lowercase {
        needs.push("a lower-case letter");
    }
    if policy.require_uppercase {
        needs.push("an upper-case letter");
    }
    if policy.require_digit {
        needs.push("a digit");
    }
    if policy.require_symbol {
        needs.push("a symbol");
    }
    let mut text = format!(
        "Use {} to {} characters",
        policy.min_length,
        policy.max_length.min(MAX_LENGTH)
    );
    if !needs.is_empty() {
        text.push_str(" with ");
        match needs.len() {
            1 => text.push_str(needs[0]),
            n => {
                text.push_str(&needs[..n - 1].join(", "));
                text.push_str(" and ");
                text.push_str(needs[n - 1]);
            }
        }
    }
    text.push_str("; not your email address or name.");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(result: Result<()>) -> String {
        match result {
            Err(Error::Invalid { message, .. }) => message,
            other => panic!("expected a rule to fail, got {other:?}"),
        }
    }

    #[test]
    fn each_rule_names_itself() {
        let strict = PasswordPolicy {
            min_length: 12,
            require_lowercase: true,
            require_uppercase: true,
            require_digit: true,
            require_symbol: true,
            ..Default::default()
        };
        let email = "ann.smith@example.com";
        assert_eq!(
            message(check(&strict, "short", email, None)),
            "must be at least 12 characters"
        );
        assert_eq!(
            message(check(&strict, &"x".repeat(129), email, None)),
            "must be at most 128 characters"
        );
        assert_eq!(
            message(check(&strict, "ALLUPPERCASE1!", email, None)),
            "must contain a lower-case letter"
        );
        assert_eq!(
            message(check(&strict, "alllowercase1!", email, None)),
            "must contain an upper-case letter"
        );
        assert_eq!(
            message(check(&strict, "NoDigitsHere!!", email, None)),
            "must contain a digit"
        );
        assert!(
            message(check(&strict, "NoSymbolsHere1", email, None))
                .starts_with("must contain a symbol")
        );
        assert!(check(&strict, "Good-Password-1", email, None).is_ok());
    }

    #[test]
    fn the_email_and_name_are_not_passwords() {
        let policy = PasswordPolicy {
            min_length: 8,
            ..Default::default()
        };
        let email = "annabelle@example.com";
        assert_eq!(
            message(check(&policy, "Annabelle@Example.com", email, None)),
            "must not be your email address"
        );
        assert_eq!(
            message(check(&policy, "ANNABELLE", email, None)),
            "must not be the name part of your email address"
        );
        assert_eq!(
            message(check(&policy, "Grace Hopper", email, Some("grace hopper"))),
            "must not be your name"
        );
        assert_eq!(
            message(check(&policy, "gracehopper", email, Some("Grace Hopper"))),
            "must not be your name"
        );
        assert!(
            check(
                &policy,
                "grace hopper's password",
                email,
                Some("Grace Hopper")
            )
            .is_ok()
        );
    }

    #[test]
    fn lengths_count_characters_and_policies_are_checked() {
        let policy = PasswordPolicy::default();
        assert!(
            check(&policy, "ééééééééé", "a@example.com", None).is_err(),
            "9 characters, 18 bytes"
        );
        assert!(check(&policy, "éééééééééé", "a@example.com", None).is_ok());
        assert!(PasswordPolicy::default().validate().is_ok());
        assert!(
            PasswordPolicy {
                min_length: 7,
                ..Default::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            PasswordPolicy {
                min_length: 20,
                max_length: 12,
                ..Default::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            PasswordPolicy {
                max_length: 129,
                ..Default::default()
            }
            .validate()
            .is_err()
        );
    }

    #[test]
    fn the_description_lists_the_requirements() {
        assert_eq!(
            describe(&PasswordPolicy::default()),
            "Use 10 to 128 characters; not your email address or name."
        );
        let strict = PasswordPolicy {
            require_digit: true,
            require_symbol: true,
            require_uppercase: true,
            ..Default::default()
        };
        assert_eq!(
            describe(&strict),
            "Use 10 to 128 characters with an upper-case letter, a digit and a symbol; not your email address or name."
        );
    }
}
