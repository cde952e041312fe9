//! The WebSocket handshake (RFC 6455 §4.2) on axum, giving the raw upgraded connection.
//!
//! axum's `WebSocketUpgrade` hands out a `WebSocket` whose writes always go through
//! tungstenite's per-socket encoder and buffer. The fan-out writes frames encoded once for all
//! subscribers straight to each socket (realtime/outbox.rs), so it needs the connection
//! itself; tungstenite still reads and decodes what clients send (connection.rs).

use axum::{
    body::Body,
    extract::FromRequestParts,
    http::{header, request::Parts, HeaderMap, HeaderValue, Method, StatusCode},
    response::{IntoResponse, Response},
};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use std::future::Future;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// The upgraded connection.
pub type Io = TokioIo<Upgraded>;

/// A valid WebSocket handshake request, not yet answered.
pub struct Upgrade {
    accept: String,
    on_upgrade: OnUpgrade,
}

/// Why a request is not a WebSocket handshake.
#[derive(Debug, PartialEq, Eq)]
pub enum NotUpgrade {
    Method,
    Headers(&'static str),
    Version,
    /// The connection cannot be taken over (HTTP/2, or a test client without upgrades).
    NotUpgradable,
}

impl IntoResponse for NotUpgrade {
    fn into_response(self) -> Response {
        match self {
            NotUpgrade::Method => (
                StatusCode::METHOD_NOT_ALLOWED,
                "a WebSocket handshake is a GET request\n",
            )
                .into_response(),
            NotUpgrade::Version => (
                StatusCode::BAD_REQUEST,
                [(header::SEC_WEBSOCKET_VERSION, "13")],
                "only WebSocket version 13 is supported\n",
            )
                .into_response(),
            NotUpgrade::Headers(_) | NotUpgrade::NotUpgradable => (
                StatusCode::UPGRADE_REQUIRED,
                [(header::UPGRADE, "websocket")],
            )
                .into_response(),
        }
    }
}

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .to_str()
            .map(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

impl Upgrade {
    /// Checks the handshake headers of `parts` and takes the connection's upgrade handle.
    pub fn from_parts(parts: &mut Parts) -> Result<Self, NotUpgrade> {
        if parts.method != Method::GET {
            return Err(NotUpgrade::Method);
        }
        let headers = &parts.headers;
        if !has_token(headers, header::CONNECTION, "upgrade") {
            return Err(NotUpgrade::Headers("Connection: upgrade"));
        }
        if !has_token(headers, header::UPGRADE, "websocket") {
            return Err(NotUpgrade::Headers("Upgrade: websocket"));
        }
        if headers.get(header::SEC_WEBSOCKET_VERSION) != Some(&HeaderValue::from_static("13")) {
            return Err(NotUpgrade::Version);
        }
        let key = headers
            .get(header::SEC_WEBSOCKET_KEY)
            .ok_or(NotUpgrade::Headers("Sec-WebSocket-Key"))?;
        let accept = derive_accept_key(key.as_bytes());
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or(NotUpgrade::NotUpgradable)?;
        Ok(Self { accept, on_upgrade })
    }

    /// Answers 101 and runs `serve` on the connection once hyper hands it over.
    pub fn respond<F, Fut>(self, serve: F) -> Response
    where
        F: FnOnce(Io) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let on_upgrade = self.on_upgrade;
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => serve(TokioIo::new(upgraded)).await,
                Err(e) => tracing::debug!("WebSocket upgrade failed: {e}"),
            }
        });
        Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "upgrade")
            .header(header::UPGRADE, "websocket")
            .header(header::SEC_WEBSOCKET_ACCEPT, self.accept)
            .body(Body::empty())
            .expect("a valid 101 response")
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = NotUpgrade;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Self::from_parts(parts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(builder: axum::http::request::Builder) -> Parts {
        builder.body(()).unwrap().into_parts().0
    }

    fn handshake() -> axum::http::request::Builder {
        Request::get("/api/ws/sync/org-rio")
            .header("connection", "keep-alive, Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
    }

    #[test]
    fn the_headers_are_checked_before_the_connection() {
        assert_eq!(
            Upgrade::from_parts(&mut parts(Request::get("/"))).err(),
            Some(NotUpgrade::Headers("Connection: upgrade"))
        );
        assert_eq!(
            Upgrade::from_parts(&mut parts(handshake().method("POST"))).err(),
            Some(NotUpgrade::Method)
        );
        let mut p = parts(handshake());
        p.headers
            .insert("sec-websocket-version", HeaderValue::from_static("8"));
        assert_eq!(Upgrade::from_parts(&mut p).err(), Some(NotUpgrade::Version));
        // All headers right, but no connection to take over (not served by hyper).
        assert_eq!(
            Upgrade::from_parts(&mut parts(handshake())).err(),
            Some(NotUpgrade::NotUpgradable)
        );
    }

    #[test]
    fn the_accept_key_is_the_rfc_example() {
        assert_eq!(
            derive_accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
