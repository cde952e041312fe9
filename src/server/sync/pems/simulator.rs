//! The built-in PEMS simulator: its own axum router on its own port, keeping PFA records in
//! memory with a version each, so the app works with zero setup.
//!
//! Endpoints: `GET /api/pems/health`, `GET /api/pems/pfa/{pfaId}?organizationCode=C`,
//! `PUT /api/pems/pfa/{pfaId}` (body `{pfaId, organizationCode, changes, version, modifiedBy,
//! changeReason}`; 409 VERSION_CONFLICT when `version` is not the current one).

use anyhow::Context;
use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// One record as PEMS knows it.
#[derive(Debug, Clone)]
struct PemsRecord {
    fields: Map<String, Value>,
    version: i64,
    updated_at: DateTime<Utc>,
    modified_by: String,
}

#[derive(Clone, Default)]
pub struct Simulator {
    records: Arc<Mutex<HashMap<(String, String), PemsRecord>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrgQuery {
    organization_code: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WriteRequest {
    pfa_id: String,
    organization_code: String,
    changes: Map<String, Value>,
    version: i64,
    modified_by: String,
    #[serde(default)]
    change_reason: Option<String>,
}

fn error(status: StatusCode, code: &str, message: &str, extra: Value) -> Response {
    let mut body = json!({ "success": false, "error": code, "message": message });
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    (status, Json(body)).into_response()
}

impl Simulator {
    pub fn router(&self) -> Router {
        Router::new()
            .route(
                "/api/pems/health",
                get(|| async { Json(json!({ "status": "ok" })) }),
            )
            .route("/api/pems/pfa/{pfa_id}", get(read).put(write))
            .with_state(self.clone())
    }
}

async fn read(
    State(sim): State<Simulator>,
    Path(pfa_id): Path<String>,
    Query(q): Query<OrgQuery>,
) -> Response {
    let records = sim.records.lock().expect("simulator lock");
    match records.get(&(q.organization_code, pfa_id.clone())) {
        Some(r) => Json(json!({
            "pfaId": pfa_id,
            "version": r.version,
            "fields": r.fields,
            "updatedAt": r.updated_at.to_rfc3339_opts(SecondsFormat::Micros, true),
            "modifiedBy": r.modified_by,
        }))
        .into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "no such PFA record",
            json!({}),
        ),
    }
}

async fn write(
    State(sim): State<Simulator>,
    Path(pfa_id): Path<String>,
    body: Result<Json<WriteRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(req)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "malformed body",
            json!({}),
        );
    };
    if req.pfa_id != pfa_id || req.modified_by.trim().is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "pfaId must match the path and modifiedBy is required",
            json!({}),
        );
    }
    let mut records = sim.records.lock().expect("simulator lock");
    let record = records
        .entry((req.organization_code, pfa_id.clone()))
        .or_insert_with(|| PemsRecord {
            fields: Map::new(),
            version: req.version,
            updated_at: Utc::now(),
            modified_by: String::new(),
        });
    if record.version != req.version {
        let conflicting: Vec<&String> = req
            .changes
            .keys()
            .filter(|k| record.fields.contains_key(*k))
            .collect();
        return error(
            StatusCode::CONFLICT,
            "VERSION_CONFLICT",
            "the record changed in PEMS",
            json!({ "currentVersion": record.version, "expectedVersion": req.version,
                    "conflictingFields": conflicting }),
        );
    }
    record.fields.extend(req.changes);
    record.version += 1;
    record.updated_at = Utc::now();
    record.modified_by = req.modified_by;
    tracing::debug!(pfa_id, version = record.version, reason = ?req.change_reason, "PEMS write");
    Json(json!({
        "success": true,
        "pfaId": pfa_id,
        "newVersion": record.version,
        "updatedAt": record.updated_at.to_rfc3339_opts(SecondsFormat::Micros, true),
    }))
    .into_response()
}

/// A simulator running in the background of the current process.
pub struct RunningSimulator {
    pub addr: SocketAddr,
    pub base_url: String,
}

/// Starts the simulator on `addr` and stops it when `shutdown` is cancelled.
pub async fn spawn(
    addr: SocketAddr,
    shutdown: CancellationToken,
) -> anyhow::Result<RunningSimulator> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot bind the PEMS simulator to {addr}"))?;
    let addr = listener.local_addr()?;
    let router = Simulator::default().router();
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
        {
            tracing::error!("PEMS simulator stopped: {e}");
        }
    });
    Ok(RunningSimulator {
        addr,
        base_url: format!("http://{addr}"),
    })
}

/// `pfa-sync pems-sim`: the simulator alone, until SIGINT/SIGTERM.
pub async fn run_standalone(addr: SocketAddr) -> anyhow::Result<()> {
    let token = CancellationToken::new();
    let sim = spawn(addr, token.clone()).await?;
    println!("PEMS simulator listening on {}", sim.base_url);
    crate::server::shutdown::cancel_on_signal(token).await;
    Ok(())
}
