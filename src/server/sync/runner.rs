//! One running job: launches its pending items within the org's concurrency and rate limits,
//! processes each against PEMS, and announces progress and the outcome. Up to
//! `ITEMS_PER_PERMIT` items per PEMS permit are under way at once: put in flight ahead, each
//! takes the org's permit only for its PEMS request (and goes back to pending unsent if the job
//! was paused or cancelled meanwhile), then has its outcome written. Store writes and
//! record-level events go through the engine's writer (`writer.rs`), which commits the writes
//! of many items in one transaction; the runner reads the job's status only after a command
//! woke it.

use super::{
    engine::{is_active, Engine, OrgLimits},
    events::{self, Counts},
    pems::{client::PemsError, wire::WriteRequest},
};
use crate::{
    domain::{
        pfa::{Delta, EditableField},
        sync::{backoff, ItemStatus, JobStatus},
    },
    protocol::events::SyncEvent,
    server::store::{
        conflicts::NewConflict,
        records::NewDraft,
        sync::{EngineWrites, ItemUpdate, Job, JobChange, QueueItem, RecordWrite, RestoredDrafts},
    },
};
use anyhow::Context;
use serde_json::{Map, Value};
use std::{
    collections::{BTreeMap, HashSet, VecDeque},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};
use tokio::{sync::Notify, task::JoinSet};

/// Records a job may have under way per PEMS request its organization may have in flight: the
/// others are being put in flight, wait for a permit, or have their outcome written meanwhile.
/// At low PEMS latency an item spends most of its time waiting for the writer's transactions
/// (two per item), so more items under way make larger batches and fewer transactions, on
/// PostgreSQL above all, where each transaction is several round trips.
const ITEMS_PER_PERMIT: usize = 16;

type Tasks = JoinSet<(QueueItem, anyhow::Result<Outcome>)>;

/// What processing one item led to.
enum Outcome {
    Synced,
    Conflict,
    Failed,
    /// A retryable error: try the item (as it is now) again at this time; one retry wait more.
    Again(Instant, QueueItem),
    /// Re-based on PEMS's version after a change to other fields: try it again at once.
    Rebased(QueueItem),
    /// Not sent: the job stopped running (paused, cancelled, shutdown) while the item waited
    /// for a permit; it is pending again as it was.
    Unstarted,
    /// No longer this runner's: the item's status changed meanwhile (its job was cancelled).
    Gone,
}

/// What the item tasks of one job share.
struct JobContext {
    job: Job,
    /// The organization's PEMS code, read once per run.
    org_code: String,
    limits: Arc<OrgLimits>,
    /// Whether the job's status lets new PEMS requests go out (the runner keeps it current).
    sending: AtomicBool,
}

impl JobContext {
    /// The job's stored status, read again after a command changed it (a job that vanished
    /// counts as cancelled); new PEMS requests go out only while it is active.
    async fn reload_status(&self, engine: &Engine) -> anyhow::Result<JobStatus> {
        let status = engine
            .inner
            .store
            .job(&self.job.organization_id, &self.job.id)
            .await?
            .map(|j| j.status)
            .unwrap_or(JobStatus::Cancelled);
        self.sending.store(is_active(status), Ordering::Relaxed);
        Ok(status)
    }
}

/// Counts of `items` (of a job with `total` items) by status.
fn counts_of<'a>(
    items: impl IntoIterator<Item = &'a QueueItem>,
    total: i64,
    retries: i64,
) -> Counts {
    let mut c = Counts {
        total,
        retries,
        ..Default::default()
    };
    for item in items {
        match item.status {
            ItemStatus::Synced => c.synced += 1,
            ItemStatus::Conflict => c.conflicts += 1,
            ItemStatus::Failed => c.failed += 1,
            ItemStatus::Cancelled => c.cancelled += 1,
            ItemStatus::Pending | ItemStatus::InFlight => {}
        }
    }
    c
}

/// A job-level SYNC_PROGRESS with a job's counts as `items` give them, saying `note` (after a
/// command).
pub fn note(job: &Job, items: &[QueueItem], status: JobStatus, note: &str) -> SyncEvent {
    let counts = counts_of(items, items.len() as i64, job.retries);
    events::progress(&job.id, counts, status, Some(note))
}

