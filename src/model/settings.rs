//! The per-organization policy records inside `OrgSettings`. Their checks (`validate`) live with the
//! feature that enforces them; the records live here so the store can read and write them.

use serde::{Deserialize, Serialize};

/// The longest password any policy allows.
pub const MAX_LENGTH: u32 = 128;

/// Per-organization limits (in `OrgSettings.rate_limits`); every field has a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimits {
    /// Sign-in attempts per account and client address per `login_window_secs`.
    pub login_attempts: u32,
    pub login_window_secs: u64,
    /// Reaching the sign-in limit locks that account-and-address pair for the window, doubling each
    /// time it is reached again within a day, up to this many seconds. Never permanent, and never for
    /// other addresses, so an attacker cannot lock a victim out.
    pub login_lockout_max_secs: u64,
    /// Password attempts (sign-in and the account page's current password) per account per hour from
    /// addresses the account has not signed in from before, all addresses together: many addresses
    /// cannot multiply the per-address limit. Addresses that signed in with the right password within
    /// [`KNOWN_ADDRESS_TTL`] are exempt, so an attacker spending this cap does not lock the owner out.
    pub login_attempts_per_account_per_hour: u32,
    /// Wrong second-factor codes (TOTP, email, recovery) per user per `mfa_window_secs`. Reaching the
    /// limit locks the user's second step for the window, doubling each time it is reached again within
    /// a day, up to `mfa_lockout_max_secs`.
    pub mfa_attempts: u32,
    pub mfa_window_secs: u64,
    pub mfa_lockout_max_secs: u64,
    /// Password-reset requests per email address per hour.
    pub reset_per_email_per_hour: u32,
    /// Password-reset requests per client address per hour; verification resends have a bucket of
    /// their own with the same size. (IPv6 clients are counted per /64 network.)
    pub reset_per_ip_per_hour: u32,
    /// Unauthenticated requests that send codes or links (resend verification, reset) per application
    /// (or, outside an authorization request, per organization) per hour. Only requests within the
    /// per-address and per-email limits count, so one client cannot spend it for everyone.
    pub code_requests_per_app_per_hour: u32,
    /// Sign-ups per client address (IPv6: per /64 network) per hour, registered addresses or not.
    pub signup_per_ip_per_hour: u32,
    /// Sign-ups per email address per hour: each sends the address a message (a verification link, or
    /// "you already have an account"), so this caps the mail one address can be sent.
    pub signup_per_email_per_hour: u32,
    /// Token-endpoint requests per client per minute (public clients: per client and address).
    pub token_requests_per_client_per_minute: u32,
    /// Introspection requests per client per minute.
    pub introspections_per_client_per_minute: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            login_attempts: 5,
            login_window_secs: 300,
            login_lockout_max_secs: 3600,
            login_attempts_per_account_per_hour: 20,
            mfa_attempts: 5,
            mfa_window_secs: 300,
            mfa_lockout_max_secs: 3600,
            reset_per_email_per_hour: 3,
            reset_per_ip_per_hour: 10,
            code_requests_per_app_per_hour: 100,
            signup_per_ip_per_hour: 10,
            signup_per_email_per_hour: 3,
            token_requests_per_client_per_minute: 1_200,
            introspections_per_client_per_minute: 12_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PasswordPolicy {
    pub min_length: u32,
    pub max_length: u32,
    pub require_lowercase: bool,
    pub require_uppercase: bool,
    pub require_digit: bool,
    pub require_symbol: bool,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_length: 10,
            max_length: MAX_LENGTH,
            require_lowercase: false,
            require_uppercase: false,
            require_digit: false,
            require_symbol: false,
        }
    }
}

/// Who must use a second factor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MfaPolicy {
    /// Users choose (the default).
    #[default]
    Optional,
    /// Owners and admins must; they are led through enrolment at their next sign-in.
    Admins,
    /// Everyone must.
    Everyone,
}

impl MfaPolicy {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "optional" => Some(Self::Optional),
            "admins" => Some(Self::Admins),
            "everyone" => Some(Self::Everyone),
            _ => None,
        }
    }
}

/// Per-organization MFA settings (in `OrgSettings.mfa`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MfaSettings {
    pub policy: MfaPolicy,
    /// Sensitive actions need a second-factor proof at most this many minutes old.
    pub step_up_minutes: u64,
}

impl Default for MfaSettings {
    fn default() -> Self {
        Self {
            policy: MfaPolicy::Optional,
            step_up_minutes: 10,
        }
    }
}
