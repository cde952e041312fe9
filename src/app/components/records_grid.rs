//! The records grid: only the rows in view are in the DOM (fixed row height, a spacer above
//! and below), so 2,000 records scroll without jank. Cells show their value as text and mount
//! an input only while being edited (click, Enter or F2), so a row is cheap to create and
//! dispose while scrolling. A cell with an unsaved edit, a saved draft, or a validation error
//! is marked (with text, not only colour).
//!
//! Reactivity is layered so that scrolling and editing stay within a frame: each row has one
//! memo of its own pending edits (the only subscriber to the page's pending edits per row),
//! each cell one memo of what it shows, and a cell re-renders only when that changes.

use crate::{
    app::{
        api::records::{DraftView, RecordRow},
        hooks::drafts::{field_errors, DraftManagement},
    },
    domain::pfa::{EditableField, FieldErrors, PfaRecord},
};
use leptos::prelude::*;
use serde_json::{Map, Value};
use std::hash::{DefaultHasher, Hash, Hasher};

/// Pixel height of a row (must match `.grid tr` in the CSS).
pub const ROW_HEIGHT: f64 = 36.0;
/// Pixel height of the scrolling area.
pub const VIEW_HEIGHT: f64 = 560.0;
/// Rows rendered above and below the visible ones.
const OVERSCAN: usize = 8;

/// The rows to render for a scroll position: `[start, end)`.
pub fn window_range(scroll_top: f64, total: usize) -> (usize, usize) {
    let first = (scroll_top.max(0.0) / ROW_HEIGHT).floor() as usize;
    let visible = (VIEW_HEIGHT / ROW_HEIGHT).ceil() as usize;
    let start = first.saturating_sub(OVERSCAN).min(total);
    let end = (first + visible + OVERSCAN).min(total);
    (start, end)
}

/// Editable columns: field, header, input type.
const EDITABLE: [(EditableField, &str, &str); 6] = [
    (EditableField::Equipment, "Equipment", "text"),
    (EditableField::MonthlyRate, "Monthly rate", "number"),
    (EditableField::PurchasePrice, "Purchase price", "number"),
    (EditableField::ForecastStart, "Forecast start", "date"),
    (EditableField::ForecastEnd, "Forecast end", "date"),
    (EditableField::Notes, "Notes", "text"),
];

/// A value as the cell shows it (and as its editor starts): numbers without a trailing `.0`.
fn as_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), |f| f.to_string()),
        other => other.to_string(),
    }
}

fn parse_input(kind: &str, raw: &str) -> Value {
    match kind {
        "number" if raw.trim().is_empty() => Value::Null,
        "number" => raw
            .trim()
            .parse::<f64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(raw.to_owned())),
        _ => Value::String(raw.to_owned()),
    }
}

/// Identifies a rendered row: a new version or a changed saved draft renders it afresh.
type RowKey = (String, i64, u64);

fn row_key(row: &RecordRow) -> RowKey {
    (
        row.record.pfa_id.clone(),
        row.record.version,
        draft_fingerprint(row.draft.as_ref()),
    )
}

/// A hash of a saved draft, so that the row key stays cheap (no serialisation per frame).
fn draft_fingerprint(draft: Option<&DraftView>) -> u64 {
    fn hash_value(value: &Value, h: &mut DefaultHasher) {
        match value {
            Value::Null => 0u8.hash(h),
            Value::Bool(b) => (1u8, b).hash(h),
            Value::Number(n) => (2u8, n.as_f64().map(f64::to_bits), n.as_i64()).hash(h),
            Value::String(s) => (3u8, s).hash(h),
            Value::Array(items) => {
                (4u8, items.len()).hash(h);
                items.iter().for_each(|v| hash_value(v, h));
            }
            Value::Object(map) => {
                (5u8, map.len()).hash(h);
                map.iter().for_each(|(k, v)| {
                    k.hash(h);
                    hash_value(v, h);
                });
            }
        }
    }
    let Some(draft) = draft else { return 0 };
    let mut h = DefaultHasher::new();
    draft.base_version.hash(&mut h);
    draft.reason.hash(&mut h);
    hash_value(&Value::Object(draft.changes.clone()), &mut h);
    h.finish() | 1
}

/// How a cell is marked besides its colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    Clean,
    /// An unsaved edit.
    Pending,
    /// A saved draft, not committed.
    Drafted,
}

/// What a cell shows.
#[derive(Debug, Clone, PartialEq)]
struct CellState {
    text: String,
    mark: Mark,
    error: Option<String>,
}

