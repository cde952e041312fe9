//! `GET /api/ws/sync/{orgId}`: the organization's live stream of sync events.
//!
//! Order of checks: a plain GET gets 426; a foreign `Origin` gets 403 (no socket at all:
//! cross-site WebSocket hijacking); then the socket is upgraded and closed with 4401 (not
//! signed in), 4403 (not a member) or 4429 (the user has `--ws-max-sockets-per-user` open on
//! this instance) before any event; members get CONNECTED, the replay asked for with
//! `?since=N`, then live events.

use super::{
    connection::{self, Params},
    upgrade::{NotUpgrade, Upgrade},
};
use crate::{
    domain::org::OrgId,
    protocol::close_codes,
    server::{
        accept::ConnectionPlace,
        auth::{csrf, principal::authenticate},
        state::AppState,
    },
};
use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Extension,
};
use serde::Deserialize;

/// Text of the 426 answer to a plain GET.
pub const UPGRADE_REQUIRED: &str = "This is a WebSocket endpoint: connect with a WebSocket client \
(Upgrade: websocket) to receive the organization's live sync events.\n";

#[derive(Debug, Deserialize)]
pub struct SocketQuery {
    /// Last seq the client saw; the server replays what came after it.
    since: Option<String>,
}

pub async fn sync_socket(
    State(state): State<AppState>,
    Path(org): Path<String>,
    Query(query): Query<SocketQuery>,
    headers: HeaderMap,
    place: Option<Extension<ConnectionPlace>>,
    upgrade: Result<Upgrade, NotUpgrade>,
) -> Response {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(NotUpgrade::Headers(_)) => {
            return (
                StatusCode::UPGRADE_REQUIRED,
                [("upgrade", "websocket")],
                UPGRADE_REQUIRED,
            )
                .into_response()
        }
        Err(other) => return other.into_response(),
    };
    if let Some(origin) = csrf::request_origin(&headers) {
        if !csrf::origin_allowed(&origin, &headers, &state.config.allowed_origins) {
            tracing::warn!(origin, "WebSocket from a foreign origin refused");
            return (
                StatusCode::FORBIDDEN,
                format!("origin {origin} is not allowed\n"),
            )
                .into_response();
        }
    }
    let since = match query.since.as_deref().map(str::parse::<u64>) {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => {
            return (
                StatusCode::BAD_REQUEST,
                "since must be a non-negative integer (the last seq seen)\n",
            )
                .into_response()
        }
    };
    let principal = match authenticate(&state, &headers).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let Some(principal) = principal else {
        return upgrade.respond(|socket| {
            connection::refuse(socket, close_codes::UNAUTHENTICATED, "sign-in required")
        });
    };
    let role = OrgId::parse(&org)
        .ok()
        .and_then(|org| principal.role_in(org.as_str()));
    let Some(role) = role else {
        return upgrade.respond(|socket| {
            connection::refuse(
                socket,
                close_codes::FORBIDDEN,
                "not a member of this organization",
            )
        });
    };
    let max = state.config.ws_max_sockets_per_user;
    let Some(slot) = state.hub.claim_socket(principal.user_id, max) else {
        tracing::warn!(
            user = principal.username,
            max,
            "socket refused: too many open"
        );
        return upgrade.respond(|socket| {
            connection::refuse(
                socket,
                close_codes::TOO_MANY_SOCKETS,
                "too many open sockets for this user",
            )
        });
    };
    let params = Params {
        hub: state.hub.clone(),
        engine: state.engine.clone(),
        org,
        user_id: principal.user_id,
        username: principal.username.clone(),
        role,
        session: principal.session_hash().map(str::to_owned),
        credential: principal.credential(),
        since,
        heartbeat: state.config.heartbeat,
        shutdown: state.shutdown.clone(),
        slot,
        place: place.map(|Extension(place)| place),
    };
    upgrade.respond(move |socket| connection::serve(socket, params))
}
