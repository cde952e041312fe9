//! Field-by-field validation of a `SyncEvent` submitted to the publish API, so that every
//! problem is reported at once (422 with `fields`), not just the first serde error.

use super::{
    events::{SyncEvent, SyncEventType},
    timestamp,
};
use chrono::Utc;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The largest published event, as JSON with its seq and organization.
pub const MAX_EVENT_BYTES: usize = 16 * 1024;

/// Field name -> what is wrong with it.
pub type FieldErrors = BTreeMap<String, String>;

const KNOWN: [&str; 9] = [
    "type",
    "jobId",
    "pfaId",
    "progress",
    "message",
    "timestamp",
    "data",
    "seq",
    "organizationId",
];

fn short_string(
    obj: &Map<String, Value>,
    field: &str,
    max: usize,
    errors: &mut FieldErrors,
) -> Option<String> {
    match obj.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= max => Some(s.clone()),
        Some(Value::String(_)) => {
            errors.insert(field.into(), format!("must be 1 to {max} characters"));
            None
        }
        Some(_) => {
            errors.insert(field.into(), "must be a string".into());
            None
        }
    }
}

/// Validates a submitted event. `seq` and `organizationId` are assigned by the server:
/// `seq` may not be sent; `organizationId`, when sent, must be `org`. A missing `timestamp`
/// is the time of publication.
pub fn event_for_publish(body: &Value, org: &str) -> Result<SyncEvent, FieldErrors> {
    let mut errors = FieldErrors::new();
    let Some(obj) = body.as_object() else {
        errors.insert("body".into(), "must be a JSON object".into());
        return Err(errors);
    };
    for key in obj.keys().filter(|k| !KNOWN.contains(&k.as_str())) {
        errors.insert(key.clone(), "unknown field".into());
    }
    let kind = match obj.get("type") {
        Some(Value::String(t)) => SyncEventType::parse(t).or_else(|| {
            errors.insert(
                "type".into(),
                "must be SYNC_STARTED, SYNC_PROGRESS, SYNC_SUCCESS, SYNC_CONFLICT or SYNC_FAILED"
                    .into(),
            );
            None
        }),
        _ => {
            errors.insert("type".into(), "required".into());
            None
        }
    };
    let job_id = short_string(obj, "jobId", 128, &mut errors);
    if job_id.is_none() && !errors.contains_key("jobId") {
        errors.insert("jobId".into(), "required".into());
    }
    let pfa_id = short_string(obj, "pfaId", 64, &mut errors);
    let message = short_string(obj, "message", 2000, &mut errors);
    let progress = match obj.get("progress") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64().filter(|p| *p <= 100) {
            Some(p) => Some(p as u8),
            None => {
                errors.insert("progress".into(), "must be an integer from 0 to 100".into());
                None
            }
        },
    };
    let timestamp = match obj.get("timestamp") {
        None | Some(Value::Null) => Some(Utc::now()),
        Some(Value::String(s)) => timestamp::parse(s).or_else(|| {
            errors.insert("timestamp".into(), "must be an RFC 3339 date-time".into());
            None
        }),
        Some(_) => {
            errors.insert(
                "timestamp".into(),
                "must be an RFC 3339 date-time string".into(),
            );
            None
        }
    };
    let data = match obj.get("data") {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => Some(map.clone()),
        Some(_) => {
            errors.insert("data".into(), "must be an object".into());
            None
        }
    };
    if obj.get("seq").is_some_and(|v| !v.is_null()) {
        errors.insert(
            "seq".into(),
            "assigned by the server; do not send it".into(),
        );
    }
    match obj.get("organizationId") {
        None | Some(Value::Null) => {}
        Some(Value::String(o)) if o == org => {}
        Some(_) => {
            errors.insert(
                "organizationId".into(),
                format!("must be {org:?} (the organization in the URL)"),
            );
        }
    }
    if kind == Some(SyncEventType::SyncProgress)
        && progress.is_none()
        && !errors.contains_key("progress")
    {
        errors.insert("progress".into(), "required for SYNC_PROGRESS".into());
    }
    let event = match (errors.is_empty(), kind, job_id, timestamp) {
        (true, Some(kind), Some(job_id), Some(timestamp)) => SyncEvent {
            kind,
            job_id,
            pfa_id,
            progress,
            message,
            timestamp,
            data,
            seq: None,
            organization_id: None,
        },
        _ => return Err(errors),
    };
    // Measured as sent: with the organization and the largest seq.
    let sent = SyncEvent {
        seq: Some(u64::MAX),
        organization_id: Some(org.to_owned()),
        ..event.clone()
    };
    let size = serde_json::to_vec(&sent).map_or(usize::MAX, |json| json.len());
    if size > MAX_EVENT_BYTES {
        errors.insert(
            "body".into(),
            format!("the event is {size} bytes as sent; at most {MAX_EVENT_BYTES}"),
        );
        return Err(errors);
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_card_example_is_a_valid_submission() {
        for raw in [
            include_str!("fixtures/sync_started.json"),
            include_str!("fixtures/sync_progress.json"),
            include_str!("fixtures/sync_success.json"),
            include_str!("fixtures/sync_conflict.json"),
            include_str!("fixtures/sync_failed.json"),
        ] {
            let body: Value = serde_json::from_str(raw).unwrap();
            let event = event_for_publish(&body, "org-rio").unwrap();
            assert_eq!(event.job_id, "sync-job-123");
        }
    }

    #[test]
    fn an_event_over_16_kib_as_sent_is_refused() {
        let body = |text: &str| json!({"type": "SYNC_PROGRESS", "jobId": "j", "progress": 5, "data": {"note": text}});
        let fits = event_for_publish(&body(&"x".repeat(15_000)), "org-rio").unwrap();
        assert!(serde_json::to_vec(&fits).unwrap().len() < MAX_EVENT_BYTES);
        let errors = event_for_publish(&body(&"x".repeat(MAX_EVENT_BYTES)), "org-rio").unwrap_err();
        assert!(errors["body"].contains("at most 16384"), "{errors:?}");
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let body = json!({"type": "SYNC_NOPE", "progress": 101, "timestamp": "yesterday",
                          "data": [1], "seq": 5, "organizationId": "org-other", "extra": true});
        let errors = event_for_publish(&body, "org-rio").unwrap_err();
        for field in [
            "type",
            "jobId",
            "progress",
            "timestamp",
            "data",
            "seq",
            "organizationId",
            "extra",
        ] {
            assert!(
                errors.contains_key(field),
                "{field} missing from {errors:?}"
            );
        }
    }

    #[test]
    fn progress_events_need_a_progress() {
        let body = json!({"type": "SYNC_PROGRESS", "jobId": "j"});
        assert!(event_for_publish(&body, "org-rio")
            .unwrap_err()
            .contains_key("progress"));
        let body = json!({"type": "SYNC_STARTED", "jobId": "j"});
        assert!(event_for_publish(&body, "org-rio").is_ok());
    }

    #[test]
    fn non_objects_are_refused() {
        assert!(event_for_publish(&json!([1, 2]), "org-rio")
            .unwrap_err()
            .contains_key("body"));
    }

    mod properties {
        use super::*;
        use crate::protocol::arbitrary;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Any object is either an event within the limits or a list of field errors.
            #[test]
            fn any_object_is_a_valid_event_or_field_errors(
                object in arbitrary::object_with(&KNOWN),
                body in arbitrary::json(),
            ) {
                for body in [Value::Object(object), body] {
                    match event_for_publish(&body, "org-rio") {
                        Ok(event) => {
                            prop_assert!(!event.job_id.trim().is_empty() && event.job_id.len() <= 128);
                            prop_assert!(event.seq.is_none());
                            let sent = SyncEvent {
                                seq: Some(u64::MAX),
                                organization_id: Some("org-rio".into()),
                                ..event
                            };
                            prop_assert!(serde_json::to_vec(&sent).unwrap().len() <= MAX_EVENT_BYTES);
                        }
                        Err(errors) => prop_assert!(!errors.is_empty()),
                    }
                }
            }
        }
    }
}
