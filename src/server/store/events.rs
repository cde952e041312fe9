//! The persisted per-organization event log behind replay.

use super::Store;

/// One logged event: its seq and the JSON frame exactly as it was sent.
#[derive(Debug, Clone)]
pub struct LoggedEvent {
    pub seq: u64,
    pub payload: String,
}

/// What the log keeps per organization: the newest `max_events`, none older than `max_age_ms`.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub max_events: u64,
    pub max_age_ms: i64,
}

impl Store {
    /// The organization's latest seq (0 when it has none).
    pub async fn latest_seq(&self, org: &str) -> anyhow::Result<u64> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM events WHERE org_id = ?")
            .bind(org)
            .fetch_one(self.pool())
            .await?;
        Ok(seq.unwrap_or(0) as u64)
    }

    pub async fn append_event(
        &self,
        org: &str,
        seq: u64,
        kind: &str,
        job_id: &str,
        payload: &str,
        created_at_ms: i64,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO events (org_id, seq, kind, job_id, payload, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(org)
        .bind(seq as i64)
        .bind(kind)
        .bind(job_id)
        .bind(payload)
        .bind(created_at_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The oldest seq still within retention for an org whose latest seq is `head`
    /// (None when nothing is retained).
    pub async fn oldest_retained_seq(
        &self,
        org: &str,
        head: u64,
        retention: Retention,
        now_ms: i64,
    ) -> anyhow::Result<Option<u64>> {
        let floor = head.saturating_sub(retention.max_events) as i64;
        let seq: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(seq) FROM events WHERE org_id = ? AND seq > ? AND created_at >= ?",
        )
        .bind(org)
        .bind(floor)
        .bind(now_ms - retention.max_age_ms)
        .fetch_one(self.pool())
        .await?;
        Ok(seq.map(|s| s as u64))
    }

    /// Events with `after < seq <= upto`, in order, at most `limit`.
    pub async fn events_between(
        &self,
        org: &str,
        after: u64,
        upto: u64,
        limit: u32,
    ) -> anyhow::Result<Vec<LoggedEvent>> {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT seq, payload FROM events WHERE org_id = ? AND seq > ? AND seq <= ?
             ORDER BY seq LIMIT ?",
        )
        .bind(org)
        .bind(after as i64)
        .bind(upto as i64)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(seq, payload)| LoggedEvent {
                seq: seq as u64,
                payload,
            })
            .collect())
    }

    /// Deletes what retention no longer keeps; returns the number of rows removed.
    pub async fn prune_events(
        &self,
        org: &str,
        head: u64,
        retention: Retention,
        now_ms: i64,
    ) -> anyhow::Result<u64> {
        let floor = head.saturating_sub(retention.max_events) as i64;
        let done =
            sqlx::query("DELETE FROM events WHERE org_id = ? AND (seq <= ? OR created_at < ?)")
                .bind(org)
                .bind(floor)
                .bind(now_ms - retention.max_age_ms)
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected())
    }
}
