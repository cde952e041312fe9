//! One running job: launches its pending items within the org's concurrency and rate limits,
//! processes each against PEMS, and announces progress and the outcome.

use super::{
    engine::{is_active, Engine},
    events::{self, Counts},
    pems::{client::PemsError, wire::WriteRequest},
};
use crate::{
    domain::{
        pfa::{Delta, EditableField},
        sync::{backoff, ItemStatus, JobStatus},
    },
    server::store::{
        records::NewDraft,
        sync::{Job, QueueItem},
    },
};
use anyhow::Context;
use serde_json::{Map, Value};
use std::{collections::VecDeque, sync::Arc, time::Instant};
use tokio::{sync::Notify, task::JoinSet};

/// What processing one item led to.
enum Outcome {
    Synced,
    Conflict,
    Failed,
    /// Try again at this time (backoff) or at once (re-based after a non-overlapping change).
    Retry(Instant),
}

fn counts_of(items: &[QueueItem], retries: i64) -> Counts {
    let mut c = Counts {
        total: items.len() as i64,
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

async fn publish(engine: &Engine, org: &str, event: crate::protocol::events::SyncEvent) {
    if let Err(e) = engine.inner.hub.publish(org, event).await {
        tracing::error!(org, "cannot publish sync event: {e:#}");
    }
}

/// Publishes a job-level SYNC_PROGRESS with the job's current counts (e.g. after a command).
pub async fn announce(engine: &Engine, job: &Job, note: Option<&str>) {
    match engine.inner.store.items(&job.id).await {
        Ok(items) => {
            publish(
                engine,
                &job.organization_id,
                events::progress(&job.id, counts_of(&items, job.retries), job.status, note),
            )
            .await
        }
        Err(e) => tracing::error!("cannot read job items: {e:#}"),
    }
}

/// Cancels what is left of a job: pending items become cancelled and their changes go back
/// to their author's drafts (nothing is lost), then the terminal event.
pub async fn finish_cancelled(engine: &Engine, job: &Job) -> anyhow::Result<()> {
    let store = &engine.inner.store;
    let items = store.items(&job.id).await?;
    for item in items
        .iter()
        .filter(|i| matches!(i.status, ItemStatus::Pending | ItemStatus::InFlight))
    {
        if job.kind == "commit" {
            if let Ok(delta) = Delta::parse(&item.changes) {
                let draft = NewDraft {
                    pfa_id: item.pfa_id.clone(),
                    delta,
                    base_version: item.base_version,
                    reason: item.reason.clone(),
                };
                store
                    .save_drafts(&job.organization_id, item.user_id, &[draft])
                    .await?;
            }
        }
        store
            .set_item_status(item.id, ItemStatus::Cancelled, 0, None)
            .await?;
    }
    store.refresh_job_counts(&job.id).await?;
    let items = store.items(&job.id).await?;
    publish(
        engine,
        &job.organization_id,
        events::job_finished(
            &job.id,
            counts_of(&items, job.retries),
            JobStatus::Cancelled,
        ),
    )
    .await;
    Ok(())
}

/// Runs a job until it finishes, is paused, cancelled, or the server shuts down.
pub async fn run(
    engine: &Engine,
    org: &str,
    job_id: &str,
    wake: Arc<Notify>,
) -> anyhow::Result<()> {
    let store = &engine.inner.store;
    let settings = engine.inner.settings.clone();
    let limits = engine.limits(org);
    let mut job = store.job(org, job_id).await?.context("job vanished")?;
    if job.status == JobStatus::Queued
        && store
            .transition_job(job_id, JobStatus::Queued, JobStatus::Running)
            .await?
    {
        job.status = JobStatus::Running;
        publish(
            engine,
            org,
            events::job_started(job_id, job.total, &job.kind),
        )
        .await;
    }
    let items = store.items(job_id).await?;
    let mut counts = counts_of(&items, job.retries);
    let mut ready: VecDeque<QueueItem> = items
        .into_iter()
        .filter(|i| i.status == ItemStatus::Pending)
        .collect();
    let mut delayed: Vec<(Instant, QueueItem)> = Vec::new();
    let mut in_flight: JoinSet<(QueueItem, anyhow::Result<Outcome>)> = JoinSet::new();
    let mut last_progress = Instant::now() - settings.progress_interval;
    let mut progress_due = false;

    loop {
        // Commands change the stored status; read it at every turn.
        let status = store
            .job(org, job_id)
            .await?
            .map(|j| j.status)
            .unwrap_or(JobStatus::Cancelled);
        let now = Instant::now();
        let mut i = 0;
        while i < delayed.len() {
            if delayed[i].0 <= now {
                ready.push_back(delayed.swap_remove(i).1);
            } else {
                i += 1;
            }
        }
        if is_active(status) && !engine.inner.shutdown.is_cancelled() {
            while let Some(item) = ready.front() {
                let _ = item;
                let Ok(permit) = limits.permits.clone().try_acquire_owned() else {
                    break;
                };
                let item = ready.pop_front().expect("front exists");
                let engine = engine.clone();
                let rate = limits.rate.clone();
                let job = job.clone();
                in_flight.spawn(async move {
                    rate.until_ready().await;
                    let outcome = process(&engine, &job, &item).await;
                    drop(permit);
                    (item, outcome)
                });
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
                    store.refresh_job_counts(job_id).await?;
                    let final_status =
                        JobStatus::finished(counts.synced, counts.conflicts, counts.failed);
                    store.set_job_status(job_id, final_status).await?;
                    publish(
                        engine,
                        org,
                        events::progress(job_id, counts, final_status, None),
                    )
                    .await;
                    publish(
                        engine,
                        org,
                        events::job_finished(job_id, counts, final_status),
                    )
                    .await;
                    return Ok(());
                }
                _ => {}
            }
        }

        if progress_due && last_progress.elapsed() >= settings.progress_interval {
            store.refresh_job_counts(job_id).await?;
            publish(engine, org, events::progress(job_id, counts, status, None)).await;
            last_progress = Instant::now();
            progress_due = false;
        }

        let next_due = delayed.iter().map(|(at, _)| *at).min();
        let progress_at = progress_due.then(|| last_progress + settings.progress_interval);
        let wake_at = [next_due, progress_at].into_iter().flatten().min();
        let sleep = async {
            match wake_at {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Some(joined) = in_flight.join_next(), if !in_flight.is_empty() => {
                let (item, outcome) = joined.context("item task panicked")?;
                match outcome {
                    Ok(Outcome::Synced) => counts.synced += 1,
                    Ok(Outcome::Conflict) => counts.conflicts += 1,
                    Ok(Outcome::Failed) => counts.failed += 1,
                    Ok(Outcome::Retry(at)) => {
                        counts.retries += 1;
                        let fresh = store.item(item.id).await?.context("item vanished")?;
                        delayed.push((at, fresh));
                    }
                    Err(e) => {
                        // A store failure: leave the item pending for the next run.
                        tracing::error!(job = job_id, pfa = item.pfa_id, "item processing failed: {e:#}");
                        delayed.push((Instant::now() + settings.retry_cap, item));
                    }
                }
                progress_due = true;
            }
            _ = wake.notified() => {
                // A command: a retry adds items back.
                let items = store.items(job_id).await?;
                counts = counts_of(&items, counts.retries);
                let known: std::collections::HashSet<i64> =
                    ready.iter().chain(delayed.iter().map(|(_, i)| i)).map(|i| i.id).collect();
                for item in items.into_iter().filter(|i| i.status == ItemStatus::Pending && !known.contains(&i.id)) {
                    ready.push_back(item);
                }
            }
            _ = sleep => {}
            _ = engine.inner.shutdown.cancelled(), if in_flight.is_empty() => return Ok(()),
        }
    }
}

/// Writes one item to PEMS and records the outcome.
async fn process(engine: &Engine, job: &Job, item: &QueueItem) -> anyhow::Result<Outcome> {
    let store = &engine.inner.store;
    let settings = &engine.inner.settings;
    let org = &job.organization_id;
    store.start_attempt(item.id).await?;
    let attempts = item.attempts + 1;
    let record = store
        .record(org, &item.pfa_id)
        .await?
        .context("record vanished")?;
    let org_code = store.org_code(org).await?;
    let request = WriteRequest {
        pfa_id: item.pfa_id.clone(),
        organization_code: org_code,
        changes: item.changes.clone(),
        version: item.base_version,
        modified_by: job.username.clone(),
        change_reason: item.reason.clone(),
    };
    match engine
        .inner
        .pems
        .write(&request, &item.idempotency_key)
        .await
    {
        Ok(ok) => {
            let delta = Delta::parse(&item.changes)
                .map_err(|e| anyhow::anyhow!("stored change invalid: {e:?}"))?;
            let mut after = match delta.apply(&record) {
                Ok(after) => after,
                Err(errors) => {
                    let message = format!("the change no longer fits the record: {errors:?}");
                    store
                        .set_item_status(
                            item.id,
                            ItemStatus::Failed,
                            0,
                            Some(("VALIDATION_FAILED", &message)),
                        )
                        .await?;
                    publish(
                        engine,
                        org,
                        events::record_failed(
                            &job.id,
                            &item.pfa_id,
                            message,
                            "VALIDATION_FAILED",
                            false,
                            attempts,
                        ),
                    )
                    .await;
                    return Ok(Outcome::Failed);
                }
            };
            after.version = ok.new_version;
            after.last_synced_at = Some(chrono::Utc::now());
            store
                .commit_write(
                    &record,
                    &after,
                    &job.username,
                    item.reason.as_deref(),
                    kind_of(job),
                    &job.id,
                    item.id,
                )
                .await?;
            publish(
                engine,
                org,
                events::record_synced(&job.id, &item.pfa_id, ok.new_version),
            )
            .await;
            Ok(Outcome::Synced)
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
            store
                .record_remote_change(&record, &remote, &job.id)
                .await?;

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
                    store
                        .set_item_status(item.id, ItemStatus::Synced, 0, None)
                        .await?;
                    publish(
                        engine,
                        org,
                        events::record_synced(&job.id, &item.pfa_id, remote.version),
                    )
                    .await;
                    return Ok(Outcome::Synced);
                }
                store
                    .rebase_item(item.id, &changes, current_version, false)
                    .await?;
                return Ok(Outcome::Retry(Instant::now()));
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
            let conflict_id = store
                .create_conflict(item, &overlapping, &local, &theirs, current_version)
                .await?;
            publish(
                engine,
                org,
                events::record_conflict(
                    &job.id,
                    &item.pfa_id,
                    &conflict_id,
                    &overlapping,
                    &local,
                    &theirs,
                    item.base_version,
                    current_version,
                ),
            )
            .await;
            Ok(Outcome::Conflict)
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
            store
                .set_item_status(
                    item.id,
                    ItemStatus::Pending,
                    at_ms,
                    Some((error.error_code(), &error.to_string())),
                )
                .await?;
            store.add_job_retry(&job.id).await?;
            tracing::debug!(pfa = item.pfa_id, attempts, ?wait, "retrying after {error}");
            Ok(Outcome::Retry(Instant::now() + wait))
        }
        Err(error) => {
            let (code, retryable, message) =
                (error.error_code(), error.is_retryable(), error.to_string());
            store
                .set_item_status(item.id, ItemStatus::Failed, 0, Some((code, &message)))
                .await?;
            publish(
                engine,
                org,
                events::record_failed(&job.id, &item.pfa_id, message, code, retryable, attempts),
            )
            .await;
            Ok(Outcome::Failed)
        }
    }
}

fn kind_of(job: &Job) -> &'static str {
    if job.kind == "rollback" {
        "rollback"
    } else {
        "sync"
    }
}