impl CellState {
    /// A record's field with its saved draft and pending edits applied.
    fn of(
        record: &PfaRecord,
        saved: Option<&Map<String, Value>>,
        pending: Option<&Map<String, Value>>,
        errors: &FieldErrors,
        field: EditableField,
    ) -> Self {
        let key = field.as_str();
        let edited = pending.and_then(|p| p.get(key));
        let drafted = saved.and_then(|s| s.get(key));
        let value = edited
            .or(drafted)
            .cloned()
            .unwrap_or_else(|| record.get(field));
        Self {
            text: as_text(&value),
            mark: match (edited, drafted) {
                (Some(_), _) => Mark::Pending,
                (None, Some(_)) => Mark::Drafted,
                (None, None) => Mark::Clean,
            },
            error: errors.get(key).cloned(),
        }
    }

    fn class(&self) -> &'static str {
        match (self.mark, self.error.is_some()) {
            (Mark::Clean, false) => "cell",
            (Mark::Clean, true) => "cell invalid",
            (Mark::Pending, false) => "cell pending",
            (Mark::Pending, true) => "cell pending invalid",
            (Mark::Drafted, false) => "cell drafted",
            (Mark::Drafted, true) => "cell drafted invalid",
        }
    }

    fn glyph(&self) -> &'static str {
        match self.mark {
            Mark::Clean => "",
            Mark::Pending => "●",
            Mark::Drafted => "○",
        }
    }
}

#[component]
pub fn RecordsGrid(
    #[prop(into)] rows: Signal<Vec<RecordRow>>,
    drafts: DraftManagement,
    #[prop(into)] can_edit: Signal<bool>,
    #[prop(into)] org: Signal<String>,
) -> impl IntoView {
    let (scroll_top, set_scroll_top) = signal(0.0f64);
    let range = Memo::new(move |_| window_range(scroll_top.get(), rows.with(|r| r.len())));
    // Positions and keys only: a row is cloned when it is created, not on every scroll.
    let visible = move || {
        let (start, end) = range.get();
        rows.with(|r| {
            (start..end)
                .map(|i| (i, row_key(&r[i])))
                .collect::<Vec<_>>()
        })
    };
    let top_pad = move || format!("height: {}px", range.get().0 as f64 * ROW_HEIGHT);
    let bottom_pad = move || {
        let total = rows.with(|r| r.len());
        format!("height: {}px", (total - range.get().1) as f64 * ROW_HEIGHT)
    };

    view! {
        <div
            class="grid-scroll"
            style=format!("height: {VIEW_HEIGHT}px")
            data-testid="records-grid"
            on:scroll=move |ev| set_scroll_top.set(event_target::<leptos::web_sys::HtmlElement>(&ev).scroll_top() as f64)
        >
            <table class="grid">
                <thead>
                    <tr>
                        <th scope="col">"PFA"</th>
                        <th scope="col">"Category"</th>
                        <th scope="col">"Source"</th>
                        {EDITABLE.iter().map(|(_, header, _)| view! { <th scope="col">{*header}</th> }).collect_view()}
                        <th scope="col">"Version"</th>
                    </tr>
                </thead>
                <tbody>
                    <tr class="spacer" style=top_pad aria-hidden="true"></tr>
                    <For
                        each=visible
                        key=|(_, key)| key.clone()
                        children=move |(index, _)| {
                            let row = rows.with_untracked(|r| r[index].clone());
                            view! { <Row row drafts can_edit org /> }
                        }
                    />
                    <tr class="spacer" style=bottom_pad aria-hidden="true"></tr>
                </tbody>
            </table>
        </div>
    }
}

/// What every cell of a row shares.
#[derive(Clone, Copy)]
struct RowContext {
    record: StoredValue<PfaRecord>,
    saved: StoredValue<Option<Map<String, Value>>>,
    /// This row's pending edits.
    own: Memo<Option<Map<String, Value>>>,
    errors: Memo<FieldErrors>,
    editable: Memo<bool>,
    drafts: DraftManagement,
}

