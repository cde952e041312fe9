//! Timestamps on the wire: RFC 3339 in UTC with microseconds (`2025-11-28T10:00:00.000000Z`).
//! Any RFC 3339 form is accepted on input (chrono's RFC 3339 reader). Fields name this module
//! in `#[serde(with = ...)]`, so every timestamp is written in that one form.

use super::text::Text;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::de;

pub fn format(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// An RFC 3339 timestamp (`2025-11-28T12:00:00.5+02:00`, `...Z`), in UTC; `None` for anything
/// else.
pub fn parse(raw: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(raw)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// `#[serde(with = "crate::protocol::timestamp")]`, and `timestamp::option` for `null` or a
/// timestamp.
pub use super::text::{deserialize, option, serialize};

impl Text for DateTime<Utc> {
    const EXPECTING: &'static str = "an RFC 3339 timestamp";

    fn to_text(&self) -> String {
        format(self)
    }

    fn from_text<E: de::Error>(text: &str) -> Result<Self, E> {
        parse(text).ok_or_else(|| E::invalid_value(de::Unexpected::Str(text), &Self::EXPECTING))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_with_microseconds_and_accepts_offsets() {
        let t = parse("2025-11-28T12:00:00.5+02:00").unwrap();
        assert_eq!(format(&t), "2025-11-28T10:00:00.500000Z");
        assert!(parse("28/11/2025").is_none());
    }

    #[test]
    fn reads_rfc3339_in_any_offset_and_nothing_else() {
        for (raw, utc) in [
            ("2025-11-28T10:00:00Z", "2025-11-28T10:00:00.000000Z"),
            ("2025-11-28t10:00:00z", "2025-11-28T10:00:00.000000Z"),
            ("2025-11-28T01:00:00-05:30", "2025-11-28T06:30:00.000000Z"),
            (
                "2025-11-28T10:00:00.1234567Z",
                "2025-11-28T10:00:00.123456Z",
            ),
        ] {
            assert_eq!(
                parse(raw).map(|t| format(&t)).as_deref(),
                Some(utc),
                "{raw}"
            );
        }
        for bad in [
            "2023-02-29T00:00:00Z",
            "2025-11-28T10:00:00",
            "2025-11-28T10:00:00+0200",
            " 2025-11-28T10:00:00Z",
            "2025-11-28",
            "",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Stamps {
        #[serde(with = "super")]
        at: DateTime<Utc>,
        #[serde(default, with = "super::option")]
        done: Option<DateTime<Utc>>,
    }

    #[test]
    fn serde_reads_any_rfc3339_and_null() {
        let s: Stamps =
            serde_json::from_str(r#"{"at":"2025-11-28T12:00:00+02:00","done":null}"#).unwrap();
        assert_eq!(format(&s.at), "2025-11-28T10:00:00.000000Z");
        assert_eq!(s.done, None);
        let s: Stamps =
            serde_json::from_value(serde_json::json!({"at": "2025-11-28T10:00:00Z"})).unwrap();
        assert_eq!(s.done, None);
        let s: Stamps = serde_json::from_str(
            r#"{"at":"2025-11-28T10:00:00Z","done":"2025-11-28T10:00:01.5Z"}"#,
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"at":"2025-11-28T10:00:00.000000Z","done":"2025-11-28T10:00:01.500000Z"}"#
        );
        assert!(serde_json::from_str::<Stamps>(r#"{"at":"yesterday"}"#).is_err());
    }
}
