//! The pages that are lazy routes: each is its own wasm module (`cargo leptos build --split`),
//! fetched the first time the page is shown, so that the records page, where planners spend
//! their time, loads and hydrates without the code of the other pages: the start page,
//! sign-in, the organization picker, the sync-queue dashboard and the version timeline. The
//! pages read their parameters themselves, so a route has no data of its own to load beside
//! its view.
//!
//! Written out rather than with `#[lazy_route]`, whose split function panics when its module
//! cannot be fetched, which ends the whole app (say a planner follows the tabs to the sync
//! queue while the network is down): here the split function is `fallible`, and the page says
//! it could not be loaded and offers a reload instead. On the server the view is rendered at
//! once, and the module is named for the page to preload (`<link rel=preload>`), as
//! `#[lazy_route]` does.

use crate::app::split::{reload_page, NotLoaded};
use leptos::prelude::*;
use leptos_router::LazyRoute;

/// In place of a page whose module could not be fetched.
fn not_loaded() -> AnyView {
    view! {
        <section class="card" role="alert" data-testid="page-not-loaded">
            <h1>"This page could not be loaded"</h1>
            <p class="bad">
                "Its code did not download: the network or the server may be down. Reload the "
                "page to try again; unsaved edits are kept."
            </p>
            <button type="button" class="button" data-testid="page-reload" on:click=reload_page>
                "Reload page"
            </button>
        </section>
    }
    .into_any()
}

/// `$route`: a lazy route that shows the component `$page` from the wasm module
/// `split_$module.wasm` (`$preload` fetches it ahead).
macro_rules! lazy_page {
    ($(#[$doc:meta])* $route:ident => $page:ident in $module:ident, preload $preload:ident) => {
        $(#[$doc])*
        pub struct $route;

        #[leptos::wasm_split::wasm_split(
            $module,
            wasm_split_path = ::leptos::wasm_split,
            preload($preload),
            fallible
        )]
        fn $module() -> Result<AnyView, NotLoaded> {
            Ok(view! { <$page /> }.into_any())
        }

        impl LazyRoute for $route {
            fn data() -> Self {
                Self
            }

            async fn view(_this: Self) -> AnyView {
                #[cfg(feature = "ssr")]
                leptos::prefetch_lazy_fn_on_server(stringify!($module));
                $module().await.unwrap_or_else(|NotLoaded| not_loaded())
            }

            async fn preload() {
                // A failure is shown by `view`, which meets it again.
                #[cfg(target_family = "wasm")]
                let _ = $preload().await;
            }
        }
    };
}

use super::record_history::RecordHistoryPage;
use super::{home::HomePage, jobs::JobsPage, login::LoginPage, orgs::OrgsPage};

lazy_page! {
    /// `/orgs/:org/jobs`: the sync-queue dashboard.
    JobsRoute => JobsPage in jobs_route, preload preload_jobs_route
}

lazy_page! {
    /// `/orgs/:org/records/:pfa`: a record's version timeline.
    RecordHistoryRoute => RecordHistoryPage in record_history_route, preload preload_record_history_route
}

lazy_page! {
    /// `/`: the start page.
    HomeRoute => HomePage in home_route, preload preload_home_route
}

lazy_page! {
    /// `/login`: sign-in.
    LoginRoute => LoginPage in login_route, preload preload_login_route
}

lazy_page! {
    /// `/orgs`: the organization picker.
    OrgsRoute => OrgsPage in orgs_route, preload preload_orgs_route
}
