//! The sync events the engine publishes, in the card's shapes (rules in docs/protocol.md).
//! Record-level events carry `pfaId`; job-level events do not and carry `data.jobStatus`.

use crate::{
    domain::sync::JobStatus,
    protocol::events::{SyncEvent, SyncEventType},
};
use serde_json::{json, Map, Value};

fn with(
    kind: SyncEventType,
    job_id: &str,
    pfa_id: Option<&str>,
    message: String,
    data: Value,
) -> SyncEvent {
    let mut e = SyncEvent::new(kind, job_id);
    e.pfa_id = pfa_id.map(str::to_owned);
    e.message = Some(message);
    if let Value::Object(map) = data {
        e.data = Some(map);
    }
    e
}

/// Job-level SYNC_STARTED, when a job starts running.
pub fn job_started(job_id: &str, total: i64, kind: &str) -> SyncEvent {
    let noun = if total == 1 { "record" } else { "records" };
    with(
        SyncEventType::SyncStarted,
        job_id,
        None,
        format!("Starting sync of {total} {noun}"),
        json!({ "jobStatus": "running", "total": total, "kind": kind }),
    )
}

/// SYNC_PROGRESS: `done` of `total` processed, `synced` of them written.
pub fn progress(job_id: &str, counts: Counts, status: JobStatus, note: Option<&str>) -> SyncEvent {
    let percent = if counts.total == 0 {
        100
    } else {
        (counts.done() * 100 / counts.total) as u8
    };
    let message = match note {
        Some(n) => n.to_owned(),
        None => format!("Synced {} of {} records", counts.synced, counts.total),
    };
    let mut e = with(
        SyncEventType::SyncProgress,
        job_id,
        None,
        message,
        counts.to_json(status),
    );
    e.progress = Some(percent.min(100));
    e
}

pub fn record_synced(job_id: &str, pfa_id: &str, version: i64) -> SyncEvent {
    with(
        SyncEventType::SyncSuccess,
        job_id,
        Some(pfa_id),
        format!("Successfully synced {pfa_id}"),
        json!({ "version": version }),
    )
}

/// SYNC_CONFLICT with the card's `conflictId, field, localValue, remoteValue` (the first
/// field) and every conflicting field in `fields`.
#[allow(clippy::too_many_arguments)]
pub fn record_conflict(
    job_id: &str,
    pfa_id: &str,
    conflict_id: &str,
    fields: &[String],
    local: &Map<String, Value>,
    remote: &Map<String, Value>,
    base_version: i64,
    remote_version: i64,
) -> SyncEvent {
    let first = fields.first().cloned().unwrap_or_default();
    let all: Vec<Value> = fields
        .iter()
        .map(|f| json!({ "field": f, "localValue": local.get(f), "remoteValue": remote.get(f) }))
        .collect();
    let message = if fields.len() == 1 {
        format!("Conflict detected in {first} field")
    } else {
        format!("Conflict detected in fields {}", fields.join(", "))
    };
    with(
        SyncEventType::SyncConflict,
        job_id,
        Some(pfa_id),
        message,
        json!({ "conflictId": conflict_id, "field": first, "localValue": local.get(&first),
                "remoteValue": remote.get(&first), "fields": all,
                "baseVersion": base_version, "remoteVersion": remote_version }),
    )
}

pub fn record_failed(
    job_id: &str,
    pfa_id: &str,
    message: String,
    error_code: &str,
    retryable: bool,
    attempts: i64,
) -> SyncEvent {
    with(
        SyncEventType::SyncFailed,
        job_id,
        Some(pfa_id),
        message,
        json!({ "errorCode": error_code, "retryable": retryable, "attempts": attempts }),
    )
}

