//! Sync jobs, their queue items (one per record), conflicts and the audit trail.

use super::Store;
use crate::domain::sync::{ItemStatus, JobStatus};
use anyhow::Context;
use serde::Serialize;
use serde_json::{json, Map, Value};

mod writes;

#[cfg(test)]
pub(crate) use writes::fixtures;
pub use writes::{EngineWrites, ItemUpdate, RecordWrite};

fn now() -> String {
    crate::protocol::timestamp::format(&chrono::Utc::now())
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub id: String,
    pub organization_id: String,
    pub user_id: i64,
    pub username: String,
    pub kind: String,
    pub status: JobStatus,
    pub total: i64,
    pub synced: i64,
    pub conflicts: i64,
    pub failed: i64,
    pub retries: i64,
    pub reason: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
}

type JobRow = (
    String,
    String,
    i64,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    i64,
    i64,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
);
const JOB_COLUMNS: &str = "id, org_id, user_id, username, kind, status, total, synced, conflicts, failed, retries, reason, created_at, started_at, completed_at";

fn job_from(row: JobRow) -> anyhow::Result<Job> {
    let (
        id,
        org,
        user_id,
        username,
        kind,
        status,
        total,
        synced,
        conflicts,
        failed,
        retries,
        reason,
        created_at,
        started_at,
        completed_at,
    ) = row;
    Ok(Job {
        status: JobStatus::parse(&status)
            .with_context(|| format!("unknown job status {status}"))?,
        id,
        organization_id: org,
        user_id,
        username,
        kind,
        total,
        synced,
        conflicts,
        failed,
        retries,
        reason,
        created_at,
        started_at,
        completed_at,
    })
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueItem {
    pub id: i64,
    pub job_id: String,
    pub organization_id: String,
    pub pfa_id: String,
    pub user_id: i64,
    pub changes: Map<String, Value>,
    pub base_version: i64,
    pub reason: Option<String>,
    pub status: ItemStatus,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub error_code: Option<String>,
    pub last_error: Option<String>,
    #[serde(skip)]
    pub idempotency_key: String,
}

type ItemRow = (
    i64,
    String,
    String,
    String,
    i64,
    String,
    i64,
    Option<String>,
    String,
    i64,
    i64,
    Option<String>,
    Option<String>,
    String,
);
const ITEM_COLUMNS: &str = "id, job_id, org_id, pfa_id, user_id, changes, base_version, reason, status, attempts, next_attempt_at, error_code, last_error, idempotency_key";

fn item_from(row: ItemRow) -> anyhow::Result<QueueItem> {
    let (
        id,
        job_id,
        org,
        pfa_id,
        user_id,
        changes,
        base_version,
        reason,
        status,
        attempts,
        next_attempt_at,
        error_code,
        last_error,
        key,
    ) = row;
    Ok(QueueItem {
        id,
        job_id,
        organization_id: org,
        pfa_id,
        user_id,
        changes: serde_json::from_str(&changes)?,
        base_version,
        reason,
        status: ItemStatus::parse(&status)
            .with_context(|| format!("unknown item status {status}"))?,
        attempts,
        next_attempt_at,
        error_code,
        last_error,
        idempotency_key: key,
    })
}

/// One change to queue: a record, its change, the version it was based on.
#[derive(Debug, Clone)]
pub struct NewItem {
    pub pfa_id: String,
    pub changes: Map<String, Value>,
    pub base_version: i64,
    pub reason: Option<String>,
}

/// A random id with a prefix, e.g. `job-3f9a…`.
pub fn new_id(prefix: &str) -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}-{}", hex::encode(bytes))
}