/// Cancels what is left of a job: pending items become cancelled and their changes go back
/// to their author's drafts (nothing is lost; a draft the author saved since is kept), with
/// the terminal event, in one transaction.
pub async fn finish_cancelled(engine: &Engine, job: &Job) -> anyhow::Result<()> {
    let store = &engine.inner.store;
    let items = store.items(&job.id).await?;
    let open: Vec<&QueueItem> = items
        .iter()
        .filter(|i| matches!(i.status, ItemStatus::Pending | ItemStatus::InFlight))
        .collect();
    let mut drafts: BTreeMap<i64, Vec<NewDraft>> = BTreeMap::new();
    if job.kind == "commit" {
        for item in &open {
            if let Ok(delta) = Delta::parse(&item.changes) {
                drafts.entry(item.user_id).or_default().push(NewDraft {
                    pfa_id: item.pfa_id.clone(),
                    delta,
                    base_version: item.base_version,
                    reason: item.reason.clone(),
                });
            }
        }
    }
    let mut counts = counts_of(&items, items.len() as i64, job.retries);
    counts.cancelled += open.len() as i64;
    let finished = events::job_finished(&job.id, counts, JobStatus::Cancelled);
    let cancelled = EngineWrites {
        cancel_open: vec![job.id.clone()],
        drafts: drafts
            .into_iter()
            .map(|(user_id, drafts)| RestoredDrafts {
                org: job.organization_id.clone(),
                user_id,
                drafts,
            })
            .collect(),
        recount: vec![job.id.clone()],
        events: vec![(job.organization_id.clone(), finished)],
        ..Default::default()
    };
    // Through the writer: after every event of the job it has still to append.
    engine.inner.writer.commit(cancelled).await?;
    Ok(())
}

