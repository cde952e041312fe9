//! A record's version timeline (`/orgs/:org/records/:pfa`): every accepted write, newest first,
//! with who, when, why and the field diff; admins roll back to an older version with a reason.
//! The timeline refetches when a sync of this record lands (live events, plus a short poll
//! after a rollback in case the socket is down).

use crate::{
    app::{
        api::{
            self,
            jobs::{self, format_time, is_terminal, show_value, History, RollbackRequest, Version},
        },
        components::org_tabs::OrgTabs,
        hooks::sync_status::{use_sync_status_updates, UseSyncStatusOptions},
    },
    protocol::events::{SyncEvent, SyncEventType},
};
use leptos::prelude::*;
use leptos_router::hooks::use_params_map;
use std::{collections::HashMap, time::Duration};

/// The shortest rollback reason the server accepts (after trimming).
const MIN_REASON: usize = 10;

/// Polls after a rollback, in case no live event arrives.
const POLL_DELAYS: [Duration; 3] = [
    Duration::from_secs(2),
    Duration::from_secs(5),
    Duration::from_secs(10),
];

/// `field: from -> to` for each change of a version.
fn diff_lines(version: &Version) -> Vec<String> {
    version
        .changes
        .iter()
        .map(|(field, change)| {
            let side = |k: &str| change.get(k).map(show_value).unwrap_or_default();
            format!("{field}: {} -> {}", side("from"), side("to"))
        })
        .collect()
}

