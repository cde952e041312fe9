//! The pages that are lazy routes: each is its own wasm module (`cargo leptos build --split`),
//! fetched the first time the page is shown, so that the records page, where planners spend
//! their time, loads and hydrates without the code of the other pages: the start page,
//! sign-in, the organization picker, the sync-queue dashboard and the version timeline. The
//! pages read their parameters themselves, so a route has no data of its own to load beside
//! its view.

use leptos::prelude::*;
use leptos_router::{lazy_route, LazyRoute};

/// `/orgs/:org/jobs`: the sync-queue dashboard.
pub struct JobsRoute;

#[lazy_route]
impl LazyRoute for JobsRoute {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        view! { <super::jobs::JobsPage /> }.into_any()
    }
}

/// `/orgs/:org/records/:pfa`: a record's version timeline.
pub struct RecordHistoryRoute;

#[lazy_route]
impl LazyRoute for RecordHistoryRoute {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        view! { <super::record_history::RecordHistoryPage /> }.into_any()
    }
}

/// `/`: the start page.
pub struct HomeRoute;

#[lazy_route]
impl LazyRoute for HomeRoute {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        view! { <super::home::HomePage /> }.into_any()
    }
}

/// `/login`: sign-in.
pub struct LoginRoute;

#[lazy_route]
impl LazyRoute for LoginRoute {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        view! { <super::login::LoginPage /> }.into_any()
    }
}

/// `/orgs`: the organization picker.
pub struct OrgsRoute;

#[lazy_route]
impl LazyRoute for OrgsRoute {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        view! { <super::orgs::OrgsPage /> }.into_any()
    }
}
