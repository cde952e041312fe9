//! Group commit for the sync engine. Item tasks hand their store writes, with the events that
//! report them, to one writer task. The writer takes everything that queued up while it was
//! busy and applies it in one transaction ([`Store::apply_engine_writes`]) that also appends
//! the events to the log; once that is committed it hands the events to the hub and answers
//! each caller. So a 10,000-record job costs a few hundred transactions instead of three per
//! record, and an event exists exactly when the state it reports does: a crash before the
//! commit leaves the item in flight with no event, and the restarted engine sends the same write
//! again under the same idempotency key.
//!
//! Writes that change a job's status are applied in a transaction of their own, in their turn:
//! a job's terminal event is appended after every record event queued before it.
//!
//! On PostgreSQL, where a transaction's statements are round trips to another process, a batch
//! begins while the one before it commits; [`Turn`] keeps their order (seqs, deliveries,
//! answers) and keeps them from deadlocking. Writes that change whole jobs never overlap.

use crate::{
    domain::pfa::PfaRecord,
    server::{
        realtime::hub::Hub,
        store::{
            sync::{EngineWrites, Turn},
            Backend, Store,
        },
    },
};
use std::collections::HashMap;
use tokio::{
    sync::{mpsc, oneshot},
    task::JoinSet,
};

/// Most callers whose writes share one transaction.
const MAX_BATCH: usize = 256;
/// Callers that may wait for the writer; more wait to enqueue (each item task has at most one
/// write outstanding, so this is reached only with many jobs at once).
const QUEUE: usize = 1024;

/// What became of a caller's writes.
#[derive(Debug, Default)]
pub struct Done {
    /// The records of the items the writes started, by item id.
    pub records: HashMap<i64, PfaRecord>,
    /// Nothing was written: a status the writes expected had changed (see
    /// [`Store::apply_engine_writes`]).
    pub fenced: bool,
}

struct Op {
    writes: EngineWrites,
    done: oneshot::Sender<anyhow::Result<Done>>,
}

/// Handle to the writer task; clones share it. The task ends when the last handle is dropped.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Op>,
}

impl Writer {
    /// Starts the writer task.
    pub fn spawn(store: Store, hub: Hub) -> Self {
        let (queue, ops) = mpsc::channel(QUEUE);
        tokio::spawn(run(store, hub, ops));
        Self { queue }
    }

    /// Commits `writes` and their events, then hands the events to the hub; returns when both
    /// are done. An error means nothing of `writes` was written.
    pub async fn commit(&self, writes: EngineWrites) -> anyhow::Result<Done> {
        let answer = self.enqueue(writes).await?;
        answer
            .await
            .map_err(|_| anyhow::anyhow!("the sync writer stopped before answering"))?
    }

    /// Queues `writes` like [`Writer::commit`] without waiting for them (a failure is logged).
    /// Whatever is queued after them is still committed after them.
    pub async fn submit(&self, writes: EngineWrites) -> anyhow::Result<()> {
        self.enqueue(writes).await.map(drop)
    }

    async fn enqueue(
        &self,
        writes: EngineWrites,
    ) -> anyhow::Result<oneshot::Receiver<anyhow::Result<Done>>> {
        let (done, answer) = oneshot::channel();
        if self.queue.send(Op { writes, done }).await.is_err() {
            anyhow::bail!("the sync writer has stopped");
        }
        Ok(answer)
    }

    /// Puts a pending queue item in flight (one more attempt) and answers its record as it is
    /// now; None when the item is no longer pending (its job was cancelled meanwhile).
    /// (Undone with `EngineWrites::unstarted` when its PEMS request is not sent after all.)
    pub async fn start(&self, item_id: i64) -> anyhow::Result<Option<PfaRecord>> {
        let writes = EngineWrites {
            started: vec![item_id],
            ..Default::default()
        };
        Ok(self.commit(writes).await?.records.remove(&item_id))
    }
}

