//! What a row of the grid shows, as text, computed once when its record, saved draft or
//! pending edits change. A pooled row compares the new view with the one it shows and writes
//! only the text that differs.

use crate::{
    app::{api::records::RecordRow, hooks::drafts::field_errors},
    domain::pfa::{EditableField, FieldErrors, PfaRecord},
};
use serde_json::{Map, Value};

/// Editable columns: field, header, input type.
pub const EDITABLE: [(EditableField, &str, &str); 6] = [
    (EditableField::Equipment, "Equipment", "text"),
    (EditableField::MonthlyRate, "Monthly rate", "number"),
    (EditableField::PurchasePrice, "Purchase price", "number"),
    (EditableField::ForecastStart, "Forecast start", "date"),
    (EditableField::ForecastEnd, "Forecast end", "date"),
    (EditableField::Notes, "Notes", "text"),
];

/// A value as the cell shows it (and as its editor starts): numbers without a trailing `.0`.
pub fn as_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(x) => x.to_string(),
            None => n.to_string(),
        },
        // Not a field's type: shown as JSON.
        other => other.to_string(),
    }
}

/// What an editor's text means for a field of input type `kind`: a number, empty (`null`),
/// or the text itself, which validation then rejects with a message.
pub fn parse_input(kind: &str, raw: &str) -> Value {
    match kind {
        "number" if raw.trim().is_empty() => Value::Null,
        "number" => parse_number(raw.trim())
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(raw.to_owned())),
        _ => Value::String(raw.to_owned()),
    }
}

/// A number as a number input gives it (`12`, `-3.5`, `.5`, `1e3`); `None` for what is not a
/// finite number (`1e400`, `inf`, `NaN`, `12abc`).
fn parse_number(raw: &str) -> Option<serde_json::Number> {
    raw.parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
        .and_then(serde_json::Number::from_f64)
}

/// How a cell is marked besides its colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Clean,
    /// An unsaved edit.
    Pending,
    /// A saved draft, not committed.
    Drafted,
}

/// What an editable cell shows.
#[derive(Debug, Clone, PartialEq)]
pub struct CellState {
    pub text: String,
    pub mark: Mark,
    pub error: Option<String>,
}

impl CellState {
    /// A record's field with its saved draft and pending edits applied.
    pub fn of(
        record: &PfaRecord,
        saved: Option<&Map<String, Value>>,
        pending: Option<&Map<String, Value>>,
        errors: &FieldErrors,
        field: EditableField,
    ) -> Self {
        let key = field.as_str();
        let edited = pending.and_then(|p| p.get(key));
        let drafted = saved.and_then(|s| s.get(key));
        let text = match edited.or(drafted) {
            Some(value) => as_text(value),
            None => as_text(&record.get(field)),
        };
        Self {
            text,
            mark: match (edited, drafted) {
                (Some(_), _) => Mark::Pending,
                (None, Some(_)) => Mark::Drafted,
                (None, None) => Mark::Clean,
            },
            error: errors.get(key).cloned(),
        }
    }

    pub fn class(&self) -> &'static str {
        match (self.mark, self.error.is_some()) {
            (Mark::Clean, false) => "cell",
            (Mark::Clean, true) => "cell invalid",
            (Mark::Pending, false) => "cell pending",
            (Mark::Pending, true) => "cell pending invalid",
            (Mark::Drafted, false) => "cell drafted",
            (Mark::Drafted, true) => "cell drafted invalid",
        }
    }

    pub fn glyph(&self) -> &'static str {
        match self.mark {
            Mark::Clean => "",
            Mark::Pending => "●",
            Mark::Drafted => "○",
        }
    }
}

/// What a row shows.
#[derive(Debug, Clone, PartialEq)]
pub struct RowView {
    pub pfa_id: String,
    pub category: String,
    pub source: String,
    pub version: String,
    pub cells: [CellState; EDITABLE.len()],
}

impl RowView {
    /// A row with its saved draft and this page's pending edits applied.
    pub fn of(row: &RecordRow, pending: Option<&Map<String, Value>>) -> Self {
        let record = &row.record;
        let saved = row.draft.as_ref().map(|d| &d.changes);
        let errors = field_errors(record, saved, pending);
        Self {
            pfa_id: record.pfa_id.clone(),
            category: record.category.clone(),
            source: record.source.as_str().to_owned(),
            version: record.version.to_string(),
            cells: EDITABLE
                .map(|(field, _, _)| CellState::of(record, saved, pending, &errors, field)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::api::records::DraftView;
    use serde_json::json;

    fn record() -> PfaRecord {
        crate::domain::demo_data::demo_records("org-rio", 1).remove(0)
    }

    fn changes(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn numbers_show_as_typed() {
        assert_eq!(as_text(&json!(4321.0)), "4321");
        assert_eq!(as_text(&json!(12.5)), "12.5");
        assert_eq!(as_text(&json!(1500)), "1500");
        assert_eq!(as_text(&json!(999_999_999_999.99)), "999999999999.99");
        assert_eq!(as_text(&json!(1.0e12)), "1000000000000");
        assert_eq!(as_text(&json!(0.01)), "0.01");
        assert_eq!(as_text(&json!(-3.0)), "-3");
        assert_eq!(as_text(&Value::Null), "");
        assert_eq!(as_text(&json!("<b>x</b>")), "<b>x</b>");
        assert_eq!(as_text(&json!(true)), "true");
        assert_eq!(as_text(&json!(["a", 1])), r#"["a",1]"#);
    }

    #[test]
    fn number_inputs_become_numbers_or_null() {
        assert_eq!(parse_input("number", "12.5"), Value::from(12.5));
        assert_eq!(parse_input("number", " 1500 ").as_f64(), Some(1500.0));
        assert_eq!(parse_input("number", ".5"), Value::from(0.5));
        assert_eq!(parse_input("number", "-.25"), Value::from(-0.25));
        assert_eq!(parse_input("number", "+7."), Value::from(7.0));
        assert_eq!(parse_input("number", "1e3"), Value::from(1000.0));
        for bad in [
            "1e400", "inf", "NaN", "1,5", "--1", ".", "-", "1 5", "12abc", "0x10", "1.2.3",
        ] {
            assert_eq!(
                parse_input("number", bad),
                Value::String(bad.into()),
                "{bad}"
            );
        }
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
    fn a_row_shows_its_record_with_the_saved_draft_and_pending_edits() {
        let mut row = RecordRow {
            record: record(),
            draft: Some(DraftView {
                changes: changes(json!({"equipment": "EQ-9"})),
                base_version: 1,
                reason: None,
            }),
        };
        row.record.version = 3;
        let pending = changes(json!({"notes": "typed"}));
        let view = RowView::of(&row, Some(&pending));
        assert_eq!(
            (view.pfa_id.as_str(), view.version.as_str()),
            (row.record.pfa_id.as_str(), "3")
        );
        assert_eq!(view.cells[0].text, "EQ-9");
        assert_eq!(view.cells[0].mark, Mark::Drafted);
        assert_eq!(view.cells[5].mark, Mark::Pending);
        assert_eq!(
            view,
            RowView::of(&row, Some(&pending)),
            "the same inputs give the same view"
        );
        assert_ne!(view, RowView::of(&row, None));
    }
}
