//! The "Records" / "Sync queue" tabs at the top of an organization's pages.

use leptos::prelude::*;

/// "Records" / "Sync queue" links of an organization's pages.
#[component]
pub fn OrgTabs(org: Signal<String>, current: &'static str) -> impl IntoView {
    let tab = move |name: &'static str, label: &'static str, href: String| {
        view! {
            <a href=href class="tab" class:active=current == name
                aria-current=if current == name { Some("page") } else { None }
                data-testid=format!("tab-{name}")>{label}</a>
        }
    };
    view! {
        <nav class="tabs" aria-label="Organization">
            {move || tab("records", "Records", format!("/orgs/{}", org.get()))}
            {move || tab("jobs", "Sync queue", format!("/orgs/{}/jobs", org.get()))}
        </nav>
    }
}