/// The job-level terminal event: SYNC_SUCCESS for completed (with or without conflicts),
/// SYNC_FAILED for failed and cancelled jobs.
pub fn job_finished(job_id: &str, counts: Counts, status: JobStatus) -> SyncEvent {
    let data = counts.to_json(status);
    match status {
        JobStatus::Completed => with(
            SyncEventType::SyncSuccess,
            job_id,
            None,
            format!(
                "Sync job completed: {} of {} records synced",
                counts.synced, counts.total
            ),
            data,
        ),
        JobStatus::CompletedWithConflicts => with(
            SyncEventType::SyncSuccess,
            job_id,
            None,
            format!(
                "Sync job completed with {} conflict(s): {} of {} records synced",
                counts.conflicts, counts.synced, counts.total
            ),
            data,
        ),
        JobStatus::Cancelled => {
            let mut data = data;
            data["errorCode"] = json!("CANCELLED");
            data["retryable"] = json!(false);
            with(
                SyncEventType::SyncFailed,
                job_id,
                None,
                format!(
                    "Sync job cancelled: {} of {} records synced",
                    counts.synced, counts.total
                ),
                data,
            )
        }
        _ => {
            let mut data = data;
            data["errorCode"] = json!("SYNC_JOB_FAILED");
            data["retryable"] = json!(true);
            with(
                SyncEventType::SyncFailed,
                job_id,
                None,
                format!(
                    "Sync job failed: {} of {} records failed",
                    counts.failed, counts.total
                ),
                data,
            )
        }
    }
}

/// How far a job is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub total: i64,
    pub synced: i64,
    pub conflicts: i64,
    pub failed: i64,
    pub cancelled: i64,
    /// Retry waits taken so far (the job's `retries`).
    pub retries: i64,
}

impl Counts {
    pub fn done(&self) -> i64 {
        self.synced + self.conflicts + self.failed + self.cancelled
    }

    fn to_json(self, status: JobStatus) -> Value {
        json!({ "jobStatus": status.as_str(), "total": self.total, "synced": self.synced,
                "conflicts": self.conflicts, "failed": self.failed, "retries": self.retries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_reads_like_the_card() {
        let counts = Counts {
            total: 7,
            synced: 3,
            ..Default::default()
        };
        let e = progress("job-1", counts, JobStatus::Running, None);
        assert_eq!(e.message.as_deref(), Some("Synced 3 of 7 records"));
        assert_eq!(e.progress, Some(42));
        assert!(e.pfa_id.is_none());
    }

    #[test]
    fn a_conflict_carries_the_first_field_and_all_fields() {
        let local: Map<String, Value> =
            serde_json::from_value(json!({"forecastStart": "2025-12-01"})).unwrap();
        let remote: Map<String, Value> =
            serde_json::from_value(json!({"forecastStart": "2025-12-15"})).unwrap();
        let e = record_conflict(
            "j",
            "PFA-001",
            "conflict-1",
            &["forecastStart".into()],
            &local,
            &remote,
            1,
            2,
        );
        let data = e.data.unwrap();
        assert_eq!(
            e.message.as_deref(),
            Some("Conflict detected in forecastStart field")
        );
        assert_eq!(data["field"], "forecastStart");
        assert_eq!(
            (data["localValue"].as_str(), data["remoteValue"].as_str()),
            (Some("2025-12-01"), Some("2025-12-15"))
        );
        assert_eq!(data["fields"][0]["remoteValue"], "2025-12-15");
    }

    #[test]
    fn job_terminal_events_follow_the_status() {
        let c = Counts {
            total: 2,
            synced: 1,
            failed: 1,
            ..Default::default()
        };
        assert_eq!(
            job_finished("j", c, JobStatus::Failed).kind,
            SyncEventType::SyncFailed
        );
        assert_eq!(
            job_finished("j", c, JobStatus::Completed).kind,
            SyncEventType::SyncSuccess
        );
        let cancelled = job_finished("j", c, JobStatus::Cancelled).data.unwrap();
        assert_eq!(cancelled["errorCode"], "CANCELLED");
    }
}
