//! Real-time delivery: the per-org WebSocket endpoint.

pub mod ws;

use super::state::AppState;
use axum::{routing::get, Router};

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/ws/sync/{org_id}", get(ws::sync_socket))
}
