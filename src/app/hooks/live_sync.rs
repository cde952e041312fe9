//! `use_live_sync`: what an organization's page makes of the live stream of sync events. It
//! keeps the banner's view of the running jobs ([`LiveSync`]), shows toasts (a few record-level
//! successes per job, every conflict and failure, each job's end), refetches the records once
//! per burst of successes and at a job's end, and names the conflict the dialog should open.

use crate::{
    app::{
        components::toasts::Toasts,
        hooks::sync_status::{use_sync_status_updates, SyncStatus, UseSyncStatusOptions},
    },
    protocol::events::{SyncEvent, SyncEventType},
};
use leptos::prelude::*;

/// Record-level successes within this many milliseconds of the first refetch the list once.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
const SUCCESS_REFETCH_DELAY_MS: u64 = 400;
/// Record-level success toasts per job; the rest is in the banner and the job's final toast.
const SUCCESS_TOASTS_PER_JOB: usize = 3;

/// What the page knows of the organization's sync jobs from the events it received: the
/// banner's counts and progress, and how many record-level success toasts each job has shown.
/// A page sees a handful of jobs at a time, so they are kept in a list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveSync {
    jobs: Vec<LiveJob>,
    pub errors: usize,
    pub last_sync: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
struct LiveJob {
    id: String,
    /// `Some` while the job runs (or is paused or queued): its last progress.
    progress: Option<u8>,
    success_toasts: usize,
}

impl LiveSync {
    fn job(&mut self, id: &str) -> &mut LiveJob {
        match self.jobs.iter().position(|j| j.id == id) {
            Some(i) => &mut self.jobs[i],
            None => {
                self.jobs.push(LiveJob {
                    id: id.to_owned(),
                    progress: None,
                    success_toasts: 0,
                });
                self.jobs.last_mut().expect("just pushed")
            }
        }
    }

    fn started(&mut self, id: &str) {
        self.job(id).progress = Some(0);
    }

    /// A job-level SYNC_PROGRESS: the job runs on while its status is running, paused or
    /// queued.
    fn progressed(&mut self, id: &str, status: &str, progress: u8) {
        let running = matches!(status, "running" | "paused" | "queued");
        self.job(id).progress = running.then_some(progress);
    }

    /// A record of the job synced at `clock`; true while the job has shown fewer than
    /// SUCCESS_TOASTS_PER_JOB toasts (this one included).
    fn record_synced(&mut self, id: &str, clock: String) -> bool {
        self.last_sync = Some(clock);
        let job = self.job(id);
        job.success_toasts += 1;
        job.success_toasts <= SUCCESS_TOASTS_PER_JOB
    }

    /// The job's terminal event.
    fn finished(&mut self, id: &str) {
        self.jobs.retain(|j| j.id != id);
    }

    fn running(&self) -> impl Iterator<Item = u8> + '_ {
        self.jobs.iter().filter_map(|j| j.progress)
    }

    pub fn syncing(&self) -> usize {
        self.running().count()
    }

    /// The running jobs' mean progress.
    pub fn progress(&self) -> Option<u8> {
        let n = self.syncing();
        (n > 0).then(|| (self.running().map(usize::from).sum::<usize>() / n) as u8)
    }
}

fn clock() -> String {
    #[cfg(feature = "hydrate")]
    {
        let d = js_sys::Date::new_0();
        format!(
            "{:02}:{:02}:{:02}",
            d.get_hours(),
            d.get_minutes(),
            d.get_seconds()
        )
    }
    #[cfg(not(feature = "hydrate"))]
    {
        String::new()
    }
}

/// What the page shows of the live stream, and its socket.
pub struct LiveSyncFeed {
    pub live: RwSignal<LiveSync>,
    /// The conflict the dialog shows; the dialog sets it back to `None` when it closes.
    pub open_conflict: RwSignal<Option<String>>,
    pub status: SyncStatus,
}

