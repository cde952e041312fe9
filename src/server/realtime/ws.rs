//! `GET /api/ws/sync/{orgId}`: the organization's live stream of sync events.

use axum::{
    extract::{
        ws::{rejection::WebSocketUpgradeRejection, CloseFrame, Message, WebSocket},
        Path, WebSocketUpgrade,
    },
    http::StatusCode,
    response::{IntoResponse, Response},
};

/// Text of the 426 answer to a plain GET.
pub const UPGRADE_REQUIRED: &str = "This is a WebSocket endpoint: connect with a WebSocket client \
(Upgrade: websocket) to receive the organization's live sync events.\n";

/// Close code: not signed in.
pub const CLOSE_UNAUTHENTICATED: u16 = 4401;

pub async fn sync_socket(
    Path(_org_id): Path<String>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Ok(upgrade) = upgrade else {
        return (
            StatusCode::UPGRADE_REQUIRED,
            [("upgrade", "websocket")],
            UPGRADE_REQUIRED,
        )
            .into_response();
    };
    // No account can sign in yet, so every socket is unauthenticated.
    upgrade.on_upgrade(|socket| refuse(socket, CLOSE_UNAUTHENTICATED, "sign-in required"))
}

async fn refuse(mut socket: WebSocket, code: u16, reason: &'static str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
}
