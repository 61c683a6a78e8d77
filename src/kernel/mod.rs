//! The kernel: types every layer shares and that do no I/O — typed ids and the clock.

pub mod clock;
pub mod ids;

pub use clock::Clock;
pub use ids::{
    ApiKeyId, AppId, ClientId, CredentialId, EmailId, GrantId, InvitationId, KeyId, OrgId,
    SessionId, UserId,
};
