//! `GET /health`: 200 with a report when the database answers, 503 when it does not.

use crate::{
    protocol::health::HealthReport,
    server::{
        state::StartedAt,
        store::{Backend, Store},
    },
};
use axum::{extract::State, http::StatusCode, Json};

#[tracing::instrument(skip_all)]
pub async fn health(
    State(store): State<Store>,
    State(started): State<StartedAt>,
) -> (StatusCode, Json<HealthReport>) {
    let database_ok = match store.ping().await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!("health check: database unavailable: {e:#}");
            false
        }
    };
    let report = HealthReport {
        status: if database_ok { "ok" } else { "degraded" }.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime_seconds: started.0.elapsed().as_secs(),
        database: if database_ok { "ok" } else { "unavailable" }.to_owned(),
        store: match store.backend() {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
        .to_owned(),
        instance: store.instance().to_owned(),
    };
    let status = if database_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report))
}
