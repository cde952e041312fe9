//! HTTP routes other than the Leptos pages: health and the JSON API (documented in
//! docs/api.md).

pub mod access;
pub mod drafts;
pub mod health;
pub mod jobs;
pub mod records;

use super::state::AppState;
use axum::{
    routing::{get, post},
    Router,
};

/// Health, outside `/api` (no CSRF guard needed: it changes nothing).
pub fn routes() -> Router<AppState> {
    Router::new().route("/health", get(health::health))
}

/// The JSON API of records, drafts, jobs and conflicts.
pub fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/api/orgs/{org_id}/records", get(records::list))
        .route("/api/orgs/{org_id}/records/{pfa_id}", get(records::one))
        .route(
            "/api/orgs/{org_id}/records/{pfa_id}/history",
            get(records::history),
        )
        .route(
            "/api/orgs/{org_id}/records/{pfa_id}/rollback",
            post(records::rollback),
        )
        .route(
            "/api/orgs/{org_id}/drafts",
            get(drafts::list).put(drafts::save),
        )
        .route("/api/orgs/{org_id}/drafts/discard", post(drafts::discard))
        .route("/api/orgs/{org_id}/drafts/commit", post(drafts::commit))
        .route("/api/orgs/{org_id}/jobs", get(jobs::list))
        .route("/api/orgs/{org_id}/jobs/{job_id}", get(jobs::one))
        .route("/api/orgs/{org_id}/conflicts", get(jobs::conflicts))
        .route(
            "/api/orgs/{org_id}/conflicts/{conflict_id}",
            get(jobs::conflict),
        )
        .route(
            "/api/orgs/{org_id}/conflicts/{conflict_id}/resolve",
            post(jobs::resolve),
        )
        .route("/api/orgs/{org_id}/audit", get(jobs::audit))
}
