//! One module per page.

pub mod home;
pub mod jobs;
pub mod lazy;
pub mod login;
pub mod not_found;
pub mod org;
pub mod orgs;
pub mod record_history;
