//! The sync-queue dashboard (`/orgs/:org/jobs`): the organization's sync jobs with live
//! progress from the sync socket, pause / resume / cancel / retry commands, each job's records,
//! and the open conflicts with the conflict dialog. Data is fetched in the browser after
//! hydration; the server renders the empty frame.

use crate::{
    app::{
        api::{
            self,
            jobs::{
                self, command_label, format_secs, format_time, format_time_short, is_terminal,
                Conflict, Job,
            },
        },
        components::{conflict_dialog::ConflictDialog, org_tabs::OrgTabs},
        hooks::sync_status::{use_sync_status_updates, Commands, UseSyncStatusOptions},
    },
    protocol::{
        events::{SyncEvent, SyncEventType},
        frames::CommandKind,
    },
};
use chrono::Utc;
use leptos::prelude::*;
use leptos_router::hooks::use_params_map;
use std::collections::HashSet;

/// The statuses of the filter select, as the API spells them.
const STATUSES: [&str; 7] = [
    "queued",
    "running",
    "paused",
    "completed",
    "completed_with_conflicts",
    "failed",
    "cancelled",
];

/// One table row: the job in its own signal so live updates touch only that row's cells.
#[derive(Clone)]
struct JobRow {
    id: String,
    job: ArcRwSignal<Job>,
}

/// True when the signed-in user's role in `org` may send sync commands and resolve conflicts.
fn is_planner(role: &str) -> bool {
    matches!(role, "planner" | "admin")
}

