//! One organization: the status banner, the records grid with inline editing and drafts, and
//! the conflict dialog; the live stream of sync events is `hooks::live_sync`.

use crate::app::{
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
        live_sync::{use_live_sync, LiveSyncFeed},
    },
};
use leptos::prelude::*;
use leptos_router::hooks::use_params_map;
use records_feed::use_records;

mod records_feed;

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

    // The live stream of sync events: the banner's jobs, toasts, refetches, the conflict dialog.
    let LiveSyncFeed {
        live,
        open_conflict,
        status,
    } = use_live_sync(org, toasts, refetch);

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
            conflict_id=Signal::from(open_conflict.read_only())
            on_close=Callback::new(move |_| {
                open_conflict.set(None);
                refetch.run(());
            })
        />
        <ToastHost />
    }
}
