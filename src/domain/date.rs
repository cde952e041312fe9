//! Calendar dates as the wire, the API and the date editors write them: `YYYY-MM-DD`.
//!
//! Exactly that form is accepted, the one the error message names: chrono's parser also takes
//! `2025-1-5`, `+2025-01-05` and a trailing space, which the API refuses.

use crate::protocol::text::{digits, Text};
use chrono::{Datelike, NaiveDate};
use serde::de;

/// `YYYY-MM-DD` with a real day of a real month, else `None`.
pub fn parse(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| digits(&b[range]);
    NaiveDate::from_ymd_opt(number(0..4)? as i32, number(5..7)?, number(8..10)?)
}

/// The date as `YYYY-MM-DD` (years 0 to 9999, the only ones [`parse`] gives).
pub fn format(d: NaiveDate) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day())
}

/// `#[serde(with = "crate::domain::date")]`, and `date::option` for `null` or a date.
pub use crate::protocol::text::{deserialize, option, serialize};

impl Text for NaiveDate {
    const EXPECTING: &'static str = "a date YYYY-MM-DD";

    fn to_text(&self) -> String {
        format(*self)
    }

    fn from_text<E: de::Error>(text: &str) -> Result<Self, E> {
        parse(text).ok_or_else(|| E::invalid_value(de::Unexpected::Str(text), &Self::EXPECTING))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_exactly_yyyy_mm_dd() {
        let d = NaiveDate::from_ymd_opt(2025, 3, 7).unwrap();
        assert_eq!(parse("2025-03-07"), Some(d));
        assert_eq!(format(d), "2025-03-07");
        assert_eq!(
            parse("2024-02-29").map(format).as_deref(),
            Some("2024-02-29")
        );
        for bad in [
            "",
            "2025-3-7",
            "2025-03-7",
            "+2025-03-07",
            "2025-03-07 ",
            " 2025-03-07",
            "2025/03/07",
            "2025-02-29",
            "2025-13-01",
            "2025-00-10",
            "2025-01-32",
            "20a5-01-01",
            "2025-0x-01",
            "2025-01-01T00:00:00Z",
            "٢٠٢٥-01-01",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Dates {
        #[serde(with = "super")]
        on: NaiveDate,
        #[serde(with = "super::option")]
        until: Option<NaiveDate>,
    }

    #[test]
    fn serde_round_trip_and_clear_errors() {
        let on = NaiveDate::from_ymd_opt(2026, 1, 2).unwrap();
        let json = r#"{"on":"2026-01-02","until":null}"#;
        let dates: Dates = serde_json::from_str(json).unwrap();
        assert_eq!(dates, Dates { on, until: None });
        assert_eq!(serde_json::to_string(&dates).unwrap(), json);
        let with_until: Dates =
            serde_json::from_value(serde_json::json!({"on": "2026-01-02", "until": "2026-12-31"}))
                .unwrap();
        assert_eq!(with_until.until, NaiveDate::from_ymd_opt(2026, 12, 31));
        let error = serde_json::from_str::<Dates>(r#"{"on":"2026-1-2","until":null}"#).unwrap_err();
        assert!(
            error.to_string().contains("expected a date YYYY-MM-DD"),
            "{error}"
        );
        assert!(serde_json::from_str::<Dates>(r#"{"on":20260102,"until":null}"#).is_err());
    }
}
