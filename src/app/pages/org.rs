//! One organization: the status banner, the records grid with inline editing and drafts, and
//! the live stream of sync events (toasts, refetch on success, the conflict dialog).

use crate::{
    app::{
        api::{
            self,
            records::{RecordFilter, RecordRow},
        },
        components::{
            conflict_dialog::ConflictDialog,
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
use std::collections::BTreeMap;

/// Records fetched at once (the grid renders only the rows in view).
const PAGE_SIZE: i64 = 5000;
/// Record-level success toasts per job; the rest is in the banner and the job's final toast.
const SUCCESS_TOASTS_PER_JOB: usize = 3;

#[derive(Debug, Clone, Default)]
struct LiveSync {
    /// Running jobs and their progress.
    jobs: BTreeMap<String, u8>,
    errors: usize,
    last_sync: Option<String>,
    success_toasts: BTreeMap<String, usize>,
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
    let (rows, set_rows) = signal(Vec::<RecordRow>::new());
    let (total, set_total) = signal(0i64);
    let (categories, set_categories) = signal(Vec::<String>::new());
    let (load_error, set_load_error) = signal(None::<String>);
    let (role, set_role) = signal(None::<String>);
    let (reload, set_reload) = signal(0u32);
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
    // Records: refetched when the org, the filter or `reload` change.
    Effect::new(move |_| {
        let (org, filter, _) = (org.get(), filter.get(), reload.get());
        leptos::task::spawn_local(async move {
            match api::records::list(&org, &filter, PAGE_SIZE).await {
                Ok(page) => {
                    set_total.set(page.total);
                    set_categories.set(page.categories);
                    set_rows.set(page.items);
                    set_load_error.set(None);
                }
                Err(e) => set_load_error.set(Some(e.message)),
            }
        });
    });
    let refetch = Callback::new(move |_| set_reload.update(|n| *n += 1));
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
    // A burst of successes refetches once.
    let (refetch_due, set_refetch_due) = signal(false);
    let on_event = Callback::new(move |event: SyncEvent| {
        let job = event.job_id.clone();
        let record_level = event.pfa_id.is_some();
        let data = event.data.clone().unwrap_or_default();
        match event.kind {
            SyncEventType::SyncStarted if !record_level => {
                live.update(|l| {
                    l.jobs.insert(job.clone(), 0);
                });
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
                if matches!(status, "running" | "paused" | "queued") {
                    l.jobs.insert(job.clone(), event.progress.unwrap_or(0));
                } else {
                    l.jobs.remove(&job);
                }
            }),
            SyncEventType::SyncSuccess if record_level => {
                let shown =
                    live.with_untracked(|l| l.success_toasts.get(&job).copied().unwrap_or(0));
                if shown < SUCCESS_TOASTS_PER_JOB {
                    toasts.success(format!(
                        "{} synced!",
                        event.pfa_id.clone().unwrap_or_default()
                    ));
                }
                live.update(|l| {
                    *l.success_toasts.entry(job.clone()).or_default() += 1;
                    l.last_sync = Some(clock());
                });
                if !refetch_due.get_untracked() {
                    set_refetch_due.set(true);
                    #[cfg(feature = "hydrate")]
                    set_timeout(
                        move || {
                            set_refetch_due.set(false);
                            refetch.run(());
                        },
                        std::time::Duration::from_millis(400),
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
                live.update(|l| {
                    l.jobs.remove(&job);
                    l.success_toasts.remove(&job);
                });
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
            syncing: l.jobs.len(),
            errors: l.errors,
            progress: (!l.jobs.is_empty()).then(|| {
                (l.jobs.values().map(|p| *p as usize).sum::<usize>() / l.jobs.len()) as u8
            }),
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
        <nav class="tabs" aria-label="Organization">
            <a href=move || format!("/orgs/{}", org.get()) aria-current="page">"Records"</a>
            <a href=move || format!("/orgs/{}/jobs", org.get())>"Sync queue"</a>
        </nav>
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
