//! HTTP routes other than the Leptos pages: health and the JSON API.

pub mod health;

use super::state::AppState;
use axum::{routing::get, Router};

/// The API routes, merged into the app router by `startup`.
pub fn routes() -> Router<AppState> {
    Router::new().route("/health", get(health::health))
}
