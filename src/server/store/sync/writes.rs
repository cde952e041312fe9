//! The sync engine's writes and the events that report them, in one transaction: whatever
//! accumulated while the previous transaction ran (items put in flight, accepted writes with
//! their history rows, item statuses, conflicts, retries, recounts, audit entries) is applied
//! with one statement per kind of write, and the events are appended to the log in the same
//! transaction. Rows go in as one JSON array bound to a single parameter, so the SQL text never
//! changes and stays parameterized.
//!
//! Every status change is compare-and-set: a job moves only from the statuses its change names,
//! an item is put in flight only from pending and gets its outcome only while in flight. A
//! caller whose expectation no longer holds is *fenced*: none of its writes and none of its
//! events are applied, and the others of the batch go ahead.

use super::{
    super::{
        commands::CommandRecord,
        conflicts::{AuditEntry, NewConflict},
        events::Committed,
        on_tx,
        records::{in_json, in_json_ids, json_rows, NewDraft, RecordRow},
        Store,
    },
    now, recount_jobs,
};
use crate::{
    domain::{
        pfa::PfaRecord,
        sync::{ItemStatus, JobStatus},
    },
    protocol::events::SyncEvent,
};
use anyhow::Context;
use serde_json::{json, Value};
use std::collections::HashMap;

/// The PostgreSQL channel of job status changes; the payload is the job id.
pub const JOBS_CHANNEL: &str = "pfa_sync_jobs";

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

/// The outcome of an in-flight queue item: its new status, the time of its next attempt
/// (unix ms) and its error, if any.
#[derive(Debug, Clone)]
pub struct ItemUpdate {
    pub item_id: i64,
    pub status: ItemStatus,
    pub next_attempt_at: i64,
    /// (error code, message)
    pub error: Option<(String, String)>,
}

/// A job's status change, applied only while the job is in one of `from`.
#[derive(Debug, Clone)]
pub struct JobChange {
    pub job_id: String,
    pub from: Vec<JobStatus>,
    pub to: JobStatus,
}

/// Changes of a cancelled job given back to their author as drafts; a draft the author saved
/// since is kept, not overwritten.
#[derive(Debug, Clone)]
pub struct RestoredDrafts {
    pub org: String,
    pub user_id: i64,
    pub drafts: Vec<NewDraft>,
}

/// Store writes of the sync engine that commit together with their events (see
/// [`Store::apply_engine_writes`]).
#[derive(Debug, Clone, Default)]
pub struct EngineWrites {
    /// A job status change; writes that carry one are applied in a transaction of their own.
    pub job: Option<JobChange>,
    /// Pending items put in flight with one more attempt before PEMS is called; their records
    /// are read back in the same transaction.
    pub started: Vec<i64>,
    /// Items put in flight whose PEMS request was never sent (the job was paused or cancelled
    /// meanwhile): pending again, the attempt not counted.
    pub unstarted: Vec<i64>,
    pub records: Vec<RecordWrite>,
    pub items: Vec<ItemUpdate>,
    /// Conflicts found; their items' `conflict` status is one of `items`.
    pub conflicts: Vec<NewConflict>,
    /// Cancelled jobs whose pending and in-flight items are cancelled now; the cancellation is
    /// then complete (`completed_at` set: until then a runner is owed to the job).
    pub cancel_open: Vec<String>,
    /// Jobs whose failed items go back to pending with their attempts reset (a retry).
    pub requeue_failed: Vec<String>,
    pub drafts: Vec<RestoredDrafts>,
    /// One more retry wait for the job, once per entry.
    pub retries: Vec<String>,
    /// Jobs whose counts are recounted from their items (after the other writes).
    pub recount: Vec<String>,
    pub audit: Vec<AuditEntry>,
    /// The events that report these writes: (organization, event), appended in order.
    pub events: Vec<(String, SyncEvent)>,
    /// The answer of the sync command these writes apply (recorded once per sender, command
    /// id, command and job).
    pub command: Option<CommandRecord>,
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
    /// Only events.
    pub fn announce(org: &str, event: SyncEvent) -> Self {
        Self {
            events: vec![(org.to_owned(), event)],
            ..Default::default()
        }
    }

    /// Whether these writes change jobs as a whole (a status, or all their items at once):
    /// rows that overlapping batches may hold, so they go after every batch before them and
    /// before any after them (see [`Turn`]).
    pub fn changes_whole_jobs(&self) -> bool {
        self.job.is_some() || !self.cancel_open.is_empty() || !self.requeue_failed.is_empty()
    }

