//! Sync jobs (list and detail) and conflicts (list, one, resolve).

use super::{
    access::{audit_entry, require},
    records::validation,
};
use crate::{
    domain::{
        pfa::Delta,
        role::Role,
        sync::{JobStatus, Resolution},
    },
    server::{
        auth::Principal,
        error::AppError,
        state::AppState,
        store::sync::{NewItem, NewJob},
    },
};
use axum::{
    extract::{rejection::JsonRejection, Path, Query, State},
    Json,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};

#[derive(Debug, Deserialize)]
pub struct JobParams {
    status: Option<String>,
    limit: Option<i64>,
}

pub async fn list(
    State(state): State<AppState>,
    Path(org): Path<String>,
    Query(params): Query<JobParams>,
    principal: Principal,
) -> Result<Json<Value>, AppError> {
    require(&principal, &org, Role::Viewer)?;
    let status = match params.status.as_deref() {
        None => None,
        Some(raw) => Some(
            JobStatus::parse(raw).ok_or_else(|| AppError::field("status", "not a job status"))?,
        ),
    };
    let limit = params.limit.unwrap_or(50).clamp(1, 500);
    Ok(Json(
        json!({ "items": state.store.jobs(&org, status, limit).await? }),
    ))
}

pub async fn one(
    State(state): State<AppState>,
    Path((org, job_id)): Path<(String, String)>,
    principal: Principal,
) -> Result<Json<Value>, AppError> {
    require(&principal, &org, Role::Viewer)?;
    let job = state
        .store
        .job(&org, &job_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let items = state.store.items(&job_id).await?;
    Ok(Json(json!({ "job": job, "items": items })))
}

#[derive(Debug, Deserialize)]
pub struct ConflictParams {
    status: Option<String>,
}

pub async fn conflicts(
    State(state): State<AppState>,
    Path(org): Path<String>,
    Query(params): Query<ConflictParams>,
    principal: Principal,
) -> Result<Json<Value>, AppError> {
    require(&principal, &org, Role::Viewer)?;
    if let Some(s) = params.status.as_deref() {
        if !matches!(s, "open" | "resolved") {
            return Err(AppError::field("status", "must be open or resolved"));
        }
    }
    Ok(Json(
        json!({ "items": state.store.conflicts(&org, params.status.as_deref()).await? }),
    ))
}

pub async fn conflict(
    State(state): State<AppState>,
    Path((org, id)): Path<(String, String)>,
    principal: Principal,
) -> Result<Json<Value>, AppError> {
    require(&principal, &org, Role::Viewer)?;
    let conflict = state
        .store
        .conflict(&org, &id)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(Json(json!(conflict)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    resolution: Resolution,
    /// For `merge`: the chosen value of every conflicting field.
    values: Option<Map<String, Value>>,
}

/// Resolves a conflict: use_local and merge re-queue the change on PEMS's version; use_pems
/// keeps PEMS's values (the change's other fields, if any, are still synced).
pub async fn resolve(
    State(state): State<AppState>,
    Path((org, id)): Path<(String, String)>,
    principal: Principal,
    body: Result<Json<ResolveRequest>, JsonRejection>,
) -> Result<Json<Value>, AppError> {
    require(&principal, &org, Role::Planner)?;
    let Json(request) = body?;
    let conflict = state
        .store
        .conflict(&org, &id)
        .await?
        .ok_or(AppError::NotFound)?;
    if conflict.status != "open" {
        return Err(AppError::Conflict(format!(
            "conflict {id} is already resolved"
        )));
    }
    let mut changes = conflict.changes.clone();
    let chosen = match request.resolution {
        Resolution::UseLocal => conflict.local_values.clone(),
        Resolution::UsePems => {
            for field in &conflict.fields {
                changes.remove(field);
            }
            conflict.remote_values.clone()
        }
        Resolution::Merge => {
            let values = request.values.ok_or_else(|| {
                AppError::field(
                    "values",
                    "required for merge: a value for every conflicting field",
                )
            })?;
            let mut errors = Map::new();
            for field in &conflict.fields {
                if !values.contains_key(field) {
                    errors.insert(field.clone(), json!("choose a value"));
                }
            }
            for key in values.keys().filter(|k| !conflict.fields.contains(k)) {
                errors.insert(key.clone(), json!("not a conflicting field"));
            }
            if !errors.is_empty() {
                return Err(AppError::Validation(errors));
            }
            Delta::parse(&values).map_err(validation)?;
            for (field, value) in &values {
                changes.insert(field.clone(), value.clone());
            }
            values
        }
    };
    let record = state
        .store
        .record(&org, &conflict.pfa_id)
        .await?
        .ok_or(AppError::NotFound)?;
    if !changes.is_empty() {
        let delta = Delta::parse(&changes).map_err(validation)?;
        delta.apply(&record).map_err(validation)?;
    }
    let new_job = (!changes.is_empty()).then(|| NewJob {
        org: org.clone(),
        user_id: principal.user_id,
        username: principal.username.clone(),
        kind: "resolution",
        reason: None,
        items: vec![NewItem {
            pfa_id: conflict.pfa_id.clone(),
            changes,
            base_version: record.version,
            reason: Some(format!(
                "Conflict {id} resolved ({})",
                request.resolution.as_str()
            )),
        }],
    });
    // The first of two racing resolutions claims the conflict; the other gets a 409.
    let job = state
        .store
        .resolve_conflict(
            &id,
            request.resolution.as_str(),
            &chosen,
            &principal.username,
            new_job,
            |job| {
                audit_entry(&org, &principal, "conflict.resolve", &id,
                    json!({"resolution": request.resolution.as_str(), "jobId": job.map(|j| j.id.clone())}))
            },
        )
        .await?
        .ok_or_else(|| AppError::Conflict(format!("conflict {id} is already resolved")))?;
    if let Some(job) = &job {
        state.engine.spawn_runner(job);
    }
    let conflict = state.store.conflict(&org, &id).await?;
    Ok(Json(json!({ "conflict": conflict, "job": job })))
}

/// The audit trail of an org (admin).
pub async fn audit(
    State(state): State<AppState>,
    Path(org): Path<String>,
    principal: Principal,
) -> Result<Json<Value>, AppError> {
    require(&principal, &org, Role::Admin)?;
    Ok(Json(
        json!({ "items": state.store.audit_entries(&org, 200).await? }),
    ))
}
