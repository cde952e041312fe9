//! The organization picker: the organizations of the signed-in user.

use crate::{app::api, protocol::auth::Me};
use leptos::prelude::*;

#[component]
pub fn OrgsPage() -> impl IntoView {
    let (me, set_me) = signal(None::<Result<Option<Me>, String>>);
    Effect::new(move |_| {
        leptos::task::spawn_local(async move { set_me.set(Some(api::me().await)) });
    });
    view! {
        <section class="card" data-testid="orgs">
            <h1>"Organizations"</h1>
            {move || match me.get() {
                None => view! { <p class="muted">"Loading…"</p> }.into_any(),
                Some(Ok(None)) => view! { <p>"You are not signed in. " <a href="/login">"Sign in"</a></p> }.into_any(),
                Some(Err(e)) => view! { <p class="bad">{e}</p> }.into_any(),
                Some(Ok(Some(me))) => view! {
                    <p class="muted">"Signed in as " <strong data-testid="me-username">{me.user.username.clone()}</strong></p>
                    <ul class="org-list">
                        {me.memberships.into_iter().map(|m| view! {
                            <li>
                                <a href=format!("/orgs/{}", m.organization_id) data-testid=format!("org-{}", m.organization_id)>
                                    {m.name.clone()} " (" {m.code.clone()} ")"
                                </a>
                                <span class="muted">" — " {m.role.clone()}</span>
                            </li>
                        }).collect_view()}
                    </ul>
                }.into_any(),
            }}
        </section>
    }
}
