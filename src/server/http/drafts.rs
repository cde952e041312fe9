//! Drafts: save in batch (all or nothing), list, discard, and commit into a sync job.

use super::access::{audit, audit_entry, require};
use crate::{
    domain::{pfa::Delta, role::Role},
    server::{auth::Principal, error::AppError, state::AppState, store::records::NewDraft},
};
use axum::{
    extract::{rejection::JsonRejection, Path, State},
    http::StatusCode,
    Json,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// Largest batch of drafts saved at once.
pub const MAX_BATCH: usize = 5000;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DraftInput {
    pfa_id: String,
    changes: Map<String, Value>,
    reason: Option<String>,
    base_version: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaveRequest {
    drafts: Vec<DraftInput>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Selection {
    pfa_ids: Option<Vec<String>>,
    reason: Option<String>,
}

/// The longest reason a draft or a commit may give, in characters.
pub const MAX_REASON_CHARS: usize = 1000;

/// An optional JSON body: empty means "all of my drafts". At most [`MAX_BATCH`] `pfaIds`
/// (a repeated id counts once) and a reason of at most [`MAX_REASON_CHARS`].
fn optional_selection(body: &[u8]) -> Result<Selection, AppError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Selection::default());
    }
    let mut selection: Selection =
        serde_json::from_slice(body).map_err(|e| AppError::field("body", e.to_string()))?;
    if let Some(ids) = &mut selection.pfa_ids {
        if ids.len() > MAX_BATCH {
            return Err(AppError::field(
                "pfaIds",
                format!("at most {MAX_BATCH} records per request"),
            ));
        }
        let mut seen = std::collections::HashSet::with_capacity(ids.len());
        ids.retain(|id| seen.insert(id.clone()));
    }
    if too_long(selection.reason.as_deref()) {
        return Err(AppError::field("reason", reason_limit()));
    }
    Ok(selection)
}

fn too_long(reason: Option<&str>) -> bool {
    reason.is_some_and(|r| r.chars().count() > MAX_REASON_CHARS)
}

fn reason_limit() -> String {
    format!("at most {MAX_REASON_CHARS} characters")
}

/// `PUT /api/orgs/{org}/drafts`: every draft is validated against its record; any error -> 422
/// with the messages per record and field, and nothing is saved.
pub async fn save(
    State(state): State<AppState>,
    Path(org): Path<String>,
    principal: Principal,
    body: Result<Json<SaveRequest>, JsonRejection>,
) -> Result<Json<Value>, AppError> {
    require(&principal, &org, Role::Editor)?;
    let Json(request) = body?;
    if request.drafts.is_empty() || request.drafts.len() > MAX_BATCH {
        return Err(AppError::field(
            "drafts",
            format!("1 to {MAX_BATCH} drafts per request"),
        ));
    }
    let ids: Vec<&str> = request.drafts.iter().map(|d| d.pfa_id.as_str()).collect();
    let records = state.store.records_by_ids(&org, &ids).await?;
    let mut errors = Map::new();
    let mut valid = Vec::with_capacity(request.drafts.len());
    for input in request.drafts {
        let mut fail = |message: Value| {
            errors.insert(input.pfa_id.clone(), message);
        };
        if too_long(input.reason.as_deref()) {
            fail(json!({ "reason": reason_limit() }));
            continue;
        }
        let Some(record) = records.get(&input.pfa_id) else {
            fail(json!({"pfaId": "no such record"}));
            continue;
        };
        // A base version above the record's would hide every PEMS change made since from the
        // conflict check.
        if input
            .base_version
            .is_some_and(|v| !(1..=record.version).contains(&v))
        {
            fail(json!({
                "baseVersion": format!("must be from 1 to the record's version, {}", record.version)
            }));
            continue;
        }
        let checked =
            Delta::parse(&input.changes).and_then(|delta| delta.apply(record).map(|_| delta));
        match checked {
            Ok(delta) => valid.push(NewDraft {
                pfa_id: input.pfa_id,
                delta,
                base_version: input.base_version.unwrap_or(record.version),
                reason: input.reason,
            }),
            Err(field_errors) => fail(serde_json::to_value(field_errors).expect("map serializes")),
        }
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    state
        .store
        .save_drafts(&org, principal.user_id, &valid)
        .await?;
    audit(
        &state.store,
        &org,
        &principal,
        "drafts.save",
        &org,
        json!({"count": valid.len()}),
    )
    .await?;
    Ok(Json(json!({ "saved": valid.len() })))
}

pub async fn list(
    State(state): State<AppState>,
    Path(org): Path<String>,
    principal: Principal,
) -> Result<Json<Value>, AppError> {
    require(&principal, &org, Role::Viewer)?;
    let drafts = state.store.drafts(&org, principal.user_id, None).await?;
    Ok(Json(json!({ "items": drafts })))
}

/// `POST /api/orgs/{org}/drafts/discard` `{pfaIds?}`: drops the caller's drafts.
pub async fn discard(
    State(state): State<AppState>,
    Path(org): Path<String>,
    principal: Principal,
    body: axum::body::Bytes,
) -> Result<Json<Value>, AppError> {
    require(&principal, &org, Role::Editor)?;
    let selection = optional_selection(&body)?;
    let removed = state
        .store
        .discard_drafts(&org, principal.user_id, selection.pfa_ids.as_deref())
        .await?;
    audit(
        &state.store,
        &org,
        &principal,
        "drafts.discard",
        &org,
        json!({"count": removed}),
    )
    .await?;
    Ok(Json(json!({ "discarded": removed })))
}

/// `POST /api/orgs/{org}/drafts/commit` `{pfaIds?, reason?}`: turns the caller's drafts into a
/// sync job (202 with the job).
pub async fn commit(
    State(state): State<AppState>,
    Path(org): Path<String>,
    principal: Principal,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), AppError> {
    require(&principal, &org, Role::Planner)?;
    let selection = optional_selection(&body)?;
    let job = state
        .store
        .commit_drafts(
            &org,
            principal.user_id,
            &principal.username,
            selection.pfa_ids.as_deref(),
            selection.reason.as_deref(),
            |job| {
                audit_entry(
                    &org,
                    &principal,
                    "drafts.commit",
                    &job.id,
                    json!({"records": job.total}),
                )
            },
        )
        .await?
        .ok_or_else(|| AppError::field("drafts", "there are no drafts to commit"))?;
    state.engine.spawn_runner(&job);
    Ok((StatusCode::ACCEPTED, Json(json!({ "job": job }))))
}
