//! The top bar's account links: "Sign in" for visitors; the signed-in user's name and
//! "Sign out" otherwise. The server renders "Sign in"; the browser asks `/api/auth/me` after
//! hydration (so the HTML matches); the sign-in page tells it about a new session.

use crate::app::api;
use leptos::prelude::*;

/// Whether the sign-in hint cookie is set (always false on the server).
fn signed_in_hint() -> bool {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        let cookies = document()
            .dyn_into::<web_sys::HtmlDocument>()
            .ok()
            .and_then(|d| d.cookie().ok())
            .unwrap_or_default();
        let prefix = format!("{}=", crate::protocol::auth::SIGNED_IN_HINT_COOKIE);
        cookies.split(';').any(|c| c.trim().starts_with(&prefix))
    }
    #[cfg(not(feature = "hydrate"))]
    {
        false
    }
}

/// The signed-in user's name, shared by the top bar and the sign-in page.
#[derive(Clone, Copy)]
pub struct SessionUser(pub RwSignal<Option<String>>);

/// Provides [`SessionUser`] to the app (call once, in the root).
pub fn provide_session() -> SessionUser {
    let session = SessionUser(RwSignal::new(None));
    provide_context(session);
    session
}

#[component]
pub fn SessionNav() -> impl IntoView {
    let SessionUser(user) = expect_context::<SessionUser>();
    // After hydration, ask the server who this is (only when the sign-in hint says so).
    Effect::new(move |_| {
        if !signed_in_hint() {
            return;
        }
        leptos::task::spawn_local(async move {
            if let Ok(me) = api::me().await {
                user.set(me.map(|me| me.user.username));
            }
        });
    });
    let sign_out = move |_| {
        leptos::task::spawn_local(async move {
            // Whatever the answer, the session cookie is gone or was never valid: go to sign-in.
            let _ = api::logout().await;
            user.set(None);
            #[cfg(feature = "hydrate")]
            let _ = window().location().set_href("/login");
        });
    };
    view! {
        <Show
            when=move || user.get().is_some()
            fallback=|| view! { <a href="/login" data-testid="nav-sign-in">"Sign in"</a> }
        >
            <span class="nav-user" data-testid="nav-user">{move || user.get().unwrap_or_default()}</span>
            <button type="button" class="link nav-sign-out" data-testid="nav-sign-out" on:click=sign_out>"Sign out"</button>
        </Show>
    }
}
