//! Latchkey's integration suite: one test binary (`cargo test --test it`) whose tests talk to the real
//! server over HTTP, run the real `latchkey` binary and use real SQLite and PostgreSQL databases.
//!
//! PostgreSQL and Redis come from `LATCHKEY_TEST_POSTGRES_URL` and `LATCHKEY_TEST_REDIS_URL`; without them
//! those tests print a SKIPPED line, unless `LATCHKEY_REQUIRE_BACKENDS=1` makes them fail instead.

#[macro_use]
pub mod helpers;

mod account_limits;
mod accounts;
mod admin_api;
mod audit;
mod cli;
mod client_limits;
mod concurrency;
mod config;
mod domain_rules;
mod durability;
mod email;
mod hardening_accounts;
mod hardening_durability;
mod hardening_oauth;
mod hardening_secrets;
mod hardening_signin;
mod keys;
mod logs;
mod mfa;
mod multi_instance;
mod network;
mod oauth;
mod oauth_negative;
mod oauth_review;
mod oauth_support;
mod passkeys;
mod passwords;
mod ratelimit;
mod server;
mod storage;
mod tenant_isolation;
mod verified_tokens;
