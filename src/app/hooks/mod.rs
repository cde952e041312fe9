//! Browser hooks: the sync socket (`use_sync_status_updates`) and its pure connection logic.

pub mod drafts;
pub mod reconnect;
pub mod sync_status;
