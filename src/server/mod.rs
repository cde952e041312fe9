//! Everything that exists only on the server (feature `ssr`).

pub mod accept;
pub mod accounts_cli;
pub mod auth;
pub mod cli;
pub mod config;
pub mod error;
pub mod http;
pub mod realtime;
pub mod shutdown;
pub mod startup;
pub mod state;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod ws_check;

pub use startup::Application;