    /// The items whose status this expects, with the status expected.
    fn expectations(&self) -> impl Iterator<Item = (i64, ItemStatus)> + '_ {
        let started = self.started.iter().map(|id| (*id, ItemStatus::Pending));
        let outcomes = self
            .items
            .iter()
            .map(|u| u.item_id)
            .chain(self.records.iter().filter_map(|r| r.item_id))
            .map(|id| (id, ItemStatus::InFlight));
        started.chain(outcomes)
    }
}

/// Where a batch of the sync writer waits for the batch before it, so that the two overlap
/// on PostgreSQL: a batch first writes its records, their history rows and its items'
/// outcomes (rows no earlier batch still to commit will touch), then signals `written` (the
/// next batch may begin) and waits for `previous` (the previous batch is committed and its
/// events delivered) before it starts items, changes job rows and appends its events. So seqs,
/// deliveries and answers keep the batches' order, and of two overlapping transactions only
/// the later one ever waits for a row lock of the other: they cannot deadlock. The default
/// waits for nothing.
#[derive(Debug, Default)]
pub struct Turn {
    /// Dropped once this batch's own writes are done (or it failed).
    pub written: Option<tokio::sync::oneshot::Sender<()>>,
    /// Resolves (or is dropped) once the previous batch is committed and delivered.
    pub previous: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl Turn {
    /// Whether this batch overlaps another one.
    fn overlaps(&self) -> bool {
        self.written.is_some() || self.previous.is_some()
    }

    /// Lets the next batch begin, then waits for the previous one to be done.
    pub async fn wait_for_previous(&mut self) {
        self.written.take();
        if let Some(previous) = self.previous.take() {
            // An error only means the previous batch's task ended without a signal: done.
            let _ = previous.await;
        }
    }
}

/// What [`Store::apply_engine_writes`] did.
#[derive(Debug, Default)]
pub struct Applied {
    /// The records of the started items, by item id.
    pub records: HashMap<i64, PfaRecord>,
    /// Per caller: fenced (nothing of it applied) because a status it expected had changed.
    pub fenced: Vec<bool>,
    /// The events appended, in seq order per organization.
    pub committed: Vec<Committed>,
}

impl Store {
    /// Applies the engine's writes of several callers and appends their events in one
    /// transaction, one statement per kind of write whatever their number. A caller that
    /// carries a job change must come alone.
    ///
    /// Most batches find every item in the status its caller expects, so the first attempt
    /// does not read the statuses: each status change checks its own (`WHERE status = ...`)
    /// and the rows it changed are counted. If one falls short, that transaction is rolled
    /// back and the batch applied again after reading (on PostgreSQL, locking) the items,
    /// which fences the callers whose expectation failed.
    pub async fn apply_engine_writes(&self, batch: &[&EngineWrites]) -> anyhow::Result<Applied> {
        self.apply_engine_writes_in_turn(batch, &mut Turn::default())
            .await
    }

    /// [`Store::apply_engine_writes`] for a batch that may begin before the previous one has
    /// committed (see [`Turn`]).
    pub async fn apply_engine_writes_in_turn(
        &self,
        batch: &[&EngineWrites],
        turn: &mut Turn,
    ) -> anyhow::Result<Applied> {
        if batch.len() > 1 && batch.iter().any(|w| w.job.is_some()) {
            anyhow::bail!("a job status change is applied in a transaction of its own");
        }
        // Taken before the first attempt, which may use up the turn's signals.
        let overlapping = turn.overlaps();
        if let Some(applied) = self.apply_batch(batch, false, turn, overlapping).await? {
            return Ok(applied);
        }
        Ok(self
            .apply_batch(batch, true, turn, overlapping)
            .await?
            .expect("a batch applied after reading its items always completes"))
    }

