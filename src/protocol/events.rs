//! `SyncEvent`, exactly as the quick-reference card defines it, plus `seq` and
//! `organizationId`, which the server assigns when it publishes.

use super::text::{named, Named};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The five event types of the card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SyncEventType {
    SyncStarted,
    SyncProgress,
    SyncSuccess,
    SyncConflict,
    SyncFailed,
}

impl SyncEventType {
    pub const ALL: [Self; 5] = [
        Self::SyncStarted,
        Self::SyncProgress,
        Self::SyncSuccess,
        Self::SyncConflict,
        Self::SyncFailed,
    ];

    pub fn parse(raw: &str) -> Option<Self> {
        Self::from_name(raw)
    }

    /// Progress may be coalesced (latest per job wins) under backpressure; every other event
    /// is delivered or the connection is closed with 4008.
    pub fn is_coalescible(self) -> bool {
        self == Self::SyncProgress
    }
}

named!(SyncEventType {
    SyncStarted => "SYNC_STARTED",
    SyncProgress => "SYNC_PROGRESS",
    SyncSuccess => "SYNC_SUCCESS",
    SyncConflict => "SYNC_CONFLICT",
    SyncFailed => "SYNC_FAILED",
});

/// One step of a sync job, streamed to every browser of the organization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncEvent {
    #[serde(rename = "type")]
    pub kind: SyncEventType,
    pub job_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pfa_id: Option<String>,
    /// 0-100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(with = "super::timestamp")]
    pub timestamp: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Map<String, Value>>,
    /// Per-organization sequence number, assigned by the server; strictly increasing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// The organization the event belongs to, assigned by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_id: Option<String>,
}

impl SyncEvent {
    pub fn new(kind: SyncEventType, job_id: impl Into<String>) -> Self {
        Self {
            kind,
            job_id: job_id.into(),
            pfa_id: None,
            progress: None,
            message: None,
            timestamp: Utc::now(),
            data: None,
            seq: None,
            organization_id: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_read_back_what_they_write_and_nothing_else() {
        for t in SyncEventType::ALL {
            let json = serde_json::to_value(t).unwrap();
            assert_eq!(json, t.as_str());
            assert_eq!(serde_json::from_value::<SyncEventType>(json).unwrap(), t);
        }
        let error = serde_json::from_str::<SyncEventType>(r#""SYNC_DONE""#).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("unknown variant `SYNC_DONE`, expected one of `SYNC_STARTED`"),
            "{error}"
        );
        assert!(serde_json::from_str::<SyncEventType>(r#"{"SYNC_STARTED": null}"#).is_err());
        assert!(serde_json::from_str::<SyncEventType>("3").is_err());
    }

    pub(crate) const CARD_EXAMPLES: [(&str, &str); 5] = [
        ("SYNC_STARTED", include_str!("fixtures/sync_started.json")),
        ("SYNC_PROGRESS", include_str!("fixtures/sync_progress.json")),
        ("SYNC_SUCCESS", include_str!("fixtures/sync_success.json")),
        ("SYNC_CONFLICT", include_str!("fixtures/sync_conflict.json")),
        ("SYNC_FAILED", include_str!("fixtures/sync_failed.json")),
    ];

    /// Compares two JSON objects field by field, timestamps as instants.
    fn same_fields(a: &Value, b: &Value) {
        let (a, b) = (a.as_object().unwrap(), b.as_object().unwrap());
        assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
        for (k, va) in a {
            if k == "timestamp" {
                let ta = super::super::timestamp::parse(va.as_str().unwrap()).unwrap();
                let tb = super::super::timestamp::parse(b[k].as_str().unwrap()).unwrap();
                assert_eq!(ta, tb);
            } else {
                assert_eq!(va, &b[k], "field {k}");
            }
        }
    }

    #[test]
    fn every_card_example_parses_and_serializes_back_to_the_same_fields() {
        for (kind, raw) in CARD_EXAMPLES {
            let original: Value = serde_json::from_str(raw).unwrap();
            let event: SyncEvent = serde_json::from_str(raw).unwrap();
            assert_eq!(event.kind.as_str(), kind);
            let back = serde_json::to_value(&event).unwrap();
            same_fields(&original, &back);
        }
    }

    #[test]
    fn timestamps_go_out_in_utc_with_microseconds() {
        let event: SyncEvent = serde_json::from_str(CARD_EXAMPLES[0].1).unwrap();
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["timestamp"], "2025-11-28T10:00:00.000000Z");
    }

    #[test]
    fn seq_and_organization_are_added_in_camel_case() {
        let mut event: SyncEvent = serde_json::from_str(CARD_EXAMPLES[1].1).unwrap();
        event.seq = Some(42);
        event.organization_id = Some("org-rio".into());
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["seq"], 42);
        assert_eq!(json["organizationId"], "org-rio");
        assert_eq!(json["jobId"], "sync-job-123");
    }

    #[test]
    fn unknown_types_and_out_of_range_progress_are_rejected() {
        let bad_type = r#"{"type":"SYNC_MAYBE","jobId":"j","timestamp":"2025-11-28T10:00:00Z"}"#;
        assert!(serde_json::from_str::<SyncEvent>(bad_type).is_err());
        let bad_progress = r#"{"type":"SYNC_PROGRESS","jobId":"j","progress":300,"timestamp":"2025-11-28T10:00:00Z"}"#;
        assert!(serde_json::from_str::<SyncEvent>(bad_progress).is_err());
    }

    #[test]
    fn only_progress_is_coalescible() {
        for t in SyncEventType::ALL {
            assert_eq!(t.is_coalescible(), t == SyncEventType::SyncProgress);
            assert_eq!(SyncEventType::parse(t.as_str()), Some(t));
        }
    }
}
