//! Conflicts with both sides, and the audit trail of who did what.

use super::{
    on_pool, on_tx,
    records::json_rows,
    sync::{new_id, Job, NewJob, QueueItem},
    Store, Tx,
};
use serde::Serialize;
use serde_json::{Map, Value};

fn now() -> String {
    crate::protocol::timestamp::format(&chrono::Utc::now())
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Conflict {
    pub id: String,
    pub organization_id: String,
    pub pfa_id: String,
    pub job_id: String,
    pub queue_item_id: i64,
    pub user_id: i64,
    pub fields: Vec<String>,
    pub local_values: Map<String, Value>,
    pub remote_values: Map<String, Value>,
    pub changes: Map<String, Value>,
    pub base_version: i64,
    pub remote_version: i64,
    pub status: String,
    pub resolution: Option<String>,
    pub resolved_values: Option<Map<String, Value>>,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<String>,
    pub created_at: String,
}

#[derive(sqlx::FromRow)]
struct ConflictRow {
    id: String,
    org_id: String,
    pfa_id: String,
    job_id: String,
    queue_item_id: i64,
    user_id: i64,
    fields: String,
    local_values: String,
    remote_values: String,
    changes: String,
    base_version: i64,
    remote_version: i64,
    status: String,
    resolution: Option<String>,
    resolved_values: Option<String>,
    resolved_by: Option<String>,
    resolved_at: Option<String>,
    created_at: String,
}
const CONFLICT_COLUMNS: &str = "id, org_id, pfa_id, job_id, queue_item_id, user_id, fields, local_values, remote_values, changes, base_version, remote_version, status, resolution, resolved_values, resolved_by, resolved_at, created_at";

fn conflict_from(r: ConflictRow) -> anyhow::Result<Conflict> {
    Ok(Conflict {
        fields: serde_json::from_str(&r.fields)?,
        local_values: serde_json::from_str(&r.local_values)?,
        remote_values: serde_json::from_str(&r.remote_values)?,
        changes: serde_json::from_str(&r.changes)?,
        resolved_values: r
            .resolved_values
            .map(|v| serde_json::from_str(&v))
            .transpose()?,
        id: r.id,
        organization_id: r.org_id,
        pfa_id: r.pfa_id,
        job_id: r.job_id,
        queue_item_id: r.queue_item_id,
        user_id: r.user_id,
        base_version: r.base_version,
        remote_version: r.remote_version,
        status: r.status,
        resolution: r.resolution,
        resolved_by: r.resolved_by,
        resolved_at: r.resolved_at,
        created_at: r.created_at,
    })
}

/// A conflict to record: the queue item it stops, and both sides of the conflicting fields.
#[derive(Debug, Clone)]
pub struct NewConflict {
    pub id: String,
    pub item: QueueItem,
    pub fields: Vec<String>,
    pub local: Map<String, Value>,
    pub remote: Map<String, Value>,
    pub remote_version: i64,
}

impl NewConflict {
    pub fn new(
        item: &QueueItem,
        fields: Vec<String>,
        local: Map<String, Value>,
        remote: Map<String, Value>,
        remote_version: i64,
    ) -> Self {
        Self {
            id: new_id("conflict"),
            item: item.clone(),
            fields,
            local,
            remote,
            remote_version,
        }
    }
}

/// One entry of an organization's audit trail: who did what to which target.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub org: String,
    pub user_id: Option<i64>,
    pub username: String,
    pub action: String,
    pub target: String,
    pub detail: Value,
}

