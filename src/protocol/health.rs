//! The `GET /health` report.

use serde::{Deserialize, Serialize};

/// Body of `GET /health`: 200 when everything is up, 503 when the database is not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthReport {
    /// `ok` or `degraded`.
    pub status: String,
    /// The crate version of the running binary.
    pub version: String,
    /// Whole seconds since the server started.
    pub uptime_seconds: u64,
    /// `ok`, or `unavailable` when a trivial query fails.
    pub database: String,
    /// `sqlite` or `postgres`.
    pub store: String,
    /// This process's id among the instances sharing the database (which one answered).
    pub instance: String,
}

impl HealthReport {
    pub fn is_healthy(&self) -> bool {
        self.status == "ok"
    }
}
