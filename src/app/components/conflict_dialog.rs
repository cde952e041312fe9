//! The conflict-resolution dialog: a modal that shows, for every field PEMS and the user both
//! changed, "Your value" beside "PEMS value", and resolves the conflict with the user's values,
//! PEMS's, or a per-field merge. Opens when `conflict_id` is `Some`; closes on success, Cancel
//! or Escape.

use crate::app::{
    api::jobs::{self, show_value, Conflict, ResolveAnswer, ResolveRequest},
    split::{reload_page, NotLoaded},
};
use leptos::{html, prelude::*};
use serde_json::Map;
use std::collections::BTreeMap;

/// Which side a merged field takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Mine,
    Pems,
}

/// The dialog's code is a lazy wasm module (`cargo leptos build --split`): the records page
/// and the sync queue load and hydrate without it, and it is fetched the first time a conflict
/// opens. It then stays mounted, shown whenever `conflict_id` is `Some`. If the module cannot
/// be fetched (the network is gone at that moment), a small dialog says so and offers a reload:
/// the split loader keeps a failed fetch for the life of the page, so only a reload fetches it
/// again. Nothing is lost by it: unsaved edits are in local storage, and the conflict stays
/// open in the sync queue until it is resolved.
#[component]
pub fn ConflictDialog(
    org: Signal<String>,
    conflict_id: Signal<Option<String>>,
    on_close: Callback<()>,
    /// Told about a successful resolution (before `on_close`).
    #[prop(optional)]
    on_resolved: Option<Callback<ResolveAnswer>>,
) -> impl IntoView {
    let wanted = Memo::new(move |was: Option<&bool>| {
        was.copied().unwrap_or(false) || conflict_id.with(Option::is_some)
    });
    // Escape closes whichever is open: the dialog, or the stand-in for it.
    Effect::new(move |_| {
        let escape = window_event_listener(leptos::ev::keydown, move |ev| {
            if ev.key() == "Escape" && conflict_id.with_untracked(Option::is_some) {
                on_close.run(());
            }
        });
        on_cleanup(move || escape.remove());
    });
    move || {
        wanted.get().then(|| {
            let props = DialogProps {
                org,
                conflict_id,
                on_close,
                on_resolved,
            };
            Suspend::new(async move {
                match dialog(props).await {
                    Ok(view) => view,
                    Err(NotLoaded) => not_loaded(conflict_id, on_close),
                }
            })
        })
    }
}

/// In place of the dialog when its module could not be fetched: the reason, "Reload page"
/// (which takes the focus) and Cancel (Escape too, see [`ConflictDialog`]).
fn not_loaded(conflict_id: Signal<Option<String>>, on_close: Callback<()>) -> AnyView {
    let reload_ref = NodeRef::<html::Button>::new();
    Effect::new(move |_| {
        if let (Some(_), Some(button)) = (conflict_id.get(), reload_ref.get()) {
            let _ = button.focus();
        }
    });
    view! {
        <Show when=move || conflict_id.with(Option::is_some)>
            <div class="modal-backdrop">
                <div class="modal" role="alertdialog" aria-modal="true" aria-labelledby="conflict-dialog-title"
                    aria-describedby="conflict-not-loaded" data-testid="conflict-not-loaded">
                    <h2 id="conflict-dialog-title">"Conflict"</h2>
                    <p class="bad" id="conflict-not-loaded">
                        "The conflict dialog could not be loaded. Reload the page to try again: your "
                        "edits are kept, and the conflict stays open in the sync queue until it is resolved."
                    </p>
                    <div class="modal-actions">
                        <button type="button" class="button" data-testid="conflict-reload"
                            node_ref=reload_ref on:click=reload_page>"Reload page"</button>
                        <button type="button" class="button secondary" data-testid="conflict-cancel"
                            on:click=move |_| on_close.run(())>"Cancel"</button>
                    </div>
                </div>
            </div>
        </Show>
    }
    .into_any()
}

/// What the lazy half of the dialog is given.
struct DialogProps {
    org: Signal<String>,
    conflict_id: Signal<Option<String>>,
    on_close: Callback<()>,
    on_resolved: Option<Callback<ResolveAnswer>>,
}

