//! The sync engine: runs jobs from the persisted queue (one runner task per running job), with
//! per-org concurrency and rate limits, and applies sync commands. Every state change is
//! written to the store before it is announced (per-record writes through one group-commit
//! writer, `writer.rs`), so a restarted process resumes where the last one stopped (items in
//! flight go back to pending; their idempotency keys make the repeated PEMS write harmless).

use super::{pems::client::PemsClient, runner, writer::Writer};
use crate::{
    domain::sync::{ItemStatus, JobCommand, JobStatus},
    server::{
        realtime::hub::Hub,
        store::{
            commands::{CommandAnswer, CommandKey, CommandRecord},
            conflicts::AuditEntry,
            sync::{new_id, EngineWrites, Job, JobChange},
            Backend, Store,
        },
    },
};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

/// Why a sync command changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// Not possible (no such job, not in a state the command applies to): a repeat gets the
    /// same answer.
    Refused(String),
    /// The server failed or the job kept changing: a repeat may succeed.
    Failed(String),
}

/// How often an instance looks for jobs that need a runner and have none.
const CLAIM_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// PEMS requests in flight at once per organization.
    pub concurrency_per_org: usize,
    /// PEMS requests per second per organization.
    pub rate_per_org: u32,
    /// Attempts per record before a retryable error fails it.
    pub max_attempts: u32,
    pub retry_base: Duration,
    pub retry_cap: Duration,
    /// Shortest time between two SYNC_PROGRESS events of a job.
    pub progress_interval: Duration,
    /// How long a runner's claim on a job lasts without renewal.
    pub lease: Duration,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            concurrency_per_org: 4,
            rate_per_org: 50,
            max_attempts: 3,
            retry_base: Duration::from_secs(1),
            retry_cap: Duration::from_secs(30),
            progress_interval: Duration::from_millis(100),
            lease: Duration::from_secs(15),
        }
    }
}

/// Per-organization limits shared by all of its jobs.
pub(super) struct OrgLimits {
    pub permits: Arc<Semaphore>,
    pub rate: Arc<DefaultDirectRateLimiter>,
}

#[derive(Clone)]
pub struct Engine {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub store: Store,
    pub pems: PemsClient,
    /// Where every per-record store write goes, to be committed in batches.
    pub writer: Writer,
    pub settings: EngineSettings,
    pub shutdown: CancellationToken,
    /// Live runners by job id, each with the notify that wakes it after a command.
    pub runners: Mutex<HashMap<String, Arc<Notify>>>,
    limits: Mutex<HashMap<String, Arc<OrgLimits>>>,
}

impl Engine {
    pub fn new(
        store: Store,
        hub: Hub,
        pems: PemsClient,
        settings: EngineSettings,
        shutdown: CancellationToken,
    ) -> Self {
        let writer = Writer::spawn(store.clone(), hub);
        Self {
            inner: Arc::new(Inner {
                store,
                pems,
                writer,
                settings,
                shutdown,
                runners: Mutex::default(),
                limits: Mutex::default(),
            }),
        }
    }

    /// Resumes what a previous process left and starts the claimer: every job that needs a
    /// runner and has none (queued, running, or cancelled with the cancellation unfinished; never claimed
    /// or with its lease run out) gets one here, this instance's or another's, whichever
    /// claims it first. On SQLite, the only process, every lease of an earlier one is void.
    pub async fn recover(&self) -> anyhow::Result<usize> {
        if self.inner.store.backend() == Backend::Sqlite {
            self.inner.store.release_all_jobs().await?;
        }
        let started = self.claim_orphans().await?;
        if started > 0 {
            tracing::info!(jobs = started, "resuming sync jobs");
        }
        let engine = self.clone();
        tokio::spawn(async move {
            loop {
                // A little jitter, so instances started together do not claim in step.
                let pause = CLAIM_INTERVAL + Duration::from_millis(rand::random::<u64>() % 250);
                tokio::select! {
                    _ = engine.inner.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(pause) => {}
                }
                if let Err(e) = engine.claim_orphans().await {
                    tracing::warn!("cannot look for sync jobs without a runner: {e:#}");
                }
            }
        });
        Ok(started)
    }

    /// Starts a runner for each job without one (the runner claims it, or leaves it to the
    /// instance that claimed it first); returns how many were started here.
    async fn claim_orphans(&self) -> anyhow::Result<usize> {
        let jobs = self.inner.store.orphaned_jobs(32).await?;
        let mut started = 0;
        for job in &jobs {
            if !self
                .inner
                .runners
                .lock()
                .expect("runners lock")
                .contains_key(&job.id)
            {
                self.spawn_runner(job);
                started += 1;
            }
        }
        Ok(started)
    }

    pub(super) fn limits(&self, org: &str) -> Arc<OrgLimits> {
        let mut limits = self.inner.limits.lock().expect("limits lock");
        limits
            .entry(org.to_owned())
            .or_insert_with(|| {
                let s = &self.inner.settings;
                let rate = NonZeroU32::new(s.rate_per_org.max(1)).expect("max(1)");
                Arc::new(OrgLimits {
                    permits: Arc::new(Semaphore::new(s.concurrency_per_org.max(1))),
                    rate: Arc::new(RateLimiter::direct(Quota::per_second(rate))),
                })
            })
            .clone()
    }

