//! Plain records shared by the store and the features: what a row holds, with no I/O and no policy. Below
//! the store in the layers, so the store can name them without importing the features that use them.

pub mod apps;
pub mod audit;
pub mod email;
pub mod grants;
pub mod keys;
pub mod onetime;
pub mod orgs;
pub mod sessions;
pub mod settings;
pub mod users;
