//! The built-in PEMS simulator: its own axum router on its own port, keeping PFA records in
//! memory with a version each (and the fields every version changed), so the app works with
//! zero setup and tests can provoke every failure the real PEMS shows.
//!
//! PEMS endpoints: `GET /api/pems/health`, `GET /api/pems/pfa/{pfaId}?organizationCode=C`,
//! `PUT /api/pems/pfa/{pfaId}` (optional `Idempotency-Key` header) and
//! `POST /api/pems/pfa/batch`. Test endpoints: `GET|PUT|DELETE /api/pems/_faults`,
//! `POST /api/pems/_faults/remote-edit` and `GET /api/pems/_stats`. See `docs/pems.md`.

use super::{
    faults::{self, FaultState, Faults, InvalidFaults},
    wire::{
        code_for_status, record_key, BatchRequest, BatchResponse, BatchResult, ErrorBody,
        RemoteRecord, Stats, VersionConflict, WriteOk, WriteRequest, SERVER_ERROR,
        VERSION_CONFLICT,
    },
};
use anyhow::Context;
use axum::{
    extract::{rejection::JsonRejection, Path, Query, State},
    http::{header::RETRY_AFTER, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::SocketAddr,
    ops::Bound,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};
use tokio::{net::TcpListener, time::Instant};
use tokio_util::sync::CancellationToken;

/// Most writes one batch request may carry.
pub const MAX_BATCH_ITEMS: usize = 100;

/// One record as PEMS knows it, with the fields each version changed.
#[derive(Debug, Clone)]
struct PemsRecord {
    fields: Map<String, Value>,
    version: i64,
    updated_at: String,
    modified_by: String,
    changed_by_version: BTreeMap<i64, Vec<String>>,
}

impl PemsRecord {
    fn new(version: i64) -> Self {
        Self {
            fields: Map::new(),
            version,
            updated_at: now_rfc3339(),
            modified_by: String::new(),
            changed_by_version: BTreeMap::new(),
        }
    }

    fn apply(&mut self, changes: Map<String, Value>, modified_by: &str) {
        self.version += 1;
        let names = changes.keys().cloned().collect();
        self.changed_by_version.insert(self.version, names);
        self.fields.extend(changes);
        self.updated_at = now_rfc3339();
        self.modified_by = modified_by.to_owned();
    }

    fn conflict(&self, req: &WriteRequest) -> VersionConflict {
        let since = (Bound::Excluded(req.version), Bound::Unbounded);
        let changed: BTreeSet<&String> = self
            .changed_by_version
            .range(since)
            .flat_map(|(_, names)| names)
            .collect();
        VersionConflict {
            success: false,
            error: VERSION_CONFLICT.into(),
            message: format!(
                "the record is at version {} in PEMS, the change was made against {}",
                self.version, req.version
            ),
            current_version: self.version,
            expected_version: req.version,
            conflicting_fields: changed
                .iter()
                .filter(|f| req.changes.contains_key(f.as_str()))
                .map(|f| f.to_string())
                .collect(),
            changed_fields: changed.iter().map(|f| f.to_string()).collect(),
            current_values: changed
                .iter()
                .map(|f| {
                    (
                        f.to_string(),
                        self.fields.get(*f).cloned().unwrap_or_default(),
                    )
                })
                .collect(),
        }
    }

    fn to_remote(&self, pfa_id: &str) -> RemoteRecord {
        RemoteRecord {
            pfa_id: pfa_id.to_owned(),
            version: self.version,
            fields: self.fields.clone(),
            updated_at: self.updated_at.clone(),
            modified_by: self.modified_by.clone(),
        }
    }
}

fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}

type RecordKey = (String, String);

#[derive(Default)]
struct Inner {
    records: HashMap<RecordKey, PemsRecord>,
    faults: FaultState,
    /// The 200 answer given to each (organization, pfaId, Idempotency-Key).
    replies: HashMap<(String, String, String), WriteOk>,
    stats: Stats,
}

/// A handle on the simulator's state; clones share it, so tests and the app drive the same
/// PEMS the router serves.
#[derive(Clone, Default)]
pub struct Simulator {
    inner: Arc<Mutex<Inner>>,
}

/// A status, its JSON body and (for 429/503) the seconds to put in `Retry-After`.
struct Answer {
    status: u16,
    body: Value,
    retry_after: Option<u64>,
}

impl Answer {
    fn ok(body: impl Serialize) -> Self {
        let body = serde_json::to_value(body).expect("wire types serialize");
        Self {
            status: 200,
            body,
            retry_after: None,
        }
    }

