//! Records: list (filters, search, sorting, paging; each merged with the caller's draft),
//! one record, its history, and rollback.

use super::access::{audit_entry, require};
use crate::{
    domain::{pfa::Delta, role::Role},
    server::{
        auth::Principal,
        error::AppError,
        state::AppState,
        store::{
            records::{Draft, RecordQuery, RecordSort},
            sync::{NewItem, NewJob},
        },
    },
};
use axum::{
    extract::{rejection::JsonRejection, Path, Query, State},
    http::StatusCode,
    Json,
};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListParams {
    q: Option<String>,
    category: Option<String>,
    source: Option<String>,
    dor: Option<String>,
    discontinued: Option<bool>,
    /// `true`: only records with a draft of the caller.
    modified: Option<bool>,
    /// `pfaId` (default), `category`, `forecastStart`, `forecastEnd`, `monthlyRate`; `-` prefix: descending.
    sort: Option<String>,
    page: Option<i64>,
    page_size: Option<i64>,
}

fn with_draft(record: &crate::domain::pfa::PfaRecord, draft: Option<&Draft>) -> Value {
    let mut value = serde_json::to_value(record).expect("records serialize");
    if let Some(d) = draft {
        value["draft"] = serde_json::to_value(d).expect("drafts serialize");
    }
    value
}

pub async fn list(
    State(state): State<AppState>,
    Path(org): Path<String>,
    Query(params): Query<ListParams>,
    principal: Principal,
) -> Result<Json<Value>, AppError> {
    require(&principal, &org, Role::Viewer)?;
    let page = params.page.unwrap_or(1);
    let page_size = params.page_size.unwrap_or(100);
    if page < 1 {
        return Err(AppError::field("page", "must be 1 or more"));
    }
    if !(1..=5000).contains(&page_size) {
        return Err(AppError::field("pageSize", "must be 1 to 5000"));
    }
    let offset = (page - 1)
        .checked_mul(page_size)
        .ok_or_else(|| AppError::field("page", "too large for this pageSize"))?;
    let (sort, descending) = match params.sort.as_deref() {
        None => (RecordSort::PfaId, false),
        Some(raw) => {
            let (name, desc) = raw
                .strip_prefix('-')
                .map(|n| (n, true))
                .unwrap_or((raw, false));
            let sort = RecordSort::parse(name).ok_or_else(|| {
                AppError::field("sort", "must be pfaId, category, forecastStart, forecastEnd or monthlyRate (prefix - for descending)")
            })?;
            (sort, desc)
        }
    };
    let query = RecordQuery {
        search: params.q,
        category: params.category,
        source: params.source,
        dor: params.dor,
        discontinued: params.discontinued,
        modified_only: params.modified.unwrap_or(false),
        drafts_of_user: principal.user_id,
        sort,
        descending,
        offset,
        limit: page_size,
    };
    let (records, total) = state.store.records(&org, &query).await?;
    let drafts = state.store.drafts(&org, principal.user_id, None).await?;
    let drafts: HashMap<&str, &Draft> = drafts.iter().map(|d| (d.pfa_id.as_str(), d)).collect();
    let items: Vec<Value> = records
        .iter()
        .map(|r| with_draft(r, drafts.get(r.pfa_id.as_str()).copied()))
        .collect();
    Ok(Json(
        json!({ "items": items, "total": total, "page": page, "pageSize": page_size,
                    "categories": state.store.categories(&org).await? }),
    ))
}

pub async fn one(
    State(state): State<AppState>,
    Path((org, pfa_id)): Path<(String, String)>,
    principal: Principal,
) -> Result<Json<Value>, AppError> {
    require(&principal, &org, Role::Viewer)?;
    let record = state
        .store
        .record(&org, &pfa_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let ids = [pfa_id.clone()];
    let drafts = state
        .store
        .drafts(&org, principal.user_id, Some(&ids))
        .await?;
    Ok(Json(with_draft(&record, drafts.first())))
}

/// Versions newest first: who, when, why, and the field diff.
pub async fn history(
    State(state): State<AppState>,
    Path((org, pfa_id)): Path<(String, String)>,
    principal: Principal,
) -> Result<Json<Value>, AppError> {
    require(&principal, &org, Role::Viewer)?;
    let record = state
        .store
        .record(&org, &pfa_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let history = state.store.history(&org, &pfa_id).await?;
    Ok(Json(
        json!({ "pfaId": pfa_id, "currentVersion": record.version, "versions": history }),
    ))
}

#[derive(Debug, Deserialize)]
pub struct RollbackRequest {
    version: i64,
    reason: String,
}

/// Restores an older version as a new change (admin), synced like any other.
pub async fn rollback(
    State(state): State<AppState>,
    Path((org, pfa_id)): Path<(String, String)>,
    principal: Principal,
    body: Result<Json<RollbackRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    require(&principal, &org, Role::Admin)?;
    let Json(request) = body?;
    let reason = request.reason.trim();
    if reason.chars().count() < 10 {
        return Err(AppError::field(
            "reason",
            "must have at least 10 characters",
        ));
    }
    let current = state
        .store
        .record(&org, &pfa_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let history = state.store.history(&org, &pfa_id).await?;
    let target = history
        .iter()
        .find(|h| h.version == request.version)
        .ok_or_else(|| {
            AppError::field(
                "version",
                format!("{pfa_id} has no version {}", request.version),
            )
        })?;
    if target.version == current.version {
        return Err(AppError::field("version", "that is the current version"));
    }
    let target: crate::domain::pfa::PfaRecord =
        serde_json::from_str(&target.data).map_err(anyhow::Error::new)?;
    let changes: serde_json::Map<String, Value> = crate::domain::pfa::EditableField::ALL
        .into_iter()
        .filter(|f| target.get(*f) != current.get(*f))
        .map(|f| (f.as_str().to_owned(), target.get(f)))
        .collect();
    if changes.is_empty() {
        return Err(AppError::field(
            "version",
            "that version has the same values as the current one",
        ));
    }
    let delta = Delta::parse(&changes).map_err(validation)?;
    delta.apply(&current).map_err(validation)?;
    let full_reason = format!("Rollback to version {}: {reason}", request.version);
    let item = NewItem {
        pfa_id: pfa_id.clone(),
        changes,
        base_version: current.version,
        reason: Some(full_reason.clone()),
    };
    let new_job = NewJob {
        org: org.clone(),
        user_id: principal.user_id,
        username: principal.username.clone(),
        kind: "rollback",
        reason: Some(full_reason),
        items: vec![item],
    };
    let job = state
        .store
        .create_job(new_job, |job| {
            audit_entry(
                &org,
                &principal,
                "record.rollback",
                &pfa_id,
                json!({"toVersion": request.version, "reason": reason, "jobId": job.id}),
            )
        })
        .await?;
    state.engine.spawn_runner(&job);
    Ok((StatusCode::ACCEPTED, Json(json!({ "job": job }))))
}

pub fn validation(errors: crate::domain::pfa::FieldErrors) -> AppError {
    AppError::Validation(
        errors
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
    )
}
