//! Real-time delivery: the per-org hub with its event log, each connection's bounded outbox,
//! the WebSocket endpoint, sync commands and the publish API.

pub mod commands;
pub mod connection;
pub mod hub;
pub mod listener;
pub mod outbox;
pub mod publish;
pub mod upgrade;
pub mod ws;

use super::state::AppState;
use axum::{
    routing::{get, post},
    Router,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/ws/sync/{org_id}", get(ws::sync_socket))
        .route("/api/orgs/{org_id}/events", post(publish::publish))
}
