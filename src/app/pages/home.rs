//! The landing page: what the app is, and the live server status.

use crate::app::components::server_status::ServerStatus;
use leptos::prelude::*;

#[component]
pub fn HomePage() -> impl IntoView {
    view! {
        <section class="hero" data-testid="home">
            <h1>"PFA Sync"</h1>
            <p class="lead">
                "Plan construction-equipment budgets, save drafts instantly, commit them, and watch "
                "every step of the write-back to PEMS live: started, progress, success, conflict, failure."
            </p>
        </section>
        <ServerStatus />
    }
}
