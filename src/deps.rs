//! What a piece of the domain needs, one capability at a time. A domain operation names exactly the
//! capabilities it uses (`deps: &(impl HasDb + HasClock)`), so its signature says what it touches and the
//! compiler refuses anything else: an operation that only reads the database cannot hash a password or
//! send an email. The composition root (`app`) owns the one value that has them all; the HTTP edge and the
//! CLI hand it down, and a domain test can hand down a smaller one.
//!
//! Traits rather than one struct of components (the old `Services` bag): a struct passed whole gives every
//! callee everything, and a feature that imported it formed an import cycle with the root that built it.

use std::sync::Arc;

use crate::config::Config;
use crate::crypto::password::PasswordHasher;
use crate::crypto::{AuditKeys, SecretBox};
use crate::ephemeral::Ephemeral;
use crate::kernel::Clock;
use crate::storage::Db;

/// The database, through its tenant and system doors.
pub trait HasDb {
    fn db(&self) -> &Db;
}

/// The master key's sealer and keyed hashes for secrets at rest.
pub trait HasSecrets {
    fn secrets(&self) -> &SecretBox;
}

/// The keys that verify the audit chain and sign its checkpoints.
pub trait HasAuditKeys {
    fn audit_keys(&self) -> &AuditKeys;
}

/// The bounded password-hashing pool.
pub trait HasPasswords {
    fn passwords(&self) -> &PasswordHasher;
}

/// Rate-limit windows and one-time markers: Redis when configured, this process otherwise.
pub trait HasEphemeral {
    fn ephemeral(&self) -> &Arc<dyn Ephemeral>;
}

/// Where "now" comes from: the system clock, or a test's adjustable one.
pub trait HasClock {
    fn clock(&self) -> &Clock;

    /// Seconds since the Unix epoch, by [`HasClock::clock`].
    fn now(&self) -> i64 {
        self.clock().now()
    }
}

/// The instance's configuration.
pub trait HasConfig {
    fn config(&self) -> &Config;
}

/// Wakes the email delivery worker after a transaction that queued messages has committed, so they go out
/// now instead of at the next poll; harmless when no worker runs.
pub trait HasMailer {
    fn wake_email_delivery(&self);
}

/// The WebAuthn relying party (the public URL's host); `None` when that host is an IP address.
pub trait HasWebauthn {
    fn webauthn(&self) -> Option<&webauthn_rs::prelude::Webauthn>;
}

/// Forwards each capability through a reference and an `Arc`, so `&deps`, `&Arc<dyn …>` and the value
/// itself all serve.
macro_rules! forward {
    ($($trait:ident { $($body:tt)* })*) => {$(
        impl<T: $trait + ?Sized> $trait for &T { $($body)* }
        impl<T: $trait + ?Sized> $trait for Arc<T> { $($body)* }
    )*};
}

forward! {
    HasDb { fn db(&self) -> &Db { (**self).db() } }
    HasSecrets { fn secrets(&self) -> &SecretBox { (**self).secrets() } }
    HasAuditKeys { fn audit_keys(&self) -> &AuditKeys { (**self).audit_keys() } }
    HasPasswords { fn passwords(&self) -> &PasswordHasher { (**self).passwords() } }
    HasEphemeral { fn ephemeral(&self) -> &Arc<dyn Ephemeral> { (**self).ephemeral() } }
    HasClock { fn clock(&self) -> &Clock { (**self).clock() } }
    HasConfig { fn config(&self) -> &Config { (**self).config() } }
    HasMailer { fn wake_email_delivery(&self) { (**self).wake_email_delivery() } }
    HasWebauthn { fn webauthn(&self) -> Option<&webauthn_rs::prelude::Webauthn> { (**self).webauthn() } }
}
