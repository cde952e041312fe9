//! One organization: the status banner, the records grid with inline editing and drafts, and
//! the live stream of sync events (toasts, refetch on success, the conflict dialog).

use crate::{
    app::{
        api::{self, records::RecordFilter},
        components::{
            conflict_dialog::ConflictDialog,
            org_tabs::OrgTabs,
            records_grid::RecordsGrid,
            status_banner::{BannerSummary, SyncStatusBanner},
            toasts::{provide_toasts, ToastHost},
        },
        hooks::{
            drafts::use_draft_management,
            sync_status::{use_sync_status_updates, UseSyncStatusOptions},
        },
    },
    protocol::events::{SyncEvent, SyncEventType},
};
use leptos::prelude::*;
use leptos_router::hooks::use_params_map;
use records_feed::use_records;

mod records_feed;

/// Record-level successes within this many milliseconds of the first refetch the list once.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
const SUCCESS_REFETCH_DELAY_MS: u64 = 400;
/// Record-level success toasts per job; the rest is in the banner and the job's final toast.
const SUCCESS_TOASTS_PER_JOB: usize = 3;

/// What the page knows of the organization's sync jobs from the events it received: the
/// banner's counts and progress, and how many record-level success toasts each job has shown.
/// A page sees a handful of jobs at a time, so they are kept in a list.
#[derive(Debug, Clone, Default, PartialEq)]
struct LiveSync {
    jobs: Vec<LiveJob>,
    errors: usize,
    last_sync: Option<String>,
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

    fn syncing(&self) -> usize {
        self.running().count()
    }

    /// The running jobs' mean progress.
    fn progress(&self) -> Option<u8> {
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

/// True when the browser knows it has no network (`navigator.onLine` is false).
fn browser_offline() -> bool {
    #[cfg(feature = "hydrate")]
    {
        !window().navigator().on_line()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        false
    }
}

#[component]
pub fn OrgPage() -> impl IntoView {
    let params = use_params_map();
    let org = Signal::derive(move || params.read().get("org").unwrap_or_default());
    let toasts = provide_toasts();
    let (filter, set_filter) = signal(RecordFilter::default());
    let (role, set_role) = signal(None::<String>);
    let live = RwSignal::new(LiveSync::default());

    // The caller's role here decides what they may do.
    Effect::new(move |_| {
        let org = org.get();
        leptos::task::spawn_local(async move {
            if let Ok(Some(me)) = api::me().await {
                set_role.set(
                    me.memberships
                        .into_iter()
                        .find(|m| m.organization_id == org)
                        .map(|m| m.role),
                );
            }
        });
    });
    // Records: refetched when the org or the filter change, after a save and on SYNC_SUCCESS.
    let feed = use_records(org, filter.into());
    let (rows, total, categories, load_error, refetch) = (
        feed.rows,
        feed.total,
        feed.categories,
        feed.load_error,
        feed.refetch,
    );
    let drafts = use_draft_management(org, toasts, refetch);

    // Save Draft while the browser is offline keeps the edits and saves them when the
    // connection is back, instead of failing.
    let save_when_online = StoredValue::new(false);
    let save = move || {
        if browser_offline() {
            save_when_online.set_value(true);
            toasts.info("You are offline - your changes will be saved when the connection is back");
        } else {
            drafts.save();
        }
    };
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        let handle = window_event_listener_untyped("online", move |_| {
            if save_when_online.get_value() {
                save_when_online.set_value(false);
                if !drafts.pending.with_untracked(|p| p.is_empty()) {
                    toasts.info("Back online - saving your changes");
                    drafts.save();
                }
            }
        });
        on_cleanup(move || handle.remove());
    });

    // SYNC_CONFLICT opens the dialog (the first one; later ones wait in the toasts).
    let (open_conflict, set_open_conflict) = signal(None::<String>);
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
                        set_open_conflict.set(Some(id.to_owned()));
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

