//! The records grid: 2,000 records scroll without jank because the table holds a fixed pool of
//! row nodes (as many as the window can show) that are never created or dropped while
//! scrolling. A record in view is shown by the slot `index % POOL`, so a scroll re-labels only
//! the rows that came into view and moves them to the other end of the table; the other rows
//! are not touched, not even by the reactive system (each slot has its own index signal, set
//! only when its record changes). Spacers above and below give the table its full height.
//! Every row is its own layout and paint boundary (style/main.css), so the browser lays out
//! and paints only the rows that came into view, not the whole table.
//!
//! A row's text is computed once per change ([`row_view::RowView`]) and the row is one
//! reactive view that writes to the DOM only what differs. Cells carry no event listeners:
//! clicks, keys, changes and focus of every cell are handled once on the table body. Cells
//! show their value as text, in the cell itself (an editor's cells take the focus), and mount
//! an input only while being edited (click, Enter, F2 or Space; Enter keeps, Escape reverts).
//! A cell with an unsaved edit, a saved draft, or a validation error is marked (with text, not
//! only colour). A row is kept to as few elements as its content needs (twelve): the browser's
//! style, layout and paint of the rows that scroll into view grow with them.

mod pool;
mod row_view;

use crate::{
    app::{api::records::RecordRow, hooks::drafts::DraftManagement},
    domain::pfa::EditableField,
};
use leptos::{
    either::Either,
    html,
    prelude::*,
    wasm_bindgen::JsCast,
    web_sys::{Element, HtmlElement, HtmlInputElement},
};
use pool::{reorder, slot_row, slots_in_order};
use row_view::{parse_input, RowView, EDITABLE};

/// Pixel height of a row (must match `.grid tr` in the CSS).
const ROW_PX: usize = 36;
pub const ROW_HEIGHT: f64 = ROW_PX as f64;
/// Pixel height of the scrolling area.
const VIEW_PX: usize = 560;
pub const VIEW_HEIGHT: f64 = VIEW_PX as f64;
/// Rows rendered above and below the visible ones.
const OVERSCAN: usize = 8;
/// Rows that fit in the scrolling area, counting a partly visible one at each edge.
const VISIBLE_ROWS: usize = (VIEW_HEIGHT / ROW_HEIGHT) as usize + 1;
/// Row nodes in the table: the most rows a window holds.
pub const POOL: usize = VISIBLE_ROWS + 2 * OVERSCAN;

/// The rows to render for a scroll position: `[start, end)`.
pub fn window_range(scroll_top: f64, total: usize) -> (usize, usize) {
    let first = (scroll_top.max(0.0) / ROW_HEIGHT).floor() as usize;
    let start = first.saturating_sub(OVERSCAN).min(total);
    let end = (first + VISIBLE_ROWS + OVERSCAN)
        .min(total)
        .min(start + POOL);
    (start, end)
}

/// A cell whose editor a click or a key opens: an editor's cells take the focus.
const EDIT_TARGET: &str = "td[data-field][tabindex]";

/// The cell whose editor is open: record and field.
type Editing = Option<(String, EditableField)>;

/// What the grid's rows and its event handlers share.
#[derive(Clone, Copy)]
struct Grid {
    rows: Signal<Vec<RecordRow>>,
    drafts: DraftManagement,
    editable: Memo<bool>,
    editing: RwSignal<Editing>,
    org: Signal<String>,
}