#[component]
fn Row(
    row: RecordRow,
    drafts: DraftManagement,
    can_edit: Signal<bool>,
    org: Signal<String>,
) -> impl IntoView {
    let RecordRow { record, draft } = row;
    let (pfa_id, category, source, version) = (
        record.pfa_id.clone(),
        record.category.clone(),
        format!("{:?}", record.source),
        record.version,
    );
    let history = format!("/orgs/{}/records/{}", org.get_untracked(), pfa_id);
    let own = {
        let pfa_id = pfa_id.clone();
        Memo::new(move |_| drafts.pending.with(|p| p.changes_of(&pfa_id).cloned()))
    };
    let record = StoredValue::new(record);
    let saved = StoredValue::new(draft.map(|d| d.changes));
    let errors = Memo::new(move |_| {
        own.with(|p| {
            record.with_value(|r| saved.with_value(|s| field_errors(r, s.as_ref(), p.as_ref())))
        })
    });
    let ctx = RowContext {
        record,
        saved,
        own,
        errors,
        editable: Memo::new(move |_| can_edit.get()),
        drafts,
    };
    view! {
        <tr data-testid="record-row" data-pfa=pfa_id.clone()>
            <th scope="row"><a href=history title="Version history">{pfa_id.clone()}</a></th>
            <td>{category}</td>
            <td>{source}</td>
            {EDITABLE.iter().map(|&(field, header, kind)| view! { <Cell ctx field header kind /> }).collect_view()}
            <td>{version}</td>
        </tr>
    }
}

/// One editable cell: its value as text (a button for editors), an input while being edited.
/// The whole cell is one reactive view over its memo, so a row costs few reactive nodes.
#[component]
fn Cell(
    ctx: RowContext,
    field: EditableField,
    header: &'static str,
    kind: &'static str,
) -> impl IntoView {
    let RowContext {
        record,
        saved,
        own,
        errors,
        editable,
        drafts,
    } = ctx;
    let state = Memo::new(move |_| {
        own.with(|p| {
            errors.with(|e| {
                record.with_value(|r| {
                    saved.with_value(|s| CellState::of(r, s.as_ref(), p.as_ref(), e, field))
                })
            })
        })
    });
    let editing = RwSignal::new(false);
    let commit = move |raw: &str| {
        record.with_value(|r| drafts.edit(r, field, parse_input(kind, raw)));
    };
    let label =
        move |text: &str| record.with_value(|r| format!("{header} of {}: {text}", r.pfa_id));

    move || {
        // While editing, the cell is not rendered afresh (the input keeps focus and caret);
        // only its marks follow the edits (a date input keeps the focus on Tab).
        if editing.get() {
            let s = state.get_untracked();
            let input = NodeRef::<leptos::html::Input>::new();
            input.on_load(|el| {
                let _ = el.focus();
            });
            return view! {
                <td class=move || state.with(CellState::class) data-field=field.as_str()>
                    <input
                        node_ref=input
                        type=kind
                        step=(kind == "number").then_some("0.01")
                        aria-label=label("")
                        value=s.text.clone()
                        on:change=move |ev| commit(&event_target_value(&ev))
                        on:blur=move |_| stop_editing(editing)
                        on:keydown=move |ev| finish_on_key(&ev, field, editing, commit)
                    />
                    {move || state.with(marks)}
                </td>
            }
            .into_any();
        }
        let s = state.get();
        if editable.get() {
            view! {
                <td class=s.class() data-field=field.as_str()>
                    <button
                        type="button"
                        class="cell-value"
                        aria-label=label(&s.text)
                        on:click=move |_| editing.set(true)
                        on:keydown=move |ev| {
                            if matches!(ev.key().as_str(), "Enter" | "F2") {
                                ev.prevent_default();
                                editing.set(true);
                            }
                        }
                    >
                        {s.text.clone()}
                    </button>
                    {marks(&s)}
                </td>
            }
            .into_any()
        } else {
            view! {
                <td class=s.class() data-field=field.as_str()>
                    <span class="cell-value">{s.text.clone()}</span>
                    {marks(&s)}
                </td>
            }
            .into_any()
        }
    }
}

/// The text mark of a modified cell and its validation message (no nodes for a clean cell).
fn marks(s: &CellState) -> impl IntoView {
    let glyph = s.glyph();
    (
        (!glyph.is_empty())
            .then(|| view! { <span class="cell-mark" aria-hidden="true">{glyph}</span> }),
        s.error.clone().map(
            |e| view! { <span class="cell-error" role="alert" data-testid="cell-error">{e}</span> },
        ),
    )
}

/// Closes a cell's editor (once: a blur may follow Enter or Escape).
fn stop_editing(editing: RwSignal<bool>) {
    if editing.get_untracked() {
        editing.set(false);
    }
}