#[component]
pub fn RecordHistoryPage() -> impl IntoView {
    let params = use_params_map();
    let org = Signal::derive(move || params.read().get("org").unwrap_or_default());
    let pfa = Signal::derive(move || params.read().get("pfa").unwrap_or_default());
    let history = RwSignal::new(None::<Result<History, String>>);
    let is_admin = RwSignal::new(false);
    // The version whose rollback form is open, the reason typed, and the form's messages.
    let rolling_back = RwSignal::new(None::<i64>);
    let reason = RwSignal::new(String::new());
    let form_error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let rollback_job = RwSignal::new(None::<(String, String)>);
    // Job-level statuses seen on the socket, by job: a one-record job can end before the
    // rollback request has answered with its id.
    let seen_status = StoredValue::new(HashMap::<String, String>::new());

    let refetch = Callback::new(move |_: ()| {
        leptos::task::spawn_local(async move {
            let answer = jobs::record_history(&org.get_untracked(), &pfa.get_untracked()).await;
            history.set(Some(answer.map_err(|e| jobs::describe(&e))));
        });
    });
    // The fallback when no live event comes: the job's status and the timeline, over HTTP.
    let poll = Callback::new(move |job_id: String| {
        let still_running = rollback_job.with_untracked(|j| {
            j.as_ref().is_some_and(|(id, status)| {
                *id == job_id && !is_terminal(&status.replace(' ', "_"))
            })
        });
        if !still_running {
            return;
        }
        leptos::task::spawn_local(async move {
            if let Ok(detail) = jobs::job_detail(&org.get_untracked(), &job_id).await {
                rollback_job.update(|j| {
                    if let Some((id, status)) = j {
                        if *id == job_id {
                            *status = detail.job.status.replace('_', " ");
                        }
                    }
                });
            }
            refetch.run(());
        });
    });
    Effect::new(move |_| {
        let _ = (org.get(), pfa.get());
        refetch.run(());
    });
    Effect::new(move |_| {
        let org = org.get();
        leptos::task::spawn_local(async move {
            if let Ok(Some(me)) = api::me().await {
                is_admin.set(
                    me.memberships
                        .iter()
                        .any(|m| m.organization_id == org && m.role == "admin"),
                );
            }
        });
    });

    let on_event = Callback::new(move |event: SyncEvent| {
        let ours =
            rollback_job.with_untracked(|j| j.as_ref().is_some_and(|(id, _)| *id == event.job_id));
        let job_status = event
            .data
            .as_ref()
            .and_then(|d| d.get("jobStatus"))
            .and_then(|s| s.as_str())
            .filter(|_| event.pfa_id.is_none())
            .map(str::to_owned);
        if let Some(status) = job_status.clone() {
            seen_status.update_value(|seen| {
                seen.insert(event.job_id.clone(), status);
            });
        }
        if ours {
            if let Some(status) = job_status.clone() {
                rollback_job.update(|j| {
                    if let Some((_, s)) = j {
                        *s = status.replace('_', " ");
                    }
                });
            }
        }
        let this_record = event.pfa_id.as_deref() == Some(pfa.get_untracked().as_str());
        let landed = this_record
            && matches!(
                event.kind,
                SyncEventType::SyncSuccess | SyncEventType::SyncConflict
            );
        if landed || (ours && job_status.as_deref().is_some_and(is_terminal)) {
            refetch.run(());
        }
    });
    let _status = use_sync_status_updates(UseSyncStatusOptions {
        organization_id: org,
        enabled: Signal::derive(|| true),
        on_event: Some(on_event),
    });

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Some(version) = rolling_back.get_untracked() else {
            return;
        };
        let text = reason.get_untracked().trim().to_owned();
        if text.chars().count() < MIN_REASON {
            form_error.set(Some(format!(
                "Please give a reason of at least {MIN_REASON} characters."
            )));
            return;
        }
        form_error.set(None);
        busy.set(true);
        leptos::task::spawn_local(async move {
            let body = RollbackRequest {
                version,
                reason: text,
            };
            match jobs::rollback(&org.get_untracked(), &pfa.get_untracked(), &body).await {
                Ok(job) => {
                    let status = seen_status
                        .with_value(|seen| seen.get(&job.id).cloned())
                        .unwrap_or(job.status);
                    rollback_job.set(Some((job.id.clone(), status.replace('_', " "))));
                    rolling_back.set(None);
                    reason.set(String::new());
                    if is_terminal(&status) {
                        refetch.run(());
                    }
                    for delay in POLL_DELAYS {
                        let id = job.id.clone();
                        set_timeout(move || poll.run(id), delay);
                    }
                }
                Err(e) => form_error.set(Some(jobs::describe(&e))),
            }
            busy.set(false);
        });
    };

    let version_view = move |v: Version, current: bool| {
        let n = v.version;
        let title = if current {
            format!("Version {n} (Current)")
        } else {
            format!("Version {n}")
        };
        let diff = diff_lines(&v);
        view! {
            <li class="version" class:current=current data-testid="version" data-version=n.to_string()>
                <h2 data-testid="version-title">{title}</h2>
                <p class="muted">
                    <span data-testid="version-kind" class="kind">{v.kind.clone()}</span>
                    " by " <strong data-testid="version-by">{v.changed_by.clone()}</strong>
                    " on " {format_time(&v.created_at)}
                    {v.job_id.clone().map(|j| format!(" (job {j})"))}
                </p>
                <p data-testid="version-reason">{v.reason.clone().unwrap_or_else(|| "No reason given".into())}</p>
                <ul class="diff">
                    {diff.into_iter().map(|line| view! { <li data-testid="diff-line"><code>{line}</code></li> }).collect_view()}
                </ul>
                <Show when=move || is_admin.get() && !current>
                    <Show when=move || rolling_back.get() == Some(n)
                        fallback=move || view! {
                            <button type="button" class="button secondary" data-testid="rollback-open"
                                on:click=move |_| {
                                    form_error.set(None);
                                    reason.set(String::new());
                                    rolling_back.set(Some(n));
                                }>"Roll back to this version"</button>
                        }>
                        <form class="rollback-form" data-testid="rollback-form" on:submit=submit novalidate=true>
                            <label>{format!("Why roll back to version {n}? (at least {MIN_REASON} characters)")}
                                <input data-testid="rollback-reason" prop:value=reason
                                    on:input=move |ev| reason.set(event_target_value(&ev)) />
                            </label>
                            <p class="bad" role="alert" data-testid="rollback-error">{move || form_error.get()}</p>
                            <button type="submit" class="button" data-testid="rollback-submit"
                                disabled=move || busy.get()>{format!("Roll back to version {n}")}</button>
                            " "
                            <button type="button" class="button secondary" data-testid="rollback-cancel"
                                on:click=move |_| rolling_back.set(None)>"Cancel"</button>
                        </form>
                    </Show>
                </Show>
            </li>
        }
    };

    view! {
        <OrgTabs org current="records" />
        <section class="card" data-testid="record-history">
            <h1>"History of " {move || pfa.get()}</h1>
            <p class="status-line msg" role="status" aria-live="polite" data-testid="rollback-job">
                {move || rollback_job.get().map(|(id, status)| format!("Rollback job {id}: {status}"))}
            </p>
            {move || match history.get() {
                None => view! { <p class="muted">"Loading…"</p> }.into_any(),
                Some(Err(e)) => view! { <p class="bad" role="alert" data-testid="history-error">{e}</p> }.into_any(),
                Some(Ok(h)) => view! {
                    <ol class="timeline" data-testid="versions">
                        {h.versions.into_iter().enumerate().map(|(i, v)| version_view(v, i == 0)).collect_view()}
                    </ol>
                }.into_any(),
            }}
        </section>
    }
}