/// The dialog itself, in its own wasm module. `fallible`: a failed fetch of the module comes
/// back as `Err` (Leptos's `#[lazy]` would panic, which ends the whole app).
#[leptos::wasm_split::wasm_split(conflict_dialog, wasm_split_path = ::leptos::wasm_split, fallible)]
fn dialog(props: DialogProps) -> Result<AnyView, NotLoaded> {
    let DialogProps {
        org,
        conflict_id,
        on_close,
        on_resolved,
    } = props;
    let conflict = RwSignal::new(None::<Result<Conflict, String>>);
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let merging = RwSignal::new(false);
    let choices = RwSignal::new(BTreeMap::<String, Side>::new());
    let dialog_ref = NodeRef::<html::Div>::new();

    Effect::new(move |_| {
        let (org, id) = (org.get(), conflict_id.get());
        conflict.set(None);
        error.set(None);
        busy.set(false);
        merging.set(false);
        choices.set(BTreeMap::new());
        if let Some(id) = id {
            leptos::task::spawn_local(async move {
                let answer = jobs::conflict(&org, &id).await;
                if conflict_id.get_untracked().as_deref() == Some(id.as_str()) {
                    conflict.set(Some(answer.map_err(|e| jobs::describe(&e))));
                }
            });
        }
    });
    // Focus moves into the dialog when it opens (so Escape and Tab act on it), Tab and
    // Shift+Tab cycle inside it, and focus goes back to where it was when the dialog closes.
    #[cfg(feature = "hydrate")]
    let opener = StoredValue::new(None::<send_wrapper::SendWrapper<web_sys::HtmlElement>>);
    Effect::new(move |was_open: Option<bool>| {
        let open = conflict_id.with(|c| c.is_some());
        let dialog = dialog_ref.get();
        #[cfg(feature = "hydrate")]
        {
            use wasm_bindgen::JsCast;
            let active = document().active_element();
            if open && was_open != Some(true) {
                opener.set_value(
                    active
                        .clone()
                        .and_then(|a| a.dyn_into::<web_sys::HtmlElement>().ok())
                        .map(send_wrapper::SendWrapper::new),
                );
            }
            if let (true, Some(dialog)) = (open, dialog.as_ref()) {
                let node: &web_sys::Node = dialog.as_ref();
                if !active.is_some_and(|a| node.contains(Some(a.as_ref()))) {
                    let _ = dialog.focus();
                }
            }
            if !open && was_open == Some(true) {
                if let Some(opener) = opener.try_update_value(|o| o.take()).flatten() {
                    if opener.is_connected() {
                        let _ = opener.focus();
                    }
                }
            }
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = (dialog, was_open);
        open
    });
    // Tab stays inside the dialog (Escape is handled by `ConflictDialog`, for the stand-in too).
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        let handle = window_event_listener(leptos::ev::keydown, move |ev| {
            if ev.key() == "Tab" && conflict_id.with_untracked(Option::is_some) {
                if let Some(dialog) = dialog_ref.get_untracked() {
                    trap_tab(&dialog, &ev);
                }
            }
        });
        on_cleanup(move || handle.remove());
    });
    let resolve = move |resolution: &'static str| {
        let Some(id) = conflict_id.get_untracked() else {
            return;
        };
        let values = if resolution == "merge" {
            let Some(Ok(c)) = conflict.get_untracked() else {
                return;
            };
            let chosen = choices.get_untracked();
            let mut values = Map::new();
            for field in &c.fields {
                let side = match chosen.get(field) {
                    Some(side) => side,
                    None => {
                        error.set(Some(format!("Choose your value or PEMS's for {field}")));
                        return;
                    }
                };
                let source = if *side == Side::Mine {
                    &c.local_values
                } else {
                    &c.remote_values
                };
                values.insert(
                    field.clone(),
                    source.get(field).cloned().unwrap_or_default(),
                );
            }
            Some(values)
        } else {
            None
        };
        busy.set(true);
        error.set(None);
        leptos::task::spawn_local(async move {
            let body = ResolveRequest { resolution, values };
            match jobs::resolve_conflict(&org.get_untracked(), &id, &body).await {
                Ok(answer) => {
                    busy.set(false);
                    if let Some(on_resolved) = on_resolved {
                        on_resolved.run(answer);
                    }
                    on_close.run(());
                }
                Err(e) => {
                    busy.set(false);
                    error.set(Some(jobs::describe(&e)));
                }
            }
        });
    };

    let field_row = move |c: &Conflict, field: String| {
        let mine = c
            .local_values
            .get(&field)
            .map(show_value)
            .unwrap_or_default();
        let pems = c
            .remote_values
            .get(&field)
            .map(show_value)
            .unwrap_or_default();
        let choose = {
            let field = field.clone();
            move |side: Side| {
                let field = field.clone();
                move |_| {
                    choices.update(|c| {
                        c.insert(field.clone(), side);
                    })
                }
            }
        };
        let is = {
            let field = field.clone();
            move |side: Side| {
                let field = field.clone();
                move || choices.with(|c| c.get(&field) == Some(&side))
            }
        };
        let radio_name = format!("merge-{field}");
        let (mine_id, pems_id) = (format!("merge-{field}-mine"), format!("merge-{field}-pems"));
        view! {
            <tr data-testid="conflict-field" data-field=field.clone()>
                <th scope="row">{field.clone()}</th>
                <td data-testid="conflict-mine">{mine}</td>
                <td data-testid="conflict-pems">{pems}</td>
                <Show when=move || merging.get()>
                    <td>
                        <label class="choice">
                            <input type="radio" name=radio_name.clone() data-testid=mine_id.clone()
                                prop:checked=is(Side::Mine) on:change=choose(Side::Mine) />
                            " Mine"
                        </label>
                        <label class="choice">
                            <input type="radio" name=radio_name.clone() data-testid=pems_id.clone()
                                prop:checked=is(Side::Pems) on:change=choose(Side::Pems) />
                            " PEMS"
                        </label>
                    </td>
                </Show>
            </tr>
        }
    };

    Ok(view! {
        <Show when=move || conflict_id.get().is_some()>
            <div class="modal-backdrop">
                <div class="modal" role="dialog" aria-modal="true" aria-labelledby="conflict-dialog-title"
                    tabindex="-1" node_ref=dialog_ref data-testid="conflict-dialog">
                    {move || match conflict.get() {
                        None => view! {
                            <h2 id="conflict-dialog-title">"Conflict"</h2>
                            <p class="muted">"Loading…"</p>
                        }.into_any(),
                        Some(Err(e)) => view! {
                            <h2 id="conflict-dialog-title">"Conflict"</h2>
                            <p class="bad" role="alert">{e}</p>
                        }.into_any(),
                        Some(Ok(c)) => view! {
                            <h2 id="conflict-dialog-title">
                                "Conflict on " <span data-testid="conflict-record">{c.pfa_id.clone()}</span>
                            </h2>
                            <p class="muted">
                                "PEMS changed this record (now version " {c.remote_version}
                                ") since your change was made. Choose which values to keep."
                            </p>
                            <table class="conflict-table">
                                <thead><tr>
                                    <th scope="col">"Field"</th>
                                    <th scope="col">"Your value"</th>
                                    <th scope="col">"PEMS value"</th>
                                    <Show when=move || merging.get()><th scope="col">"Keep"</th></Show>
                                </tr></thead>
                                <tbody>
                                    {c.fields.iter().map(|f| field_row(&c, f.clone())).collect_view()}
                                </tbody>
                            </table>
                        }.into_any(),
                    }}
                    <p class="bad" role="alert" data-testid="conflict-error">{move || error.get()}</p>
                    <div class="modal-actions">
                        <Show when=move || !merging.get()
                            fallback=move || view! {
                                <button type="button" class="button" data-testid="conflict-apply-merge"
                                    disabled=move || busy.get() on:click=move |_| resolve("merge")>"Apply merge"</button>
                                <button type="button" class="button secondary" data-testid="conflict-merge-back"
                                    on:click=move |_| merging.set(false)>"Back"</button>
                            }>
                            <button type="button" class="button" data-testid="conflict-use-mine"
                                disabled=move || busy.get() || !matches!(conflict.get(), Some(Ok(_)))
                                on:click=move |_| resolve("use_local")>"Use mine"</button>
                            <button type="button" class="button" data-testid="conflict-use-pems"
                                disabled=move || busy.get() || !matches!(conflict.get(), Some(Ok(_)))
                                on:click=move |_| resolve("use_pems")>"Use PEMS"</button>
                            <button type="button" class="button" data-testid="conflict-merge"
                                disabled=move || busy.get() || !matches!(conflict.get(), Some(Ok(_)))
                                on:click=move |_| { error.set(None); merging.set(true) }>"Merge…"</button>
                        </Show>
                        <button type="button" class="button secondary" data-testid="conflict-cancel"
                            on:click=move |_| on_close.run(())>"Cancel"</button>
                    </div>
                </div>
            </div>
        </Show>
    }
    .into_any())
}

