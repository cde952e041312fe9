//! PEMS, the external system of record: the wire format, the HTTP client the sync engine
//! writes through, and the built-in simulator with fault injection.

pub mod client;
pub mod faults;
pub mod simulator;
pub mod wire;
