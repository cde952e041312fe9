//! The sync engine's writes in batches: whatever accumulated while the previous transaction
//! ran (items put in flight, accepted writes with their history rows, item statuses, retries,
//! recounts) is applied in one transaction with one statement per kind of write. Rows go in as
//! one JSON array bound to a single parameter (`json_each`), so the SQL text never changes and
//! stays parameterized.

use super::{
    super::{
        records::{write_records_tx, RecordRow},
        Store,
    },
    now, RECOUNT_JOBS,
};
use crate::domain::{pfa::PfaRecord, sync::ItemStatus};
use anyhow::Context;
use serde_json::{json, Value};
use std::collections::HashMap;

/// An accepted write of a record: its new state, the history row, and (for a queue item's own
/// write) the item that is now synced.
#[derive(Debug, Clone)]
pub struct RecordWrite {
    pub before: PfaRecord,
    pub after: PfaRecord,
    pub changed_by: String,
    pub reason: Option<String>,
    /// `sync`, `rollback` or `pems` (a change seen in PEMS through a conflict answer).
    pub kind: &'static str,
    pub job_id: String,
    pub item_id: Option<i64>,
}

/// A queue item's new status, the time of its next attempt (unix ms) and its error, if any.
#[derive(Debug, Clone)]
pub struct ItemUpdate {
    pub item_id: i64,
    pub status: ItemStatus,
    pub next_attempt_at: i64,
    /// (error code, message)
    pub error: Option<(String, String)>,
}

/// Store writes of the sync engine that commit together (see [`Store::apply_engine_writes`]).
#[derive(Debug, Clone, Default)]
pub struct EngineWrites {
    /// Items put in flight with one more attempt before PEMS is called; their records are read
    /// back in the same transaction.
    pub started: Vec<i64>,
    /// Items put in flight whose PEMS request was never sent (the job was paused or cancelled
    /// meanwhile): pending again, the attempt not counted.
    pub unstarted: Vec<i64>,
    pub records: Vec<RecordWrite>,
    pub items: Vec<ItemUpdate>,
    /// One more retry wait for the job, once per entry.
    pub retries: Vec<String>,
    /// Jobs whose counts are recounted from their items (after the other writes).
    pub recount: Vec<String>,
}

#[cfg(test)]
impl RecordWrite {
    /// A sync write of `record` as it is: its version is in the history already, so the
    /// history row, and with it the whole transaction, is refused.
    pub fn refused(record: PfaRecord, job_id: &str, item_id: i64) -> Self {
        Self {
            before: record.clone(),
            after: record,
            changed_by: "planner".into(),
            reason: None,
            kind: "sync",
            job_id: job_id.to_owned(),
            item_id: Some(item_id),
        }
    }
}

impl EngineWrites {
    pub fn is_empty(&self) -> bool {
        self.started.is_empty()
            && self.unstarted.is_empty()
            && self.records.is_empty()
            && self.items.is_empty()
            && self.retries.is_empty()
            && self.recount.is_empty()
    }
}

