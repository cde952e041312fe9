//! The browser's HTTP client for the server's JSON API. Only the hydrated bundle calls it;
//! on the server (where nothing clicks) each call answers that it needs a browser.

use crate::protocol::health::HealthReport;

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
