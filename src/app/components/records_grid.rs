//! The records grid: only the rows in view are in the DOM (fixed row height, a spacer above
//! and below), so 2,000 records scroll without jank. Editable cells are inputs; a cell with
//! an unsaved edit, a saved draft, or a validation error is marked (with text, not only colour).

use crate::{
    app::{api::records::RecordRow, hooks::drafts::DraftManagement},
    domain::pfa::EditableField,
};
use leptos::prelude::*;
use serde_json::Value;

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

fn as_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
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

#[component]
pub fn RecordsGrid(
    #[prop(into)] rows: Signal<Vec<RecordRow>>,
    drafts: DraftManagement,
    #[prop(into)] can_edit: Signal<bool>,
    #[prop(into)] org: Signal<String>,
) -> impl IntoView {
    let (scroll_top, set_scroll_top) = signal(0.0f64);
    let range = Memo::new(move |_| window_range(scroll_top.get(), rows.with(|r| r.len())));
    let visible = move || {
        let (start, end) = range.get();
        rows.with(|r| r[start..end].to_vec())
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
                    <For each=visible key=|row| (row.record.pfa_id.clone(), row.record.version, row.draft.clone().map(|d| serde_json::to_string(&d.changes).unwrap_or_default())) let:row>
                        <Row row drafts can_edit org />
                    </For>
                    <tr class="spacer" style=bottom_pad aria-hidden="true"></tr>
                </tbody>
            </table>
        </div>
    }
}

#[component]
fn Row(
    row: RecordRow,
    drafts: DraftManagement,
    can_edit: Signal<bool>,
    org: Signal<String>,
) -> impl IntoView {
    let record = StoredValue::new(row.record.clone());
    let saved = StoredValue::new(row.draft.clone().map(|d| d.changes));
    let pfa_id = row.record.pfa_id.clone();
    let errors = Memo::new(move |_| {
        drafts
            .pending
            .with(|p| record.with_value(|r| saved.with_value(|s| p.errors_for(r, s.as_ref()))))
    });
    let history = format!("/orgs/{}/records/{}", org.get_untracked(), pfa_id);
    view! {
        <tr data-testid="record-row" data-pfa=pfa_id.clone()>
            <th scope="row"><a href=history title="Version history">{pfa_id.clone()}</a></th>
            <td>{row.record.category.clone()}</td>
            <td>{format!("{:?}", row.record.source)}</td>
            {EDITABLE.iter().map(|(field, header, kind)| {
                let (field, kind) = (*field, *kind);
                let value = move || {
                    drafts.pending.with(|p| p.value(&record.with_value(|r| r.pfa_id.clone()), field).cloned())
                        .or_else(|| saved.with_value(|s| s.as_ref().and_then(|s| s.get(field.as_str()).cloned())))
                        .unwrap_or_else(|| record.with_value(|r| r.get(field)))
                };
                let pending = move || drafts.pending.with(|p| p.value(&record.with_value(|r| r.pfa_id.clone()), field).is_some());
                let drafted = move || saved.with_value(|s| s.as_ref().is_some_and(|s| s.contains_key(field.as_str())));
                let error = move || errors.with(|e| e.get(field.as_str()).cloned());
                view! {
                    <td
                        class="cell"
                        class:pending=pending
                        class:drafted=move || drafted() && !pending()
                        class:invalid=move || error().is_some()
                        data-field=field.as_str()
                    >
                        <input
                            type=kind
                            step=if kind == "number" { Some("0.01") } else { None }
                            aria-label=format!("{header} of {}", record.with_value(|r| r.pfa_id.clone()))
                            prop:value=move || as_text(&value())
                            disabled=move || !can_edit.get()
                            on:change=move |ev| {
                                let raw = event_target_value(&ev);
                                record.with_value(|r| drafts.edit(r, field, parse_input(kind, &raw)));
                            }
                        />
                        <span class="cell-mark" aria-hidden="true">{move || if pending() { "●" } else if drafted() { "○" } else { "" }}</span>
                        {move || error().map(|e| view! { <span class="cell-error" role="alert" data-testid="cell-error">{e}</span> })}
                    </td>
                }
            }).collect_view()}
            <td>{row.record.version}</td>
        </tr>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_rows_in_view_and_a_margin_are_rendered() {
        assert_eq!(window_range(0.0, 2000), (0, 24));
        let (start, end) = window_range(36.0 * 1000.0, 2000);
        assert_eq!((start, end), (992, 1024));
        assert_eq!(window_range(36.0 * 1999.0, 2000), (1991, 2000));
        assert_eq!(window_range(0.0, 5), (0, 5));
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
}
