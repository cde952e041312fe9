//! The sync engine and its PEMS side.

pub mod engine;
pub mod events;
pub mod pems;
pub mod runner;
pub mod writer;
