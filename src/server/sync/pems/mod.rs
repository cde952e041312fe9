//! PEMS, the external system of record: the built-in simulator (and, later, the client).

pub mod simulator;
