//! The hosted pages' templates, one file per area. Handlers parse, call the domain and hand the outcome
//! to a function here; `maud` escapes every interpolated value unless it is explicitly pre-escaped.

pub mod account;
pub mod accounts;
pub mod consent;
pub mod layout;
pub mod mfa;
pub mod signin;
pub mod staff;