/// Runs a job until it finishes, is paused, cancelled, or the server shuts down.
pub async fn run(
    engine: &Engine,
    org: &str,
    job_id: &str,
    wake: Arc<Notify>,
    token: &str,
) -> anyhow::Result<()> {
    let store = &engine.inner.store;
    let settings = engine.inner.settings.clone();
    // The lease is renewed every third of its length; a runner that cannot renew it stops
    // before it runs out, when another instance may take the job over.
    let mut lease_until = Instant::now() + settings.lease;
    let mut renew_at = Instant::now() + settings.lease / 3;
    let limits = engine.limits(org);
    let mut job = store.job(org, job_id).await?.context("job vanished")?;
    if job.status == JobStatus::Queued {
        let start = EngineWrites {
            job: Some(JobChange {
                job_id: job_id.to_owned(),
                from: vec![JobStatus::Queued],
                to: JobStatus::Running,
            }),
            events: vec![(
                org.to_owned(),
                events::job_started(job_id, job.total, &job.kind),
            )],
            ..Default::default()
        };
        if engine.inner.writer.commit(start).await?.fenced {
            // A command came first.
            job = store.job(org, job_id).await?.context("job vanished")?;
        } else {
            job.status = JobStatus::Running;
        }
    }
    let context = Arc::new(JobContext {
        org_code: store.org_code(org).await?,
        job: job.clone(),
        limits,
        sending: AtomicBool::new(is_active(job.status)),
    });
    let most_under_way = settings.concurrency_per_org.max(1) * ITEMS_PER_PERMIT;
    let items = store.items(job_id).await?;
    let mut counts = counts_of(&items, items.len() as i64, job.retries);
    let mut ready: VecDeque<QueueItem> = items
        .into_iter()
        .filter(|i| i.status == ItemStatus::Pending)
        .collect();
    let mut delayed: Vec<(Instant, QueueItem)> = Vec::new();
    let mut in_flight: Tasks = JoinSet::new();
    // Ids of the items in `in_flight`: a reload after a command neither counts nor starts them.
    let mut running: HashSet<i64> = HashSet::new();
    // Only a command changes the stored status, and it wakes the runner: read it then.
    let mut status = job.status;
    let mut last_progress = Instant::now() - settings.progress_interval;
    let mut progress_due = false;

    loop {
        let now = Instant::now();
        if now >= renew_at {
            match store.renew_lease(job_id, token, settings.lease).await {
                Ok(true) => {
                    lease_until = now + settings.lease;
                    renew_at = now + settings.lease / 3;
                }
                Ok(false) => {
                    tracing::warn!(job = job_id, "the job's lease was taken over; stopping");
                    return Ok(());
                }
                Err(e) => {
                    tracing::warn!(job = job_id, "cannot renew the job's lease: {e:#}");
                    renew_at = now + Duration::from_secs(1);
                    if renew_at + Duration::from_secs(1) >= lease_until {
                        tracing::warn!(job = job_id, "the job's lease runs out; stopping");
                        return Ok(());
                    }
                }
            }
        }
        let mut i = 0;
        while i < delayed.len() {
            if delayed[i].0 <= now {
                ready.push_back(delayed.swap_remove(i).1);
            } else {
                i += 1;
            }
        }
        // Items are put in flight ahead of the org's permits, so the next PEMS request can go
        // out as soon as one is answered; each takes its permit just before sending.
        if is_active(status) && !engine.inner.shutdown.is_cancelled() {
            while in_flight.len() < most_under_way {
                let Some(item) = ready.pop_front() else { break };
                launch(engine, &context, &mut in_flight, &mut running, item);
            }
        }

        if in_flight.is_empty() {
            if engine.inner.shutdown.is_cancelled() {
                return Ok(());
            }
            match status {
                JobStatus::Cancelled => {
                    return finish_cancelled(engine, &Job { status, ..job }).await;
                }
                JobStatus::Paused => {}
                _ if ready.is_empty() && delayed.is_empty() => {
                    let final_status =
                        JobStatus::finished(counts.synced, counts.conflicts, counts.failed);
                    // Through the writer: after every event of the job it has still to append.
                    let finish = EngineWrites {
                        job: Some(JobChange {
                            job_id: job_id.to_owned(),
                            from: vec![JobStatus::Queued, JobStatus::Running],
                            to: final_status,
                        }),
                        recount: vec![job_id.to_owned()],
                        events: vec![
                            (
                                org.to_owned(),
                                events::progress(job_id, counts, final_status, None),
                            ),
                            (
                                org.to_owned(),
                                events::job_finished(job_id, counts, final_status),
                            ),
                        ],
                        ..Default::default()
                    };
                    if !engine.inner.writer.commit(finish).await?.fenced {
                        return Ok(());
                    }
                    // A command changed the job meanwhile (paused, cancelled): follow it.
                    status = context.reload_status(engine).await?;
                    continue;
                }
                _ => {}
            }
        }

        if progress_due && last_progress.elapsed() >= settings.progress_interval {
            // Through the writer, so the recount sees every item announced before it.
            let recount = EngineWrites {
                recount: vec![job_id.to_owned()],
                ..Default::default()
            };
            let event = events::progress(job_id, counts, status, None);
            let recount = EngineWrites {
                events: vec![(org.to_owned(), event)],
                ..recount
            };
            // Not waited for: launching goes on while the event waits its turn.
            if let Err(e) = engine.inner.writer.submit(recount).await {
                tracing::error!(job = job_id, "cannot record progress: {e:#}");
            }
            last_progress = Instant::now();
            progress_due = false;
        }

        let next_due = delayed.iter().map(|(at, _)| *at).min();
        let progress_at = progress_due.then(|| last_progress + settings.progress_interval);
        let wake_at = [next_due, progress_at, Some(renew_at)]
            .into_iter()
            .flatten()
            .min();
        let sleep = async {
            match wake_at {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Some(joined) = in_flight.join_next(), if !in_flight.is_empty() => {
                // Take every item that has finished meanwhile, then start as many.
                let mut next = Some(joined);
                while let Some(joined) = next {
                    let (item, outcome) = joined.context("item task panicked")?;
                    running.remove(&item.id);
                    match outcome {
                        Ok(Outcome::Synced) => counts.synced += 1,
                        Ok(Outcome::Conflict) => counts.conflicts += 1,
                        Ok(Outcome::Failed) => counts.failed += 1,
                        Ok(Outcome::Again(at, item)) => {
                            counts.retries += 1;
                            delayed.push((at, item));
                        }
                        Ok(Outcome::Rebased(item)) => ready.push_back(item),
                        Ok(Outcome::Unstarted) => ready.push_front(item),
                        Ok(Outcome::Gone) => {}
                        Err(e) => {
                            // A store failure: leave the item pending for the next run.
                            tracing::error!(job = job_id, pfa = item.pfa_id, "item processing failed: {e:#}");
                            delayed.push((Instant::now() + settings.retry_cap, item));
                        }
                    }
                    next = in_flight.try_join_next();
                }
                progress_due = true;
            }
            _ = wake.notified() => {
                // A command: the status changed, a retry adds items back.
                status = context.reload_status(engine).await?;
                let items = store.items(job_id).await?;
                let settled = items.iter().filter(|i| !running.contains(&i.id));
                counts = counts_of(settled, items.len() as i64, counts.retries);
                let known: HashSet<i64> = ready
                    .iter()
                    .chain(delayed.iter().map(|(_, i)| i))
                    .map(|i| i.id)
                    .chain(running.iter().copied())
                    .collect();
                for item in items.into_iter().filter(|i| i.status == ItemStatus::Pending && !known.contains(&i.id)) {
                    ready.push_back(item);
                }
            }
            _ = sleep => {}
            _ = engine.inner.shutdown.cancelled(), if in_flight.is_empty() => return Ok(()),
        }
    }
}

/// Starts processing `item`.
fn launch(
    engine: &Engine,
    context: &Arc<JobContext>,
    tasks: &mut Tasks,
    running: &mut HashSet<i64>,
    item: QueueItem,
) {
    running.insert(item.id);
    let (engine, context) = (engine.clone(), context.clone());
    tasks.spawn(async move {
        let outcome = process(&engine, &context, &item).await;
        (item, outcome)
    });
}

/// A queue item's new status, as engine writes.
fn update(
    item_id: i64,
    status: ItemStatus,
    next_attempt_at: i64,
    error: Option<(&str, &str)>,
) -> ItemUpdate {
    ItemUpdate {
        item_id,
        status,
        next_attempt_at,
        error: error.map(|(code, message)| (code.to_owned(), message.to_owned())),
    }
}

fn only(update: ItemUpdate) -> EngineWrites {
    EngineWrites {
        items: vec![update],
        ..Default::default()
    }
}

/// Writes one item to PEMS and records the outcome (through the writer: the caller hears back
/// once it is committed and announced). The org's permit is held while PEMS answers.
async fn process(
    engine: &Engine,
    context: &JobContext,
    item: &QueueItem,
) -> anyhow::Result<Outcome> {
    let store = &engine.inner.store;
    let writer = &engine.inner.writer;
    let settings = &engine.inner.settings;
    let job = &context.job;
    let org = &job.organization_id;
    let with_event = |writes: EngineWrites, event: SyncEvent| EngineWrites {
        events: vec![(org.clone(), event)],
        ..writes
    };
    let Some(record) = writer.start(item.id).await? else {
        return Ok(Outcome::Gone);
    };
    let attempts = item.attempts + 1;
    let request = WriteRequest {
        pfa_id: item.pfa_id.clone(),
        organization_code: context.org_code.clone(),
        changes: item.changes.clone(),
        version: item.base_version,
        modified_by: job.username.clone(),
        change_reason: item.reason.clone(),
    };
    let permit = context.limits.permits.acquire().await?;
    if !context.sending.load(Ordering::Relaxed) || engine.inner.shutdown.is_cancelled() {
        drop(permit);
        let unstarted = EngineWrites {
            unstarted: vec![item.id],
            ..Default::default()
        };
        writer.commit(unstarted).await?;
        return Ok(Outcome::Unstarted);
    }
    context.limits.rate.until_ready().await;
    let answer = engine
        .inner
        .pems
        .write(&request, &item.idempotency_key)
        .await;
    drop(permit);
    match answer {
        Ok(ok) => {
            let delta = Delta::parse(&item.changes)
                .map_err(|e| anyhow::anyhow!("stored change invalid: {e:?}"))?;
            let mut after = match delta.apply(&record) {
                Ok(after) => after,
                Err(errors) => {
                    let message = format!("the change no longer fits the record: {errors:?}");
                    let failed = update(
                        item.id,
                        ItemStatus::Failed,
                        0,
                        Some(("VALIDATION_FAILED", &message)),
                    );
                    let event = events::record_failed(
                        &job.id,
                        &item.pfa_id,
                        message,
                        "VALIDATION_FAILED",
                        false,
                        attempts,
                    );
                    return Ok(settled(
                        writer.commit(with_event(only(failed), event)).await?,
                        Outcome::Failed,
                    ));
                }
            };
            after.version = ok.new_version;
            after.last_synced_at = Some(chrono::Utc::now());
            let write = RecordWrite {
                before: record,
                after,
                changed_by: job.username.clone(),
                reason: item.reason.clone(),
                kind: kind_of(job),
                job_id: job.id.clone(),
                item_id: Some(item.id),
            };
            let writes = EngineWrites {
                records: vec![write],
                ..Default::default()
            };
            let event = events::record_synced(&job.id, &item.pfa_id, ok.new_version);
            Ok(settled(
                writer.commit(with_event(writes, event)).await?,
                Outcome::Synced,
            ))
        }
        Err(PemsError::Conflict {
            current_version,
            changed_fields,
            current_values,
            ..
        }) => {
            // Bring the local record to PEMS's state for the fields PEMS changed.
            let mut remote = record.clone();
            for (name, value) in &current_values {
                if let Some(field) = EditableField::parse(name) {
                    let _ = remote.set(field, value);
                }
            }
            remote.version = current_version.max(record.version);
            if remote.version > record.version {
                let write = RecordWrite {
                    before: record,
                    after: remote.clone(),
                    changed_by: "PEMS".into(),
                    reason: Some("changed in PEMS".into()),
                    kind: "pems",
                    job_id: job.id.clone(),
                    item_id: None,
                };
                let writes = EngineWrites {
                    records: vec![write],
                    ..Default::default()
                };
                writer.commit(writes).await?;
            }

            let overlapping: Vec<String> = item
                .changes
                .iter()
                .filter(|(name, ours)| {
                    changed_fields.contains(name) && current_values.get(*name) != Some(ours)
                })
                .map(|(name, _)| name.clone())
                .collect();
            if overlapping.is_empty() {
                // Different fields (or the same values): merge by re-basing on PEMS's version.
                let changes: Map<String, Value> = item
                    .changes
                    .iter()
                    .filter(|(k, v)| current_values.get(*k) != Some(v))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if changes.is_empty() {
                    let synced = update(item.id, ItemStatus::Synced, 0, None);
                    let event = events::record_synced(&job.id, &item.pfa_id, remote.version);
                    return Ok(settled(
                        writer.commit(with_event(only(synced), event)).await?,
                        Outcome::Synced,
                    ));
                }
                if !store
                    .rebase_item(item.id, &changes, current_version)
                    .await?
                {
                    return Ok(Outcome::Gone);
                }
                let rebased = store.item(item.id).await?.context("item vanished")?;
                return Ok(Outcome::Rebased(rebased));
            }
            let local: Map<String, Value> = overlapping
                .iter()
                .map(|f| (f.clone(), item.changes[f].clone()))
                .collect();
            let theirs: Map<String, Value> = overlapping
                .iter()
                .map(|f| {
                    (
                        f.clone(),
                        current_values.get(f).cloned().unwrap_or(Value::Null),
                    )
                })
                .collect();
            let conflict = NewConflict::new(
                item,
                overlapping.clone(),
                local.clone(),
                theirs.clone(),
                current_version,
            );
            let event = events::record_conflict(
                &job.id,
                &item.pfa_id,
                &conflict.id,
                &overlapping,
                &local,
                &theirs,
                item.base_version,
                current_version,
            );
            let stopped = update(
                item.id,
                ItemStatus::Conflict,
                0,
                Some((
                    "PEMS_VERSION_CONFLICT",
                    "changed in PEMS since the draft's version",
                )),
            );
            let writes = EngineWrites {
                conflicts: vec![conflict],
                ..only(stopped)
            };
            Ok(settled(
                writer.commit(with_event(writes, event)).await?,
                Outcome::Conflict,
            ))
        }
        Err(error) if error.is_retryable() && attempts < i64::from(settings.max_attempts) => {
            // Full-jitter backoff, but never sooner than PEMS asked (`Retry-After` on a 429 or
            // 503, e.g. the seconds left of an outage), and never later than the cap.
            let jittered = backoff(
                attempts as u32,
                settings.retry_base,
                settings.retry_cap,
                rand::random::<f64>(),
            );
            let wait = error.retry_after().map_or(jittered, |asked| {
                jittered.max(asked.min(settings.retry_cap))
            });
            let at_ms = chrono::Utc::now().timestamp_millis() + wait.as_millis() as i64;
            let (code, message) = (error.error_code(), error.to_string());
            let writes = EngineWrites {
                items: vec![update(
                    item.id,
                    ItemStatus::Pending,
                    at_ms,
                    Some((code, &message)),
                )],
                retries: vec![job.id.clone()],
                ..Default::default()
            };
            if writer.commit(writes).await?.fenced {
                return Ok(Outcome::Gone);
            }
            tracing::debug!(pfa = item.pfa_id, attempts, ?wait, "retrying after {error}");
            let again = QueueItem {
                status: ItemStatus::Pending,
                attempts,
                next_attempt_at: at_ms,
                error_code: Some(code.to_owned()),
                last_error: Some(message),
                ..item.clone()
            };
            Ok(Outcome::Again(Instant::now() + wait, again))
        }
        Err(error) => {
            let (code, retryable, message) =
                (error.error_code(), error.is_retryable(), error.to_string());
            let failed = update(item.id, ItemStatus::Failed, 0, Some((code, &message)));
            let event =
                events::record_failed(&job.id, &item.pfa_id, message, code, retryable, attempts);
            Ok(settled(
                writer.commit(with_event(only(failed), event)).await?,
                Outcome::Failed,
            ))
        }
    }
}

/// `outcome`, unless the writes were fenced (the item is no longer this runner's).
fn settled(done: super::writer::Done, outcome: Outcome) -> Outcome {
    if done.fenced {
        Outcome::Gone
    } else {
        outcome
    }
}

fn kind_of(job: &Job) -> &'static str {
    if job.kind == "rollback" {
        "rollback"
    } else {
        "sync"
    }
}