impl Store {
    /// Applies the engine's writes of several callers in one transaction, one statement per
    /// kind of write whatever their number; answers the records of the started items, by item
    /// id. The sync engine's writer (`sync::writer`) gathers the writes of many records here.
    pub async fn apply_engine_writes(
        &self,
        batch: &[&EngineWrites],
    ) -> anyhow::Result<HashMap<i64, PfaRecord>> {
        if batch.iter().all(|w| w.is_empty()) {
            return Ok(HashMap::new());
        }
        let all = || batch.iter().copied();
        let started: Vec<i64> = all().flat_map(|w| w.started.iter().copied()).collect();
        let unstarted: Vec<i64> = all().flat_map(|w| w.unstarted.iter().copied()).collect();
        let retries: Vec<&str> = all()
            .flat_map(|w| w.retries.iter().map(String::as_str))
            .collect();
        let recount: Vec<&str> = all()
            .flat_map(|w| w.recount.iter().map(String::as_str))
            .collect();
        let rows: Vec<RecordRow<'_>> = all()
            .flat_map(|w| &w.records)
            .map(|w| RecordRow {
                before: Some(&w.before),
                after: &w.after,
                changed_by: &w.changed_by,
                reason: w.reason.as_deref(),
                kind: w.kind,
                job_id: Some(&w.job_id),
            })
            .collect();
        let synced = all()
            .flat_map(|w| &w.records)
            .filter_map(|w| w.item_id)
            .map(|id| json!({ "id": id, "status": ItemStatus::Synced.as_str() }));
        let updates = all().flat_map(|w| &w.items).map(|u| {
            json!({ "id": u.item_id, "status": u.status.as_str(), "next": u.next_attempt_at,
                    "code": u.error.as_ref().map(|e| &e.0), "message": u.error.as_ref().map(|e| &e.1) })
        });
        let updates: Vec<Value> = synced.chain(updates).collect();

        let now = now();
        let mut tx = self.pool().begin().await?;
        write_records_tx(&mut tx, &rows).await?;
        if !updates.is_empty() {
            // A missing `next` keeps the item's next attempt time (an accepted write).
            sqlx::query(
                "UPDATE sync_queue SET status = j.status,
                     next_attempt_at = COALESCE(j.next, sync_queue.next_attempt_at),
                     error_code = j.code, last_error = j.message, updated_at = ?1
                 FROM (SELECT value ->> 'id' AS id, value ->> 'status' AS status, value ->> 'next' AS next,
                           value ->> 'code' AS code, value ->> 'message' AS message
                       FROM json_each(?2)) AS j
                 WHERE sync_queue.id = j.id",
            )
            .bind(&now)
            .bind(Value::Array(updates).to_string())
            .execute(&mut *tx)
            .await?;
        }
        let started_json = json!(started).to_string();
        if !started.is_empty() {
            sqlx::query(
                "UPDATE sync_queue SET status = 'in_flight', attempts = attempts + 1, updated_at = ?1
                 WHERE id IN (SELECT value FROM json_each(?2))",
            )
            .bind(&now)
            .bind(&started_json)
            .execute(&mut *tx)
            .await?;
        }
        if !unstarted.is_empty() {
            sqlx::query(
                "UPDATE sync_queue SET status = 'pending', attempts = attempts - 1, updated_at = ?1
                 WHERE status = 'in_flight' AND id IN (SELECT value FROM json_each(?2))",
            )
            .bind(&now)
            .bind(json!(unstarted).to_string())
            .execute(&mut *tx)
            .await?;
        }
        if !retries.is_empty() {
            sqlx::query(
                "UPDATE sync_jobs SET retries = retries
                     + (SELECT COUNT(*) FROM json_each(?1) WHERE value = sync_jobs.id)
                 WHERE id IN (SELECT value FROM json_each(?1))",
            )
            .bind(json!(retries).to_string())
            .execute(&mut *tx)
            .await?;
        }
        if !recount.is_empty() {
            sqlx::query(RECOUNT_JOBS)
                .bind(json!(recount).to_string())
                .execute(&mut *tx)
                .await?;
        }
        let mut records = HashMap::new();
        if !started.is_empty() {
            let rows: Vec<(i64, String)> = sqlx::query_as(
                "SELECT q.id, r.data FROM sync_queue q
                 JOIN pfa_records r ON r.org_id = q.org_id AND r.pfa_id = q.pfa_id
                 WHERE q.id IN (SELECT value FROM json_each(?))",
            )
            .bind(&started_json)
            .fetch_all(&mut *tx)
            .await?;
            for (id, data) in rows {
                records.insert(id, serde_json::from_str(&data).context("corrupt record")?);
            }
        }
        tx.commit().await?;
        Ok(records)
    }
}

/// Test fixtures shared with the sync writer's tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use crate::{
        domain::demo_data::demo_records,
        server::store::{sync::NewItem, Store},
    };
    use serde_json::json;

    /// A migrated store with 3 demo records of org-rio and a job with one item per record.
    pub async fn store_with_job() -> (tempfile::TempDir, Store, String, Vec<i64>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}/t.db", dir.path().display()))
            .await
            .unwrap();
        store
            .seed_records(&demo_records("org-rio", 3))
            .await
            .unwrap();
        let user = store.create_user("planner", "x").await.unwrap();
        let items: Vec<NewItem> = (1..=3)
            .map(|n| NewItem {
                pfa_id: format!("PFA-{n:05}"),
                changes: serde_json::from_value(json!({ "notes": format!("n{n}") })).unwrap(),
                base_version: 1,
                reason: Some("why".into()),
            })
            .collect();
        let job = store
            .create_job("org-rio", user, "planner", "commit", None, &items)
            .await
            .unwrap();
        let ids = store
            .items(&job.id)
            .await
            .unwrap()
            .iter()
            .map(|i| i.id)
            .collect();
        (dir, store, job.id, ids)
    }
}