    fn error(status: u16, message: impl Into<String>) -> Self {
        let code = code_for_status(status).unwrap_or(SERVER_ERROR);
        let body = ErrorBody {
            success: false,
            error: code.into(),
            message: message.into(),
        };
        let retry_after = matches!(status, 429 | 503).then_some(1);
        Self {
            status,
            ..Self::ok(body)
        }
        .with_retry_after(retry_after)
    }

    fn with_retry_after(mut self, secs: Option<u64>) -> Self {
        self.retry_after = secs;
        self
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(self.body)).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(RETRY_AFTER, secs.into());
        }
        response
    }
}

impl Inner {
    /// The 503 of an outage at `now`, with the seconds left as `Retry-After`.
    fn outage_answer(&self, now: Instant) -> Option<Answer> {
        let left = self.faults.outage_remaining(now)?;
        let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        Some(
            Answer::error(503, "PEMS is unavailable (simulated outage)")
                .with_retry_after(Some(secs)),
        )
    }

    /// One write request, PUT or batch item: faults, validation, idempotency, version check.
    fn write(
        &mut self,
        path_pfa: &str,
        req: Result<WriteRequest, String>,
        key: Option<&str>,
        now: Instant,
    ) -> Answer {
        self.stats.requests += 1;
        if let Some(status) = self.faults.decide_write(now) {
            return self
                .outage_answer(now)
                .unwrap_or_else(|| Answer::error(status, format!("simulated {status} fault")));
        }
        let req = match req.and_then(|r| valid(path_pfa, r)) {
            Ok(req) => req,
            Err(message) => return Answer::error(400, message),
        };
        let (org, pfa) = (req.organization_code.clone(), req.pfa_id.clone());
        if let Some(ok) =
            key.and_then(|k| self.replies.get(&(org.clone(), pfa.clone(), k.to_owned())))
        {
            return Answer::ok(ok);
        }
        let record = self
            .records
            .entry((org.clone(), pfa.clone()))
            .or_insert_with(|| PemsRecord::new(req.version));
        if record.version != req.version {
            return Answer {
                status: 409,
                ..Answer::ok(record.conflict(&req))
            };
        }
        record.apply(req.changes, &req.modified_by);
        tracing::debug!(pfa_id = pfa, version = record.version, reason = ?req.change_reason, "PEMS write");
        let ok = WriteOk {
            success: true,
            pfa_id: pfa.clone(),
            new_version: record.version,
            updated_at: record.updated_at.clone(),
        };
        self.stats.writes += 1;
        *self
            .stats
            .by_record
            .entry(record_key(&org, &pfa))
            .or_default() += 1;
        if let Some(k) = key {
            self.replies.insert((org, pfa, k.to_owned()), ok.clone());
        }
        Answer::ok(ok)
    }
}

fn valid(path_pfa: &str, req: WriteRequest) -> Result<WriteRequest, String> {
    if req.pfa_id != path_pfa {
        Err(format!(
            "pfaId {} does not match the path ({path_pfa})",
            req.pfa_id
        ))
    } else if req.organization_code.trim().is_empty() {
        Err("organizationCode is required".into())
    } else if req.modified_by.trim().is_empty() {
        Err("modifiedBy is required".into())
    } else if req.changes.is_empty() {
        Err("changes must name at least one field".into())
    } else if !(0..i64::MAX).contains(&req.version) {
        Err("version must be a non-negative integer".into())
    } else {
        Ok(req)
    }
}

