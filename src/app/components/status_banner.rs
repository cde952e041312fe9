//! The sync status banner: unsaved / syncing / error counts, live progress, last sync time,
//! "All changes synced", and (dev mode only) the WS badge. `role="status"` with `aria-live`;
//! every state is also said in words, never by colour alone.

use crate::app::hooks::sync_status::SyncStatus;
use leptos::prelude::*;

/// What the banner summarises, computed by the page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BannerSummary {
    /// Records with edits not yet saved as drafts.
    pub unsaved: usize,
    /// Records with saved drafts not yet committed.
    pub drafts: usize,
    /// Sync jobs running now.
    pub syncing: usize,
    /// Failures seen since the page opened.
    pub errors: usize,
    /// Progress (0-100) of the running jobs, when any.
    pub progress: Option<u8>,
    /// Local time of the last record synced, e.g. "14:03:07".
    pub last_sync: Option<String>,
}

impl BannerSummary {
    pub fn all_synced(&self) -> bool {
        self.unsaved == 0 && self.drafts == 0 && self.syncing == 0
    }

    /// The banner's sentence.
    pub fn headline(&self) -> String {
        if self.all_synced() {
            return "All changes synced".to_owned();
        }
        let mut parts = Vec::new();
        if self.unsaved > 0 {
            parts.push(format!("{} unsaved", self.unsaved));
        }
        if self.drafts > 0 {
            parts.push(format!("{} draft(s) not committed", self.drafts));
        }
        if self.syncing > 0 {
            parts.push(format!("{} syncing", self.syncing));
        }
        parts.join(" · ")
    }
}

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
pub fn SyncStatusBanner(
    status: SyncStatus,
    #[prop(into)] summary: Signal<BannerSummary>,
) -> impl IntoView {
    let dev = use_dev_mode();
    let connected = status.is_connected;
    view! {
        <div class="banner" role="status" aria-live="polite" data-testid="sync-banner">
            <strong data-testid="banner-headline" class:ok=move || summary.get().all_synced()>
                {move || summary.get().headline()}
            </strong>
            <span data-testid="banner-errors" class:bad=move || { summary.get().errors > 0 }>
                {move || match summary.get().errors { 0 => String::new(), n => format!("{n} error(s)") }}
            </span>
            {move || summary.get().progress.map(|p| view! {
                <progress max="100" value=p data-testid="banner-progress" aria-label="Sync progress">{p} "%"</progress>
                <span>{p} "%"</span>
            })}
            <span class="muted" data-testid="banner-last-sync">
                {move || summary.get().last_sync.map(|t| format!("Last sync {t}")).unwrap_or_default()}
            </span>
            <span class="muted" data-testid="last-event">
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_headline_says_what_is_pending_or_that_all_is_synced() {
        assert_eq!(BannerSummary::default().headline(), "All changes synced");
        let s = BannerSummary {
            unsaved: 2,
            syncing: 1,
            ..Default::default()
        };
        assert_eq!(s.headline(), "2 unsaved · 1 syncing");
        assert!(!s.all_synced());
    }
}