#[component]
pub fn JobsPage() -> impl IntoView {
    let params = use_params_map();
    let org = Signal::derive(move || params.read().get("org").unwrap_or_default());
    let filter = RwSignal::new(String::new());
    let rows = RwSignal::new(Vec::<JobRow>::new());
    let loaded = RwSignal::new(false);
    let load_error = RwSignal::new(None::<String>);
    let role = RwSignal::new(String::new());
    let conflicts = RwSignal::new(None::<Result<Vec<Conflict>, String>>);
    let open_conflict = RwSignal::new(None::<String>);
    let command_result = RwSignal::new(String::new());
    let expanded = RwSignal::new(None::<String>);
    let detail = RwSignal::new(None::<Result<jobs::JobDetail, String>>);
    // Jobs of events that a refetch did not list (e.g. filtered out): no refetch for them again.
    let unlisted = StoredValue::new(HashSet::<String>::new());
    // A refetch in flight, and whether another one was asked for meanwhile.
    let fetching = StoredValue::new((false, false));
    let now = RwSignal::new(Utc::now());

    let refetch = Callback::new(move |_: ()| {
        let busy = fetching.with_value(|(busy, _)| *busy);
        if busy {
            fetching.update_value(|f| f.1 = true);
            return;
        }
        fetching.set_value((true, false));
        leptos::task::spawn_local(async move {
            loop {
                let status = filter.get_untracked();
                let answer = jobs::list_jobs(
                    &org.get_untracked(),
                    (!status.is_empty()).then_some(status.as_str()),
                )
                .await;
                match answer {
                    Ok(list) => {
                        let old = rows.get_untracked();
                        let fresh = list
                            .into_iter()
                            .map(|job| match old.iter().find(|r| r.id == job.id) {
                                Some(row) => {
                                    row.job.set(job);
                                    row.clone()
                                }
                                None => JobRow {
                                    id: job.id.clone(),
                                    job: ArcRwSignal::new(job),
                                },
                            })
                            .collect();
                        rows.set(fresh);
                        load_error.set(None);
                    }
                    Err(e) => load_error.set(Some(jobs::describe(&e))),
                }
                loaded.set(true);
                let again = fetching.with_value(|(_, again)| *again);
                fetching.set_value((again, false));
                if !again {
                    break;
                }
            }
        });
    });
    let refetch_conflicts = Callback::new(move |_: ()| {
        leptos::task::spawn_local(async move {
            let answer = jobs::open_conflicts(&org.get_untracked()).await;
            conflicts.set(Some(answer.map_err(|e| jobs::describe(&e))));
        });
    });
    let load_detail = Callback::new(move |id: String| {
        leptos::task::spawn_local(async move {
            let answer = jobs::job_detail(&org.get_untracked(), &id).await;
            if expanded.get_untracked().as_deref() == Some(id.as_str()) {
                detail.set(Some(answer.map_err(|e| jobs::describe(&e))));
            }
        });
    });

    // Browser only: the first load, the role, and a clock for the ETA.
    Effect::new(move |_| {
        let _ = (org.get(), filter.get());
        unlisted.update_value(|u| u.clear());
        refetch.run(());
        refetch_conflicts.run(());
    });
    Effect::new(move |_| {
        let org = org.get();
        leptos::task::spawn_local(async move {
            if let Ok(Some(me)) = api::me().await {
                let mine = me
                    .memberships
                    .into_iter()
                    .find(|m| m.organization_id == org);
                role.set(mine.map(|m| m.role).unwrap_or_default());
            }
        });
    });
    Effect::new(move |_| {
        if let Ok(handle) = set_interval_with_handle(
            move || now.set(Utc::now()),
            std::time::Duration::from_secs(1),
        ) {
            on_cleanup(move || handle.clear());
        }
    });

    let on_event = Callback::new(move |event: SyncEvent| {
        if event.kind == SyncEventType::SyncConflict {
            refetch_conflicts.run(());
        }
        let row = rows.with_untracked(|rows| rows.iter().find(|r| r.id == event.job_id).cloned());
        let job_level_end = event.pfa_id.is_none()
            && event
                .data
                .as_ref()
                .and_then(|d| d.get("jobStatus"))
                .and_then(|s| s.as_str())
                .is_some_and(is_terminal);
        match row {
            _ if event.kind == SyncEventType::SyncStarted => refetch.run(()),
            Some(row) => {
                row.job.update(|job| job.apply_event(&event));
                if job_level_end {
                    refetch.run(());
                    refetch_conflicts.run(());
                    if expanded.get_untracked().as_deref() == Some(event.job_id.as_str()) {
                        load_detail.run(event.job_id.clone());
                    }
                }
            }
            None => {
                let first_time = unlisted.try_update_value(|u| u.insert(event.job_id.clone()));
                if first_time == Some(true) {
                    refetch.run(());
                }
            }
        }
    });
    let status = use_sync_status_updates(UseSyncStatusOptions {
        organization_id: org,
        enabled: Signal::derive(|| true),
        on_event: Some(on_event),
    });

    let toggle = Callback::new(move |id: String| {
        if expanded.get_untracked().as_deref() == Some(id.as_str()) {
            expanded.set(None);
        } else {
            expanded.set(Some(id.clone()));
            detail.set(None);
            load_detail.run(id);
        }
    });
    let can_command = Signal::derive(move || is_planner(&role.get()));

    view! {
        <OrgTabs org current="jobs" />
        <section class="card" data-testid="jobs">
            <div class="toolbar">
                <h1>"Sync queue — " {move || org.get()}</h1>
                <span class="live" data-testid="jobs-live"
                    data-connected=move || status.is_connected.get().to_string()>
                    {move || if status.is_connected.get() { "● Live" } else { "○ Not live" }}
                </span>
            </div>
            <p class="bad msg" data-testid="jobs-live-stopped">{move || status.stopped.get()}</p>
            <label class="inline">"Status "
                <select data-testid="status-filter"
                    on:change=move |ev| filter.set(event_target_value(&ev))>
                    <option value="" selected=true>"All"</option>
                    {STATUSES.iter().map(|s| view! { <option value=*s>{s.replace('_', " ")}</option> }).collect_view()}
                </select>
            </label>
            <p class="status-line msg" role="status" aria-live="polite" data-testid="command-result">
                {move || command_result.get()}
            </p>
            <p class="bad msg" role="alert" data-testid="jobs-error">{move || load_error.get()}</p>
            <Show when=move || loaded.get() fallback=|| view! { <p class="muted">"Loading…"</p> }>
                <Show when=move || !rows.with(Vec::is_empty)>
                    // Wide on a phone: the table scrolls sideways in its own box, not the page.
                    <div class="table-scroll">
                    <table class="jobs-table" data-testid="jobs-table">
                        <thead>
                            <tr>
                                <th scope="col">"Job"</th>
                                <th scope="col">"Who"</th>
                                <th scope="col">"Kind"</th>
                                <th scope="col">"Status"</th>
                                <th scope="col">"Progress"</th>
                                <th scope="col">"Synced / conflicts / failed / retries"</th>
                                <th scope="col">"Started"</th>
                                <th scope="col">"Done / ETA"</th>
                                <th scope="col">"Actions"</th>
                            </tr>
                        </thead>
                        <tbody>
                            <For each=move || rows.get() key=|r| r.id.clone() let:row>
                                <JobRowView row=row org expanded detail toggle now can_command command_result sync_commands=status.commands />
                            </For>
                        </tbody>
                    </table>
                    </div>
                </Show>
                <Show when=move || rows.with(Vec::is_empty)>
                    <p class="muted" data-testid="jobs-empty">"No sync jobs yet."</p>
                </Show>
            </Show>
        </section>
        <section class="card" data-testid="open-conflicts">
            <h2>"Open conflicts"</h2>
            {move || conflicts.with(|c| match c {
                None => view! { <p class="muted">"Loading…"</p> }.into_any(),
                Some(Err(e)) => view! { <p class="bad">{e.clone()}</p> }.into_any(),
                Some(Ok(list)) if list.is_empty() => view! { <p class="muted" data-testid="no-conflicts">"No open conflicts."</p> }.into_any(),
                Some(Ok(_)) => ().into_any(),
            })}
            // Keyed: a refetch keeps the items that are still open (and the focus on their button).
            <ul class="conflict-list">
                <For
                    each=move || conflicts.with(|c| c.as_ref().and_then(|r| r.as_ref().ok()).cloned().unwrap_or_default())
                    key=|c| c.id.clone()
                    let:c
                >
                    {
                        let id = c.id.clone();
                        view! {
                            <li data-testid="conflict-item" data-conflict-id=c.id.clone() data-pfa-id=c.pfa_id.clone()>
                                <a href=format!("/orgs/{}/records/{}", org.get_untracked(), c.pfa_id)>{c.pfa_id.clone()}</a>
                                " — " {c.fields.join(", ")} " "
                                <span class="muted">"(job " {c.job_id.clone()} ", " {format_time(&c.created_at)} ")"</span>
                                " "
                                <Show when=move || can_command.get()>
                                    <button class="button small" type="button" data-testid="conflict-resolve"
                                        on:click={let id = id.clone(); move |_| open_conflict.set(Some(id.clone()))}>"Resolve"</button>
                                </Show>
                            </li>
                        }
                    }
                </For>
            </ul>
        </section>
        <ConflictDialog
            org
            conflict_id=Signal::from(open_conflict)
            on_close=Callback::new(move |_| {
                open_conflict.set(None);
                refetch_conflicts.run(());
            })
            on_resolved=Callback::new(move |answer: jobs::ResolveAnswer| {
                command_result.set(match answer.job {
                    Some(job) => format!("Conflict {} resolved; job {} queued", answer.conflict.id, job.id),
                    None => format!("Conflict {} resolved; nothing left to sync", answer.conflict.id),
                });
            })
        />
    }
}

