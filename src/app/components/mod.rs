//! Reusable UI pieces.

pub mod conflict_dialog;
pub mod org_tabs;
pub mod records_grid;
pub mod server_status;
pub mod session_nav;
pub mod status_banner;
pub mod toasts;