    let drafts_saved =
        Memo::new(move |_| rows.with(|r| r.iter().filter(|r| r.draft.is_some()).count()));
    let summary = Memo::new(move |_| {
        live.with(|l| BannerSummary {
            unsaved: drafts.pending.with(|p| p.len()),
            drafts: drafts_saved.get(),
            syncing: l.syncing(),
            errors: l.errors,
            progress: l.progress(),
            last_sync: l.last_sync.clone(),
        })
    });
    let can_edit = Signal::derive(move || {
        matches!(role.get().as_deref(), Some("editor" | "planner" | "admin"))
    });
    let can_commit =
        Signal::derive(move || matches!(role.get().as_deref(), Some("planner" | "admin")));
    let (confirming, set_confirming) = signal(None::<&'static str>);

    view! {
        <SyncStatusBanner status summary />
        <OrgTabs org current="records" />
        <section class="card" data-testid="records">
            <div class="toolbar">
                <input type="search" placeholder="Search PFA, equipment, model…" aria-label="Search records" data-testid="search"
                    on:change=move |ev| { let v = event_target_value(&ev); set_filter.update(|f| f.search = v) } />
                <select aria-label="Category" data-testid="filter-category"
                    on:change=move |ev| { let v = event_target_value(&ev); set_filter.update(|f| f.category = v) }>
                    <option value="">"All categories"</option>
                    {move || categories.get().into_iter().map(|c| view! { <option value=c.clone()>{c.clone()}</option> }).collect_view()}
                </select>
                <select aria-label="Source" on:change=move |ev| { let v = event_target_value(&ev); set_filter.update(|f| f.source = v) }>
                    <option value="">"Rental and purchase"</option>
                    <option value="Rental">"Rental"</option>
                    <option value="Purchase">"Purchase"</option>
                </select>
                <select aria-label="Sort" data-testid="sort" on:change=move |ev| { let v = event_target_value(&ev); set_filter.update(|f| f.sort = v) }>
                    <option value="">"PFA id"</option>
                    <option value="category">"Category"</option>
                    <option value="forecastStart">"Forecast start"</option>
                    <option value="-forecastStart">"Forecast start, latest first"</option>
                    <option value="-monthlyRate">"Monthly rate, highest first"</option>
                </select>
                <label class="check"><input type="checkbox" data-testid="filter-modified"
                    on:change=move |ev| { let v = event_target_checked(&ev); set_filter.update(|f| f.modified_only = v) } />
                    " Modified only"</label>
                <span class="muted" data-testid="record-count">{move || format!("{} records", total.get())}</span>
            </div>
            <div class="toolbar">
                <span class="muted" data-testid="my-role">{move || role.get().map(|r| {
                    if r == "viewer" { "Read only: viewers cannot edit".to_owned() } else { format!("Your role: {r}") }
                })}</span>
                // A viewer gets no editing controls at all (the server refuses them anyway).
                <Show when=move || can_edit.get()>
                    <button class="button" data-testid="save-draft" disabled=move || drafts.pending.with(|p| p.is_empty())
                        on:click=move |_| save()>"Save Draft"</button>
                    <Show when=move || can_commit.get()>
                        <button class="button secondary" data-testid="commit"
                            on:click=move |_| set_confirming.set(Some("commit"))>"Commit"</button>
                    </Show>
                    <button class="button secondary" data-testid="discard"
                        on:click=move |_| set_confirming.set(Some("discard"))>"Discard drafts"</button>
                </Show>
                {move || confirming.get().map(|action| view! {
                    <span class="confirm" role="alertdialog" aria-label="Confirm" data-testid="confirm">
                        {if action == "commit" { "Commit all your drafts and sync them to PEMS?" } else { "Discard all your drafts and unsaved edits?" }}
                        <button class="button" data-testid="confirm-yes" on:click=move |_| {
                            set_confirming.set(None);
                            if action == "commit" { drafts.commit() } else { drafts.discard() }
                        }>"Yes"</button>
                        <button class="button secondary" data-testid="confirm-no" on:click=move |_| set_confirming.set(None)>"No"</button>
                    </span>
                })}
            </div>
            <p class="bad">{move || load_error.get()}</p>
            <RecordsGrid rows drafts can_edit org />
        </section>
        <ConflictDialog
            org
            conflict_id=Signal::from(open_conflict)
            on_close=Callback::new(move |_| {
                set_open_conflict.set(None);
                refetch.run(());
            })
        />
        <ToastHost />
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