#[component]
pub fn RecordsGrid(
    #[prop(into)] rows: Signal<Vec<RecordRow>>,
    drafts: DraftManagement,
    #[prop(into)] can_edit: Signal<bool>,
    #[prop(into)] org: Signal<String>,
) -> impl IntoView {
    let (scroll_top, set_scroll_top) = signal(0.0f64);
    let total = Memo::new(move |_| rows.with(Vec::len));
    let range = Memo::new(move |_| window_range(scroll_top.get(), total.get()));
    let grid = Grid {
        rows,
        drafts,
        editable: Memo::new(move |_| can_edit.get()),
        editing: RwSignal::new(None),
        org,
    };
    // Whole pixels, formatted as integers (no float formatting in the wasm).
    let top_pad = move || format!("height: {}px", range.get().0 * ROW_PX);
    let bottom_pad = move || format!("height: {}px", (total.get() - range.get().1) * ROW_PX);

    // The record each slot shows; a scroll sets only the slots whose record changed.
    let window = range.get_untracked();
    let indices: [RwSignal<Option<usize>>; POOL] =
        std::array::from_fn(|slot| RwSignal::new(slot_row(slot, window)));
    let nodes: [NodeRef<html::Tr>; POOL] = std::array::from_fn(|_| NodeRef::new());
    let body = NodeRef::<html::Tbody>::new();
    let bottom = NodeRef::<html::Tr>::new();
    // Slots in DOM order, as rendered: 0, 1, ... The rows are moved with plain DOM calls: the
    // pool is a static list that the view never renders again, so only this effect orders it.
    let order = StoredValue::new((0..POOL).collect::<Vec<_>>());
    Effect::new(move |_| {
        let window = range.get();
        for (slot, index) in indices.iter().enumerate() {
            let row = slot_row(slot, window);
            if index.get_untracked() != row {
                index.set(row);
            }
        }
        close_editor_out_of(window, grid);
        let (Some(body), Some(bottom)) = (body.get_untracked(), bottom.get_untracked()) else {
            return;
        };
        let moves = order
            .try_update_value(|o| reorder(o, &slots_in_order(window)))
            .unwrap_or_default();
        for m in moves {
            let before: Option<leptos::web_sys::Node> = match m.before {
                Some(next) => nodes[next].get_untracked().map(Into::into),
                None => Some(bottom.clone().into()),
            };
            if let Some(row) = nodes[m.slot].get_untracked() {
                let _ = body.insert_before(&row, before.as_ref());
            }
        }
    });

    view! {
        <div
            class="grid-scroll"
            style=format!("height: {VIEW_PX}px")
            data-testid="records-grid"
            on:scroll=move |ev| set_scroll_top.set(event_target::<HtmlElement>(&ev).scroll_top() as f64)
        >
            <table class="grid" role="table" aria-rowcount=move || total.get() + 1>
                <thead role="rowgroup">
                    <tr role="row" aria-rowindex="1">
                        <th scope="col" role="columnheader" class="col-pfa">"PFA"</th>
                        <th scope="col" role="columnheader" class="col-category">"Category"</th>
                        <th scope="col" role="columnheader" class="col-source">"Source"</th>
                        {EDITABLE.map(|(_, header, _)| view! { <th scope="col" role="columnheader" class="col-field">{header}</th> })}
                        <th scope="col" role="columnheader" class="col-version">"Version"</th>
                    </tr>
                </thead>
                <tbody
                    role="rowgroup"
                    node_ref=body
                    on:click=move |ev| on_click(&ev, grid)
                    on:keydown=move |ev| on_keydown(&ev, grid)
                    on:change=move |ev| on_change(&ev, grid)
                    on:focusout=move |ev| on_focusout(&ev, grid)
                >
                    <tr class="spacer" style=top_pad aria-hidden="true"></tr>
                    {std::array::from_fn::<_, POOL, _>(|slot| pooled_row(indices[slot], grid, nodes[slot]))}
                    <tr class="spacer" node_ref=bottom style=bottom_pad aria-hidden="true"></tr>
                </tbody>
            </table>
        </div>
    }
}

/// An editor whose record left the window closes (its row now shows another record).
fn close_editor_out_of((start, end): (usize, usize), grid: Grid) {
    let gone = grid.editing.with_untracked(|e| {
        e.as_ref().is_some_and(|(pfa_id, _)| {
            grid.rows.with_untracked(|rows| {
                !rows[start..end.min(rows.len())]
                    .iter()
                    .any(|row| &row.record.pfa_id == pfa_id)
            })
        })
    });
    if gone {
        grid.editing.set(None);
    }
}

