//! `POST /api/orgs/{orgId}/events`: publish a SyncEvent to an organization, for integrations
//! and diagnostics. Admins of the org, or tokens with the `publish` scope of a member.

use crate::{
    domain::role::Role,
    protocol::validate::event_for_publish,
    server::{auth::Principal, error::AppError, state::AppState},
};
use axum::{
    extract::{rejection::JsonRejection, Path, State},
    http::StatusCode,
    Json,
};
use serde_json::{json, Map, Value};

#[tracing::instrument(skip_all, fields(org = %org, user = %principal.username))]
pub async fn publish(
    State(state): State<AppState>,
    Path(org): Path<String>,
    principal: Principal,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let role = principal.role_in(&org).ok_or(AppError::NotFound)?;
    if !(role == Role::Admin || principal.has_scope("publish")) {
        return Err(AppError::Forbidden(format!(
            "publishing events needs the admin role or a token with the publish scope; you are {role}"
        )));
    }
    let Json(body) = body?;
    let event = event_for_publish(&body, &org).map_err(|errors| {
        AppError::Validation(
            errors
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect::<Map<_, _>>(),
        )
    })?;
    let sent = state.hub.publish(&org, event).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(
            json!({ "seq": sent.seq, "organizationId": org, "timestamp": sent.timestamp.to_rfc3339_opts(chrono::SecondsFormat::Micros, true) }),
        ),
    ))
}
