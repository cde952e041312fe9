//! Which runner runs a job: a lease per job (`owner`, a runner's token, until `lease_until`),
//! taken by compare-and-set, renewed by its runner, released when the runner stops. Taking a
//! job also puts its in-flight items back to pending: they were the previous runner's, whose
//! PEMS writes the idempotency keys make harmless to send again.

use super::{
    super::{on_pool, on_tx, Store},
    job_from, JobRow, JOB_COLUMNS,
};
use crate::server::store::sync::Job;
use std::time::Duration;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Jobs that need a runner: queued or running, or cancelled without the cancellation of their
/// items done (it sets `completed_at`, in the transaction of the terminal event).
const NEEDS_RUNNER: &str =
    "(status IN ('queued', 'running') OR (status = 'cancelled' AND completed_at IS NULL))";

impl Store {
    /// Takes `job_id` for the runner `token` for `lease` when nobody holds it (never held, or
    /// the lease ran out), and puts its in-flight items back to pending, in one transaction.
    /// False when another runner holds it.
    pub async fn claim_job(
        &self,
        job_id: &str,
        token: &str,
        lease: Duration,
    ) -> anyhow::Result<bool> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        let claimed = on_tx!(&mut tx, t, pg => {
            let claimed = sqlx::query(
                "UPDATE sync_jobs SET owner = $1, lease_until = $2
                 WHERE id = $3 AND (owner IS NULL OR lease_until < $4)",
            )
            .bind(token)
            .bind(now + lease.as_millis() as i64)
            .bind(job_id)
            .bind(now)
            .execute(&mut **t)
            .await?
            .rows_affected()
                == 1;
            if claimed {
                sqlx::query(
                    "UPDATE sync_queue SET status = 'pending' WHERE job_id = $1 AND status = 'in_flight'",
                )
                .bind(job_id)
                .execute(&mut **t)
                .await?;
            }
            claimed
        });
        tx.commit().await?;
        Ok(claimed)
    }

    /// Extends the lease of `token` on `job_id`; false when the runner no longer holds it.
    pub async fn renew_lease(
        &self,
        job_id: &str,
        token: &str,
        lease: Duration,
    ) -> anyhow::Result<bool> {
        let renewed = on_pool!(self.db(), pool, pg => {
            sqlx::query("UPDATE sync_jobs SET lease_until = $1 WHERE id = $2 AND owner = $3")
                .bind(now_ms() + lease.as_millis() as i64)
                .bind(job_id)
                .bind(token)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(renewed == 1)
    }

    /// Gives the job up (its runner stopped), if `token` still holds it.
    pub async fn release_job(&self, job_id: &str, token: &str) -> anyhow::Result<()> {
        on_pool!(self.db(), pool, pg => {
            sqlx::query("UPDATE sync_jobs SET owner = NULL, lease_until = 0 WHERE id = $1 AND owner = $2")
                .bind(job_id)
                .bind(token)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Forgets every lease: a SQLite database serves one process, so at its start no runner
    /// of an earlier one is alive.
    pub async fn release_all_jobs(&self) -> anyhow::Result<()> {
        on_pool!(self.db(), pool, pg => {
            sqlx::query("UPDATE sync_jobs SET owner = NULL, lease_until = 0 WHERE owner IS NOT NULL")
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Up to `limit` jobs, oldest first, that need a runner and have none (never held, or the
    /// lease ran out): what a claimer tries to take.
    pub async fn orphaned_jobs(&self, limit: i64) -> anyhow::Result<Vec<Job>> {
        let rows: Vec<JobRow> = on_pool!(self.db(), pool, pg => {
            sqlx::query_as(&format!(
                "SELECT {JOB_COLUMNS} FROM sync_jobs WHERE {NEEDS_RUNNER}
                     AND (owner IS NULL OR lease_until < $1)
                 ORDER BY created_at LIMIT $2"
            ))
            .bind(now_ms())
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(job_from).collect()
    }

    /// Who holds a job's lease and until when (unix ms), for tests and diagnostics.
    pub async fn job_lease(&self, job_id: &str) -> anyhow::Result<Option<(String, i64)>> {
        let row: Option<(Option<String>, i64)> = on_pool!(self.db(), pool, pg => {
            sqlx::query_as("SELECT owner, lease_until FROM sync_jobs WHERE id = $1")
                .bind(job_id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.and_then(|(owner, until)| owner.map(|o| (o, until))))
    }
}

#[cfg(test)]
mod tests {
    use crate::{
        domain::sync::ItemStatus,
        server::store::{
            sync::{fixtures::with_job, EngineWrites},
            testing::for_each_store,
        },
    };
    use std::time::Duration;

    for_each_store!(one_runner_holds_a_job_until_its_lease_runs_out, |store| {
        let (job, ids) = with_job(&store).await;
        let long = Duration::from_secs(60);
        assert_eq!(store.orphaned_jobs(10).await.unwrap().len(), 1);
        assert!(store.claim_job(&job, "a", long).await.unwrap());
        assert!(
            !store.claim_job(&job, "b", long).await.unwrap(),
            "a holds it"
        );
        assert!(store.orphaned_jobs(10).await.unwrap().is_empty());
        assert!(store.renew_lease(&job, "a", long).await.unwrap());
        assert!(!store.renew_lease(&job, "b", long).await.unwrap());
        // a dies with an item in flight; its lease runs out.
        let started = EngineWrites {
            started: vec![ids[0]],
            ..Default::default()
        };
        store.apply_engine_writes(&[&started]).await.unwrap();
        assert!(store.renew_lease(&job, "a", Duration::ZERO).await.unwrap());
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(store.orphaned_jobs(10).await.unwrap().len(), 1);
        assert!(
            store.claim_job(&job, "b", long).await.unwrap(),
            "b takes it over"
        );
        assert_eq!(
            store.items(&job).await.unwrap()[0].status,
            ItemStatus::Pending
        );
        assert!(
            !store.renew_lease(&job, "a", long).await.unwrap(),
            "a has lost it"
        );
        store.release_job(&job, "a").await.unwrap();
        assert_eq!(
            store.job_lease(&job).await.unwrap().unwrap().0,
            "b",
            "a cannot release b's lease"
        );
        store.release_job(&job, "b").await.unwrap();
        assert!(store.job_lease(&job).await.unwrap().is_none());
    });
}
