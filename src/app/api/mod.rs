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

#[cfg(feature = "hydrate")]
pub(crate) fn error_message(status: u16, body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| format!("the server answered {status}"))
}

/// `GET /health`. A 503 still carries a report (the database is down), so it is not an error.
pub async fn fetch_health() -> Result<HealthReport, String> {
    #[cfg(feature = "hydrate")]
    {
        let response = gloo_net::http::Request::get("/health")
            .send()
            .await
            .map_err(|e| e.to_string())?;
        response
            .json::<HealthReport>()
            .await
            .map_err(|e| format!("unexpected answer ({}): {e}", response.status()))
    }
    #[cfg(not(feature = "hydrate"))]
    {
        Err("the health check runs in the browser".to_owned())
    }
}

/// `POST /api/auth/login`; sets the session cookie.
pub async fn login(username: String, password: String) -> Result<Me, String> {
    #[cfg(feature = "hydrate")]
    {
        let response = gloo_net::http::Request::post("/api/auth/login")
            .json(&LoginRequest { username, password })
            .map_err(|e| e.to_string())?
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if response.ok() {
            response.json::<Me>().await.map_err(|e| e.to_string())
        } else {
            Err(error_message(
                response.status(),
                &response.text().await.unwrap_or_default(),
            ))
        }
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = LoginRequest { username, password };
        Err("signing in runs in the browser".to_owned())
    }
}

/// `GET /api/auth/me`; `Ok(None)` when not signed in.
pub async fn me() -> Result<Option<Me>, String> {
    #[cfg(feature = "hydrate")]
    {
        let response = gloo_net::http::Request::get("/api/auth/me")
            .send()
            .await
            .map_err(|e| e.to_string())?;
        match response.status() {
            200 => response
                .json::<Me>()
                .await
                .map(Some)
                .map_err(|e| e.to_string()),
            401 => Ok(None),
            status => Err(error_message(
                status,
                &response.text().await.unwrap_or_default(),
            )),
        }
    }
    #[cfg(not(feature = "hydrate"))]
    {
        Err("runs in the browser".to_owned())
    }
}

/// `POST /api/auth/logout`.
pub async fn logout() -> Result<(), String> {
    #[cfg(feature = "hydrate")]
    {
        gloo_net::http::Request::post("/api/auth/logout")
            .send()
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }
    #[cfg(not(feature = "hydrate"))]
    {
        Err("runs in the browser".to_owned())
    }
}