/// One job: its row, and its records when expanded.
#[component]
fn JobRowView(
    row: JobRow,
    org: Signal<String>,
    expanded: RwSignal<Option<String>>,
    detail: RwSignal<Option<Result<jobs::JobDetail, String>>>,
    toggle: Callback<String>,
    now: RwSignal<chrono::DateTime<Utc>>,
    can_command: Signal<bool>,
    command_result: RwSignal<String>,
    sync_commands: Commands,
) -> impl IntoView {
    let job = row.job.clone();
    let id = row.id.clone();
    let is_open = {
        let id = id.clone();
        Memo::new(move |_| expanded.get().as_deref() == Some(id.as_str()))
    };
    // Buttons are rebuilt only when the allowed commands change, not on every progress tick.
    let commands = {
        let job = job.clone();
        Memo::new(move |_| job.with(|j| j.allowed_commands()))
    };
    let confirming = RwSignal::new(false);
    let busy = RwSignal::new(false);
    let send = {
        let id = id.clone();
        Callback::new(move |kind: CommandKind| {
            let id = id.clone();
            busy.set(true);
            confirming.set(false);
            leptos::task::spawn_local(async move {
                let label = command_label(kind);
                let answer = sync_commands.send(kind, &id).await;
                command_result.set(match answer {
                    Ok(r) if r.ok => r.message,
                    Ok(r) => format!("{label} refused: {}", r.message),
                    Err(e) => format!("{label} of {id} failed: {e}"),
                });
                busy.set(false);
            });
        })
    };
    let j = move |f: fn(&Job) -> String| {
        let job = job.clone();
        move || job.with(f)
    };
    let eta = {
        let job = row.job.clone();
        move || {
            job.with(|j| match (&j.completed_at, j.eta_secs(now.get())) {
                (Some(at), _) => format_time_short(at),
                (None, Some(secs)) => format!("ETA {}", format_secs(secs)),
                (None, None) => "—".to_owned(),
            })
        }
    };
    let status_attr = j(|j| j.status.clone());
    let toggle_id = id.clone();
    let toggle_row = move |_| toggle.run(toggle_id.clone());
    let toggle_button = toggle_row.clone();

    view! {
        <tr class="job-row" data-testid="job-row" data-job-id=id.clone() data-status=status_attr
            class:open=move || is_open.get() on:click=toggle_row>
            <td>
                <button type="button" class="link" data-testid="job-toggle"
                    aria-expanded=move || is_open.get().to_string()
                    on:click=move |ev| { ev.stop_propagation(); toggle_button(ev) }>
                    {id.clone()}
                </button>
            </td>
            <td>{j(|j| j.username.clone())}</td>
            <td>{j(|j| j.kind.clone())}</td>
            <td data-testid="job-status">{j(|j| j.status.replace('_', " "))}</td>
            <td>
                <progress max=j(|j| j.total.max(1).to_string()) value=j(|j| j.done().to_string())
                    aria-label=j(|j| format!("{} of {} records done", j.done(), j.total))></progress>
                " " <span data-testid="job-percent">{j(|j| format!("{}%", j.percent()))}</span>
                " " <span class="muted">{j(|j| format!("({} of {})", j.done(), j.total))}</span>
            </td>
            <td data-testid="job-counts">{j(|j| format!("{} / {} / {} / {}", j.synced, j.conflicts, j.failed, j.retries))}</td>
            <td class="time" title=j(|j| j.started_at.as_ref().map(format_time).unwrap_or_default())>
                {j(|j| j.started_at.as_ref().map(format_time_short).unwrap_or_else(|| "—".into()))}
            </td>
            <td class="time" data-testid="job-eta">{eta}</td>
            <td class="actions" on:click=|ev| ev.stop_propagation()>
                <Show when=move || can_command.get()>
                    {
                        move || {
                            commands.get().into_iter().map(|kind| {
                                let label = command_label(kind);
                                let testid = format!("job-{}", label.to_ascii_lowercase());
                                if kind == CommandKind::CancelSync {
                                    view! {
                                        <button type="button" class="button small secondary" data-testid=testid
                                            disabled=move || busy.get() on:click=move |_| confirming.set(true)>{label}</button>
                                    }.into_any()
                                } else {
                                    view! {
                                        <button type="button" class="button small" data-testid=testid
                                            disabled=move || busy.get() on:click=move |_| send.run(kind)>{label}</button>
                                    }.into_any()
                                }
                            }).collect_view()
                        }
                    }
                    <Show when=move || confirming.get() && commands.get().contains(&CommandKind::CancelSync)>
                        {
                            view! {
                                <span class="confirm" role="group" aria-label="Confirm cancel">
                                    "Cancel this job? Unsynced changes go back to drafts. "
                                    <button type="button" class="button small danger" data-testid="job-cancel-confirm"
                                        on:click=move |_| send.run(CommandKind::CancelSync)>"Yes, cancel job"</button>
                                    <button type="button" class="button small secondary" data-testid="job-cancel-keep"
                                        on:click=move |_| confirming.set(false)>"Keep it"</button>
                                </span>
                            }
                        }
                    </Show>
                </Show>
            </td>
        </tr>
        <Show when=move || is_open.get()>
            <tr class="job-detail" data-testid="job-detail">
                <td colspan="9">
                    {move || match detail.get() {
                        None => view! { <p class="muted">"Loading records…"</p> }.into_any(),
                        Some(Err(e)) => view! { <p class="bad">{e}</p> }.into_any(),
                        Some(Ok(d)) => view! {
                            <table class="items-table">
                                <thead><tr>
                                    <th scope="col">"Record"</th><th scope="col">"Status"</th>
                                    <th scope="col">"Attempts"</th><th scope="col">"Error"</th>
                                </tr></thead>
                                <tbody>
                                    {d.items.into_iter().map(|item| view! {
                                        <tr data-testid="job-item" data-pfa-id=item.pfa_id.clone() data-status=item.status.clone()>
                                            <td><a href=format!("/orgs/{}/records/{}", org.get_untracked(), item.pfa_id)>{item.pfa_id.clone()}</a></td>
                                            <td>{item.status.replace('_', " ")}</td>
                                            <td>{item.attempts}</td>
                                            <td>{match (item.error_code, item.last_error) {
                                                (Some(code), Some(e)) => format!("{code}: {e}"),
                                                (Some(code), None) => code,
                                                (None, Some(e)) => e,
                                                (None, None) => "—".to_owned(),
                                            }}</td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any(),
                    }}
                </td>
            </tr>
        </Show>
    }
}