impl Store {
    /// Creates a job with one queue item per change and, in the same transaction, deletes the
    /// user's drafts of those records (the queue item now holds the change).
    pub async fn create_job(
        &self,
        org: &str,
        user_id: i64,
        username: &str,
        kind: &str,
        reason: Option<&str>,
        items: &[NewItem],
    ) -> anyhow::Result<Job> {
        let id = new_id("job");
        let now = now();
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO sync_jobs (id, org_id, user_id, username, kind, status, total, reason, created_at)
             VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?)",
        )
        .bind(&id)
        .bind(org)
        .bind(user_id)
        .bind(username)
        .bind(kind)
        .bind(items.len() as i64)
        .bind(reason)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        // One statement for all items and one for all drafts, whatever their number: a
        // 10,000-record commit made 20,000 round trips to the database before.
        let rows: Vec<Value> = items
            .iter()
            .map(|item| {
                json!({ "pfa": item.pfa_id, "changes": Value::Object(item.changes.clone()).to_string(),
                        "base": item.base_version, "reason": item.reason, "key": new_id("idem") })
            })
            .collect();
        let rows = Value::Array(rows).to_string();
        sqlx::query(
            "INSERT INTO sync_queue (job_id, org_id, pfa_id, user_id, changes, base_version, reason, status,
                 idempotency_key, updated_at)
             SELECT ?1, ?2, value ->> 'pfa', ?3, value ->> 'changes', value ->> 'base', value ->> 'reason',
                 'pending', value ->> 'key', ?4
             FROM json_each(?5) ORDER BY key",
        )
        .bind(&id)
        .bind(org)
        .bind(user_id)
        .bind(&now)
        .bind(&rows)
        .execute(&mut *tx)
        .await?;
        if kind == "commit" {
            sqlx::query(
                "DELETE FROM drafts WHERE org_id = ?1 AND user_id = ?2
                     AND pfa_id IN (SELECT value ->> 'pfa' FROM json_each(?3))",
            )
            .bind(org)
            .bind(user_id)
            .bind(&rows)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.job(org, &id).await?.context("job just created")
    }

    pub async fn job(&self, org: &str, id: &str) -> anyhow::Result<Option<Job>> {
        let row: Option<JobRow> = sqlx::query_as(&format!(
            "SELECT {JOB_COLUMNS} FROM sync_jobs WHERE org_id = ? AND id = ?"
        ))
        .bind(org)
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.map(job_from).transpose()
    }

    pub async fn jobs(
        &self,
        org: &str,
        status: Option<JobStatus>,
        limit: i64,
    ) -> anyhow::Result<Vec<Job>> {
        let rows: Vec<JobRow> = sqlx::query_as(&format!(
            "SELECT {JOB_COLUMNS} FROM sync_jobs WHERE org_id = ? AND (? IS NULL OR status = ?)
             ORDER BY created_at DESC, id DESC LIMIT ?"
        ))
        .bind(org)
        .bind(status.map(|s| s.as_str()))
        .bind(status.map(|s| s.as_str()))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(job_from).collect()
    }

    /// Jobs of every org that should be running (queued or running), oldest first.
    pub async fn runnable_jobs(&self) -> anyhow::Result<Vec<Job>> {
        let rows: Vec<JobRow> = sqlx::query_as(&format!(
            "SELECT {JOB_COLUMNS} FROM sync_jobs WHERE status IN ('queued', 'running') ORDER BY created_at"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(job_from).collect()
    }

    pub async fn set_job_status(&self, id: &str, status: JobStatus) -> anyhow::Result<()> {
        let now = now();
        sqlx::query(
            "UPDATE sync_jobs SET status = ?,
                 started_at = CASE WHEN ? = 'running' AND started_at IS NULL THEN ? ELSE started_at END,
                 completed_at = CASE WHEN ? IN ('completed', 'completed_with_conflicts', 'failed', 'cancelled') THEN ? ELSE NULL END
             WHERE id = ?",
        )
        .bind(status.as_str())
        .bind(status.as_str())
        .bind(&now)
        .bind(status.as_str())
        .bind(&now)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Moves a job from `from` to `to` only if it is still in `from` (a command may have
    /// changed it meanwhile); true when it moved.
    pub async fn transition_job(
        &self,
        id: &str,
        from: JobStatus,
        to: JobStatus,
    ) -> anyhow::Result<bool> {
        let now = now();
        let done = sqlx::query(
            "UPDATE sync_jobs SET status = ?, started_at = COALESCE(started_at, ?) WHERE id = ? AND status = ?",
        )
        .bind(to.as_str())
        .bind(&now)
        .bind(id)
        .bind(from.as_str())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Recounts a job's synced / conflicts / failed from its items.
    pub async fn refresh_job_counts(&self, id: &str) -> anyhow::Result<()> {
        sqlx::query(RECOUNT_JOBS)
            .bind(json!([id]).to_string())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn items(&self, job_id: &str) -> anyhow::Result<Vec<QueueItem>> {
        let rows: Vec<ItemRow> = sqlx::query_as(&format!(
            "SELECT {ITEM_COLUMNS} FROM sync_queue WHERE job_id = ? ORDER BY id"
        ))
        .bind(job_id)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(item_from).collect()
    }

    pub async fn item(&self, id: i64) -> anyhow::Result<Option<QueueItem>> {
        let row: Option<ItemRow> = sqlx::query_as(&format!(
            "SELECT {ITEM_COLUMNS} FROM sync_queue WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.map(item_from).transpose()
    }

    /// Puts items that were in flight when the process stopped back to pending (their
    /// idempotency key makes the repeated PEMS write harmless).
    pub async fn requeue_in_flight(&self) -> anyhow::Result<u64> {
        Ok(
            sqlx::query("UPDATE sync_queue SET status = 'pending' WHERE status = 'in_flight'")
                .execute(self.pool())
                .await?
                .rows_affected(),
        )
    }

    /// Re-bases a pending item on a newer version with (possibly) new changes.
    pub async fn rebase_item(
        &self,
        item_id: i64,
        changes: &Map<String, Value>,
        base_version: i64,
        reset_attempts: bool,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE sync_queue SET changes = ?, base_version = ?, status = 'pending', next_attempt_at = 0,
                 attempts = CASE WHEN ? THEN 0 ELSE attempts END, error_code = NULL, last_error = NULL,
                 idempotency_key = ?, updated_at = ? WHERE id = ?",
        )
        .bind(Value::Object(changes.clone()).to_string())
        .bind(base_version)
        .bind(reset_attempts)
        .bind(new_id("idem"))
        .bind(now())
        .bind(item_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Items of a job in `from` set to `to` (e.g. failed -> pending on retry); returns how many.
    pub async fn move_items(
        &self,
        job_id: &str,
        from: &[ItemStatus],
        to: ItemStatus,
        reset_attempts: bool,
    ) -> anyhow::Result<u64> {
        let mut moved = 0;
        for status in from {
            moved += sqlx::query(
                "UPDATE sync_queue SET status = ?, next_attempt_at = 0,
                     attempts = CASE WHEN ? THEN 0 ELSE attempts END, updated_at = ?
                 WHERE job_id = ? AND status = ?",
            )
            .bind(to.as_str())
            .bind(reset_attempts)
            .bind(now())
            .bind(job_id)
            .bind(status.as_str())
            .execute(self.pool())
            .await?
            .rows_affected();
        }
        Ok(moved)
    }
}

/// Recounts synced / conflicts / failed of the jobs whose ids are in the JSON array `?1`.
const RECOUNT_JOBS: &str = "UPDATE sync_jobs SET
         synced = (SELECT COUNT(*) FROM sync_queue WHERE job_id = sync_jobs.id AND status = 'synced'),
         conflicts = (SELECT COUNT(*) FROM sync_queue WHERE job_id = sync_jobs.id AND status = 'conflict'),
         failed = (SELECT COUNT(*) FROM sync_queue WHERE job_id = sync_jobs.id AND status = 'failed')
     WHERE id IN (SELECT value FROM json_each(?1))";
