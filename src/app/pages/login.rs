//! Sign-in page. Once hydrated it signs in with `fetch`; before that (a slow start, or no
//! JavaScript) the same form posts itself to `/api/auth/login`, which answers with a redirect:
//! to `/orgs`, or back here with `?error=<code>`. A credential never goes in a URL.

use crate::app::{api, components::session_nav::SessionUser};
use leptos::prelude::*;
use leptos_router::hooks::{use_navigate, use_query_map};

/// The message of an `?error=` code that the form post came back with.
fn form_error(code: &str) -> &'static str {
    match code {
        "invalid" => "wrong username or password",
        "throttled" => "too many attempts; try again in a minute",
        _ => "signing in failed; try again",
    }
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let (username, set_username) = signal(String::new());
    let (password, set_password) = signal(String::new());
    let query = use_query_map();
    let (error, set_error) = signal(
        query
            .with_untracked(|q| q.get("error"))
            .map(|code| form_error(&code).to_owned()),
    );
    let (busy, set_busy) = signal(false);
    let navigate = use_navigate();
    let session = use_context::<SessionUser>();

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        set_busy.set(true);
        set_error.set(None);
        let navigate = navigate.clone();
        leptos::task::spawn_local(async move {
            match api::login(username.get_untracked(), password.get_untracked()).await {
                Ok(me) => {
                    if let Some(SessionUser(user)) = session {
                        user.set(Some(me.user.username));
                    }
                    navigate("/orgs", Default::default())
                }
                Err(e) => set_error.set(Some(e)),
            }
            set_busy.set(false);
        });
    };

    view! {
        <section class="card narrow" data-testid="login">
            <h1>"Sign in"</h1>
            <form method="post" action="/api/auth/login" on:submit=submit>
                <label>"Username"
                    <input name="username" autocomplete="username" data-testid="login-username"
                        prop:value=username on:input=move |ev| set_username.set(event_target_value(&ev)) required />
                </label>
                <label>"Password"
                    <input name="password" type="password" autocomplete="current-password" data-testid="login-password"
                        prop:value=password on:input=move |ev| set_password.set(event_target_value(&ev)) required />
                </label>
                <button class="button" type="submit" data-testid="login-submit" disabled=move || busy.get()>"Sign in"</button>
            </form>
            <p class="bad" role="alert" data-testid="login-error">{move || error.get()}</p>
        </section>
    }
}
