//! Sync jobs, conflicts and record history: the JSON API calls of the sync-queue dashboard, the
//! conflict dialog and the version timeline, and the rules that turn live sync events into job
//! rows. Sync commands go over the page's socket (`hooks::sync_status::Commands`).

use super::http::{self, ApiError};
use crate::protocol::{
    events::{SyncEvent, SyncEventType},
    frames::CommandKind,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A sync job as `GET /api/orgs/{org}/jobs` returns it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub id: String,
    pub username: String,
    pub kind: String,
    pub status: String,
    pub total: u64,
    pub synced: u64,
    pub conflicts: u64,
    pub failed: u64,
    #[serde(default)]
    pub retries: u64,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(with = "crate::protocol::timestamp")]
    pub created_at: DateTime<Utc>,
    #[serde(default, with = "crate::protocol::timestamp::option")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, with = "crate::protocol::timestamp::option")]
    pub completed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct JobList {
    pub items: Vec<Job>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct JobAnswer {
    pub job: Job,
}

/// One record of a job (`GET /api/orgs/{org}/jobs/{id}`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueItem {
    pub id: i64,
    pub pfa_id: String,
    pub status: String,
    pub attempts: u64,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct JobDetail {
    pub job: Job,
    pub items: Vec<QueueItem>,
}

/// A conflict between a change and PEMS (`GET /api/orgs/{org}/conflicts/{id}`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Conflict {
    pub id: String,
    pub pfa_id: String,
    pub job_id: String,
    pub fields: Vec<String>,
    pub local_values: Map<String, Value>,
    pub remote_values: Map<String, Value>,
    pub base_version: i64,
    pub remote_version: i64,
    pub status: String,
    #[serde(with = "crate::protocol::timestamp")]
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ConflictList {
    pub items: Vec<Conflict>,
}

/// Body of `POST …/conflicts/{id}/resolve`.
#[derive(Debug, Clone, Serialize)]
pub struct ResolveRequest {
    pub resolution: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ResolveAnswer {
    pub conflict: Conflict,
    pub job: Option<Job>,
}

/// `GET …/records/{pfa}/history`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct History {
    pub pfa_id: String,
    pub current_version: i64,
    pub versions: Vec<Version>,
}

/// One accepted write of a record; `changes` is `{field: {from, to}}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Version {
    pub version: i64,
    pub changes: Map<String, Value>,
    pub changed_by: String,
    #[serde(default)]
    pub reason: Option<String>,
    pub kind: String,
    #[serde(default)]
    pub job_id: Option<String>,
    #[serde(with = "crate::protocol::timestamp")]
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RollbackRequest {
    pub version: i64,
    pub reason: String,
}

pub async fn list_jobs(org: &str, status: Option<&str>) -> Result<Vec<Job>, ApiError> {
    let query = status.map(|s| format!("?status={s}")).unwrap_or_default();
    http::get::<JobList>(&format!("/api/orgs/{org}/jobs{query}"))
        .await
        .map(|l| l.items)
}

pub async fn job_detail(org: &str, job_id: &str) -> Result<JobDetail, ApiError> {
    http::get(&format!("/api/orgs/{org}/jobs/{job_id}")).await
}

pub async fn open_conflicts(org: &str) -> Result<Vec<Conflict>, ApiError> {
    http::get::<ConflictList>(&format!("/api/orgs/{org}/conflicts?status=open"))
        .await
        .map(|l| l.items)
}

pub async fn conflict(org: &str, id: &str) -> Result<Conflict, ApiError> {
    http::get(&format!("/api/orgs/{org}/conflicts/{id}")).await
}

pub async fn resolve_conflict(
    org: &str,
    id: &str,
    body: &ResolveRequest,
) -> Result<ResolveAnswer, ApiError> {
    http::send(
        "POST",
        &format!("/api/orgs/{org}/conflicts/{id}/resolve"),
        body,
    )
    .await
}

pub async fn record_history(org: &str, pfa: &str) -> Result<History, ApiError> {
    http::get(&format!("/api/orgs/{org}/records/{pfa}/history")).await
}

pub async fn rollback(org: &str, pfa: &str, body: &RollbackRequest) -> Result<Job, ApiError> {
    http::send::<_, JobAnswer>(
        "POST",
        &format!("/api/orgs/{org}/records/{pfa}/rollback"),
        body,
    )
    .await
    .map(|a| a.job)
}

/// The server's message, followed by its per-field messages when there are any.
pub fn describe(error: &ApiError) -> String {
    let mut parts = Vec::new();
    if let Some(Value::Object(fields)) = &error.fields {
        for (name, message) in fields {
            match message {
                Value::String(m) => parts.push(format!("{name}: {m}")),
                other => parts.push(format!("{name}: {other}")),
            }
        }
    }
    if parts.is_empty() {
        error.message.clone()
    } else {
        format!("{} ({})", error.message, parts.join("; "))
    }
}

/// A JSON value as a person reads it: strings without quotes, null as "(empty)".
pub fn show_value(value: &Value) -> String {
    match value {
        Value::Null => "(empty)".to_owned(),
        Value::String(s) if s.is_empty() => "(empty)".to_owned(),
        Value::String(s) => s.clone(),
        // Money is stored as a float: 3100.0 reads as 3100, as in the grid.
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// Statuses after which a job changes no more.
pub fn is_terminal(status: &str) -> bool {
    matches!(
        status,
        "completed" | "completed_with_conflicts" | "failed" | "cancelled"
    )
}

impl Job {
    /// Records finished so far, whatever the outcome.
    pub fn done(&self) -> u64 {
        self.synced + self.conflicts + self.failed
    }

    pub fn percent(&self) -> u64 {
        (self.done() * 100)
            .checked_div(self.total)
            .unwrap_or(0)
            .min(100)
    }

    /// The commands the job's status allows, in display order.
    pub fn allowed_commands(&self) -> Vec<CommandKind> {
        match self.status.as_str() {
            "queued" | "running" => vec![CommandKind::PauseSync, CommandKind::CancelSync],
            "paused" => vec![CommandKind::ResumeSync, CommandKind::CancelSync],
            "failed" => vec![CommandKind::RetrySync],
            "completed_with_conflicts" if self.failed > 0 => vec![CommandKind::RetrySync],
            _ => Vec::new(),
        }
    }

    /// Seconds left for a running job, from its rate so far (elapsed / done × remaining).
    pub fn eta_secs(&self, now: DateTime<Utc>) -> Option<i64> {
        if self.status != "running" || self.done() == 0 || self.done() >= self.total {
            return None;
        }
        let elapsed = (now - self.started_at?).num_milliseconds().max(0);
        let remaining = (self.total - self.done()) as i64;
        Some((elapsed * remaining / self.done() as i64 + 999) / 1000)
    }

    /// Brings the row up to date with a live event of this job: job-level events carry
    /// `data.jobStatus`, progress carries the counts.
    pub fn apply_event(&mut self, event: &SyncEvent) {
        let data = event.data.as_ref();
        let number = |key: &str| data.and_then(|d| d.get(key)).and_then(Value::as_u64);
        if event.pfa_id.is_none() {
            if let Some(status) = data
                .and_then(|d| d.get("jobStatus"))
                .and_then(Value::as_str)
            {
                self.status = status.to_owned();
            }
        }
        if event.kind == SyncEventType::SyncProgress {
            self.total = number("total").unwrap_or(self.total);
            self.synced = number("synced").unwrap_or(self.synced);
            self.conflicts = number("conflicts").unwrap_or(self.conflicts);
            self.failed = number("failed").unwrap_or(self.failed);
            self.retries = number("retries").unwrap_or(self.retries);
        }
        if self.status == "running" && self.started_at.is_none() {
            self.started_at = Some(event.timestamp);
        }
        if is_terminal(&self.status) && self.completed_at.is_none() {
            self.completed_at = Some(event.timestamp);
        }
    }
}

/// The button text of a command.
pub fn command_label(kind: CommandKind) -> &'static str {
    match kind {
        CommandKind::PauseSync => "Pause",
        CommandKind::ResumeSync => "Resume",
        CommandKind::CancelSync => "Cancel",
        CommandKind::RetrySync => "Retry",
    }
}

/// Seconds as "42 s" or "3 min 05 s".
pub fn format_secs(secs: i64) -> String {
    if secs < 60 {
        format!("{secs} s")
    } else {
        format!("{} min {:02} s", secs / 60, secs % 60)
    }
}

/// A timestamp in the browser's local time.
pub fn format_time(at: &DateTime<Utc>) -> String {
    full_time(&at.with_timezone(&chrono::Local).naive_local())
}

/// A timestamp in the browser's local time, short: the time of day when it is today.
pub fn format_time_short(at: &DateTime<Utc>) -> String {
    let local = at.with_timezone(&chrono::Local).naive_local();
    short_time(&local, chrono::Local::now().date_naive())
}

/// `2025-11-28 10:00:07`.
fn full_time(t: &chrono::NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// `10:00:07` on `today`, else `Nov 28 10:00`.
fn short_time(t: &chrono::NaiveDateTime, today: chrono::NaiveDate) -> String {
    let format = if t.date() == today {
        "%H:%M:%S"
    } else {
        "%b %d %H:%M"
    };
    t.format(format).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shown_in_full_or_short_when_today() {
        let at = |s: &str| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap();
        let t = at("2025-11-28 10:00:07");
        assert_eq!(full_time(&t), "2025-11-28 10:00:07");
        assert_eq!(short_time(&t, t.date()), "10:00:07");
        assert_eq!(short_time(&t, t.date().succ_opt().unwrap()), "Nov 28 10:00");
        assert_eq!(
            short_time(&at("2026-01-05 00:09:00"), chrono::NaiveDate::MIN),
            "Jan 05 00:09"
        );
    }

    #[test]
    fn values_are_shown_as_a_planner_reads_them() {
        use serde_json::json;
        assert_eq!(show_value(&json!(3100.0)), "3100");
        assert_eq!(show_value(&json!(1234.5)), "1234.5");
        assert_eq!(show_value(&json!(7)), "7");
        assert_eq!(show_value(&json!(null)), "(empty)");
        assert_eq!(show_value(&json!("")), "(empty)");
        assert_eq!(show_value(&json!("CAT-320")), "CAT-320");
        assert_eq!(show_value(&json!(true)), "true");
    }

    fn job(status: &str) -> Job {
        serde_json::from_value(serde_json::json!({
            "id": "job-1", "username": "planner", "kind": "commit", "status": status,
            "total": 10, "synced": 2, "conflicts": 1, "failed": 1, "retries": 0,
            "createdAt": "2026-11-26T00:52:18.039367Z", "startedAt": "2026-11-26T00:52:18.039367Z",
            "completedAt": null, "organizationId": "org-rio", "userId": 3, "reason": null
        }))
        .unwrap()
    }

    fn event(raw: serde_json::Value) -> SyncEvent {
        serde_json::from_value(raw).unwrap()
    }

    #[test]
    fn commands_follow_the_job_status() {
        use CommandKind::*;
        assert_eq!(
            job("running").allowed_commands(),
            vec![PauseSync, CancelSync]
        );
        assert_eq!(
            job("queued").allowed_commands(),
            vec![PauseSync, CancelSync]
        );
        assert_eq!(
            job("paused").allowed_commands(),
            vec![ResumeSync, CancelSync]
        );
        assert_eq!(job("failed").allowed_commands(), vec![RetrySync]);
        assert_eq!(
            job("completed_with_conflicts").allowed_commands(),
            vec![RetrySync]
        );
        assert!(job("completed").allowed_commands().is_empty());
        assert!(job("cancelled").allowed_commands().is_empty());
    }

    #[test]
    fn eta_extrapolates_the_rate_so_far() {
        let j = job("running");
        let now = j.started_at.unwrap() + chrono::Duration::seconds(4);
        // 4 done in 4 s, 6 left: 6 s.
        assert_eq!(j.eta_secs(now), Some(6));
        assert_eq!(job("paused").eta_secs(now), None);
        assert_eq!(j.percent(), 40);
    }

    #[test]
    fn progress_and_terminal_events_update_the_row() {
        let mut j = job("queued");
        j.apply_event(&event(serde_json::json!({
            "type": "SYNC_PROGRESS", "jobId": "job-1", "progress": 50,
            "timestamp": "2026-11-26T00:52:19.000000Z",
            "data": {"jobStatus": "running", "total": 10, "synced": 5, "conflicts": 0, "failed": 0, "retries": 3}
        })));
        assert_eq!(
            (j.status.as_str(), j.synced, j.done(), j.retries),
            ("running", 5, 5, 3)
        );
        j.apply_event(&event(serde_json::json!({
            "type": "SYNC_SUCCESS", "jobId": "job-1", "timestamp": "2026-11-26T00:52:20.000000Z",
            "data": {"jobStatus": "completed"}
        })));
        assert_eq!(j.status, "completed");
        assert!(j.completed_at.is_some());
    }

    #[test]
    fn a_record_event_does_not_change_the_job_status() {
        let mut j = job("running");
        j.apply_event(&event(serde_json::json!({
            "type": "SYNC_FAILED", "jobId": "job-1", "pfaId": "PFA-00001",
            "timestamp": "2026-11-26T00:52:20.000000Z", "data": {"jobStatus": "failed"}
        })));
        assert_eq!(j.status, "running");
    }
}
