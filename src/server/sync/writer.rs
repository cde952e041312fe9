//! Group commit for the sync engine. Item tasks hand their store writes, and the record-level
//! event that announces them, to one writer task. The writer takes everything that queued up
//! while it was busy, applies it in one transaction ([`Store::apply_engine_writes`]), then
//! publishes the events in commit order, answering each caller once its event is out. So a
//! 10,000-record job costs a few hundred transactions instead of three per record (each with
//! its own round trips to SQLite's worker thread and, under contention, the busy handler's
//! sleeps), and the engine's writes never contend with its own event appends: both are done by
//! this one task, and writes gather while events go out.
//!
//! Nothing is weaker than one transaction per record: a caller hears back only once its writes
//! are committed (and its event published), and a crash before the commit leaves its item in
//! flight, so the restarted engine sends the same write again under the same idempotency key.

use crate::{
    domain::pfa::PfaRecord,
    protocol::events::SyncEvent,
    server::{
        realtime::hub::Hub,
        store::{sync::EngineWrites, Store},
    },
};
use std::collections::{HashMap, VecDeque};
use tokio::sync::{mpsc, oneshot};

/// Most callers whose writes share one transaction.
const MAX_BATCH: usize = 256;
/// Callers that may wait for the writer; more wait to enqueue (each item task has at most one
/// write outstanding, so this is reached only with many jobs at once).
const QUEUE: usize = 1024;

/// An event to publish once the writes before it are committed: (organization, event).
pub type Announcement = (String, SyncEvent);

struct Op {
    writes: EngineWrites,
    event: Option<Announcement>,
    done: oneshot::Sender<anyhow::Result<HashMap<i64, PfaRecord>>>,
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

    /// Commits `writes`, then publishes `event`; returns when both are done, with the records
    /// of the items `writes` started (by item id). An error means nothing of `writes` was
    /// written and the event was not published.
    pub async fn commit(
        &self,
        writes: EngineWrites,
        event: Option<Announcement>,
    ) -> anyhow::Result<HashMap<i64, PfaRecord>> {
        let answer = self.enqueue(writes, event).await?;
        answer
            .await
            .map_err(|_| anyhow::anyhow!("the sync writer stopped before answering"))?
    }

    /// Queues `writes` and `event` like [`Writer::commit`] without waiting for them (a failure
    /// is logged). Whatever is queued after them is still published after `event`.
    pub async fn submit(
        &self,
        writes: EngineWrites,
        event: Option<Announcement>,
    ) -> anyhow::Result<()> {
        self.enqueue(writes, event).await.map(drop)
    }

    async fn enqueue(
        &self,
        writes: EngineWrites,
        event: Option<Announcement>,
    ) -> anyhow::Result<oneshot::Receiver<anyhow::Result<HashMap<i64, PfaRecord>>>> {
        let (done, answer) = oneshot::channel();
        let op = Op {
            writes,
            event,
            done,
        };
        if self.queue.send(op).await.is_err() {
            anyhow::bail!("the sync writer has stopped");
        }
        Ok(answer)
    }

    /// Puts a queue item in flight (one more attempt) and answers its record as it is now.
    /// (Undone with `EngineWrites::unstarted` when its PEMS request is not sent after all.)
    pub async fn start(&self, item_id: i64) -> anyhow::Result<Option<PfaRecord>> {
        let writes = EngineWrites {
            started: vec![item_id],
            ..Default::default()
        };
        Ok(self.commit(writes, None).await?.remove(&item_id))
    }
}

/// A committed caller whose event is still to be published: its answer, and the event.
struct Announcing {
    done: oneshot::Sender<anyhow::Result<HashMap<i64, PfaRecord>>>,
    records: HashMap<i64, PfaRecord>,
    event: Announcement,
}

async fn run(store: Store, hub: Hub, mut ops: mpsc::Receiver<Op>) {
    let mut queued: Vec<Op> = Vec::with_capacity(MAX_BATCH);
    let mut announcing: VecDeque<Announcing> = VecDeque::new();
    loop {
        if queued.is_empty() && announcing.is_empty() {
            if ops.recv_many(&mut queued, MAX_BATCH).await == 0 {
                return;
            }
        } else {
            while queued.len() < MAX_BATCH {
                match ops.try_recv() {
                    Ok(op) => queued.push(op),
                    Err(_) => break,
                }
            }
        }
        // Writes gather while the events of the previous transaction are published.
        if !queued.is_empty() && (announcing.is_empty() || queued.len() >= MAX_BATCH) {
            commit(&store, &mut queued, &mut announcing).await;
        }
        if let Some(next) = announcing.pop_front() {
            let (org, event) = next.event;
            if let Err(e) = hub.publish(&org, event).await {
                tracing::error!(org, "cannot publish sync event: {e:#}");
            }
            let _ = next.done.send(Ok(next.records));
        }
    }
}

