//! The sync status banner: connection, last event, and (dev mode only) the WS badge.

use crate::app::hooks::sync_status::SyncStatus;
use leptos::prelude::*;

/// True in the browser when the server runs in dev mode (`<body data-mode="dev">`); false
/// during server rendering and hydration, so the HTML matches.
pub fn use_dev_mode() -> ReadSignal<bool> {
    let (dev, set_dev) = signal(false);
    Effect::new(move |_| {
        #[cfg(feature = "hydrate")]
        {
            let mode = document().body().and_then(|b| b.get_attribute("data-mode"));
            set_dev.set(mode.as_deref() == Some("dev"));
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = set_dev;
    });
    dev
}

#[component]
pub fn SyncStatusBanner(status: SyncStatus) -> impl IntoView {
    let dev = use_dev_mode();
    let connected = status.is_connected;
    view! {
        <div class="banner" role="status" aria-live="polite" data-testid="sync-banner">
            <span data-testid="last-event">
                {move || match status.last_event.get() {
                    Some(e) => format!("Last event: {} {}", e.kind.as_str(), e.message.unwrap_or_default()),
                    None => "No sync events yet".to_owned(),
                }}
            </span>
            <span class="bad" data-testid="ws-stopped">{move || status.stopped.get()}</span>
            <Show when=move || dev.get()>
                <span
                    class="ws-badge"
                    class:ok=move || connected.get()
                    class:bad=move || !connected.get()
                    data-testid="ws-badge"
                    data-connected=move || connected.get().to_string()
                    aria-label=move || if connected.get() { "WebSocket connected" } else { "WebSocket disconnected" }
                    title=move || if connected.get() { "WebSocket connected" } else { "WebSocket disconnected" }
                >
                    {move || if connected.get() { "● WS" } else { "○ WS" }}
                </span>
            </Show>
        </div>
    }
}
