//! Timestamps on the wire: RFC 3339 in UTC with microseconds (`2025-11-28T10:00:00.000000Z`).
//! Any RFC 3339 form is accepted on input.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serializer};

pub fn format(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub fn parse(raw: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(raw).map(|t| t.with_timezone(&Utc))
}

pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(t))
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let raw = String::deserialize(d)?;
    parse(&raw).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_with_microseconds_and_accepts_offsets() {
        let t = parse("2025-11-28T12:00:00.5+02:00").unwrap();
        assert_eq!(format(&t), "2025-11-28T10:00:00.500000Z");
        assert!(parse("28/11/2025").is_err());
    }
}
