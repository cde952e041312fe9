//! The browser's HTTP client for the server's JSON API. Only the hydrated bundle calls it;
//! on the server (where nothing clicks) each call answers that it needs a browser.
//! Shared helpers are here; each area has its own module.

pub mod http;
pub mod jobs;
pub mod records;

use crate::protocol::{
    auth::{LoginRequest, Me},
    health::HealthReport,
};

/// `GET /health`. A 503 still carries a report (the database is down), so it is not an error.
pub async fn fetch_health() -> Result<HealthReport, String> {
    let answer = http::exchange("GET", "/health", None)
        .await
        .map_err(|e| e.message)?;
    answer
        .value()
        .map_err(|e| format!("unexpected answer ({}): {}", answer.status, e.message))
}

/// `POST /api/auth/login`; sets the session cookie.
pub async fn login(username: String, password: String) -> Result<Me, String> {
    http::send(
        "POST",
        "/api/auth/login",
        &LoginRequest { username, password },
    )
    .await
    .map_err(|e| e.message)
}

/// `GET /api/auth/me`; `Ok(None)` when not signed in.
pub async fn me() -> Result<Option<Me>, String> {
    let answer = http::exchange("GET", "/api/auth/me", None)
        .await
        .map_err(|e| e.message)?;
    match answer.status {
        401 => Ok(None),
        _ => answer.decode().map(Some).map_err(|e| e.message),
    }
}

/// `POST /api/auth/logout`.
pub async fn logout() -> Result<(), String> {
    http::exchange("POST", "/api/auth/logout", None)
        .await
        .map(drop)
        .map_err(|e| e.message)
}
