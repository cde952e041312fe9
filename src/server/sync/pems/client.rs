//! The PEMS HTTP client the sync engine writes through: one reqwest client with connect and
//! request timeouts, and every failure sorted into [`PemsError`] (conflict, rejected, or worth
//! retrying) with the error code the sync events carry.

use super::wire::{
    BatchItem, BatchResponse, ErrorBody, RemoteRecord, VersionConflict, WriteOk, WriteRequest,
    VERSION_CONFLICT,
};
use anyhow::Context;
use reqwest::{header::RETRY_AFTER, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::time::Duration;

/// Code of a [`PemsError::Retryable`] whose request timed out.
pub const TIMEOUT: &str = "TIMEOUT";
/// Code of a [`PemsError::Retryable`] whose request never got an answer (refused, reset).
pub const UNREACHABLE: &str = "UNREACHABLE";
/// Code of an answer whose body is not what PEMS documents.
pub const BAD_RESPONSE: &str = "BAD_RESPONSE";

/// Why PEMS did not accept a request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PemsError {
    /// 409: the record changed in PEMS since the version the change was made against.
    #[error(
        "PEMS API returned 409 Conflict: the record is at version {current_version}, the change \
         was made against {expected_version} (conflicting fields: {conflicting_fields:?})"
    )]
    Conflict {
        current_version: i64,
        expected_version: i64,
        conflicting_fields: Vec<String>,
        changed_fields: Vec<String>,
        current_values: Map<String, Value>,
    },
    /// 400, 401, 404 and other 4xx: sending it again will not help.
    #[error("PEMS API returned {status} {}: {message}", reason(*status))]
    Rejected {
        status: u16,
        code: String,
        message: String,
    },
    /// 429, 5xx, timeouts and transport failures: worth retrying later.
    #[error("{}", retryable_display(*status, code, message))]
    Retryable {
        /// `None` when no answer came (timeout, connection refused).
        status: Option<u16>,
        code: String,
        message: String,
        /// From the `Retry-After` header (seconds), when PEMS sent one.
        retry_after: Option<Duration>,
    },
}

fn reason(status: u16) -> &'static str {
    StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("")
}

fn retryable_display(status: Option<u16>, code: &str, message: &str) -> String {
    match status {
        Some(s) => format!("PEMS API returned {s} {}: {message}", reason(s)),
        None if code == TIMEOUT => format!("PEMS API timed out: {message}"),
        None => format!("PEMS API unreachable: {message}"),
    }
}

impl PemsError {
    /// Whether sending the same request again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable { .. })
    }

    /// The code sync events carry, e.g. `PEMS_UNAVAILABLE` for a 503.
    pub fn error_code(&self) -> &'static str {
        match self {
            Self::Conflict { .. } => "PEMS_VERSION_CONFLICT",
            Self::Rejected { status, .. } => match status {
                401 | 403 => "PEMS_UNAUTHORIZED",
                404 => "PEMS_NOT_FOUND",
                409 => "PEMS_VERSION_CONFLICT",
                _ => "PEMS_INVALID_REQUEST",
            },
            Self::Retryable { status, code, .. } => match status {
                Some(503) => "PEMS_UNAVAILABLE",
                Some(429) => "PEMS_RATE_LIMITED",
                Some(408) => "PEMS_TIMEOUT",
                Some(_) => "PEMS_SERVER_ERROR",
                None if code == TIMEOUT => "PEMS_TIMEOUT",
                None => "PEMS_UNREACHABLE",
            },
        }
    }

    /// How long PEMS asked to wait (`Retry-After` on a 429 or 503), if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Retryable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP status PEMS answered with; `None` when no answer came.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Conflict { .. } => Some(409),
            Self::Rejected { status, .. } => Some(*status),
            Self::Retryable { status, .. } => *status,
        }
    }

    fn transport(error: reqwest::Error) -> Self {
        let code = if error.is_timeout() {
            TIMEOUT
        } else {
            UNREACHABLE
        };
        Self::Retryable {
            status: None,
            code: code.into(),
            message: format!("{error:#}"),
            retry_after: None,
        }
    }
}

