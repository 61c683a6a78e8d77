//! Latchkey: an OpenID Connect provider and authentication server.
//!
//! The folders follow the product: `orgs`, `apps`, `users`, `keys`, `audit` hold domain logic that runs
//! without HTTP; `storage` is the database interface with its SQLite and PostgreSQL implementations;
//! `http` is the thin web edge; `cli` the command line.

pub mod accounts;
pub mod admin;
pub mod app;
pub mod apps;
pub mod audit;
pub mod cli;
pub mod client_addr;
pub mod config;
pub mod crypto;
pub mod deps;
pub mod email;
pub mod ephemeral;
pub mod error;
pub mod http;
pub mod kernel;
pub mod keys;
pub mod mfa;
pub mod model;
pub mod oauth;
pub mod orgs;
pub mod ratelimit;
pub mod sessions;
pub mod signin;
pub mod staff;
pub mod storage;
pub mod telemetry;
pub mod uri;
pub mod users;

/// Seconds since the Unix epoch: the unit of every stored timestamp.
pub fn time_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
