//! Which OAuth grants survive a sign-out. The rule is decided here, in the domain, and handed to the
//! store as data (the scopes whose grants are kept), so the SQL applies it without knowing it.
//!
//! - Ending one session, or every other session, ends the grants those sessions made, except grants
//!   with `offline_access`: the client asked for access that outlives the browser session, and the user
//!   consented to it.
//! - A password change (or reset) and disabling the user end everything: every session and every grant,
//!   `offline_access` included, since they are what a thief of the old password or of a session would
//!   keep.

/// The scope that asks for a grant to outlive the session that made it (OpenID Connect Core 11).
pub const OFFLINE_ACCESS: &str = "offline_access";

/// A way one or more of a user's sessions end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignOut {
    /// One session ends (signing out, or the user ending it from the session list).
    Session,
    /// Every session but the current one ends ("sign out everywhere else").
    OtherSessions,
    /// The password was changed or reset.
    PasswordChanged,
    /// An operator disabled the user. The store's disable already ends everything (it bumps
    /// session_version and revokes every grant in the same transaction); the rule is stated here so
    /// every way of signing out is decided in one place.
    UserDisabled,
}

/// The grants that outlive a sign-out: those whose scope holds one of `scopes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepGrants {
    scopes: &'static [&'static str],
}

impl KeepGrants {
    /// The rule: which grants survive `sign_out`.
    pub fn after(sign_out: SignOut) -> Self {
        let scopes: &'static [&'static str] = match sign_out {
            SignOut::Session | SignOut::OtherSessions => &[OFFLINE_ACCESS],
            SignOut::PasswordChanged | SignOut::UserDisabled => &[],
        };
        Self { scopes }
    }

    /// The scopes whose grants are kept (what the store is given).
    pub fn scopes(&self) -> &'static [&'static str] {
        self.scopes
    }

    /// Whether a grant with this (space-separated) scope survives.
    pub fn keeps(&self, scope: &str) -> bool {
        scope
            .split_ascii_whitespace()
            .any(|s| self.scopes.contains(&s))
    }
}

impl SignOut {
    /// Whether every session and grant of the user ends (their session_version is bumped), not only
    /// the sessions named.
    pub fn ends_everything(self) -> bool {
        matches!(self, SignOut::PasswordChanged | SignOut::UserDisabled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_access_outlives_a_session_but_not_a_password_change() {
        let scope = "openid email offline_access";
        assert!(KeepGrants::after(SignOut::Session).keeps(scope));
        assert!(KeepGrants::after(SignOut::OtherSessions).keeps(scope));
        assert!(!KeepGrants::after(SignOut::Session).keeps("openid email"));
        assert!(!KeepGrants::after(SignOut::PasswordChanged).keeps(scope));
        assert!(!KeepGrants::after(SignOut::UserDisabled).keeps(scope));
        assert!(SignOut::PasswordChanged.ends_everything());
        assert!(!SignOut::Session.ends_everything());
    }

    #[test]
    fn scope_tokens_match_whole() {
        let keep = KeepGrants::after(SignOut::Session);
        assert!(!keep.keeps("openid offline_accessx"));
        assert!(!keep.keeps("openid offlineXaccess"));
        assert!(keep.keeps("offline_access"));
    }
}