/// Turns one PEMS answer (status and JSON body) into the expected value or a [`PemsError`].
/// `body` is `Value::Null` when the answer was not JSON.
pub fn decode_answer<T: DeserializeOwned>(
    status: u16,
    retry_after: Option<Duration>,
    body: Value,
) -> Result<T, PemsError> {
    if (200..300).contains(&status) {
        return serde_json::from_value(body).map_err(|e| PemsError::Retryable {
            status: Some(status),
            code: BAD_RESPONSE.into(),
            message: format!("unexpected answer body: {e}"),
            retry_after: None,
        });
    }
    if status == 409 {
        if let Ok(c) = serde_json::from_value::<VersionConflict>(body.clone()) {
            if c.error == VERSION_CONFLICT {
                return Err(PemsError::Conflict {
                    current_version: c.current_version,
                    expected_version: c.expected_version,
                    conflicting_fields: c.conflicting_fields,
                    changed_fields: c.changed_fields,
                    current_values: c.current_values,
                });
            }
        }
    }
    let (code, message) = match serde_json::from_value::<ErrorBody>(body) {
        Ok(b) => (b.error, b.message),
        Err(_) => (format!("HTTP_{status}"), "no PEMS error body".to_owned()),
    };
    let retryable = matches!(status, 408 | 429) || !(400..500).contains(&status);
    Err(if retryable {
        PemsError::Retryable {
            status: Some(status),
            code,
            message,
            retry_after,
        }
    } else {
        PemsError::Rejected {
            status,
            code,
            message,
        }
    })
}

/// One batch item's outcome, in the order the items were sent.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchOutcome {
    pub pfa_id: String,
    pub result: Result<WriteOk, PemsError>,
}

/// A PEMS client; clone it freely (the connection pool is shared).
#[derive(Debug, Clone)]
pub struct PemsClient {
    http: reqwest::Client,
    base_url: String,
}

impl PemsClient {
    /// A client for the PEMS at `base_url` whose requests give up after `timeout` (connecting
    /// included).
    pub fn new(base_url: &str, timeout: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(timeout)
            .timeout(timeout)
            .build()
            .context("cannot build the PEMS HTTP client")?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
        })
    }

    /// The PEMS base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Writes one change; PEMS applies it at most once per `idempotency_key`.
    #[tracing::instrument(skip_all, fields(pfa_id = %req.pfa_id))]
    pub async fn write(
        &self,
        req: &WriteRequest,
        idempotency_key: &str,
    ) -> Result<WriteOk, PemsError> {
        let url = self.url(&format!("/api/pems/pfa/{}", segment(&req.pfa_id)));
        let request = self
            .http
            .put(url)
            .header("Idempotency-Key", idempotency_key)
            .json(req);
        answer(request.send().await).await
    }

    /// Writes up to 100 changes in one request. `Err` only when the batch as a whole failed;
    /// each item's own outcome is in its [`BatchOutcome`].
    #[tracing::instrument(skip_all, fields(organization_code = %organization_code, items = items.len()))]
    pub async fn write_batch(
        &self,
        organization_code: &str,
        items: &[BatchItem],
    ) -> Result<Vec<BatchOutcome>, PemsError> {
        let body = serde_json::json!({ "organizationCode": organization_code, "items": items });
        let request = self.http.post(self.url("/api/pems/pfa/batch")).json(&body);
        let batch: BatchResponse = answer(request.send().await).await?;
        let outcomes = batch.results.into_iter().map(|r| BatchOutcome {
            pfa_id: r.pfa_id,
            result: decode_answer(r.status, None, r.body),
        });
        Ok(outcomes.collect())
    }

    /// The record as PEMS holds it now.
    #[tracing::instrument(skip_all, fields(pfa_id = %pfa_id))]
    pub async fn read(
        &self,
        organization_code: &str,
        pfa_id: &str,
    ) -> Result<RemoteRecord, PemsError> {
        let url = self.url(&format!("/api/pems/pfa/{}", segment(pfa_id)));
        let request = self
            .http
            .get(url)
            .query(&[("organizationCode", organization_code)]);
        answer(request.send().await).await
    }

    /// `Ok` when PEMS answers its health check.
    #[tracing::instrument(skip_all)]
    pub async fn health(&self) -> Result<(), PemsError> {
        let request = self.http.get(self.url("/api/pems/health"));
        answer::<Value>(request.send().await).await.map(|_| ())
    }
}

