//! Sign-in page.

use crate::app::{api, components::session_nav::SessionUser};
use leptos::prelude::*;
use leptos_router::hooks::use_navigate;

#[component]
pub fn LoginPage() -> impl IntoView {
    let (username, set_username) = signal(String::new());
    let (password, set_password) = signal(String::new());
    let (error, set_error) = signal(None::<String>);
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
            <form on:submit=submit>
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