async fn run(store: Store, hub: Hub, mut ops: mpsc::Receiver<Op>) {
    // On PostgreSQL a batch begins while the one before it commits (see `Turn`); SQLite has
    // one writer at a time, so its batches go one after the other.
    let overlap = store.backend() == Backend::Postgres;
    let mut queued: Vec<Op> = Vec::with_capacity(MAX_BATCH);
    // The overlapping batches under way, and the signals of the last one.
    let mut under_way: JoinSet<()> = JoinSet::new();
    let mut last: Option<(oneshot::Receiver<()>, oneshot::Receiver<()>)> = None;
    loop {
        if ops.recv_many(&mut queued, MAX_BATCH).await == 0 {
            while under_way.join_next().await.is_some() {}
            return;
        }
        let mut rest = queued.drain(..).peekable();
        while rest.peek().is_some() {
            // A job status change goes alone; other writes go together up to the next one.
            let mut batch = vec![rest.next().expect("peeked")];
            if batch[0].writes.job.is_none() {
                while let Some(op) = rest.next_if(|op| op.writes.job.is_none()) {
                    batch.push(op);
                }
            }
            if !overlap || batch.iter().any(|op| op.writes.changes_whole_jobs()) {
                // After everything before it, and before anything after it.
                while under_way.join_next().await.is_some() {}
                last = None;
                commit(&store, &hub, batch, Turn::default(), None).await;
                continue;
            }
            let previous = match last.take() {
                Some((written, done)) => {
                    let _ = written.await;
                    Some(done)
                }
                None => None,
            };
            let (written, written_rx) = oneshot::channel();
            let (done, done_rx) = oneshot::channel();
            let turn = Turn {
                written: Some(written),
                previous,
            };
            let (store, hub) = (store.clone(), hub.clone());
            under_way.spawn(async move { commit(&store, &hub, batch, turn, Some(done)).await });
            last = Some((written_rx, done_rx));
            while under_way.try_join_next().is_some() {}
        }
    }
}

/// Commits the writes of `batch` in one transaction (one by one if that fails, so a bad write
/// fails alone), delivers the events, answers the callers. `done` is dropped once the events
/// are delivered, or when the batch failed, before its writes are tried one by one (those
/// then wait for no other batch).
async fn commit(
    store: &Store,
    hub: &Hub,
    batch: Vec<Op>,
    mut turn: Turn,
    done: Option<oneshot::Sender<()>>,
) {
    let writes: Vec<&EngineWrites> = batch.iter().map(|op| &op.writes).collect();
    let e = match store.apply_engine_writes_in_turn(&writes, &mut turn).await {
        Ok(applied) => {
            hub.deliver(&applied.committed);
            drop(done);
            for (op, fenced) in batch.into_iter().zip(applied.fenced) {
                answer(op, &applied.records, fenced);
            }
            return;
        }
        Err(e) => e,
    };
    // Never ahead of the previous batch, even when failing; the next batch does not wait for
    // what follows.
    turn.wait_for_previous().await;
    drop(done);
    if batch.len() == 1 {
        for op in batch {
            fail(op, anyhow::anyhow!("{e:#}"));
        }
        return;
    }
    tracing::warn!(
        callers = batch.len(),
        "batched sync writes failed, applying them one by one: {e:#}"
    );
    for op in batch {
        match store.apply_engine_writes(&[&op.writes]).await {
            Ok(applied) => {
                hub.deliver(&applied.committed);
                answer(op, &applied.records, applied.fenced[0]);
            }
            Err(e) => fail(op, e),
        }
    }
}

fn answer(op: Op, records: &HashMap<i64, PfaRecord>, fenced: bool) {
    let records = op
        .writes
        .started
        .iter()
        .filter(|_| !fenced)
        .filter_map(|id| records.get(id).map(|r| (*id, r.clone())))
        .collect();
    let _ = op.done.send(Ok(Done { records, fenced }));
}

