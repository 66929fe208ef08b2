//! Timestamps: stored as microseconds since the Unix epoch, shown as ISO-8601 UTC
//! with a `Z` suffix (what the upstream service's JSON carries).

use chrono::{DateTime, NaiveDateTime, SecondsFormat};

/// `2026-11-26T07:13:21.123456Z`. Out-of-range values (never produced by a sane
/// clock) render as the epoch rather than failing the call.
pub fn iso8601(micros: i64) -> String {
    DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Microseconds since the epoch of an ISO-8601 timestamp. A timestamp without a
/// timezone (what agent servers send) is UTC. None when unreadable.
pub fn parse(timestamp: &str) -> Option<i64> {
    let t = timestamp.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Some(dt.timestamp_micros());
    }
    // Without a timezone; `T` or a space between date and time.
    let naive = t
        .parse::<NaiveDateTime>()
        .or_else(|_| NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f"))
        .ok()?;
    Some(naive.and_utc().timestamp_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_timestamps_with_and_without_timezone() {
        let base = 1_795_677_201_123_456;
        assert_eq!(parse("2026-11-26T07:13:21.123456"), Some(base));
        assert_eq!(parse("2026-11-26T07:13:21.123456Z"), Some(base));
        assert_eq!(parse("2026-11-26T09:13:21.123456+02:00"), Some(base));
        assert_eq!(parse("2026-11-26 07:13:21.123456"), Some(base));
        assert_eq!(parse("2026-11-26T07:13:21"), Some(base - 123_456));
        assert_eq!(parse("yesterday"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn renders_utc_with_z_and_microseconds() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            iso8601(1_795_677_201_123_456),
            "2026-11-26T07:13:21.123456Z"
        );
    }

    #[test]
    fn out_of_range_falls_back_to_epoch() {
        assert_eq!(iso8601(i64::MAX), "1970-01-01T00:00:00.000000Z");
    }
}
