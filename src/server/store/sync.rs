//! Sync jobs, their queue items (one per record), conflicts and the audit trail.

use super::{
    conflicts::AuditEntry,
    dialect, on_pool, on_tx,
    records::{in_json, json_rows},
    Store, Tx,
};
use crate::domain::sync::{ItemStatus, JobStatus};
use anyhow::Context;
use serde::Serialize;
use serde_json::{json, Map, Value};

mod leases;
mod writes;

#[cfg(test)]
pub(crate) use writes::fixtures;
pub use writes::{
    Applied, EngineWrites, ItemUpdate, JobChange, RecordWrite, RestoredDrafts, Turn, JOBS_CHANNEL,
};

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

/// A sync job to create, with one queue item per change.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub org: String,
    pub user_id: i64,
    pub username: String,
    /// `commit`, `rollback` or `resolution`.
    pub kind: &'static str,
    pub reason: Option<String>,
    pub items: Vec<NewItem>,
}

/// A random id with a prefix, e.g. `job-3f9a…`.
pub fn new_id(prefix: &str) -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}-{}", hex::encode(bytes))
}

/// The SQL of a JSON row's integer field `key` (`value` of [`json_rows`]).
pub(crate) fn json_int(pg: bool, key: &str) -> String {
    if pg {
        format!("(value ->> '{key}')::bigint")
    } else {
        format!("value ->> '{key}'")
    }
}

impl Tx<'_> {
    /// Creates a job with one pending queue item per change (one statement for all items,
    /// whatever their number).
    pub(crate) async fn insert_job(&mut self, job: NewJob) -> anyhow::Result<Job> {
        let id = new_id("job");
        let now = now();
        let rows: Vec<Value> = job
            .items
            .iter()
            .enumerate()
            .map(|(n, item)| {
                json!({ "n": n, "pfa": item.pfa_id, "changes": Value::Object(item.changes.clone()).to_string(),
                        "base": item.base_version, "reason": item.reason, "key": new_id("idem") })
            })
            .collect();
        on_tx!(self, t, pg => {
            sqlx::query(
                "INSERT INTO sync_jobs (id, org_id, user_id, username, kind, status, total, reason, created_at)
                 VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7, $8)",
            )
            .bind(&id)
            .bind(&job.org)
            .bind(job.user_id)
            .bind(&job.username)
            .bind(job.kind)
            .bind(job.items.len() as i64)
            .bind(&job.reason)
            .bind(&now)
            .execute(&mut **t)
            .await?;
            sqlx::query(&format!(
                "INSERT INTO sync_queue (job_id, org_id, pfa_id, user_id, changes, base_version, reason, status,
                     idempotency_key, updated_at)
                 SELECT $1, $2, value ->> 'pfa', $3, value ->> 'changes', {}, value ->> 'reason',
                     'pending', value ->> 'key', $4
                 FROM {} ORDER BY {}",
                json_int(pg, "base"),
                json_rows(pg, 5),
                json_int(pg, "n"),
            ))
            .bind(&id)
            .bind(&job.org)
            .bind(job.user_id)
            .bind(&now)
            .bind(Value::Array(rows).to_string())
            .execute(&mut **t)
            .await?;
        });
        Ok(Job {
            id,
            organization_id: job.org,
            user_id: job.user_id,
            username: job.username,
            kind: job.kind.to_owned(),
            status: JobStatus::Queued,
            total: job.items.len() as i64,
            synced: 0,
            conflicts: 0,
            failed: 0,
            retries: 0,
            reason: job.reason,
            created_at: now,
            started_at: None,
            completed_at: None,
        })
    }
}

impl Store {
    /// Turns the user's drafts (of `pfa_ids`, or all) into a `commit` job in one transaction:
    /// reads the drafts, creates the job, deletes exactly the drafts it took (a draft saved
    /// meanwhile on PostgreSQL waits for the commit and stays a draft) and writes the audit
    /// entry. None when there is no draft to commit.
    pub async fn commit_drafts(
        &self,
        org: &str,
        user_id: i64,
        username: &str,
        pfa_ids: Option<&[String]>,
        reason: Option<&str>,
        audit: impl FnOnce(&Job) -> AuditEntry,
    ) -> anyhow::Result<Option<Job>> {
        let mut tx = self.begin().await?;
        let drafts = tx.drafts_for_commit(org, user_id, pfa_ids).await?;
        if drafts.is_empty() {
            return Ok(None);
        }
        let taken: Vec<&str> = drafts.iter().map(|d| d.pfa_id.as_str()).collect();
        let taken = serde_json::to_string(&taken)?;
        let items = drafts
            .iter()
            .map(|d| NewItem {
                pfa_id: d.pfa_id.clone(),
                changes: d.changes.clone(),
                base_version: d.base_version,
                reason: d.reason.clone().or_else(|| reason.map(str::to_owned)),
            })
            .collect();
        let job = tx
            .insert_job(NewJob {
                org: org.to_owned(),
                user_id,
                username: username.to_owned(),
                kind: "commit",
                reason: reason.map(str::to_owned),
                items,
            })
            .await?;
        on_tx!(&mut tx, t, pg => {
            // On PostgreSQL a join with the taken ids: `= ANY(array)` compares each row with
            // the whole array when the planner picks a scan (2 s for a commit of 10,000).
            sqlx::query(dialect(
                pg,
                "DELETE FROM drafts WHERE org_id = $1 AND user_id = $2
                 AND pfa_id IN (SELECT value FROM json_each($3))",
                "DELETE FROM drafts AS d USING jsonb_array_elements_text($3::jsonb) AS taken(pfa_id)
                 WHERE d.org_id = $1 AND d.user_id = $2 AND d.pfa_id = taken.pfa_id",
            ))
            .bind(org)
            .bind(user_id)
            .bind(&taken)
            .execute(&mut **t)
            .await?;
        });
        tx.audit(&[&audit(&job)]).await?;
        tx.commit().await?;
        Ok(Some(job))
    }

