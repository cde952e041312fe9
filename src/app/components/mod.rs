//! Reusable UI pieces.

pub mod server_status;
