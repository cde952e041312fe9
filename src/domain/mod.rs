//! Domain types of PFA planning: records, drafts, sync jobs, conflicts, versions.
//! Pure: no I/O, no framework types. Parsed and validated at the edge of the server.

pub mod date;
pub mod demo_data;
pub mod org;
pub mod pfa;
pub mod role;
pub mod sync;
