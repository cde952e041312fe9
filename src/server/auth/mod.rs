//! Authentication and authorization: argon2 passwords, server-side sessions behind an
//! HttpOnly cookie, bearer tokens, memberships with roles, CSRF and login throttling.

pub mod csrf;
pub mod demo;
pub mod principal;
pub mod routes;
pub mod secrets;
pub mod throttle;

pub use principal::{AuthVia, Principal};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "pfa_session";