/// Keeps Tab and Shift+Tab inside the dialog: from the last control to the first and back.
#[cfg(feature = "hydrate")]
fn trap_tab(dialog: &web_sys::HtmlElement, ev: &web_sys::KeyboardEvent) {
    use wasm_bindgen::JsCast;
    const FOCUSABLE: &str =
        "button:not([disabled]), input:not([disabled]), select:not([disabled]), \
                             textarea:not([disabled]), a[href], [tabindex]:not([tabindex='-1'])";
    let Ok(list) = dialog.query_selector_all(FOCUSABLE) else {
        return;
    };
    let controls: Vec<web_sys::HtmlElement> = (0..list.length())
        .filter_map(|i| list.item(i))
        .filter_map(|n| n.dyn_into::<web_sys::HtmlElement>().ok())
        .collect();
    let (Some(first), Some(last)) = (controls.first(), controls.last()) else {
        ev.prevent_default();
        let _ = dialog.focus();
        return;
    };
    let active = document().active_element();
    let node: &web_sys::Node = dialog.as_ref();
    let inside = active
        .as_ref()
        .is_some_and(|a| node.contains(Some(a.as_ref())) && !a.is_same_node(Some(node)));
    let is = |el: &web_sys::HtmlElement| {
        active
            .as_ref()
            .is_some_and(|a| a.is_same_node(Some(el.as_ref())))
    };
    if ev.shift_key() && (!inside || is(first)) {
        ev.prevent_default();
        let _ = last.focus();
    } else if !ev.shift_key() && (!inside || is(last)) {
        ev.prevent_default();
        let _ = first.focus();
    }
}