    /// Creates a job and its audit entry in one transaction.
    pub async fn create_job(
        &self,
        job: NewJob,
        audit: impl FnOnce(&Job) -> AuditEntry,
    ) -> anyhow::Result<Job> {
        let mut tx = self.begin().await?;
        let job = tx.insert_job(job).await?;
        tx.audit(&[&audit(&job)]).await?;
        tx.commit().await?;
        Ok(job)
    }

    pub async fn job(&self, org: &str, id: &str) -> anyhow::Result<Option<Job>> {
        let row: Option<JobRow> = on_pool!(self.db(), pool, pg => {
            sqlx::query_as(&format!(
                "SELECT {JOB_COLUMNS} FROM sync_jobs WHERE org_id = $1 AND id = $2"
            ))
            .bind(org)
            .bind(id)
            .fetch_optional(pool)
            .await?
        });
        row.map(job_from).transpose()
    }

    pub async fn jobs(
        &self,
        org: &str,
        status: Option<JobStatus>,
        limit: i64,
    ) -> anyhow::Result<Vec<Job>> {
        let rows: Vec<JobRow> = on_pool!(self.db(), pool, pg => {
            sqlx::query_as(&format!(
                "SELECT {JOB_COLUMNS} FROM sync_jobs WHERE org_id = $1
                     AND (CAST($2 AS TEXT) IS NULL OR status = $2)
                 ORDER BY created_at DESC, id DESC LIMIT $3"
            ))
            .bind(org)
            .bind(status.map(|s| s.as_str()))
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(job_from).collect()
    }

    pub async fn items(&self, job_id: &str) -> anyhow::Result<Vec<QueueItem>> {
        let rows: Vec<ItemRow> = on_pool!(self.db(), pool, pg => {
            sqlx::query_as(&format!(
                "SELECT {ITEM_COLUMNS} FROM sync_queue WHERE job_id = $1 ORDER BY id"
            ))
            .bind(job_id)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(item_from).collect()
    }

    pub async fn item(&self, id: i64) -> anyhow::Result<Option<QueueItem>> {
        let row: Option<ItemRow> = on_pool!(self.db(), pool, pg => {
            sqlx::query_as(&format!("SELECT {ITEM_COLUMNS} FROM sync_queue WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        row.map(item_from).transpose()
    }

    /// Re-bases an in-flight item on a newer version with (possibly) new changes; pending
    /// again with a new idempotency key. False when the item was not in flight.
    pub async fn rebase_item(
        &self,
        item_id: i64,
        changes: &Map<String, Value>,
        base_version: i64,
    ) -> anyhow::Result<bool> {
        let done = on_pool!(self.db(), pool, pg => {
            sqlx::query(
                "UPDATE sync_queue SET changes = $1, base_version = $2, status = 'pending', next_attempt_at = 0,
                     error_code = NULL, last_error = NULL, idempotency_key = $3, updated_at = $4
                 WHERE id = $5 AND status = 'in_flight'",
            )
            .bind(Value::Object(changes.clone()).to_string())
            .bind(base_version)
            .bind(new_id("idem"))
            .bind(now())
            .bind(item_id)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }
}

/// Recounts synced / conflicts / failed of the jobs whose ids are in the JSON array `$1`.
fn recount_jobs(pg: bool) -> String {
    format!(
        "UPDATE sync_jobs SET
             synced = (SELECT COUNT(*) FROM sync_queue WHERE job_id = sync_jobs.id AND status = 'synced'),
             conflicts = (SELECT COUNT(*) FROM sync_queue WHERE job_id = sync_jobs.id AND status = 'conflict'),
             failed = (SELECT COUNT(*) FROM sync_queue WHERE job_id = sync_jobs.id AND status = 'failed')
         WHERE {}",
        in_json(pg, "id", 1)
    )
}
