//! The sync engine and its PEMS side.

pub mod pems;
