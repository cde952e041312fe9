//! Wire types shared by the server and the browser. Serde only, no I/O.
//!
//! - [`events`]: the card's `SyncEvent` (plus `seq` and `organizationId`).
//! - [`frames`]: everything else the server sends (control frames) and the client's commands.
//! - [`close_codes`]: WebSocket close codes and what a client does with each.
//! - [`health`]: the `GET /health` report.
//! - [`timestamp`], [`text`]: timestamps on the wire, and the serde glue of string-form values.

pub mod auth;
pub mod close_codes;
pub mod events;
pub mod frames;
pub mod health;
pub mod text;
pub mod timestamp;
pub mod validate;