    /// [`Store::apply_engine_writes`] in one transaction: None when `read_first` is false and
    /// an item was not in the status its caller expected (nothing is committed then); with
    /// `read_first`, always Some. `overlapping`: the batch overlaps another (see [`Turn`]),
    /// in this attempt or an earlier one.
    async fn apply_batch(
        &self,
        batch: &[&EngineWrites],
        read_first: bool,
        turn: &mut Turn,
        overlapping: bool,
    ) -> anyhow::Result<Option<Applied>> {
        let mut tx = self.begin().await?;
        if overlapping {
            // A lock wait that [`Turn`] did not foresee (a transaction of another kind locking
            // rows in another order) becomes an error after a while instead of a wait forever:
            // the wait for the previous batch is one PostgreSQL cannot see.
            on_tx!(&mut tx, t, pg => {
                if pg {
                    sqlx::query("SET LOCAL lock_timeout = '5s'").execute(&mut **t).await?;
                }
            });
        }
        let mut applied = Applied {
            fenced: vec![false; batch.len()],
            ..Default::default()
        };
        let now = now();

        if let Some(change) = batch.first().and_then(|w| w.job.as_ref()) {
            let from: Vec<&str> = change.from.iter().map(|s| s.as_str()).collect();
            let moved = on_tx!(&mut tx, t, pg => {
                sqlx::query(&format!(
                    "UPDATE sync_jobs SET status = $1,
                         started_at = CASE WHEN $1 = 'running' THEN COALESCE(started_at, $2) ELSE started_at END,
                         completed_at = CASE WHEN $1 IN ('completed', 'completed_with_conflicts', 'failed')
                                        THEN $2 ELSE NULL END
                     WHERE id = $3 AND {}",
                    in_json(pg, "status", 4)
                ))
                .bind(change.to.as_str())
                .bind(&now)
                .bind(&change.job_id)
                .bind(json!(from).to_string())
                .execute(&mut **t)
                .await?
                .rows_affected()
            });
            if moved == 0 {
                applied.fenced[0] = true;
                return Ok(Some(applied));
            }
            // Wakes the job's runner wherever it runs.
            tx.notify(JOBS_CHANNEL, &change.job_id).await?;
        }

        // Compare-and-set of item statuses: read (and on PostgreSQL lock) every item a caller
        // expects in some status; a caller with one that is not is left out.
        let expected: Vec<(i64, ItemStatus)> =
            batch.iter().flat_map(|w| w.expectations()).collect();
        if read_first && !expected.is_empty() {
            let ids: Vec<i64> = expected.iter().map(|(id, _)| *id).collect();
            let rows: Vec<(i64, String)> = on_tx!(&mut tx, t, pg => {
                let lock = if pg { " FOR UPDATE" } else { "" };
                sqlx::query_as(&format!(
                    "SELECT id, status FROM sync_queue WHERE {}{lock}",
                    in_json_ids(pg, "id", 1)
                ))
                .bind(json!(ids).to_string())
                .fetch_all(&mut **t)
                .await?
            });
            let actual: HashMap<i64, String> = rows.into_iter().collect();
            for (i, writes) in batch.iter().enumerate() {
                applied.fenced[i] = writes.expectations().any(|(id, status)| {
                    actual.get(&id).map(String::as_str) != Some(status.as_str())
                });
            }
        }
        let live = || {
            batch
                .iter()
                .zip(&applied.fenced)
                .filter(|(_, fenced)| !**fenced)
                .map(|(w, _)| *w)
        };

        let rows: Vec<RecordRow<'_>> = live()
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
        tx.write_records(&rows).await?;

        let synced = live()
            .flat_map(|w| &w.records)
            .filter_map(|w| w.item_id)
            .map(|id| json!({ "id": id, "status": ItemStatus::Synced.as_str() }));
        let updates = live().flat_map(|w| &w.items).map(|u| {
            json!({ "id": u.item_id, "status": u.status.as_str(), "next": u.next_attempt_at,
                    "code": u.error.as_ref().map(|e| &e.0), "message": u.error.as_ref().map(|e| &e.1) })
        });
        let updates: Vec<Value> = synced.chain(updates).collect();
        let started: Vec<i64> = live().flat_map(|w| w.started.iter().copied()).collect();
        let unstarted: Vec<i64> = live().flat_map(|w| w.unstarted.iter().copied()).collect();
        let cancel_open: Vec<&str> = live()
            .flat_map(|w| w.cancel_open.iter().map(String::as_str))
            .collect();
        let requeue_failed: Vec<&str> = live()
            .flat_map(|w| w.requeue_failed.iter().map(String::as_str))
            .collect();
        let retries: Vec<&str> = live()
            .flat_map(|w| w.retries.iter().map(String::as_str))
            .collect();
        let recount: Vec<&str> = live()
            .flat_map(|w| w.recount.iter().map(String::as_str))
            .collect();

        on_tx!(&mut tx, t, pg => {
            if !updates.is_empty() {
                // A missing `next` keeps the item's next attempt time (an accepted write).
                let (next, id) = if pg {
                    ("(value ->> 'next')::bigint", "(value ->> 'id')::bigint")
                } else {
                    ("value ->> 'next'", "value ->> 'id'")
                };
                let expected = updates.len() as u64;
                let changed = sqlx::query(&format!(
                    "UPDATE sync_queue SET status = j.status,
                         next_attempt_at = COALESCE(j.next, sync_queue.next_attempt_at),
                         error_code = j.code, last_error = j.message, updated_at = $1
                     FROM (SELECT {id} AS id, value ->> 'status' AS status, {next} AS next,
                               value ->> 'code' AS code, value ->> 'message' AS message
                           FROM {}) AS j
                     WHERE sync_queue.id = j.id AND sync_queue.status = 'in_flight'",
                    json_rows(pg, 2)
                ))
                .bind(&now)
                .bind(Value::Array(updates).to_string())
                .execute(&mut **t)
                .await?
                .rows_affected();
                if !read_first && changed != expected {
                    return Ok(None);
                }
            }
        });
        // What follows reads what the previous batch wrote (the records of started items,
        // the counts of a recount) or orders events after its events: its turn.
        turn.wait_for_previous().await;
        on_tx!(&mut tx, t, pg => {
            if !started.is_empty() {
                // In flight, and each one's record as it is now (after this batch's writes).
                let rows: Vec<(i64, String)> = sqlx::query_as(&format!(
                    "UPDATE sync_queue SET status = 'in_flight', attempts = attempts + 1, updated_at = $1
                     WHERE status = 'pending' AND {}
                     RETURNING id, (SELECT r.data FROM pfa_records r
                                    WHERE r.org_id = sync_queue.org_id AND r.pfa_id = sync_queue.pfa_id)",
                    in_json_ids(pg, "id", 2)
                ))
                .bind(&now)
                .bind(json!(started).to_string())
                .fetch_all(&mut **t)
                .await?;
                if !read_first && rows.len() != started.len() {
                    return Ok(None);
                }
                for (id, data) in rows {
                    applied
                        .records
                        .insert(id, serde_json::from_str(&data).context("corrupt record")?);
                }
            }
            if !unstarted.is_empty() {
                sqlx::query(&format!(
                    "UPDATE sync_queue SET status = 'pending', attempts = attempts - 1, updated_at = $1
                     WHERE status = 'in_flight' AND {}",
                    in_json_ids(pg, "id", 2)
                ))
                .bind(&now)
                .bind(json!(unstarted).to_string())
                .execute(&mut **t)
                .await?;
            }
            if !cancel_open.is_empty() {
                sqlx::query(&format!(
                    "UPDATE sync_queue SET status = 'cancelled', updated_at = $1
                     WHERE status IN ('pending', 'in_flight') AND {}",
                    in_json(pg, "job_id", 2)
                ))
                .bind(&now)
                .bind(json!(cancel_open).to_string())
                .execute(&mut **t)
                .await?;
                sqlx::query(&format!(
                    "UPDATE sync_jobs SET completed_at = $1
                     WHERE status = 'cancelled' AND completed_at IS NULL AND {}",
                    in_json(pg, "id", 2)
                ))
                .bind(&now)
                .bind(json!(cancel_open).to_string())
                .execute(&mut **t)
                .await?;
            }
            if !requeue_failed.is_empty() {
                sqlx::query(&format!(
                    "UPDATE sync_queue SET status = 'pending', next_attempt_at = 0, attempts = 0, updated_at = $1
                     WHERE status = 'failed' AND {}",
                    in_json(pg, "job_id", 2)
                ))
                .bind(&now)
                .bind(json!(requeue_failed).to_string())
                .execute(&mut **t)
                .await?;
            }
            if !retries.is_empty() {
                let each = if pg { "jsonb_array_elements_text($1::jsonb)" } else { "json_each($1)" };
                sqlx::query(&format!(
                    "UPDATE sync_jobs SET retries = retries
                         + (SELECT COUNT(*) FROM {each} AS r WHERE r.value = sync_jobs.id)
                     WHERE {}",
                    in_json(pg, "id", 1)
                ))
                .bind(json!(retries).to_string())
                .execute(&mut **t)
                .await?;
            }
        });
        let conflicts: Vec<&NewConflict> = live().flat_map(|w| &w.conflicts).collect();
        tx.insert_conflicts(&conflicts).await?;
        for restored in live().flat_map(|w| &w.drafts) {
            tx.save_drafts(&restored.org, restored.user_id, &restored.drafts, false)
                .await?;
        }
        if !recount.is_empty() {
            on_tx!(&mut tx, t, pg => {
                sqlx::query(&recount_jobs(pg))
                    .bind(json!(recount).to_string())
                    .execute(&mut **t)
                    .await?;
            });
        }
        let audit: Vec<&AuditEntry> = live().flat_map(|w| &w.audit).collect();
        tx.audit(&audit).await?;
        for record in live().filter_map(|w| w.command.as_ref()) {
            tx.insert_command(record).await?;
        }
        // Last: on PostgreSQL the organizations' heads stay locked from here to the commit.
        let events: Vec<(String, SyncEvent)> =
            live().flat_map(|w| w.events.iter().cloned()).collect();
        applied.committed = tx.append_events(events, self.instance()).await?;
        tx.commit().await?;
        Ok(Some(applied))
    }
}

/// Test fixtures shared with the sync writer's tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use crate::{
        domain::demo_data::demo_records,
        server::store::{
            sync::{NewItem, NewJob},
            Store,
        },
    };
    use serde_json::json;

    /// Loads 3 demo records of org-rio into `store` and creates a job with one item per
    /// record; returns the job id and the item ids in order.
    pub async fn with_job(store: &Store) -> (String, Vec<i64>) {
        store
            .seed_records(&demo_records("org-rio", 3))
            .await
            .unwrap();
        let user = store.create_user("planner", "x", &[]).await.unwrap();
        let items: Vec<NewItem> = (1..=3)
            .map(|n| NewItem {
                pfa_id: format!("PFA-{n:05}"),
                changes: serde_json::from_value(json!({ "notes": format!("n{n}") })).unwrap(),
                base_version: 1,
                reason: Some("why".into()),
            })
            .collect();
        let mut tx = store.begin().await.unwrap();
        let job = tx
            .insert_job(NewJob {
                org: "org-rio".into(),
                user_id: user,
                username: "planner".into(),
                kind: "commit",
                reason: None,
                items,
            })
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let ids = store
            .items(&job.id)
            .await
            .unwrap()
            .iter()
            .map(|i| i.id)
            .collect();
        (job.id, ids)
    }
}