fn fail(op: Op, e: anyhow::Error) {
    if let Err(Err(e)) = op.done.send(Err(e)) {
        // Nobody waits for this answer (`submit`).
        tracing::error!("sync writes failed: {e:#}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        domain::sync::{ItemStatus, JobStatus},
        server::{
            store::{
                events::Retention,
                sync::{fixtures::with_job, ItemUpdate, JobChange, RecordWrite},
                testing::for_each_store,
            },
            sync::events::{self, Counts},
        },
    };

    const ORG: &str = "org-rio";

    fn hub(store: &Store) -> Hub {
        let retention = Retention {
            max_events: 1000,
            max_age_ms: 3_600_000,
        };
        Hub::new(store.clone(), retention, 64)
    }

    /// A job of three items, all in flight, and the writer that started them.
    async fn job_in_flight(store: &Store) -> (String, Vec<i64>, Writer) {
        let (job, ids) = with_job(store).await;
        let writer = Writer::spawn(store.clone(), hub(store));
        for id in &ids {
            writer.start(*id).await.unwrap();
        }
        (job, ids, writer)
    }

    async fn statuses(store: &Store, job: &str) -> Vec<ItemStatus> {
        let items = store.items(job).await.unwrap();
        items.iter().map(|i| i.status).collect()
    }

    fn failed(job: &str, item_id: i64, pfa_id: &str) -> EngineWrites {
        EngineWrites {
            items: vec![ItemUpdate {
                item_id,
                status: ItemStatus::Failed,
                next_attempt_at: 0,
                error: Some(("PEMS_INVALID_REQUEST".into(), "bad".into())),
            }],
            events: vec![(
                ORG.to_owned(),
                events::record_failed(job, pfa_id, "bad".into(), "X", false, 1),
            )],
            ..Default::default()
        }
    }

    for_each_store!(
        a_start_puts_the_item_in_flight_and_answers_its_record,
        |store| {
            let (job, ids) = with_job(&store).await;
            let writer = Writer::spawn(store.clone(), hub(&store));
            let record = writer.start(ids[1]).await.unwrap().unwrap();
            assert_eq!((record.pfa_id.as_str(), record.version), ("PFA-00002", 1));
            let item = &store.items(&job).await.unwrap()[1];
            assert_eq!((item.status, item.attempts), (ItemStatus::InFlight, 1));
            assert!(
                writer.start(ids[1]).await.unwrap().is_none(),
                "not pending any more"
            );
        }
    );

    // Callers queued one after the other, taken in batches of up to `MAX_BATCH`, which
    // overlap on PostgreSQL.
    for_each_store!(
        batches_keep_their_order_in_the_log_and_a_job_change_comes_after_them,
        |store| {
            let (job, ids, writer) = job_in_flight(&store).await;
            let n = 2 * MAX_BATCH + 10;
            let mut writes: Vec<EngineWrites> = (0..n)
                .map(|i| {
                    EngineWrites::announce(
                        ORG,
                        events::record_failed(
                            &job,
                            &format!("X-{i:05}"),
                            "bad".into(),
                            "X",
                            false,
                            1,
                        ),
                    )
                })
                .collect();
            // Items' outcomes in the first, second and third batch.
            for (k, at) in [5, MAX_BATCH + 5, n - 1].into_iter().enumerate() {
                let pfa_id = format!("PFA-{:05}", k + 1);
                writes[at] = failed(&job, ids[k], &pfa_id);
            }
            writes.push(EngineWrites {
                job: Some(JobChange {
                    job_id: job.clone(),
                    from: vec![JobStatus::Queued, JobStatus::Running],
                    to: JobStatus::Failed,
                }),
                events: vec![(
                    ORG.to_owned(),
                    events::job_finished(&job, Counts::default(), JobStatus::Failed),
                )],
                ..Default::default()
            });
            // What tells each event apart: its record, or the job's end.
            let mut expected: Vec<String> = (0..n).map(|i| format!("X-{i:05}")).collect();
            for (k, at) in [5, MAX_BATCH + 5, n - 1].into_iter().enumerate() {
                expected[at] = format!("PFA-{:05}", k + 1);
            }
            expected.push(r#""jobStatus":"failed""#.to_owned());
            let mut answers = Vec::new();
            for w in writes {
                answers.push(writer.enqueue(w).await.unwrap());
            }
            for answer in answers {
                assert!(!answer.await.unwrap().unwrap().fenced);
            }

            let logged = store
                .events_between(ORG, 0, 10_000, 10_000, usize::MAX)
                .await
                .unwrap();
            assert_eq!(logged.len(), n + 1);
            for (i, (event, expected)) in logged.iter().zip(&expected).enumerate() {
                assert!(
                    event.payload.contains(expected.as_str()),
                    "event {i} out of order: {} lacks {expected}",
                    event.payload
                );
                assert_eq!(event.seq, logged[0].seq + i as u64, "no gap");
            }
            let statuses = statuses(&store, &job).await;
            assert_eq!(statuses, [ItemStatus::Failed; 3]);
        }
    );

    // The test runtime has one thread: the three callers are all queued before the writer
    // runs, so they share one batch.
    for_each_store!(
        a_bad_write_fails_alone_and_only_committed_writes_are_logged_in_order,
        |store| {
            let (job, ids, writer) = job_in_flight(&store).await;
            let record = store.record(ORG, "PFA-00001").await.unwrap().unwrap();
            // Version 1 of the record is in its history already (the seed): this write is refused.
            let bad = EngineWrites {
                records: vec![RecordWrite::refused(record, &job, ids[0])],
                events: vec![(ORG.to_owned(), events::record_synced(&job, "PFA-00001", 1))],
                ..Default::default()
            };
            let (first, second, third) = tokio::join!(
                writer.commit(failed(&job, ids[1], "PFA-00002")),
                writer.commit(bad),
                writer.commit(failed(&job, ids[2], "PFA-00003")),
            );
            assert!(first.is_ok() && second.is_err() && third.is_ok());

            let statuses = statuses(&store, &job).await;
            assert_eq!(
                statuses,
                [ItemStatus::InFlight, ItemStatus::Failed, ItemStatus::Failed]
            );
            let logged = store
                .events_between(ORG, 0, 100, 100, usize::MAX)
                .await
                .unwrap();
            assert_eq!(logged.len(), 2, "nothing logged for the refused write");
            assert!(logged[0].payload.contains("PFA-00002"), "in order");
            assert!(logged[1].payload.contains("PFA-00003"), "in order");
        }
    );
}