/// Enter keeps the typed value, Escape puts the old one back; both end editing and return the
/// focus to the cell so that the keyboard can move on.
fn finish_on_key(
    ev: &leptos::ev::KeyboardEvent,
    field: EditableField,
    editing: RwSignal<bool>,
    commit: impl Fn(&str),
) {
    let key = ev.key();
    if !matches!(key.as_str(), "Enter" | "Escape") {
        return;
    }
    ev.prevent_default();
    let input = event_target::<leptos::web_sys::HtmlInputElement>(ev);
    if key == "Enter" {
        commit(&input.value());
    } else {
        input.set_value(&input.default_value());
    }
    // The cell is rendered afresh; its row stays.
    let row = input.closest("tr").ok().flatten();
    stop_editing(editing);
    request_animation_frame(move || {
        let selector = format!("td[data-field=\"{}\"] .cell-value", field.as_str());
        if let Some(button) = row
            .and_then(|r| r.query_selector(&selector).ok().flatten())
            .and_then(|b| {
                leptos::wasm_bindgen::JsCast::dyn_into::<leptos::web_sys::HtmlElement>(b).ok()
            })
        {
            let _ = button.focus();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record() -> PfaRecord {
        crate::domain::demo_data::demo_records("org-rio", 1).remove(0)
    }

    fn changes(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn only_the_rows_in_view_and_a_margin_are_rendered() {
        assert_eq!(window_range(0.0, 2000), (0, 24));
        let (start, end) = window_range(36.0 * 1000.0, 2000);
        assert_eq!((start, end), (992, 1024));
        assert_eq!(window_range(36.0 * 1999.0, 2000), (1991, 2000));
        assert_eq!(window_range(0.0, 5), (0, 5));
    }

    #[test]
    fn numbers_show_as_typed() {
        assert_eq!(as_text(&json!(4321.0)), "4321");
        assert_eq!(as_text(&json!(12.5)), "12.5");
        assert_eq!(as_text(&Value::Null), "");
        assert_eq!(as_text(&json!("<b>x</b>")), "<b>x</b>");
    }

    #[test]
    fn number_inputs_become_numbers_or_null() {
        assert_eq!(parse_input("number", "12.5"), Value::from(12.5));
        assert_eq!(parse_input("number", ""), Value::Null);
        assert_eq!(
            parse_input("number", "abc"),
            Value::String("abc".into()),
            "left for validation to reject"
        );
        assert_eq!(
            parse_input("date", "2026-01-02"),
            Value::String("2026-01-02".into())
        );
    }

    #[test]
    fn a_pending_edit_wins_over_the_saved_draft_and_is_marked_pending() {
        let r = record();
        let saved = changes(json!({"notes": "drafted"}));
        let pending = changes(json!({"notes": "typed"}));
        let none = FieldErrors::new();
        let cell = CellState::of(
            &r,
            Some(&saved),
            Some(&pending),
            &none,
            EditableField::Notes,
        );
        assert_eq!(
            (cell.text.as_str(), cell.class(), cell.glyph()),
            ("typed", "cell pending", "●")
        );
        let cell = CellState::of(&r, Some(&saved), None, &none, EditableField::Notes);
        assert_eq!(
            (cell.text.as_str(), cell.class(), cell.glyph()),
            ("drafted", "cell drafted", "○")
        );
        let cell = CellState::of(&r, None, None, &none, EditableField::Notes);
        assert_eq!(
            (cell.text.clone(), cell.class(), cell.glyph()),
            (r.notes.clone(), "cell", "")
        );
    }

    #[test]
    fn a_cell_with_a_validation_error_is_invalid_and_says_why() {
        let r = record();
        let pending = changes(json!({"forecastEnd": "2000-01-01"}));
        let errors = field_errors(&r, None, Some(&pending));
        let cell = CellState::of(
            &r,
            None,
            Some(&pending),
            &errors,
            EditableField::ForecastEnd,
        );
        assert_eq!(cell.class(), "cell pending invalid");
        assert!(cell.error.is_some());
    }

    #[test]
    fn the_row_key_changes_with_the_version_and_the_saved_draft_only() {
        let row = RecordRow {
            record: record(),
            draft: None,
        };
        let mut drafted = row.clone();
        drafted.draft = Some(DraftView {
            changes: changes(json!({"notes": "a"})),
            base_version: 1,
            reason: None,
        });
        let mut redrafted = drafted.clone();
        redrafted.draft.as_mut().unwrap().changes = changes(json!({"notes": "b"}));
        let mut newer = row.clone();
        newer.record.version += 1;
        assert_eq!(row_key(&row), row_key(&row.clone()));
        assert_ne!(row_key(&row), row_key(&drafted));
        assert_ne!(row_key(&drafted), row_key(&redrafted));
        assert_ne!(row_key(&row), row_key(&newer));
    }
}