/// Follows the sync events of `org`, showing them as `toasts` and calling `refetch` when the
/// records changed.
pub fn use_live_sync(org: Signal<String>, toasts: Toasts, refetch: Callback<()>) -> LiveSyncFeed {
    let live = RwSignal::new(LiveSync::default());
    // SYNC_CONFLICT opens the dialog (the first one; later ones wait in the toasts).
    let open_conflict = RwSignal::new(None::<String>);
    // A burst of record-level successes refetches once (never rendered, so not a signal).
    let refetch_due = StoredValue::new(false);
    let on_event = Callback::new(move |event: SyncEvent| {
        let job = event.job_id.clone();
        let record_level = event.pfa_id.is_some();
        let data = event.data.clone().unwrap_or_default();
        match event.kind {
            SyncEventType::SyncStarted if !record_level => {
                live.update(|l| l.started(&job));
                toasts.info(
                    event
                        .message
                        .clone()
                        .unwrap_or_else(|| "Sync started".into()),
                );
            }
            SyncEventType::SyncStarted => toasts.info(format!(
                "Syncing {}...",
                event.pfa_id.clone().unwrap_or_default()
            )),
            SyncEventType::SyncProgress => live.update(|l| {
                let status = data
                    .get("jobStatus")
                    .and_then(|s| s.as_str())
                    .unwrap_or("running");
                l.progressed(&job, status, event.progress.unwrap_or(0));
            }),
            SyncEventType::SyncSuccess if record_level => {
                let mut toast_due = false;
                live.update(|l| toast_due = l.record_synced(&job, clock()));
                if toast_due {
                    toasts.success(format!(
                        "{} synced!",
                        event.pfa_id.clone().unwrap_or_default()
                    ));
                }
                if !refetch_due.get_value() {
                    refetch_due.set_value(true);
                    #[cfg(feature = "hydrate")]
                    set_timeout(
                        move || {
                            refetch_due.set_value(false);
                            // Nothing to do if the page was left meanwhile.
                            let _ = refetch.try_run(());
                        },
                        std::time::Duration::from_millis(SUCCESS_REFETCH_DELAY_MS),
                    );
                }
            }
            SyncEventType::SyncConflict => {
                toasts.error(format!(
                    "Conflict on {}: {}",
                    event.pfa_id.clone().unwrap_or_default(),
                    event.message.clone().unwrap_or_default()
                ));
                if let Some(id) = data.get("conflictId").and_then(|v| v.as_str()) {
                    if open_conflict.get_untracked().is_none() {
                        open_conflict.set(Some(id.to_owned()));
                    }
                }
                refetch.run(());
            }
            SyncEventType::SyncFailed if record_level => {
                live.update(|l| l.errors += 1);
                toasts.error(format!(
                    "Failed: {}",
                    event.message.clone().unwrap_or_default()
                ));
            }
            SyncEventType::SyncSuccess | SyncEventType::SyncFailed => {
                live.update(|l| l.finished(&job));
                let text = event.message.clone().unwrap_or_default();
                if event.kind == SyncEventType::SyncFailed {
                    toasts.error(text)
                } else {
                    toasts.success(text)
                }
                refetch.run(());
            }
        }
    });
    let status = use_sync_status_updates(UseSyncStatusOptions {
        organization_id: org,
        enabled: Signal::derive(|| true),
        on_event: Some(on_event),
    });
    LiveSyncFeed {
        live,
        open_conflict,
        status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_banner_counts_running_jobs_and_averages_their_progress() {
        let mut live = LiveSync::default();
        assert_eq!((live.syncing(), live.progress()), (0, None));
        live.started("a");
        live.started("b");
        live.progressed("a", "running", 50);
        live.progressed("b", "paused", 21);
        assert_eq!((live.syncing(), live.progress()), (2, Some(35)));
        live.progressed("b", "cancelled", 21);
        assert_eq!((live.syncing(), live.progress()), (1, Some(50)));
        live.finished("a");
        assert_eq!((live.syncing(), live.progress()), (0, None));
    }

    #[test]
    fn a_job_first_seen_by_its_progress_counts_as_running() {
        let mut live = LiveSync::default();
        live.progressed("late", "queued", 0);
        assert_eq!((live.syncing(), live.progress()), (1, Some(0)));
    }

    #[test]
    fn each_job_shows_its_first_success_toasts_and_only_those() {
        let mut live = LiveSync::default();
        live.started("a");
        let shown: Vec<bool> = (0..5)
            .map(|i| live.record_synced("a", format!("10:00:0{i}")))
            .collect();
        assert_eq!(shown, [true, true, true, false, false]);
        assert_eq!(live.last_sync.as_deref(), Some("10:00:04"));
        assert!(
            live.record_synced("b", "10:00:05".into()),
            "another job has its own count"
        );
        assert_eq!(
            live.syncing(),
            1,
            "a record's success does not make its job running"
        );
        live.finished("a");
        live.started("a");
        assert!(
            live.record_synced("a", "10:00:06".into()),
            "a finished job's count is gone"
        );
    }
}
