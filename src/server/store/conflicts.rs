//! Conflicts with both sides, and the audit trail of who did what.

use super::{
    sync::{new_id, QueueItem},
    Store,
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

impl Store {
    #[allow(clippy::too_many_arguments)]
    pub async fn create_conflict(
        &self,
        item: &QueueItem,
        fields: &[String],
        local: &Map<String, Value>,
        remote: &Map<String, Value>,
        remote_version: i64,
    ) -> anyhow::Result<String> {
        let id = new_id("conflict");
        let mut tx = self.pool().begin().await?;
        sqlx::query(&format!(
            "INSERT INTO conflicts ({CONFLICT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'open', NULL, NULL, NULL, NULL, ?)"
        ))
        .bind(&id)
        .bind(&item.organization_id)
        .bind(&item.pfa_id)
        .bind(&item.job_id)
        .bind(item.id)
        .bind(item.user_id)
        .bind(serde_json::to_string(fields)?)
        .bind(Value::Object(local.clone()).to_string())
        .bind(Value::Object(remote.clone()).to_string())
        .bind(Value::Object(item.changes.clone()).to_string())
        .bind(item.base_version)
        .bind(remote_version)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE sync_queue SET status = 'conflict', error_code = 'PEMS_VERSION_CONFLICT', updated_at = ? WHERE id = ?")
            .bind(now())
            .bind(item.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn conflict(&self, org: &str, id: &str) -> anyhow::Result<Option<Conflict>> {
        let row: Option<ConflictRow> = sqlx::query_as(&format!(
            "SELECT {CONFLICT_COLUMNS} FROM conflicts WHERE org_id = ? AND id = ?"
        ))
        .bind(org)
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.map(conflict_from).transpose()
    }

    pub async fn conflicts(
        &self,
        org: &str,
        status: Option<&str>,
    ) -> anyhow::Result<Vec<Conflict>> {
        let rows: Vec<ConflictRow> = sqlx::query_as(&format!(
            "SELECT {CONFLICT_COLUMNS} FROM conflicts WHERE org_id = ? AND (? IS NULL OR status = ?) ORDER BY created_at DESC"
        ))
        .bind(org)
        .bind(status)
        .bind(status)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(conflict_from).collect()
    }

    /// Marks a conflict resolved (only once: false when it was already resolved).
    pub async fn resolve_conflict(
        &self,
        id: &str,
        resolution: &str,
        values: &Map<String, Value>,
        by: &str,
    ) -> anyhow::Result<bool> {
        let done = sqlx::query(
            "UPDATE conflicts SET status = 'resolved', resolution = ?, resolved_values = ?, resolved_by = ?, resolved_at = ?
             WHERE id = ? AND status = 'open'",
        )
        .bind(resolution)
        .bind(Value::Object(values.clone()).to_string())
        .bind(by)
        .bind(now())
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
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
        sqlx::query("INSERT INTO audit_log (org_id, user_id, username, action, target, detail, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)")
            .bind(org)
            .bind(user_id)
            .bind(username)
            .bind(action)
            .bind(target)
            .bind(detail.to_string())
            .bind(now())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The newest audit entries of an org.
    pub async fn audit_entries(&self, org: &str, limit: i64) -> anyhow::Result<Vec<Value>> {
        let rows: Vec<(i64, String, String, String, String, String)> = sqlx::query_as(
            "SELECT id, username, action, target, detail, created_at FROM audit_log WHERE org_id = ? ORDER BY id DESC LIMIT ?",
        )
        .bind(org)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, username, action, target, detail, created_at)| {
                serde_json::json!({"id": id, "username": username, "action": action, "target": target,
                    "detail": serde_json::from_str::<Value>(&detail).unwrap_or(Value::Null), "createdAt": created_at})
            })
            .collect())
    }
}
