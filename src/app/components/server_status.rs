//! A panel that asks the server for its health on demand and shows the answer.

use crate::{app::api, protocol::health::HealthReport};
use leptos::prelude::*;

/// What the panel shows, as plain text (also read by screen readers through `aria-live`).
pub fn describe(report: &Option<Result<HealthReport, String>>) -> String {
    match report {
        None => "Not checked yet.".to_owned(),
        Some(Ok(r)) => format!(
            "Server {} · database {} · up {} s · version {}",
            r.status, r.database, r.uptime_seconds, r.version
        ),
        Some(Err(e)) => format!("Server unreachable: {e}"),
    }
}

#[component]
pub fn ServerStatus() -> impl IntoView {
    let (report, set_report) = signal(None::<Result<HealthReport, String>>);
    let (checking, set_checking) = signal(false);
    let (checks, set_checks) = signal(0u32);

    let check = move |_| {
        set_checking.set(true);
        leptos::task::spawn_local(async move {
            let answer = api::fetch_health().await;
            set_report.set(Some(answer));
            set_checks.update(|n| *n += 1);
            set_checking.set(false);
        });
    };

    view! {
        <section class="card" data-testid="server-status" aria-labelledby="server-status-title">
            <h2 id="server-status-title">"Server status"</h2>
            <p class="muted">"Asks the server's /health endpoint from your browser."</p>
            <button
                class="button"
                data-testid="check-health"
                on:click=check
                disabled=move || checking.get()
            >
                {move || if checking.get() { "Checking…" } else { "Check server" }}
            </button>
            <p
                data-testid="health-result"
                data-checks=move || checks.get().to_string()
                class:ok=move || matches!(report.get(), Some(Ok(ref r)) if r.is_healthy())
                class:bad=move || matches!(report.get(), Some(Err(_)))
                role="status"
                aria-live="polite"
            >
                {move || describe(&report.get())}
            </p>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_each_state_in_words() {
        assert_eq!(describe(&None), "Not checked yet.");
        let report = HealthReport {
            status: "ok".into(),
            version: "0.1.0".into(),
            uptime_seconds: 7,
            database: "ok".into(),
            store: "sqlite".into(),
            instance: "instance-1".into(),
        };
        assert_eq!(
            describe(&Some(Ok(report))),
            "Server ok · database ok · up 7 s · version 0.1.0"
        );
        assert_eq!(
            describe(&Some(Err("offline".into()))),
            "Server unreachable: offline"
        );
    }
}