#[cfg(test)]
mod tests {
    use super::{fixtures::with_job, *};
    use crate::server::store::{
        testing::{self, for_each_store},
        Backend,
    };

    fn started(ids: &[i64]) -> EngineWrites {
        EngineWrites {
            started: ids.to_vec(),
            ..Default::default()
        }
    }

    // A batch that overlaps another waits for it where PostgreSQL cannot see the wait, so a
    // lock wait of its own ends in an error rather than in a deadlock nobody detects.
    #[tokio::test]
    async fn an_overlapping_batch_gives_up_a_lock_wait_on_postgresql() {
        let (_dir, store) = testing::fresh(Backend::Postgres).await;
        let (job, _) = with_job(&store).await;
        let mut holder = store.begin().await.unwrap();
        on_tx!(&mut holder, t, pg => {
            assert!(pg);
            sqlx::query("UPDATE sync_jobs SET retries = retries WHERE id = $1")
                .bind(&job)
                .execute(&mut **t)
                .await
                .unwrap();
        });
        let retry = EngineWrites {
            retries: vec![job.clone()],
            ..Default::default()
        };
        let (written, next_may_begin) = tokio::sync::oneshot::channel();
        let mut turn = Turn {
            written: Some(written),
            previous: None,
        };
        let batch = [&retry];
        let wait = store.apply_engine_writes_in_turn(&batch, &mut turn);
        let e = tokio::time::timeout(std::time::Duration::from_secs(30), wait)
            .await
            .expect("the lock wait ends within 30 s")
            .expect_err("the job's row stays locked");
        assert!(format!("{e:#}").contains("lock timeout"), "{e:#}");
        assert!(next_may_begin.await.is_err(), "the next batch was let go");

        drop(holder);
        let applied = store.apply_engine_writes(&[&retry]).await.unwrap();
        assert_eq!(applied.fenced, [false], "applied once the lock is free");
    }

