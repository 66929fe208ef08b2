//! Timestamps: how the agent server writes them, and how the fake orders them.
//!
//! The real server writes event timestamps as naive ISO strings
//! (`2025-06-01T12:00:00.123456`, no timezone) and conversation times with a `Z`.
//! Tests may store any string (or any JSON at all); the fake orders and filters by the
//! UTC instant it denotes, a string without timezone being UTC. A timestamp that does
//! not parse has no instant: it sorts before every other one and never passes a
//! `timestamp__gte` / `timestamp__lt` filter.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::Value;

/// A UTC instant as (seconds since the epoch, nanoseconds): totally ordered, no range
/// limits worth worrying about.
pub(crate) type Instant = (i64, u32);

/// The sort key of a stored timestamp: `None` (first) when it is not a parseable
/// string.
pub(crate) type SortKey = Option<Instant>;

/// The sort key of a JSON value holding a timestamp.
pub(crate) fn sort_key(value: Option<&Value>) -> SortKey {
    value.and_then(Value::as_str).and_then(parse)
}

/// Parses an ISO 8601 timestamp as Python's `datetime.fromisoformat` and pydantic
/// mostly would: `T` or space between date and time, optional fraction, optional `Z`
/// or `±hh:mm` / `±hhmm` offset, or a bare date (midnight). Without an offset the
/// time is UTC.
pub(crate) fn parse(text: &str) -> Option<Instant> {
    let text = text.trim();
    let utc = if let Ok(with_offset) = DateTime::parse_from_rfc3339(text) {
        with_offset.to_utc()
    } else if let Some(with_offset) = ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z"]
        .iter()
        .find_map(|format| DateTime::parse_from_str(text, format).ok())
    {
        with_offset.to_utc()
    } else if let Some(naive) = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
    {
        naive.and_utc()
    } else {
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()?
            .and_hms_opt(0, 0, 0)?
            .and_utc()
    };
    Some(instant(utc))
}

pub(crate) fn instant(time: DateTime<Utc>) -> Instant {
    (time.timestamp(), time.timestamp_subsec_nanos())
}

/// Now, as the real server stamps events: naive UTC with microseconds.
pub(crate) fn naive_now() -> String {
    Utc::now().format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

/// Now, as the real server stamps conversations: UTC with microseconds and `Z`.
pub(crate) fn utc_now() -> String {
    Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_one_instant_has_the_same_key() {
        let expected = parse("2025-06-01T12:00:00.5").expect("naive parses");
        for text in [
            "2025-06-01T12:00:00.500",
            "2025-06-01T12:00:00.500000Z",
            "2025-06-01 12:00:00.5",
            "2025-06-01T14:00:00.5+02:00",
            "2025-06-01T14:00:00.5+0200",
            "2025-06-01T07:30:00.5-04:30",
            " 2025-06-01T12:00:00.500000+00:00 ",
        ] {
            assert_eq!(parse(text), Some(expected), "{text}");
        }
        assert_eq!(parse("2025-06-01"), parse("2025-06-01T00:00:00"));
        assert_eq!(parse("2025-06-01T12:00"), parse("2025-06-01T12:00:00"));
        assert!(parse("2025-06-01T12:00:00.000001") > parse("2025-06-01T12:00:00"));
        for bad in [
            "",
            "yesterday",
            "2025-13-01T00:00:00",
            "2025-06-01T12:00:00 00:00",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        assert_eq!(sort_key(Some(&Value::from(5))), None);
        assert_eq!(sort_key(None), None);
    }

    #[test]
    fn now_is_written_like_the_real_server_and_parses_back() {
        let naive = naive_now();
        assert_eq!(naive.len(), "2025-06-01T12:00:00.123456".len(), "{naive}");
        assert!(parse(&naive).is_some());
        let utc = utc_now();
        assert!(utc.ends_with('Z'), "{utc}");
        assert!(parse(&utc).is_some());
    }
}
