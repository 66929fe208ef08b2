//! Timestamps: stored as microseconds since the Unix epoch, shown as ISO-8601 UTC
//! with a `Z` suffix (what the upstream service's JSON carries).

use chrono::{DateTime, SecondsFormat};

/// `2026-11-26T07:13:21.123456Z`. Out-of-range values (never produced by a sane
/// clock) render as the epoch rather than failing the call.
pub fn iso8601(micros: i64) -> String {
    DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;

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
