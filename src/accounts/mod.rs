//! The account lifecycle behind the hosted pages: sign-up, email verification, password reset and
//! password changes, and the password policy they all apply.

pub mod policy;