/// One row node of the pool: shows the record at `index`, or nothing (hidden).
fn pooled_row(
    index: RwSignal<Option<usize>>,
    grid: Grid,
    node: NodeRef<html::Tr>,
) -> impl IntoView {
    let shown = Memo::new(move |_| {
        let i = index.get()?;
        grid.rows.with(|rows| {
            let row = rows.get(i)?;
            Some(
                grid.drafts
                    .pending
                    .with(|p| RowView::of(row, p.changes_of(&row.record.pfa_id))),
            )
        })
    });
    let editing = Memo::new(move |_| {
        grid.editing.with(|e| {
            let (pfa_id, field) = e.as_ref()?;
            shown
                .with(|v| v.as_ref().is_some_and(|v| &v.pfa_id == pfa_id))
                .then_some(*field)
        })
    });
    view! {
        <tr
            node_ref=node
            data-testid="record-row"
            role="row"
            aria-rowindex=move || index.get().map(|i| i + 2)
            data-pfa=move || shown.with(|v| v.as_ref().map(|v| v.pfa_id.clone()))
            hidden=move || shown.with(Option::is_none)
        >
            {move || {
                let (editable, editing) = (grid.editable.get(), editing.get());
                grid.org.with(|org| shown.with(|v| row_cells(v.as_ref(), org, editable, editing)))
            }}
        </tr>
    }
}

/// The cells of a row (empty for a hidden one), as plain values: the row's reactive view
/// compares them with what it shows and writes only the differences.
fn row_cells(
    view: Option<&RowView>,
    org: &str,
    editable: bool,
    editing: Option<EditableField>,
) -> impl IntoView {
    let text = |part: fn(&RowView) -> &str| view.map(part).unwrap_or_default().to_owned();
    let history = view.map(|v| format!("/orgs/{org}/records/{}", v.pfa_id));
    let cells = std::array::from_fn::<_, { EDITABLE.len() }, _>(|column| {
        let (field, header, kind) = EDITABLE[column];
        let (pfa_id, cell) = match view {
            Some(v) => (v.pfa_id.as_str(), Some(&v.cells[column])),
            None => ("", None),
        };
        let value = cell.map(|c| c.text.clone()).unwrap_or_default();
        let glyph = cell.map_or("", |c| c.glyph());
        let error = cell.and_then(|c| c.error.clone());
        let content = if editing == Some(field) {
            Either::Left(view! {
                <input
                    type=kind
                    step=(kind == "number").then_some("0.01")
                    aria-label=format!("{header} of {pfa_id}")
                    value=value
                />
            })
        } else {
            Either::Right(value)
        };
        view! {
            <td
                role="cell"
                class=cell.map_or("cell", |c| c.class())
                data-field=field.as_str()
                tabindex=editable.then_some("0")
            >
                {content}
                {(!glyph.is_empty()).then(|| view! { <span class="cell-mark" aria-hidden="true">{glyph}</span> })}
                {error.map(|e| view! { <span class="cell-error" role="alert" data-testid="cell-error">{e}</span> })}
            </td>
        }
    });
    view! {
        <th scope="row" role="rowheader" class="col-pfa"><a href=history title="Version history">{text(|v| &v.pfa_id)}</a></th>
        <td role="cell" class="col-category">{text(|v| &v.category)}</td>
        <td role="cell" class="col-source">{text(|v| &v.source)}</td>
        {cells}
        <td role="cell" class="col-version">{text(|v| &v.version)}</td>
    }
}

/// The grid cell an event happened in: its record, its field and the cell element.
fn event_cell(ev: &leptos::web_sys::Event) -> Option<(Element, String, EditableField, Element)> {
    let target: Element = ev.target()?.dyn_into().ok()?;
    let cell = target.closest("td[data-field]").ok()??;
    let pfa_id = cell
        .closest("tr[data-pfa]")
        .ok()??
        .get_attribute("data-pfa")?;
    let name = cell.get_attribute("data-field")?;
    let (field, _, _) = EDITABLE.iter().find(|(f, _, _)| f.as_str() == name)?;
    Some((target, pfa_id, *field, cell))
}