impl Simulator {
    /// An empty PEMS with no faults.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The simulator's routes, all under `/api/pems`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/api/pems/health", get(health))
            .route("/api/pems/pfa/batch", post(write_batch))
            .route("/api/pems/pfa/{pfa_id}", get(read).put(write))
            .merge(faults::routes())
            .with_state(self.clone())
    }

    /// Replaces the fault settings; an outage starts now.
    pub fn set_faults(&self, faults: Faults) -> Result<(), InvalidFaults> {
        self.lock().faults = FaultState::new(faults, Instant::now())?;
        Ok(())
    }

    /// Back to no faults.
    pub fn reset_faults(&self) {
        self.lock().faults = FaultState::default();
    }

    /// The fault settings in force (`fail_next` holds only the statuses still to answer).
    pub fn faults(&self) -> Faults {
        self.lock().faults.faults().clone()
    }

    /// Someone edits the record directly in PEMS as `pems-user`: created at `base_version` if
    /// unknown, then `changes` applied as a new version. Not counted as an accepted write.
    pub fn remote_edit(
        &self,
        organization_code: &str,
        pfa_id: &str,
        changes: Map<String, Value>,
        base_version: i64,
    ) -> RemoteRecord {
        self.remote_edit_by(
            organization_code,
            pfa_id,
            changes,
            base_version,
            "pems-user",
        )
    }

    /// [`Simulator::remote_edit`] by someone else than `pems-user`.
    pub fn remote_edit_by(
        &self,
        org: &str,
        pfa_id: &str,
        changes: Map<String, Value>,
        base_version: i64,
        by: &str,
    ) -> RemoteRecord {
        let mut inner = self.lock();
        let record = inner
            .records
            .entry((org.to_owned(), pfa_id.to_owned()))
            .or_insert_with(|| PemsRecord::new(base_version));
        record.apply(changes, by);
        record.to_remote(pfa_id)
    }

    /// The record as PEMS holds it now.
    pub fn record(&self, organization_code: &str, pfa_id: &str) -> Option<RemoteRecord> {
        let inner = self.lock();
        let key = (organization_code.to_owned(), pfa_id.to_owned());
        inner.records.get(&key).map(|r| r.to_remote(pfa_id))
    }

    /// Writes accepted for one record (idempotent replays and remote edits excluded).
    pub fn accepted_writes(&self, organization_code: &str, pfa_id: &str) -> u64 {
        let key = record_key(organization_code, pfa_id);
        self.lock().stats.by_record.get(&key).copied().unwrap_or(0)
    }

    /// Writes accepted for all records.
    pub fn total_accepted_writes(&self) -> u64 {
        self.lock().stats.writes
    }

    /// Time left of the current outage; `None` when there is none.
    pub fn outage_remaining(&self) -> Option<Duration> {
        self.lock().faults.outage_remaining(Instant::now())
    }

    /// All counters, as `GET /api/pems/_stats` answers them.
    pub fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }

    /// Waits the injected latency, without blocking the runtime.
    async fn delay(&self) {
        let latency = self.lock().faults.latency();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrgQuery {
    organization_code: String,
}

async fn health(State(sim): State<Simulator>) -> Answer {
    sim.delay().await;
    let outage = sim.lock().outage_answer(Instant::now());
    outage.unwrap_or_else(|| Answer::ok(json!({ "status": "ok" })))
}

async fn read(
    State(sim): State<Simulator>,
    Path(pfa_id): Path<String>,
    query: Result<Query<OrgQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    sim.delay().await;
    let inner = sim.lock();
    if let Some(outage) = inner.outage_answer(Instant::now()) {
        return outage;
    }
    let Ok(Query(q)) = query else {
        return Answer::error(400, "organizationCode is required");
    };
    match inner.records.get(&(q.organization_code, pfa_id.clone())) {
        Some(record) => Answer::ok(record.to_remote(&pfa_id)),
        None => Answer::error(404, format!("no PFA record {pfa_id}")),
    }
}

async fn write(
    State(sim): State<Simulator>,
    Path(pfa_id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<WriteRequest>, JsonRejection>,
) -> Answer {
    sim.delay().await;
    let key = headers
        .get("idempotency-key")
        .map(|v| v.to_str().map_err(|_| ()));
    let req = match (body, key) {
        (Err(rejection), _) => Err(format!("malformed body: {}", rejection.body_text())),
        (Ok(_), Some(Err(()))) => Err("Idempotency-Key must be visible ASCII".into()),
        (Ok(Json(req)), _) => Ok(req),
    };
    let key = key.and_then(Result::ok).filter(|k| !k.is_empty());
    sim.lock().write(&pfa_id, req, key, Instant::now())
}

async fn write_batch(
    State(sim): State<Simulator>,
    body: Result<Json<BatchRequest>, JsonRejection>,
) -> Answer {
    sim.delay().await;
    let batch = match body {
        Ok(Json(batch)) if batch.items.is_empty() => {
            return Answer::error(400, "items must not be empty")
        }
        Ok(Json(batch)) if batch.items.len() > MAX_BATCH_ITEMS => {
            return Answer::error(400, format!("at most {MAX_BATCH_ITEMS} items per batch"))
        }
        Ok(Json(batch)) => batch,
        Err(rejection) => {
            return Answer::error(400, format!("malformed body: {}", rejection.body_text()))
        }
    };
    let now = Instant::now();
    let mut inner = sim.lock();
    if let Some(outage) = inner.outage_answer(now) {
        inner.stats.requests += batch.items.len() as u64;
        return outage;
    }
    let results = batch.items.into_iter().map(|item| {
        let pfa_id = item.request.pfa_id.clone();
        let req = if item.request.organization_code == batch.organization_code {
            Ok(item.request)
        } else {
            Err("the item's organizationCode differs from the batch's".to_owned())
        };
        let answer = inner.write(&pfa_id, req, item.idempotency_key.as_deref(), now);
        BatchResult {
            pfa_id,
            status: answer.status,
            body: answer.body,
        }
    });
    let results = results.collect();
    Answer::ok(BatchResponse { results })
}

/// A simulator running in the background of the current process.
pub struct RunningSimulator {
    pub addr: SocketAddr,
    pub base_url: String,
    /// The state it serves, to drive it without HTTP.
    pub sim: Simulator,
}

/// Starts the simulator on `addr` and stops it when `shutdown` is cancelled.
pub async fn spawn(
    addr: SocketAddr,
    shutdown: CancellationToken,
) -> anyhow::Result<RunningSimulator> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot bind the PEMS simulator to {addr}"))?;
    let addr = listener
        .local_addr()
        .context("the PEMS simulator has no local address")?;
    let sim = Simulator::new();
    let router = sim.router();
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
        sim,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn req(pfa: &str, version: i64, changes: Value) -> Result<WriteRequest, String> {
        Ok(WriteRequest {
            pfa_id: pfa.into(),
            organization_code: "RIO".into(),
            changes: changes.as_object().cloned().unwrap_or_default(),
            version,
            modified_by: "ana".into(),
            change_reason: None,
        })
    }

    fn write(sim: &Simulator, version: i64, changes: Value, key: Option<&str>) -> Answer {
        sim.lock()
            .write("P1", req("P1", version, changes), key, Instant::now())
    }

    #[test]
    fn the_first_write_sets_the_baseline_and_each_write_adds_one_version() {
        let sim = Simulator::new();
        let first = write(&sim, 5, json!({ "a": 1 }), None);
        assert_eq!((first.status, &first.body["newVersion"]), (200, &json!(6)));
        assert_eq!(
            write(&sim, 6, json!({ "b": 2 }), None).body["newVersion"],
            7
        );
        let record = sim.record("RIO", "P1").unwrap();
        assert_eq!((record.version, record.fields.len()), (7, 2));
        assert_eq!(sim.accepted_writes("RIO", "P1"), 2);
    }

    #[test]
    fn a_stale_write_lists_fields_changed_since_its_version_and_the_overlap() {
        let sim = Simulator::new();
        write(&sim, 1, json!({ "a": 1 }), None);
        sim.remote_edit(
            "RIO",
            "P1",
            json!({ "b": 2, "c": 3 }).as_object().cloned().unwrap(),
            1,
        );
        let answer = write(&sim, 2, json!({ "b": 9, "d": 4 }), None);
        assert_eq!(answer.status, 409);
        assert_eq!(answer.body["currentVersion"], 3);
        assert_eq!(answer.body["changedFields"], json!(["b", "c"]));
        assert_eq!(answer.body["conflictingFields"], json!(["b"]));
        assert_eq!(answer.body["currentValues"], json!({ "b": 2, "c": 3 }));
    }

    #[test]
    fn a_repeated_idempotency_key_is_answered_again_without_applying_twice() {
        let sim = Simulator::new();
        let first = write(&sim, 1, json!({ "a": 1 }), Some("k1"));
        let again = write(&sim, 1, json!({ "a": 1 }), Some("k1"));
        assert_eq!((again.status, again.body), (200, first.body));
        assert_eq!(sim.accepted_writes("RIO", "P1"), 1);
        assert_eq!(sim.stats().requests, 2);
    }

    #[test]
    fn invalid_writes_are_400_and_faults_come_first() {
        let sim = Simulator::new();
        assert_eq!(write(&sim, 1, json!({}), None).status, 400);
        let mismatch =
            sim.lock()
                .write("P2", req("P1", 1, json!({ "a": 1 })), None, Instant::now());
        assert_eq!(mismatch.status, 400);
        sim.set_faults(Faults {
            fail_next: vec![429],
            ..Faults::default()
        })
        .unwrap();
        let limited = write(&sim, 1, json!({}), None);
        assert_eq!((limited.status, limited.retry_after), (429, Some(1)));
        assert_eq!(sim.total_accepted_writes(), 0);
    }
}