impl Tx<'_> {
    /// Records open conflicts (their queue items' status is the caller's to set).
    pub(crate) async fn insert_conflicts(
        &mut self,
        conflicts: &[&NewConflict],
    ) -> anyhow::Result<()> {
        if conflicts.is_empty() {
            return Ok(());
        }
        let rows: Vec<Value> = conflicts
            .iter()
            .map(|c| {
                serde_json::json!({
                    "id": c.id, "org": c.item.organization_id, "pfa": c.item.pfa_id, "job": c.item.job_id,
                    "item": c.item.id, "user": c.item.user_id, "fields": serde_json::to_string(&c.fields).unwrap_or_default(),
                    "local": Value::Object(c.local.clone()).to_string(),
                    "remote": Value::Object(c.remote.clone()).to_string(),
                    "changes": Value::Object(c.item.changes.clone()).to_string(),
                    "base": c.item.base_version, "remoteVersion": c.remote_version,
                })
            })
            .collect();
        on_tx!(self, t, pg => {
            let int = |key: &str| if pg { format!("(value ->> '{key}')::bigint") } else { format!("value ->> '{key}'") };
            sqlx::query(&format!(
                "INSERT INTO conflicts ({CONFLICT_COLUMNS})
                 SELECT value ->> 'id', value ->> 'org', value ->> 'pfa', value ->> 'job', {}, {},
                     value ->> 'fields', value ->> 'local', value ->> 'remote', value ->> 'changes', {}, {},
                     'open', NULL, NULL, NULL, NULL, $1
                 FROM {}",
                int("item"), int("user"), int("base"), int("remoteVersion"), json_rows(pg, 2)
            ))
            .bind(now())
            .bind(Value::Array(rows).to_string())
            .execute(&mut **t)
            .await?;
        });
        Ok(())
    }

    /// Marks a conflict resolved, only once: false when it was not open.
    pub(crate) async fn resolve_conflict(
        &mut self,
        id: &str,
        resolution: &str,
        values: &Map<String, Value>,
        by: &str,
    ) -> anyhow::Result<bool> {
        let done = on_tx!(self, t, pg => {
            sqlx::query(
                "UPDATE conflicts SET status = 'resolved', resolution = $1, resolved_values = $2,
                     resolved_by = $3, resolved_at = $4
                 WHERE id = $5 AND status = 'open'",
            )
            .bind(resolution)
            .bind(Value::Object(values.clone()).to_string())
            .bind(by)
            .bind(now())
            .bind(id)
            .execute(&mut **t)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }

    /// Appends entries to the audit trail.
    pub(crate) async fn audit(&mut self, entries: &[&AuditEntry]) -> anyhow::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let rows: Vec<Value> = entries
            .iter()
            .map(|e| {
                serde_json::json!({ "org": e.org, "user": e.user_id, "name": e.username, "action": e.action,
                                    "target": e.target, "detail": e.detail.to_string() })
            })
            .collect();
        on_tx!(self, t, pg => {
            let user = if pg { "(value ->> 'user')::bigint" } else { "value ->> 'user'" };
            sqlx::query(&format!(
                "INSERT INTO audit_log (org_id, user_id, username, action, target, detail, created_at)
                 SELECT value ->> 'org', {user}, value ->> 'name', value ->> 'action', value ->> 'target',
                     value ->> 'detail', $1
                 FROM {}",
                json_rows(pg, 2)
            ))
            .bind(now())
            .bind(Value::Array(rows).to_string())
            .execute(&mut **t)
            .await?;
        });
        Ok(())
    }
}

impl Store {
    pub async fn conflict(&self, org: &str, id: &str) -> anyhow::Result<Option<Conflict>> {
        let row: Option<ConflictRow> = on_pool!(self.db(), pool, pg => {
            sqlx::query_as(&format!(
                "SELECT {CONFLICT_COLUMNS} FROM conflicts WHERE org_id = $1 AND id = $2"
            ))
            .bind(org)
            .bind(id)
            .fetch_optional(pool)
            .await?
        });
        row.map(conflict_from).transpose()
    }

    pub async fn conflicts(
        &self,
        org: &str,
        status: Option<&str>,
    ) -> anyhow::Result<Vec<Conflict>> {
        let rows: Vec<ConflictRow> = on_pool!(self.db(), pool, pg => {
            sqlx::query_as(&format!(
                "SELECT {CONFLICT_COLUMNS} FROM conflicts WHERE org_id = $1
                     AND (CAST($2 AS TEXT) IS NULL OR status = $2) ORDER BY created_at DESC, id"
            ))
            .bind(org)
            .bind(status)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(conflict_from).collect()
    }

    /// Resolves a conflict and queues the resolved change as a job (`job`, when the
    /// resolution leaves something to write), with its audit entry, in one transaction: only
    /// the first of two racing resolutions does anything. None when it was not open.
    pub async fn resolve_conflict(
        &self,
        id: &str,
        resolution: &str,
        values: &Map<String, Value>,
        by: &str,
        job: Option<NewJob>,
        audit: impl FnOnce(Option<&Job>) -> AuditEntry,
    ) -> anyhow::Result<Option<Option<Job>>> {
        let mut tx = self.begin().await?;
        if !tx.resolve_conflict(id, resolution, values, by).await? {
            return Ok(None);
        }
        let job = match job {
            Some(job) => Some(tx.insert_job(job).await?),
            None => None,
        };
        tx.audit(&[&audit(job.as_ref())]).await?;
        tx.commit().await?;
        Ok(Some(job))
    }

    pub async fn audit(
        &self,
        org: &str,
        user_id: Option<i64>,
        username: &str,
        action: &str,
        target: &str,
        detail: Value,
    ) -> anyhow::Result<()> {
        let entry = AuditEntry {
            org: org.to_owned(),
            user_id,
            username: username.to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            detail,
        };
        let mut tx = self.begin().await?;
        tx.audit(&[&entry]).await?;
        tx.commit().await
    }

    /// The newest audit entries of an org.
    pub async fn audit_entries(&self, org: &str, limit: i64) -> anyhow::Result<Vec<Value>> {
        let rows: Vec<(i64, String, String, String, String, String)> = on_pool!(self.db(), pool, pg => {
            sqlx::query_as(
                "SELECT id, username, action, target, detail, created_at FROM audit_log
                 WHERE org_id = $1 ORDER BY id DESC LIMIT $2",
            )
            .bind(org)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(id, username, action, target, detail, created_at)| {
                serde_json::json!({"id": id, "username": username, "action": action, "target": target,
                    "detail": serde_json::from_str::<Value>(&detail).unwrap_or(Value::Null), "createdAt": created_at})
            })
            .collect())
    }
}