/// Opens a cell's editor and puts the focus in it once it is rendered.
fn open_editor(grid: Grid, pfa_id: String, field: EditableField, cell: Element) {
    grid.editing.set(Some((pfa_id, field)));
    request_animation_frame(move || {
        if let Ok(Some(input)) = cell.query_selector("input") {
            focus(&input);
        }
    });
}

/// Closes the editor of this cell, if it is the one open.
fn close_editor(grid: Grid, pfa_id: &str, field: EditableField) {
    let open = grid
        .editing
        .with_untracked(|e| e.as_ref().is_some_and(|(p, f)| p == pfa_id && *f == field));
    if open {
        grid.editing.set(None);
    }
}

fn focus(element: &Element) {
    if let Some(element) = element.dyn_ref::<HtmlElement>() {
        let _ = element.focus();
    }
}

/// Records what was typed in a cell as a pending edit of its record.
fn commit(grid: Grid, pfa_id: &str, field: EditableField, raw: &str) {
    let kind = EDITABLE
        .iter()
        .find(|(f, _, _)| *f == field)
        .map_or("text", |(_, _, kind)| *kind);
    grid.rows.with_untracked(|rows| {
        if let Some(row) = rows.iter().find(|r| r.record.pfa_id == pfa_id) {
            grid.drafts.edit(&row.record, field, parse_input(kind, raw));
        }
    });
}

fn on_click(ev: &leptos::ev::MouseEvent, grid: Grid) {
    let Some((target, pfa_id, field, cell)) = event_cell(ev) else {
        return;
    };
    if grid.editable.get_untracked()
        && cell.matches(EDIT_TARGET).unwrap_or(false)
        && !target.is_instance_of::<HtmlInputElement>()
    {
        open_editor(grid, pfa_id, field, cell);
    }
}

/// On a cell, Enter, F2 or Space opens its editor (a click too). In the
/// editor, Enter keeps the typed value and Escape puts the old one back; both end editing and
/// return the focus to the cell so that the keyboard can move on.
fn on_keydown(ev: &leptos::ev::KeyboardEvent, grid: Grid) {
    let Some((target, pfa_id, field, cell)) = event_cell(ev) else {
        return;
    };
    let key = ev.key();
    if let Some(input) = target.dyn_ref::<HtmlInputElement>() {
        if !matches!(key.as_str(), "Enter" | "Escape") {
            return;
        }
        ev.prevent_default();
        if key == "Enter" {
            commit(grid, &pfa_id, field, &input.value());
        } else {
            input.set_value(&input.default_value());
        }
        close_editor(grid, &pfa_id, field);
        request_animation_frame(move || focus(&cell));
    } else if matches!(key.as_str(), "Enter" | "F2" | " ")
        && grid.editable.get_untracked()
        && target.matches(EDIT_TARGET).unwrap_or(false)
    {
        ev.prevent_default();
        open_editor(grid, pfa_id, field, cell);
    }
}

fn on_change(ev: &leptos::ev::Event, grid: Grid) {
    if let Some((target, pfa_id, field, _)) = event_cell(ev) {
        if let Some(input) = target.dyn_ref::<HtmlInputElement>() {
            commit(grid, &pfa_id, field, &input.value());
        }
    }
}

/// Leaving an editor closes it (a blur may also follow Enter or Escape: then it is closed).
fn on_focusout(ev: &leptos::ev::FocusEvent, grid: Grid) {
    if let Some((target, pfa_id, field, _)) = event_cell(ev) {
        if target.is_instance_of::<HtmlInputElement>() {
            close_editor(grid, &pfa_id, field);
        }
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
    fn the_pool_holds_every_window() {
        for top in (0..80_000).step_by(7) {
            let (start, end) = window_range(top as f64, 2000);
            assert!(end - start <= POOL, "{top}");
        }
        assert_eq!(POOL, 32);
    }
}
