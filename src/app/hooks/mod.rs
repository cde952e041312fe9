//! Browser hooks: the sync socket (`use_sync_status_updates`), its pure connection logic and
//! the sync commands sent over it.

pub mod commands;
pub mod drafts;
pub mod live_sync;
pub mod reconnect;
pub mod sync_status;