/// Commits the writes of `queued` in one transaction (one by one if that fails, so a bad write
/// fails alone); answers the callers without an event and queues the others' events.
async fn commit(store: &Store, queued: &mut Vec<Op>, announcing: &mut VecDeque<Announcing>) {
    let writes: Vec<&EngineWrites> = queued.iter().map(|op| &op.writes).collect();
    match store.apply_engine_writes(&writes).await {
        Ok(records) => {
            for op in queued.drain(..) {
                committed(op, &records, announcing);
            }
        }
        Err(e) => {
            tracing::warn!(
                callers = queued.len(),
                "batched sync writes failed, applying them one by one: {e:#}"
            );
            for op in queued.drain(..) {
                match store.apply_engine_writes(&[&op.writes]).await {
                    Ok(records) => committed(op, &records, announcing),
                    Err(e) => {
                        if let Err(Err(e)) = op.done.send(Err(e)) {
                            // Nobody waits for this answer (`submit`).
                            tracing::error!("sync writes failed: {e:#}");
                        }
                    }
                }
            }
        }
    }
}

/// A caller's writes are committed: answer it now, or after its event is published.
fn committed(op: Op, records: &HashMap<i64, PfaRecord>, announcing: &mut VecDeque<Announcing>) {
    let records: HashMap<i64, PfaRecord> = op
        .writes
        .started
        .iter()
        .filter_map(|id| records.get(id).map(|r| (*id, r.clone())))
        .collect();
    match op.event {
        None => {
            let _ = op.done.send(Ok(records));
        }
        Some(event) => announcing.push_back(Announcing {
            done: op.done,
            records,
            event,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        domain::sync::ItemStatus,
        server::{
            store::{
                events::Retention,
                sync::{fixtures::store_with_job, ItemUpdate, RecordWrite},
            },
            sync::events,
        },
    };

    const ORG: &str = "org-rio";

    /// A store with 3 demo records, a job with one item per record (ids in order), a hub.
    async fn setup() -> (tempfile::TempDir, Store, Hub, String, Vec<i64>) {
        let (dir, store, job, ids) = store_with_job().await;
        let retention = Retention {
            max_events: 1000,
            max_age_ms: 3_600_000,
        };
        let hub = Hub::new(store.clone(), retention, 64);
        (dir, store, hub, job, ids)
    }

    fn failed(item_id: i64) -> EngineWrites {
        EngineWrites {
            items: vec![ItemUpdate {
                item_id,
                status: ItemStatus::Failed,
                next_attempt_at: 0,
                error: Some(("PEMS_INVALID_REQUEST".into(), "bad".into())),
            }],
            ..Default::default()
        }
    }

    fn announce(job: &str, pfa_id: &str) -> Option<Announcement> {
        let event = events::record_failed(job, pfa_id, "bad".into(), "X", false, 1);
        Some((ORG.to_owned(), event))
    }

    #[tokio::test]
    async fn a_start_puts_the_item_in_flight_and_answers_its_record() {
        let (_dir, store, hub, job, ids) = setup().await;
        let writer = Writer::spawn(store.clone(), hub);
        let record = writer.start(ids[1]).await.unwrap().unwrap();
        assert_eq!((record.pfa_id.as_str(), record.version), ("PFA-00002", 1));
        let item = &store.items(&job).await.unwrap()[1];
        assert_eq!((item.status, item.attempts), (ItemStatus::InFlight, 1));
    }

    // The test runtime has one thread: the three callers are all queued before the writer
    // runs, so they share one batch.
    #[tokio::test]
    async fn a_bad_write_fails_alone_and_only_committed_writes_are_announced_in_order() {
        let (_dir, store, hub, job, ids) = setup().await;
        let writer = Writer::spawn(store.clone(), hub);
        let record = store.record(ORG, "PFA-00001").await.unwrap().unwrap();
        // Version 1 of the record is in its history already (the seed): this write is refused.
        let bad = EngineWrites {
            records: vec![RecordWrite::refused(record, &job, ids[0])],
            ..Default::default()
        };
        let (first, second, third) = tokio::join!(
            writer.commit(failed(ids[1]), announce(&job, "PFA-00002")),
            writer.commit(bad, announce(&job, "PFA-00001")),
            writer.commit(failed(ids[2]), announce(&job, "PFA-00003")),
        );
        assert!(first.is_ok() && second.is_err() && third.is_ok());

        let statuses: Vec<ItemStatus> = store
            .items(&job)
            .await
            .unwrap()
            .iter()
            .map(|i| i.status)
            .collect();
        assert_eq!(
            statuses,
            [ItemStatus::Pending, ItemStatus::Failed, ItemStatus::Failed]
        );
        let logged = store.events_between(ORG, 0, 100, 100).await.unwrap();
        let announced: Vec<bool> = ["PFA-00002", "PFA-00003"]
            .iter()
            .map(|pfa| logged.iter().any(|e| e.payload.contains(pfa)))
            .collect();
        assert_eq!(announced, [true, true]);
        assert_eq!(logged.len(), 2, "nothing announced for the refused write");
        assert!(logged[0].payload.contains("PFA-00002"), "in order");
    }
}