    /// Starts the runner of a job unless one is running here; wakes it otherwise. The runner
    /// first claims the job's lease: when another runner holds it (on another instance), it
    /// stops at once and that one goes on.
    pub fn spawn_runner(&self, job: &Job) {
        let wake = {
            let mut runners = self.inner.runners.lock().expect("runners lock");
            if let Some(wake) = runners.get(&job.id) {
                wake.notify_one();
                return;
            }
            let wake = Arc::new(Notify::new());
            runners.insert(job.id.clone(), wake.clone());
            wake
        };
        let (engine, job_id, org) = (self.clone(), job.id.clone(), job.organization_id.clone());
        tokio::spawn(async move {
            let store = &engine.inner.store;
            let token = format!("{}/{}", store.instance(), new_id("runner"));
            match store
                .claim_job(&job_id, &token, engine.inner.settings.lease)
                .await
            {
                Ok(true) => {
                    if let Err(e) = runner::run(&engine, &org, &job_id, wake, &token).await {
                        tracing::error!(job = job_id, "sync job runner failed: {e:#}");
                    }
                    if let Err(e) = store.release_job(&job_id, &token).await {
                        tracing::warn!(job = job_id, "cannot release the job: {e:#}");
                    }
                }
                Ok(false) => tracing::debug!(job = job_id, "another runner holds the job"),
                Err(e) => tracing::warn!(job = job_id, "cannot claim the job: {e:#}"),
            }
            engine
                .inner
                .runners
                .lock()
                .expect("runners lock")
                .remove(&job_id);
        });
    }

    /// Wakes the job's runner if it runs here (a command changed the job); true when it does.
    pub fn wake(&self, job_id: &str) -> bool {
        match self.inner.runners.lock().expect("runners lock").get(job_id) {
            Some(wake) => {
                wake.notify_one();
                true
            }
            None => false,
        }
    }

    /// Applies a sync command to a job of `org`; the answer text for COMMAND_RESULT. The
    /// status change, what it does to the items, the audit entry and the event that reports it
    /// are one transaction, applied only if the job is still in the status the command was
    /// decided on (read again and decided anew, a few times, when it is not).
    /// An applied command's answer is recorded under `answer_key`, when given, in the same
    /// transaction.
    #[tracing::instrument(skip(self))]
    pub async fn command(
        &self,
        org: &str,
        job_id: &str,
        command: JobCommand,
        user: (Option<i64>, &str),
        answer_key: Option<CommandKey>,
    ) -> Result<String, CommandError> {
        let store = &self.inner.store;
        let internal = |e: anyhow::Error| {
            tracing::error!("sync command failed: {e:#}");
            CommandError::Failed("internal error; see the server log".to_owned())
        };
        let (user_id, username) = user;
        for _ in 0..5 {
            let job = store
                .job(org, job_id)
                .await
                .map_err(internal)?
                .ok_or_else(|| CommandError::Refused(format!("no sync job {job_id} in {org}")))?;
            let next = job.status.after(command).map_err(CommandError::Refused)?;
            let mut items = store.items(job_id).await.map_err(internal)?;
            let mut writes = EngineWrites {
                audit: vec![AuditEntry {
                    org: org.to_owned(),
                    user_id,
                    username: username.to_owned(),
                    action: format!("sync.{}", command.verb()),
                    target: job_id.to_owned(),
                    detail: serde_json::json!({"from": job.status.as_str(), "to": next.as_str()}),
                }],
                ..Default::default()
            };
            if next != job.status || command == JobCommand::Retry {
                writes.job = Some(JobChange {
                    job_id: job_id.to_owned(),
                    from: vec![job.status],
                    to: next,
                });
            }
            if command == JobCommand::Retry {
                if !items.iter().any(|i| i.status == ItemStatus::Failed) {
                    return Err(CommandError::Refused(format!(
                        "job {job_id} has no failed records to retry"
                    )));
                }
                writes.requeue_failed.push(job_id.to_owned());
                writes.recount.push(job_id.to_owned());
                for item in items.iter_mut().filter(|i| i.status == ItemStatus::Failed) {
                    item.status = ItemStatus::Pending;
                }
            }
            let note = match command {
                JobCommand::Pause => Some(format!("Sync paused by {username}")),
                JobCommand::Resume => Some(format!("Sync resumed by {username}")),
                JobCommand::Retry => Some(format!("Sync retried by {username}")),
                // The terminal event reports it, with the cancelled items.
                JobCommand::Cancel => None,
            };
            if let Some(note) = note {
                let event = runner::note(&job, &items, next, &note);
                writes.events.push((org.to_owned(), event));
            }
            let message = format!("{} job {job_id}: now {}", command.verb(), next.as_str());
            writes.command = answer_key.clone().map(|key| CommandRecord {
                key,
                answer: CommandAnswer {
                    ok: true,
                    message: message.clone(),
                },
            });
            if self
                .inner
                .writer
                .commit(writes)
                .await
                .map_err(internal)?
                .fenced
            {
                continue;
            }
            let job = Job {
                status: next,
                ..job
            };
            // The runner here, if any, is woken; one elsewhere by the change's NOTIFY. A job
            // without a live runner gets one (which finishes a cancellation).
            if !self.wake(job_id) && command != JobCommand::Pause {
                self.spawn_runner(&job);
            }
            return Ok(message);
        }
        Err(CommandError::Failed(format!(
            "job {job_id} kept changing while the {} was applied; try again",
            command.verb()
        )))
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Jobs that have a live runner.
    pub fn running_jobs(&self) -> usize {
        self.inner.runners.lock().expect("runners lock").len()
    }

    /// After shutdown: waits until every runner has stopped (and released its job), at most
    /// `within`; false when some were still running.
    pub async fn stopped(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while self.running_jobs() > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }
}

/// Whether a job status means its runner should keep going.
pub(super) fn is_active(status: JobStatus) -> bool {
    matches!(status, JobStatus::Queued | JobStatus::Running)
}
