//! The error type of HTTP handlers: each variant maps to one status and a JSON body
//! `{error, message[, fields]}`; internals are logged once and never shown to the client.

use axum::{
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde_json::{json, Map, Value};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("sign-in required")]
    Unauthorized,
    #[error("wrong username or password")]
    InvalidCredentials,
    #[error("{0}")]
    Forbidden(String),
    /// Also used for organizations the caller is not a member of (no existence leak).
    #[error("not found")]
    NotFound,
    /// The request collides with the current state (e.g. a conflict already resolved).
    #[error("{0}")]
    Conflict(String),
    /// Per-field messages, answered with 422.
    #[error("the request has invalid fields")]
    Validation(Map<String, Value>),
    #[error("too many attempts; try again in {} s", .0.as_secs().max(1))]
    TooManyRequests(Duration),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    /// A 422 with a single field message.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        let mut fields = Map::new();
        fields.insert(field.to_owned(), Value::String(message.into()));
        Self::Validation(fields)
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "BAD_REQUEST"),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"),
            Self::InvalidCredentials => (StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "FORBIDDEN"),
            Self::NotFound => (StatusCode::NOT_FOUND, "NOT_FOUND"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "CONFLICT"),
            Self::Validation(_) => (StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED"),
            Self::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = match &self {
            Self::Internal(e) => {
                tracing::error!(error = ?e, "request failed");
                "internal error; see the server log".to_owned()
            }
            other => other.to_string(),
        };
        let mut body = json!({ "error": code, "message": message });
        if let Self::Validation(fields) = &self {
            body["fields"] = Value::Object(fields.clone());
        }
        let mut response = (status, Json(body)).into_response();
        if let Self::TooManyRequests(wait) = &self {
            let secs = wait.as_secs().max(1).to_string();
            if let Ok(v) = secs.parse() {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(anyhow::Error::new(e).context("database"))
    }
}

/// JSON bodies that do not parse become 422 with the parser's message, not axum's plain text.
impl From<axum::extract::rejection::JsonRejection> for AppError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> Self {
        use axum::extract::rejection::JsonRejection as R;
        match rejection {
            R::MissingJsonContentType(_) => {
                Self::BadRequest("expected a JSON body (Content-Type: application/json)".into())
            }
            other => Self::field("body", other.body_text()),
        }
    }
}