    for_each_store!(
        the_writes_of_several_callers_commit_together_as_if_applied_one_by_one,
        |store| {
            let (job, ids) = with_job(&store).await;
            let applied = store.apply_engine_writes(&[&started(&ids)]).await.unwrap();
            assert_eq!(
                applied.records.len(),
                3,
                "the started items' records are read back"
            );
            let before = applied.records[&ids[0]].clone();
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
                events: vec![(
                    "org-rio".into(),
                    crate::server::sync::events::record_synced(&job, "PFA-00001", 2),
                )],
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
            let applied = store
                .apply_engine_writes(&[&synced, &failed, &retried])
                .await
                .unwrap();
            assert_eq!(applied.fenced, [false, false, false]);
            assert_eq!(applied.committed.len(), 1);
            assert_eq!(applied.committed[0].seq, 1);

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
    );

    for_each_store!(a_batch_with_a_bad_write_commits_nothing, |store| {
        let (job, ids) = with_job(&store).await;
        store
            .apply_engine_writes(&[&started(&ids[..1])])
            .await
            .unwrap();
        let record = store.record("org-rio", "PFA-00001").await.unwrap().unwrap();
        // Version 1 is in the history already (the seed): the history row is refused.
        let duplicate = EngineWrites {
            records: vec![RecordWrite::refused(record, &job, ids[0])],
            events: vec![(
                "org-rio".into(),
                crate::server::sync::events::record_synced(&job, "PFA-00001", 1),
            )],
            ..Default::default()
        };
        assert!(store
            .apply_engine_writes(&[&started(&ids[1..2]), &duplicate])
            .await
            .is_err());
        let items = store.items(&job).await.unwrap();
        let statuses: Vec<(ItemStatus, i64)> =
            items.iter().map(|i| (i.status, i.attempts)).collect();
        assert_eq!(
            statuses,
            [
                (ItemStatus::InFlight, 1),
                (ItemStatus::Pending, 0),
                (ItemStatus::Pending, 0)
            ]
        );
        assert_eq!(
            store.latest_seq("org-rio").await.unwrap(),
            0,
            "no event either"
        );
    });

    for_each_store!(
        a_caller_whose_item_changed_meanwhile_is_fenced_alone,
        |store| {
            let (job, ids) = with_job(&store).await;
            store
                .apply_engine_writes(&[&started(&ids[..2])])
                .await
                .unwrap();
            // The job is cancelled meanwhile: its open items are cancelled.
            let cancel = EngineWrites {
                cancel_open: vec![job.clone()],
                ..Default::default()
            };
            store.apply_engine_writes(&[&cancel]).await.unwrap();
            let late = EngineWrites {
                items: vec![ItemUpdate {
                    item_id: ids[0],
                    status: ItemStatus::Failed,
                    next_attempt_at: 0,
                    error: None,
                }],
                events: vec![(
                    "org-rio".into(),
                    crate::server::sync::events::record_failed(
                        &job,
                        "PFA-00001",
                        "x".into(),
                        "X",
                        false,
                        1,
                    ),
                )],
                ..Default::default()
            };
            let restart = started(&ids[2..]);
            let applied = store.apply_engine_writes(&[&late, &restart]).await.unwrap();
            assert_eq!(
                applied.fenced,
                [true, true],
                "cancelled items are neither failed nor started"
            );
            assert!(applied.committed.is_empty());
            let items = store.items(&job).await.unwrap();
            assert!(
                items.iter().all(|i| i.status == ItemStatus::Cancelled),
                "{items:?}"
            );
        }
    );

    for_each_store!(
        a_job_change_applies_only_from_the_statuses_it_names,
        |store| {
            let (job, _) = with_job(&store).await;
            let start = EngineWrites {
                job: Some(JobChange {
                    job_id: job.clone(),
                    from: vec![JobStatus::Queued],
                    to: JobStatus::Running,
                }),
                events: vec![(
                    "org-rio".into(),
                    crate::server::sync::events::job_started(&job, 3, "commit"),
                )],
                ..Default::default()
            };
            assert_eq!(
                store.apply_engine_writes(&[&start]).await.unwrap().fenced,
                [false]
            );
            let again = store.apply_engine_writes(&[&start]).await.unwrap();
            assert_eq!((again.fenced, again.committed.len()), (vec![true], 0));
            let job = store.job("org-rio", &job).await.unwrap().unwrap();
            assert_eq!(job.status, JobStatus::Running);
            assert!(job.started_at.is_some());
            assert_eq!(
                store.latest_seq("org-rio").await.unwrap(),
                1,
                "one SYNC_STARTED"
            );
        }
    );
}
