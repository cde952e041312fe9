//! One organization: the live status banner and the stream of sync events.

use crate::{
    app::{
        components::status_banner::SyncStatusBanner,
        hooks::sync_status::{use_sync_status_updates, UseSyncStatusOptions},
    },
    protocol::events::SyncEvent,
};
use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

/// Events kept in the on-page log.
const LOG_SIZE: usize = 50;

#[component]
pub fn OrgPage() -> impl IntoView {
    let params = use_params_map();
    let org = Signal::derive(move || params.read().get("org").unwrap_or_default());
    let (log, set_log) = signal(Vec::<SyncEvent>::new());
    let on_event = Callback::new(move |event: SyncEvent| {
        set_log.update(|log| {
            log.insert(0, event);
            log.truncate(LOG_SIZE);
        });
    });
    let status = use_sync_status_updates(UseSyncStatusOptions {
        organization_id: org,
        enabled: Signal::derive(|| true),
        on_event: Some(on_event),
    });

    view! {
        <SyncStatusBanner status />
        <section class="card" data-testid="event-log">
            <h2>"Live sync events — " {move || org.get()}</h2>
            <ol class="event-log">
                <For each=move || log.get() key=|e| e.seq.unwrap_or_default() let:event>
                    <li data-testid="event" data-type=event.kind.as_str()>
                        <code>{event.kind.as_str()}</code> " "
                        {event.pfa_id.clone().unwrap_or_default()} " "
                        {event.message.clone().unwrap_or_default()}
                    </li>
                </For>
            </ol>
        </section>
    }
}
