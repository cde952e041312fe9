//! Reusable UI pieces.

pub mod server_status;
pub mod status_banner;
