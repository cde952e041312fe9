//! The PEMS HTTP API as JSON: request and answer bodies shared by the client and the
//! simulator, all camelCase on the wire.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Error code of a 400 answer: malformed body, pfaId mismatch, missing modifiedBy or changes.
pub const INVALID_REQUEST: &str = "INVALID_REQUEST";
/// Error code of a 401 answer.
pub const UNAUTHORIZED: &str = "UNAUTHORIZED";
/// Error code of a 404 answer.
pub const NOT_FOUND: &str = "NOT_FOUND";
/// Error code of a 409 answer; the body is a [`VersionConflict`].
pub const VERSION_CONFLICT: &str = "VERSION_CONFLICT";
/// Error code of a 429 answer.
pub const RATE_LIMIT: &str = "RATE_LIMIT";
/// Error code of a 500 answer.
pub const SERVER_ERROR: &str = "SERVER_ERROR";
/// Error code of a 503 answer.
pub const SERVICE_UNAVAILABLE: &str = "SERVICE_UNAVAILABLE";

/// The PEMS error code PEMS puts in the body for an HTTP status, if it is one PEMS uses.
pub fn code_for_status(status: u16) -> Option<&'static str> {
    Some(match status {
        400 => INVALID_REQUEST,
        401 => UNAUTHORIZED,
        404 => NOT_FOUND,
        409 => VERSION_CONFLICT,
        429 => RATE_LIMIT,
        500 => SERVER_ERROR,
        503 => SERVICE_UNAVAILABLE,
        _ => return None,
    })
}

/// `PUT /api/pems/pfa/{pfaId}`: a change to one record, made against base version `version`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteRequest {
    pub pfa_id: String,
    pub organization_code: String,
    pub changes: Map<String, Value>,
    /// The PEMS version the change was based on; PEMS answers 409 when it is not current.
    pub version: i64,
    pub modified_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_reason: Option<String>,
}

/// The 200 answer to an accepted write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteOk {
    pub success: bool,
    pub pfa_id: String,
    /// The record's version after this write (base version + 1).
    pub new_version: i64,
    pub updated_at: String,
}

/// A record as PEMS holds it (`GET /api/pems/pfa/{pfaId}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoteRecord {
    pub pfa_id: String,
    pub version: i64,
    pub fields: Map<String, Value>,
    pub updated_at: String,
    pub modified_by: String,
}

/// Body of every error answer except 409: `{success: false, error: CODE, message}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    pub success: bool,
    pub error: String,
    pub message: String,
}

/// Body of the 409 answer: the write's base version is not the record's current version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionConflict {
    pub success: bool,
    /// Always [`VERSION_CONFLICT`].
    pub error: String,
    pub message: String,
    pub current_version: i64,
    pub expected_version: i64,
    /// Fields changed in PEMS since `expectedVersion` that the write also changes.
    pub conflicting_fields: Vec<String>,
    /// Every field changed in PEMS since `expectedVersion`.
    pub changed_fields: Vec<String>,
    /// The current PEMS value of every field in `changedFields`.
    pub current_values: Map<String, Value>,
}

/// `POST /api/pems/pfa/batch`: several writes in one request, each handled like a PUT.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchRequest {
    pub organization_code: String,
    pub items: Vec<BatchItem>,
}

/// One write of a batch, with the idempotency key the PUT would send as a header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchItem {
    pub request: WriteRequest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// The 200 answer to a batch: one result per item, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchResponse {
    pub results: Vec<BatchResult>,
}

/// What the single PUT would have answered for one batch item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchResult {
    pub pfa_id: String,
    pub status: u16,
    pub body: Value,
}

/// `POST /api/pems/_faults/remote-edit`: someone edits a record directly in PEMS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoteEdit {
    pub organization_code: String,
    pub pfa_id: String,
    pub changes: Map<String, Value>,
    /// The version the record is created at when PEMS does not know it yet (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_version: Option<i64>,
    /// Who edited it (default `pems-user`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_by: Option<String>,
}

/// `GET /api/pems/_stats`: monotonic counters proving how often records were written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Writes accepted (200 and applied); idempotent replays and remote edits do not count.
    pub writes: u64,
    /// Accepted writes per record, keyed `"ORG/PFA-ID"`.
    pub by_record: BTreeMap<String, u64>,
    /// Write requests received (PUTs and batch items), failed ones included.
    pub requests: u64,
}

/// The key of a record in [`Stats::by_record`].
pub fn record_key(organization_code: &str, pfa_id: &str) -> String {
    format!("{organization_code}/{pfa_id}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn write_request_is_camel_case_and_omits_a_missing_reason() {
        let req = WriteRequest {
            pfa_id: "PFA-001".into(),
            organization_code: "RIO".into(),
            changes: json!({ "monthlyRate": 10 }).as_object().unwrap().clone(),
            version: 3,
            modified_by: "ana".into(),
            change_reason: None,
        };
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            json!({ "pfaId": "PFA-001", "organizationCode": "RIO",
                    "changes": { "monthlyRate": 10 }, "version": 3, "modifiedBy": "ana" })
        );
    }

    #[test]
    fn every_pems_status_has_its_code_and_others_have_none() {
        assert_eq!(code_for_status(503), Some(SERVICE_UNAVAILABLE));
        assert_eq!(code_for_status(429), Some(RATE_LIMIT));
        assert_eq!(code_for_status(418), None);
    }
}
