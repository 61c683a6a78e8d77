//! The enumeration timing test as its own test binary, so it runs alone (cargo runs test binaries one
//! after another) instead of beside the whole integration suite. It shares the suite's fixtures.

// The shared fixtures define more than this binary uses.
#![allow(unused_macros)]

#[path = "it/helpers.rs"]
#[macro_use]
pub mod helpers;

#[path = "it/oauth_support.rs"]
mod oauth_support;

#[path = "it/enumeration.rs"]
mod enumeration;