#[cfg(test)]
mod tests {
    use super::{fixtures::store_with_job, *};

    #[tokio::test]
    async fn the_writes_of_several_callers_commit_together_as_if_applied_one_by_one() {
        let (_dir, store, job, ids) = store_with_job().await;
        let started = EngineWrites {
            started: ids.clone(),
            ..Default::default()
        };
        let records = store.apply_engine_writes(&[&started]).await.unwrap();
        assert_eq!(records.len(), 3, "the started items' records are read back");
        let before = records[&ids[0]].clone();
        assert_eq!(before.pfa_id, "PFA-00001");

        let mut after = before.clone();
        after.notes = "n1".into();
        after.version = 2;
        let synced = EngineWrites {
            records: vec![RecordWrite {
                before,
                after,
                changed_by: "planner".into(),
                reason: Some("why".into()),
                kind: "sync",
                job_id: job.clone(),
                item_id: Some(ids[0]),
            }],
            ..Default::default()
        };
        let failed = EngineWrites {
            items: vec![ItemUpdate {
                item_id: ids[1],
                status: ItemStatus::Failed,
                next_attempt_at: 0,
                error: Some(("PEMS_INVALID_REQUEST".into(), "bad".into())),
            }],
            ..Default::default()
        };
        let retried = EngineWrites {
            items: vec![ItemUpdate {
                item_id: ids[2],
                status: ItemStatus::Pending,
                next_attempt_at: 42,
                error: Some(("PEMS_UNAVAILABLE".into(), "down".into())),
            }],
            retries: vec![job.clone()],
            recount: vec![job.clone()],
            ..Default::default()
        };
        store
            .apply_engine_writes(&[&synced, &failed, &retried])
            .await
            .unwrap();

        let items = store.items(&job).await.unwrap();
        let state: Vec<_> = items
            .iter()
            .map(|i| {
                (
                    i.status,
                    i.attempts,
                    i.next_attempt_at,
                    i.error_code.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            state,
            [
                (ItemStatus::Synced, 1, 0, None),
                (ItemStatus::Failed, 1, 0, Some("PEMS_INVALID_REQUEST")),
                (ItemStatus::Pending, 1, 42, Some("PEMS_UNAVAILABLE")),
            ]
        );
        let record = store.record("org-rio", "PFA-00001").await.unwrap().unwrap();
        assert_eq!((record.notes.as_str(), record.version), ("n1", 2));
        let history = store.history("org-rio", "PFA-00001").await.unwrap();
        assert_eq!((history[0].version, history[0].kind.as_str()), (2, "sync"));
        assert_eq!(history[0].changes["notes"]["to"], "n1");
        assert_eq!(history[0].job_id.as_deref(), Some(job.as_str()));
        let job = store.job("org-rio", &job).await.unwrap().unwrap();
        assert_eq!(
            (job.synced, job.failed, job.conflicts, job.retries),
            (1, 1, 0, 1)
        );
    }

    #[tokio::test]
    async fn a_batch_with_a_bad_write_commits_nothing() {
        let (_dir, store, job, ids) = store_with_job().await;
        let record = store.record("org-rio", "PFA-00001").await.unwrap().unwrap();
        // Version 1 is in the history already (the seed): the history row is refused.
        let duplicate = EngineWrites {
            records: vec![RecordWrite::refused(record, &job, ids[0])],
            ..Default::default()
        };
        let started = EngineWrites {
            started: vec![ids[1]],
            ..Default::default()
        };
        assert!(store
            .apply_engine_writes(&[&started, &duplicate])
            .await
            .is_err());
        let items = store.items(&job).await.unwrap();
        assert!(
            items
                .iter()
                .all(|i| i.status == ItemStatus::Pending && i.attempts == 0),
            "{items:?}"
        );
    }
}
