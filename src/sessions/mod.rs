//! Browser sessions at the provider. The cookie holds an opaque 256-bit id; the database holds its keyed
//! hash, so a database leak does not hand out live sessions. Which OAuth grants outlive a sign-out is
//! decided in [`grants`].

pub use crate::model::sessions::Session;

pub mod grants;
pub mod service;
