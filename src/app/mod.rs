//! The Leptos UI: the HTML shell, the router and the pages. Rendered on the server and
//! hydrated in the browser; browser-only work runs in effects and event handlers.

pub mod api;
pub mod components;
pub mod hooks;
pub mod pages;
pub mod split;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    Lazy, ParamSegment, StaticSegment,
};

/// The HTML document around the app, rendered only on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    shell_with_mode(options, false)
}

/// The shell; `dev` marks `<body data-mode="dev">` so the browser shows developer aids.
pub fn shell_with_mode(options: LeptosOptions, dev: bool) -> impl IntoView {
    let mode = if dev { "dev" } else { "prod" };
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body data-mode=mode>
                <App />
            </body>
        </html>
    }
}

/// The root component. `data-hydrated` turns to `true` once the WebAssembly bundle has taken
/// over the server-rendered page (end-to-end tests wait for it before they click).
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    components::session_nav::provide_session();
    let (hydrated, set_hydrated) = signal(false);
    Effect::new(move |_| set_hydrated.set(true));

    view! {
        <Stylesheet id="leptos" href="/pkg/pfa-sync.css" />
        <Title text="PFA Sync" />
        <div class="app" data-hydrated=move || hydrated.get().to_string()>
            <Router>
                {top_bar().into_any()}
                <main class="content">
                    <Routes fallback=pages::not_found::NotFound>
                        <Route path=StaticSegment("") view={Lazy::<pages::lazy::HomeRoute>::new()} />
                        <Route path=StaticSegment("login") view={Lazy::<pages::lazy::LoginRoute>::new()} />
                        <Route path=StaticSegment("orgs") view={Lazy::<pages::lazy::OrgsRoute>::new()} />
                        <Route path=(StaticSegment("orgs"), ParamSegment("org")) view=pages::org::OrgPage />
                        <Route path=(StaticSegment("orgs"), ParamSegment("org"), StaticSegment("jobs")) view={Lazy::<pages::lazy::JobsRoute>::new()} />
                        <Route path=(StaticSegment("orgs"), ParamSegment("org"), StaticSegment("records"), ParamSegment("pfa")) view={Lazy::<pages::lazy::RecordHistoryRoute>::new()} />
                    </Routes>
                </main>
            </Router>
        </div>
    }
}

/// The top bar, erased into an `AnyView` by its caller. Everything above the router hydrates
/// asynchronously (`hydrate_lazy`, which the lazy routes need), and an erased view hydrates
/// synchronously (vendor/tachys/PATCHED.md), so the bundle carries no async hydration code for
/// the top bar's views.
fn top_bar() -> impl IntoView {
    view! {
        <header class="topbar">
            <a class="brand" href="/">"PFA Sync"</a>
            <nav class="nav">
                <a href="/orgs">"Organizations"</a>
                <components::session_nav::SessionNav />
            </nav>
        </header>
    }
}