/// A path segment with the characters that would change the URL's meaning escaped.
fn segment(raw: &str) -> String {
    url::form_urlencoded::byte_serialize(raw.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

async fn answer<T: DeserializeOwned>(sent: reqwest::Result<Response>) -> Result<T, PemsError> {
    let response = sent.map_err(PemsError::transport)?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let bytes = response.bytes().await.map_err(PemsError::transport)?;
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let result = decode_answer(status, retry_after, body);
    if let Err(e) = &result {
        tracing::debug!(code = e.error_code(), "PEMS refused: {e}");
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn error(status: u16, retry_after: Option<u64>) -> PemsError {
        let code = super::super::wire::code_for_status(status).unwrap_or("X");
        let body = json!({ "success": false, "error": code, "message": "m" });
        decode_answer::<WriteOk>(status, retry_after.map(Duration::from_secs), body).unwrap_err()
    }

    #[test]
    fn every_status_maps_to_its_sync_error_code_and_retryability() {
        let table = [
            (400, "PEMS_INVALID_REQUEST", false),
            (401, "PEMS_UNAUTHORIZED", false),
            (404, "PEMS_NOT_FOUND", false),
            (429, "PEMS_RATE_LIMITED", true),
            (500, "PEMS_SERVER_ERROR", true),
            (502, "PEMS_SERVER_ERROR", true),
            (503, "PEMS_UNAVAILABLE", true),
        ];
        for (status, code, retryable) in table {
            let e = error(status, None);
            assert_eq!(
                (e.error_code(), e.is_retryable()),
                (code, retryable),
                "{status}"
            );
            assert_eq!(e.status(), Some(status));
        }
    }

    #[test]
    fn a_503_reads_as_pems_api_returned_503_and_keeps_retry_after() {
        let e = error(503, Some(7));
        assert!(
            e.to_string()
                .starts_with("PEMS API returned 503 Service Unavailable"),
            "{e}"
        );
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
    }

    #[test]
    fn a_version_conflict_body_becomes_a_conflict_with_both_field_lists() {
        let body = json!({ "success": false, "error": "VERSION_CONFLICT", "message": "m",
            "currentVersion": 4, "expectedVersion": 3, "conflictingFields": ["a"],
            "changedFields": ["a", "b"], "currentValues": { "a": 1, "b": 2 } });
        let e = decode_answer::<WriteOk>(409, None, body).unwrap_err();
        let PemsError::Conflict {
            current_version,
            changed_fields,
            current_values,
            ..
        } = &e
        else {
            panic!("{e:?}");
        };
        assert_eq!((*current_version, changed_fields.len()), (4, 2));
        assert_eq!(current_values["b"], 2);
        assert_eq!(e.error_code(), "PEMS_VERSION_CONFLICT");
        assert!(!e.is_retryable());
    }

    #[test]
    fn a_non_json_5xx_is_still_a_retryable_server_error() {
        let e = decode_answer::<WriteOk>(502, None, Value::Null).unwrap_err();
        assert_eq!(e.error_code(), "PEMS_SERVER_ERROR");
        assert!(e.is_retryable());
    }

    #[test]
    fn pfa_ids_are_escaped_in_the_path() {
        assert_eq!(segment("PFA 1/2?x"), "PFA%201%2F2%3Fx");
        assert_eq!(segment("PFA-001"), "PFA-001");
    }
}
