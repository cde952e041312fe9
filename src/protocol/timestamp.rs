//! Timestamps on the wire: RFC 3339 in UTC with microseconds (`2025-11-28T10:00:00.000000Z`).
//! Any RFC 3339 form is accepted on input. Every timestamp the browser reads goes through here
//! (`#[serde(with = ...)]`) rather than chrono's own serde, whose general date parser would
//! otherwise be part of the wasm; and [`parse`] reads RFC 3339 by hand, as `domain::date` reads
//! dates, rather than with chrono's `parse_from_rfc3339` (3.8 KB of the wasm with its error
//! messages). The tests check it against chrono's.

use super::text::{digits, Text};
use chrono::{DateTime, NaiveDate, NaiveTime, SecondsFormat, TimeDelta, Utc};
use serde::de;

pub fn format(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// An RFC 3339 timestamp (`2025-11-28T12:00:00.5+02:00`, `...Z`; `t` or a space may stand for
/// `T`, `z` for `Z`; a leap second `:60` is kept as chrono keeps it), in UTC; `None` for
/// anything else.
pub fn parse(raw: &str) -> Option<DateTime<Utc>> {
    let b = raw.as_bytes();
    let is = |i: usize, c: u8| b.get(i) == Some(&c);
    if b.len() < 20
        || !is(4, b'-')
        || !is(7, b'-')
        || !matches!(b[10], b'T' | b't' | b' ')
        || !is(13, b':')
        || !is(16, b':')
    {
        return None;
    }
    let n = |range: std::ops::Range<usize>| digits(&b[range]);
    let date = NaiveDate::from_ymd_opt(n(0..4)? as i32, n(5..7)?, n(8..10)?)?;
    let (hour, minute, mut second) = (n(11..13)?, n(14..16)?, n(17..19)?);
    let mut at = 19;
    let mut nanos = 0;
    if is(at, b'.') {
        let start = at + 1;
        at = start;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        if at == start {
            return None;
        }
        // Nanoseconds: the first nine digits count, the rest are dropped.
        let kept = &b[start..at.min(start + 9)];
        nanos = digits(kept)? * 10u32.pow(9 - kept.len() as u32);
    }
    let offset = match &b[at..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (h, m) = (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?);
            if h > 23 || m > 59 {
                return None;
            }
            let seconds = i64::from(h * 3600 + m * 60);
            if *sign == b'-' {
                -seconds
            } else {
                seconds
            }
        }
        _ => return None,
    };
    // chrono writes a leap second as second 59 with a second's worth more nanoseconds.
    if second == 60 {
        second = 59;
        nanos += 1_000_000_000;
    }
    let local = date.and_time(NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?);
    Some(
        local
            .checked_sub_signed(TimeDelta::seconds(offset))?
            .and_utc(),
    )
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
    fn reads_rfc3339_as_chrono_does() {
        let chrono = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        };
        for s in [
            "2025-11-28T10:00:00Z",
            "2025-11-28T10:00:00.000000Z",
            "2025-11-28t10:00:00z",
            "2025-11-28 10:00:00Z",
            "2025-11-28T10:00:00.123456789Z",
            "2025-11-28T10:00:00.1234567891234Z",
            "2025-11-28T10:00:00.5+02:00",
            "2025-11-28T01:00:00-05:30",
            "2025-12-31T23:59:59-23:59",
            "0001-01-01T00:00:00+00:01",
            "2016-12-31T23:59:60Z",
            "2024-02-29T00:00:00Z",
            // refused
            "2023-02-29T00:00:00Z",
            "2025-11-28T24:00:00Z",
            "2025-11-28T10:60:00Z",
            "2025-11-28T10:00:61Z",
            "2025-11-28T10:00:00",
            "2025-11-28T10:00:00.Z",
            "2025-11-28T10:00:00+0200",
            "2025-11-28T10:00:00+24:00",
            "2025-11-28T10:00:00+02:60",
            "2025-11-28T10:00:00Z ",
            " 2025-11-28T10:00:00Z",
            "2025-11-28X10:00:00Z",
            "2025-1-28T10:00:00Z",
            "+2025-11-28T10:00:00Z",
            "2025-11-28T10:00:0aZ",
            "2025-11-28T10:00:00.5a+02:00",
            "",
        ] {
            assert_eq!(parse(s), chrono(s), "{s:?}");
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
